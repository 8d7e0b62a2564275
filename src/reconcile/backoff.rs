//! Per-object retry delays, two schedules. Both start 1 s, 2 s, 4 s (the
//! policy D365 integrators recommend for conflicts), then double with
//! jitter up to a cap, forever — a GitOps object never gives up:
//! - conflicts (409/412): someone else wrote, D365 is fine, so they stay
//!   on the short schedule up to a short cap (`--conflict-backoff-cap`);
//! - errors (5xx, timeouts, throttling): D365 or the way to it is not
//!   fine, so they double up to the long cap (`--backoff-cap`).

use std::time::Duration;

/// Failures retried on the fixed 1 s, 2 s, 4 s schedule; the controller
/// raises a Conflict Event only after these.
pub const FAST_RETRIES: u32 = 3;

/// Default of `--conflict-backoff-cap`; the simulation behind it is
/// `benches/conflict_backoff.rs` (`make bench`), its reasoning in
/// docs/operations.md.
pub const DEFAULT_CONFLICT_CAP: Duration = Duration::from_secs(16);

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    pub first: Duration,
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The short schedule of conflicts, up to `cap`.
    pub fn conflicts(cap: Duration) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// Delay before retry number `failures` (1-based). `jitter` in [0, 1)
    /// spreads retries ±10 % after the fast ones so a herd of orders that
    /// failed together does not come back together.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let n = failures.max(1);
        let base = self.first.saturating_mul(1u32 << (n - 1).min(20));
        if n <= FAST_RETRIES {
            return base.min(self.cap);
        }
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        base.mul_f64(factor).min(self.cap)
    }
}

/// What a failed attempt met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// 409/412: another writer; D365 answered.
    Conflict,
    /// Anything else retried: 5xx, timeouts, throttling, an unproven write.
    Error,
}

/// An object's failures since its last success, by kind.
///
/// Each kind has its own count, so neither inherits the other's delay: a
/// conflict right after an outage waits 1 s, not the minutes the outage
/// had reached. A conflict also ends the error streak (it proves D365
/// answers again), so one 5xx after a recovery starts the long schedule
/// from 1 s. An error leaves the conflict count alone: the conflict cap is
/// short anyway, and contention does not end because D365 hiccupped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// Every failure: `lastUpdate.attempts` is 1 + this.
    pub total: u32,
    pub conflicts: u32,
    pub errors: u32,
}

impl Failures {
    /// These failures and one more of `kind`.
    pub fn and(self, kind: FailureKind) -> Self {
        let total = self.total.saturating_add(1);
        match kind {
            FailureKind::Conflict => Self {
                total,
                conflicts: self.conflicts.saturating_add(1),
                errors: 0,
            },
            FailureKind::Error => Self {
                total,
                errors: self.errors.saturating_add(1),
                ..self
            },
        }
    }
}

/// Both schedules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub conflict: BackoffPolicy,
    pub error: BackoffPolicy,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            conflict: BackoffPolicy::conflicts(DEFAULT_CONFLICT_CAP),
            error: BackoffPolicy::default(),
        }
    }
}

impl Backoff {
    /// Delay after `failures`, the last of which was of `kind`.
    pub fn delay(&self, failures: Failures, kind: FailureKind, jitter: f64) -> Duration {
        match kind {
            FailureKind::Conflict => self.conflict.delay(failures.conflicts, jitter),
            FailureKind::Error => self.error.delay(failures.errors, jitter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_retries_are_exact_then_doubling_with_jitter_to_cap() {
        let p = BackoffPolicy::default();
        let secs = |n, j| p.delay(n, j).as_secs_f64();
        assert_eq!((secs(1, 0.7), secs(2, 0.7), secs(3, 0.7)), (1.0, 2.0, 4.0));
        assert!((7.2..=8.8).contains(&secs(4, 0.0)) && (7.2..=8.8).contains(&secs(4, 0.99)));
        assert!(secs(4, 0.0) < secs(4, 0.99), "jitter must move the delay");
        assert!((14.4..=17.6).contains(&secs(5, 0.5)));
        assert_eq!(secs(9, 0.5), 256.0);
        assert_eq!(p.delay(10, 0.5), p.cap);
        assert_eq!(p.delay(u32::MAX, 0.5), p.cap, "no overflow, forever capped");
        assert_eq!(p.delay(0, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn cap_applies_to_fast_retries_too() {
        let p = BackoffPolicy {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(2),
        };
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(2));
    }

    /// Delays (whole seconds, jitter 0.5) after each failure of a sequence,
    /// conflict cap 16 s, error cap 300 s.
    fn delays(kinds: &[FailureKind]) -> Vec<u64> {
        let backoff = Backoff {
            conflict: BackoffPolicy::conflicts(Duration::from_secs(16)),
            error: BackoffPolicy::default(),
        };
        let mut failures = Failures::default();
        kinds
            .iter()
            .map(|&kind| {
                failures = failures.and(kind);
                backoff.delay(failures, kind, 0.5).as_secs()
            })
            .collect()
    }

    #[test]
    fn conflicts_and_errors_each_follow_their_own_schedule() {
        use FailureKind::{Conflict as C, Error as E};
        let cases: [(&str, &[FailureKind], &[u64]); 5] = [
            (
                "conflicts stop at their cap",
                &[C, C, C, C, C, C, C],
                &[1, 2, 4, 8, 16, 16, 16],
            ),
            (
                "errors go on to the long cap",
                &[E, E, E, E, E, E, E, E, E, E],
                &[1, 2, 4, 8, 16, 32, 64, 128, 256, 300],
            ),
            (
                "a conflict after an outage waits 1 s",
                &[E, E, E, E, E, E, E, E, E, C],
                &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1],
            ),
            (
                "an error after a conflict starts afresh",
                &[E, E, E, E, C, E],
                &[1, 2, 4, 8, 1, 1],
            ),
            (
                "errors leave the conflict count",
                &[C, C, C, E, C],
                &[1, 2, 4, 1, 8],
            ),
        ];
        for (case, kinds, want) in cases {
            assert_eq!(delays(kinds), want, "{case}");
        }
        let mut f = Failures::default();
        for kind in [C, E, C, E] {
            f = f.and(kind);
        }
        assert_eq!(
            f,
            Failures {
                total: 4,
                conflicts: 2,
                errors: 1
            }
        );
    }
}
