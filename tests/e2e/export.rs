//! `sales-order-operator export`, the binary: orders chosen by a qualified
//! enum `$filter` become manifests that `kubectl apply` and the operator
//! take as they are (all InSync, not one PATCH); a few thousand orders
//! page through with progress on stderr.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{env, wait_all};
use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Emulator, Faults,
    generate_orders,
};
use kube::ResourceExt;
use kube::api::ListParams;
use sales_order_operator::api::{Policy, SalesOrderStatus};
use serde_json::json;

const DELIVERED: &str =
    "SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Delivered'";

/// The binary's `export` with `args`, the emulator (on loopback) as the
/// allowed authority, and `envs`.
fn export(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sales-order-operator"))
        .arg("export")
        .args(args)
        .args(["--allowed-authority-hosts", "127.0.0.1"])
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env_remove("D365_CLIENT_SECRET")
        .envs(envs.iter().copied())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes order `number` of `company` Delivered (or adds it so).
fn deliver(emu: &Emulator, company: &str, number: &str) {
    let mut order = emu
        .order(company, number)
        .unwrap_or_else(|| json!({"dataAreaId": company, "SalesOrderNumber": number}));
    order["SalesOrderStatus"] = json!("Delivered");
    emu.put_order(order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_orders_apply_in_sync_without_a_write() {
    let env = env("export", 30, Faults::default()).await;
    for n in 1..=10 {
        deliver(&env.emu, "usmf", &format!("SO-2025-{n:04}"));
    }
    // Numbers that need sanitizing, and would collide without the hash.
    for number in ["SO/1", "SO 1"] {
        deliver(&env.emu, "usmf", number);
    }
    let mut dated = env.emu.order("usmf", "SO/1").unwrap();
    dated["ConfirmedReceiptDate"] = json!("2025-04-01T12:00:00Z");
    env.emu.put_order(dated);
    let kubeconfig = env.cp.kubeconfig().to_str().unwrap().to_owned();
    let out = export(
        &["--connection", "usmf", "-n", &env.ns, "--filter", DELIVERED],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches("kind: SalesOrderStatus").count(),
        12,
        "{stdout}"
    );
    assert!(stderr.contains("exported 12 orders (1 pages)"), "{stderr}");
    assert!(stdout.contains("deliveryDate: 2025-04-01"), "{stdout}");

    let file = std::env::temp_dir().join(format!("{}-export.yaml", env.ns));
    std::fs::write(&file, &stdout).unwrap();
    let applied = env.cp.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));

    let _operator = env.operator(&[]);
    wait_all(
        &env.client,
        &env.ns,
        12,
        &["InSync"],
        Duration::from_secs(60),
    )
    .await;
    let orders = env.orders().list(&ListParams::default()).await.unwrap();
    assert_eq!(orders.items.len(), 12);
    assert!(orders.items.iter().all(|o: &SalesOrderStatus| {
        o.spec.policy == Policy::Observe && o.spec.connection_ref.name == "usmf"
    }));
    let names: Vec<String> = orders.items.iter().map(|o| o.name_any()).collect();
    assert!(names.contains(&"so-2025-0001".to_owned()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("so-1--")).count(),
        2,
        "{names:?}"
    );
    assert!(env.client_writes().is_empty(), "{:?}", env.client_writes());
    let patches = env
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_orders_page_through_with_progress() {
    let emu = Emulator::start(Config {
        orders: generate_orders(3_000, 3),
        page_size: 500,
        ..Config::default()
    })
    .await
    .expect("emulator starts");
    let url = emu.url();
    let file = tempfile::NamedTempFile::new().unwrap();
    let flags = [
        "--connection",
        "usmf",
        "--url",
        &url,
        "--authority-url",
        &url,
        "--tenant-id",
        DEFAULT_TENANT,
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--output",
        file.path().to_str().unwrap(),
    ];
    let secret = [("D365_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)];
    // Every generated order is Backorder: --status writes the qualified
    // literal, which the emulator (like D365) insists on.
    let out = export(&[&flags[..], &["--status", "backorder"]].concat(), &secret);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "manifests went to --output");
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("exported "))
        .collect();
    assert_eq!(progress.len(), 6, "{stderr}");
    assert_eq!(progress[5], "exported 3000 orders (6 pages)…");
    let yaml = std::fs::read_to_string(file.path()).unwrap();
    let names: std::collections::HashSet<&str> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("  name: so-"))
        .collect();
    assert_eq!(names.len(), 3_000);
    assert!(!yaml.contains("namespace:"), "no -n, no namespace");

    let quiet = export(
        &[&flags[..], &["--quiet", "--status", "Delivered"]].concat(),
        &secret,
    );
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
    let none = std::fs::read_to_string(file.path()).unwrap();
    assert_eq!(none, "", "no order is Delivered");
    // Without the secret, nothing is sent and the user is told why.
    let refused = export(&flags, &[]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("D365_CLIENT_SECRET"));
}
