//! The shard store: shards, their bao outboards and their metadata in one
//! RocksDB database.
//!
//! ## Goals
//!
//! * **Only verified bytes go in.** [`ShardStore::put`] hashes the bytes and
//!   refuses them unless they hash to the id they were offered under.
//! * **Never half-written.** A shard's bytes, outboard, metadata and expiry
//!   index go in one `WriteBatch`, which RocksDB applies atomically across
//!   column families through its single write-ahead log.
//! * **Acknowledged means durable.** Every batch is written with `sync`, so
//!   when `put` returns the WAL is on disk; a SIGKILL or power cut after that
//!   loses nothing. Concurrent puts share fsyncs (RocksDB group commit).
//! * **Never served as good when rotten.** Every read goes through the
//!   outboard, which is checked against the id; a mismatch (or a RocksDB
//!   checksum failure) quarantines the shard: it is removed and reported.
//!
//! ## Layout
//!
//! | column family | key | value |
//! |---|---|---|
//! | `shards` | 32-byte BLAKE3 digest | the shard's bytes (in blob files) |
//! | `outboards` | digest | bao inner hashes, post-order |
//! | `meta` | digest | [`ShardMeta`], postcard |
//! | `expiry` | expires-at (u64 BE) ‖ digest | empty |
//!
//! `shards` uses BlobDB (key–value separation): values of 4 KiB and more
//! live in blob files, so compaction rewrites only 32-byte keys and pointers
//! instead of copying every shard again and again, and a shard is read with
//! one positioned read. Shards are ciphertext, so nothing is compressed.
//!
//! ## Non-goals
//!
//! Networking and scheduling (the scrubber and GC loops live in
//! [`crate::maintenance`]); this module is synchronous and is called from
//! blocking threads.

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_protocol::chain::Address;
use cairn_protocol::shard::{Outboard, VerifyError};
use cairn_protocol::ContentId;
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    MultiThreaded, Options, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};

type Db = rocksdb::DBWithThreadMode<MultiThreaded>;

const CF_SHARDS: &str = "shards";
const CF_OUTBOARDS: &str = "outboards";
const CF_META: &str = "meta";
const CF_EXPIRY: &str = "expiry";
/// Most owners one shard records; further owners share the expiry only.
pub const MAX_OWNERS: usize = 16;
/// Puts of the same id serialize on one of these locks; different ids
/// rarely share one, so their synced writes still group-commit.
const PUT_STRIPES: usize = 64;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("shard bytes hash to {actual}, not to the id {expected} they were sent under")]
    HashMismatch {
        expected: ContentId,
        actual: ContentId,
    },
    #[error("capacity full: storing {needed} bytes would exceed the {capacity} byte capacity ({used} used)")]
    CapacityFull {
        needed: u64,
        used: u64,
        capacity: u64,
    },
    #[error("shard {0} is not stored here")]
    NotFound(ContentId),
    #[error("shard {id} failed verification and was quarantined: {reason}")]
    Corrupt { id: ContentId, reason: String },
    #[error("{0}")]
    Range(VerifyError),
    #[error("{owner} is not an owner of shard {id}")]
    NotOwner { id: ContentId, owner: Address },
    #[error("shard store (RocksDB): {0}")]
    Db(#[from] rocksdb::Error),
}

/// What the store records about a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub size: u64,
    /// Unix seconds of the first store.
    pub stored_at: u64,
    /// Unix seconds after which GC removes it; `None`: kept until deleted.
    pub expires_at: Option<u64>,
    /// Accounts that may delete it (each delete removes one; the last one
    /// removes the shard).
    pub owners: Vec<Address>,
    /// Bytes of outboard kept beside it.
    pub outboard_len: u64,
}

impl ShardMeta {
    /// Bytes this shard takes from the capacity.
    pub fn footprint(&self) -> u64 {
        self.size + self.outboard_len
    }
}

/// How a put went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// The shard was already stored; its metadata was merged.
    pub existed: bool,
}

/// Options of one put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub expires_at: Option<u64>,
    pub owner: Option<Address>,
}

/// Space and count, for metrics and the capacity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub capacity: u64,
    pub used: u64,
    pub shards: u64,
}

