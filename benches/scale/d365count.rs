//! D365 requests of one run by kind, from the emulator's journal: what
//! the service actually received (retries and refused requests included).

use d365_emulator::Emulator;
use serde::Serialize;

/// Requests the emulator received, by kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct D365Requests {
    /// Single-order GETs.
    pub get_entity: u64,
    /// Collection GETs (bulk reads; each page counts).
    pub get_bulk: u64,
    pub patch: u64,
    pub batch: u64,
    /// `$metadata` and anything else under `/data`.
    pub other: u64,
    /// Of all the above, answered 429.
    pub throttled: u64,
    /// The emulator's request ring overflowed: GET entity/bulk split from
    /// totals and the ring's bulk count (a lower bound).
    pub ring_overflowed: bool,
}

impl D365Requests {
    pub fn total(&self) -> u64 {
        self.get_entity + self.get_bulk + self.patch + self.batch + self.other
    }

    /// Tallies what `emu` received since it started.
    pub fn of(emu: &Emulator) -> D365Requests {
        let ring = emu.requests();
        let mut c = D365Requests::default();
        for r in ring.iter().filter(|r| r.path.starts_with("/data")) {
            let rest = &r.path["/data".len()..];
            match r.method.as_str() {
                "PATCH" => c.patch += 1,
                "POST" if rest.contains("$batch") => c.batch += 1,
                "GET" if r.sales_order_number.is_some() || rest.contains('(') => c.get_entity += 1,
                "GET" if rest.contains("$metadata") || rest.len() <= 1 => c.other += 1,
                "GET" => c.get_bulk += 1,
                _ => c.other += 1,
            }
            c.throttled += u64::from(r.status == 429);
        }
        // The ring keeps the last requests; the counters (by method and
        // status) count them all, token requests included.
        let counters = emu.counters();
        let by = |method: &str| -> u64 {
            counters
                .iter()
                .filter(|(k, _)| k.split(' ').next() == Some(method))
                .map(|(_, v)| *v)
                .sum()
        };
        if counters.values().sum::<u64>() > ring.len() as u64 {
            c.ring_overflowed = true;
            c.patch = by("PATCH");
            c.batch = by("POST").saturating_sub(emu.token_requests());
            c.get_entity = by("GET").saturating_sub(c.get_bulk + c.other);
            c.throttled = counters
                .iter()
                .filter(|(k, _)| k.ends_with(" 429"))
                .map(|(_, v)| *v)
                .sum();
        }
        c
    }
}
