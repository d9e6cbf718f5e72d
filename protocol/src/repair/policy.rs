//! When a segment needs repair, and when it is lost.
//!
//! Like Storj's repair threshold: repairing at the first missing shard wastes
//! bandwidth on churn that heals itself, repairing at `k` risks loss. A
//! segment is queued for repair once its healthy shards fall to the
//! threshold, and is lost below `k`. Repair rebuilds every missing shard
//! from any `k` healthy ones, so its cost is `k` shard downloads plus one
//! upload per missing shard.

use crate::params::CodingParams;

/// What to do about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Enough shards; nothing to do.
    Healthy,
    /// At or below the threshold: repair now.
    NeedsRepair,
    /// Fewer than `k` shards: the segment cannot be rebuilt.
    Lost,
}

/// The repair rule for one set of parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairPolicy {
    params: CodingParams,
    threshold: usize,
}

impl RepairPolicy {
    /// Repair when at most `threshold` shards remain; clamped to `k..n`.
    pub fn new(params: CodingParams, threshold: usize) -> Self {
        Self {
            params,
            threshold: threshold.clamp(params.k(), params.n() - 1),
        }
    }

    /// The default threshold: `k` plus a quarter of `m` (at least one), so
    /// that a quarter of the parity stays as a buffer while repair runs.
    pub fn default_for(params: CodingParams) -> Self {
        Self::new(params, params.k() + (params.m() / 4).max(1))
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn params(&self) -> CodingParams {
        self.params
    }

    /// The verdict for a segment with `healthy` good shards.
    pub fn health(&self, healthy: usize) -> Health {
        if healthy < self.params.k() {
            Health::Lost
        } else if healthy <= self.threshold {
            Health::NeedsRepair
        } else {
            Health::Healthy
        }
    }

    /// Shard transfers a repair costs: `k` reads plus one write per missing shard.
    pub fn repair_transfers(&self, healthy: usize) -> usize {
        self.params.k() + self.params.n().saturating_sub(healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let p = CodingParams::new(10, 20).unwrap();
        let r = RepairPolicy::default_for(p);
        assert_eq!(r.threshold(), 15);
        assert_eq!(r.health(30), Health::Healthy);
        assert_eq!(r.health(16), Health::Healthy);
        assert_eq!(r.health(15), Health::NeedsRepair);
        assert_eq!(r.health(10), Health::NeedsRepair);
        assert_eq!(r.health(9), Health::Lost);
        assert_eq!(r.repair_transfers(15), 25);
        assert_eq!(RepairPolicy::new(p, 3).threshold(), 10);
        assert_eq!(RepairPolicy::new(p, 99).threshold(), 29);
        let tiny = CodingParams::new(1, 1).unwrap();
        assert_eq!(RepairPolicy::default_for(tiny).threshold(), 1);
    }
}
