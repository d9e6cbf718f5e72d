//! The replicated state and the rules that change it.
//!
//! One file per concern: this one holds the state, accounts, nodes and the
//! transaction dispatch; [`deals`] opens, closes and pays deals;
//! [`proving`] checks storage proofs and settles each period; [`settling`]
//! moves what a period paid out of a deal's escrow when the deal is next
//! changed; [`repairing`]
//! checks repair claims and pays their bounties; [`committed`] and
//! [`trie`] hold the maps and their Merkle commitment; [`stored`] is the
//! state as a store keeps it, entry by entry.

mod committed;
mod deals;
mod proving;
mod repairing;
mod settling;
mod stored;
mod trie;

pub use committed::CommittedMap;
pub use repairing::{DealRepair, MovedRecord, PendingRepair};
pub use settling::NodeSpace;
pub use stored::{StateEntry, StateHeader, StateMap};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::genesis::{Genesis, GenesisHash};
use super::rejection::Rejection;
use super::sig;
use super::tx::{Address, SignedTx, TxBody};
use crate::proofs::accounting::{Health, ProofRecord};
use crate::proofs::ProofParams;

/// An account's balance and next nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub nonce: u64,
}

/// A registered storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub peer_id: Vec<u8>,
    pub addresses: Vec<String>,
    pub capacity: u64,
    /// Bytes committed in active deals.
    pub used: u64,
    pub stake: u64,
    pub active_deals: u32,
    pub registered_at: u64,
    /// Paid out from deal escrow so far.
    pub earned: u64,
    /// Proof history and health (active, faulty, disqualified).
    pub proofs: ProofRecord,
    /// The current period's proof, once accepted: its period and whether a
    /// sample found undeclared loss.
    pub proven: Option<(u64, bool)>,
    /// Stake taken when the node was disqualified.
    pub slashed: u64,
}

impl NodeRecord {
    pub fn health(&self) -> Health {
        self.proofs.health
    }
}

/// A deal's id: BLAKE3 of the owner and the nonce of the opening transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DealId(pub [u8; 32]);

impl DealId {
    pub fn new(owner: &Address, nonce: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("cairn 2026-11 v1 deal id");
        h.update(&owner.0);
        h.update(&nonce.to_le_bytes());
        Self(*h.finalize().as_bytes())
    }
}

impl std::fmt::Display for DealId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Address(self.0).fmt(f)
    }
}

/// One node's part of an open deal (its receipt was checked on opening).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCommitment {
    pub node: Address,
    pub root: [u8; 32],
    pub shards: u32,
    pub bytes: u64,
    /// Shards of this commitment known lost, by leaf index.
    pub lost: Vec<LostRecord>,
    /// Periods of this deal the node proved, and missed or failed.
    pub proofs_accepted: u64,
    pub proofs_missed: u64,
    /// Paid to the node from this deal so far.
    pub paid: u64,
    /// The node was disqualified: it is no longer asked, nor paid.
    pub orphaned: bool,
    /// The first period this commitment is proven and paid in: the deal's
    /// start, or for a holder added by repair the period after its claim.
    pub since: u64,
    /// Leaves (index, size) whose shards repair moved to another holder.
    pub moved: Vec<(u32, u64)>,
    /// The part of the repair pool set aside for repairing this commitment:
    /// its node's slashed stake pro rata to its bytes once the node was
    /// disqualified (less what repairs of it took), plus the pool's part of
    /// a failed repair that moved shards to it.
    pub slashed: u64,
    /// The node's proof counters (periods proven; periods missed or failed)
    /// this commitment was last settled at: its pay and withheld pay for the
    /// periods since are still in the deal's escrow ([`settling`]).
    pub counted: (u64, u64),
}

impl DealCommitment {
    /// Bytes the node still holds (and is paid for).
    pub fn live_bytes(&self) -> u64 {
        let lost: u64 = self.lost.iter().map(|l| l.size).sum();
        self.bytes.saturating_sub(lost)
    }

