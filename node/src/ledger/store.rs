//! The ledger on disk: finalized blocks, a transaction index and the state
//! after the latest block, entry by entry, in a RocksDB of its own (`<data dir>/chain/db`),
//! apart from the shard store so that neither's compactions or format
//! changes touch the other.
//!
//! Column families:
//!
//! | family | key | value (postcard) |
//! |---|---|---|
//! | `blocks` | height, u64 big-endian | [`StoredBlock`]: digest, parent, time, proposer, encoded txs, results, state root |
//! | `txs` | tx id (32 bytes) | [`TxRecord`]: height, index, result |
//! | `state` | map tag ([`StateMap::tag`]) ‖ the key's encoding | the entry's value (postcard) |
//! | `meta` | `genesis` | chain id and genesis hash, fixed at creation |
//! | `meta` | `state` | the height and the [`StateHeader`] after that block |
//!
//! A block, its index entries, the state entries it changed and the new
//! header go in one synced `WriteBatch`, so a block writes what it changed,
//! not the whole state: after a crash the ledger is at the last committed
//! block or the one before, never in between, and the engine (which
//! delivers finalized blocks at least once) delivers the rest again.
//!
//! A block's state root is checked before anything is written: a block
//! whose root is not the one this ledger computes is refused
//! ([`LedgerError::RootMismatch`]), nothing of it is written, and the
//! ledger halts (every later commit is refused, [`LedgerError::Halted`]).
//! Readers only ever see a state whose root matched its block.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use cairn_protocol::chain::{
    BlockOutcome, ChainState, Genesis, Rejection, SignedTx, StateHeader, StateMap,
};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch};
use serde::{Deserialize, Serialize};

const CF_BLOCKS: &str = "blocks";
const CF_TXS: &str = "txs";
const CF_META: &str = "meta";
const CF_STATE: &str = "state";
const KEY_GENESIS: &[u8] = b"genesis";
const KEY_STATE: &[u8] = b"state";
/// Bumped when a stored value changes shape; a ledger of another version is
/// refused rather than misread.
/// 2: blocks record their view, seed and beacon (threshold consensus).
/// 3: the stored state records repair (a deal's repair data, moved shards
/// and pending bounties; a commitment's first period, moved leaves and
/// earmarked stake).
/// 4: the state is stored entry by entry (family `state`, and its header in
/// `meta/state`) under the incremental state root.
const FORMAT_VERSION: u32 = 4;

/// Why the ledger could not open, commit or answer.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger (RocksDB) at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("ledger (RocksDB): {0}")]
    Db(#[from] rocksdb::Error),
    #[error("cannot create the ledger directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid genesis: {0}")]
    Genesis(String),
    #[error("the ledger at {path} belongs to chain '{stored_chain}' (genesis {stored_hash}), not to chain '{given_chain}' (genesis {given_hash}): use another data directory or the matching genesis file")]
    GenesisMismatch {
        path: PathBuf,
        stored_chain: String,
        stored_hash: String,
        given_chain: String,
        given_hash: String,
    },
    #[error("ledger format {found} is not supported (this build reads format {FORMAT_VERSION})")]
    Format { found: u32 },
    #[error("ledger is corrupt: {0}")]
    Corrupt(String),
    #[error("block at height {got} does not follow the ledger's height {height}: blocks must be committed in order")]
    Gap { height: u64, got: u64 },
    #[error("block at height 0: height 0 is the genesis state, blocks start at 1")]
    ZeroHeight,
    #[error("block {given} at height {height} conflicts with the committed block {stored}")]
    Conflict {
        height: u64,
        stored: String,
        given: String,
    },
    #[error("block at height {height} names parent {given}, but the block at height {} is {stored}", height - 1)]
    ParentMismatch {
        height: u64,
        stored: String,
        given: String,
    },
    #[error("block at height {height} cannot be applied: {reason}")]
    Apply { height: u64, reason: String },
    #[error("block {digest} at height {height} commits to state root {block_root}, but applying it to this ledger's state gives {computed}: this validator's state diverged from the network's; nothing of the block was written and the ledger halts")]
    RootMismatch {
        height: u64,
        digest: String,
        block_root: String,
        computed: String,
    },
    #[error("the ledger halted and commits nothing more: {0}")]
    Halted(String),
}

/// A block the consensus engine finalized, as it hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedBlock {
    pub height: u64,
    /// The block's digest, as the engine computes it.
    pub digest: [u8; 32],
    /// The digest of the block at `height - 1` (checked from height 2 on;
    /// the parent of height 1 is whatever the engine calls its genesis).
    pub parent: [u8; 32],
    /// The proposer's clock, in milliseconds since the Unix epoch (for
    /// display only: the state machine never reads a clock).
    pub timestamp_ms: u64,
    /// The proposer's identity as the engine encodes it (opaque here).
    pub proposer: Vec<u8>,
    pub txs: Vec<SignedTx>,
    /// The randomness the block hands the state machine, and its source.
    pub beacon: BlockBeacon,
    /// The state root the block commits to (what consensus finalized):
    /// checked against the root this ledger computes before anything is
    /// written.
    pub state_root: [u8; 32],
}

