use super::*;

const ENV: &str = "https://contoso.operations.dynamics.com";

/// The check's message, or "ok".
fn outcome(authority_hosts: &str, insecure_hosts: &str, env: &str, authority: &str) -> String {
    let d = Destinations::parse(authority_hosts, insecure_hosts).unwrap();
    match d.check(&Url::parse(env).unwrap(), &Url::parse(authority).unwrap()) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

fn allowed(authority_hosts: &str, authority: &str) -> bool {
    outcome(authority_hosts, DEFAULT_INSECURE_HOSTS, ENV, authority) == "ok"
}

#[test]
fn authority_hosts_match_exactly_and_case_insensitively() {
    let table = [
        ("https://login.microsoftonline.com", true),
        ("https://LOGIN.MicrosoftOnline.com/", true),
        ("https://login.microsoftonline.com:8443/x", true),
        ("https://login.microsoftonline.us", true),
        ("https://login.partner.microsoftonline.cn", true),
        ("https://login.chinacloudapi.cn", true),
        // Suffixes, prefixes and look-alikes are other hosts.
        ("https://login.microsoftonline.com.evil.example", false),
        ("https://evil.login.microsoftonline.com", false),
        ("https://evil-login.microsoftonline.com", false),
        ("https://login.microsoftonline.com./", false),
        ("https://login.microsoftonline.de", false),
        // Loopback is the pod itself in a cluster: not an authority by
        // default (the demo and the tests pass the flag).
        ("http://127.0.0.1:8080", false),
        ("http://localhost:8080", false),
        ("http://[::1]:8080", false),
    ];
    for (authority, want) in table {
        assert_eq!(
            allowed(DEFAULT_AUTHORITY_HOSTS, authority),
            want,
            "{authority}"
        );
    }
}

#[test]
fn ports_and_ip_addresses() {
    let table = [
        // A pattern without a port allows every port.
        ("127.0.0.1", "http://127.0.0.1:9000", true),
        ("127.0.0.1:9000", "http://127.0.0.1:9000/auth", true),
        ("127.0.0.1:9000", "http://127.0.0.1:9001", false),
        ("127.0.0.1", "http://127.0.0.2", false),
        // Default ports count: https is 443.
        ("sso.example:443", "https://sso.example", true),
        ("sso.example:443", "https://sso.example:443", true),
        ("sso.example:443", "http://sso.example", false),
        // IPv6, bare or bracketed, in any spelling.
        ("::1", "http://[::1]:1234", true),
        ("[::1]", "http://[0:0:0:0:0:0:0:1]", true),
        ("[::1]:9000", "http://[::1]:9000", true),
        ("[::1]:9000", "http://[::1]:9001", false),
        ("::1", "http://127.0.0.1", false),
        // An IPv4 address is not the name that may resolve to it.
        ("localhost", "http://127.0.0.1", false),
        ("127.0.0.1", "http://localhost", false),
        // Several entries, spaces and empty entries ignored.
        (" a.example , ,LOCALHOST ", "http://localhost:1", true),
        ("", "http://localhost:1", false),
    ];
    for (hosts, authority, want) in table {
        assert_eq!(allowed(hosts, authority), want, "{hosts:?} {authority}");
    }
}

#[test]
fn plain_http_only_to_insecure_hosts() {
    let table = [
        (DEFAULT_INSECURE_HOSTS, "http://127.0.0.1:8080", true),
        (DEFAULT_INSECURE_HOSTS, "http://localhost", true),
        (DEFAULT_INSECURE_HOSTS, "http://[::1]:8080", true),
        (
            DEFAULT_INSECURE_HOSTS,
            "http://contoso.operations.dynamics.com",
            false,
        ),
        (DEFAULT_INSECURE_HOSTS, "http://10.0.0.1", false),
        (DEFAULT_INSECURE_HOSTS, "https://contoso.example", true),
        ("", "http://127.0.0.1", false),
        ("d365.internal:8080", "http://D365.internal:8080", true),
        ("d365.internal:8080", "http://d365.internal", false),
    ];
    let authority = "https://login.microsoftonline.com";
    for (insecure, env, want) in table {
        let got = outcome(DEFAULT_AUTHORITY_HOSTS, insecure, env, authority);
        assert_eq!(got == "ok", want, "{insecure:?} {env}: {got}");
    }
    // The authority too: allowed as an authority, refused as plain http.
    let got = outcome(
        "sso.example",
        DEFAULT_INSECURE_HOSTS,
        ENV,
        "http://sso.example",
    );
    assert!(got.contains("authority URL uses plain http"), "{got}");
}

#[test]
fn messages_name_the_host_and_the_flag() {
    let got = outcome(
        DEFAULT_AUTHORITY_HOSTS,
        DEFAULT_INSECURE_HOSTS,
        ENV,
        "https://user:pw@evil.example:8443/path",
    );
    assert!(got.contains("evil.example:8443"), "{got}");
    assert!(got.contains("--allowed-authority-hosts"), "{got}");
    assert!(got.contains("login.microsoftonline.com"), "{got}");
    assert!(!got.contains("pw") && !got.contains("/path"), "{got}");
    let got = outcome(
        DEFAULT_AUTHORITY_HOSTS,
        DEFAULT_INSECURE_HOSTS,
        "http://contoso.example",
        "https://login.microsoftonline.com",
    );
    assert!(got.contains("environment URL"), "{got}");
    assert!(got.contains("contoso.example:80"), "{got}");
    assert!(got.contains("--allow-insecure-hosts"), "{got}");
    let got = outcome("", "", ENV, "https://login.microsoftonline.com");
    assert!(got.contains("(allowed: none)"), "{got}");
}

#[test]
fn entries_that_are_not_hosts_are_refused() {
    for entry in [
        "https://login.microsoftonline.com",
        "a.example:port",
        "a.example:70000",
        "[::1",
        "a b.example",
        "a.example/path",
        "user@a.example",
        "[::1]x",
    ] {
        assert!(Destinations::parse(entry, "").is_err(), "{entry}");
        assert!(Destinations::parse("", entry).is_err(), "{entry}");
    }
    assert!(matches!(
        HostPattern::list("a.example, https://b.example"),
        Err(HostListError::Url { .. })
    ));
    assert_eq!(
        Destinations::default(),
        Destinations::parse(DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS).unwrap()
    );
}

/// Issue 10: a scope is only ever the environment's own audience, so the
/// token sent to `spec.url` is useless anywhere else.
#[test]
fn scopes_name_the_environment_host_only() {
    let env = |u: &str| Url::parse(u).unwrap();
    let default_of = |u: &str| {
        crate::d365::ConnectionSettings::new(
            env(u),
            env("https://login.microsoftonline.com"),
            "t",
            "c",
            secrecy::SecretString::from("s"),
        )
        .effective_scope()
    };
    // (environment, scope, accepted)
    let mut table = vec![
        (
            ENV,
            "https://contoso.operations.dynamics.com/.default",
            true,
        ),
        (
            ENV,
            "https://CONTOSO.Operations.Dynamics.com/.default",
            true,
        ),
        (
            ENV,
            " https://contoso.operations.dynamics.com/.default ",
            true,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com./.default",
            true,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com:443/.default",
            true,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com//.default",
            true,
        ),
        (
            "https://proxy.example/d365",
            "https://proxy.example/.default",
            true,
        ),
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/.default",
            true,
        ),
        // Another host, or this host as a prefix, suffix or path.
        (
            ENV,
            "https://victim.operations.dynamics.com/.default",
            false,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com.evil.com/.default",
            false,
        ),
        (
            ENV,
            "https://evil.com/contoso.operations.dynamics.com/.default",
            false,
        ),
        (
            ENV,
            "https://evilcontoso.operations.dynamics.com/.default",
            false,
        ),
        (
            ENV,
            "https://x.contoso.operations.dynamics.com/.default",
            false,
        ),
        // User info: either the host is the other one, or the trick is refused.
        (
            ENV,
            "https://contoso.operations.dynamics.com@evil.com/.default",
            false,
        ),
        (
            ENV,
            "https://evil.com@contoso.operations.dynamics.com/.default",
            false,
        ),
        (
            ENV,
            "https://u:p@contoso.operations.dynamics.com/.default",
            false,
        ),
        // Another port or scheme is another service.
        (
            ENV,
            "https://contoso.operations.dynamics.com:8443/.default",
            false,
        ),
        (
            ENV,
            "http://contoso.operations.dynamics.com/.default",
            false,
        ),
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:9090/.default",
            false,
        ),
        (
            "http://127.0.0.1:8080",
            "http://localhost:8080/.default",
            false,
        ),
        // Not one `<resource>/.default`, or not a URL at all.
        (ENV, "api://contoso/.default", false),
        (
            ENV,
            "https://contoso.operations.dynamics.com/user_impersonation",
            false,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com/.DEFAULT",
            false,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com/.default https://victim.operations.dynamics.com/.default",
            false,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com/?a=/.default",
            false,
        ),
        (
            ENV,
            "https://contoso.operations.dynamics.com/#/.default",
            false,
        ),
        (ENV, "contoso.operations.dynamics.com/.default", false),
        (ENV, "https:///.default", false),
        (ENV, "/.default", false),
        (ENV, "", false),
    ];
    let defaults: Vec<(String, String)> = [
        ENV,
        "https://Contoso.Operations.Dynamics.com/",
        "https://proxy.example:8443/D365/",
        "http://[::1]:9000",
        "http://127.0.0.1:8080",
    ]
    .iter()
    .map(|e| (e.to_string(), default_of(e)))
    .collect();
    table.extend(defaults.iter().map(|(e, s)| (e.as_str(), s.as_str(), true)));
    for (environment, scope, want) in table {
        let got = check_scope(&env(environment), scope);
        assert_eq!(got.is_ok(), want, "{environment} {scope:?}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, D365Error::Config { .. }), "{e:?}");
        }
    }
}

#[test]
fn a_refused_scope_says_why_and_what_to_do() {
    let got = check_scope(
        &Url::parse(ENV).unwrap(),
        "https://victim.operations.dynamics.com/.default",
    )
    .unwrap_err()
    .to_string();
    for part in [
        "spec.auth.scope",
        "victim.operations.dynamics.com:443 is not spec.url's",
        "contoso.operations.dynamics.com:443",
        "leave scope unset",
    ] {
        assert!(got.contains(part), "{part}: {got}");
    }
}
