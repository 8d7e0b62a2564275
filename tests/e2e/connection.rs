//! End to end on a real kube-apiserver: D365Connections and their Secrets —
//! orders wait for them, wake when they arrive, recover when a Secret is
//! rotated, and the connection reports whether its credentials work.

use std::time::Duration;

use crate::support::{Env, env, wait_reason};
use d365_emulator::Faults;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use sales_order_operator::api::D365Connection;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_secret_arriving_later_wake_the_order() {
    let env = env("latecomer", 1, Faults::default()).await;
    // Remove what env() created, so the order starts without them.
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    conns
        .delete("usmf", &DeleteParams::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .delete("d365-credentials", &DeleteParams::default())
        .await
        .unwrap();
    let _op = env.operator(&["--stalled-recheck", "1h"]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    wait_reason(&env, "so-2025-0001", "ConnectionNotReady").await;
    conns
        .create(&Default::default(), &D365Connection::test(&env.emu.url()))
        .await
        .unwrap();
    wait_reason(&env, "so-2025-0001", "SecretNotFound").await;
    secrets
        .create(&Default::default(), &fixtures::secret())
        .await
        .unwrap();
    wait_reason(&env, "so-2025-0001", "Updated").await;
    wait_connection(&env, "Authenticated").await;
}

/// Opt-in Secrets: one without the credentials label is never read and no
/// token request carries it; labelling it is enough to recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlabelled_secret_is_not_used_until_it_is_labelled() {
    let env = env("unlabelled", 1, Faults::default()).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .delete(fixtures::SECRET, &DeleteParams::default())
        .await
        .unwrap();
    crate::support::create_secret(&env.client, &env.ns, fixtures::unlabelled_secret()).await;
    let _op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let hint = format!(
        "kubectl label secret -n {} {} d365.salesops.io/credentials=true",
        env.ns,
        fixtures::SECRET
    );
    let conn = wait_connection(&env, "SecretNotFound").await;
    let ready = &conn.status.unwrap().conditions[0];
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains(&hint), "{}", ready.message);
    let order = wait_reason(&env, "so-2025-0001", "SecretNotFound").await;
    let message = &order.ready_condition().unwrap().message;
    assert!(message.contains(&hint), "{message}");
    assert_eq!(env.emu.token_requests(), 0, "no token request was made");
    assert_eq!(env.requests_for("SO-2025-0001"), 0, "nor any D365 request");

    // Labelling arrives in the filtered watch as an Apply: a recheck.
    let label = json!({"metadata": {"labels": {"d365.salesops.io/credentials": "true"}}});
    secrets
        .patch(
            fixtures::SECRET,
            &PatchParams::default(),
            &Patch::Merge(&label),
        )
        .await
        .unwrap();
    wait_connection(&env, "Authenticated").await;
    wait_reason(&env, "so-2025-0001", "Updated").await;
    assert!(env.emu.token_requests() > 0);

    // Losing the label leaves the filtered watch (a Delete): stalled again.
    let unlabel = json!({"metadata": {"labels": {"d365.salesops.io/credentials": null}}});
    secrets
        .patch(
            fixtures::SECRET,
            &PatchParams::default(),
            &Patch::Merge(&unlabel),
        )
        .await
        .unwrap();
    let conn = wait_connection(&env, "SecretNotFound").await;
    let message = &conn.status.unwrap().conditions[0].message;
    assert!(message.contains(&hint), "{message}");
}

