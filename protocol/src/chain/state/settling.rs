//! Lazy settlement: what each period pays is counted per node at the epoch
//! boundary, and moved out of a deal's escrow only when the deal is next
//! changed.
//!
//! ## Why
//!
//! Settling every commitment of every deal at each boundary rewrote every
//! deal once per period, so the epoch block's cost grew with the state
//! (99 ms at 100 000 deals, against 1 ms for any other block). Storage
//! chains settle lazily for the same reason: Sia pays a contract when it
//! ends, Filecoin's market actor settles a deal when its scheduled update
//! comes round.
//!
//! ## How
//!
//! * Each node's [`NodeSpace`] sums what its commitments that count in the
//!   current period pay for a proven period. The boundary pays a node with
//!   one addition; it never walks the node's deals.
//! * A commitment remembers the node's proof counters (periods proven, and
//!   periods missed or failed: [`crate::proofs::accounting::ProofRecord`])
//!   up to which it was settled (`DealCommitment::counted`). What it is owed
//!   since is the growth of the first counter times its pay per proven
//!   period; what it withholds is the growth of the second times its full
//!   share, plus the first's times the part of the share its lost bytes do
//!   not earn.
//! * A deal is settled (escrow, withheld pay and commitments brought up to
//!   date, [`settle_deal`]) before anything changes it or reads its escrow:
//!   closing, ending, a loss, a repair claim, a repair's end, a
//!   disqualification ([`ChainState::begin_change`] and
//!   [`ChainState::end_change`] bracket every such change). Between two
//!   changes every commitment's pay per period is constant, so the result
//!   is exactly that of settling each period in turn.
//! * The boundary touches only the deals that start or end at it and those
//!   with a pending repair, found through indexes ([`Derived`]) that are
//!   rebuilt from the deals when a state is loaded, so neither committed to
//!   nor stored.
//!
//! Readers outside the state see deals settled ([`ChainState::deal`]).
//!
//! ## Non-goals
//!
//! A boundary where many deals start or end at once still costs one deal
//! write each: those are events each paid for by a transaction, not the
//! size of the state.

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use super::{ChainState, CommittedMap, Deal, DealCommitment, DealId, NodeRecord};
use crate::chain::tx::Address;
use crate::proofs::accounting::period_share;

/// What a node's commitments that count in the current period add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpace {
    /// Commitments that count (the node has something to prove).
    pub commitments: u32,
    /// What they pay together for a proven period.
    pub pay: u64,
    /// Shards known lost in them. None: a node that sent no proof missed
    /// (it had bytes to prove), with no need to look at its deals.
    pub lost: u32,
}

/// The indexes of the state that follow from its deals and epoch: kept up
/// to date by every change, rebuilt when a state is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Derived {
    /// Which deals each node has a commitment in, in deal-id order.
    pub node_deals: OrdSet<(Address, DealId)>,
    /// Each node's commitments that count in the current epoch.
    pub spaces: OrdMap<Address, NodeSpace>,
    /// Deals with a commitment that starts counting at a later epoch.
    pub starts: OrdSet<(u64, DealId)>,
    /// Every deal by its end epoch.
    pub ends: OrdSet<(u64, DealId)>,
    /// Deals with a repair whose bounty is held.
    pub repairing: OrdSet<DealId>,
}

/// What a deal was before a change: what [`ChainState::end_change`] needs
/// to move its index entries.
pub(super) struct Before {
    end_epoch: u64,
}

/// The first period commitment `c` of a deal starting at `start_epoch` is
/// proven and paid in.
fn activation(start_epoch: u64, c: &DealCommitment) -> u64 {
    c.since.max(start_epoch)
}

/// Whether commitment `c` of `deal` is proven and paid in `period`.
fn counts_in(deal: &Deal, c: &DealCommitment, period: u64) -> bool {
    !c.orphaned && activation(deal.start_epoch, c) <= period && deal.active_in(period)
}

