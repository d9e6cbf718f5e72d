//! Repair on the chain: a deal's public repair data (`SetRepairData`), the
//! claims that move lost shards to new holders (`ClaimRepair`), and their
//! bounties, held until every new holder has proven its new commitment.

use serde::{Deserialize, Serialize};

use super::{add, ChainState, DealCommitment, DealId};
use crate::chain::merkle;
use crate::chain::rejection::Rejection;
use crate::chain::repair::{repair_receipt_message, RepairClaim, RepairCommitment, RepairRef};
use crate::chain::sig;
use crate::chain::tx::Address;
use crate::repair::bounty;

/// What repair knows and did for one deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRepair {
    /// The public repair data's reference, set by the owner.
    pub data: RepairRef,
    /// Shards moved by accepted claims, with where they are now; sorted by
    /// segment and index. A shard not listed is where the repair data says.
    pub moved: Vec<MovedRecord>,
    /// Claims whose bounty waits for the new holders' proofs.
    pub pending: Vec<PendingRepair>,
    /// Claims paid, and claims whose new holder failed first.
    pub done: u32,
    pub failed: u32,
    /// Bounties paid out for this deal.
    pub paid: u64,
}

impl DealRepair {
    /// Where shard `index` of `segment` was moved to, if repair moved it.
    pub fn moved_to(&self, segment: u32, index: u16) -> Option<&MovedRecord> {
        self.moved
            .binary_search_by(|m| (m.segment, m.index).cmp(&(segment, index)))
            .ok()
            .map(|i| &self.moved[i])
    }
}

/// A shard repair moved: it is now leaf `leaf` of commitment `commitment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedRecord {
    pub segment: u32,
    pub index: u16,
    pub commitment: u32,
    pub leaf: u32,
}

/// An accepted claim whose bounty is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRepair {
    pub repairer: Address,
    /// The height of the claim.
    pub claimed_at: u64,
    /// Taken from the deal's withheld pay.
    pub from_deal: u64,
    /// Taken from the repair pool (the failed nodes' slashed stake).
    pub from_pool: u64,
    /// Each new holder's commitment index, and whether a passing proof has
    /// sampled it yet.
    pub holders: Vec<(u32, bool)>,
}

impl PendingRepair {
    pub fn bounty(&self) -> u64 {
        self.from_deal.saturating_add(self.from_pool)
    }
}

/// One shard of a checked claim: its place, where it was, its new holder.
struct Move {
    segment: u32,
    index: u16,
    from: usize,
    leaf: u32,
    size: u64,
    to: usize,
    new_leaf: u32,
}

/// A claim that passed every check.
pub(super) struct CheckedRepair {
    deal: DealId,
    holders: Vec<RepairCommitment>,
    moves: Vec<Move>,
    from_deal: u64,
    from_pool: u64,
    /// What `from_pool` takes from each source commitment's earmark.
    draws: Vec<(usize, u64)>,
}

