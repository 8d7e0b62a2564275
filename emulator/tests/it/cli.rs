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