impl Derived {
    /// Adds (or removes) commitment `c` of a deal of `price` and `size` to
    /// (from) its node's space.
    fn count(&mut self, price: u64, size: u64, c: &DealCommitment, add: bool) {
        let (pay, _) = rates(price, size, c);
        let lost = u32::try_from(c.lost.len()).unwrap_or(u32::MAX);
        let space = self.spaces.entry(c.node).or_default();
        if add {
            space.commitments = space.commitments.saturating_add(1);
            space.pay = space.pay.saturating_add(pay);
            space.lost = space.lost.saturating_add(lost);
        } else {
            space.commitments = space.commitments.saturating_sub(1);
            space.pay = space.pay.saturating_sub(pay);
            space.lost = space.lost.saturating_sub(lost);
        }
        if space.commitments == 0 {
            self.spaces.remove(&c.node);
        }
    }

    /// Adds (or removes) what `deal`'s commitments that count in `epoch`
    /// add to their nodes' spaces.
    fn count_deal(&mut self, deal: &Deal, epoch: u64, add: bool) {
        for c in deal
            .commitments
            .iter()
            .filter(|c| counts_in(deal, c, epoch))
        {
            self.count(deal.price_per_epoch, deal.size, c, add);
        }
    }

    /// Enters deal `id` in the indexes at `epoch` (entries already there
    /// stay).
    fn index(&mut self, id: &DealId, deal: &Deal, epoch: u64) {
        for c in &deal.commitments {
            self.node_deals.insert((c.node, *id));
            let at = activation(deal.start_epoch, c);
            if !c.orphaned && at > epoch && at < deal.end_epoch {
                self.starts.insert((at, *id));
            }
        }
        self.ends.insert((deal.end_epoch, *id));
        if deal.repair.as_ref().is_some_and(|r| !r.pending.is_empty()) {
            self.repairing.insert(*id);
        } else {
            self.repairing.remove(id);
        }
    }
}

/// A commitment's pay for a proven period, and its full share of the
/// deal's price (what an unproven period withholds). Bytes repair moved to
/// another holder are paid there, so they are not in the share; lost bytes
/// are in the share but not in the pay.
pub(super) fn rates(price: u64, size: u64, c: &DealCommitment) -> (u64, u64) {
    let owed = c.bytes.saturating_sub(c.moved_bytes());
    let full = period_share(price, owed, size);
    (period_share(price, c.live_bytes(), size).min(full), full)
}

/// Brings `deal` up to date at `epoch`: each commitment that has started
/// and is not orphaned is paid (from escrow) for the periods its node
/// proved since it was last settled, and withholds for the others.
pub(super) fn settle_deal(deal: &mut Deal, nodes: &CommittedMap<Address, NodeRecord>, epoch: u64) {
    let (price, size, start) = (deal.price_per_epoch, deal.size, deal.start_epoch);
    let mut paid = 0u64;
    let mut withheld = 0u64;
    let mut settled = false;
    for c in &mut deal.commitments {
        if c.orphaned || activation(start, c) > epoch {
            continue;
        }
        let Some(node) = nodes.get(&c.node) else {
            continue;
        };
        let now = (node.proofs.accepted, node.proofs.missed);
        let proven = now.0.saturating_sub(c.counted.0);
        let unproven = now.1.saturating_sub(c.counted.1);
        if proven == 0 && unproven == 0 {
            continue;
        }
        settled = true;
        let (pay, full) = rates(price, size, c);
        let pay_total = pay.saturating_mul(proven);
        c.paid = c.paid.saturating_add(pay_total);
        c.proofs_accepted = c.proofs_accepted.saturating_add(proven);
        c.proofs_missed = c.proofs_missed.saturating_add(unproven);
        c.counted = now;
        paid = paid.saturating_add(pay_total);
        withheld = withheld
            .saturating_add((full - pay).saturating_mul(proven))
            .saturating_add(full.saturating_mul(unproven));
    }
    // Withheld pay is never more than the escrow once a period is settled
    // (a closed deal keeps only its last period's price); until then it
    // stays as it is, as it would have period by period.
    if settled {
        deal.escrow = deal.escrow.saturating_sub(paid);
        deal.withheld = deal.withheld.saturating_add(withheld).min(deal.escrow);
    }
}

