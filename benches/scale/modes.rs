//! The connection modes compared: each is a D365Connection spec (what a
//! user would write) plus the emulator it runs against.

use d365_emulator::{CapacityModel, Faults};
use serde_json::{Value, json};

/// D365's answer latency in every run (the 20 ms).
pub const LATENCY_MS: u64 = 20;
/// The capacity model of the adaptive runs: this many requests in parallel
/// at [`LATENCY_MS`], slower past it, 429 past twice as many in flight.
pub const CAPACITY: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only `maxRequestsPerSecond: 20`; the rest as the CRD defaults it.
    Defaults,
    /// 20 requests/s with bulk reads and `$batch` writes.
    Bulk,
    /// `adaptiveConcurrency` against the emulator's capacity model.
    Adaptive,
    /// 10,000 requests/s, 64 in flight: D365 is no bound at all.
    Tuned,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Defaults, Mode::Bulk, Mode::Adaptive, Mode::Tuned];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Defaults => "defaults",
            Mode::Bulk => "bulk",
            Mode::Adaptive => "adaptive",
            Mode::Tuned => "tuned",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The spec fields this mode sets; everything else is left to the
    /// CRD's (and the operator's) defaults.
    pub fn spec_fields(self) -> Value {
        match self {
            Mode::Defaults => json!({"maxRequestsPerSecond": 20}),
            Mode::Bulk => json!({
                "maxRequestsPerSecond": 20,
                "batch": {"maxOperations": 500, "windowMilliseconds": 50},
            }),
            Mode::Adaptive => json!({
                "maxRequestsPerSecond": 2000,
                "maxConcurrentRequests": 64,
                "adaptiveConcurrency": true,
            }),
            Mode::Tuned => json!({"maxRequestsPerSecond": 10000, "maxConcurrentRequests": 64}),
        }
    }

    /// Orders reconciled at once (`--max-concurrent-reconciles`, always
    /// passed so no run depends on the flag's default): 64 as in the
    /// issue's tuned figure; bulk reads and batches carry whatever waits,
    /// so bulk gets many in flight (as tests/e2e/bulk.rs).
    pub fn reconciles(self) -> u16 {
        match self {
            Mode::Bulk => 1024,
            Mode::Defaults | Mode::Adaptive | Mode::Tuned => 64,
        }
    }

    /// The emulator's behaviour: a share of PATCHes meets a concurrent edit
    /// (`conflict_rate`, the field report's 40 %); a fixed latency, or for
    /// the adaptive mode the capacity model at that latency.
    pub fn faults(self, conflicts: f64) -> Faults {
        let mut faults = Faults {
            conflict_rate: conflicts,
            ..Faults::default()
        };
        if self == Mode::Adaptive {
            faults.capacity = Some(CapacityModel {
                concurrent: CAPACITY,
                base_latency_ms: LATENCY_MS,
                throttle_in_flight: 2 * CAPACITY,
                retry_after_secs: 1,
            });
        } else {
            faults.latency_ms = LATENCY_MS;
        }
        faults
    }
}
