//! Microsoft Entra ID client-credentials token endpoint and bearer checks
//! [doc]. Tokens are random opaque strings, never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::RwLock;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;

use crate::assertion::{ASSERTION_TYPE, AadError, Presented};
use crate::journal::{GrantKind, TokenGrant};
use crate::state::State;

/// Issued tokens and their expiry, and the most recent ones ever issued
/// (expired and revoked too), so a test can look for them where they must
/// not appear.
#[derive(Default)]
pub struct Tokens {
    issued: RwLock<HashMap<String, Instant>>,
    history: RwLock<std::collections::VecDeque<String>>,
}

/// How many issued tokens [`Tokens::history`] keeps.
const HISTORY: usize = 1024;

#[derive(Debug, Error, PartialEq)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("unknown or revoked token")]
    Unknown,
    #[error("token expired")]
    Expired,
}

impl Tokens {
    /// Issues a new random token valid for `ttl`.
    pub fn issue(&self, ttl: Duration) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut map = self.issued.write();
        map.retain(|_, exp| *exp > now);
        map.insert(token.clone(), now + ttl);
        let mut history = self.history.write();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(token.clone());
        token
    }

    /// The last 1,024 tokens issued, oldest first.
    pub fn history(&self) -> Vec<String> {
        self.history.read().iter().cloned().collect()
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        match self.issued.read().get(token) {
            None => Err(AuthError::Unknown),
            Some(exp) if *exp <= Instant::now() => Err(AuthError::Expired),
            Some(_) => Ok(()),
        }
    }

    /// Every issued token becomes invalid (tests of the refresh path).
    pub fn revoke_all(&self) {
        self.issued.write().clear();
    }
}

/// Form of a client-credentials token request [doc]: a secret, or an
/// assertion (certificate or federated credential). No `Debug`: it holds
/// the secret or the assertion, which must never reach a log.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenForm {
    grant_type: String,
    client_id: String,
    client_secret: String,
    client_assertion_type: String,
    client_assertion: String,
    scope: String,
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(mut form): Form<TokenForm>,
) -> Response {
    state.journal.token_request();
    let cfg = &state.config;
    if !tenant.eq_ignore_ascii_case(&cfg.tenant) {
        return aad_error(
            400,
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    // Client credentials may also come as HTTP Basic [doc: RFC 6749 2.3.1].
    if form.client_id.is_empty()
        && let Some((id, secret)) = basic_credentials(&headers)
    {
        form.client_id = id;
        form.client_secret = secret;
    }
    if form.grant_type != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let kind = match authenticate(&state, &tenant, &headers, &form).await {
        Ok(kind) => kind,
        Err(e) => return aad_error(e.status, e.error, &e.description),
    };
    // The audience is the environment URL, lower-case, no trailing slash [doc].
    let got = form.scope.to_lowercase().replace("//.default", "/.default");
    let accepted = [state.base_url.clone(), state.env_url(&headers)];
    if !accepted
        .iter()
        .any(|u| got == format!("{}/.default", u.to_lowercase()))
    {
        return aad_error(
            400,
            "invalid_scope",
            &format!(
                "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.",
                form.scope
            ),
        );
    }
    state.journal.grant(TokenGrant {
        client_id: form.client_id,
        kind,
    });
    let ttl = cfg.token_ttl;
    let token = state.tokens.issue(ttl);
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

/// Checks the client's credential: its secret, or its assertion.
async fn authenticate(
    state: &State,
    tenant: &str,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<GrantKind, AadError> {
    let cfg = &state.config;
    let has_assertion = !form.client_assertion.is_empty() || !form.client_assertion_type.is_empty();
    if !has_assertion {
        if form.client_id != cfg.client_id || form.client_secret != cfg.client_secret {
            return Err(AadError::invalid_client(format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                form.client_id
            )));
        }
        return Ok(GrantKind::Secret);
    }
    // One credential per request [unverified: the code Entra answers both with].
    if !form.client_secret.is_empty() {
        return Err(AadError::invalid_request(
            "AADSTS9002313: Invalid request. Request is malformed or invalid. Send either client_secret or client_assertion, not both.".into(),
        ));
    }
    if form.client_assertion_type != ASSERTION_TYPE || form.client_assertion.is_empty() {
        return Err(AadError::invalid_request(format!(
            "AADSTS9002313: Invalid request. Request is malformed or invalid. client_assertion_type must be '{ASSERTION_TYPE}' with a client_assertion."
        )));
    }
    let endpoints = token_endpoints(state, tenant, headers);
    let presented = Presented {
        client_id: &form.client_id,
        assertion: &form.client_assertion,
        tenant,
        endpoints: &endpoints,
    };
    state.assertions.verify(cfg, &presented).await
}

/// URLs the client may have called: the bound or public URL, and the one
/// its `Host` header names (a certificate assertion's `aud`) [doc].
fn token_endpoints(state: &State, tenant: &str, headers: &HeaderMap) -> Vec<String> {
    let mut bases = vec![state.base_url.clone(), state.env_url(headers)];
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        bases.push(format!("http://{host}"));
    }
    bases
        .iter()
        .map(|b| format!("{}/{tenant}/oauth2/v2.0/token", b.trim_end_matches('/')))
        .collect()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn aad_error(status: u16, error: &str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [],
        "timestamp": jiff::Timestamp::now().to_string(),
    });
    (crate::odata::status_code(status), axum::Json(body)).into_response()
}
