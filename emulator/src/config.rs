//! Emulator configuration and the run-time switchable fault settings.
//!
//! Every switch names the fact-sheet class of the behaviour it selects
//! (see `../shared/d365-odata.md`): [doc], [obs], [spec], [unverified].

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tenant id the emulator's token endpoint accepts by default (a test value).
pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000000";
/// Client id the emulator accepts by default (a test value).
pub const DEFAULT_CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
/// Client secret the emulator accepts by default: a published, non-secret test value.
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-secret";

/// Static settings of one emulator instance; faults can change at run time.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Environment URL clients use, when not the bound address (e.g. a
    /// cluster Service); sets the expected token scope and link bases.
    pub public_url: Option<String>,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// Company visible without `cross-company=true` [doc].
    pub default_company: String,
    /// `expires_in` of issued tokens [doc: typically 60–90 min].
    pub token_ttl: Duration,
    /// Server-driven page size [doc: up to 10,000].
    pub page_size: usize,
    /// Seed of the fault-injection RNG, so runs are reproducible.
    pub seed: u64,
    pub faults: Faults,
    /// Initial orders (D365 field names); `reset` returns to these.
    pub orders: Vec<serde_json::Value>,
    /// Also generate this many orders (`generate_orders(generate, seed)`)
    /// straight into the store: cheaper than passing them in `orders`.
    pub generate: usize,
    /// Federated identity credentials (workload identity) [doc]: a client
    /// may present a token of these issuers instead of a secret.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Certificates registered on app registrations [doc]: a client may
    /// present an assertion signed with the matching key.
    pub client_certificates: Vec<RegisteredCertificate>,
    /// Extra trusted root (PEM) for issuers' discovery and JWKS fetches,
    /// e.g. the test control plane's private CA.
    pub oidc_ca_pem: Option<String>,
}

/// Default audience of a federated credential [doc].
pub const DEFAULT_FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A federated identity credential of an app registration [doc]: a token
/// whose `iss` and `sub` equal these and whose `aud` contains `audience`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedCredential {
    pub client_id: String,
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

/// A certificate credential of an app registration [doc]: its public key
/// verifies the client's assertions (RSA only, as Entra).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredCertificate {
    pub client_id: String,
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    pub certificate_pem: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            tenant: DEFAULT_TENANT.to_string(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
            default_company: "usmf".to_string(),
            token_ttl: Duration::from_secs(3600),
            page_size: 10_000,
            seed: 0,
            faults: Faults::default(),
            orders: Vec::new(),
            generate: 0,
            federated_credentials: Vec::new(),
            client_certificates: Vec::new(),
            oidc_ca_pem: None,
        }
    }
}

