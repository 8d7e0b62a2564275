//! `d365-emulator`: runs the emulator until Ctrl-C / SIGTERM. Prints one
//! line `d365-emulator listening on http://...` to stdout when ready; logs
//! go to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use d365_emulator::{
    CapacityModel, Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_FEDERATED_AUDIENCE,
    DEFAULT_TENANT, Emulator, Faults, FederatedCredential, Profile, RegisteredCertificate,
};

/// Emulator of the Dynamics 365 F&O OData API (SalesOrderHeadersV2).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "D365_EMULATOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Start from a named set of switches: `strict` turns every [unverified]
    /// behaviour to the side hardest on a client (emulator/README.md), over
    /// the flags for those behaviours.
    #[arg(long, env = "D365_EMULATOR_PROFILE", default_value = "default", value_parser = parse_profile)]
    profile: Profile,
    /// Environment URL clients use, if not http://<listen> (e.g. a Service URL).
    #[arg(long, env = "D365_EMULATOR_PUBLIC_URL")]
    public_url: Option<String>,
    /// JSON array of entities with D365 field names.
    #[arg(long, env = "D365_EMULATOR_ORDERS")]
    orders: Option<PathBuf>,
    /// Also generate N orders SO-2025-0001.. in usmf.
    #[arg(long, env = "D365_EMULATOR_GENERATE", default_value_t = 0)]
    generate: usize,
    #[arg(long, env = "D365_EMULATOR_TENANT", default_value = DEFAULT_TENANT)]
    tenant: String,
    #[arg(long, env = "D365_EMULATOR_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Test value, not a secret.
    #[arg(long, env = "D365_EMULATOR_CLIENT_SECRET", default_value = DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    #[arg(long, env = "D365_EMULATOR_DEFAULT_COMPANY", default_value = "usmf")]
    default_company: String,
    /// Token lifetime in seconds.
    #[arg(long, env = "D365_EMULATOR_TOKEN_TTL", default_value_t = 3600)]
    token_ttl: u64,
    /// Server-driven page size.
    #[arg(long, env = "D365_EMULATOR_PAGE_SIZE", default_value_t = 10_000)]
    page_size: usize,
    /// Stale If-Match status: 412 or 409.
    #[arg(long, env = "D365_EMULATOR_CONFLICT_STATUS", default_value_t = 412)]
    conflict_status: u16,
    /// PATCH without If-Match is refused (428, or --missing-if-match-status).
    #[arg(long, env = "D365_EMULATOR_REQUIRE_IF_MATCH")]
    require_if_match: bool,
    #[arg(
        long,
        env = "D365_EMULATOR_MISSING_IF_MATCH_STATUS",
        default_value_t = 428
    )]
    missing_if_match_status: u16,
    /// Successful PATCH answers 200 + entity instead of 204.
    #[arg(long, env = "D365_EMULATOR_PATCH_RETURNS_ENTITY")]
    patch_returns_entity: bool,
    /// ETag header on PATCH answers.
    #[arg(long, env = "D365_EMULATOR_PATCH_ETAG_HEADER")]
    patch_etag_header: bool,
    /// No ETag header on GET answers (body @odata.etag only).
    #[arg(long, env = "D365_EMULATOR_NO_GET_ETAG_HEADER")]
    no_get_etag_header: bool,
    #[arg(long, env = "D365_EMULATOR_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, env = "D365_EMULATOR_LATENCY_JITTER_MS", default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Extra delay of the first /data request (slow first call after an AOS restart).
    #[arg(long, env = "D365_EMULATOR_COLD_START_MS", default_value_t = 0)]
    cold_start_ms: u64,
    /// Probability a concurrent writer changes the order just before a PATCH.
    #[arg(long, env = "D365_EMULATOR_CONFLICT_RATE", default_value_t = 0.0)]
    conflict_rate: f64,
    /// Probability of an injected 500/503.
    #[arg(long, env = "D365_EMULATOR_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, env = "D365_EMULATOR_ERROR_STATUS", default_value_t = 500)]
    error_status: u16,
    /// Probability the answer is held back --hang-ms.
    #[arg(long, env = "D365_EMULATOR_HANG_RATE", default_value_t = 0.0)]
    hang_rate: f64,
    #[arg(long, env = "D365_EMULATOR_HANG_MS", default_value_t = 60_000)]
    hang_ms: u64,
    #[arg(long, env = "D365_EMULATOR_MAX_RPS")]
    max_rps: Option<u32>,
    #[arg(long, env = "D365_EMULATOR_MAX_CONCURRENT")]
    max_concurrent: Option<u32>,
    /// Answer every /data request 429 with this Retry-After (seconds):
    /// resource-based throttling.
    #[arg(long, env = "D365_EMULATOR_THROTTLE_RETRY_AFTER")]
    throttle_retry_after: Option<u64>,
    /// Companies whose orders cannot be written (403), comma-separated.
    #[arg(long, env = "D365_EMULATOR_READ_ONLY_COMPANIES", value_delimiter = ',')]
    read_only_companies: Vec<String>,
    /// Refuse writes in read-only companies with 409 instead of 403 (field report).
    #[arg(long, env = "D365_EMULATOR_FORBIDDEN_AS_CONFLICT")]
    forbidden_as_conflict: bool,
    /// Statuses an order cannot leave (500), comma-separated.
    #[arg(
        long,
        env = "D365_EMULATOR_FINAL_STATUSES",
        value_delimiter = ',',
        default_value = "Invoiced,Canceled"
    )]
    final_statuses: Vec<String>,
    /// Answer every /data request with this 3xx and a Location (see --redirect-to).
    #[arg(long, env = "D365_EMULATOR_REDIRECT_STATUS")]
    redirect_status: Option<u16>,
    /// Base URL the redirect's Location points at (path and query appended).
    #[arg(long, env = "D365_EMULATOR_REDIRECT_TO", default_value = "")]
    redirect_to: String,
    /// Accept PATCHes of this entity field (204) without applying it; repeatable.
    #[arg(
        long = "ignore-writes",
        value_name = "FIELD",
        env = "D365_EMULATOR_IGNORE_WRITES",
        value_delimiter = ','
    )]
    ignore_writes: Vec<String>,
    /// Quote the request's Authorization header in every /data error answer.
    #[arg(long, env = "D365_EMULATOR_ECHO_TOKEN_IN_ERRORS")]
    echo_token_in_errors: bool,
    /// Pad successful JSON /data GET answers with this many streamed bytes.
    #[arg(long, env = "D365_EMULATOR_ANSWER_PADDING_BYTES")]
    answer_padding_bytes: Option<u64>,
    /// Match order numbers in URLs case-sensitively (default: as F&O's
    /// collation, `so-1` finds `SO-1`).
    #[arg(long, env = "D365_EMULATOR_CASE_SENSITIVE_ORDER_NUMBERS")]
    case_sensitive_order_numbers: bool,
    /// Status of business-validation failures: 400 (current releases) or
    /// 500 (older ones).
    #[arg(long, env = "D365_EMULATOR_VALIDATION_STATUS", default_value_t = 400,
          value_parser = parse_validation_status)]
    validation_status: u16,
    /// Ignore `Prefer: odata.continue-on-error` in $batch: stop at the
    /// first failed changeset anyway.
    #[arg(long, env = "D365_EMULATOR_IGNORE_CONTINUE_ON_ERROR")]
    ignore_continue_on_error: bool,
    /// Ignore `Prefer: return=representation` on a PATCH: answer 204
    /// without the entity anyway.
    #[arg(long, env = "D365_EMULATOR_IGNORE_RETURN_REPRESENTATION")]
    ignore_return_representation: bool,
    /// Entity fields that are not editable (AllowEdit false in $metadata,
    /// PATCH refused 400), comma-separated, e.g. SalesOrderStatus.
    #[arg(
        long = "read-only-fields",
        value_name = "FIELD",
        env = "D365_EMULATOR_READ_ONLY_FIELDS",
        value_delimiter = ','
    )]
    read_only_fields: Vec<String>,
    /// Date fields typed Edm.Date instead of Edm.DateTimeOffset, comma-separated.
    #[arg(
        long = "date-only-fields",
        value_name = "FIELD",
        env = "D365_EMULATOR_DATE_ONLY_FIELDS",
        value_delimiter = ','
    )]
    date_only_fields: Vec<String>,
    /// MiB of other entity types in $metadata, to make it F&O-sized.
    #[arg(long, env = "D365_EMULATOR_METADATA_PADDING_MB", default_value_t = 0)]
    metadata_padding_mb: u64,
    /// Capacity model: this many requests served in parallel at
    /// --capacity-base-latency-ms; more in flight are slower, and past
    /// --capacity-throttle-in-flight they get 429 (resource-based throttling).
    #[arg(long, env = "D365_EMULATOR_CAPACITY_CONCURRENT")]
    capacity_concurrent: Option<u32>,
    #[arg(
        long,
        env = "D365_EMULATOR_CAPACITY_BASE_LATENCY_MS",
        default_value_t = 20
    )]
    capacity_base_latency_ms: u64,
    /// Default: twice --capacity-concurrent.
    #[arg(long, env = "D365_EMULATOR_CAPACITY_THROTTLE_IN_FLIGHT")]
    capacity_throttle_in_flight: Option<u32>,
    #[arg(long, env = "D365_EMULATOR_CAPACITY_RETRY_AFTER", default_value_t = 1)]
    capacity_retry_after: u64,
    /// Federated identity credential (workload identity), repeatable:
    /// client_id=…,issuer=…,subject=…[,audience=…] (audience defaults to
    /// api://AzureADTokenExchange). The env variable separates several with ';'.
    #[arg(
        long = "federated-credential",
        value_name = "SPEC",
        env = "D365_EMULATOR_FEDERATED_CREDENTIALS",
        value_delimiter = ';',
        value_parser = parse_federated
    )]
    federated_credentials: Vec<FederatedCredential>,
    /// Certificate credential, repeatable: <client_id>=<path to PEM
    /// certificate>. The env variable separates several with ';'.
    #[arg(
        long = "client-certificate",
        value_name = "CLIENT_ID=PEM",
        env = "D365_EMULATOR_CLIENT_CERTIFICATES",
        value_delimiter = ';',
        value_parser = parse_client_certificate
    )]
    client_certificates: Vec<(String, PathBuf)>,
    /// Extra trusted root CA (PEM) for federated issuers' discovery/JWKS.
    #[arg(long, env = "D365_EMULATOR_OIDC_CA_FILE")]
    oidc_ca_file: Option<PathBuf>,
    /// Seed of fault injection and order generation.
    #[arg(long, env = "D365_EMULATOR_SEED", default_value_t = 0)]
    seed: u64,
}