pub async fn wait_connection(env: &Env, reason: &str) -> D365Connection {
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    testkit::wait_for(WAIT, || async {
        let c = conns.get("usmf").await.ok()?;
        let ready = c
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.reason == reason).then_some(c)
    })
    .await
    .unwrap_or_else(|_| panic!("connection never reached {reason}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_fixes_the_connection_and_its_orders() {
    let env = env("rotation", 1, Faults::default()).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let set_secret = |value: &str| json!({"stringData": {"client-secret": value}});
    secrets
        .patch(
            "d365-credentials",
            &PatchParams::default(),
            &Patch::Merge(&set_secret("wrong")),
        )
        .await
        .unwrap();
    let _op = env.operator(&[]);
    let conn = wait_connection(&env, "Unauthorized").await;
    let message = &conn.status.unwrap().conditions[0].message;
    assert!(message.contains("AADSTS"), "Entra's own words: {message}");
    assert!(!message.contains("wrong"), "the secret value never shows");
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    wait_reason(&env, "so-2025-0001", "Unauthorized").await;

    let fixed = set_secret(d365_emulator::DEFAULT_CLIENT_SECRET);
    secrets
        .patch(
            "d365-credentials",
            &PatchParams::default(),
            &Patch::Merge(&fixed),
        )
        .await
        .unwrap();
    wait_connection(&env, "Authenticated").await;
    wait_reason(&env, "so-2025-0001", "Updated").await;
    let table = env.cp.kubectl(&["get", "d365c", "-n", &env.ns]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("True") && text.contains("Authenticated"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_recreated_under_its_name_is_checked_again() {
    let env = env("recreated", 0, Faults::default()).await;
    let _op = env.operator(&[]);
    let first = wait_connection(&env, "Authenticated").await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    conns
        .delete("usmf", &DeleteParams::default())
        .await
        .unwrap();
    let again = conns
        .create(&Default::default(), &D365Connection::test(&env.emu.url()))
        .await
        .unwrap();
    assert_ne!(again.metadata.uid, first.metadata.uid, "another object");
    assert!(
        again
            .status
            .is_some_and(|s| s.conditions.is_empty() && s.observed_generation == Some(0)),
        "it starts without a condition, with the API server's default status"
    );
    let checked = wait_connection(&env, "Authenticated").await;
    assert_eq!(checked.metadata.uid, again.metadata.uid);
}

/// An operator whose authority allowlist excludes the emulator (on
/// loopback) sends it no token request: the connection and its order are
/// Stalled with a message naming the host and the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_off_the_allowlist_gets_no_secret() {
    let env = env("authority-allowlist", 1, Faults::default()).await;
    let _op = env.operator(&["--allowed-authority-hosts", "login.microsoftonline.com"]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "ConnectionNotReady").await;
    let conn = wait_connection(&env, "ConnectionNotReady").await;
    let port = url::Url::parse(&env.emu.url()).unwrap().port().unwrap();
    let messages = [
        order.ready_condition().unwrap().message.clone(),
        conn.status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .message,
    ];
    for message in messages {
        assert!(
            message.contains(&format!("127.0.0.1:{port}"))
                && message.contains("--allowed-authority-hosts"),
            "{message}"
        );
    }
    assert_eq!(env.emu.token_requests(), 0, "the secret never left");
    assert!(env.emu.requests().is_empty(), "nor did anything else");
}

/// A scope naming another environment would get the operator a token for
/// it and send it to `spec.url`'s host: refused before any token request,
/// the connection and its order Stalled with the reason; the connection's
/// own scope then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_for_another_host_gets_no_token() {
    let env = env("foreign-scope", 1, Faults::default()).await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let set_scope = |scope: &str| json!({"spec": {"auth": {"scope": scope}}});
    let victim = "https://victim.operations.dynamics.com/.default";
    conns
        .patch(
            "usmf",
            &PatchParams::default(),
            &Patch::Merge(&set_scope(victim)),
        )
        .await
        .unwrap();
    let _op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "ConnectionNotReady").await;
    let conn = wait_connection(&env, "ConnectionNotReady").await;
    let ready = conn
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready");
    let messages = [
        order.ready_condition().unwrap().message.clone(),
        ready.unwrap().message,
    ];
    for message in messages {
        assert!(
            message.contains("spec.auth.scope")
                && message.contains("victim.operations.dynamics.com:443 is not spec.url's"),
            "{message}"
        );
    }
    assert_eq!(env.emu.token_requests(), 0, "no token was asked for");
    assert!(env.emu.requests().is_empty(), "nor anything else sent");

    // The zero is the check's: the environment's own scope is asked for.
    conns
        .patch(
            "usmf",
            &PatchParams::default(),
            &Patch::Merge(&set_scope(&env.emu.scope())),
        )
        .await
        .unwrap();
    wait_connection(&env, "Authenticated").await;
    wait_reason(&env, "so-2025-0001", "Updated").await;
    assert!(env.emu.token_requests() > 0);
}

/// A list entry that is not a host stops the operator at start, before it
/// talks to anything, naming the entry.
#[test]
fn a_malformed_host_list_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-order-operator"))
        .args([
            "run",
            "--allow-insecure-hosts",
            "localhost,http://d365.internal",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--allow-insecure-hosts")
            && stderr.contains("\"http://d365.internal\" is a URL; list its host only"),
        "{stderr}"
    );
    assert!(!stderr.contains("Kubernetes API"), "{stderr}");
}
