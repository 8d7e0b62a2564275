//! Shards: past one leader's capacity, N operator deployments each take the
//! orders whose identity hashes to their index. Duplicates of one D365
//! order always share a shard because only what every duplicate shares is
//! hashed: the folded company and order number (both immutable). The
//! connection's URL is left out: a user may change it, and two orders with
//! one company and number in different environments sharing a shard is
//! harmless.
//!
//! The hash is written out here (FNV-1a 64 with a final mix), not taken
//! from `std`, whose hashers are randomized or may change between
//! versions: an order must stay in its shard across upgrades. Tests pin
//! values.

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::duplicates::fold;
use crate::api::SalesOrderStatus;

/// Sharding flags (`--shard-count`, `--shard-index`).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ShardArgs {
    /// Number of shards the orders are split into; each shard runs its own
    /// operator deployment with its own Lease.
    #[arg(long, env = "SHARD_COUNT", default_value_t = 1)]
    pub shard_count: u32,
    /// This operator's shard, 0-based: it reconciles only the orders whose
    /// company and order number hash to it, and ignores the rest.
    #[arg(long, env = "SHARD_INDEX", default_value_t = 0)]
    pub shard_index: u32,
}

impl ShardArgs {
    pub fn shard(&self) -> Result<Shard, ShardError> {
        Shard::new(self.shard_index, self.shard_count)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard-count must be at least 1")]
    NoShards,
    #[error(
        "--shard-index {index} is not below --shard-count {count} (indexes are 0-based: 0..={last})",
        last = count - 1
    )]
    IndexOutOfRange { index: u32, count: u32 },
}

/// One shard of `count`: which orders this operator takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    /// The only shard: every order.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        match (index, count) {
            (_, 0) => Err(ShardError::NoShards),
            (i, n) if i >= n => Err(ShardError::IndexOutOfRange { index, count }),
            _ => Ok(Self { index, count }),
        }
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this shard takes the order `company`/`number` (as written
    /// in a spec; folded here like the duplicate check folds them).
    pub fn takes(&self, company: &str, number: &str) -> bool {
        self.count == 1 || shard_of(company, number, self.count) == self.index
    }

    /// Whether this shard takes `order`.
    pub fn takes_order(&self, order: &SalesOrderStatus) -> bool {
        let taken = self.takes(&order.spec.data_area_id, &order.spec.sales_order_number);
        if !taken {
            tracing::trace!(order = %order.name_any(), "in another shard; ignored");
        }
        taken
    }

    /// A watch event with the orders of other shards dropped (`None` when
    /// nothing is left). Applied before the reflector, so those orders are
    /// never cached, indexed, queued, reconciled or counted: as if a label
    /// selector had left them out, but one that needs no label. Their
    /// shard follows from immutable fields, so an order never changes
    /// shard while watched.
    pub(super) fn keep(&self, event: Event<SalesOrderStatus>) -> Option<Event<SalesOrderStatus>> {
        match event {
            Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) if !self.takes_order(&o) => {
                None
            }
            other => Some(other),
        }
    }

    /// The Lease of this shard: `base` itself with one shard (so an
    /// unsharded install keeps its Lease), else `<base>-shard-<index>`.
    pub fn lease_name(&self, base: &str) -> String {
        if self.count == 1 {
            base.to_owned()
        } else {
            format!("{base}-shard-{}", self.index)
        }
    }
}

/// The shard (of `count`, at least 1) of the order `company`/`number`.
pub fn shard_of(company: &str, number: &str, count: u32) -> u32 {
    let hash = order_hash(company, number);
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
}

/// A stable 64-bit hash of an order's folded company and number. Frozen:
/// changing it moves orders between shards on upgrade.
pub fn order_hash(company: &str, number: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (company, number) = (fold(company), fold(number));
    // 0xFF never occurs in UTF-8, so ("ab", "c") and ("a", "bc") differ.
    let bytes = company.bytes().chain([0xFF]).chain(number.bytes());
    let fnv = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    mix(fnv)
}

/// SplitMix64's finaliser: FNV's low bits are weak for short keys that
/// differ in their last byte; this spreads every input bit over all.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