/// A RocksDB-backed shard store. Cheap to share behind an `Arc`.
pub struct ShardStore {
    db: Db,
    capacity: u64,
    usage: Mutex<(u64, u64)>,
    stripes: Vec<Mutex<()>>,
}

impl ShardStore {
    /// Opens (or creates) the store at `path` with room for `capacity` bytes.
    pub fn open(path: &Path, capacity: u64) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        let db = Db::open_cf_descriptors(
            &opts,
            path,
            [
                ColumnFamilyDescriptor::new(CF_SHARDS, shard_cf_options()),
                ColumnFamilyDescriptor::new(CF_OUTBOARDS, plain_options()),
                ColumnFamilyDescriptor::new(CF_META, plain_options()),
                ColumnFamilyDescriptor::new(CF_EXPIRY, plain_options()),
            ],
        )?;
        let store = Self {
            db,
            capacity,
            usage: Mutex::new((0, 0)),
            stripes: (0..PUT_STRIPES).map(|_| Mutex::new(())).collect(),
        };
        // Usage is derived from the metadata at open rather than kept as a
        // counter on disk, so it can never drift from what is stored.
        let (mut used, mut shards) = (0u64, 0u64);
        for item in store
            .db
            .iterator_cf(&store.cf(CF_META), IteratorMode::Start)
        {
            let (_, value) = item?;
            if let Some(meta) = decode_meta(&value) {
                used += meta.footprint();
                shards += 1;
            }
        }
        *store.lock_usage() = (used, shards);
        Ok(store)
    }

    fn cf(&self, name: &str) -> std::sync::Arc<BoundColumnFamily<'_>> {
        // The four families are created at open; their absence is a bug.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Serializes changes to one shard id.
    fn lock_id(&self, id: &ContentId) -> std::sync::MutexGuard<'_, ()> {
        self.stripes[id.digest()[0] as usize % PUT_STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_usage(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn usage(&self) -> Usage {
        let (used, shards) = *self.lock_usage();
        Usage {
            capacity: self.capacity,
            used,
            shards,
        }
    }

    /// Writes memtables out to their files (shards to blob files), so a
    /// clean shutdown leaves no write-ahead log to replay.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in [CF_SHARDS, CF_OUTBOARDS, CF_META, CF_EXPIRY] {
            self.db.flush_cf(&self.cf(name))?;
        }
        Ok(())
    }

    /// Stores `data` as shard `id` after checking it hashes to `id`.
    pub fn put(
        &self,
        id: ContentId,
        data: &[u8],
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let outboard = Outboard::compute(data);
        if outboard.id() != id {
            return Err(StoreError::HashMismatch {
                expected: id,
                actual: outboard.id(),
            });
        }
        self.put_verified(&outboard, data, options)
    }

    /// Stores a shard whose outboard was computed from `data` by the caller.
    pub fn put_verified(
        &self,
        outboard: &Outboard,
        data: &[u8],
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let id = outboard.id();
        let _guard = self.lock_id(&id);
        if let Some(mut meta) = self.meta(&id)? {
            // Already here: merge who may delete it and how long it lives.
            let mut batch = WriteBatch::default();
            let old_expiry = meta.expires_at;
            meta.expires_at = match (meta.expires_at, options.expires_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            if let Some(owner) = options.owner {
                if !meta.owners.contains(&owner) && meta.owners.len() < MAX_OWNERS {
                    meta.owners.push(owner);
                }
            }
            if old_expiry != meta.expires_at {
                if let Some(t) = old_expiry {
                    batch.delete_cf(&self.cf(CF_EXPIRY), expiry_key(t, &id));
                }
                if let Some(t) = meta.expires_at {
                    batch.put_cf(&self.cf(CF_EXPIRY), expiry_key(t, &id), []);
                }
            }
            batch.put_cf(&self.cf(CF_META), id.digest(), encode_meta(&meta));
            self.db.write_opt(batch, &synced())?;
            return Ok(PutOutcome { existed: true });
        }
        let meta = ShardMeta {
            size: data.len() as u64,
            stored_at: now(),
            expires_at: options.expires_at,
            owners: options.owner.into_iter().collect(),
            outboard_len: outboard.hashes().len() as u64,
        };
        let needed = meta.footprint();
        {
            let mut usage = self.lock_usage();
            if usage.0 + needed > self.capacity {
                return Err(StoreError::CapacityFull {
                    needed,
                    used: usage.0,
                    capacity: self.capacity,
                });
            }
            // Reserve before writing so concurrent puts cannot overshoot.
            usage.0 += needed;
            usage.1 += 1;
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(&self.cf(CF_SHARDS), id.digest(), data);
        batch.put_cf(&self.cf(CF_OUTBOARDS), id.digest(), outboard.hashes());
        batch.put_cf(&self.cf(CF_META), id.digest(), encode_meta(&meta));
        if let Some(t) = meta.expires_at {
            batch.put_cf(&self.cf(CF_EXPIRY), expiry_key(t, &id), []);
        }
        if let Err(e) = self.db.write_opt(batch, &synced()) {
            let mut usage = self.lock_usage();
            usage.0 -= needed;
            usage.1 -= 1;
            return Err(e.into());
        }
        Ok(PutOutcome { existed: false })
    }

    /// The metadata of shard `id`, if stored.
    pub fn meta(&self, id: &ContentId) -> Result<Option<ShardMeta>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(&self.cf(CF_META), id.digest())?
            .and_then(|v| decode_meta(&v)))
    }

    /// A bao encoding of bytes `range` of shard `id`, verified on the way
    /// out; returns the shard's size too. A shard that fails is quarantined.
    pub fn read_range(
        &self,
        id: &ContentId,
        range: Range<u64>,
    ) -> Result<(u64, Vec<u8>), StoreError> {
        let meta = self.meta(id)?.ok_or(StoreError::NotFound(*id))?;
        let outboard = self.read_part(CF_OUTBOARDS, id, "outboard")?;
        let outboard = Outboard::from_parts(*id, meta.size, outboard.to_vec())
            .map_err(|e| self.quarantine(id, &e.to_string()))?;
        let data = self.shard_bytes(id, &meta)?;
        match outboard.encode_range(&data, range) {
            Ok(encoded) => Ok((meta.size, encoded)),
            Err(e @ VerifyError::OutOfRange { .. }) => Err(StoreError::Range(e)),
            Err(e) => Err(self.quarantine(id, &e.to_string())),
        }
    }

    /// Re-hashes all of shard `id`. `Ok(true)`: intact; `Ok(false)`: it was
    /// gone already; a failure quarantines it and returns `Corrupt`.
    pub fn verify(&self, id: &ContentId) -> Result<bool, StoreError> {
        let Some(meta) = self.meta(id)? else {
            return Ok(false);
        };
        let data = self.shard_bytes(id, &meta)?;
        // One pass over the bytes yields both the root and the tree.
        let computed = Outboard::compute(&data);
        if computed.id() != *id {
            return Err(self.quarantine(id, "bytes no longer hash to the id"));
        }
        let stored = self.read_part(CF_OUTBOARDS, id, "outboard")?;
        if stored.as_ref() != computed.hashes() {
            return Err(self.quarantine(id, "outboard does not match the bytes"));
        }
        Ok(true)
    }

    /// The shard's bytes, checked for presence and size.
    fn shard_bytes(
        &self,
        id: &ContentId,
        meta: &ShardMeta,
    ) -> Result<rocksdb::DBPinnableSlice<'_>, StoreError> {
        let data = self.read_part(CF_SHARDS, id, "shard bytes")?;
        if data.len() as u64 != meta.size {
            return Err(self.quarantine(id, "stored size differs from metadata"));
        }
        Ok(data)
    }

    /// One of a stored shard's parts. Missing (while its metadata exists) or
    /// failing RocksDB's checksums, the shard is quarantined.
    fn read_part(
        &self,
        family: &str,
        id: &ContentId,
        what: &str,
    ) -> Result<rocksdb::DBPinnableSlice<'_>, StoreError> {
        // Shard bytes are checked against their BLAKE3 tree on every use,
        // a stronger check than RocksDB's CRC32C of the blob, so that one is
        // skipped on the hot read; other parts keep it.
        let mut read = rocksdb::ReadOptions::default();
        read.set_verify_checksums(family != CF_SHARDS);
        match self
            .db
            .get_pinned_cf_opt(&self.cf(family), id.digest(), &read)
        {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(self.quarantine(id, &format!("{what} missing"))),
            Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                Err(self.quarantine(id, e.as_ref()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a shard that failed verification, so it is never served
    /// again and its space is freed; the caller reports it. A later store
    /// of the same id (a repair) is accepted as new.
    fn quarantine(&self, id: &ContentId, reason: &str) -> StoreError {
        tracing::error!(shard = %id, reason, "shard failed verification; quarantined");
        if let Err(e) = self.remove(id) {
            tracing::error!(shard = %id, error = %e, "could not remove corrupt shard");
        }
        StoreError::Corrupt {
            id: *id,
            reason: reason.to_string(),
        }
    }

    /// Deletes shard `id` outright (operator or GC). `Ok(false)`: not stored.
    pub fn remove(&self, id: &ContentId) -> Result<bool, StoreError> {
        let _guard = self.lock_id(id);
        self.remove_locked(id)
    }

    fn remove_locked(&self, id: &ContentId) -> Result<bool, StoreError> {
        let meta = self.meta(id)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(&self.cf(CF_SHARDS), id.digest());
        batch.delete_cf(&self.cf(CF_OUTBOARDS), id.digest());
        batch.delete_cf(&self.cf(CF_META), id.digest());
        if let Some(t) = meta.as_ref().and_then(|m| m.expires_at) {
            batch.delete_cf(&self.cf(CF_EXPIRY), expiry_key(t, id));
        }
        self.db.write_opt(batch, &synced())?;
        if let Some(meta) = &meta {
            let mut usage = self.lock_usage();
            usage.0 = usage.0.saturating_sub(meta.footprint());
            usage.1 = usage.1.saturating_sub(1);
        }
        Ok(meta.is_some())
    }

    /// An owner gives up shard `id`; the shard goes when its last owner does.
    /// `Ok(false)`: not stored.
    pub fn release(&self, id: &ContentId, owner: &Address) -> Result<bool, StoreError> {
        let _guard = self.lock_id(id);
        let Some(mut meta) = self.meta(id)? else {
            return Ok(false);
        };
        let before = meta.owners.len();
        meta.owners.retain(|o| o != owner);
        if meta.owners.len() == before {
            return Err(StoreError::NotOwner {
                id: *id,
                owner: *owner,
            });
        }
        if meta.owners.is_empty() {
            return self.remove_locked(id);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(&self.cf(CF_META), id.digest(), encode_meta(&meta));
        self.db.write_opt(batch, &synced())?;
        Ok(true)
    }

    /// Removes up to `limit` shards that expired at or before `now`;
    /// returns how many went.
    pub fn collect_expired(&self, now: u64, limit: usize) -> Result<usize, StoreError> {
        let mut due = Vec::new();
        for item in self
            .db
            .iterator_cf(&self.cf(CF_EXPIRY), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some((t, id)) = parse_expiry_key(&key) else {
                continue;
            };
            if t > now || due.len() >= limit {
                break;
            }
            due.push(id);
        }
        let mut removed = 0;
        for id in due {
            // Re-check under the lock: a store may have extended it meanwhile.
            let _guard = self.lock_id(&id);
            match self.meta(&id)? {
                Some(m) if m.expires_at.is_some_and(|t| t <= now) => {
                    self.remove_locked(&id)?;
                    removed += 1;
                }
                _ => {}
            }
        }
        Ok(removed)
    }

    /// Up to `limit` stored ids after `after` in key order, for a scrubber
    /// that walks the store in pieces without holding an iterator open.
    pub fn ids_after(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<(ContentId, u64)>, StoreError> {
        let mode = match after {
            Some(id) => IteratorMode::From(id.digest(), Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit);
        for item in self.db.iterator_cf(&self.cf(CF_META), mode) {
            let (key, value) = item?;
            let Ok(digest) = <[u8; 32]>::try_from(&key[..]) else {
                continue;
            };
            let id = ContentId::from_digest(digest);
            if Some(&id) == after {
                continue;
            }
            if let Some(meta) = decode_meta(&value) {
                out.push((id, meta.size));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// Options of the `shards` column family (public so the benchmark can
/// measure raw RocksDB with exactly the same layout).
pub fn shard_cf_options() -> Options {
    let mut o = Options::default();
    o.set_enable_blob_files(true);
    o.set_min_blob_size(4096);
    o.set_blob_file_size(256 << 20);
    o.set_blob_compression_type(DBCompressionType::None);
    o.set_compression_type(DBCompressionType::None);
    o.set_enable_blob_gc(true);
    o.set_blob_gc_age_cutoff(0.25);
    o.set_write_buffer_size(64 << 20);
    o
}

fn plain_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const META_VERSION: u8 = 1;

fn encode_meta(meta: &ShardMeta) -> Vec<u8> {
    let mut out = vec![META_VERSION];
    out.extend(postcard::to_allocvec(meta).unwrap_or_default());
    out
}

fn decode_meta(bytes: &[u8]) -> Option<ShardMeta> {
    match bytes.split_first() {
        Some((&META_VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

fn expiry_key(t: u64, id: &ContentId) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&t.to_be_bytes());
    k[8..].copy_from_slice(id.digest());
    k
}

fn parse_expiry_key(key: &[u8]) -> Option<(u64, ContentId)> {
    let t = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let digest: [u8; 32] = key.get(8..40)?.try_into().ok()?;
    Some((t, ContentId::from_digest(digest)))
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn put_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data = shard(100_000, 1);
        let id = ContentId::of(&data);
        {
            let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
            assert!(!store.put(id, &data, PutOptions::default()).unwrap().existed);
            assert!(store.put(id, &data, PutOptions::default()).unwrap().existed);
            let (size, enc) = store.read_range(&id, 1000..50_000).unwrap();
            let got =
                cairn_protocol::shard::verify_range(id, size, 1000..50_000, &enc[..]).unwrap();
            assert_eq!(got, &data[1000..50_000]);
        }
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let usage = store.usage();
        assert_eq!(usage.shards, 1);
        assert!(usage.used >= 100_000);
        assert!(store.verify(&id).unwrap());
    }

    #[test]
    fn wrong_bytes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let data = shard(5000, 2);
        let wrong = ContentId::of(b"something else");
        let e = store.put(wrong, &data, PutOptions::default()).unwrap_err();
        assert!(matches!(e, StoreError::HashMismatch { .. }));
        assert_eq!(store.usage().shards, 0);
        assert!(store.meta(&wrong).unwrap().is_none());
    }

    #[test]
    fn capacity_is_enforced_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 250_000).unwrap();
        let a = shard(100_000, 1);
        let b = shard(100_000, 2);
        let c = shard(100_000, 3);
        store
            .put(ContentId::of(&a), &a, PutOptions::default())
            .unwrap();
        store
            .put(ContentId::of(&b), &b, PutOptions::default())
            .unwrap();
        let e = store
            .put(ContentId::of(&c), &c, PutOptions::default())
            .unwrap_err();
        assert!(matches!(e, StoreError::CapacityFull { .. }), "{e}");
        assert!(store.verify(&ContentId::of(&a)).unwrap());
        assert!(store.verify(&ContentId::of(&b)).unwrap());
        assert!(store.remove(&ContentId::of(&a)).unwrap());
        store
            .put(ContentId::of(&c), &c, PutOptions::default())
            .unwrap();
    }

    #[test]
    fn owners_release_and_expiry_collects() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let data = shard(10_000, 4);
        let id = ContentId::of(&data);
        let (alice, bob) = (Address([1; 32]), Address([2; 32]));
        for owner in [alice, bob] {
            let o = PutOptions {
                owner: Some(owner),
                expires_at: Some(100),
            };
            store.put(id, &data, o).unwrap();
        }
        assert!(matches!(
            store.release(&id, &Address([3; 32])),
            Err(StoreError::NotOwner { .. })
        ));
        assert!(store.release(&id, &alice).unwrap());
        assert!(store.meta(&id).unwrap().is_some());
        assert_eq!(store.collect_expired(99, 10).unwrap(), 0);
        assert_eq!(store.collect_expired(100, 10).unwrap(), 1);
        assert!(store.meta(&id).unwrap().is_none());
        assert_eq!(store.usage().used, 0);
    }

    #[test]
    fn ids_are_walked_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        for s in 0..10 {
            let d = shard(1000, s);
            store
                .put(ContentId::of(&d), &d, PutOptions::default())
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let batch = store.ids_after(after.as_ref(), 3).unwrap();
            if batch.is_empty() {
                break;
            }
            after = Some(batch.last().unwrap().0);
            seen.extend(batch.into_iter().map(|(id, _)| id));
        }
        assert_eq!(seen.len(), 10);
    }
}