impl Cli {
    fn config(self) -> anyhow::Result<Config> {
        let orders = match &self.orders {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str::<Vec<serde_json::Value>>(&text).with_context(|| {
                    format!("{} must be a JSON array of entities", path.display())
                })?
            }
            None => Vec::new(),
        };
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        };
        let client_certificates = self
            .client_certificates
            .iter()
            .map(|(client_id, path)| {
                Ok(RegisteredCertificate {
                    client_id: client_id.clone(),
                    certificate_pem: read(path)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let oidc_ca_pem = self.oidc_ca_file.as_ref().map(read).transpose()?;
        Ok(Config {
            federated_credentials: self.federated_credentials,
            client_certificates,
            oidc_ca_pem,
            listen: self.listen,
            public_url: self.public_url,
            tenant: self.tenant,
            client_id: self.client_id,
            client_secret: self.client_secret,
            default_company: self.default_company.to_lowercase(),
            token_ttl: Duration::from_secs(self.token_ttl),
            page_size: self.page_size,
            seed: self.seed,
            orders,
            generate: self.generate,
            faults: Faults {
                latency_ms: self.latency_ms,
                latency_jitter_ms: self.latency_jitter_ms,
                cold_start_ms: self.cold_start_ms,
                conflict_rate: self.conflict_rate,
                conflict_status: self.conflict_status,
                require_if_match: self.require_if_match,
                missing_if_match_status: self.missing_if_match_status,
                patch_returns_entity: self.patch_returns_entity,
                patch_etag_header: self.patch_etag_header,
                get_etag_header: !self.no_get_etag_header,
                error_rate: self.error_rate,
                error_status: self.error_status,
                hang_rate: self.hang_rate,
                hang_ms: self.hang_ms,
                max_rps: self.max_rps,
                max_concurrent: self.max_concurrent,
                throttle_retry_after: self.throttle_retry_after,
                read_only_companies: self.read_only_companies,
                forbidden_as_conflict: self.forbidden_as_conflict,
                final_statuses: self.final_statuses,
                redirect_status: self.redirect_status,
                redirect_to: self.redirect_to,
                ignore_writes: self.ignore_writes,
                echo_token_in_errors: self.echo_token_in_errors,
                answer_padding_bytes: self.answer_padding_bytes,
                case_sensitive_order_numbers: self.case_sensitive_order_numbers,
                validation_status: self.validation_status,
                honour_continue_on_error: !self.ignore_continue_on_error,
                honour_return_representation: !self.ignore_return_representation,
                read_only_fields: self.read_only_fields,
                date_only_fields: self.date_only_fields,
                metadata_padding_mb: self.metadata_padding_mb,
                capacity: self.capacity_concurrent.map(|concurrent| CapacityModel {
                    concurrent,
                    base_latency_ms: self.capacity_base_latency_ms,
                    throttle_in_flight: self
                        .capacity_throttle_in_flight
                        .unwrap_or(concurrent.saturating_mul(2)),
                    retry_after_secs: self.capacity_retry_after,
                }),
            },
        })
    }
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    match name {
        "default" => Ok(Profile::Default),
        "strict" => Ok(Profile::Strict),
        other => Err(format!("unknown profile {other:?}: default or strict")),
    }
}

/// `client_id=…,issuer=…,subject=…[,audience=…]`.
fn parse_federated(spec: &str) -> Result<FederatedCredential, String> {
    let mut f = FederatedCredential {
        client_id: String::new(),
        issuer: String::new(),
        subject: String::new(),
        audience: DEFAULT_FEDERATED_AUDIENCE.to_string(),
    };
    for pair in spec.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not key=value"))?;
        let slot = match k.trim() {
            "client_id" => &mut f.client_id,
            "issuer" => &mut f.issuer,
            "subject" => &mut f.subject,
            "audience" => &mut f.audience,
            other => return Err(format!("unknown key '{other}'")),
        };
        *slot = v.trim().to_string();
    }
    if f.client_id.is_empty() || f.issuer.is_empty() || f.subject.is_empty() {
        return Err("client_id, issuer and subject are required".into());
    }
    Ok(f)
}

/// `400` or `500`.
fn parse_validation_status(raw: &str) -> Result<u16, String> {
    match raw.trim() {
        "400" => Ok(400),
        "500" => Ok(500),
        other => Err(format!("'{other}' is neither 400 nor 500")),
    }
}

/// `<client_id>=<path>`.
fn parse_client_certificate(spec: &str) -> Result<(String, PathBuf), String> {
    match spec.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => {
            Ok((id.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("'{spec}' is not <client_id>=<path to PEM>")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let profile = cli.profile;
    let mut config = cli.config()?;
    config.faults = profile.apply(config.faults);
    let n = config.orders.len() + config.generate;
    let emulator = Emulator::start(config).await?;
    tracing::info!(orders = n, "emulator started");
    println!("d365-emulator listening on {}", emulator.url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