/// Behaviour switches and injected faults; readable and writable at run time
/// through `Emulator::set_faults` and `PUT /_emulator/faults`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Fixed delay before each `/data` request is handled.
    pub latency_ms: u64,
    /// Extra uniform random delay in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Extra delay of the first `/data` request after start or reset: "the
    /// first call after an AOS restart is slow" [doc].
    pub cold_start_ms: u64,
    /// Probability that a simulated concurrent writer edits an unmanaged
    /// field (and so the ETag) just before a client PATCH is evaluated
    /// [field report: ~40% of updates conflicted].
    pub conflict_rate: f64,
    /// Status for a stale `If-Match`: 412 [spec] or 409 [field report].
    pub conflict_status: u16,
    /// PATCH without `If-Match` is refused; default false = 204 overwrite [obs].
    pub require_if_match: bool,
    /// Status when `If-Match` is required and missing: 428 [spec] or 409.
    pub missing_if_match_status: u16,
    /// Successful PATCH answers 200 + entity instead of 204 [spec: third-party servers].
    pub patch_returns_entity: bool,
    /// `ETag` header on a PATCH answer [unverified].
    pub patch_etag_header: bool,
    /// `ETag` header on a single-entity GET [unverified].
    pub get_etag_header: bool,
    /// Probability of an injected server error before handling.
    pub error_rate: f64,
    /// Status of injected errors: 500 or 503.
    pub error_status: u16,
    /// Probability that the answer is held back `hang_ms` after handling.
    pub hang_rate: f64,
    pub hang_ms: u64,
    /// Service protection [doc]: requests per second before 429.
    pub max_rps: Option<u32>,
    /// Service protection [doc]: concurrent requests before 429.
    pub max_concurrent: Option<u32>,
    /// Resource-based throttling [doc]: while set, every `/data` request
    /// answers 429 with `Retry-After` of this many seconds, however lightly
    /// the client pushes (the environment itself is overloaded).
    pub throttle_retry_after: Option<u64>,
    /// Companies the app user may read but not write: PATCH → 403.
    pub read_only_companies: Vec<String>,
    /// [field report] answer those refused writes with 409 "The record has
    /// been modified by another user." instead of 403, ETag unchanged.
    pub forbidden_as_conflict: bool,
    /// Statuses an order cannot leave: PATCH → 500 AxODataWriteException [obs].
    pub final_statuses: Vec<String>,
    /// Answer every `/data` request with this 3xx (before auth, as a front
    /// door would) and a `Location` of `redirect_to` + the request's path
    /// and query. A 3xx is [spec] (RFC 9110 §15.4); D365 redirecting
    /// `/data` (a moved environment, a proxy sending http to https) is
    /// [unverified]. `None` (or a status outside 300..=399): off.
    pub redirect_status: Option<u16>,
    /// Base of the `Location` a redirect names; empty: a relative one.
    pub redirect_to: String,
    /// Entity fields a PATCH may send but that are never applied: the
    /// PATCH is still accepted (204, or 200 with the unchanged values), and
    /// the ETag moves only if some other field was applied. [unverified]:
    /// nobody has shown D365 dropping a write it accepted (business logic
    /// resetting a value would look like this); the operator must not call
    /// such a write Updated.
    pub ignore_writes: Vec<String>,
    /// Every `/data` error answer (4xx/5xx) quotes the request's
    /// `Authorization` header, bearer token and all, in its message (an
    /// error without an OData body gets one). [unverified]: some gateways
    /// and proxies echo request headers in their errors; nobody has shown
    /// D365 doing it. The operator must redact the token wherever it
    /// repeats D365's words.
    pub echo_token_in_errors: bool,
    /// Successful JSON `/data` GET answers carry this many bytes of
    /// whitespace (after the opening `{`, so the JSON stays valid), streamed
    /// without `Content-Length` and never allocated: a 1 GiB answer costs the
    /// emulator nothing. [unverified]: a broken or hostile endpoint; the
    /// operator must refuse it unread past its answer limit.
    pub answer_padding_bytes: Option<u64>,
    /// Order numbers in URLs match only when spelled exactly. Default
    /// false: F&O's SQL collation compares string keys case-insensitively,
    /// so `so-1` finds `SO-1` [unverified, likely]. Either way the table
    /// holds one order per case-insensitive key, as F&O's unique index does.
    pub case_sensitive_order_numbers: bool,
    /// Status of a business-validation failure (leaving a final status):
    /// 400 as current releases answer, or 500 as older ones do; both with
    /// `AxODataWriteException` and "Write failed for table row … Infolog:"
    /// [obs]. Anything else falls back to 400.
    pub validation_status: u16,
    /// `$batch` with `Prefer: odata.continue-on-error` goes on past a
    /// failed changeset and answers `Preference-Applied` [spec]; without
    /// the header it stops at the first failure [obs][spec]. Whether F&O
    /// honours the preference is [unverified]: false ignores it.
    pub honour_continue_on_error: bool,
    /// A PATCH (alone or in a `$batch`) with `Prefer:
    /// return=representation` answers 200 with the entity and
    /// `Preference-Applied` [spec]; whether F&O honours the preference is
    /// [unverified]: false ignores it and answers 204 as without it [obs].
    pub honour_return_representation: bool,
    /// Entity fields that are not editable: `$metadata` annotates them
    /// `Microsoft.Dynamics.OData.Core.V1.AllowEdit` false [obs: third-party
    /// F&O code generators], and a PATCH of one is refused 400 with a write
    /// exception, D365's answer to a write its validation refuses [obs];
    /// the message text is [unverified]. Whether `SalesOrderStatus` is one
    /// of them in a real environment is [unverified] (it leans to yes).
    pub read_only_fields: Vec<String>,
    /// Date fields typed `Edm.Date` instead of F&O's `Edm.DateTimeOffset`
    /// [obs], as a third-party OData v4 server types them [spec]: answers
    /// show `2025-02-08`, a PATCH must send that form, and a
    /// DateTimeOffset is refused 400 ("Value … is not a valid Date").
    pub date_only_fields: Vec<String>,
    /// `$metadata` carries this many MiB of other entity types before the
    /// order type and the entity container, as F&O's tens of MB do [obs];
    /// streamed, never held whole. 0: the small document.
    pub metadata_padding_mb: u64,
    /// Resource-based throttling under load (see [`CapacityModel`]);
    /// `None`: off.
    pub capacity: Option<CapacityModel>,
}

