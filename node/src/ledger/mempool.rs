//! Transactions waiting for a block.
//!
//! A transaction gets in only if it could apply on top of the state and the
//! sender's transactions already waiting: it decodes within the limits, its
//! signature verifies, it names this chain, pays at least the minimum fee,
//! its nonce is the sender's next one (after the current state and the
//! sender's pending transactions: no gaps, so every pending chain of nonces
//! starts at the account's nonce), and it is new. Everything is bounded:
//! transactions and bytes overall, transactions per sender, and age (a
//! transaction that no block takes within `max_age` is dropped, with the
//! later nonces of its sender that depend on it).
//!
//! Nothing waits for free: the sender's balance must cover the fees of all
//! of its pending transactions, not only the first; a faucet request is
//! refused on a chain without a faucet (or above its limit), since it pays
//! no fee. When the pool is full, a transaction paying more per byte evicts
//! the cheapest one that nothing depends on (some sender's last), so
//! flooding it costs the flooder fees that outbid everyone else's.
//!
//! A proposer takes [`Mempool::select`]: senders in turn, one transaction
//! each per round, each sender's in nonce order, each one dry-run on a copy
//! of the state so that only transactions that apply are proposed (without
//! checking signatures again: each was verified when it was admitted). After a
//! block is committed, [`Mempool::remove_committed`] drops what it included
//! and whatever its state made stale: a nonce the state passed, and a
//! sender's next transaction that no longer applies (a repair claim another
//! repairer's claim beat, say) with the later nonces that depend on it.
//! `select` would skip such a transaction forever, and until it expired it
//! would hold back every later transaction of its sender, a storage node's
//! proofs among them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_protocol::chain::{Address, ChainState, Rejection, SignedTx, TxBody, MAX_TX_BYTES};

/// Bounds on what the mempool holds.
#[derive(Debug, Clone)]
pub struct MempoolConfig {
    /// Transactions held at once.
    pub max_txs: usize,
    /// Encoded bytes held at once.
    pub max_bytes: usize,
    /// Transactions one sender may have waiting.
    pub max_per_sender: usize,
    /// How long a transaction may wait for a block before it is dropped.
    pub max_age: Duration,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 10_000,
            max_bytes: 32 << 20,
            max_per_sender: 64,
            max_age: Duration::from_secs(600),
        }
    }
}

/// Why a transaction was not taken. The `Display` text is meant for the
/// submitter (it is the HTTP answer's `error`), [`MempoolError::code`] for
/// programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Undecodable, too large, badly signed, for another chain, or a fee
    /// below the minimum: the transaction can never apply.
    #[error("{0}")]
    Invalid(Rejection),
    #[error("nonce {got} is already used: the account's next nonce is {next} (a replay or a stale transaction)")]
    StaleNonce { next: u64, got: u64 },
    #[error("nonce {got} is ahead of the next expected nonce {next} (the account's nonce plus its pending transactions): submit transactions in nonce order")]
    NonceGap { next: u64, got: u64 },
    #[error("nonce {nonce} of {sender} is taken by another pending transaction")]
    NonceTaken { sender: Address, nonce: u64 },
    #[error("transaction {0} is already pending")]
    Duplicate(String),
    #[error("the sender cannot pay the fee: balance {balance}, fee {fee}")]
    CannotPayFee { balance: u64, fee: u64 },
    #[error("{sender} has {max} transactions pending already; wait for some to be included")]
    SenderFull { sender: Address, max: usize },
    #[error("the mempool is full ({txs} transactions, {bytes} bytes) and nothing in it pays less per byte; try again later or with a higher fee")]
    Full { txs: usize, bytes: usize },
    #[error("the sender cannot pay the fees of its pending transactions: balance {balance}, fees {fees} with this one")]
    CannotPayPending { balance: u64, fees: u64 },
}

