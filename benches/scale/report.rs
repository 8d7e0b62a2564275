//! The table on stdout and the JSON file.

use std::path::Path;

use serde::Serialize;

use super::result::RunResult;

/// Facts about the machine the figures came from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    /// 1, 5 and 15-minute load averages (`/proc/loadavg`).
    pub load_at_start: Option<[f64; 3]>,
    pub load_at_end: Option<[f64; 3]>,
    /// `release` under `cargo bench`, `debug` otherwise.
    pub build: &'static str,
}

impl Machine {
    pub fn now() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            load_at_start: load_average(),
            load_at_end: None,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.1}"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |m| format!("{m:.2}"))
}

const HEADER: &str = "mode      orders confl |  50%s   90%s   99%s  100%s | bound s (kind)  ratio | GET/o bulkGET/o PATCH/o batch/o  429% | stat/o  ev/o | RSS MiB peak  rest  CPU s  CPU ms/o";

fn row(r: &RunResult) -> String {
    let (kind, bound) = r.bounds.binding();
    let d = &r.d365;
    let per = |c: u64| r.per_order(c as f64);
    let throttled = 100.0 * d.throttled as f64 / d.total().max(1) as f64;
    format!(
        "{:<9} {:>6} {:>5.2} | {:>5} {:>6} {:>6} {:>6} | {:>7.1} ({:<7}) {:>5} | {:>5.2} {:>9.3} {:>7.2} {:>7.3} {:>5.1} | {:>6.2} {:>5.2} | {:>12} {:>5} {:>6} {:>9}",
        r.mode.name(),
        r.orders,
        r.conflicts,
        secs(r.ready_seconds[0]),
        secs(r.ready_seconds[1]),
        secs(r.ready_seconds[2]),
        secs(r.ready_seconds[3]),
        bound,
        kind,
        r.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}")),
        per(d.get_entity),
        per(d.get_bulk),
        per(d.patch),
        per(d.batch),
        throttled,
        r.per_order(r.status_writes),
        r.per_order(r.events as f64),
        secs(r.peak_rss_mib),
        secs(r.rest_rss_mib),
        secs(r.cpu_seconds),
        r.cpu_ms_per_order()
            .map_or_else(|| "-".into(), |x| format!("{x:.2}")),
    )
}

/// The table, one row per run, and the bounds each row was held to.
pub fn print_table(runs: &[RunResult], machine: &Machine) {
    println!("\n{HEADER}");
    for r in runs {
        println!("{}", row(r));
    }
    println!(
        "bounds (s): budget = D365 requests made / maxRequestsPerSecond; latency = requests x {} ms / concurrency; \
         api = a plain client's N status writes (the operator's status) + N Events at the reconcile concurrency, this run \
         (in brackets: with a one-condition status, the bound earlier runs used); \
         backoff = the conflict schedule's simulated time for all N (mean of 10 draws). ratio = 100% / largest bound. \
         control plane = etcd + kube-apiserver CPU per order, the operator's run vs the plain client's writes.",
        super::modes::LATENCY_MS
    );
    for r in runs {
        let b = &r.bounds;
        println!(
            "  {:<9} {:>6} {:.2}: budget {:.1}, latency {:.1}, api {:.1} ({:.1}), backoff {:.1}; control plane {} vs {} ms/order{}",
            r.mode.name(),
            r.orders,
            r.conflicts,
            b.budget,
            b.latency,
            b.api_server,
            b.api_server_minimal,
            b.conflict_schedule,
            ms(r.control_plane_ms),
            ms(b.api_control_plane_ms),
            r.operator_exited
                .as_ref()
                .map_or_else(String::new, |e| format!("; OPERATOR EXITED: {e}"))
        );
    }
    println!(
        "machine: {} cores, {} build, load average {:?} at start, {:?} at end",
        machine.cores, machine.build, machine.load_at_start, machine.load_at_end
    );
}

/// `scale.json`: the machine facts and one object per run.
pub fn write_json(dir: &Path, runs: &[RunResult], machine: &Machine) -> std::io::Result<()> {
    let doc = serde_json::json!({"machine": machine, "runs": runs});
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("scale.json"), text)
}