/// An environment with finite capacity. Resource-based throttling, a 429
/// with `Retry-After` and "…due to system experiencing high resource
/// utilization", when the environment is overloaded, is [doc]; how latency
/// grows with load and where the 429s begin is [unverified]: a model (a
/// server of `concurrent` parallel workers) so a client's adaptive limiter
/// has something to find. With `n` `/data` requests in flight (this one
/// included) a request takes `base_latency_ms × max(1, n / concurrent)`;
/// with more than `throttle_in_flight` it gets the 429. Throughput is at
/// most `concurrent / base_latency` requests per second, reached at any
/// load from `concurrent` to `throttle_in_flight`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityModel {
    /// Requests served in parallel at the base latency.
    pub concurrent: u32,
    /// Latency of a request while the load is within `concurrent`.
    pub base_latency_ms: u64,
    /// Most requests in flight before the 429 (at least `concurrent`).
    pub throttle_in_flight: u32,
    /// `Retry-After` of that 429, in seconds.
    pub retry_after_secs: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            latency_jitter_ms: 0,
            cold_start_ms: 0,
            conflict_rate: 0.0,
            conflict_status: 412,
            require_if_match: false,
            missing_if_match_status: 428,
            patch_returns_entity: false,
            patch_etag_header: false,
            get_etag_header: true,
            error_rate: 0.0,
            error_status: 500,
            hang_rate: 0.0,
            hang_ms: 60_000,
            max_rps: None,
            max_concurrent: None,
            throttle_retry_after: None,
            read_only_companies: Vec::new(),
            forbidden_as_conflict: false,
            final_statuses: vec!["Invoiced".to_string(), "Canceled".to_string()],
            redirect_status: None,
            redirect_to: String::new(),
            ignore_writes: Vec::new(),
            echo_token_in_errors: false,
            answer_padding_bytes: None,
            case_sensitive_order_numbers: false,
            validation_status: 400,
            honour_continue_on_error: true,
            honour_return_representation: true,
            read_only_fields: Vec::new(),
            date_only_fields: Vec::new(),
            metadata_padding_mb: 0,
            capacity: None,
        }
    }
}

impl Faults {
    /// Stale-ETag status, falling back to 412 when unset or out of range.
    pub(crate) fn conflict_status(&self) -> u16 {
        match self.conflict_status {
            409 => 409,
            _ => 412,
        }
    }

    /// Missing-`If-Match` status, falling back to 428.
    pub(crate) fn missing_if_match_status(&self) -> u16 {
        match self.missing_if_match_status {
            409 => 409,
            _ => 428,
        }
    }

    /// The redirect to answer `/data` with, if one is switched on: a 3xx
    /// status, else none.
    pub(crate) fn redirect_status(&self) -> Option<u16> {
        self.redirect_status.filter(|s| (300..=399).contains(s))
    }

    /// Whether a PATCH of `field` is accepted without being applied.
    pub(crate) fn ignores(&self, field: &str) -> bool {
        self.ignore_writes.iter().any(|f| f == field)
    }

    /// Business-validation status: 500 when asked, else 400.
    pub(crate) fn validation_status(&self) -> u16 {
        match self.validation_status {
            500 => 500,
            _ => 400,
        }
    }

    /// Whether `field` may not be written (`readOnlyFields`).
    pub(crate) fn is_read_only(&self, field: &str) -> bool {
        self.read_only_fields.iter().any(|f| f == field)
    }

    /// Whether `field` is typed `Edm.Date` (`dateOnlyFields`).
    pub(crate) fn is_date_only(&self, field: &str) -> bool {
        self.date_only_fields.iter().any(|f| f == field)
    }

    /// Injected error status, falling back to 500.
    pub(crate) fn error_status(&self) -> u16 {
        match self.error_status {
            503 => 503,
            s if (500..600).contains(&s) => s,
            _ => 500,
        }
    }
}
