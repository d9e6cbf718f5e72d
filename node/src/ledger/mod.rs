//! The node's copy of the chain: what a validator keeps beside the
//! consensus engine, and everything it needs that does not depend on that
//! engine.
//!
//! | module | holds |
//! |---|---|
//! | [`store`] | [`LedgerStore`]: finalized blocks, a tx index and the state, in RocksDB |
//! | [`mempool`] | [`Mempool`]: checked, bounded pending transactions; what to propose |
//! | [`http`] | the `/chain/...` routes, answering with the JSON shapes of `cairn_client::chain::api` |
//!
//! The engine drives a [`Ledger`]: it asks [`Ledger::propose`] for
//! transactions when it leads, and hands every finalized block to
//! [`Ledger::commit`], in height order, at least once. See docs/chain.md.

pub mod http;
pub mod mempool;
pub mod store;

use std::path::Path;
use std::sync::Mutex;

use cairn_protocol::chain::{Address, BlockOutcome, Genesis, SignedTx};

pub use mempool::{Mempool, MempoolConfig, MempoolError};
pub use store::{
    genesis_hash, BlockBeacon, BlockRecord, FinalizedBlock, LedgerError, LedgerStore, SeedRecord,
    TxRecord,
};

/// Genesis parameters the state keeps private but clients need (to pick a
/// fee, to size a faucet request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    pub epoch_blocks: u64,
    pub min_fee: u64,
    pub min_stake: u64,
    pub faucet_max: Option<u64>,
    pub max_deal_epochs: u64,
}

/// The ledger and its mempool, shared by the engine and the HTTP API.
#[derive(Debug)]
pub struct Ledger {
    store: LedgerStore,
    mempool: Mutex<Mempool>,
    params: ChainParams,
    /// Where transactions submitted here go to reach the other validators
    /// (see [`Self::set_relay`]).
    relay: Mutex<Option<futures::channel::mpsc::Sender<Vec<u8>>>>,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir` for `genesis`, with an empty
    /// mempool.
    pub fn open(
        dir: &Path,
        genesis: &Genesis,
        mempool: MempoolConfig,
    ) -> Result<Self, LedgerError> {
        let store = LedgerStore::open(dir, genesis)?;
        Ok(Self::new(store, genesis, mempool))
    }

    /// Wraps an open store.
    pub fn new(store: LedgerStore, genesis: &Genesis, mempool: MempoolConfig) -> Self {
        Self {
            store,
            mempool: Mutex::new(Mempool::new(mempool, genesis.min_fee)),
            params: ChainParams {
                epoch_blocks: genesis.epoch_blocks,
                min_fee: genesis.min_fee,
                min_stake: genesis.min_stake,
                faucet_max: genesis.faucet_max,
                max_deal_epochs: genesis.max_deal_epochs,
            },
            relay: Mutex::new(None),
        }
    }

    /// From now on, every transaction a client submits here and the
    /// mempool accepts is also handed to `relay` (the validator passes it
    /// on to the other validators), so it is in every mempool and the next
    /// block, whoever proposes it, can include it. Without a relay a
    /// transaction waits until this validator proposes: with four
    /// validators taking turns, up to four blocks. When the relay is full
    /// the transaction is not relayed; it still commits when this
    /// validator proposes.
    pub fn set_relay(&self, relay: futures::channel::mpsc::Sender<Vec<u8>>) {
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay);
    }

    fn relay(&self, bytes: Vec<u8>) {
        if let Some(relay) = self
            .relay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            let _ = relay.try_send(bytes);
        }
    }

    pub fn store(&self) -> &LedgerStore {
        &self.store
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    fn mempool(&self) -> std::sync::MutexGuard<'_, Mempool> {
        // A panic while holding the lock leaves a consistent pool (every
        // method finishes its bookkeeping before it can fail), so carry on.
        self.mempool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a submitted transaction (its encoding) against the current
    /// state and queues it; returns its id.
    /// Accepted transactions are relayed to the other validators.
    pub fn submit(&self, bytes: &[u8]) -> Result<[u8; 32], MempoolError> {
        let state = self.store.state();
        let id = self.mempool().insert(bytes, &state)?;
        self.relay(bytes.to_vec());
        Ok(id)
    }

    /// Queues an already decoded transaction (and relays it, as
    /// [`Self::submit`]).
    pub fn submit_tx(&self, tx: SignedTx) -> Result<[u8; 32], MempoolError> {
        let state = self.store.state();
        let bytes = tx.encode();
        let id = self.mempool().insert_tx(tx, &state)?;
        self.relay(bytes);
        Ok(id)
    }

    /// Queues a transaction another validator relayed; checked like any
    /// submission, and not relayed again (every validator relays only what
    /// its own clients sent, so nothing circulates).
    pub fn accept_relayed(&self, bytes: &[u8]) -> Result<[u8; 32], MempoolError> {
        let state = self.store.state();
        self.mempool().insert(bytes, &state)
    }

    /// Transactions for the next block, when this validator proposes.
    pub fn propose(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let state = self.store.state();
        self.mempool().select(&state, max_txs, max_bytes)
    }

    /// Transactions for a block built on `state` (the state after the
    /// proposal's parent, which may be above the committed head).
    pub fn propose_on(
        &self,
        state: &cairn_protocol::chain::ChainState,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<SignedTx> {
        self.mempool().select(state, max_txs, max_bytes)
    }

    /// Commits a finalized block (see [`LedgerStore::commit`]) and drops
    /// what it made stale from the mempool.
    pub fn commit(&self, block: FinalizedBlock) -> Result<BlockOutcome, LedgerError> {
        let txs = block.txs.clone();
        let outcome = self.store.commit(block)?;
        let state = self.store.state();
        self.mempool().remove_committed(&txs, &state);
        Ok(outcome)
    }

    /// Transactions pending.
    pub fn mempool_len(&self) -> usize {
        self.mempool().len()
    }

    pub fn is_pending(&self, id: &[u8; 32]) -> bool {
        self.mempool().contains(id)
    }

    /// The nonce `sender`'s next transaction should carry, counting its
    /// pending transactions.
    pub fn next_nonce(&self, sender: &Address) -> u64 {
        let state = self.store.state();
        self.mempool().next_nonce(&state, sender)
    }
}
