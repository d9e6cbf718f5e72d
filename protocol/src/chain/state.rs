//! The replicated state and the rules that change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::genesis::Genesis;
use super::rejection::Rejection;
use super::tx::{receipt_message, Address, DealTerms, SignedTx, TxBody};

/// An account's balance and next nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub nonce: u64,
}

/// Where a storage node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Active,
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
    pub status: NodeStatus,
    pub active_deals: u32,
    pub registered_at: u64,
    /// Paid out from deal escrow so far.
    pub earned: u64,
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
    pub opened_at: u64,
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

/// The whole replicated state. Ordered maps only, so its encoding (and so
/// its root) is the same on every validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    chain_id: String,
    params: Params,
    validators: Vec<Address>,
    height: u64,
    epoch: u64,
    beacon: [u8; 32],
    accounts: BTreeMap<Address, Account>,
    nodes: BTreeMap<Address, NodeRecord>,
    deals: BTreeMap<DealId, Deal>,
    namespaces: BTreeMap<Address, NamespaceRoot>,
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
            params: Params {
                epoch_blocks: genesis.epoch_blocks,
                min_fee: genesis.min_fee,
                min_stake: genesis.min_stake,
                faucet_max: genesis.faucet_max,
                max_deal_epochs: genesis.max_deal_epochs,
            },
            validators: genesis.validators.clone(),
            height: 0,
            epoch: 0,
            beacon: *blake3::hash(genesis.chain_id.as_bytes()).as_bytes(),
            accounts,
            nodes: BTreeMap::new(),
            deals: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            genesis_supply: supply,
            minted: 0,
            burned: 0,
        })
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current epoch's beacon: the beacon the engine handed in with the
    /// block that opened it (see [`super::beacon`]).
    pub fn beacon(&self) -> [u8; 32] {
        self.beacon
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

    pub fn deal(&self, id: &DealId) -> Option<&Deal> {
        self.deals.get(id)
    }

    pub fn deals(&self) -> impl Iterator<Item = (&DealId, &Deal)> {
        self.deals.iter()
    }

    pub fn namespace(&self, address: &Address) -> Option<NamespaceRoot> {
        self.namespaces.get(address).copied()
    }

    /// The state root: BLAKE3 of the canonical encoding of the whole state.
    pub fn root(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        *blake3::hash(&bytes).as_bytes()
    }

    /// Tokens the state holds: balances, stakes and escrow.
    pub fn held(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| a.balance as u128).sum();
        let stakes: u128 = self.nodes.values().map(|n| n.stake as u128).sum();
        let escrow: u128 = self.deals.values().map(|d| d.escrow as u128).sum();
        balances + stakes + escrow
    }

    /// Tokens that should exist: genesis plus faucet mints minus burned fees.
    /// Equal to [`Self::held`] after every transaction and block.
    pub fn expected_supply(&self) -> u128 {
        self.genesis_supply as u128 + self.minted as u128 - self.burned as u128
    }

    /// Applies a block: opens an epoch if this height starts one (its beacon
    /// is `beacon`, and the epoch that ended is paid for), then each
    /// transaction in order. `beacon` is the beacon for this block: the
    /// randomness the engine hands in with it ([`super::beacon`]: the
    /// threshold seed of the parent's view, which the proposer cannot
    /// choose).
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
        let new_epoch = height % self.params.epoch_blocks == 0;
        if new_epoch {
            self.epoch = height / self.params.epoch_blocks;
            self.beacon = beacon;
            self.settle_epoch(self.epoch - 1);
        }
        let results = txs.iter().map(|tx| self.apply_tx(tx)).collect();
        Ok(BlockOutcome {
            results,
            new_epoch,
            state_root: self.root(),
        })
    }

    /// Pays every deal active in `epoch` and closes those that ended.
    fn settle_epoch(&mut self, epoch: u64) {
        let mut closed = Vec::new();
        for (id, deal) in self.deals.iter_mut() {
            if deal.start_epoch <= epoch && epoch < deal.end_epoch {
                let mut paid = 0u64;
                for c in &deal.commitments {
                    // Pro rata by bytes; u128 avoids overflow, the remainder stays in escrow.
                    let share = (deal.price_per_epoch as u128 * c.bytes as u128
                        / deal.size.max(1) as u128) as u64;
                    let share = share.min(deal.escrow - paid);
                    paid += share;
                    let account = self.accounts.entry(c.node).or_default();
                    account.balance = account.balance.saturating_add(share);
                    if let Some(node) = self.nodes.get_mut(&c.node) {
                        node.earned = node.earned.saturating_add(share);
                    }
                }
                deal.escrow -= paid;
            }
            if epoch + 1 >= deal.end_epoch {
                closed.push(*id);
            }
        }
        for id in closed {
            if let Some(deal) = self.deals.remove(&id) {
                let owner = self.accounts.entry(deal.owner).or_default();
                owner.balance = owner.balance.saturating_add(deal.escrow);
                for c in &deal.commitments {
                    if let Some(node) = self.nodes.get_mut(&c.node) {
                        node.used = node.used.saturating_sub(c.bytes);
                        node.active_deals = node.active_deals.saturating_sub(1);
                    }
                }
            }
        }
    }

    /// Applies one transaction, or rejects it and changes nothing.
    pub fn apply_tx(&mut self, signed: &SignedTx) -> Result<(), Rejection> {
        let tx = &signed.tx;
        tx.check_limits()?;
        if tx.chain_id != self.chain_id {
            return Err(Rejection::WrongChain {
                expected: self.chain_id.clone(),
                got: tx.chain_id.clone(),
            });
        }
        signed.verify()?;
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
                        status: NodeStatus::Active,
                        active_deals: 0,
                        registered_at: self.height,
                        earned: 0,
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
                for c in &terms.commitments {
                    if let Some(node) = self.nodes.get_mut(&c.node) {
                        node.used += c.bytes;
                        node.active_deals += 1;
                    }
                }
                let deal = Deal {
                    owner: signer,
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
                        })
                        .collect(),
                    escrow,
                    opened_at: self.height,
                };
                self.deals.insert(DealId::new(&signer, tx.nonce), deal);
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

    /// Validates a deal; returns its escrow.
    fn check_deal(&self, owner: Address, nonce: u64, terms: &DealTerms) -> Result<u64, Rejection> {
        let invalid = |why: &str| Err(Rejection::InvalidDeal(why.into()));
        if terms.start_epoch < self.epoch {
            return invalid("start epoch is in the past");
        }
        if terms.end_epoch <= terms.start_epoch {
            return invalid("end epoch must be after start epoch");
        }
        if terms.end_epoch - terms.start_epoch > self.params.max_deal_epochs {
            return invalid("deal is longer than the chain allows");
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
            let node = self
                .nodes
                .get(&c.node)
                .ok_or(Rejection::UnknownNode(c.node))?;
            let free = node.capacity.saturating_sub(node.used);
            if c.bytes > free {
                return Err(Rejection::NodeFull {
                    node: c.node,
                    free,
                    need: c.bytes,
                });
            }
            total = add(total, c.bytes)?;
        }
        if total != terms.size {
            return invalid("size is not the sum of the commitments' bytes");
        }
        // Receipts last: they are the expensive check.
        for c in &terms.commitments {
            let key = c
                .node
                .verifying_key()
                .map_err(|_| Rejection::BadReceipt(c.node))?;
            let message = receipt_message(&self.chain_id, &owner, nonce, terms, c);
            key.verify_strict(
                &message,
                &ed25519_dalek::Signature::from_bytes(&c.receipt.0),
            )
            .map_err(|_| Rejection::BadReceipt(c.node))?;
        }
        terms
            .price_per_epoch
            .checked_mul(terms.end_epoch - terms.start_epoch)
            .ok_or(Rejection::Overflow)
    }
}
