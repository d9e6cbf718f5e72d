//! Storage proofs on the chain: checking `ProveStorage` and `DeclareLost`,
//! and settling each period (pay, withhold, fault, slash, orphan).

use super::{ChainState, DealId, LostRecord};
use crate::chain::merkle;
use crate::chain::rejection::Rejection;
use crate::chain::tx::{Address, LostLeaf};
use crate::proofs::accounting::{Health, PeriodOutcome};
use crate::proofs::{self, challenge, Space, StorageProof};

/// A proof that passed every check, and what it found.
pub(super) struct CheckedProof {
    period: u64,
    /// A sample found data lost that was not declared before the window.
    failed: bool,
    /// Newly found lost shards: deal, commitment index, record.
    found: Vec<(DealId, usize, LostRecord)>,
    /// The commitments the samples fell in (deal, commitment index).
    sampled: Vec<(DealId, usize)>,
}

/// A shard position in the state: deal, commitment index, leaf.
type LeafAt = (DealId, usize, u32);

impl ChainState {
    /// The node's committed space in `period`: each deal active in it where
    /// the node holds a commitment that is not orphaned and counts from
    /// `period` on (a holder added by repair starts the period after its
    /// claim), in deal-id order, with the index of the node's commitment.
    pub fn committed_space(&self, node: &Address, period: u64) -> Vec<(DealId, usize)> {
        self.derived
            .node_deals
            .range((*node, DealId([0; 32]))..=(*node, DealId([0xff; 32])))
            .filter_map(|(_, id)| {
                let deal = self.deals.get(id)?;
                if !deal.active_in(period) {
                    return None;
                }
                let ci = deal
                    .commitments
                    .iter()
                    .position(|c| c.node == *node && !c.orphaned)?;
                (deal.commitments[ci].since <= period).then_some((*id, ci))
            })
            .collect()
    }

    /// What a node's proof for `period` is checked against, with the losses
    /// known before height `before` (the window's open block) left out.
    pub fn committed_spaces(&self, node: &Address, period: u64, before: u64) -> Vec<Space> {
        self.committed_space(node, period)
            .iter()
            .filter_map(|(id, ci)| Some(self.deals.get(id)?.commitments.get(*ci)?.space(before)))
            .collect()
    }

    /// The seed of a node's window in the current period, once it is open.
    pub fn window_seed(&self, node: &Address) -> Option<(challenge::Window, [u8; 32])> {
        let w = challenge::window(&self.params.proof, node, self.epoch);
        if self.height < w.open {
            return None;
        }
        Some((w, self.beacon_at(w.open)?))
    }

    pub(super) fn check_proof(
        &self,
        signer: Address,
        proof: &StorageProof,
    ) -> Result<CheckedProof, Rejection> {
        let node = self
            .nodes
            .get(&signer)
            .ok_or(Rejection::UnknownNode(signer))?;
        if proof.node != signer {
            return Err(Rejection::ProofForOtherNode {
                named: proof.node,
                signer,
            });
        }
        if node.health() == Health::Disqualified {
            return Err(Rejection::NodeDisqualified(signer));
        }
        if proof.period != self.epoch {
            return Err(Rejection::ProofWrongPeriod {
                expected: self.epoch,
                got: proof.period,
            });
        }
        let w = challenge::window(&self.params.proof, &signer, proof.period);
        if self.height <= w.open {
            return Err(Rejection::ProofEarly {
                open: w.open,
                height: self.height,
            });
        }
        if self.height > w.close {
            return Err(Rejection::ProofLate {
                close: w.close,
                height: self.height,
            });
        }
        if node.proven.map(|p| p.0) == Some(proof.period) {
            return Err(Rejection::AlreadyProven {
                period: proof.period,
            });
        }
        // Kept for window_blocks + 1 heights: present for every open window.
        let seed = self
            .beacon_at(w.open)
            .ok_or_else(|| Rejection::Malformed("the window's beacon is gone".into()))?;
        let space = self.committed_space(&signer, proof.period);
        let spaces: Vec<Space> = space
            .iter()
            .map(|(id, ci)| self.deals[id].commitments[*ci].space(w.open))
            .collect();
        let verified = proofs::verify_sampled(&self.params.proof, proof, &seed, &spaces)
            .map_err(Rejection::BadProof)?;
        let mut sampled: Vec<(DealId, usize)> =
            verified.sampled.iter().map(|&i| space[i]).collect();
        sampled.sort_unstable();
        sampled.dedup();
        let lost = verified.lost;
        // Every "lost" answer fails the period (losses known before the
        // window are not sampled); new ones are recorded as found.
        let failed = !lost.is_empty();
        let mut found: Vec<(DealId, usize, LostRecord)> = Vec::new();
        for l in lost {
            let (id, ci) = space[l.commitment];
            let c = &self.deals[&id].commitments[ci];
            let known = c.lost.iter().any(|r| r.leaf == l.leaf)
                || found.iter().any(|f| f.0 == id && f.2.leaf == l.leaf);
            if !known {
                found.push((
                    id,
                    ci,
                    LostRecord {
                        leaf: l.leaf,
                        start: l.start,
                        size: l.size,
                        at: self.height,
                        found: true,
                    },
                ));
            }
        }
        Ok(CheckedProof {
            period: proof.period,
            failed,
            found,
            sampled,
        })
    }

