//! The operator's Secret watch itself filters by the credentials label
//! (issue 10): an unlabelled Secret never enters its cache, neither from
//! the first list nor from later watch events. Runs the watch the operator
//! runs (`controller::secret_watch`) against the real kube-apiserver.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use sales_order_operator::controller::secret_watch;
use sales_order_operator::fixtures::{self, CredentialsLabel};

use crate::support::create_secret;

const WAIT: Duration = Duration::from_secs(30);

fn secret(name: &str, labelled: bool) -> Secret {
    let mut s = fixtures::unlabelled_secret();
    s.metadata.name = Some(name.into());
    if labelled {
        s.with_credentials_label()
    } else {
        s
    }
}

fn names(store: &Store<PartialObjectMeta<Secret>>) -> BTreeSet<String> {
    store
        .state()
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

/// A store fed by `events` on a task of its own; ready once listed.
async fn reflected<S>(
    events: S,
) -> (
    Store<PartialObjectMeta<Secret>>,
    tokio::task::JoinHandle<()>,
)
where
    S: futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>
        + Send
        + 'static,
{
    let (store, writer) = reflector::store();
    let task = tokio::spawn(events.reflect(writer).for_each(|_| async {}));
    tokio::time::timeout(WAIT, store.wait_until_ready())
        .await
        .expect("listed in time")
        .expect("store ready");
    (store, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_watch_never_caches_an_unlabelled_secret() {
    let cp = testkit::control_plane().await;
    let client = cp.client();
    let ns = cp.namespace("secret-watch").await;
    create_secret(&client, &ns, secret("labelled-1", true)).await;
    create_secret(&client, &ns, secret("unlabelled-1", false)).await;
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &ns);

    let (store, task) = reflected(secret_watch(api.clone())).await;
    assert_eq!(names(&store), BTreeSet::from(["labelled-1".to_owned()]));

    // Watch events after the list: the unlabelled Secret is created first,
    // so once the later labelled one is cached, it would have been too.
    create_secret(&client, &ns, secret("unlabelled-2", false)).await;
    create_secret(&client, &ns, secret("labelled-2", true)).await;
    testkit::wait_for(WAIT, || async {
        names(&store).contains("labelled-2").then_some(())
    })
    .await
    .expect("the labelled Secret arrives through the watch");
    assert_eq!(
        names(&store),
        BTreeSet::from(["labelled-1".to_owned(), "labelled-2".to_owned()])
    );
    task.abort();

    // The same watch without the selector sees all four: the absences
    // above are the selector's.
    let (unfiltered, task) =
        reflected(watcher(api, watcher::Config::default()).default_backoff()).await;
    let all = names(&unfiltered);
    assert!(
        all.is_superset(&BTreeSet::from([
            "unlabelled-1".into(),
            "unlabelled-2".into()
        ])),
        "{all:?}"
    );
    task.abort();
}

/// A Secret applied with `kubectl apply` carries its data again in the
/// last-applied annotation, and managedFields; the operator's watch drops
/// both before its cache holds the Secret (issue 12: memory, and no copy
/// of credential data in the cache), while the apiserver keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_watch_caches_no_managed_fields_and_no_applied_copy() {
    let cp = testkit::control_plane().await;
    let ns = cp.namespace("secret-slim").await;
    let manifest = std::env::temp_dir().join(format!("{ns}-applied.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: {ns}\n  \
             labels: {{d365.salesops.io/credentials: \"true\"}}\n  \
             annotations: {{kept: \"yes\"}}\nstringData: {{client-secret: s3cret}}\n"
        ),
    )
    .unwrap();
    let out = cp.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(cp.client(), &ns);
    let served = api.get_metadata("applied").await.unwrap();
    let served_annotations = served.metadata.annotations.clone().unwrap_or_default();
    assert!(
        served_annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration")
            && served.metadata.managed_fields.is_some(),
        "the apiserver sends both: {served:?}"
    );

    let (store, task) = reflected(secret_watch(api)).await;
    let cached = store
        .state()
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some("applied"))
        .expect("the labelled Secret is cached");
    assert_eq!(cached.metadata.managed_fields, None);
    let annotations = cached.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.into_iter().collect::<Vec<_>>(),
        [("kept".to_owned(), "yes".to_owned())]
    );
    task.abort();
    let _ = std::fs::remove_file(manifest);
}