/// A block's beacon and where it came from
/// (`cairn_protocol::chain::beacon`), as the engine hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBeacon {
    /// The consensus view the block was proposed in.
    pub view: u64,
    /// The seed of the parent's view; `None` for the block on genesis.
    pub seed: Option<SeedRecord>,
    /// What `ChainState::apply_block` is given as the block's beacon.
    pub beacon: [u8; 32],
}

/// A view's seed: the threshold signature over the view, which verifies
/// against the genesis group key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRecord {
    pub view: u64,
    /// The signature in its canonical (compressed) encoding.
    pub signature: Vec<u8>,
}

/// A committed block, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    pub height: u64,
    pub digest: [u8; 32],
    pub parent: [u8; 32],
    pub timestamp_ms: u64,
    pub proposer: Vec<u8>,
    pub txs: Vec<SignedTx>,
    /// One per transaction, in order.
    pub results: Vec<Result<(), Rejection>>,
    pub new_epoch: bool,
    /// The state root after the block.
    pub state_root: [u8; 32],
    pub beacon: BlockBeacon,
}

impl BlockRecord {
    /// What applying the block did, as [`ChainState::apply_block`] said.
    pub fn outcome(&self) -> BlockOutcome {
        BlockOutcome {
            results: self.results.clone(),
            new_epoch: self.new_epoch,
            state_root: self.state_root,
        }
    }
}

/// Where a committed transaction is, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    pub result: Result<(), Rejection>,
}

/// A block as stored (transactions in their signed encoding).
#[derive(Debug, Serialize, Deserialize)]
struct StoredBlock {
    digest: [u8; 32],
    parent: [u8; 32],
    timestamp_ms: u64,
    proposer: Vec<u8>,
    txs: Vec<Vec<u8>>,
    results: Vec<Result<(), Rejection>>,
    new_epoch: bool,
    state_root: [u8; 32],
    beacon: BlockBeacon,
}

/// What ties a ledger directory to one chain.
#[derive(Debug, Serialize, Deserialize)]
struct GenesisMark {
    format: u32,
    chain_id: String,
    genesis_hash: [u8; 32],
}

/// The ledger: blocks, the tx index and the current state.
pub struct LedgerStore {
    db: rocksdb::DB,
    path: PathBuf,
    genesis_hash: [u8; 32],
    /// The state after the latest committed block. Readers take a cheap
    /// `Arc` and never wait for a commit; a commit swaps in a new state only
    /// once it is on disk.
    state: RwLock<Arc<ChainState>>,
    /// Serializes commits (the engine delivers one block at a time, but a
    /// second caller must not interleave a read-modify-write).
    commit_lock: Mutex<()>,
    /// Why the ledger halted, once a block's root disagreed with its own.
    halted: RwLock<Option<String>>,
}

impl std::fmt::Debug for LedgerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerStore")
            .field("path", &self.path)
            .field("height", &self.height())
            .finish_non_exhaustive()
    }
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o
}

fn synced() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.set_sync(true);
    w
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value)
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"))
}

fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, LedgerError> {
    postcard::from_bytes(bytes).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

/// A record of the `state` family: its map, key (tag first) and value.
type StoredEntry = (StateMap, Box<[u8]>, Box<[u8]>);

/// A state entry's key in the `state` family: its map's tag, then its key.
fn state_key(map: StateMap, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(map.tag());
    k.extend_from_slice(key);
    k
}

fn hex32(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

impl LedgerStore {
    /// Opens the ledger in `dir`, creating it from `genesis` if it is new.
    /// An existing ledger must have been created from the same genesis
    /// (same chain id and genesis hash); it resumes at its stored height.
    pub fn open(dir: &Path, genesis: &Genesis) -> Result<Self, LedgerError> {
        let given_hash = genesis.hash().0;
        let fresh_state = ChainState::from_genesis(genesis).map_err(LedgerError::Genesis)?;
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        let db = rocksdb::DB::open_cf_descriptors(
            &opts,
            dir,
            [
                ColumnFamilyDescriptor::new(CF_BLOCKS, cf_options()),
                ColumnFamilyDescriptor::new(CF_TXS, cf_options()),
                ColumnFamilyDescriptor::new(CF_META, cf_options()),
                ColumnFamilyDescriptor::new(CF_STATE, cf_options()),
            ],
        )
        .map_err(|source| LedgerError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut store = Self {
            db,
            path: dir.to_path_buf(),
            genesis_hash: given_hash,
            state: RwLock::new(Arc::new(fresh_state)),
            commit_lock: Mutex::new(()),
            halted: RwLock::new(None),
        };
        let meta = store.cf(CF_META)?;
        match store.db.get_cf(meta, KEY_GENESIS)? {
            None => {
                // A new ledger: the mark and the genesis state land together.
                let mark = GenesisMark {
                    format: FORMAT_VERSION,
                    chain_id: genesis.chain_id.clone(),
                    genesis_hash: given_hash,
                };
                let state = store.state();
                let entries = store.cf(CF_STATE)?;
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, KEY_GENESIS, encode(&mark));
                batch.put_cf(meta, KEY_STATE, encode(&(0u64, state.header())));
                for e in state.entries() {
                    if let Some(value) = &e.value {
                        batch.put_cf(entries, state_key(e.map, &e.key), value);
                    }
                }
                store.db.write_opt(batch, &synced())?;
            }
            Some(bytes) => {
                let mark: GenesisMark = decode("genesis mark", &bytes)?;
                if mark.format != FORMAT_VERSION {
                    return Err(LedgerError::Format { found: mark.format });
                }
                if mark.chain_id != genesis.chain_id || mark.genesis_hash != given_hash {
                    return Err(LedgerError::GenesisMismatch {
                        path: dir.to_path_buf(),
                        stored_chain: mark.chain_id,
                        stored_hash: hex32(&mark.genesis_hash),
                        given_chain: genesis.chain_id.clone(),
                        given_hash: hex32(&given_hash),
                    });
                }
                let bytes = store
                    .db
                    .get_cf(meta, KEY_STATE)?
                    .ok_or_else(|| LedgerError::Corrupt("the state is missing".into()))?;
                let (height, header): (u64, StateHeader) = decode("state header", &bytes)?;
                let state = store.load_state(header)?;
                if state.height() != height || state.chain_id() != genesis.chain_id {
                    return Err(LedgerError::Corrupt(format!(
                        "stored state is at height {} of chain '{}', recorded as height {height}",
                        state.height(),
                        state.chain_id()
                    )));
                }
                // The state and the latest block were written in one batch;
                // a mismatch means the files were damaged or mixed up.
                if height > 0 {
                    let block = store.block(height)?.ok_or_else(|| {
                        LedgerError::Corrupt(format!("block {height} (the latest) is missing"))
                    })?;
                    if block.state_root != state.root() {
                        return Err(LedgerError::Corrupt(format!(
                            "the state does not hash to block {height}'s state root"
                        )));
                    }
                }
                store.state = RwLock::new(Arc::new(state));
            }
        }
        Ok(store)
    }

    /// The state from its header and every stored entry.
    fn load_state(&self, header: StateHeader) -> Result<ChainState, LedgerError> {
        let mut records: Vec<StoredEntry> = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_STATE)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item?;
            let map = key
                .first()
                .and_then(|t| StateMap::from_tag(*t))
                .ok_or_else(|| LedgerError::Corrupt("a state entry of no known map".into()))?;
            records.push((map, key, value));
        }
        ChainState::from_stored(
            header,
            records.iter().map(|(m, k, v)| (*m, &k[1..], &v[..])),
        )
        .map_err(|e| LedgerError::Corrupt(format!("a state entry: {e}")))
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, LedgerError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| LedgerError::Corrupt(format!("column family '{name}' is missing")))
    }

    /// The genesis hash this ledger was created from.
    pub fn genesis_hash(&self) -> [u8; 32] {
        self.genesis_hash
    }

    /// The state after the latest committed block.
    pub fn state(&self) -> Arc<ChainState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Why the ledger halted (a block's state root disagreed with its own),
    /// or `None` while it commits.
    pub fn halted(&self) -> Option<String> {
        self.halted
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The latest committed height (0: only genesis).
    pub fn height(&self) -> u64 {
        self.state().height()
    }

    /// Applies a finalized block and stores it, its index entries and the
    /// new state in one synced batch.
    ///
    /// The block must be at `height() + 1`. A block at a height already
    /// committed with the same digest is a re-delivery: nothing changes and
    /// the stored outcome is returned. The same height with another digest
    /// is a [`LedgerError::Conflict`]: the engine finalized two blocks at
    /// one height, which must never happen, so it stops here.
    pub fn commit(&self, block: FinalizedBlock) -> Result<BlockOutcome, LedgerError> {
        let _guard = self
            .commit_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(why) = self.halted() {
            return Err(LedgerError::Halted(why));
        }
        let current = self.state();
        let height = block.height;
        if height == 0 {
            return Err(LedgerError::ZeroHeight);
        }
        if height <= current.height() {
            let stored = self.block(height)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("committed block {height} is missing"))
            })?;
            if stored.digest != block.digest {
                return Err(LedgerError::Conflict {
                    height,
                    stored: hex32(&stored.digest),
                    given: hex32(&block.digest),
                });
            }
            return Ok(stored.outcome());
        }
        if height != current.height() + 1 {
            return Err(LedgerError::Gap {
                height: current.height(),
                got: height,
            });
        }
        if height > 1 {
            let previous = self.block(height - 1)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("committed block {} is missing", height - 1))
            })?;
            if previous.digest != block.parent {
                return Err(LedgerError::ParentMismatch {
                    height,
                    stored: hex32(&previous.digest),
                    given: hex32(&block.parent),
                });
            }
        }
        // Apply to a copy (it shares the maps: O(1)): if the root is wrong
        // or the write fails, the state in memory stays what is on disk.
        let mut next = (*current).clone();
        let outcome = next
            .apply_block(height, block.beacon.beacon, &block.txs)
            .map_err(|reason| LedgerError::Apply { height, reason })?;
        if outcome.state_root != block.state_root {
            let e = LedgerError::RootMismatch {
                height,
                digest: hex32(&block.digest),
                block_root: hex32(&block.state_root),
                computed: hex32(&outcome.state_root),
            };
            *self
                .halted
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(e.to_string());
            return Err(e);
        }

        let (blocks, txs, meta) = (self.cf(CF_BLOCKS)?, self.cf(CF_TXS)?, self.cf(CF_META)?);
        let entries = self.cf(CF_STATE)?;
        let mut batch = WriteBatch::default();
        // The index keeps, per id, the inclusion that applied if there is
        // one: a transaction included again (a replay) is refused with a bad
        // nonce and must not hide where it took effect.
        let mut in_block: std::collections::HashMap<[u8; 32], bool> = Default::default();
        for (index, (tx, result)) in block.txs.iter().zip(&outcome.results).enumerate() {
            let id = tx.id();
            let earlier_ok = match in_block.get(&id) {
                Some(ok) => *ok,
                None => match self.db.get_cf(txs, id)? {
                    Some(bytes) => decode::<TxRecord>("tx index entry", &bytes)?.result.is_ok(),
                    None => false,
                },
            };
            if earlier_ok {
                continue;
            }
            in_block.insert(id, result.is_ok());
            let record = TxRecord {
                height,
                index: index as u32,
                result: result.clone(),
            };
            batch.put_cf(txs, id, encode(&record));
        }
        let stored = StoredBlock {
            digest: block.digest,
            parent: block.parent,
            timestamp_ms: block.timestamp_ms,
            proposer: block.proposer,
            txs: block.txs.iter().map(SignedTx::encode).collect(),
            results: outcome.results.clone(),
            new_epoch: outcome.new_epoch,
            state_root: outcome.state_root,
            beacon: block.beacon,
        };
        batch.put_cf(blocks, height.to_be_bytes(), encode(&stored));
        // Only what the block changed, and the header.
        for e in next.take_changes() {
            let key = state_key(e.map, &e.key);
            match &e.value {
                Some(value) => batch.put_cf(entries, key, value),
                None => batch.delete_cf(entries, key),
            }
        }
        batch.put_cf(meta, KEY_STATE, encode(&(height, next.header())));
        self.db.write_opt(batch, &synced())?;
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        Ok(outcome)
    }

    /// The committed block at `height`, if any.
    pub fn block(&self, height: u64) -> Result<Option<BlockRecord>, LedgerError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())? else {
            return Ok(None);
        };
        let stored: StoredBlock = decode("block", &bytes)?;
        let txs = stored
            .txs
            .iter()
            .map(|b| SignedTx::decode(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LedgerError::Corrupt(format!("a transaction of block {height}: {e}")))?;
        if txs.len() != stored.results.len() {
            return Err(LedgerError::Corrupt(format!(
                "block {height} has {} transactions and {} results",
                txs.len(),
                stored.results.len()
            )));
        }
        Ok(Some(BlockRecord {
            height,
            digest: stored.digest,
            parent: stored.parent,
            timestamp_ms: stored.timestamp_ms,
            proposer: stored.proposer,
            txs,
            results: stored.results,
            new_epoch: stored.new_epoch,
            state_root: stored.state_root,
            beacon: stored.beacon,
        }))
    }

    /// Where the committed transaction `id` is and how it fared.
    pub fn tx(&self, id: &[u8; 32]) -> Result<Option<TxRecord>, LedgerError> {
        match self.db.get_cf(self.cf(CF_TXS)?, id)? {
            Some(bytes) => Ok(Some(decode("tx index entry", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes memtables to disk so the next open replays no log. Not needed
    /// for durability (every commit is synced), only for a faster start.
    pub fn flush(&self) -> Result<(), LedgerError> {
        for name in [CF_BLOCKS, CF_TXS, CF_META, CF_STATE] {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
