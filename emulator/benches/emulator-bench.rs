//! Throughput and memory of the emulator: loads 100,000 generated orders
//! in-process, prints RSS, then drives GETs by key over keep-alive HTTP/1.1
//! with N concurrent connections for a fixed time and prints requests/s
//! and p50/p99 latency. The load generator is a bare hyper client (one
//! connection per task) so that as little of the shared CPU as possible
//! goes to the client.
//!
//! `cargo bench -p d365-emulator --bench emulator-bench -- --seconds 10 --connections 32 --orders 100000`

use std::time::{Duration, Instant};

use bytes::Bytes;
use d365_emulator::{Config, Emulator};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let seconds = arg("--seconds", 10);
    let connections = arg("--connections", 32) as usize;
    let n_orders = arg("--orders", 100_000) as usize;
    let workers = arg("--threads", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(seconds, connections, n_orders));
}

async fn run(seconds: u64, connections: usize, n_orders: usize) {
    let rss0 = rss_kib();
    let emu = Emulator::start(Config {
        generate: n_orders,
        seed: 1,
        ..Config::default()
    })
    .await
    .expect("start");
    let rss1 = rss_kib();
    println!(
        "orders loaded: {n_orders}; RSS {:.1} MiB (before load {:.1} MiB, delta {:.1} MiB)",
        rss1 as f64 / 1024.0,
        rss0 as f64 / 1024.0,
        (rss1 - rss0) as f64 / 1024.0
    );
    let token = token(&emu).await;
    let host = emu.url().trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let token = format!("Bearer {token}");
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(200_000);
            let mut errors = 0u64;
            let mut i = c as u64 * 7919;
            while Instant::now() < deadline {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = (i >> 33) as usize % n_orders + 1;
                let path = format!(
                    "/data/SalesOrderHeadersV2(dataAreaId='USMF',SalesOrderNumber='SO-2025-{n:04}')?cross-company=true"
                );
                let req = Request::get(path)
                    .header(HOST, &host)
                    .header(AUTHORIZATION, &token)
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let t = Instant::now();
                if sender.ready().await.is_err() {
                    errors += 1;
                    break;
                }
                match sender.send_request(req).await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.into_body().collect().await;
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.expect("task");
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "GET by key: {} requests in {elapsed:.1} s with {connections} connections = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms; errors {errors}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
    );
    println!(
        "RSS after run: {:.1} MiB (includes the request ring)",
        rss_kib() as f64 / 1024.0
    );
    emu.shutdown().await;
}

/// One client-credentials token over plain reqwest.
async fn token(emu: &Emulator) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", d365_emulator::DEFAULT_CLIENT_ID),
            ("client_secret", d365_emulator::DEFAULT_CLIENT_SECRET),
            ("scope", &emu.scope()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
