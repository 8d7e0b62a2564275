//! `make bench`'s scale table (issue 12 item 7): N changed orders x a
//! conflict rate x connection modes, on the real control plane (testkit's
//! etcd + kube-apiserver) and the in-process emulator, with the operator
//! binary as a child process. Prints one table; writes `scale.json` and
//! `scale.png` (Ready over time) to `BENCH_OUT` (default `target/bench`).
//!
//! `BENCH_SCALE=1 cargo bench --bench scale -- [--quick] [--huge]` (what
//! `make bench` runs, with the control plane and a font): `--quick` runs N =
//! 1,000 only; `--huge` adds 100,000 orders (bulk and tuned, no
//! conflicts). For development: `BENCH_N=200,1000`, `BENCH_MODES=bulk,tuned`,
//! `BENCH_CONFLICTS=0`.

#[allow(dead_code)]
#[path = "../tests/e2e/procfs.rs"]
mod procfs;
// The e2e tests' plumbing (emulator, Secret, operator child), shared.
#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

#[path = "scale/apibound.rs"]
mod apibound;
#[path = "scale/d365count.rs"]
mod d365count;
#[path = "scale/goals.rs"]
mod goals;
#[path = "scale/metrics.rs"]
mod metrics;
#[path = "scale/modes.rs"]
mod modes;
#[path = "scale/plot.rs"]
mod plot;
#[path = "scale/report.rs"]
mod report;
#[path = "scale/result.rs"]
mod result;
#[path = "scale/run.rs"]
mod run;

use std::path::PathBuf;

use modes::Mode;
use run::Plan;

/// Which runs, from the flags and the `BENCH_*` overrides.
fn plans(args: &[String]) -> Vec<Plan> {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let sizes = if has("--quick") { "1000" } else { "1000,10000" };
    let sizes: Vec<usize> = list("BENCH_N", sizes)
        .iter()
        .map(|s| s.replace('_', "").parse().expect("BENCH_N: numbers"))
        .collect();
    let conflicts: Vec<f64> = list("BENCH_CONFLICTS", "0,0.4")
        .iter()
        .map(|s| s.parse().expect("BENCH_CONFLICTS: rates"))
        .collect();
    let all: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
    let modes: Vec<Mode> = list("BENCH_MODES", &all.join(","))
        .iter()
        .map(|s| Mode::parse(s).unwrap_or_else(|| panic!("BENCH_MODES: {s} is not one of {all:?}")))
        .collect();
    let mut plans = Vec::new();
    for &orders in &sizes {
        for &conflicts in &conflicts {
            for &mode in &modes {
                plans.push(Plan {
                    orders,
                    conflicts,
                    mode,
                });
            }
        }
    }
    if has("--huge") {
        for mode in [Mode::Bulk, Mode::Tuned] {
            plans.push(Plan {
                orders: 100_000,
                conflicts: 0.0,
                mode,
            });
        }
    }
    plans
}

fn main() {
    // `cargo bench --workspace` runs every bench; this one takes minutes to
    // hours and its own flags, so it runs as `make bench`'s second step.
    if std::env::var_os("BENCH_SCALE").is_none() {
        println!("scale: skipped (run by `make bench`, or set BENCH_SCALE=1)");
        return;
    }
    // `cargo bench` adds `--bench`; the others are this bench's own.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(bad) = args
        .iter()
        .find(|a| !["--bench", "--quick", "--huge"].contains(&a.as_str()))
    {
        eprintln!("scale: unknown argument {bad}; flags: --quick, --huge (see benches/scale.rs)");
        std::process::exit(2);
    }
    let out =
        std::env::var_os("BENCH_OUT").map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
    std::fs::create_dir_all(&out).expect("BENCH_OUT is a writable folder");
    let plans = plans(&args);
    let mut machine = report::Machine::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runs = rt.block_on(async {
        let mut bounds = apibound::ApiBounds::default();
        let mut runs = Vec::new();
        for plan in &plans {
            let api = bounds.get(plan.orders, plan.mode.reconciles()).await;
            let result = run::run(plan, api).await;
            eprintln!(
                "scale: {} N={} conflicts={}: 100 % Ready after {:?} s",
                plan.mode.name(),
                plan.orders,
                plan.conflicts,
                result.ready_seconds[3]
            );
            runs.push(result);
        }
        runs
    });
    machine.load_at_end = report::load_average();
    report::print_table(&runs, &machine);
    goals::print(&runs);
    report::write_json(&out, &runs, &machine).expect("writing scale.json");
    match plot::draw(&out, &runs) {
        Ok(png) => println!(
            "wrote {} and {}",
            out.join("scale.json").display(),
            png.display()
        ),
        Err(e) => println!("wrote {}; no plot: {e}", out.join("scale.json").display()),
    }
}
