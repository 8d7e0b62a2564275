//! What one connection (one D365 environment) needs to know.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::{Credential, D365Error, Destinations, Writer, check_scope};

/// Settings of one D365 environment. `Debug` is safe: the credential prints
/// its kind, never its material.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// e.g. `https://contoso.operations.dynamics.com`; OData root is
    /// `<url>/data`.
    pub environment_url: Url,
    /// e.g. `SalesOrderHeadersV2`.
    pub entity_set: String,
    /// e.g. `https://login.microsoftonline.com` (sovereign clouds and the
    /// emulator differ); the token endpoint is
    /// `<authority>/<tenant>/oauth2/v2.0/token`.
    pub authority_url: Url,
    pub tenant_id: String,
    pub client_id: String,
    /// How the client proves itself to Entra.
    pub credential: Credential,
    /// Defaults to the environment URL, lower-case, without trailing slash,
    /// plus `/.default` — the token's audience must be exactly that [doc].
    pub scope: Option<String>,
    pub max_requests_per_second: u32,
    pub max_concurrent_requests: u32,
    /// Find the concurrency D365 sustains (AIMD between 1 and
    /// `max_concurrent_requests`) instead of holding that many in flight.
    pub adaptive_concurrency: bool,
    pub request_timeout: Duration,
    /// Coalesce concurrent PATCHes into OData `$batch` calls; `None` (the
    /// default) sends one PATCH per write.
    pub batch: Option<BatchSettings>,
    /// Most bytes a successful data or `$batch` answer may have; longer
    /// ones are refused unread (`Unavailable`, "answer too large").
    /// Token and error answers are held to [`MAX_SMALL_ANSWER_BYTES`].
    pub max_answer_bytes: usize,
    /// Who writes, and whether it still may.
    pub writer: Writer,
    /// Where the secret and tokens may be sent; checked by [`Self::validate`].
    pub destinations: Destinations,
}

/// Default of [`ConnectionSettings::max_answer_bytes`]: 16 MiB. The largest
/// answer the operator asks for is a `$batch` of [`MAX_BATCH_OPERATIONS`]
/// PATCH parts (each a status line and a few headers, well under 1 KiB:
/// about 5 MB) or one order with `$select` (a few KiB); 16 MiB leaves room
/// for both three times over and still bounds a hostile answer.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 << 20;

/// Limit of token and error answers: 256 KiB. An Entra token answer is a
/// few KiB (a JWT with many claims stays under 16 KiB); a D365 error with
/// its Infolog is a few KiB; only the first 1 KiB of either is quoted.
pub const MAX_SMALL_ANSWER_BYTES: usize = 256 << 10;

/// How PATCHes are coalesced. Batching trades a little latency (`window`)
/// for far fewer HTTP calls when many orders change at once, which is what
/// counts against D365's service protection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most PATCHes in one `$batch` (D365 allows 5,000 [doc]; small batches
    /// are recommended).
    pub max_operations: usize,
    /// How long the first queued PATCH waits for company before the batch
    /// is sent.
    pub window: Duration,
}

/// D365's limit on operations per `$batch` [doc].
pub const MAX_BATCH_OPERATIONS: usize = 5_000;

impl ConnectionSettings {
    /// Settings with the design's defaults for everything but identity, for
    /// a client secret.
    pub fn new(
        environment_url: Url,
        authority_url: Url,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        let credential = Credential::ClientSecret(client_secret);
        Self::with_credential(
            environment_url,
            authority_url,
            tenant_id,
            client_id,
            credential,
        )
    }

