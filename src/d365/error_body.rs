//! D365's error bodies: the OData shape `{"error":{…}}` and ASP.NET Web
//! API's own `{"Message": …}`, answered for a path no route matches [obs].

use serde::Deserialize;

use crate::text::truncate;

/// D365's useful text can be a whole Infolog; conditions and logs get the
/// first this-many characters.
pub(super) const MAX_MESSAGE_CHARS: usize = 1024;

/// The parts of D365's error body that matter:
/// `{"error":{"code","message","innererror":{"message","type",…}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ODataErrorDetails {
    pub code: Option<String>,
    pub message: Option<String>,
    pub inner_message: Option<String>,
    pub inner_type: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: RawError,
}

#[derive(Deserialize)]
struct RawError {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<RawInner>,
}

#[derive(Deserialize)]
struct RawInner {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl ODataErrorDetails {
    /// `None` when the body is not an OData error document.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let env: Envelope = serde_json::from_slice(body).ok()?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let (inner_message, inner_type) = match env.error.innererror {
            Some(inner) => (non_empty(inner.message), non_empty(inner.kind)),
            None => (None, None),
        };
        Some(Self {
            code: non_empty(env.error.code),
            message: non_empty(env.error.message),
            inner_message,
            inner_type,
        })
    }

    /// The useful text: `innererror.message` when present (D365's outer
    /// message is usually just "An error has occurred."), else
    /// `error.message`, truncated to a sane length.
    pub fn text(&self) -> Option<&str> {
        self.inner_message
            .as_deref()
            .or(self.message.as_deref())
            .map(|t| truncate(t.trim(), MAX_MESSAGE_CHARS))
    }

    /// The 500-means-rejected rule documented on [`D365Error::Rejected`].
    pub fn is_write_failure(&self) -> bool {
        let type_says = self.inner_type.as_deref().is_some_and(|t| {
            t.contains("AxODataWriteException") || t.contains("ValidationException")
        });
        let text_says = [&self.inner_message, &self.message]
            .into_iter()
            .flatten()
            .any(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("write failed") || m.contains("validation")
            });
        type_says || text_says
    }
}

/// ASP.NET Web API's error shape, `{"Message":"No HTTP resource was found
/// that matches the request URI '…'."}`: F&O answers it when no route
/// matches (a wrong entity set, a key whose `/` was encoded once) [obs].
#[derive(Deserialize)]
struct WebApiError {
    #[serde(rename = "Message")]
    message: String,
}

/// The `Message` of a Web API error body, truncated; `None` for any other
/// body.
pub(super) fn web_api_message(body: &[u8]) -> Option<String> {
    let parsed: WebApiError = serde_json::from_slice(body).ok()?;
    let text = parsed.message.trim();
    (!text.is_empty()).then(|| truncate(text, MAX_MESSAGE_CHARS).to_owned())
}
