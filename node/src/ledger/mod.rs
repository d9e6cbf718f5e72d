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
    BlockBeacon, BlockRecord, FinalizedBlock, LedgerError, LedgerStore, SeedRecord, TxRecord,
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
    /// Set to 1 when the store halts (see [`Self::set_halt_gauge`]).
    halt_gauge: Mutex<Option<prometheus_client::metrics::gauge::Gauge>>,
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
            halt_gauge: Mutex::new(None),
        }
    }

    /// The gauge (`cairn_node_chain_halted`) to set to 1 when a finalized
    /// block's state root disagrees with this ledger's and the store halts.
    pub fn set_halt_gauge(&self, gauge: prometheus_client::metrics::gauge::Gauge) {
        if self.store.halted().is_some() {
            gauge.set(1);
        }
        *self.halt_gauge.lock().unwrap_or_else(|p| p.into_inner()) = Some(gauge);
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
        let outcome = match self.store.commit(block) {
            Ok(outcome) => outcome,
            Err(e @ LedgerError::RootMismatch { .. }) => {
                tracing::error!(error = %e, "state root mismatch: this validator halts (no block is written, /chain/* keeps serving the last verified state)");
                if let Some(g) = &*self.halt_gauge.lock().unwrap_or_else(|p| p.into_inner()) {
                    g.set(1);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::store::tests::{addr, block, genesis, rooted, transfer};

    #[test]
    fn a_block_whose_root_disagrees_sets_the_halt_gauge_and_keeps_the_mempool() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), &genesis(), MempoolConfig::default()).unwrap();
        let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        ledger.set_halt_gauge(gauge.clone());
        let tx = transfer(1, 0, 2, 10);
        ledger.submit_tx(tx.clone()).unwrap();
        let mut wrong = rooted(ledger.store(), block(1, vec![tx.clone()]));
        wrong.state_root = [7; 32];
        let e = ledger.commit(wrong).unwrap_err();
        assert!(matches!(e, LedgerError::RootMismatch { .. }), "{e}");
        assert_eq!(gauge.get(), 1);
        assert_eq!(ledger.store().height(), 0);
        assert_eq!(ledger.store().state().account(&addr(1)).nonce, 0);
        // The transaction was not committed: it is still pending.
        assert!(ledger.is_pending(&tx.id()));
        assert!(ledger.store().halted().is_some());
    }
}
