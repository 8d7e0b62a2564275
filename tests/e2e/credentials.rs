//! Secret-free credentials end to end: orders converge through workload
//! identity (a ServiceAccount token issued by the real kube-apiserver's
//! TokenRequest, verified by the emulator against the apiserver's own OIDC
//! discovery and JWKS) and through a certificate credential; a token of
//! another ServiceAccount, or an unregistered certificate, is refused by
//! the emulator the way Entra refuses it.

use std::path::Path;
use std::time::Duration;

use crate::support::{self, Env};
use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, Emulator, FederatedCredential, GrantKind, RegisteredCertificate,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures;

const AUDIENCE: &str = "api://AzureADTokenExchange";
/// The ServiceAccount the app's federated credential trusts.
const OPERATOR_SA: &str = "sales-order-operator";
const CERT: &str = include_str!("../fixtures/client-certificate/tls.crt");
const KEY: &str = include_str!("../fixtures/client-certificate/tls.key");
const UNREGISTERED_CERT: &str = include_str!("../fixtures/client-certificate/unregistered.crt");
const UNREGISTERED_KEY: &str = include_str!("../fixtures/client-certificate/unregistered.key");
const WAIT: Duration = Duration::from_secs(60);

/// A namespace with CRDs, and an emulator holding `n` orders configured by
/// `configure` (which learns the control plane and the namespace).
async fn identity_env(
    prefix: &str,
    n: usize,
    configure: impl FnOnce(&mut Config, &testkit::ControlPlane, &str),
) -> Env {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cp.namespace(prefix).await;
    let mut config = Config {
        orders: d365_emulator::generate_orders(n, 7),
        ..Config::default()
    };
    configure(&mut config, cp, &ns);
    let emu = Emulator::start(config).await.expect("emulator starts");
    Env {
        cp,
        client: cp.client(),
        ns,
        emu,
    }
}

/// The app's federated credential: trusts `OPERATOR_SA` of `ns` as issued
/// by the test control plane.
fn trust_operator_service_account(config: &mut Config, cp: &testkit::ControlPlane, ns: &str) {
    config.federated_credentials = vec![FederatedCredential {
        client_id: DEFAULT_CLIENT_ID.into(),
        issuer: cp.service_account_issuer().into(),
        subject: format!("system:serviceaccount:{ns}:{OPERATOR_SA}"),
        audience: AUDIENCE.into(),
    }];
    config.oidc_ca_pem = Some(cp.ca_pem());
}

/// Lets anyone read the control plane's OIDC discovery and JWKS, as a
/// public issuer (AKS's) does; Entra fetches them anonymously.
async fn publish_issuer_discovery(client: &kube::Client) {
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("testkit-public-oidc-discovery".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:service-account-issuer-discovery".into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: "system:unauthenticated".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    match bindings.create(&PostParams::default(), &binding).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("binding issuer discovery: {e}"),
    }
}

/// A token of ServiceAccount `name` in `ns` for Entra's token exchange,
/// written where a projected volume would put it.
async fn projected_token(env: &Env, name: &str, dir: &Path) -> std::path::PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create service account");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![AUDIENCE.into()],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = issued.status.expect("a token").token;
    let path = dir.join("azure-identity-token");
    std::fs::write(&path, token).unwrap();
    path
}

async fn wait_connection(env: &Env, reason: &str) -> String {
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    testkit::wait_for(WAIT, || async {
        let c = conns.get(fixtures::CONNECTION).await.ok()?;
        let ready = c.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == reason).then_some(ready.message)
    })
    .await
    .unwrap_or_else(|_| panic!("connection never reached {reason}"))
}

fn grant_kinds(emu: &Emulator) -> Vec<GrantKind> {
    emu.token_grants().into_iter().map(|g| g.kind).collect()
}

