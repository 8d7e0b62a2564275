//! What a replica does with the Lease at one tick: a pure function of the
//! record read and this replica's own clock.
//!
//! Another holder's lease expires `leaseDurationSeconds` after this replica
//! last *saw the record change* (its resourceVersion), never by comparing
//! the holder's `renewTime` (another node's wall clock) with ours: so only
//! the two clocks' rates matter, not their offset. A replica that has just
//! started therefore waits one full lease duration before it takes over a
//! lease that was never released.

use std::time::Duration;

use tokio::time::Instant;

/// The parts of a Lease that decide who leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// `None` (or empty) when released.
    pub holder: Option<String>,
    /// The holder's `leaseDurationSeconds`.
    pub duration: Duration,
    /// Changes on every write, renewals included.
    pub version: String,
}

/// One tick's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// No Lease yet: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Released, or another holder's lease ran out: take it.
    Acquire,
    /// Another replica holds a live lease, by our count for `left` more.
    Wait { holder: String, left: Duration },
}

/// When this replica last saw the record change.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    seen: Option<(String, Instant)>,
}

impl Observer {
    /// The step for `identity`, given the record read at `now` (`None`: no
    /// Lease exists).
    pub(crate) fn step(&mut self, identity: &str, record: Option<&Record>, now: Instant) -> Step {
        let Some(record) = record else {
            self.seen = None;
            return Step::Create;
        };
        let seen_at = match &self.seen {
            Some((version, at)) if *version == record.version => *at,
            _ => {
                self.seen = Some((record.version.clone(), now));
                now
            }
        };
        match record.holder.as_deref() {
            None | Some("") => Step::Acquire,
            Some(holder) if holder == identity => Step::Renew,
            Some(holder) => {
                let expires = seen_at + record.duration;
                if now >= expires {
                    Step::Acquire
                } else {
                    Step::Wait {
                        holder: holder.to_owned(),
                        left: expires - now,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(5);

    fn held_by(holder: &str, version: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            duration: D,
            version: version.into(),
        }
    }

    #[test]
    fn no_lease_is_created_a_free_one_taken_our_own_renewed() {
        let now = Instant::now();
        let mut o = Observer::default();
        assert_eq!(o.step("a", None, now), Step::Create);
        let free = Record {
            holder: None,
            ..held_by("", "1")
        };
        assert_eq!(o.step("a", Some(&free), now), Step::Acquire);
        assert_eq!(o.step("a", Some(&held_by("", "2")), now), Step::Acquire);
        assert_eq!(o.step("a", Some(&held_by("a", "3")), now), Step::Renew);
    }

    #[test]
    fn another_holder_expires_a_duration_after_its_last_change_seen() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        let wait = |left| Step::Wait {
            holder: "b".into(),
            left,
        };
        assert_eq!(o.step("a", Some(&held_by("b", "1")), t0), wait(D));
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            o.step("a", Some(&held_by("b", "1")), t1),
            wait(Duration::from_secs(2))
        );
        // b renewed: the count starts again from when we saw it.
        assert_eq!(o.step("a", Some(&held_by("b", "2")), t1), wait(D));
        let t2 = t1 + D - Duration::from_millis(1);
        assert_eq!(
            o.step("a", Some(&held_by("b", "2")), t2),
            wait(Duration::from_millis(1))
        );
        assert_eq!(o.step("a", Some(&held_by("b", "2")), t1 + D), Step::Acquire);
    }

    #[test]
    fn a_new_replica_waits_a_full_duration_whatever_the_record_says() {
        // The record may have been renewed long ago by the holder's clock;
        // we cannot compare clocks, so the count starts at our first look.
        let later = Instant::now() + Duration::from_secs(3600);
        let mut o = Observer::default();
        let step = o.step("a", Some(&held_by("b", "7")), later);
        assert_eq!(
            step,
            Step::Wait {
                holder: "b".into(),
                left: D
            }
        );
    }

    #[test]
    fn a_deleted_lease_forgets_what_was_seen() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        o.step("a", Some(&held_by("b", "1")), t0);
        assert_eq!(o.step("a", None, t0 + D), Step::Create);
        let t1 = t0 + D * 2;
        // The same version string again is a new observation.
        assert!(matches!(
            o.step("a", Some(&held_by("b", "1")), t1),
            Step::Wait { left, .. } if left == D
        ));
    }
}
