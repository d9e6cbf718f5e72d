//! The proof rules the simulator runs: sampling, per-period accounting, pay
//! and stake. One seam: everything the engine needs from the storage-proof
//! rules goes through this module.
//!
//! These mirror `cairn_protocol::proofs` (`challenge::sample_offset`,
//! `accounting::ProofRecord::settle`, `period_share`, `required_stake`,
//! `ProofParams`) item for item, with the same names and semantics, until
//! that module is on this branch; then this file re-exports it instead.

use cairn_protocol::chain::Address;
use serde::{Deserialize, Serialize};

/// The granularity of a sample.
pub const CHUNK_BYTES: u64 = 1024;

const SAMPLE_CONTEXT: &str = "cairn 2026-12 v1 proof sample";

/// The proof rules fixed by the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofParams {
    pub period_blocks: u64,
    pub window_blocks: u64,
    pub samples: u32,
    pub faulty_after: u32,
    pub disqualify_after: u32,
    pub stake_per_gib: u64,
}

impl Default for ProofParams {
    fn default() -> Self {
        Self {
            period_blocks: 3600,
            window_blocks: 600,
            samples: 16,
            faulty_after: 2,
            disqualify_after: 24,
            stake_per_gib: 1_000,
        }
    }
}

/// Where a node stands in the proof accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    #[default]
    Active,
    Faulty,
    Disqualified,
}

/// How a node's period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodOutcome {
    Proven,
    Failed,
    Missed,
}

/// A node's proof history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRecord {
    pub health: Health,
    pub consecutive_misses: u32,
    pub accepted: u64,
    pub missed: u64,
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

/// One node's pay for one period: the price pro rata to the bytes it holds
/// and has not lost (rounded down).
pub fn period_share(price_per_period: u64, paid_bytes: u64, deal_size: u64) -> u64 {
    (u128::from(price_per_period) * u128::from(paid_bytes) / u128::from(deal_size.max(1))) as u64
}

/// The stake a node must lock to commit `bytes`.
pub fn required_stake(params: &ProofParams, min_stake: u64, bytes: u64) -> Option<u64> {
    let gib = bytes.div_ceil(1 << 30);
    params
        .stake_per_gib
        .checked_mul(gib)?
        .checked_add(min_stake)
}

/// The byte offset, among the node's `total` committed bytes, of sample
/// `index`; `prev` links it to the previous sample.
pub fn sample_offset(
    seed: &[u8; 32],
    node: &Address,
    period: u64,
    index: u32,
    prev: &[u8; 32],
    total: u64,
) -> u64 {
    let mut h = blake3::Hasher::new_derive_key(SAMPLE_CONTEXT);
    h.update(seed);
    h.update(&node.0);
    h.update(&period.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(prev);
    let mut word = [0u8; 16];
    h.finalize_xof().fill(&mut word);
    (u128::from_le_bytes(word) % u128::from(total.max(1))) as u64
}