    pub(super) fn record_proof(&mut self, signer: Address, checked: CheckedProof) {
        if let Some(node) = self.nodes.get_mut(&signer) {
            node.proven = Some((checked.period, checked.failed));
        }
        if !checked.failed {
            self.mark_sampled(&checked.sampled);
        }
        self.record_lost(checked.found);
    }

    /// Checks a `DeclareLost`: every leaf is in a commitment of the signer
    /// that is not orphaned, proved by its path, and not already lost.
    pub(super) fn check_declared(
        &self,
        signer: Address,
        leaves: &[LostLeaf],
    ) -> Result<Vec<(DealId, usize, LostRecord)>, Rejection> {
        let mut out: Vec<(DealId, usize, LostRecord)> = Vec::new();
        let mut seen: Vec<LeafAt> = Vec::new();
        for (index, l) in leaves.iter().enumerate() {
            let bad = |why: &str| Rejection::BadLostLeaf {
                index,
                why: why.into(),
            };
            let deal = self.deals.get(&l.deal).ok_or_else(|| bad("unknown deal"))?;
            let ci = deal
                .commitments
                .iter()
                .position(|c| c.node == signer && !c.orphaned)
                .ok_or_else(|| bad("the signer holds nothing in this deal"))?;
            let c = &deal.commitments[ci];
            let start =
                merkle::verify(&c.committed(), &l.shard, l.size, u64::from(l.leaf), &l.path)
                    .ok_or_else(|| {
                        bad("the shard's path does not verify against the commitment")
                    })?;
            if c.lost.iter().any(|r| r.leaf == l.leaf) || seen.contains(&(l.deal, ci, l.leaf)) {
                return Err(bad("already lost"));
            }
            seen.push((l.deal, ci, l.leaf));
            out.push((
                l.deal,
                ci,
                LostRecord {
                    leaf: l.leaf,
                    start,
                    size: l.size,
                    at: self.height,
                    found: false,
                },
            ));
        }
        Ok(out)
    }

    /// Records lost shards. A loss lowers what its commitment earns from
    /// now on, so each deal is settled first ([`Self::begin_change`]).
    pub(super) fn record_lost(&mut self, records: Vec<(DealId, usize, LostRecord)>) {
        for (id, ci, record) in records {
            let Some(before) = self.begin_change(&id) else {
                continue;
            };
            if let Some(c) = self
                .deals
                .get_mut(&id)
                .and_then(|d| d.commitments.get_mut(ci))
            {
                let at = c.lost.partition_point(|r| r.leaf < record.leaf);
                c.lost.insert(at, record);
            }
            self.end_change(&id, before);
        }
    }