    /// Bytes repair moved away from this commitment.
    pub fn moved_bytes(&self) -> u64 {
        self.moved.iter().map(|m| m.1).sum()
    }

    /// Bytes lost here (all of them once orphaned) that no repair moved yet.
    pub fn unrepaired_bytes(&self) -> u64 {
        let lost = if self.orphaned {
            self.bytes
        } else {
            self.lost.iter().map(|l| l.size).sum()
        };
        lost.saturating_sub(self.moved_bytes())
    }

    /// Whether leaf `leaf` is lost here: the node was disqualified, or the
    /// leaf was declared or found lost.
    pub fn leaf_lost(&self, leaf: u32) -> bool {
        self.orphaned || self.lost.iter().any(|l| l.leaf == leaf)
    }

    /// The commitment's tree.
    pub fn committed(&self) -> super::merkle::Committed {
        super::merkle::Committed {
            root: self.root,
            count: u64::from(self.shards),
            bytes: self.bytes,
        }
    }

    /// The commitment as a proof is checked against: its tree, less the
    /// shards known lost before height `before`.
    pub fn space(&self, before: u64) -> crate::proofs::Space {
        let mut lost: Vec<(u64, u64)> = self
            .lost
            .iter()
            .filter(|l| l.at < before)
            .map(|l| (l.start, l.size))
            .collect();
        lost.sort_unstable();
        crate::proofs::Space {
            tree: self.committed(),
            lost,
        }
    }
}

/// A shard of a commitment known to be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRecord {
    pub leaf: u32,
    /// Where the shard's bytes start in the commitment.
    pub start: u64,
    pub size: u64,
    /// The height at which the chain learnt it.
    pub at: u64,
    /// Found by a sample (true) or declared by the node (false).
    pub found: bool,
}

/// An open deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub owner: Address,
    pub size: u64,
    pub price_per_epoch: u64,
    pub start_epoch: u64,
    pub end_epoch: u64,
    pub commitments: Vec<DealCommitment>,
    /// Escrow not yet paid out.
    pub escrow: u64,
    /// Part of the escrow that periods not proven (or lost bytes) did not
    /// pay: kept for repair, returned to the owner if the deal ends unused.
    pub withheld: u64,
    pub opened_at: u64,
    /// The public repair data's reference and what repair did to the deal.
    pub repair: Option<DealRepair>,
}

impl Deal {
    /// Whether `period` is paid for by this deal.
    pub fn active_in(&self, period: u64) -> bool {
        self.start_epoch <= period && period < self.end_epoch
    }
}

/// The current namespace pointer of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRoot {
    pub root: [u8; 32],
    pub version: u64,
}

/// Chain parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Params {
    epoch_blocks: u64,
    min_fee: u64,
    min_stake: u64,
    faucet_max: Option<u64>,
    max_deal_epochs: u64,
    max_start_ahead: u64,
    proof: ProofParams,
}

/// What applying a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// One result per transaction, in order.
    pub results: Vec<Result<(), Rejection>>,
    /// Whether the block opened a new epoch.
    pub new_epoch: bool,
    pub state_root: [u8; 32],
}

/// The whole replicated state. Ordered maps only, so its encoding is the
/// same on every validator. The maps are persistent ([`CommittedMap`]): a
/// clone shares them, and [`Self::root`] rehashes only what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    chain_id: String,
    /// Every transaction and receipt must name it ([`GenesisHash`]).
    genesis: GenesisHash,
    params: Params,
    validators: Vec<Address>,
    height: u64,
    epoch: u64,
    beacon: [u8; 32],
    /// The beacons of the last `window_blocks + 1` blocks, by height: a proof
    /// window's seed is the beacon of the block that opened it.
    beacons: BTreeMap<u64, [u8; 32]>,
    accounts: CommittedMap<Address, Account>,
    nodes: CommittedMap<Address, NodeRecord>,
    deals: CommittedMap<DealId, Deal>,
    /// Indexes of `deals` (which deals each node is in, each node's space
    /// this period, the deals starting, ending and being repaired), so
    /// neither committed to nor stored: rebuilt when a state is loaded.
    derived: settling::Derived,
    namespaces: CommittedMap<Address, NamespaceRoot>,
    /// Slashed stake, waiting to pay for repairs.
    repair_pool: u64,
    genesis_supply: u64,
    minted: u64,
    burned: u64,
}

