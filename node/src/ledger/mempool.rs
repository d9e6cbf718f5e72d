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
mod tests;
