//! `Connections` against in-memory stores and a fake Secret source: when a
//! client is reused, when it is rebuilt, and what a broken Secret reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use kube::core::{PartialObjectMetaExt, Status};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::api::{CREDENTIALS_LABEL, Reason};
use crate::controller::credentials::secret_value;
use crate::d365::NoopObserver;
use futures::future::BoxFuture;

/// Secrets by (namespace, name): labels and data; counts the reads; fails
/// every read with `failure`'s error while it is set.
#[derive(Default)]
struct FakeSecrets {
    data: Mutex<HashMap<(String, String), (Labels, Data)>>,
    reads: AtomicUsize,
    failure: Mutex<Option<fn() -> kube::Error>>,
}

type Labels = BTreeMap<String, String>;
type Data = BTreeMap<String, String>;

impl FakeSecrets {
    /// A Secret labelled as credentials.
    fn put(&self, name: &str, pairs: &[(&str, &str)]) {
        self.put_labelled(name, &[(CREDENTIALS_LABEL, "true")], pairs);
    }

    fn put_labelled(&self, name: &str, labels: &[(&str, &str)], pairs: &[(&str, &str)]) {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        lock(&self.data).insert(("orders".into(), name.into()), (map(labels), map(pairs)));
    }
}

impl SecretSource for FakeSecrets {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if let Some(fail) = *lock(&self.failure) {
            return Box::pin(async move { Err(fail()) });
        }
        let found = lock(&self.data)
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|(labels, pairs)| Secret {
                metadata: ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                        .collect(),
                ),
                ..Secret::default()
            });
        Box::pin(async move { Ok(found) })
    }
}

struct Fixture {
    connections: Connections,
    secrets: Arc<FakeSecrets>,
    secret_writer: Writer<PartialObjectMeta<Secret>>,
    connection_writer: Writer<D365Connection>,
}

/// Connection `orders/usmf` at `generation`, whose client secret is
/// `creds`/`client-secret`.
fn usmf(generation: i64) -> D365Connection {
    usmf_with(
        generation,
        json!({"clientSecretRef": {"name": "creds", "key": "client-secret"}}),
    )
}

/// Connection `orders/usmf` at `generation` with `credential` (the `auth`
/// fields besides tenant and client id).
fn usmf_with(generation: i64, credential: serde_json::Value) -> D365Connection {
    let mut auth = json!({"tenantId": "t", "clientId": "c"});
    auth.as_object_mut()
        .expect("an object")
        .extend(credential.as_object().expect("an object").clone());
    serde_json::from_value(json!({
        "apiVersion": "d365.salesops.io/v1alpha1",
        "kind": "D365Connection",
        "metadata": {"name": "usmf", "namespace": "orders", "uid": "u1", "generation": generation},
        "spec": {
            "url": "https://contoso.example",
            "auth": auth,
        },
    }))
    .expect("a valid D365Connection")
}

impl Fixture {
    /// Connection `orders/usmf` whose client secret is `creds`/`client-secret`.
    fn new() -> Self {
        Self::with(usmf(1))
    }

    /// Connection `conn` (named `orders/usmf`).
    fn with(conn: D365Connection) -> Self {
        let (conn_store, mut connection_writer) = reflector::store();
        connection_writer.apply_watcher_event(&Event::Apply(conn));
        let (secret_store, secret_writer) = reflector::store();
        let secrets = Arc::new(FakeSecrets::default());
        let connections = Connections::new(
            conn_store,
            secret_store,
            secrets.clone(),
            Arc::new(NoopObserver),
        );
        Self {
            connections,
            secrets,
            secret_writer,
            connection_writer,
        }
    }

    /// Puts the Secret's metadata in the cache at `resource_version`, as the
    /// labelled watch delivers it.
    fn secret_seen(&mut self, resource_version: &str) {
        let meta = ObjectMeta {
            name: Some("creds".into()),
            namespace: Some("orders".into()),
            resource_version: Some(resource_version.into()),
            labels: Some([(CREDENTIALS_LABEL.into(), "true".into())].into()),
            ..ObjectMeta::default()
        };
        self.secret_writer
            .apply_watcher_event(&Event::Apply(meta.into_response_partial()));
    }

    fn reads(&self) -> usize {
        self.secrets.reads.load(Ordering::SeqCst)
    }

    async fn resolve(&self) -> Result<Resolved, ResolveError> {
        self.connections.resolve("orders", "usmf").await
    }
}