    /// Settings with the design's defaults for everything but identity.
    pub fn with_credential(
        environment_url: Url,
        authority_url: Url,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Self {
        Self {
            environment_url,
            entity_set: "SalesOrderHeadersV2".to_owned(),
            authority_url,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            scope: None,
            max_requests_per_second: 20,
            max_concurrent_requests: 8,
            adaptive_concurrency: false,
            request_timeout: Duration::from_secs(30),
            batch: None,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            writer: Writer::default(),
            destinations: Destinations::default(),
        }
    }

    /// The scope requested from Entra: the explicit one, else
    /// `<environment url lower-case, no trailing slash>/.default`.
    pub fn effective_scope(&self) -> String {
        match &self.scope {
            Some(scope) if !scope.trim().is_empty() => scope.trim().to_owned(),
            _ => format!(
                "{}/.default",
                self.environment_url
                    .as_str()
                    .trim_end_matches('/')
                    .to_lowercase()
            ),
        }
    }

    /// `<environment url>/data/` (trailing slash, so joins append).
    pub fn odata_root(&self) -> Url {
        with_path_suffix(&self.environment_url, "data/")
    }

    /// `<root><entity set>`: where single orders live and collection reads go.
    pub(crate) fn collection_url(&self) -> Result<Url, D365Error> {
        self.odata_root()
            .join(&self.entity_set)
            .map_err(|e| D365Error::config(format!("collection URL: {e}")).caused_by(e))
    }

    /// `<authority>/<tenant>/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> Result<Url, D365Error> {
        const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let tenant = percent_encoding::utf8_percent_encode(self.tenant_id.trim(), UNRESERVED);
        Url::parse(&format!(
            "{}{tenant}/oauth2/v2.0/token",
            with_path_suffix(&self.authority_url, "")
        ))
        .map_err(|e| {
            D365Error::config(format!("token endpoint from authority URL: {e}")).caused_by(e)
        })
    }

