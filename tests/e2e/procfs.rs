//! Readers of a process's `/proc` entries: memory and CPU of the operator
//! child, for the heavy scale test (tests/e2e/scale.rs) and `make bench`
//! (benches/scale.rs, which includes this file by `#[path]`).

use std::time::Duration;

/// A field of `/proc/<pid>/status` (e.g. `VmHWM:`, `VmRSS:`), in KiB;
/// `None` once the process is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of process `pid` so far; `None` once it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime 14th and stime 15th of the whole line.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks()? as f64,
    ))
}

/// VmRSS of `pid` in MiB once it is at rest: two readings 1 s apart
/// within 1 % (the last Events leave, the allocator returns freed pages
/// within a second), at most 10 s; `None` once the process is gone.
pub async fn rss_at_rest(pid: u32) -> Option<f64> {
    let read = || status_kib(pid, "VmRSS:").map(|k| k as f64 / 1024.0);
    let mut last = read()?;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = read()?;
        if (now - last).abs() <= last * 0.01 {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of utime/stime.
fn clock_ticks() -> Option<u64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