async fn secrets_in(env: &Env) -> usize {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets.list(&ListParams::default()).await.unwrap().items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_converge_through_workload_identity_with_no_secret() {
    let env = identity_env("wi", 2, trust_operator_service_account).await;
    publish_issuer_discovery(&env.client).await;
    let dir = tempfile::tempdir().unwrap();
    let token = projected_token(&env, OPERATOR_SA, dir.path()).await;
    let connection = D365Connection::test(&env.emu.url()).with_workload_identity();
    support::create_connection(&env.client, &env.ns, connection).await;
    let orders = (1..=2).map(SalesOrderStatus::test);
    support::create_orders(&env.client, &env.ns, orders).await;
    let _op = env.operator(&["--workload-identity-token-file", token.to_str().unwrap()]);

    support::wait_all(&env.client, &env.ns, 2, &["Updated", "InSync"], WAIT).await;
    wait_connection(&env, "Authenticated").await;
    assert_eq!(secrets_in(&env).await, 0, "no Secret in the namespace");
    let kinds = grant_kinds(&env.emu);
    assert!(!kinds.is_empty(), "no token was issued");
    assert!(kinds.iter().all(|k| *k == GrantKind::Federated), "{kinds:?}");
    assert_eq!(env.client_writes().len(), 2);
}

/// The app trusts the operator's ServiceAccount, not any in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_service_account_is_refused() {
    let env = identity_env("wi-intruder", 1, trust_operator_service_account).await;
    publish_issuer_discovery(&env.client).await;
    let dir = tempfile::tempdir().unwrap();
    let token = projected_token(&env, "intruder", dir.path()).await;
    let connection = D365Connection::test(&env.emu.url()).with_workload_identity();
    support::create_connection(&env.client, &env.ns, connection).await;
    support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let _op = env.operator(&["--workload-identity-token-file", token.to_str().unwrap()]);

    let message = wait_connection(&env, "Unauthorized").await;
    assert!(message.contains("AADSTS70021"), "{message}");
    assert!(message.contains(":intruder"), "names the subject: {message}");
    support::wait_reason(&env, "so-2025-0001", "Unauthorized").await;
    assert!(env.client_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_converge_through_a_certificate_credential() {
    let env = identity_env("cert", 2, |config, _, _| {
        config.client_certificates = vec![RegisteredCertificate {
            client_id: DEFAULT_CLIENT_ID.into(),
            certificate_pem: CERT.into(),
        }];
    })
    .await;
    let secret = fixtures::tls_secret("d365-client-certificate", CERT, KEY);
    support::create_secret(&env.client, &env.ns, secret).await;
    let connection =
        D365Connection::test(&env.emu.url()).with_client_certificate("d365-client-certificate");
    support::create_connection(&env.client, &env.ns, connection).await;
    let orders = (1..=2).map(SalesOrderStatus::test);
    support::create_orders(&env.client, &env.ns, orders).await;
    let _op = env.operator(&[]);

    support::wait_all(&env.client, &env.ns, 2, &["Updated", "InSync"], WAIT).await;
    wait_connection(&env, "Authenticated").await;
    let kinds = grant_kinds(&env.emu);
    assert!(!kinds.is_empty(), "no token was issued");
    assert!(kinds.iter().all(|k| *k == GrantKind::Certificate), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_certificate_is_refused() {
    let env = identity_env("cert-unregistered", 1, |config, _, _| {
        config.client_certificates = vec![RegisteredCertificate {
            client_id: DEFAULT_CLIENT_ID.into(),
            certificate_pem: CERT.into(),
        }];
    })
    .await;
    let secret = fixtures::tls_secret("other-cert", UNREGISTERED_CERT, UNREGISTERED_KEY);
    support::create_secret(&env.client, &env.ns, secret).await;
    let connection = D365Connection::test(&env.emu.url()).with_client_certificate("other-cert");
    support::create_connection(&env.client, &env.ns, connection).await;
    support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let _op = env.operator(&[]);

    let message = wait_connection(&env, "Unauthorized").await;
    assert!(message.contains("AADSTS700027"), "{message}");
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    assert!(env.client_writes().is_empty());
}