impl MempoolError {
    /// A short, stable name for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(Rejection::TooLarge(_)) => "too_large",
            Self::Invalid(Rejection::BadSignature) => "bad_signature",
            Self::Invalid(Rejection::WrongChain { .. }) => "wrong_chain",
            Self::Invalid(Rejection::FeeTooLow { .. }) => "fee_too_low",
            Self::Invalid(Rejection::FaucetDisabled) => "faucet_disabled",
            Self::Invalid(Rejection::FaucetLimit { .. }) => "faucet_limit",
            Self::Invalid(_) => "malformed",
            Self::StaleNonce { .. } => "stale_nonce",
            Self::NonceGap { .. } => "nonce_gap",
            Self::NonceTaken { .. } => "nonce_taken",
            Self::Duplicate(_) => "duplicate",
            Self::CannotPayFee { .. } => "cannot_pay_fee",
            Self::SenderFull { .. } => "sender_full",
            Self::Full { .. } => "mempool_full",
            Self::CannotPayPending { .. } => "cannot_pay_pending",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    tx: SignedTx,
    id: [u8; 32],
    size: usize,
    added: Instant,
}

/// The pending transactions.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    min_fee: u64,
    /// Per sender, by nonce.
    by_sender: BTreeMap<Address, BTreeMap<u64, Entry>>,
    by_id: HashMap<[u8; 32], (Address, u64)>,
    bytes: usize,
    /// Which sender goes first in the next [`Self::select`], so that when a
    /// block fills up it is not always the same senders left out.
    turn: AtomicUsize,
}

impl Mempool {
    /// An empty mempool for a chain whose minimum fee is `min_fee` (the
    /// genesis's; the state does not expose it).
    pub fn new(config: MempoolConfig, min_fee: u64) -> Self {
        Self {
            config,
            min_fee,
            by_sender: BTreeMap::new(),
            by_id: HashMap::new(),
            bytes: 0,
            turn: AtomicUsize::new(0),
        }
    }

