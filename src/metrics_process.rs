//! The standard `process_*` metrics (the names every Prometheus client
//! library exports, so stock dashboards and alerts work), read from
//! `/proc/self` at each scrape. prometheus-client has no process collector;
//! off Linux there is no `/proc/self`, and the metrics are left out rather
//! than exported as zeros.

use std::fmt::Error as FmtError;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `USER_HZ`: the unit of the tick counts in `/proc/<pid>/stat`. The kernel
/// fixes it at 100 for user space on every architecture Linux supports
/// (proc(5)), whatever the kernel's internal HZ.
const TICKS_PER_SECOND: f64 = 100.0;

/// What one read of `/proc/self` found; a field is `None` when its file
/// could not be read or parsed (then that metric is left out).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Sample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Registered once; samples on every scrape.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), FmtError> {
        let s = sample();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes.map(|b| b as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes.map(|b| b as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds.map(|b| b as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds.map(|b| b as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

/// Reads `/proc/self` now (everything `None` off Linux).
pub(crate) fn sample() -> Sample {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat").and_then(|s| parse_stat(&s));
    let status = read("/proc/self/status");
    let kib = |key: &str| status.as_deref().and_then(|s| status_kib(s, key));
    Sample {
        cpu_seconds: stat.map(|s| s.cpu_ticks as f64 / TICKS_PER_SECOND),
        resident_bytes: kib("VmRSS:").map(|k| k * 1024),
        virtual_bytes: kib("VmSize:").map(|k| k * 1024),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        max_fds: read("/proc/self/limits").and_then(|s| max_open_files(&s)),
        start_time_seconds: start_time(stat),
    }
}

/// When the process started, seconds since the epoch: it never changes,
/// so `/proc/stat` is read for it once, not on every scrape.
fn start_time(stat: Option<Stat>) -> Option<f64> {
    static START: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        stat.zip(boot)
            .map(|(s, b)| b as f64 + s.start_ticks as f64 / TICKS_PER_SECOND)
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stat {
    /// utime + stime.
    pub cpu_ticks: u64,
    /// Start time after boot.
    pub start_ticks: u64,
}

/// Fields of `/proc/self/stat` (proc(5)). The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0, so field n is index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
    })
}

/// The first number after `prefix` on the line that starts with it.
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

/// A `Key:   123 kB` line of `/proc/self/status`.
pub(crate) fn status_kib(text: &str, key: &str) -> Option<u64> {
    number_after(text, key)
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
pub(crate) fn max_open_files(text: &str) -> Option<u64> {
    number_after(text, "Max open files")
}

/// `btime` of `/proc/stat`: boot time, seconds since the epoch.
pub(crate) fn boot_time(text: &str) -> Option<u64> {
    number_after(text, "btime ")
}
