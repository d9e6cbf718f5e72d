//! What a period's outcome does to a node: its health, its pay, its stake.
//!
//! The chain's state machine calls these rules once per node per period and
//! the simulator calls the same ones, so both agree on when a node turns
//! faulty or is disqualified. Modelled on Filecoin's WindowPoSt faults: a
//! missed period pays nothing (what it would have paid stays in the deal,
//! for repair), a few misses in a row make the node *faulty* (it gets no new
//! deals and its shards count as unhealthy), more make it *disqualified*:
//! its whole stake is slashed and its commitments are orphaned for repair.

use serde::{Deserialize, Serialize};

use super::ProofParams;

/// Where a node stands in the proof accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Proving; may take new deals.
    #[default]
    Active,
    /// Missed `faulty_after` periods in a row: no new deals, its shards are
    /// unhealthy. One accepted proof makes it active again.
    Faulty,
    /// Missed `disqualify_after` periods in a row: slashed, orphaned, for good.
    Disqualified,
}

impl Health {
    /// As shown by APIs and the CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::Faulty => "faulty",
            Health::Disqualified => "disqualified",
        }
    }
}

/// How a node's period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodOutcome {
    /// A proof was accepted and every sample held.
    Proven,
    /// A proof was accepted but a sample found data the node had not
    /// declared lost: the leaf is marked lost and the period is not paid.
    Failed,
    /// No proof in the window.
    Missed,
}

/// A node's proof history, kept in its registry record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRecord {
    pub health: Health,
    pub consecutive_misses: u32,
    /// Periods proven.
    pub accepted: u64,
    /// Periods missed or failed.
    pub missed: u64,
    /// The last period settled for this node.
    pub last_period: Option<u64>,
}

impl ProofRecord {
    /// Applies one period's outcome; returns the new health when it changed.
    pub fn settle(
        &mut self,
        params: &ProofParams,
        period: u64,
        outcome: PeriodOutcome,
    ) -> Option<Health> {
        let before = self.health;
        self.last_period = Some(period);
        match outcome {
            PeriodOutcome::Proven => {
                self.accepted = self.accepted.saturating_add(1);
                self.consecutive_misses = 0;
                if self.health == Health::Faulty {
                    self.health = Health::Active;
                }
            }
            PeriodOutcome::Failed | PeriodOutcome::Missed => {
                self.missed = self.missed.saturating_add(1);
                self.consecutive_misses = self.consecutive_misses.saturating_add(1);
                if self.health != Health::Disqualified {
                    if self.consecutive_misses >= params.disqualify_after {
                        self.health = Health::Disqualified;
                    } else if self.consecutive_misses >= params.faulty_after {
                        self.health = Health::Faulty;
                    }
                }
            }
        }
        (self.health != before).then_some(self.health)
    }
}

/// One node's pay for one period of one deal: the deal's price per period
/// pro rata to the bytes the node holds and has not lost (rounded down; the
/// remainder stays in escrow).
pub fn period_share(price_per_period: u64, paid_bytes: u64, deal_size: u64) -> u64 {
    (u128::from(price_per_period) * u128::from(paid_bytes) / u128::from(deal_size.max(1))) as u64
}

/// The stake a node must lock to commit `bytes`: the chain's minimum plus
/// `stake_per_gib` for every started GiB, so that slashing costs a cheater
/// in proportion to what it claimed to store.
pub fn required_stake(stake_per_gib: u64, min_stake: u64, bytes: u64) -> Option<u64> {
    let gib = bytes.div_ceil(1 << 30);
    stake_per_gib.checked_mul(gib)?.checked_add(min_stake)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_make_faulty_then_disqualified_and_a_proof_heals_only_faulty() {
        let p = ProofParams {
            faulty_after: 2,
            disqualify_after: 4,
            ..ProofParams::default()
        };
        let mut r = ProofRecord::default();
        assert_eq!(r.settle(&p, 0, PeriodOutcome::Missed), None);
        assert_eq!(r.settle(&p, 1, PeriodOutcome::Failed), Some(Health::Faulty));
        assert_eq!(r.settle(&p, 2, PeriodOutcome::Proven), Some(Health::Active));
        assert_eq!(r.consecutive_misses, 0);
        for period in 3..6 {
            r.settle(&p, period, PeriodOutcome::Missed);
        }
        assert_eq!(r.health, Health::Faulty);
        assert_eq!(
            r.settle(&p, 6, PeriodOutcome::Missed),
            Some(Health::Disqualified)
        );
        assert_eq!(r.settle(&p, 7, PeriodOutcome::Proven), None);
        assert_eq!(r.health, Health::Disqualified);
        assert_eq!((r.accepted, r.missed, r.last_period), (2, 6, Some(7)));
    }

    #[test]
    fn shares_and_stake_round_safely() {
        assert_eq!(period_share(100, 1, 3), 33);
        assert_eq!(period_share(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(period_share(5, 1, 0), 5);
        assert_eq!(required_stake(10, 7, 0), Some(7));
        assert_eq!(required_stake(10, 7, 1), Some(17));
        assert_eq!(required_stake(10, 7, (1 << 30) + 1), Some(27));
        assert_eq!(required_stake(u64::MAX, 7, 1 << 31), None);
    }
}