    /// Settles `period` (the epoch still current) for every node that had
    /// bytes to prove in it: pays the proven what their space pays, counts
    /// the period in their proof record (which is what settles their
    /// deals, lazily: [`super::settling`]), updates health, slashes and
    /// orphans the disqualified; then ends the deals whose last period it
    /// was. Walks the nodes, never the deals, but for the deals that end
    /// and those of a node that did not prove and has lost shards.
    pub(super) fn settle_period(&mut self, period: u64) {
        let params = self.params.proof;
        let addresses: Vec<Address> = self.nodes.keys().copied().collect();
        // Nodes whose period was missed or failed: a repair waiting on one
        // of them fails.
        let mut unproven: Vec<Address> = Vec::new();
        for address in addresses {
            let space = self.node_space(&address);
            let Some(node) = self.nodes.get_mut(&address) else {
                continue;
            };
            let proven = node.proven.take();
            if space.commitments == 0 {
                continue;
            }
            let outcome = match proven {
                Some((p, false)) if p == period => PeriodOutcome::Proven,
                Some((p, true)) if p == period => PeriodOutcome::Failed,
                // Every commitment holds bytes: with no loss known there is
                // something to sample, so only a node with losses is looked at.
                _ if space.lost > 0 && self.nothing_to_prove(&address, period) => continue,
                _ => PeriodOutcome::Missed,
            };
            let Some(node) = self.nodes.get_mut(&address) else {
                continue;
            };
            if outcome != PeriodOutcome::Proven {
                unproven.push(address);
            }
            let change = node.proofs.settle(&params, period, outcome);
            if outcome == PeriodOutcome::Proven {
                node.earned = node.earned.saturating_add(space.pay);
                let account = self.accounts.entry(address).or_default();
                account.balance = account.balance.saturating_add(space.pay);
            }
            if change == Some(Health::Disqualified) {
                self.disqualify(address);
            }
        }
        self.settle_repairs(period, &unproven);
        for id in self.ending_by(period + 1) {
            self.end_deal(&id);
        }
    }

    /// Whether a node that sent no proof for `period` had nothing left to
    /// sample: one that declared all its losses is skipped (and not paid);
    /// one whose losses were found cannot prove what it claimed, and misses.
    fn nothing_to_prove(&self, address: &Address, period: u64) -> bool {
        let open = challenge::window(&self.params.proof, address, period).open;
        let space = self.committed_space(address, period);
        let live: u64 = space
            .iter()
            .filter_map(|(id, ci)| {
                Some(self.deals.get(id)?.commitments.get(*ci)?.space(open).live())
            })
            .sum();
        let found = space.iter().any(|(id, ci)| {
            self.deals
                .get(id)
                .and_then(|d| d.commitments.get(*ci))
                .is_some_and(|c| {
                    // Until repair moved them away.
                    c.lost
                        .iter()
                        .any(|l| l.found && !c.moved.iter().any(|m| m.0 == l.leaf))
                })
        });
        live == 0 && !found
    }

    /// Slashes a node's whole stake into the repair pool and orphans every
    /// commitment it holds, so repair can rebuild them elsewhere.
    fn disqualify(&mut self, address: Address) {
        let Some(node) = self.nodes.get_mut(&address) else {
            return;
        };
        let stake = std::mem::take(&mut node.stake);
        node.slashed = node.slashed.saturating_add(stake);
        self.repair_pool = self.repair_pool.saturating_add(stake);
        let deals: Vec<DealId> = self
            .derived
            .node_deals
            .range((address, DealId([0; 32]))..=(address, DealId([0xff; 32])))
            .map(|(_, id)| *id)
            .collect();
        // The stake is set aside for the repair of each commitment pro rata
        // to its bytes (rounded down: the rest stays in the pool).
        let committed: u64 = deals
            .iter()
            .filter_map(|id| self.deals.get(id))
            .flat_map(|d| &d.commitments)
            .filter(|c| c.node == address && !c.orphaned)
            .map(|c| c.bytes)
            .fold(0u64, u64::saturating_add);
        let mut released = (0u64, 0u32);
        for id in deals {
            // Settled first: the node is paid for what it proved until now.
            let Some(before) = self.begin_change(&id) else {
                continue;
            };
            if let Some(deal) = self.deals.get_mut(&id) {
                for c in deal
                    .commitments
                    .iter_mut()
                    .filter(|c| c.node == address && !c.orphaned)
                {
                    c.orphaned = true;
                    let share =
                        u128::from(stake) * u128::from(c.bytes) / u128::from(committed.max(1));
                    c.slashed = c.slashed.saturating_add(share as u64);
                    released.0 = released.0.saturating_add(c.bytes);
                    released.1 = released.1.saturating_add(1);
                }
            }
            self.end_change(&id, before);
        }
        if let Some(node) = self.nodes.get_mut(&address) {
            node.used = node.used.saturating_sub(released.0);
            node.active_deals = node.active_deals.saturating_sub(released.1);
        }
    }
}
