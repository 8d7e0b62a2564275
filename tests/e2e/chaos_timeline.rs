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

/// One operator process: a restart is a new identity (a new pod), so a
/// write names exactly one process.
#[derive(Clone, Debug)]
pub struct Incarnation {
    pub identity: String,
    /// The replica slot (its own proxy to the API server).
    pub slot: String,
    pub ended_ms: Option<u64>,
    pub end: End,
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
    pub fn incarnation(&self, identity: &str) -> Option<&Incarnation> {
        self.incarnations.iter().find(|i| i.identity == identity)
    }

    pub fn started(&mut self, identity: &str, slot: &str) {
        self.incarnations.push(Incarnation {
            identity: identity.to_string(),
            slot: slot.to_string(),
            ended_ms: None,
            end: End::Running,
        });
    }

    pub fn ended(&mut self, identity: &str, end: End) {
        if let Some(i) = self
            .incarnations
            .iter_mut()
            .find(|i| i.identity == identity)
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
