//! Where credentials may go (issue 10): an authority off the allowlist, or
//! plain http to a host not allowed to be insecure, is refused before any
//! connection is opened.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sales_order_operator::d365::{
    ConnectionSettings, D365Client, D365Error, DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS,
    Destinations, NoopObserver,
};
use secrecy::SecretString;
use url::Url;

/// A loopback listener that counts the TCP connections it accepts (and
/// drops them); the count is taken before the drop, so a client that saw
/// the connection close finds it counted.
async fn listener() -> (Url, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, accepted)
}

fn settings(environment: Url, authority: Url, authority_hosts: &str) -> ConnectionSettings {
    let mut s = ConnectionSettings::new(
        environment,
        authority,
        "tenant",
        "client",
        SecretString::from("exfiltrate-me"),
    );
    s.destinations = Destinations::parse(authority_hosts, DEFAULT_INSECURE_HOSTS).unwrap();
    s
}

#[tokio::test]
async fn an_authority_off_the_allowlist_receives_nothing() {
    let (stub, accepted) = listener().await;
    let port = stub.port().unwrap();
    let refused = D365Client::new(
        settings(stub.clone(), stub.clone(), DEFAULT_AUTHORITY_HOSTS),
        Arc::new(NoopObserver),
    )
    .expect_err("loopback is not an authority host by default");
    let message = refused.to_string();
    assert!(matches!(refused, D365Error::Config { .. }), "{refused:?}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("--allowed-authority-hosts"), "{message}");
    assert!(!message.contains("exfiltrate-me"), "{message}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection was opened"
    );

    // The same settings with the stub allowed do reach it: the zero above
    // is the policy's, not an unreachable stub's.
    let allowed = D365Client::new(
        settings(stub.clone(), stub, &format!("127.0.0.1:{port}")),
        Arc::new(NoopObserver),
    )
    .expect("allowed on its port");
    allowed.authenticate().await.expect_err("the stub hangs up");
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the token request went out"
    );
}

#[test]
fn plain_http_to_a_remote_environment_is_refused() {
    let refused = D365Client::new(
        settings(
            Url::parse("http://contoso.operations.dynamics.com").unwrap(),
            Url::parse("https://login.microsoftonline.com").unwrap(),
            DEFAULT_AUTHORITY_HOSTS,
        ),
        Arc::new(NoopObserver),
    )
    .expect_err("http to a non-loopback host");
    let message = refused.to_string();
    assert!(
        message.contains("environment URL uses plain http")
            && message.contains("contoso.operations.dynamics.com:80")
            && message.contains("--allow-insecure-hosts"),
        "{message}"
    );
}