#[tokio::test]
async fn unchanged_fingerprint_reuses_the_client_and_a_new_secret_version_rebuilds_it() {
    let mut f = Fixture::new();
    f.secrets.put("creds", &[("client-secret", "s3cret\n")]);
    f.secret_seen("1");
    let first = f.resolve().await.expect("resolves");
    f.resolve().await.expect("resolves again");
    assert_eq!(f.reads(), 1, "a cache hit reads no Secret");
    assert_eq!(first.rules.status_field, "SalesOrderStatus");

    f.secret_seen("2");
    f.resolve()
        .await
        .expect("resolves after the Secret changed");
    assert_eq!(f.reads(), 2, "a new resourceVersion rebuilds the client");
    f.resolve().await.expect("cached again");
    assert_eq!(f.reads(), 2);

    f.connections.forget("orders", "usmf");
    f.resolve().await.expect("rebuilt after forget");
    assert_eq!(f.reads(), 3, "a forgotten connection is rebuilt");
}

#[tokio::test]
async fn a_missing_secret_or_key_is_reported_as_such() {
    let mut f = Fixture::new();
    let err = f.resolve().await.err().expect("no Secret in the cache");
    assert!(
        matches!(&err, ResolveError::SecretNotFound { name, .. } if name == "creds"),
        "{err}"
    );
    assert_eq!(f.reads(), 0, "not cached: not read");
    assert_eq!(err.reason(), Reason::SecretNotFound);

    f.secret_seen("1");
    let err = f.resolve().await.err().expect("cached but gone on read");
    assert!(matches!(err, ResolveError::SecretNotFound { .. }), "{err}");

    f.secrets.put("creds", &[("other-key", "x")]);
    f.secret_seen("2");
    let err = f.resolve().await.err().expect("key missing");
    assert!(
        matches!(&err, ResolveError::SecretKeyMissing { key, .. } if key == "client-secret"),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::SecretNotFound);

    let err = f.connections.resolve("orders", "nope").await.err();
    assert!(matches!(err, Some(ResolveError::ConnectionNotFound { .. })));
}

#[tokio::test]
async fn clients_of_connections_no_longer_listed_are_pruned() {
    let mut f = Fixture::new();
    f.secrets.put("creds", &[("client-secret", "s3cret")]);
    f.secret_seen("1");
    f.resolve().await.expect("resolves");
    f.connections.prune();
    assert_eq!(f.connections.cached_clients(), 1, "still listed: kept");
    // A re-list without it: its Delete was missed.
    f.connection_writer.apply_watcher_event(&Event::Init);
    f.connection_writer.apply_watcher_event(&Event::InitDone);
    f.connections.prune();
    assert_eq!(f.connections.cached_clients(), 0);
}

/// An API-server answer `code` with `reason`, as kube reports it.
fn api_error(code: u16, reason: &str) -> kube::Error {
    kube::Error::Api(
        Status::failure("the server could not answer", reason)
            .with_code(code)
            .boxed(),
    )
}