fn add(a: u64, b: u64) -> Result<u64, Rejection> {
    a.checked_add(b).ok_or(Rejection::Overflow)
}

impl ChainState {
    /// The state at height 0.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, String> {
        genesis.validate()?;
        let mut accounts = BTreeMap::new();
        let mut supply = 0u64;
        for a in &genesis.allocations {
            accounts.insert(
                a.address,
                Account {
                    balance: a.amount,
                    nonce: 0,
                },
            );
            supply += a.amount;
        }
        Ok(Self {
            chain_id: genesis.chain_id.clone(),
            genesis: genesis.hash(),
            params: Params {
                epoch_blocks: genesis.epoch_blocks,
                min_fee: genesis.min_fee,
                min_stake: genesis.min_stake,
                faucet_max: genesis.faucet_max,
                max_deal_epochs: genesis.max_deal_epochs,
                max_start_ahead: genesis.max_start_ahead_epochs,
                proof: genesis.proof_params(),
            },
            validators: genesis.validators.clone(),
            height: 0,
            epoch: 0,
            beacon: super::beacon::genesis_beacon(&genesis.hash()),
            beacons: BTreeMap::new(),
            accounts: accounts.into_iter().collect(),
            nodes: CommittedMap::new(),
            deals: CommittedMap::new(),
            derived: settling::Derived::default(),
            namespaces: CommittedMap::new(),
            repair_pool: 0,
            genesis_supply: supply,
            minted: 0,
            burned: 0,
        })
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The hash of the genesis this state started from: the chain's name in
    /// every signature.
    pub fn genesis_hash(&self) -> GenesisHash {
        self.genesis
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The beacon the engine handed in with the latest block (see
    /// [`super::beacon`] for where it comes from).
    pub fn beacon(&self) -> [u8; 32] {
        self.beacon
    }

    /// The beacon that came with the block at `height`, while it is recent
    /// enough to seed an open proof window.
    pub fn beacon_at(&self, height: u64) -> Option<[u8; 32]> {
        self.beacons.get(&height).copied()
    }

    /// The storage-proof rules of this chain.
    pub fn proof_params(&self) -> &ProofParams {
        &self.params.proof
    }

    /// Blocks per epoch (= proof period).
    pub fn epoch_blocks(&self) -> u64 {
        self.params.epoch_blocks
    }

    pub fn min_stake(&self) -> u64 {
        self.params.min_stake
    }

    /// How many epochs ahead of the current one a deal may start.
    pub fn max_start_ahead(&self) -> u64 {
        self.params.max_start_ahead
    }

    /// Largest faucet request, or `None`: this chain has no faucet.
    pub fn faucet_max(&self) -> Option<u64> {
        self.params.faucet_max
    }

    /// Slashed stake not yet spent on repairs.
    pub fn repair_pool(&self) -> u64 {
        self.repair_pool
    }

    pub fn validators(&self) -> &[Address] {
        &self.validators
    }

    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).cloned().unwrap_or_default()
    }

    pub fn node(&self, address: &Address) -> Option<&NodeRecord> {
        self.nodes.get(address)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&Address, &NodeRecord)> {
        self.nodes.iter()
    }

    /// Deal `id`, settled: its escrow, withheld pay and commitments as if
    /// every period so far had been paid out ([`settling`]).
    pub fn deal(&self, id: &DealId) -> Option<Deal> {
        self.settled(id)
    }

