//! What the engine needs from the node: a place to commit finalized blocks
//! and a source of transactions to propose.
//!
//! The engine knows nothing about disks or mempools. A validator in
//! `cairn-node` gives it a ledger backed by RocksDB; tests and the
//! simulation give it [`MemoryLedger`].

use std::sync::Arc;

use cairn_protocol::chain::{ChainState, Genesis, SignedTx};

use crate::block::Block;

/// The last committed block and the state after it.
#[derive(Debug, Clone)]
pub struct Head {
    pub height: u64,
    pub digest: [u8; 32],
    pub timestamp_ms: u64,
    pub state_root: [u8; 32],
    pub state: Arc<ChainState>,
}

impl Head {
    /// The head before any block: the genesis state under the genesis block.
    pub fn genesis(state: ChainState) -> Self {
        let state_root = state.root();
        let block = Block::genesis(state_root);
        Self {
            height: 0,
            digest: block.id(),
            timestamp_ms: 0,
            state_root,
            state: Arc::new(state),
        }
    }
}

/// Why a ledger could not commit a block.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("block at height {got} does not follow the head at height {head}")]
    Gap { head: u64, got: u64 },
    #[error("block at height {height} conflicts with the committed one")]
    Conflict { height: u64 },
    #[error("state machine refused the block: {0}")]
    Apply(String),
    #[error("storage: {0}")]
    Storage(String),
}

/// Where finalized blocks are committed and proposals find transactions.
pub trait Ledger: Send + 'static {
    /// The last committed block.
    fn head(&self) -> Head;

    /// Commits a finalized block. Blocks arrive in height order and at
    /// least once: a block at or below the head whose digest matches the
    /// committed one is a no-op returning the current head. Must be durable
    /// before it returns.
    fn commit(&mut self, block: &Block) -> Result<Head, LedgerError>;

    /// Transactions to propose on top of `state`, within the limits. They
    /// should apply; the block records any that do not.
    fn pending(&mut self, state: &ChainState, max_txs: usize, max_bytes: usize) -> Vec<SignedTx>;
}

/// Applies `block` on top of `state` the way every validator does, with
/// the block's beacon ([`Block::beacon`]: from the seed of its parent's
/// view, which nothing in the block can change).
pub fn apply(state: &ChainState, block: &Block) -> Result<ChainState, String> {
    let mut next = state.clone();
    let beacon = block.beacon(&state.genesis_hash());
    let outcome = next.apply_block(block.height.get(), beacon, &block.txs)?;
    if outcome.state_root != block.state_root {
        return Err(format!(
            "state root mismatch at height {}",
            block.height.get()
        ));
    }
    Ok(next)
}

/// An in-memory ledger: committed blocks and a plain transaction queue.
#[derive(Debug)]
pub struct MemoryLedger {
    head: Head,
    blocks: Vec<[u8; 32]>,
    queue: Vec<SignedTx>,
}

impl MemoryLedger {
    pub fn new(genesis: &Genesis) -> Result<Self, String> {
        let head = Head::genesis(ChainState::from_genesis(genesis)?);
        Ok(Self {
            blocks: vec![head.digest],
            head,
            queue: Vec::new(),
        })
    }

    /// Queues a transaction for a later proposal.
    pub fn submit(&mut self, tx: SignedTx) {
        self.queue.push(tx);
    }

    /// Digests of committed blocks, by height.
    pub fn digests(&self) -> &[[u8; 32]] {
        &self.blocks
    }
}

impl Ledger for MemoryLedger {
    fn head(&self) -> Head {
        self.head.clone()
    }

    fn commit(&mut self, block: &Block) -> Result<Head, LedgerError> {
        let height = block.height.get();
        if height <= self.head.height {
            return match self.blocks.get(height as usize) {
                Some(d) if *d == block.id() => Ok(self.head.clone()),
                _ => Err(LedgerError::Conflict { height }),
            };
        }
        if height != self.head.height + 1 || block.parent.0 != self.head.digest {
            return Err(LedgerError::Gap {
                head: self.head.height,
                got: height,
            });
        }
        let state = apply(&self.head.state, block).map_err(LedgerError::Apply)?;
        let included: std::collections::HashSet<[u8; 32]> =
            block.txs.iter().map(SignedTx::id).collect();
        self.queue.retain(|tx| !included.contains(&tx.id()));
        self.head = Head {
            height,
            digest: block.id(),
            timestamp_ms: block.timestamp_ms,
            state_root: block.state_root,
            state: Arc::new(state),
        };
        self.blocks.push(block.id());
        Ok(self.head.clone())
    }

    fn pending(&mut self, state: &ChainState, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut trial = state.clone();
        let mut out = Vec::new();
        let mut bytes = 0;
        for tx in &self.queue {
            let len = tx.encode().len();
            if out.len() == max_txs || bytes + len > max_bytes {
                break;
            }
            if trial.apply_tx(tx).is_ok() {
                bytes += len;
                out.push(tx.clone());
            }
        }
        out
    }
}
