//! Repair orders from the chain's state: which segments of a deal need
//! repair, which of their shards are lost, and which nodes take the rebuilt
//! ones.
//!
//! A shard is *healthy* when its holder is active and has not lost it,
//! *unhealthy* when its holder is faulty (it may come back: it is not
//! moved, but it does not count towards the segment's health), and *lost*
//! when its holder was disqualified (its commitment orphaned) or the leaf
//! was declared or found lost: a lost shard never comes back, so it is what
//! a claim moves. The segment's verdict is the threshold rule of
//! [`super::policy`] over its healthy shards.

use crate::chain::{Address, ChainState, DealId, NodeRecord};
use crate::placement::{self, Candidate, PlacementError};
use crate::proofs::accounting::{required_stake, Health as NodeHealth};

use super::data::{RepairData, RepairDataError};
use super::policy::{Health, RepairPolicy};

/// A shard as the chain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    Healthy,
    /// Its holder is faulty.
    Unhealthy,
    /// Its holder was disqualified, or it was declared or found lost.
    Lost,
}

/// One segment's state and verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentStatus {
    pub segment: u32,
    /// Per shard index: where it is now (commitment, leaf) and its state.
    pub shards: Vec<((u32, u32), ShardState)>,
    pub healthy: usize,
    /// Shards not lost (healthy or unhealthy): what a repairer may fetch.
    pub available: usize,
    /// The threshold rule over `healthy`.
    pub health: Health,
}

impl SegmentStatus {
    /// The indices of the lost shards.
    pub fn lost(&self) -> Vec<u16> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.1 == ShardState::Lost)
            .map(|(j, _)| j as u16)
            .collect()
    }

    /// Whether a repair is due and possible: at or below the threshold,
    /// at least one shard lost, and `k` shards still there to rebuild from.
    pub fn needs_repair(&self, k: usize) -> bool {
        self.health != Health::Healthy && self.available >= k && !self.lost().is_empty()
    }
}

/// Why no repair order could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepairError {
    #[error("deal {0} does not exist")]
    UnknownDeal(DealId),
    #[error("deal {0} has no repair data")]
    NoRepairData(DealId),
    #[error(transparent)]
    Data(#[from] RepairDataError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("shard {index} of segment {segment} is not in the repair data")]
    NoSuchShard { segment: u32, index: u16 },
}

/// Every segment of `deal`'s state under `policy`; `data` must be the
/// deal's repair data (it is checked).
pub fn assess(
    state: &ChainState,
    deal: &DealId,
    data: &RepairData,
    policy: &RepairPolicy,
) -> Result<Vec<SegmentStatus>, RepairError> {
    let d = state.deal(deal).ok_or(RepairError::UnknownDeal(*deal))?;
    data.check_against(&d)?;
    let repair = d.repair.as_ref().ok_or(RepairError::NoRepairData(*deal))?;
    let mut out = Vec::with_capacity(data.segments.len());
    for g in 0..data.segments.len() as u32 {
        let mut shards = Vec::with_capacity(data.n());
        for j in 0..data.n() as u16 {
            let at = match repair.moved_to(g, j) {
                Some(m) => (m.commitment, m.leaf),
                None => data.holder(g, j).ok_or(RepairError::NoSuchShard {
                    segment: g,
                    index: j,
                })?,
            };
            let state_of = match d.commitments.get(at.0 as usize) {
                Some(c) if c.leaf_lost(at.1) => ShardState::Lost,
                Some(c) => match state.node(&c.node).map(NodeRecord::health) {
                    Some(NodeHealth::Active) => ShardState::Healthy,
                    Some(NodeHealth::Faulty) => ShardState::Unhealthy,
                    _ => ShardState::Lost,
                },
                None => ShardState::Lost,
            };
            shards.push((at, state_of));
        }
        let healthy = shards.iter().filter(|s| s.1 == ShardState::Healthy).count();
        let available = shards.iter().filter(|s| s.1 != ShardState::Lost).count();
        out.push(SegmentStatus {
            segment: g,
            shards,
            healthy,
            available,
            health: policy.health(healthy),
        });
    }
    Ok(out)
}

/// Groups the lost shards of the segments that need repair into columns:
/// column `c` holds the `c`-th lost shard of each such segment, so one new
/// holder per column takes at most one shard of any segment, and one claim
/// needs only as many new nodes as the worst segment lost.
pub fn columns(statuses: &[SegmentStatus], k: usize) -> Vec<Vec<(u32, u16)>> {
    let mut out: Vec<Vec<(u32, u16)>> = Vec::new();
    for s in statuses.iter().filter(|s| s.needs_repair(k)) {
        for (c, j) in s.lost().into_iter().enumerate() {
            if out.len() <= c {
                out.push(Vec::new());
            }
            out[c].push((s.segment, j));
        }
    }
    out
}

/// Picks `bytes.len()` new holders for `deal` (holder `h` to take
/// `bytes[h]` bytes): active nodes not in the deal, with the free capacity
/// and stake for their share, by rendezvous placement over `seed` spread
/// over the failure domains `domain` assigns. In column order.
pub fn choose_holders(
    state: &ChainState,
    deal: &DealId,
    seed: &[u8; 32],
    bytes: &[u64],
    domain: impl Fn(&Address, &NodeRecord) -> u64,
) -> Result<Vec<Address>, RepairError> {
    let d = state.deal(deal).ok_or(RepairError::UnknownDeal(*deal))?;
    let need = bytes.iter().copied().max().unwrap_or(0);
    let eligible: Vec<(&Address, &NodeRecord)> = state
        .nodes()
        .filter(|(a, n)| {
            n.health() == NodeHealth::Active
                && !d.commitments.iter().any(|c| c.node == **a)
                && n.capacity.saturating_sub(n.used) >= need
                && required_stake(
                    state.proof_params().stake_per_gib,
                    state.min_stake(),
                    n.used.saturating_add(need),
                )
                .is_some_and(|s| n.stake >= s)
        })
        .collect();
    let candidates: Vec<Candidate<'_>> = eligible
        .iter()
        .map(|(a, n)| Candidate {
            id: &a.0,
            domain: domain(a, n),
            tickets: placement::tickets(n.stake, state.min_stake()),
        })
        .collect();
    let chosen = placement::place(seed, &candidates, bytes.len())?;
    Ok(chosen.into_iter().map(|i| *eligible[i].0).collect())
}

/// The placement seed of a deal's repairs: every repairer computes the same
/// holders from the same state, so racing repairers upload to the same
/// nodes instead of spreading copies.
pub fn placement_seed(deal: &DealId, moved_so_far: usize) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("cairn 2026-12 v1 repair placement");
    h.update(&deal.0);
    h.update(&(moved_so_far as u64).to_le_bytes());
    *h.finalize().as_bytes()
}