impl ChainState {
    pub(super) fn check_repair_data(
        &self,
        signer: Address,
        id: &DealId,
        repair: &RepairRef,
    ) -> Result<(), Rejection> {
        let deal = self.deals.get(id).ok_or(Rejection::UnknownDeal(*id))?;
        if deal.owner != signer {
            return Err(Rejection::NotDealOwner);
        }
        if deal.repair.is_some() {
            return Err(Rejection::RepairDataSet(*id));
        }
        repair.check()?;
        if repair.commitments as usize != deal.commitments.len() {
            return Err(Rejection::BadRepairData(
                "it does not list the deal's commitments".into(),
            ));
        }
        if repair.bytes > deal.size {
            return Err(Rejection::BadRepairData(
                "its segments hold more bytes than the deal".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn set_repair_data(&mut self, id: &DealId, repair: RepairRef) {
        if let Some(deal) = self.deals.get_mut(id) {
            deal.repair = Some(DealRepair {
                data: repair,
                moved: Vec::new(),
                pending: Vec::new(),
                done: 0,
                failed: 0,
                paid: 0,
            });
        }
    }

    /// Checks a claim against the deal's repair data, the commitments its
    /// shards are moved from, and the new holders and their receipts.
    pub(super) fn check_repair(
        &self,
        repairer: Address,
        claim: &RepairClaim,
    ) -> Result<CheckedRepair, Rejection> {
        let id = claim.deal;
        let deal = self.deals.get(&id).ok_or(Rejection::UnknownDeal(id))?;
        let repair = deal.repair.as_ref().ok_or(Rejection::NoRepairData(id))?;
        let bad = |why: &str| Err(Rejection::BadRepairClaim(why.into()));
        // A new holder proves from the next period: one must still be paid.
        if self.epoch.saturating_add(1) >= deal.end_epoch {
            return bad("the deal ends before a new holder could prove");
        }
        let mut moves: Vec<Move> = Vec::with_capacity(claim.shards.len());
        let mut new_leaves = vec![0u32; claim.holders.len()];
        let mut claimed = 0u64;
        // Bytes moved from each source commitment.
        let mut per_source: Vec<(usize, u64)> = Vec::new();
        for (i, s) in claim.shards.iter().enumerate() {
            let to = usize::from(s.to);
            if to >= claim.holders.len() {
                return bad("a shard goes to a holder the claim does not name");
            }
            if !repair
                .data
                .verify(s.segment, s.index, &s.id, s.size, &s.repair_path)
            {
                return Err(Rejection::RepairPathMismatch { shard: i });
            }
            let from = s.from as usize;
            let already = Rejection::AlreadyRepaired {
                segment: s.segment,
                index: s.index,
            };
            if let Some(m) = repair.moved_to(s.segment, s.index) {
                if (m.commitment, m.leaf) != (s.from, s.leaf) {
                    return Err(already);
                }
            }
            let c = deal
                .commitments
                .get(from)
                .ok_or(Rejection::RepairSourceMismatch { shard: i })?;
            if c.moved.iter().any(|m| m.0 == s.leaf) {
                return Err(already);
            }
            merkle::verify(
                &c.committed(),
                &s.id,
                s.size,
                u64::from(s.leaf),
                &s.from_path,
            )
            .ok_or(Rejection::RepairSourceMismatch { shard: i })?;
            if !c.leaf_lost(s.leaf) {
                return Err(Rejection::ShardNotLost {
                    segment: s.segment,
                    index: s.index,
                });
            }
            if moves.iter().any(|m| {
                (m.segment, m.index) == (s.segment, s.index) || (m.from, m.leaf) == (from, s.leaf)
            }) {
                return bad("a shard is moved twice");
            }
            if moves.iter().any(|m| m.to == to && m.segment == s.segment) {
                return Err(Rejection::HolderTwiceInSegment {
                    node: claim.holders[to].node,
                    segment: s.segment,
                });
            }
            claimed = add(claimed, s.size)?;
            match per_source.iter_mut().find(|x| x.0 == from) {
                Some(x) => x.1 += s.size,
                None => per_source.push((from, s.size)),
            }
            moves.push(Move {
                segment: s.segment,
                index: s.index,
                from,
                leaf: s.leaf,
                size: s.size,
                to,
                new_leaf: new_leaves[to],
            });
            new_leaves[to] += 1;
        }
        let mut holders: Vec<RepairCommitment> = Vec::with_capacity(claim.holders.len());
        for h in 0..claim.holders.len() {
            let c = claim
                .commitment(h)
                .ok_or_else(|| Rejection::BadRepairClaim("a holder takes no shard".into()))?;
            if c.bytes == 0 {
                return bad("a holder takes no data");
            }
            if holders.iter().any(|x| x.node == c.node) {
                return Err(Rejection::DuplicateNode(c.node));
            }
            if deal.commitments.iter().any(|x| x.node == c.node) {
                return Err(Rejection::HolderInDeal(c.node));
            }
            self.check_can_hold(c.node, c.bytes)?;
            holders.push(c);
        }
        // Receipts last: they are the expensive check, done in one batch.
        let messages: Vec<Vec<u8>> = holders
            .iter()
            .map(|c| repair_receipt_message(&self.genesis, &repairer, &id, c))
            .collect();
        let checks = sig::check_all(
            claim
                .holders
                .iter()
                .zip(&holders)
                .zip(&messages)
                .map(|((holder, c), m)| (&c.node, m.as_slice(), &holder.receipt)),
        );
        if let Some((c, _)) = holders.iter().zip(&checks).find(|(_, r)| r.is_err()) {
            return Err(Rejection::BadRepairReceipt(c.node));
        }
        // The stake set aside for each source commitment pays its repair,
        // pro rata to the bytes moved among those not moved yet (so the last
        // repair of a commitment takes what is left of it).
        let draws: Vec<(usize, u64)> = per_source
            .iter()
            .map(|&(ci, bytes)| {
                let c = &deal.commitments[ci];
                let left = c.bytes.saturating_sub(c.moved_bytes());
                (ci, bounty::from_pool(c.slashed, bytes, left))
            })
            .collect();
        let from_pool = draws
            .iter()
            .map(|d| d.1)
            .fold(0u64, u64::saturating_add)
            .min(self.repair_pool);
        Ok(CheckedRepair {
            deal: id,
            holders,
            moves,
            // Settled: the withheld pay of every period so far.
            from_deal: self
                .settled(&id)
                .map_or(0, |settled| bounty_from_deal(&settled, claimed)),
            from_pool,
            draws,
        })
    }

    /// Records a checked claim: the new holders join the deal from the next
    /// period, the moved shards point at them, and the bounty is held.
    pub(super) fn record_repair(&mut self, repairer: Address, checked: CheckedRepair) {
        let since = self.epoch + 1;
        let height = self.height;
        let id = checked.deal;
        // Settled first: the bounty comes out of the withheld pay.
        let Some(before) = self.begin_change(&id) else {
            return;
        };
        for c in &checked.holders {
            if let Some(node) = self.nodes.get_mut(&c.node) {
                node.used = node.used.saturating_add(c.bytes);
                node.active_deals = node.active_deals.saturating_add(1);
            }
        }
        self.repair_pool -= checked.from_pool;
        self.change_for_repair(repairer, height, since, checked);
        self.end_change(&id, before);
    }

    /// The deal's side of [`Self::record_repair`].
    fn change_for_repair(
        &mut self,
        repairer: Address,
        height: u64,
        since: u64,
        checked: CheckedRepair,
    ) {
        let Some(deal) = self.deals.get_mut(&checked.deal) else {
            return;
        };
        let first = deal.commitments.len();
        deal.commitments
            .extend(checked.holders.iter().map(|c| DealCommitment {
                node: c.node,
                root: c.root,
                shards: c.shards,
                bytes: c.bytes,
                lost: Vec::new(),
                proofs_accepted: 0,
                proofs_missed: 0,
                paid: 0,
                orphaned: false,
                since,
                moved: Vec::new(),
                slashed: 0,
                counted: (0, 0),
            }));
        deal.escrow -= checked.from_deal;
        deal.withheld -= checked.from_deal;
        for &(ci, draw) in &checked.draws {
            let c = &mut deal.commitments[ci];
            c.slashed = c.slashed.saturating_sub(draw);
        }
        let Some(repair) = deal.repair.as_mut() else {
            return;
        };
        for m in &checked.moves {
            let source = &mut deal.commitments[m.from].moved;
            let at = source.partition_point(|x| x.0 < m.leaf);
            source.insert(at, (m.leaf, m.size));
            let record = MovedRecord {
                segment: m.segment,
                index: m.index,
                commitment: (first + m.to) as u32,
                leaf: m.new_leaf,
            };
            match repair
                .moved
                .binary_search_by(|x| (x.segment, x.index).cmp(&(m.segment, m.index)))
            {
                Ok(i) => repair.moved[i] = record,
                Err(i) => repair.moved.insert(i, record),
            }
        }
        repair.pending.push(PendingRepair {
            repairer,
            claimed_at: height,
            from_deal: checked.from_deal,
            from_pool: checked.from_pool,
            holders: (first..first + checked.holders.len())
                .map(|ci| (ci as u32, false))
                .collect(),
        });
    }

    /// A passing proof sampled these commitments: pending repairs waiting
    /// on them are one step closer to their bounty.
    pub(super) fn mark_sampled(&mut self, sampled: &[(DealId, usize)]) {
        for (id, ci) in sampled {
            let Some(repair) = self.deals.get_mut(id).and_then(|d| d.repair.as_mut()) else {
                continue;
            };
            for p in &mut repair.pending {
                for h in p.holders.iter_mut().filter(|h| h.0 as usize == *ci) {
                    h.1 = true;
                }
            }
        }
    }

    /// At the end of `period`: pays each pending repair whose new holders
    /// have all been sampled by passing proofs, and returns the bounty of
    /// each whose new holder missed or failed a period it had to prove the
    /// new commitment in, lost any of it, or was disqualified (the deal's
    /// part back to the deal's withheld pay, the pool's back to the pool).
    pub(super) fn settle_repairs(&mut self, period: u64, unproven: &[Address]) {
        let ids: Vec<DealId> = self.derived.repairing.iter().copied().collect();
        let mut payouts: Vec<(Address, u64)> = Vec::new();
        for id in ids {
            // Settled first: a failed claim's bounty goes back to the
            // withheld pay.
            let Some(before) = self.begin_change(&id) else {
                continue;
            };
            let pool = self.repair_pool;
            if let Some(deal) = self.deals.get_mut(&id) {
                self.repair_pool = settle_pending(deal, period, unproven, pool, &mut payouts);
            }
            self.end_change(&id, before);
        }
        for (repairer, amount) in payouts {
            let account = self.accounts.entry(repairer).or_default();
            account.balance = account.balance.saturating_add(amount);
        }
    }
}

/// Settles the pending repairs of `deal` at the end of `period` (see
/// [`ChainState::settle_repairs`]); returns the repair pool after it.
fn settle_pending(
    deal: &mut super::Deal,
    period: u64,
    unproven: &[Address],
    mut pool: u64,
    payouts: &mut Vec<(Address, u64)>,
) -> u64 {
    let Some(mut repair) = deal.repair.take() else {
        return pool;
    };
    let mut keep = Vec::with_capacity(repair.pending.len());
    for p in std::mem::take(&mut repair.pending) {
        let failed = p.holders.iter().any(|(ci, _)| {
            deal.commitments.get(*ci as usize).is_none_or(|c| {
                c.orphaned
                    || !c.lost.is_empty()
                    || (c.since <= period && unproven.contains(&c.node))
            })
        });
        if failed {
            // Back where it came from, and still earmarked for these
            // shards: the pool's part follows them to the new holders'
            // commitments, which the next repair moves from.
            deal.escrow = deal.escrow.saturating_add(p.from_deal);
            deal.withheld = deal.withheld.saturating_add(p.from_deal);
            pool = pool.saturating_add(p.from_pool);
            carry_slashed(&mut deal.commitments, &p.holders, p.from_pool);
            repair.failed = repair.failed.saturating_add(1);
        } else if p.holders.iter().all(|h| h.1) {
            payouts.push((p.repairer, p.bounty()));
            repair.paid = repair.paid.saturating_add(p.bounty());
            repair.done = repair.done.saturating_add(1);
        } else {
            keep.push(p);
        }
    }
    repair.pending = keep;
    deal.repair = Some(repair);
    pool
}

/// Earmarks `amount` of the pool for the commitments `holders` (pro rata
/// to their bytes; the rounding remainder to the last).
fn carry_slashed(commitments: &mut [DealCommitment], holders: &[(u32, bool)], amount: u64) {
    let total: u64 = holders
        .iter()
        .filter_map(|h| commitments.get(h.0 as usize))
        .map(|c| c.bytes)
        .fold(0u64, u64::saturating_add);
    let mut left = amount;
    for (i, h) in holders.iter().enumerate() {
        let Some(c) = commitments.get_mut(h.0 as usize) else {
            continue;
        };
        let share = if i + 1 == holders.len() {
            left
        } else {
            (u128::from(amount) * u128::from(c.bytes) / u128::from(total.max(1))) as u64
        };
        let share = share.min(left);
        left -= share;
        c.slashed = c.slashed.saturating_add(share);
    }
}

/// The deal's part of a claim's bounty: its withheld pay, pro rata to the
/// bytes the claim moves among the deal's lost bytes not yet moved (never
/// more than the escrow: a closed deal keeps only its last period).
fn bounty_from_deal(deal: &super::Deal, claimed: u64) -> u64 {
    let withheld = deal.withheld.min(deal.escrow);
    let unrepaired: u64 = deal
        .commitments
        .iter()
        .map(DealCommitment::unrepaired_bytes)
        .fold(0u64, u64::saturating_add);
    bounty::from_deal(withheld, claimed, unrepaired)
}
