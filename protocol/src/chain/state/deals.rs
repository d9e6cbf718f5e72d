//! Deals: opening (terms, capacity, stake, receipts), closing early, and the
//! end of a deal.

use super::{add, ChainState, Deal, DealCommitment, DealId};
use crate::chain::rejection::Rejection;
use crate::chain::sig;
use crate::chain::tx::{receipt_message, Address, DealTerms};
use crate::proofs::accounting::{required_stake, Health};

impl ChainState {
    /// Validates a deal; returns its escrow.
    pub(super) fn check_deal(
        &self,
        owner: Address,
        nonce: u64,
        terms: &DealTerms,
    ) -> Result<u64, Rejection> {
        let invalid = |why: &str| Err(Rejection::InvalidDeal(why.into()));
        // A deal starts after the current period, so the bytes each node must
        // prove in a period are fixed when the period begins.
        if terms.start_epoch <= self.epoch {
            return invalid("start epoch must be after the current epoch");
        }
        if terms.start_epoch - self.epoch > self.params.max_start_ahead {
            return invalid("start epoch is further ahead than the chain allows");
        }
        if terms.end_epoch <= terms.start_epoch {
            return invalid("end epoch must be after start epoch");
        }
        if terms.end_epoch - terms.start_epoch > self.params.max_deal_epochs {
            return invalid("deal is longer than the chain allows");
        }
        if terms.price_per_epoch == 0 {
            return invalid("price must be positive");
        }
        let mut total = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for c in &terms.commitments {
            if c.bytes == 0 || c.shards == 0 {
                return invalid("a commitment holds no data");
            }
            if !seen.insert(c.node) {
                return Err(Rejection::DuplicateNode(c.node));
            }
            self.check_can_hold(c.node, c.bytes)?;
            total = add(total, c.bytes)?;
        }
        if total != terms.size {
            return invalid("size is not the sum of the commitments' bytes");
        }
        // Receipts last: they are the expensive check, done in one batch.
        let messages: Vec<Vec<u8>> = terms
            .commitments
            .iter()
            .map(|c| receipt_message(&self.genesis, &owner, nonce, terms, c))
            .collect();
        let checks = sig::check_all(
            terms
                .commitments
                .iter()
                .zip(&messages)
                .map(|(c, m)| (&c.node, m.as_slice(), &c.receipt)),
        );
        if let Some((c, _)) = terms
            .commitments
            .iter()
            .zip(&checks)
            .find(|(_, r)| r.is_err())
        {
            return Err(Rejection::BadReceipt(c.node));
        }
        terms
            .price_per_epoch
            .checked_mul(terms.end_epoch - terms.start_epoch)
            .ok_or(Rejection::Overflow)
    }

    /// Checks that registered node `node` may take `bytes` more: it is
    /// active, has the room, and its stake covers what it would then hold.
    /// Shared by deals and repair claims, which add holders alike.
    pub(super) fn check_can_hold(&self, node: Address, bytes: u64) -> Result<(), Rejection> {
        let record = self.nodes.get(&node).ok_or(Rejection::UnknownNode(node))?;
        if record.health() != Health::Active {
            return Err(Rejection::NodeNotAccepting {
                node,
                health: record.health().as_str().into(),
            });
        }
        let free = record.capacity.saturating_sub(record.used);
        if bytes > free {
            return Err(Rejection::NodeFull {
                node,
                free,
                need: bytes,
            });
        }
        let need = required_stake(
            self.params.proof.stake_per_gib,
            self.params.min_stake,
            record.used.saturating_add(bytes),
        )
        .ok_or(Rejection::Overflow)?;
        if record.stake < need {
            return Err(Rejection::StakeBelowCommitted {
                node,
                need,
                have: record.stake,
            });
        }
        Ok(())
    }

    /// Records a checked deal whose escrow was charged.
    pub(super) fn open_deal(&mut self, owner: Address, nonce: u64, terms: &DealTerms, escrow: u64) {
        let id = DealId::new(&owner, nonce);
        for c in &terms.commitments {
            if let Some(node) = self.nodes.get_mut(&c.node) {
                node.used += c.bytes;
                node.active_deals += 1;
            }
        }
        let deal = Deal {
            owner,
            size: terms.size,
            price_per_epoch: terms.price_per_epoch,
            start_epoch: terms.start_epoch,
            end_epoch: terms.end_epoch,
            commitments: terms
                .commitments
                .iter()
                .map(|c| DealCommitment {
                    node: c.node,
                    root: c.root,
                    shards: c.shards,
                    bytes: c.bytes,
                    lost: Vec::new(),
                    proofs_accepted: 0,
                    proofs_missed: 0,
                    paid: 0,
                    orphaned: false,
                    since: terms.start_epoch,
                    moved: Vec::new(),
                    slashed: 0,
                    counted: (0, 0),
                })
                .collect(),
            escrow,
            withheld: 0,
            opened_at: self.height,
            repair: None,
        };
        self.index_new(&id, &deal);
        self.deals.insert(id, deal);
    }

    /// Checks that `owner` may close `deal`; returns the refund.
    ///
    /// A deal that has not started is refunded whole. A running one keeps
    /// the current period's price (the nodes still prove it and are paid as
    /// usual) and ends with it; every later period is refunded now.
    pub(super) fn check_close(&self, owner: Address, deal: &DealId) -> Result<u64, Rejection> {
        let d = self.settled(deal).ok_or(Rejection::UnknownDeal(*deal))?;
        if d.owner != owner {
            return Err(Rejection::NotDealOwner);
        }
        if self.epoch < d.start_epoch {
            return Ok(d.escrow);
        }
        let kept = d.price_per_epoch.min(d.escrow);
        Ok(d.escrow - kept)
    }

    /// Closes a deal checked by [`Self::check_close`], crediting the refund.
    pub(super) fn close_deal(&mut self, id: &DealId) {
        let epoch = self.epoch;
        if self.deals.get(id).is_some_and(|d| epoch < d.start_epoch) {
            self.end_deal(id);
            return;
        }
        let Some(before) = self.begin_change(id) else {
            return;
        };
        let Some(deal) = self.deals.get_mut(id) else {
            return;
        };
        let kept = deal.price_per_epoch.min(deal.escrow);
        let refund = deal.escrow - kept;
        deal.escrow = kept;
        deal.end_epoch = epoch + 1;
        let owner = deal.owner;
        self.end_change(id, before);
        let account = self.accounts.entry(owner).or_default();
        account.balance = account.balance.saturating_add(refund);
    }

    /// Removes a deal: what is left of its escrow (the unearned part and the
    /// withheld pay no repair claimed, with the deal's part of bounties still
    /// pending) goes back to the owner, the pool's part of pending bounties
    /// back to the repair pool, and its nodes get their capacity back.
    pub(super) fn end_deal(&mut self, id: &DealId) {
        let Some(deal) = self.take_deal(id) else {
            return;
        };
        let (from_deal, from_pool) = deal.repair.as_ref().map_or((0, 0), |r| {
            r.pending.iter().fold((0u64, 0u64), |(d, p), x| {
                (d.saturating_add(x.from_deal), p.saturating_add(x.from_pool))
            })
        });
        self.repair_pool = self.repair_pool.saturating_add(from_pool);
        let owner = self.accounts.entry(deal.owner).or_default();
        owner.balance = owner
            .balance
            .saturating_add(deal.escrow)
            .saturating_add(from_deal);
        for c in &deal.commitments {
            if c.orphaned {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&c.node) {
                node.used = node.used.saturating_sub(c.bytes);
                node.active_deals = node.active_deals.saturating_sub(1);
            }
        }
    }
}
