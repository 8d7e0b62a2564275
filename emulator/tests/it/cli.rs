//! The binary: flags, the readiness line, generated orders.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_d365-emulator"))
}

/// Starts the binary as `cmd` says; the child and its URL from the
/// readiness line.
fn spawn(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("d365-emulator listening on ")
        .expect(&line)
        .to_string();
    (child, url)
}

#[test]
fn binary_prints_listening_line_and_serves() {
    let (mut child, url) = spawn(
        binary()
            .args([
                "--listen",
                "127.0.0.1:0",
                "--generate",
                "3",
                "--conflict-status",
                "409",
                "--seed",
                "5",
                "--ignore-writes",
                "SalesOrderStatus",
                "--ignore-writes",
                "ConfirmedReceiptDate",
                "--redirect-status",
                "308",
                "--validation-status",
                "500",
                "--case-sensitive-order-numbers",
                "--ignore-continue-on-error",
                "--ignore-return-representation",
            ])
            .env("D365_EMULATOR_MAX_RPS", "77"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (orders, faults) = rt.block_on(async {
        let orders: Vec<serde_json::Value> = reqwest::get(format!("{url}/_emulator/orders"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let faults: serde_json::Value = reqwest::get(format!("{url}/_emulator/faults"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (orders, faults)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(orders.len(), 3);
    assert_eq!(orders[2]["SalesOrderNumber"], "SO-2025-0003");
    assert_eq!(faults["conflictStatus"], 409);
    assert_eq!(faults["maxRps"], 77);
    assert_eq!(
        faults["ignoreWrites"],
        serde_json::json!(["SalesOrderStatus", "ConfirmedReceiptDate"])
    );
    assert_eq!(faults["redirectStatus"], 308);
    assert_eq!(faults["validationStatus"], 500);
    assert_eq!(faults["caseSensitiveOrderNumbers"], true);
    assert_eq!(faults["honourContinueOnError"], false);
    assert_eq!(faults["honourReturnRepresentation"], false);
}

#[test]
fn a_validation_status_other_than_400_or_500_is_refused() {
    let out = binary()
        .args(["--listen", "127.0.0.1:0", "--validation-status", "418"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither 400 nor 500"), "{err}");
}

/// Token requests with each assertion for `client_id`: "status body" each.
fn post_assertions(url: &str, client_id: &str, jwts: Vec<String>) -> Vec<String> {
    let endpoint = format!("{url}/{}/oauth2/v2.0/token", d365_emulator::DEFAULT_TENANT);
    let scope = format!("{url}/.default");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for jwt in jwts {
            let r = reqwest::Client::new()
                .post(&endpoint)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_assertion_type", crate::jws::ASSERTION_TYPE),
                    ("client_assertion", &jwt),
                    ("scope", &scope),
                ])
                .send()
                .await
                .unwrap();
            out.push(format!(
                "{} {}",
                r.status().as_u16(),
                r.text().await.unwrap()
            ));
        }
        out
    })
}

/// The credential flags: a certificate registered from a file answers a
/// signed assertion; a federated credential is matched (its issuer is not
/// reachable, so the right subject gets AADSTS50166 and a wrong one
/// AADSTS70021); a malformed spec stops the binary.
#[test]
fn binary_registers_client_credentials() {
    use crate::jws::{Key, b64, now_plus};
    use serde_json::json;
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/client-certificate"
    );
    let app = "55555555-5555-5555-5555-555555555555";
    let (mut child, url) = spawn(binary().args([
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
        format!("--client-certificate={app}={fixtures}/tls.crt"),
        format!("--federated-credential=client_id={app},issuer=http://127.0.0.1:1,subject=sa"),
        format!("--oidc-ca-file={fixtures}/tls.crt"),
    ]));
    let read = |f: &str| std::fs::read_to_string(format!("{fixtures}/{f}")).unwrap();
    let endpoint = format!("{url}/{}/oauth2/v2.0/token", d365_emulator::DEFAULT_TENANT);
    let cert_jwt = Key::rsa_from_pem(&read("tls.key")).sign(
        &json!({"alg": "RS256", "x5t": crate::jws::thumbprints(&read("tls.crt")).0}),
        &json!({"iss": app, "sub": app, "aud": endpoint, "jti": "1", "exp": now_plus(600)}),
    );
    let fed = |sub: &str| {
        let claims = json!({"iss": "http://127.0.0.1:1", "sub": sub,
            "aud": "api://AzureADTokenExchange", "exp": now_plus(600)});
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"ES256","kid":"k"}"#),
            b64(claims.to_string()),
            b64("sig")
        )
    };
    let answers = post_assertions(&url, app, vec![cert_jwt, fed("sa"), fed("other")]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answers[0].starts_with("200 "), "{}", answers[0]);
    assert!(answers[1].contains("AADSTS50166"), "{}", answers[1]);
    assert!(answers[2].contains("AADSTS70021"), "{}", answers[2]);
    let status = binary()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--federated-credential",
            "issuer=x",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

/// The faults a binary started with `args` serves.
fn served_faults(args: &[&str]) -> serde_json::Value {
    let mut cmd = binary();
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    let (mut child, url) = spawn(&mut cmd);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let faults = rt.block_on(async {
        let answer = reqwest::get(format!("{url}/_emulator/faults"))
            .await
            .unwrap();
        answer.json::<serde_json::Value>().await.unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    faults
}

/// `--profile strict` sets every [unverified] behaviour to its hardest and
/// wins over the flags for those; failure injection is left to the flags.
#[test]
fn strict_profile_turns_unverified_behaviours_hard() {
    let default = served_faults(&[]);
    let strict = served_faults(&[
        "--profile",
        "strict",
        "--conflict-status",
        "412",
        "--error-rate",
        "0.25",
    ]);
    for (field, hard) in [
        ("conflictStatus", serde_json::json!(409)),
        ("requireIfMatch", serde_json::json!(true)),
        ("getEtagHeader", serde_json::json!(false)),
        ("patchEtagHeader", serde_json::json!(false)),
        ("patchReturnsEntity", serde_json::json!(false)),
        ("echoTokenInErrors", serde_json::json!(true)),
        ("honourContinueOnError", serde_json::json!(false)),
        ("honourReturnRepresentation", serde_json::json!(false)),
        ("validationStatus", serde_json::json!(400)),
        ("caseSensitiveOrderNumbers", serde_json::json!(false)),
        ("readOnlyFields", serde_json::json!(["SalesOrderStatus"])),
    ] {
        assert_eq!(strict[field], hard, "{field} in {strict}");
    }
    assert_ne!(default["conflictStatus"], strict["conflictStatus"]);
    assert_ne!(default["requireIfMatch"], strict["requireIfMatch"]);
    assert_eq!(strict["errorRate"], 0.25, "injected faults stay the flags'");
}
