//! Per-object retry delays: 1 s, 2 s, 4 s for the first three failures (the
//! policy D365 integrators recommend for conflicts), then doubling with
//! jitter up to a cap, forever — a GitOps object never gives up.

use std::time::Duration;

/// Failures retried on the fixed 1 s, 2 s, 4 s schedule; the controller
/// raises a Conflict Event only after these.
pub const FAST_RETRIES: u32 = 3;

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
}