#[tokio::test]
async fn an_api_server_that_fails_to_answer_is_transient_and_one_that_refuses_is_not() {
    let mut f = Fixture::new();
    f.secrets.put("creds", &[("client-secret", "s3cret")]);
    f.secret_seen("1");
    let cases: [(fn() -> kube::Error, Reason); 6] = [
        (|| api_error(500, "InternalError"), Reason::Unavailable),
        (|| api_error(503, "ServiceUnavailable"), Reason::Unavailable),
        (|| api_error(504, "Timeout"), Reason::Unavailable),
        (|| api_error(429, "TooManyRequests"), Reason::Unavailable),
        (
            || kube::Error::Service("connection reset by peer".into()),
            Reason::Unavailable,
        ),
        (|| api_error(403, "Forbidden"), Reason::ConnectionNotReady),
    ];
    for (fail, want) in cases {
        *lock(&f.secrets.failure) = Some(fail);
        let err = f.resolve().await.err().expect("the Secret read fails");
        assert!(matches!(err, ResolveError::Kube { .. }), "{err}");
        assert_eq!(err.reason(), want, "{err}");
        assert_eq!(want.is_transient(), want == Reason::Unavailable, "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "keeps its cause: {err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    *lock(&f.secrets.failure) = None;
    f.resolve()
        .await
        .expect("resolves once the API server answers");
}

const HINT: &str = "kubectl label secret -n orders creds d365.salesops.io/credentials=true";

#[tokio::test]
async fn a_secret_the_labelled_watch_has_not_seen_is_not_read_and_the_message_says_how_to_label_it()
{
    let f = Fixture::new();
    // It exists and is labelled otherwise, but the watch never delivered it.
    f.secrets
        .put_labelled("creds", &[], &[("client-secret", "s3cret")]);
    let err = f.resolve().await.err().expect("not in the labelled cache");
    assert!(matches!(err, ResolveError::SecretNotFound { .. }), "{err}");
    assert_eq!(err.reason(), Reason::SecretNotFound);
    assert!(err.to_string().contains(HINT), "{err}");
    assert_eq!(f.reads(), 0, "an unseen Secret is never read");
}

#[tokio::test]
async fn a_secret_read_without_the_label_is_refused() {
    let mut f = Fixture::new();
    let unlabelled: [&[(&str, &str)]; 3] = [
        &[],
        &[(CREDENTIALS_LABEL, "false")],
        &[("d365.salesops.io/other", "true")],
    ];
    for (version, labels) in unlabelled.into_iter().enumerate() {
        f.secrets
            .put_labelled("creds", labels, &[("client-secret", "s3cret")]);
        // Cached while labelled, label removed before the read.
        f.secret_seen(&version.to_string());
        let err = f.resolve().await.err().expect("refused");
        assert!(
            matches!(err, ResolveError::SecretNotLabelled { .. }),
            "{labels:?}: {err}"
        );
        assert_eq!(err.reason(), Reason::SecretNotFound);
        assert!(err.to_string().contains(HINT), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    assert_eq!(f.connections.cached_clients(), 0, "no client was built");

    f.secrets.put("creds", &[("client-secret", "s3cret")]);
    f.secret_seen("9");
    f.resolve().await.expect("labelled: resolves");
}

#[tokio::test]
async fn an_authority_off_the_allowlist_is_a_stalled_connection() {
    let mut f = Fixture::new();
    f.secrets.put("creds", &[("client-secret", "s3cret")]);
    f.secret_seen("1");
    let mut conn = usmf(2);
    conn.spec.auth.authority_url = Some("https://login.evil.example".into());
    f.connection_writer.apply_watcher_event(&Event::Apply(conn));
    let Err(err) = f.resolve().await else {
        panic!("an authority off the allowlist resolved")
    };
    assert_eq!(err.reason(), Reason::ConnectionNotReady);
    let text = err.to_string();
    assert!(
        text.contains("login.evil.example:443") && text.contains("--allowed-authority-hosts"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(f.connections.cached_clients(), 0);
}

#[test]
fn a_value_that_is_not_utf8_is_told_apart_from_a_missing_key() {
    let secret = Secret {
        data: Some(
            [(
                "client-secret".to_owned(),
                ByteString(vec![0xff, 0xfe, b'a']),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    let err = secret_value(&secret, "client-secret").expect_err("not UTF-8");
    assert!(err.to_string().contains("invalid utf-8"), "{err}");
    assert!(matches!(secret_value(&secret, "other"), Ok(None)));
}

/// `--max-answer-bytes` reaches every client built afterwards; without it a
/// client reads up to the default.
#[tokio::test]
async fn clients_read_answers_up_to_the_configured_limit() {
    for (limit, want) in [
        (None, crate::d365::DEFAULT_MAX_ANSWER_BYTES),
        (Some(4096), 4096),
    ] {
        let mut f = Fixture::new();
        if let Some(limit) = limit {
            f.connections = f.connections.with_answer_limit(limit);
        }
        f.secrets.put("creds", &[("client-secret", "s3cret")]);
        f.secret_seen("1");
        let resolved = f.resolve().await.expect("resolves");
        assert_eq!(
            resolved.client.settings().max_answer_bytes,
            want,
            "{limit:?}"
        );
    }
}

#[path = "credentials_tests.rs"]
mod credentials;

#[tokio::test]
async fn resolve_now_reads_the_secret_each_time_and_keeps_the_label_rule() {
    let f = Fixture::new();
    f.secrets.put("creds", &[("client-secret", "s3cret")]);
    let resolved = f.connections.resolve_now(&usmf(1)).await.unwrap();
    assert_eq!(
        resolved.client.settings().environment_url.as_str(),
        "https://contoso.example/"
    );
    f.connections.resolve_now(&usmf(1)).await.unwrap();
    assert_eq!((f.reads(), f.connections.cached_clients()), (2, 0));
    f.secrets
        .put_labelled("creds", &[], &[("client-secret", "s3cret")]);
    let err = f.connections.resolve_now(&usmf(1)).await.err();
    assert!(matches!(err, Some(ResolveError::SecretNotLabelled { .. })));
}
