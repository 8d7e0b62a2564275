//! The binary: flags, the readiness line, generated orders.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_listening_line_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_d365-emulator"))
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
        ])
        .env("D365_EMULATOR_MAX_RPS", "77")
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
}

/// The credential flags: a certificate registered from a file answers a
/// signed assertion; a federated credential is matched (its issuer is not
/// reachable, so the right subject gets AADSTS50166 and a wrong one
/// AADSTS70021); a malformed spec stops the binary.
#[test]
fn binary_registers_client_credentials() {
    use crate::jws::{ASSERTION_TYPE, Key, b64, now_plus};
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/client-certificate"
    );
    let app = "55555555-5555-5555-5555-555555555555";
    let mut child = Command::new(env!("CARGO_BIN_EXE_d365-emulator"))
        .args(["--listen", "127.0.0.1:0"])
        .arg(format!("--client-certificate={app}={fixtures}/tls.crt"))
        .arg(format!(
            "--federated-credential=client_id={app},issuer=http://127.0.0.1:1,subject=sa"
        ))
        .arg(format!("--oidc-ca-file={fixtures}/tls.crt"))
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
    let endpoint = format!("{url}/{}/oauth2/v2.0/token", d365_emulator::DEFAULT_TENANT);
    let (cert_pem, key_pem) = (
        std::fs::read_to_string(format!("{fixtures}/tls.crt")).unwrap(),
        std::fs::read_to_string(format!("{fixtures}/tls.key")).unwrap(),
    );
    let x5t = crate::jws::thumbprints(&cert_pem).0;
    let cert_jwt = Key::rsa_from_pem(&key_pem).sign(
        &serde_json::json!({"alg": "RS256", "x5t": x5t}),
        &serde_json::json!({"iss": app, "sub": app, "aud": endpoint, "jti": "1", "exp": now_plus(600)}),
    );
    let fed = |sub: &str| {
        let claims = serde_json::json!({"iss": "http://127.0.0.1:1", "sub": sub,
            "aud": "api://AzureADTokenExchange", "exp": now_plus(600)});
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"ES256","kid":"k"}"#),
            b64(claims.to_string()),
            b64("sig")
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answers: Vec<String> = rt.block_on(async {
        let mut out = Vec::new();
        for jwt in [cert_jwt, fed("sa"), fed("other")] {
            let r = reqwest::Client::new()
                .post(&endpoint)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", app),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &jwt),
                    ("scope", &format!("{url}/.default")),
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
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answers[0].starts_with("200 "), "{}", answers[0]);
    assert!(answers[1].contains("AADSTS50166"), "{}", answers[1]);
    assert!(answers[2].contains("AADSTS70021"), "{}", answers[2]);
    let status = Command::new(env!("CARGO_BIN_EXE_d365-emulator"))
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