    /// Every deal, settled, in id order.
    pub fn deals(&self) -> impl Iterator<Item = (&DealId, Deal)> {
        self.deals_after(None)
    }

    /// What a node's commitments that count in the current period add up
    /// to (none: it has nothing to prove).
    pub fn node_space(&self, node: &Address) -> NodeSpace {
        self.derived.spaces.get(node).copied().unwrap_or_default()
    }

    /// Nodes with addresses after `after`, in address order (a registry page).
    pub fn nodes_after(
        &self,
        after: Option<&Address>,
    ) -> impl Iterator<Item = (&Address, &NodeRecord)> {
        self.nodes.iter_after(after)
    }

    /// Deals with ids after `after`, in id order (a page of deals).
    pub fn deals_after(&self, after: Option<&DealId>) -> impl Iterator<Item = (&DealId, Deal)> {
        self.deals_where(after, |_| true)
    }

    /// Deals with ids after `after` whose record passes `keep`, settled.
    /// `keep` sees the deal unsettled, so it may look only at what
    /// settlement does not change (owner, terms, commitments' nodes and
    /// roots, repair data); only the deals kept are settled (copied).
    pub fn deals_where<'a>(
        &'a self,
        after: Option<&DealId>,
        keep: impl Fn(&Deal) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a DealId, Deal)> + 'a {
        self.deals
            .iter_after(after)
            .filter(move |(_, d)| keep(d))
            .map(|(id, d)| {
                let mut d = d.clone();
                settling::settle_deal(&mut d, &self.nodes, self.epoch);
                (id, d)
            })
    }

    /// How many deals pass `keep` (see [`Self::deals_where`]), without
    /// settling any.
    pub fn count_deals(&self, keep: impl Fn(&Deal) -> bool) -> usize {
        self.deals.values().filter(|d| keep(d)).count()
    }

    /// What a repairer needs of the state to repair `deal` by the rules of
    /// [`crate::repair`]: the parameters, every node, and this deal alone
    /// (no accounts, no other deal). [`crate::repair::assess`],
    /// [`crate::repair::choose_holders`] and [`crate::repair::prepare`]
    /// give the same answers on it as on the whole state; a validator
    /// serves it so a repairer need not hold the chain.
    pub fn repair_view(&self, deal: &DealId) -> Option<ChainState> {
        let d = self.settled(deal)?;
        let mut view = ChainState {
            chain_id: self.chain_id.clone(),
            genesis: self.genesis,
            params: self.params.clone(),
            validators: self.validators.clone(),
            height: self.height,
            epoch: self.epoch,
            beacon: self.beacon,
            beacons: BTreeMap::new(),
            accounts: CommittedMap::new(),
            nodes: self.nodes.clone(),
            deals: [(*deal, d)].into_iter().collect(),
            derived: settling::Derived::default(),
            namespaces: CommittedMap::new(),
            repair_pool: self.repair_pool,
            genesis_supply: self.genesis_supply,
            minted: self.minted,
            burned: self.burned,
        };
        view.derived = view.derive();
        Some(view)
    }

    pub fn namespace(&self, address: &Address) -> Option<NamespaceRoot> {
        self.namespaces.get(address).copied()
    }

    /// The state root: BLAKE3 (derive-key `cairn 2026-12 v1 state root`) of
    /// the header's encoding ([`StateHeader`]: every field but the maps)
    /// followed by the roots of the accounts, nodes, deals and namespaces
    /// ([`CommittedMap::root`]). Cheap after [`Self::apply_block`]: the
    /// header is small and the maps' roots are up to date.
    pub fn root(&self) -> [u8; 32] {
        let header = postcard::to_stdvec(&self.header())
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        let mut h = blake3::Hasher::new_derive_key("cairn 2026-12 v1 state root");
        h.update(&header);
        h.update(&self.accounts.root());
        h.update(&self.nodes.root());
        h.update(&self.deals.root());
        h.update(&self.namespaces.root());
        *h.finalize().as_bytes()
    }

    /// The root from nothing but the contents (every map's trie rebuilt):
    /// what [`Self::root`] must equal.
    pub fn root_from_scratch(&self) -> [u8; 32] {
        let mut fresh = self.clone();
        fresh.accounts = self.accounts.iter().map(|(k, v)| (*k, v.clone())).collect();
        fresh.nodes = self.nodes.iter().map(|(k, v)| (*k, v.clone())).collect();
        fresh.deals = self.deals.iter().map(|(k, v)| (*k, v.clone())).collect();
        fresh.namespaces = self.namespaces.iter().map(|(k, v)| (*k, *v)).collect();
        fresh.root()
    }

    /// Brings every map's commitment up to date.
    fn commit(&mut self) {
        self.accounts.commit();
        self.nodes.commit();
        self.deals.commit();
        self.namespaces.commit();
    }

    /// Tokens the state holds: balances, stakes, escrow, the repair pool and
    /// the bounties held for pending repairs.
    pub fn held(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| a.balance as u128).sum();
        let stakes: u128 = self.nodes.values().map(|n| n.stake as u128).sum();
        // Settled: what a period paid a node has left the escrow.
        let escrow: u128 = self.deals().map(|(_, d)| d.escrow as u128).sum();
        let bounties: u128 = self
            .deals
            .values()
            .filter_map(|d| d.repair.as_ref())
            .flat_map(|r| &r.pending)
            .map(|p| p.bounty() as u128)
            .sum();
        balances + stakes + escrow + bounties + self.repair_pool as u128
    }

    /// Tokens that should exist: genesis plus faucet mints minus burned fees.
    /// Equal to [`Self::held`] after every transaction and block.
    pub fn expected_supply(&self) -> u128 {
        self.genesis_supply as u128 + self.minted as u128 - self.burned as u128
    }

    /// Applies a block: records the block's `beacon` (the randomness the
    /// engine hands in with it; it seeds the proof windows that open at this
    /// height), settles the period that ended if this height starts an epoch,
    /// then applies each transaction in order.
    /// [`super::beacon`] says which randomness that is: the threshold seed
    /// of the parent's view, which the proposer cannot choose.
    pub fn apply_block(
        &mut self,
        height: u64,
        beacon: [u8; 32],
        txs: &[SignedTx],
    ) -> Result<BlockOutcome, String> {
        if height != self.height + 1 {
            return Err(format!(
                "block at height {height} applied on state at height {}",
                self.height
            ));
        }
        self.height = height;
        self.beacon = beacon;
        self.beacons.insert(height, beacon);
        let keep_from = height.saturating_sub(self.params.proof.window_blocks);
        self.beacons = self.beacons.split_off(&keep_from);
        let new_epoch = height % self.params.epoch_blocks == 0;
        if new_epoch {
            // The period that ended is settled in its own epoch (the deals
            // it was the last period of end with it); then the commitments
            // that start counting in the new one join their nodes' spaces.
            self.settle_period(self.epoch);
            self.epoch = height / self.params.epoch_blocks;
            self.start_commitments();
        }
        // Every signature of the block in one batch (the answer is the
        // same, tx by tx, as checking each alone: see `sig`).
        let messages: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
        let signatures = sig::check_all(
            txs.iter()
                .zip(&messages)
                .map(|(t, m)| (&t.tx.signer, m.as_slice(), &t.signature)),
        );
        let results = txs
            .iter()
            .zip(signatures)
            .map(|(tx, signature)| self.apply_checked(tx, signature))
            .collect();
        self.commit();
        Ok(BlockOutcome {
            results,
            new_epoch,
            state_root: self.root(),
        })
    }

    /// Applies one transaction, or rejects it and changes nothing.
    pub fn apply_tx(&mut self, signed: &SignedTx) -> Result<(), Rejection> {
        self.apply_checked(signed, signed.verify())
    }

    /// [`Self::apply_tx`] for a transaction whose signature the caller has
    /// verified already ([`SignedTx::verify`]), such as a mempool's dry run
    /// of what it admitted: everything else is checked as usual.
    pub fn apply_verified(&mut self, signed: &SignedTx) -> Result<(), Rejection> {
        self.apply_checked(signed, Ok(()))
    }

    /// [`Self::apply_tx`] with the signature already checked (`signature`
    /// is [`SignedTx::verify`]'s answer), so a block checks all of its
    /// signatures in one batch.
    fn apply_checked(
        &mut self,
        signed: &SignedTx,
        signature: Result<(), Rejection>,
    ) -> Result<(), Rejection> {
        let tx = &signed.tx;
        tx.check_limits()?;
        if tx.genesis != self.genesis {
            return Err(Rejection::WrongChain {
                expected: self.genesis,
                got: tx.genesis,
            });
        }
        signature?;
        let signer = tx.signer;
        let account = self.account(&signer);
        if tx.nonce != account.nonce {
            return Err(Rejection::BadNonce {
                expected: account.nonce,
                got: tx.nonce,
            });
        }
        let faucet = matches!(tx.body, TxBody::Faucet { .. });
        if !faucet && tx.fee < self.params.min_fee {
            return Err(Rejection::FeeTooLow {
                min: self.params.min_fee,
                got: tx.fee,
            });
        }
        // Everything below validates first and mutates only once nothing can fail.
        let debit = |extra: u64| -> Result<u64, Rejection> {
            let need = add(tx.fee, extra)?;
            if account.balance < need {
                return Err(Rejection::InsufficientFunds {
                    need,
                    have: account.balance,
                });
            }
            Ok(need)
        };
        match &tx.body {
            TxBody::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(Rejection::ZeroAmount);
                }
                let need = debit(*amount)?;
                let receiver = self.account(to);
                if *to != signer {
                    add(receiver.balance, *amount)?;
                }
                self.charge(signer, need, tx.fee);
                let to_account = self.accounts.entry(*to).or_default();
                to_account.balance += amount;
            }
            TxBody::Faucet { amount } => {
                let max = self.params.faucet_max.ok_or(Rejection::FaucetDisabled)?;
                if *amount > max {
                    return Err(Rejection::FaucetLimit { max, got: *amount });
                }
                if *amount == 0 {
                    return Err(Rejection::ZeroAmount);
                }
                let need = debit(0)?;
                let minted = add(self.minted, *amount)?;
                add(account.balance - need, *amount)?;
                self.charge(signer, need, tx.fee);
                self.minted = minted;
                self.accounts.entry(signer).or_default().balance += amount;
            }
            TxBody::RegisterNode {
                peer_id,
                addresses,
                capacity,
                stake,
            } => {
                if self.nodes.contains_key(&signer) {
                    return Err(Rejection::NodeExists(signer));
                }
                // Otherwise one key could register many peer ids (or
                // another node's) and so crowd clients' views of the network.
                if *peer_id != super::tx::peer_id_of(&signer) {
                    return Err(Rejection::ForeignPeerId);
                }
                if *stake < self.params.min_stake {
                    return Err(Rejection::StakeTooLow {
                        min: self.params.min_stake,
                        got: *stake,
                    });
                }
                if *capacity == 0 {
                    return Err(Rejection::Malformed("capacity must be positive".into()));
                }
                let need = debit(*stake)?;
                self.charge(signer, need, tx.fee);
                self.nodes.insert(
                    signer,
                    NodeRecord {
                        peer_id: peer_id.clone(),
                        addresses: addresses.clone(),
                        capacity: *capacity,
                        used: 0,
                        stake: *stake,
                        active_deals: 0,
                        registered_at: self.height,
                        earned: 0,
                        proofs: ProofRecord::default(),
                        proven: None,
                        slashed: 0,
                    },
                );
            }
            TxBody::DeregisterNode => {
                let node = self
                    .nodes
                    .get(&signer)
                    .ok_or(Rejection::UnknownNode(signer))?;
                if node.active_deals > 0 {
                    return Err(Rejection::NodeHasDeals(signer));
                }
                let need = debit(0)?;
                let refund = node.stake;
                add(account.balance - need, refund)?;
                self.charge(signer, need, tx.fee);
                self.nodes.remove(&signer);
                self.accounts.entry(signer).or_default().balance += refund;
            }
            TxBody::UpdateNode {
                addresses,
                capacity,
            } => {
                let node = self
                    .nodes
                    .get(&signer)
                    .ok_or(Rejection::UnknownNode(signer))?;
                if *capacity == 0 {
                    return Err(Rejection::Malformed("capacity must be positive".into()));
                }
                if *capacity < node.used {
                    return Err(Rejection::CapacityBelowUsed {
                        node: signer,
                        used: node.used,
                        capacity: *capacity,
                    });
                }
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                if let Some(node) = self.nodes.get_mut(&signer) {
                    node.addresses = addresses.clone();
                    node.capacity = *capacity;
                }
            }
            TxBody::OpenDeal(terms) => {
                let escrow = self.check_deal(signer, tx.nonce, terms)?;
                let need = debit(escrow)?;
                self.charge(signer, need, tx.fee);
                self.open_deal(signer, tx.nonce, terms, escrow);
            }
            TxBody::CloseDeal { deal } => {
                let refund = self.check_close(signer, deal)?;
                let need = debit(0)?;
                add(account.balance - need, refund)?;
                self.charge(signer, need, tx.fee);
                self.close_deal(deal);
            }
            TxBody::AddStake { amount } => {
                let node = self
                    .nodes
                    .get(&signer)
                    .ok_or(Rejection::UnknownNode(signer))?;
                if *amount == 0 {
                    return Err(Rejection::ZeroAmount);
                }
                if node.health() == Health::Disqualified {
                    return Err(Rejection::NodeDisqualified(signer));
                }
                add(node.stake, *amount)?;
                let need = debit(*amount)?;
                self.charge(signer, need, tx.fee);
                if let Some(node) = self.nodes.get_mut(&signer) {
                    node.stake += amount;
                }
            }
            TxBody::ProveStorage(proof) => {
                let checked = self.check_proof(signer, proof)?;
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                self.record_proof(signer, checked);
            }
            TxBody::DeclareLost(leaves) => {
                let records = self.check_declared(signer, leaves)?;
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                self.record_lost(records);
            }
            TxBody::SetRepairData { deal, repair } => {
                self.check_repair_data(signer, deal, repair)?;
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                self.set_repair_data(deal, *repair);
            }
            TxBody::ClaimRepair(claim) => {
                let checked = self.check_repair(signer, claim)?;
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                self.record_repair(signer, checked);
            }
            TxBody::SetNamespaceRoot { root, version } => {
                let current = self.namespaces.get(&signer).map_or(0, |n| n.version);
                if *version <= current {
                    return Err(Rejection::StaleNamespace {
                        current,
                        got: *version,
                    });
                }
                let need = debit(0)?;
                self.charge(signer, need, tx.fee);
                self.namespaces.insert(
                    signer,
                    NamespaceRoot {
                        root: *root,
                        version: *version,
                    },
                );
            }
        }
        Ok(())
    }

    /// Takes `need` from the signer (the fee part is burned) and bumps its nonce.
    fn charge(&mut self, signer: Address, need: u64, fee: u64) {
        let account = self.accounts.entry(signer).or_default();
        account.balance -= need;
        account.nonce += 1;
        self.burned += fee;
    }
}
