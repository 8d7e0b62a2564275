//! Reading an F&O-sized `$metadata` (issue 11 item 1): the emulator serves
//! a document padded to `METADATA_MB` MiB of other entity types before the
//! order type, and a child process reads it through the operator's client
//! (token, streaming CSDL scan within the 64 MiB budget). Prints the time
//! and the child's peak resident set (`VmHWM`), beside a child that reads
//! the small document, so the difference is what the size costs. Asserts
//! nothing about time. `cargo bench --bench metadata` (or `make bench`).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use d365_emulator::{Config, Emulator, Faults};
use sales_order_operator::d365::{ConnectionSettings, D365Client, NoopObserver};

/// The document's padding, MiB (`METADATA_MB` overrides).
const DEFAULT_MB: u64 = 50;
/// Set in the child: the emulator's URL.
const CHILD: &str = "METADATA_BENCH_URL";

fn main() {
    match std::env::var(CHILD) {
        Ok(url) => child(&url),
        Err(_) => parent(),
    }
}

/// Serves the documents and runs one child per size.
fn parent() {
    let mb = std::env::var("METADATA_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MB);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(Emulator::start(Config::default())).unwrap();
    println!(
        "$metadata read by the operator's client in a child process, emulator in the parent on loopback"
    );
    for padding in [0, mb] {
        emu.set_faults(Faults {
            metadata_padding_mb: padding,
            ..Faults::default()
        });
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe).env(CHILD, emu.url()).output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!(
            "padding {padding:>3} MiB: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Reads `$metadata` once and prints the time, the bytes and `VmHWM`.
fn child(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = ConnectionSettings::emulator(url);
    let client = D365Client::new(settings, Arc::new(NoopObserver)).unwrap();
    let (took, caps) = rt.block_on(async {
        client.authenticate().await.unwrap();
        let started = Instant::now();
        let caps = client
            .entity_capabilities(&["SalesOrderStatus", "ConfirmedReceiptDate"])
            .await
            .unwrap();
        (started.elapsed(), caps)
    });
    assert_eq!(caps.fields.len(), 2);
    println!(
        "read in {:>7.3}s, peak RSS (VmHWM) {:>6.1} MiB; {} with {} mapped fields",
        took.as_secs_f64(),
        peak_rss() as f64 / (1024.0 * 1024.0),
        caps.type_name(),
        caps.fields.len(),
    );
}

/// This process's peak resident set, bytes (Linux `/proc`; 0 elsewhere).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