impl ChainState {
    /// Deal `id` as it stands settled: what [`Self::deal`] shows.
    pub(super) fn settled(&self, id: &DealId) -> Option<Deal> {
        let mut deal = self.deals.get(id)?.clone();
        settle_deal(&mut deal, &self.nodes, self.epoch);
        Some(deal)
    }

    /// Settles deal `id` and takes its commitments out of their nodes'
    /// spaces, before the caller changes it (then [`Self::end_change`]).
    pub(super) fn begin_change(&mut self, id: &DealId) -> Option<Before> {
        let epoch = self.epoch;
        let deal = self.deals.get_mut(id)?;
        settle_deal(deal, &self.nodes, epoch);
        self.derived.count_deal(deal, epoch, false);
        // `end_change` puts back those that still apply (a close can end
        // the deal before a new holder starts).
        for c in &deal.commitments {
            self.derived
                .starts
                .remove(&(activation(deal.start_epoch, c), *id));
        }
        Some(Before {
            end_epoch: deal.end_epoch,
        })
    }

    /// Puts deal `id`'s commitments back into their nodes' spaces as they
    /// are now, and its index entries where they now belong.
    pub(super) fn end_change(&mut self, id: &DealId, before: Before) {
        let Some(deal) = self.deals.get(id) else {
            return;
        };
        self.derived.count_deal(deal, self.epoch, true);
        if deal.end_epoch != before.end_epoch {
            self.derived.ends.remove(&(before.end_epoch, *id));
        }
        self.derived.index(id, deal, self.epoch);
    }

    /// Enters a new deal `id` in the indexes (it starts after the current
    /// epoch: nothing of it counts yet).
    pub(super) fn index_new(&mut self, id: &DealId, deal: &Deal) {
        self.derived.index(id, deal, self.epoch);
    }

    /// Takes deal `id` out of the state, settled, with its index entries
    /// and its part of its nodes' spaces.
    pub(super) fn take_deal(&mut self, id: &DealId) -> Option<Deal> {
        // Settled, out of the spaces and out of `starts`.
        self.begin_change(id)?;
        let deal = self.deals.remove(id)?;
        let d = &mut self.derived;
        for c in &deal.commitments {
            d.node_deals.remove(&(c.node, *id));
        }
        d.ends.remove(&(deal.end_epoch, *id));
        d.repairing.remove(id);
        Some(deal)
    }

    /// The deals that end by `epoch` (their end epoch is at most it).
    pub(super) fn ending_by(&self, epoch: u64) -> Vec<DealId> {
        self.derived
            .ends
            .range(..=(epoch, DealId([0xff; 32])))
            .map(|(_, id)| *id)
            .collect()
    }

    /// At the start of `self.epoch`: the commitments that count from it on
    /// join their nodes' spaces, settled up to now.
    pub(super) fn start_commitments(&mut self) {
        let epoch = self.epoch;
        let starting: Vec<(u64, DealId)> = self
            .derived
            .starts
            .range(..=(epoch, DealId([0xff; 32])))
            .copied()
            .collect();
        for key in starting {
            self.derived.starts.remove(&key);
            let id = key.1;
            let Some(deal) = self.deals.get_mut(&id) else {
                continue;
            };
            let (price, size, start) = (deal.price_per_epoch, deal.size, deal.start_epoch);
            let active = deal.active_in(epoch);
            for c in &mut deal.commitments {
                if c.orphaned || activation(start, c) != epoch || !active {
                    continue;
                }
                let Some(node) = self.nodes.get(&c.node) else {
                    continue;
                };
                c.counted = (node.proofs.accepted, node.proofs.missed);
                self.derived.count(price, size, c, true);
            }
        }
    }

    /// The indexes as they follow from the deals and the epoch alone.
    pub(super) fn derive(&self) -> Derived {
        let mut derived = Derived::default();
        for (id, deal) in self.deals.iter() {
            derived.count_deal(deal, self.epoch, true);
            derived.index(id, deal, self.epoch);
        }
        derived
    }

    /// Whether the indexes kept up to date block by block are those the
    /// deals give when rebuilt: what a loaded state has.
    pub fn indexes_consistent(&self) -> bool {
        self.derive() == self.derived
    }
}
