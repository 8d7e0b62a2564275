//! OpenTelemetry traces over OTLP/HTTP protobuf, on only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (see docs/operations.md "Traces"). The protocol and timeout are
//! checked and read here; the exporter reads the endpoints and headers
//! itself, the batch
//! processor reads `OTEL_BSP_*`, the resource `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES`.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The variables that turn export on; unset or empty leaves it off.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The collector's answer is a small protobuf; anything larger is refused.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The protocol variables, the signal's first; only `http/protobuf` is
/// built in.
const PROTOCOL_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

/// The timeout variables (milliseconds), the signal's first.
const TIMEOUT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
];

/// The standard's default export timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why traces could not be set up (a bad `OTEL_*` setting).
#[derive(Debug, thiserror::Error)]
#[error("setting up the OTLP trace exporter (OTEL_EXPORTER_OTLP_* variables)")]
pub struct TracesError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// The first of `vars` that is set and not empty.
fn first_set(lookup: &impl Fn(&str) -> Option<String>, vars: &[&str]) -> Option<String> {
    vars.iter()
        .filter_map(|var| lookup(var))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

/// Refuses a protocol other than `http/protobuf`: the exporter would
/// otherwise fall back to it silently and post protobuf to, say, a gRPC
/// port.
pub(crate) fn check_protocol(lookup: impl Fn(&str) -> Option<String>) -> Result<(), TracesError> {
    match first_set(&lookup, &PROTOCOL_VARS) {
        Some(p) if !p.eq_ignore_ascii_case("http/protobuf") => Err(TracesError(
            format!("OTLP protocol {p:?} is not supported; use http/protobuf").into(),
        )),
        _ => Ok(()),
    }
}

/// The export timeout: the signal's variable, the general one, or 10 s.
pub(crate) fn timeout(lookup: impl Fn(&str) -> Option<String>) -> Result<Duration, TracesError> {
    let Some(ms) = first_set(&lookup, &TIMEOUT_VARS) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    ms.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| TracesError(format!("OTLP timeout {ms:?} (milliseconds): {e}").into()))
}

/// Whether `lookup` (the environment) names an OTLP endpoint.
pub(crate) fn enabled(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ENDPOINT_VARS
        .iter()
        .any(|var| lookup(var).is_some_and(|v| !v.trim().is_empty()))
}

/// The provider and its tracer; `None` when no endpoint is set. Needs a
/// Tokio runtime: the exports run on it.
pub(crate) fn provider_from_env() -> Result<Option<(SdkTracerProvider, SdkTracer)>, TracesError> {
    let env = |var: &str| std::env::var(var).ok();
    if !enabled(env) {
        return Ok(None);
    }
    check_protocol(env)?;
    let http = reqwest::Client::builder()
        .timeout(timeout(env)?)
        .build()
        .map_err(|e| TracesError(Box::new(e)))?;
    let client = OnTokio {
        http,
        runtime: tokio::runtime::Handle::try_current().map_err(|e| TracesError(Box::new(e)))?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map_err(|e| TracesError(Box::new(e)))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("sales-order-operator");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("sales-order-operator");
    Ok(Some((provider, tracer)))
}

/// The project's reqwest client, run on the operator's Tokio runtime: the
/// SDK's batch processor exports from its own thread, outside any runtime.
#[derive(Debug)]
struct OnTokio {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnTokio {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        self.runtime
            .spawn(async move { exchange(http, request).await })
            .await?
    }
}

/// One export: the answer's status, headers and (bounded) body.
async fn exchange(
    http: reqwest::Client,
    request: reqwest::Request,
) -> Result<Response<Bytes>, HttpError> {
    let mut response = http.execute(request).await?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("OTLP collector answer larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = Response::builder().status(status).body(Bytes::from(body))?;
    *answer.headers_mut() = headers;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_on_only_with_an_endpoint() {
        assert!(!enabled(|_| None));
        assert!(!enabled(|_| Some("  ".to_owned())));
        assert!(!enabled(|var| {
            (var == "OTEL_SERVICE_NAME").then(|| "operator".to_owned())
        }));
        assert!(enabled(|var| {
            (var == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://collector:4318".to_owned())
        }));
        assert!(enabled(|var| {
            (var == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .then(|| "http://collector:4318/v1/traces".to_owned())
        }));
    }

    fn only(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |var| (var == name).then(|| value.to_owned())
    }

    #[test]
    fn only_http_protobuf_is_accepted() {
        assert!(check_protocol(|_| None).is_ok());
        assert!(check_protocol(only("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")).is_ok());
        assert!(check_protocol(only("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")).is_err());
        assert!(check_protocol(only("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")).is_err());
        // The signal's variable wins over the general one.
        let both = |var: &str| match var {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => Some("http/protobuf".to_owned()),
            _ => Some("grpc".to_owned()),
        };
        assert!(check_protocol(both).is_ok());
    }

    #[test]
    fn timeout_is_read_in_milliseconds() {
        assert_eq!(timeout(|_| None).unwrap(), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout(only("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")).unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(
            timeout(only("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100")).unwrap(),
            Duration::from_millis(100)
        );
        assert!(timeout(only("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")).is_err());
    }
}