    /// Transactions pending.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Encoded bytes pending.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.by_id.contains_key(id)
    }

    /// The nonce `sender`'s next transaction should carry: the account's
    /// nonce in `state` plus its pending transactions.
    pub fn next_nonce(&self, state: &ChainState, sender: &Address) -> u64 {
        let nonce = state.account(sender).nonce;
        match self.by_sender.get(sender) {
            Some(pending) => pending
                .keys()
                .next_back()
                .map_or(nonce, |last| (last + 1).max(nonce)),
            None => nonce,
        }
    }

    /// Decodes, checks and adds a transaction received as bytes; returns its id.
    pub fn insert(&mut self, bytes: &[u8], state: &ChainState) -> Result<[u8; 32], MempoolError> {
        let tx = SignedTx::decode(bytes).map_err(MempoolError::Invalid)?;
        self.insert_tx(tx, state)
    }

    /// Checks and adds a decoded transaction; returns its id.
    pub fn insert_tx(
        &mut self,
        tx: SignedTx,
        state: &ChainState,
    ) -> Result<[u8; 32], MempoolError> {
        self.expire(Instant::now());
        let encoded = tx.encode();
        let size = encoded.len();
        if size > MAX_TX_BYTES {
            return Err(MempoolError::Invalid(Rejection::TooLarge(size)));
        }
        let id = *blake3::hash(&encoded).as_bytes();
        tx.tx.check_limits().map_err(MempoolError::Invalid)?;
        if tx.tx.genesis != state.genesis_hash() {
            return Err(MempoolError::Invalid(Rejection::WrongChain {
                expected: state.genesis_hash(),
                got: tx.tx.genesis,
            }));
        }
        // The faucet is exempt from the fee, as in the state machine, so it
        // must exist and the request must be within its limit.
        if let TxBody::Faucet { amount } = tx.tx.body {
            let max = state
                .faucet_max()
                .ok_or(MempoolError::Invalid(Rejection::FaucetDisabled))?;
            if amount > max {
                return Err(MempoolError::Invalid(Rejection::FaucetLimit {
                    max,
                    got: amount,
                }));
            }
        }
        let faucet = matches!(tx.tx.body, TxBody::Faucet { .. });
        if !faucet && tx.tx.fee < self.min_fee {
            return Err(MempoolError::Invalid(Rejection::FeeTooLow {
                min: self.min_fee,
                got: tx.tx.fee,
            }));
        }
        if self.by_id.contains_key(&id) {
            return Err(MempoolError::Duplicate(hex::encode(id)));
        }
        let sender = tx.tx.signer;
        let account = state.account(&sender);
        if tx.tx.nonce < account.nonce {
            return Err(MempoolError::StaleNonce {
                next: account.nonce,
                got: tx.tx.nonce,
            });
        }
        let pending = self.by_sender.get(&sender);
        if pending.is_some_and(|p| p.contains_key(&tx.tx.nonce)) {
            return Err(MempoolError::NonceTaken {
                sender,
                nonce: tx.tx.nonce,
            });
        }
        let next = self.next_nonce(state, &sender);
        if tx.tx.nonce > next {
            return Err(MempoolError::NonceGap {
                next,
                got: tx.tx.nonce,
            });
        }
        // A sender's first pending transaction must at least pay its fee
        // now: otherwise anyone could fill the pool from empty accounts.
        if tx.tx.nonce == account.nonce && account.balance < tx.tx.fee {
            return Err(MempoolError::CannotPayFee {
                balance: account.balance,
                fee: tx.tx.fee,
            });
        }
        // And all of them together: a later nonce must not ride for free on
        // a balance its predecessors' fees use up.
        let fees = pending
            .into_iter()
            .flat_map(BTreeMap::values)
            .try_fold(tx.tx.fee, |sum, e| sum.checked_add(e.tx.tx.fee))
            .unwrap_or(u64::MAX);
        if account.balance < fees {
            return Err(MempoolError::CannotPayPending {
                balance: account.balance,
                fees,
            });
        }
        if pending.map_or(0, BTreeMap::len) >= self.config.max_per_sender {
            return Err(MempoolError::SenderFull {
                sender,
                max: self.config.max_per_sender,
            });
        }
        let evict = if self.by_id.len() >= self.config.max_txs
            || self.bytes + size > self.config.max_bytes
        {
            let victims = self
                .cheapest_evictable(&tx, size, sender)
                .ok_or(MempoolError::Full {
                    txs: self.by_id.len(),
                    bytes: self.bytes,
                })?;
            Some(victims)
        } else {
            None
        };
        // The signature last: it is the expensive check.
        tx.verify().map_err(MempoolError::Invalid)?;
        for (victim, nonce) in evict.into_iter().flatten() {
            self.remove_entry(victim, nonce);
        }
        let nonce = tx.tx.nonce;
        self.by_sender.entry(sender).or_default().insert(
            nonce,
            Entry {
                tx,
                id,
                size,
                added: Instant::now(),
            },
        );
        self.by_id.insert(id, (sender, nonce));
        self.bytes += size;
        Ok(id)
    }

    /// Transactions for a block: at most `max_txs` and `max_bytes` (encoded),
    /// each sender's with consecutive nonces from its account's nonce, taken
    /// round-robin over senders, and only those that apply when run in this
    /// order on a copy of `state`.
    pub fn select(&self, state: &ChainState, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut out = Vec::new();
        if max_txs == 0 || self.by_sender.is_empty() {
            return out;
        }
        let mut sim = state.clone();
        let mut bytes = 0usize;
        // Each sender's queue, starting at the sender's nonce; a sender
        // whose next transaction does not fit or does not apply is done (its
        // later nonces depend on that one).
        let mut queues: Vec<(Address, u64, &BTreeMap<u64, Entry>)> = self
            .by_sender
            .iter()
            .map(|(sender, pending)| (*sender, state.account(sender).nonce, pending))
            .collect();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % queues.len();
        queues.rotate_left(start);
        while !queues.is_empty() && out.len() < max_txs {
            let mut still = Vec::with_capacity(queues.len());
            for (sender, nonce, pending) in queues {
                if out.len() >= max_txs {
                    break;
                }
                let Some(entry) = pending.get(&nonce) else {
                    continue;
                };
                if bytes + entry.size > max_bytes {
                    continue;
                }
                if sim.apply_verified(&entry.tx).is_err() {
                    continue;
                }
                bytes += entry.size;
                out.push(entry.tx.clone());
                still.push((sender, nonce + 1, pending));
            }
            queues = still;
        }
        out
    }

    /// After a block: drops the transactions it included and every pending
    /// transaction whose nonce the new `state` has passed (another
    /// transaction with that nonce was included, or a replay).
    pub fn remove_committed(&mut self, included: &[SignedTx], state: &ChainState) {
        let mut senders: Vec<Address> = Vec::new();
        for tx in included {
            let id = tx.id();
            if let Some((sender, nonce)) = self.by_id.get(&id).copied() {
                self.remove_entry(sender, nonce);
            }
            senders.push(tx.tx.signer);
        }
        senders.sort_unstable();
        senders.dedup();
        for sender in senders {
            let next = state.account(&sender).nonce;
            let stale: Vec<u64> = match self.by_sender.get(&sender) {
                Some(pending) => pending.range(..next).map(|(n, _)| *n).collect(),
                None => continue,
            };
            for nonce in stale {
                self.remove_entry(sender, nonce);
            }
        }
        self.drop_inapplicable(state);
        self.expire(Instant::now());
    }

    /// Drops each sender's next transaction that does not apply on `state`,
    /// with the sender's later ones (they cannot apply without it). Dry-run
    /// in turn on one copy of the state, as [`Self::select`] would propose
    /// them.
    fn drop_inapplicable(&mut self, state: &ChainState) {
        if self.by_sender.is_empty() {
            return;
        }
        let mut sim = state.clone();
        let mut dead: Vec<(Address, u64)> = Vec::new();
        for (sender, pending) in &self.by_sender {
            let nonce = state.account(sender).nonce;
            let Some(entry) = pending.get(&nonce) else {
                continue;
            };
            if let Err(why) = sim.apply_verified(&entry.tx) {
                tracing::debug!(
                    tx = %hex::encode(entry.id),
                    %sender,
                    reason = %why,
                    later = pending.len() - 1,
                    "dropping a pending transaction that no longer applies"
                );
                dead.extend(pending.range(nonce..).map(|(n, _)| (*sender, *n)));
            }
        }
        for (sender, nonce) in dead {
            self.remove_entry(sender, nonce);
        }
    }

    /// Drops transactions older than `max_age`, and with each its sender's
    /// later nonces (which could never apply without it).
    fn expire(&mut self, now: Instant) {
        let max_age = self.config.max_age;
        let mut dead: Vec<(Address, u64)> = Vec::new();
        for (sender, pending) in &self.by_sender {
            if let Some(first_old) = pending
                .iter()
                .find(|(_, e)| now.saturating_duration_since(e.added) > max_age)
                .map(|(n, _)| *n)
            {
                dead.extend(pending.range(first_old..).map(|(n, _)| (*sender, *n)));
            }
        }
        for (sender, nonce) in dead {
            self.remove_entry(sender, nonce);
        }
    }

    /// What to evict so that `tx` (`size` bytes, from `sender`) fits a full
    /// pool: senders' last pending transactions (nothing depends on them),
    /// cheapest per byte first, each paying strictly less per byte than
    /// `tx`; `None` if that does not free enough room. One per sender, at
    /// most a few, so a block-sized transaction cannot sweep the pool.
    fn cheapest_evictable(
        &self,
        tx: &SignedTx,
        size: usize,
        sender: Address,
    ) -> Option<Vec<(Address, u64)>> {
        const MAX_EVICTED: usize = 8;
        // fee / size compared as fee_a * size_b < fee_b * size_a.
        let cheaper = |fee: u64, bytes: usize| {
            u128::from(fee) * (size as u128) < u128::from(tx.tx.fee) * (bytes as u128)
        };
        let mut lasts: Vec<(Address, u64, u64, usize)> = self
            .by_sender
            .iter()
            .filter(|(s, _)| **s != sender)
            .filter_map(|(s, pending)| {
                let (nonce, e) = pending.iter().next_back()?;
                cheaper(e.tx.tx.fee, e.size).then_some((*s, *nonce, e.tx.tx.fee, e.size))
            })
            .collect();
        lasts.sort_by(|a, b| (u128::from(a.2) * b.3 as u128).cmp(&(u128::from(b.2) * a.3 as u128)));
        let (mut txs, mut bytes) = (self.by_id.len(), self.bytes);
        let mut out = Vec::new();
        for (s, nonce, _, esize) in lasts.into_iter().take(MAX_EVICTED) {
            if txs < self.config.max_txs && bytes + size <= self.config.max_bytes {
                break;
            }
            out.push((s, nonce));
            txs -= 1;
            bytes -= esize;
        }
        (txs < self.config.max_txs && bytes + size <= self.config.max_bytes).then_some(out)
    }

    fn remove_entry(&mut self, sender: Address, nonce: u64) {
        let Some(pending) = self.by_sender.get_mut(&sender) else {
            return;
        };
        if let Some(entry) = pending.remove(&nonce) {
            self.by_id.remove(&entry.id);
            self.bytes -= entry.size;
        }
        if pending.is_empty() {
            self.by_sender.remove(&sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::store::tests::{addr, genesis, key, transfer};
    use cairn_protocol::chain::{Genesis, GenesisHash, Transaction};

    fn state() -> ChainState {
        ChainState::from_genesis(&genesis()).unwrap()
    }

    fn pool() -> Mempool {
        Mempool::new(MempoolConfig::default(), genesis().min_fee)
    }

    fn insert(
        pool: &mut Mempool,
        tx: &SignedTx,
        state: &ChainState,
    ) -> Result<[u8; 32], MempoolError> {
        pool.insert(&tx.encode(), state)
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let s = state();
        let mut p = pool();
        let ok = transfer(1, 0, 2, 10);
        // Undecodable, oversized.
        let e = p.insert(b"garbage", &s).unwrap_err();
        assert_eq!(e.code(), "malformed", "{e}");
        let e = p.insert(&vec![0; MAX_TX_BYTES + 1], &s).unwrap_err();
        assert_eq!(e.code(), "too_large", "{e}");
        // Bad signature.
        let mut forged = ok.clone();
        forged.tx.body = TxBody::Transfer {
            to: addr(2),
            amount: 999,
        };
        let e = insert(&mut p, &forged, &s).unwrap_err();
        assert_eq!(e, MempoolError::Invalid(Rejection::BadSignature));
        // Wrong chain.
        let mut t = ok.tx.clone();
        t.genesis = GenesisHash([0xee; 32]);
        let e = insert(&mut p, &t.sign(&key(1)), &s).unwrap_err();
        assert_eq!(e.code(), "wrong_chain", "{e}");
        assert!(e.to_string().contains(&"ee".repeat(32)), "{e}");
        // Fee below the minimum (the faucet is exempt).
        let mut t = ok.tx.clone();
        t.fee = 0;
        let e = insert(&mut p, &t.sign(&key(1)), &s).unwrap_err();
        assert_eq!(
            e,
            MempoolError::Invalid(Rejection::FeeTooLow { min: 1, got: 0 })
        );
        // An empty account cannot pay a fee.
        let e = insert(&mut p, &transfer(9, 0, 1, 1), &s).unwrap_err();
        assert_eq!(e, MempoolError::CannotPayFee { balance: 0, fee: 1 });
        // Accepted, then a duplicate, then the same nonce again.
        let id = insert(&mut p, &ok, &s).unwrap();
        assert_eq!(id, ok.id());
        let e = insert(&mut p, &ok, &s).unwrap_err();
        assert_eq!(e.code(), "duplicate", "{e}");
        let e = insert(&mut p, &transfer(1, 0, 3, 10), &s).unwrap_err();
        assert_eq!(e.code(), "nonce_taken", "{e}");
        // A gap.
        let e = insert(&mut p, &transfer(1, 5, 2, 1), &s).unwrap_err();
        assert_eq!(e, MempoolError::NonceGap { next: 1, got: 5 });
        // Stale: the state has moved past nonce 0.
        let mut later = s.clone();
        later.apply_tx(&ok).unwrap();
        let e = insert(&mut p, &transfer(1, 0, 3, 11), &later).unwrap_err();
        assert_eq!(e, MempoolError::StaleNonce { next: 1, got: 0 });
        assert_eq!(p.len(), 1);
        assert_eq!(p.bytes(), ok.encode().len());
    }

    #[test]
    fn the_faucet_needs_no_fee_or_balance() {
        let s = state();
        let mut p = pool();
        let faucet = Transaction {
            genesis: genesis().hash(),
            signer: addr(9),
            nonce: 0,
            fee: 0,
            body: TxBody::Faucet { amount: 1_000 },
        }
        .sign(&key(9));
        insert(&mut p, &faucet, &s).unwrap();
        assert_eq!(p.select(&s, 10, 1 << 20), vec![faucet]);
    }

    fn signed(signer: u8, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
        signed_on(&genesis().hash(), signer, nonce, fee, body)
    }

    /// [`signed`] for the chain `chain` names.
    fn signed_on(chain: &GenesisHash, signer: u8, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
        Transaction {
            genesis: *chain,
            signer: addr(signer),
            nonce,
            fee,
            body,
        }
        .sign(&key(signer))
    }

    #[test]
    fn a_faucet_request_needs_a_faucet_and_its_limit() {
        let mut g = genesis();
        let max = g.faucet_max.unwrap();
        let faucet = |amount| signed(9, 0, 0, TxBody::Faucet { amount });
        let mut p = pool();
        let e = insert(&mut p, &faucet(max + 1), &state()).unwrap_err();
        assert_eq!(e.code(), "faucet_limit", "{e}");
        g.faucet_max = None;
        let no_faucet = ChainState::from_genesis(&g).unwrap();
        let faucet = signed_on(&g.hash(), 9, 0, 0, TxBody::Faucet { amount: 1 });
        let e = insert(&mut p, &faucet, &no_faucet).unwrap_err();
        assert_eq!(e.code(), "faucet_disabled", "{e}");
        assert!(p.is_empty());
    }

    #[test]
    fn every_pending_fee_must_be_covered_not_only_the_first() {
        let mut g = genesis();
        g.allocations.push(cairn_protocol::chain::Allocation {
            address: addr(7),
            amount: 25,
        });
        g.allocations.sort_by_key(|a| a.address);
        let s = ChainState::from_genesis(&g).unwrap();
        let mut p = pool();
        let to = |n| TxBody::Transfer {
            to: addr(1),
            amount: n,
        };
        // 10 + 10 fit in 25; a third fee of 10 does not, though the account
        // could pay any one of them alone.
        insert(&mut p, &signed_on(&s.genesis_hash(), 7, 0, 10, to(1)), &s).unwrap();
        insert(&mut p, &signed_on(&s.genesis_hash(), 7, 1, 10, to(1)), &s).unwrap();
        let e = insert(&mut p, &signed_on(&s.genesis_hash(), 7, 2, 10, to(1)), &s).unwrap_err();
        assert_eq!(
            e,
            MempoolError::CannotPayPending {
                balance: 25,
                fees: 30
            }
        );
        assert_eq!(e.code(), "cannot_pay_pending");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_last_transaction_for_a_better_fee() {
        let s = state();
        let config = MempoolConfig {
            max_txs: 3,
            ..MempoolConfig::default()
        };
        let mut p = Mempool::new(config, 1);
        let to = TxBody::Transfer {
            to: addr(9),
            amount: 1,
        };
        let cheap0 = signed(1, 0, 1, to.clone());
        let cheap1 = signed(1, 1, 1, to.clone());
        let mid = signed(2, 0, 5, to.clone());
        for t in [&cheap0, &cheap1, &mid] {
            insert(&mut p, t, &s).unwrap();
        }
        // Paying no more per byte than anything in it is refused.
        let e = insert(&mut p, &signed(3, 0, 1, to.clone()), &s).unwrap_err();
        assert_eq!(e.code(), "mempool_full", "{e}");
        // Paying more evicts sender 1's *last* transaction (its first is
        // kept: nothing may be left with a nonce gap), the cheapest one.
        let rich = signed(3, 0, 50, to.clone());
        insert(&mut p, &rich, &s).unwrap();
        assert_eq!(p.len(), 3);
        assert!(!p.contains(&cheap1.id()));
        assert!(p.contains(&cheap0.id()) && p.contains(&mid.id()) && p.contains(&rich.id()));
        assert_eq!(p.next_nonce(&s, &addr(1)), 1);
        // The next better offer takes the cheapest that is left, sender 1's
        // first (now its last).
        insert(&mut p, &signed(3, 1, 60, to.clone()), &s).unwrap();
        assert!(!p.contains(&cheap0.id()));
        assert_eq!(p.next_nonce(&s, &addr(1)), 0);
        // A sender never evicts its own transactions to make room.
        let mut own = Mempool::new(
            MempoolConfig {
                max_txs: 3,
                ..MempoolConfig::default()
            },
            1,
        );
        insert(&mut own, &signed(3, 0, 1, to.clone()), &s).unwrap();
        insert(&mut own, &signed(3, 1, 1, to.clone()), &s).unwrap();
        insert(&mut own, &signed(2, 0, 200, to.clone()), &s).unwrap();
        let e = insert(&mut own, &signed(3, 2, 100, to.clone()), &s).unwrap_err();
        assert_eq!(e.code(), "mempool_full", "{e}");
        assert_eq!(own.len(), 3);
        // What is left still selects and applies in order.
        assert_eq!(p.select(&s, 10, 1 << 20).len(), 3);
    }

    #[test]
    fn limits_per_sender_and_overall() {
        let s = state();
        let config = MempoolConfig {
            max_txs: 5,
            max_per_sender: 3,
            ..MempoolConfig::default()
        };
        let mut p = Mempool::new(config, 1);
        for n in 0..3 {
            insert(&mut p, &transfer(1, n, 2, 1), &s).unwrap();
        }
        let e = insert(&mut p, &transfer(1, 3, 2, 1), &s).unwrap_err();
        assert_eq!(e.code(), "sender_full", "{e}");
        insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
        insert(&mut p, &transfer(2, 1, 1, 1), &s).unwrap();
        let e = insert(&mut p, &transfer(3, 0, 1, 1), &s).unwrap_err();
        assert_eq!(e.code(), "mempool_full", "{e}");

        let one = transfer(1, 0, 2, 1).encode().len();
        let mut p = Mempool::new(
            MempoolConfig {
                max_bytes: one * 2,
                ..MempoolConfig::default()
            },
            1,
        );
        insert(&mut p, &transfer(1, 0, 2, 1), &s).unwrap();
        insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
        let e = insert(&mut p, &transfer(3, 0, 1, 1), &s).unwrap_err();
        assert_eq!(e.code(), "mempool_full", "{e}");
    }

    #[test]
    fn select_orders_by_nonce_round_robin_and_only_what_applies() {
        let s = state();
        let mut p = pool();
        // Sender 1: nonces 0..3; the second overdraws, so the third cannot
        // follow either. Sender 2: two fine ones. Sender 3: one.
        insert(&mut p, &transfer(1, 0, 2, 10), &s).unwrap();
        insert(&mut p, &transfer(1, 1, 2, 5_000_000), &s).unwrap();
        insert(&mut p, &transfer(1, 2, 2, 10), &s).unwrap();
        insert(&mut p, &transfer(2, 0, 1, 10), &s).unwrap();
        insert(&mut p, &transfer(2, 1, 1, 10), &s).unwrap();
        insert(&mut p, &transfer(3, 0, 1, 10), &s).unwrap();
        let picked = p.select(&s, 100, 1 << 20);
        assert_eq!(picked.len(), 4, "{picked:?}");
        // Each sender's in nonce order; round-robin: the first round has one
        // of each sender.
        for sender in [1u8, 2, 3] {
            let nonces: Vec<u64> = picked
                .iter()
                .filter(|t| t.tx.signer == addr(sender))
                .map(|t| t.tx.nonce)
                .collect();
            let expected: Vec<u64> = match sender {
                1 => vec![0],
                2 => vec![0, 1],
                _ => vec![0],
            };
            assert_eq!(nonces, expected, "sender {sender}");
        }
        let first_round: std::collections::BTreeSet<_> =
            picked[..3].iter().map(|t| t.tx.signer).collect();
        assert_eq!(first_round.len(), 3);
        // All of it applies, in this order.
        let mut check = s.clone();
        for t in &picked {
            check.apply_tx(t).unwrap();
        }
        // Limits on count and bytes.
        assert_eq!(p.select(&s, 2, 1 << 20).len(), 2);
        let one = picked[0].encode().len();
        assert_eq!(p.select(&s, 100, one * 3).len(), 3);
        assert!(p.select(&s, 100, one - 1).is_empty());
        assert!(p.select(&s, 0, 1 << 20).is_empty());
        // Selecting takes nothing out.
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn remove_committed_drops_included_and_stale() {
        let g: Genesis = genesis();
        let mut s = ChainState::from_genesis(&g).unwrap();
        let mut p = pool();
        let a0 = transfer(1, 0, 2, 10);
        let a1 = transfer(1, 1, 2, 10);
        let b0 = transfer(2, 0, 1, 10);
        let c0 = transfer(3, 0, 1, 10);
        for t in [&a0, &a1, &b0, &c0] {
            insert(&mut p, t, &s).unwrap();
        }
        // The block holds a0, and a different nonce-0 transaction of sender
        // 2 (submitted elsewhere): b0 is now stale.
        let b0_elsewhere = transfer(2, 0, 3, 99);
        let included = vec![a0.clone(), b0_elsewhere];
        s.apply_block(1, [1; 32], &included).unwrap();
        p.remove_committed(&included, &s);
        assert!(!p.contains(&a0.id()));
        assert!(!p.contains(&b0.id()));
        assert!(p.contains(&a1.id()));
        assert!(p.contains(&c0.id()));
        assert_eq!(p.len(), 2);
        assert_eq!(p.bytes(), a1.encode().len() + c0.encode().len());
        assert_eq!(p.next_nonce(&s, &addr(1)), 2);
        assert_eq!(p.next_nonce(&s, &addr(2)), 1);
        let next = p.select(&s, 10, 1 << 20);
        assert_eq!(next.len(), 2);
    }

    #[test]
    fn after_a_block_what_no_longer_applies_is_dropped_with_its_successors() {
        let g: Genesis = genesis();
        let mut s = ChainState::from_genesis(&g).unwrap();
        let mut p = pool();
        // Sender 1's next transaction pays more than it has: it can never
        // apply, and would hold back its nonce 1 until it expired.
        let balance = s.account(&addr(1)).balance;
        let stuck = transfer(1, 0, 2, balance);
        let behind = transfer(1, 1, 2, 10);
        let fine = transfer(3, 0, 1, 10);
        for t in [&stuck, &behind, &fine] {
            insert(&mut p, t, &s).unwrap();
        }
        assert_eq!(p.next_nonce(&s, &addr(1)), 2);
        let included = vec![transfer(2, 0, 3, 5)];
        s.apply_block(1, [1; 32], &included).unwrap();
        p.remove_committed(&included, &s);
        assert!(!p.contains(&stuck.id()));
        assert!(!p.contains(&behind.id()));
        assert!(p.contains(&fine.id()));
        assert_eq!(p.len(), 1);
        // The sender's nonces are free again.
        assert_eq!(p.next_nonce(&s, &addr(1)), 0);
        insert(&mut p, &transfer(1, 0, 2, 10), &s).unwrap();
    }

    #[test]
    fn old_transactions_expire_with_their_successors() {
        let s = state();
        let mut p = Mempool::new(
            MempoolConfig {
                max_age: Duration::from_millis(20),
                ..MempoolConfig::default()
            },
            1,
        );
        insert(&mut p, &transfer(1, 0, 2, 1), &s).unwrap();
        insert(&mut p, &transfer(1, 1, 2, 1), &s).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p.next_nonce(&s, &addr(1)), 0);
    }
}
