//! OpenTelemetry traces (docs/operations.md "Traces"): the operator run
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` sends OTLP/HTTP protobuf to a real
//! receiver here, decoded with the generated OTLP types; without it,
//! nothing reaches the default OTLP port.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use d365_emulator::Faults;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use sales_order_operator::api::{BatchSpec, D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::Placed;

use crate::support::{Env, Operator, create_connection, create_orders, env, wait_reason};

/// Every span received, in arrival order, with its resource's
/// `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver on loopback: `POST /v1/traces`, protobuf.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(accept))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn accept(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut received = received.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let spans = resource.scope_spans.into_iter().flat_map(|s| s.spans);
        received.extend(spans.map(|span| (service.clone(), span)));
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

fn operator(env: &Env, vars: &[(&str, &str)]) -> Operator {
    Operator::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_sales-order-operator")),
        env.cp.kubeconfig(),
        &env.ns,
        &[],
        "info,sales_order_operator=debug",
        vars,
    )
}

/// A string or integer attribute, as text.
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?;
    match value.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn is_request(span: &Span, method: &str, number: &str) -> bool {
    attr(span, "method").as_deref() == Some(method)
        && attr(span, "key").is_some_and(|k| k.contains(number))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_order_is_one_trace_of_reconcile_d365_requests_and_status_write() {
    let env = env("traces", 1, Faults::default()).await;
    create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let (url, received) = receiver().await;
    let mut operator = operator(
        &env,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_SERVICE_NAME", "operator-under-test"),
        ],
    );
    let order = wait_reason(&env, "so-2025-0001", "Updated").await;
    let number = order.spec.sales_order_number.clone();
    // The graceful stop flushes what the batch processor still holds.
    assert!(operator.terminate(), "the operator stops cleanly");

    let received = received.lock().unwrap().clone();
    assert!(
        received
            .iter()
            .all(|(service, _)| service == "operator-under-test")
    );
    let spans: Vec<Span> = received.into_iter().map(|(_, span)| span).collect();
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    let patch = spans
        .iter()
        .find(|s| is_request(s, "PATCH", &number))
        .unwrap_or_else(|| panic!("no PATCH span for {number} among {spans:#?}"));
    let reconcile = by_id
        .get(&patch.parent_span_id[..])
        .expect("the PATCH span's parent was exported");
    assert_eq!(reconcile.name, "reconciling object", "{reconcile:#?}");
    assert_eq!(reconcile.trace_id, patch.trace_id);
    assert!(reconcile.parent_span_id.is_empty(), "a reconcile is a root");
    let object = attr(reconcile, "object.ref").unwrap_or_default();
    assert!(object.contains("so-2025-0001"), "object.ref {object:?}");
    let etag_sent = attr(patch, "etag_sent").unwrap_or_default();
    assert!(etag_sent.starts_with("W/\""), "etag_sent {etag_sent:?}");
    let status: u16 = attr(patch, "status").unwrap().parse().unwrap();
    assert!((200..300).contains(&status), "PATCH status {status}");
    assert_eq!(attr(patch, "attempt").as_deref(), Some("1"));

    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == reconcile.span_id)
        .collect();
    assert!(
        children.iter().all(|s| s.trace_id == reconcile.trace_id),
        "children share the reconcile's trace"
    );
    let get = children
        .iter()
        .find(|s| is_request(s, "GET", &number))
        .unwrap_or_else(|| panic!("no GET child of the reconcile: {children:#?}"));
    assert_eq!(attr(get, "status").as_deref(), Some("200"));
    let etag_read = attr(get, "etag_received").unwrap_or_default();
    assert_eq!(
        etag_read, etag_sent,
        "the PATCH sends the ETag the GET read"
    );
    let write = children
        .iter()
        .find(|s| s.name == "status write")
        .unwrap_or_else(|| panic!("no status write child: {children:#?}"));
    assert_eq!(attr(write, "reason").as_deref(), Some("Updated"));
    assert!(get.end_time_unix_nano <= patch.start_time_unix_nano);
    assert!(patch.end_time_unix_nano <= write.start_time_unix_nano);
    let leaked = spans
        .iter()
        .flat_map(|s| &s.attributes)
        .any(|a| a.key.to_ascii_lowercase().contains("authorization"));
    assert!(!leaked, "no header reaches a span");
}

/// A `$batch` call is one span, `POST $batch`, the root of its own trace
/// (it carries several orders' work, sent from a task of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_call_is_one_span_of_its_own() {
    let env = env("tracesbatch", 2, Faults::default()).await;
    let mut batched = D365Connection::test(&env.emu.url()).named("batched");
    batched.spec.batch = Some(BatchSpec::default());
    create_connection(&env.client, &env.ns, batched).await;
    let orders = (1..=2).map(|n| SalesOrderStatus::test(n).via("batched"));
    create_orders(&env.client, &env.ns, orders).await;
    let (url, received) = receiver().await;
    let mut operator = operator(&env, &[("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str())]);
    wait_reason(&env, "so-2025-0001", "Updated").await;
    wait_reason(&env, "so-2025-0002", "Updated").await;
    assert!(operator.terminate(), "the operator stops cleanly");

    let spans: Vec<Span> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    let batches: Vec<&Span> = spans
        .iter()
        .filter(|s| attr(s, "key").as_deref() == Some("$batch"))
        .collect();
    assert!(!batches.is_empty(), "no $batch span among {spans:#?}");
    for batch in &batches {
        assert_eq!(attr(batch, "method").as_deref(), Some("POST"));
        assert_eq!(attr(batch, "status").as_deref(), Some("200"));
        assert!(batch.parent_span_id.is_empty(), "{batch:#?}");
    }
    let patches = spans
        .iter()
        .filter(|s| attr(s, "method").as_deref() == Some("PATCH"));
    assert_eq!(patches.count(), 0, "PATCHes inside a $batch are not spans");
}

/// Without `OTEL_EXPORTER_OTLP_ENDPOINT`, no connection reaches the
/// default OTLP/HTTP port, where an exporter left on would send (at the
/// latest when the graceful stop flushes it). The listener accepts
/// nothing during the run: a connection would wait in its backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported() {
    let default_port = std::net::TcpListener::bind("127.0.0.1:4318")
        .expect("the default OTLP/HTTP port is free on the test host");
    default_port.set_nonblocking(true).unwrap();
    let env = env("notraces", 1, Faults::default()).await;
    create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let mut operator = operator(&env, &[("OTEL_SERVICE_NAME", "operator-under-test")]);
    wait_reason(&env, "so-2025-0001", "Updated").await;
    assert!(operator.terminate(), "the operator stops cleanly");
    match default_port.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to the OTLP port: {other:?}"),
    }
}