    /// Refuses settings that could only fail later, with a message naming
    /// the setting.
    pub fn validate(&self) -> Result<(), D365Error> {
        for (name, url) in [
            ("environment URL", &self.environment_url),
            ("authority URL", &self.authority_url),
        ] {
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(D365Error::config(format!(
                    "{name} must be an http(s) URL with a host, got {url}"
                )));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(D365Error::config(format!(
                    "{name} must not have a query or fragment, got {url}"
                )));
            }
        }
        self.destinations
            .check(&self.environment_url, &self.authority_url)?;
        // The default scope is the environment's by construction.
        if let Some(scope) = self.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            check_scope(&self.environment_url, scope)?;
        }
        if !is_identifier(&self.entity_set) {
            return Err(D365Error::config(format!(
                "entity set must be an OData identifier, got {:?}",
                self.entity_set
            )));
        }
        for (name, value) in [
            ("tenant id", &self.tenant_id),
            ("client id", &self.client_id),
        ] {
            if value.trim().is_empty() {
                return Err(D365Error::config(format!("{name} is empty")));
            }
        }
        if self.max_requests_per_second == 0 || self.max_concurrent_requests == 0 {
            return Err(D365Error::config(
                "max requests per second and max concurrent requests must be at least 1",
            ));
        }
        if self.max_answer_bytes < 1024 {
            return Err(D365Error::config(format!(
                "max answer bytes must be at least 1024, got {}",
                self.max_answer_bytes
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(D365Error::config("request timeout must be positive"));
        }
        if let Some(batch) = &self.batch
            && !(1..=MAX_BATCH_OPERATIONS).contains(&batch.max_operations)
        {
            return Err(D365Error::config(format!(
                "batch max operations must be 1..={MAX_BATCH_OPERATIONS}, got {}",
                batch.max_operations
            )));
        }
        Ok(())
    }
}

/// OData simple identifiers: entity sets and property names in `$select`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `$select` list the client may send: OData property names only.
pub(crate) fn check_select(select: &[&str]) -> Result<(), D365Error> {
    match select.iter().find(|f| !is_identifier(f)) {
        Some(bad) => Err(D365Error::config(format!(
            "$select field {bad:?} is not an OData property name"
        ))),
        None => Ok(()),
    }
}

/// `base` with its path ending in `/` followed by `suffix`, keeping any path
/// prefix (environments behind a path-based proxy).
fn with_path_suffix(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &str) -> ConnectionSettings {
        ConnectionSettings::new(
            Url::parse(env).unwrap(),
            Url::parse("https://login.microsoftonline.com").unwrap(),
            "tenant-1",
            "client-1",
            SecretString::from("s3cret"),
        )
    }

    #[test]
    fn scope_defaults_to_lowercase_environment_without_slash() {
        let table = [
            (
                "https://Contoso.Operations.Dynamics.com/",
                "https://contoso.operations.dynamics.com/.default",
            ),
            (
                "https://contoso.operations.dynamics.com",
                "https://contoso.operations.dynamics.com/.default",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/.default"),
            (
                "https://proxy.example/D365/",
                "https://proxy.example/d365/.default",
            ),
        ];
        for (env, want) in table {
            assert_eq!(settings(env).effective_scope(), want, "{env}");
        }
        let mut s = settings("https://x.example");
        s.scope = Some(" https://X.example/.default ".into());
        assert_eq!(s.effective_scope(), "https://X.example/.default");
        s.scope = Some(String::new());
        assert_eq!(s.effective_scope(), "https://x.example/.default");
    }

    #[test]
    fn endpoints() {
        let s = settings("https://contoso.operations.dynamics.com");
        assert_eq!(
            s.odata_root().as_str(),
            "https://contoso.operations.dynamics.com/data/"
        );
        assert_eq!(
            s.token_endpoint().unwrap().as_str(),
            "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
        );
        let mut s = settings("http://127.0.0.1:9000/prefix/");
        s.authority_url = Url::parse("http://127.0.0.1:9000/auth/").unwrap();
        assert_eq!(
            s.odata_root().as_str(),
            "http://127.0.0.1:9000/prefix/data/"
        );
        assert_eq!(
            s.token_endpoint().unwrap().as_str(),
            "http://127.0.0.1:9000/auth/tenant-1/oauth2/v2.0/token"
        );
    }

    #[test]
    fn validation() {
        assert!(settings("https://x.example").validate().is_ok());
        let bad: [fn(&mut ConnectionSettings); 11] = [
            |s| s.scope = Some("https://victim.example/.default".into()),
            |s| s.max_answer_bytes = 1023,
            |s| s.environment_url = Url::parse("ftp://x.example").unwrap(),
            |s| s.environment_url = Url::parse("https://x.example/?a=1").unwrap(),
            |s| s.entity_set = "Sales Orders".into(),
            |s| s.tenant_id = " ".into(),
            |s| s.max_requests_per_second = 0,
            |s| s.max_concurrent_requests = 0,
            |s| s.request_timeout = Duration::ZERO,
            |s| {
                s.batch = Some(BatchSettings {
                    max_operations: 0,
                    window: Duration::ZERO,
                })
            },
            |s| {
                s.batch = Some(BatchSettings {
                    max_operations: 5_001,
                    window: Duration::from_millis(20),
                })
            },
        ];
        for (i, breakit) in bad.iter().enumerate() {
            let mut s = settings("https://x.example");
            breakit(&mut s);
            assert!(
                matches!(s.validate(), Err(D365Error::Config { .. })),
                "case {i}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", settings("https://x.example"));
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn user_agent_names_the_replica_in_a_safe_comment() {
        let version = env!("CARGO_PKG_VERSION");
        let agent = |replica: Option<&str>| {
            Writer {
                replica: replica.map(str::to_owned),
                ..Writer::default()
            }
            .user_agent()
        };
        assert_eq!(agent(None), format!("sales-order-operator/{version}"));
        assert_eq!(
            agent(Some("operator-7f9c-x2")),
            format!("sales-order-operator/{version} (operator-7f9c-x2)")
        );
        // Parentheses and control characters would break the header.
        assert_eq!(
            agent(Some("a)\r\nb (c")),
            format!("sales-order-operator/{version} (abc)")
        );
        assert_eq!(agent(Some("\n")), format!("sales-order-operator/{version}"));
        let value = agent(Some(&"é".repeat(50)));
        assert!(reqwest::header::HeaderValue::from_str(&value).is_ok());
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("SalesOrderHeadersV2"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a,b"));
        assert!(!is_identifier("a/b"));
    }
}
