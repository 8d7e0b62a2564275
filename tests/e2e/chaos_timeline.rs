//! What the chaos run did and when, on the same clock as the emulator's
//! journal (milliseconds since the Unix epoch): which operator process
//! ran under which identity, and when each lost the API server.

use std::fmt;

/// Now, on the journal's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How an operator process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Running,
    Killed,
    /// It exited by itself (e.g. on losing the Lease) and was restarted.
    Exited,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Running => "is running",
            End::Killed => "was SIGKILLed",
            End::Exited => "exited",
        })
    }
}

/// One operator process. A process that exited by itself comes back under
/// the same identity (the kubelet restarts the container in its pod); a
/// SIGKILLed one is replaced under a new identity (a new pod), so a write
/// after a kill is told apart from its replacement's.
#[derive(Clone, Debug)]
pub struct Incarnation {
    pub identity: String,
    /// The replica slot (its own proxy to the API server).
    pub slot: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub end: End,
}

impl Incarnation {
    /// Whether it could have written at `at_ms`, allowing `in_flight` for a
    /// request sent just before it died.
    pub fn alive_at(&self, at_ms: u64, in_flight: u64) -> bool {
        self.started_ms <= at_ms && self.ended_ms.is_none_or(|end| at_ms <= end + in_flight)
    }
}

/// A time when a slot (or, with `slot: None`, every replica) could not
/// reach the API server, so could not renew the Lease.
#[derive(Clone, Debug)]
pub struct Outage {
    pub slot: Option<String>,
    pub what: String,
    pub from_ms: u64,
    pub to_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub lease_ms: u64,
    pub incarnations: Vec<Incarnation>,
    pub outages: Vec<Outage>,
}

impl Timeline {
    /// Every process that ran under `identity`, in start order.
    pub fn incarnations_of(&self, identity: &str) -> Vec<&Incarnation> {
        self.incarnations
            .iter()
            .filter(|i| i.identity == identity)
            .collect()
    }

    pub fn started(&mut self, identity: &str, slot: &str) {
        self.incarnations.push(Incarnation {
            identity: identity.to_string(),
            slot: slot.to_string(),
            started_ms: now_ms(),
            ended_ms: None,
            end: End::Running,
        });
    }

    /// The running process under `identity` ended.
    pub fn ended(&mut self, identity: &str, end: End) {
        if let Some(i) = self
            .incarnations
            .iter_mut()
            .find(|i| i.identity == identity && i.ended_ms.is_none())
        {
            i.ended_ms = Some(now_ms());
            i.end = end;
        }
    }

    /// Incarnations that ended with `end`.
    pub fn count(&self, end: End) -> usize {
        self.incarnations.iter().filter(|i| i.end == end).count()
    }
}
