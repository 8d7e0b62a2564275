//! The seeded RNG behind every injected fault, so a run with the same seed
//! and the same request order draws the same faults. Draws happen only
//! when a fault is switched on, so enabling one fault does not shift the
//! sequence seen by a run without it.

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct FaultRng {
    rng: Mutex<StdRng>,
    seed: u64,
}

impl FaultRng {
    pub fn new(seed: u64) -> Self {
        FaultRng {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            seed,
        }
    }

    /// True with probability `p`; never draws when `p <= 0`.
    pub fn chance(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.rng.lock().random_bool(p)
    }

    /// Uniform in `0..=max`; never draws when `max == 0`.
    pub fn upto(&self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        self.rng.lock().random_range(0..=max)
    }

    /// Restarts the sequence (on reset), so a reset run replays the same faults.
    pub fn reseed(&self) {
        *self.rng.lock() = StdRng::seed_from_u64(self.seed);
    }
}
