//! OData answer shapes: D365's error body and the JSON content type and
//! version headers [doc][obs].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use thiserror::Error;

use crate::entity::ENTITY_SET;

/// Answer content type [doc].
pub const JSON_CONTENT_TYPE: &str = "application/json; odata.metadata=minimal";

/// Exception type D365 names for write failures, incl. business validation [obs].
pub const WRITE_EXCEPTION: &str =
    "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException";
/// Exception type for protocol errors (bad URL, query, body).
pub const PROTOCOL_EXCEPTION: &str = "Microsoft.OData.ODataException";
/// Exception type for a missing record.
pub const NOT_FOUND_EXCEPTION: &str =
    "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataObjectNotFoundException";
/// Exception type for concurrency and precondition failures.
pub const CONCURRENCY_EXCEPTION: &str =
    "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataConcurrencyException";
/// Exception type for missing privileges.
pub const SECURITY_EXCEPTION: &str = "System.Security.SecurityException";

/// An OData error in D365's shape: `code` empty, generic `message`, the
/// useful text in `innererror.message` [obs].
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{status}: {message}")]
pub struct ODataError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
}

impl ODataError {
    pub fn new(status: u16, message: impl Into<String>, kind: &'static str) -> Self {
        ODataError {
            status,
            message: message.into(),
            kind,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message, PROTOCOL_EXCEPTION)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message, NOT_FOUND_EXCEPTION)
    }

    /// 404 for a key that names no record the caller may see [obs].
    pub fn entity_not_found(area: &str, number: &str) -> Self {
        Self::not_found(format!(
            "No resources were found for {ENTITY_SET}(dataAreaId='{area}',SalesOrderNumber='{number}')."
        ))
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": self.message,
                "type": self.kind,
                "stacktrace": "",
                "internalexception": {
                    "message": self.message,
                    "type": self.kind,
                    "stacktrace": ""
                }
            }
        }})
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

/// Content type of ASP.NET Web API's own answers.
pub const WEB_API_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// ASP.NET Web API's 404 for a path no route matches: `{"Message": …}`,
/// not the OData error shape, no `OData-Version` [obs][field report].
pub fn web_api_not_found(url: &str) -> (u16, Vec<u8>) {
    let message = format!("No HTTP resource was found that matches the request URI '{url}'.");
    (
        404,
        serde_json::to_vec(&json!({ "Message": message })).unwrap_or_default(),
    )
}

/// [`web_api_not_found`] as a response.
pub fn web_api_not_found_response(url: &str) -> Response {
    let (status, body) = web_api_not_found(url);
    let mut r = (status_code(status), body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(WEB_API_CONTENT_TYPE),
    );
    r
}

/// A JSON answer with the OData headers.
pub fn json_response(status: u16, body: &Value) -> Response {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// Serialized JSON with the OData headers.
pub fn bytes_response(status: u16, body: Vec<u8>) -> Response {
    let mut r = (status_code(status), body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}

/// An empty answer with the OData version header (204s).
pub fn empty_response(status: u16) -> Response {
    let mut r = status_code(status).into_response();
    r.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}

pub fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Reason phrase for batch part status lines.
pub fn reason(status: u16) -> &'static str {
    status_code(status).canonical_reason().unwrap_or("Unknown")
}
