//! The shard store: each shard's bytes in a file of its own; their bao
//! outboards, metadata and expiry index in RocksDB.
//!
//! ## Goals
//!
//! * **Only verified bytes go in.** [`ShardStore::put`] hashes the bytes and
//!   refuses them unless they hash to the id they were offered under.
//! * **Never half-written.** A shard's bytes go to a temporary file in their
//!   final directory, which is synced and then renamed into place (and the
//!   directory synced); only then are its outboard, metadata and expiry
//!   entry committed, in one synced `WriteBatch`. A shard exists when its
//!   metadata does: a file without metadata (a crash between the rename and
//!   the commit) is deleted when the store opens, and never served.
//! * **Acknowledged means durable.** When `put` returns, the file, its
//!   directory entry and the metadata are on disk; a SIGKILL or power cut
//!   after that loses nothing. Concurrent puts share the metadata fsync
//!   (RocksDB group commit).
//! * **Never served as good when rotten.** Every read goes through the
//!   outboard, which is checked against the id; a mismatch (or a missing or
//!   short file, or a RocksDB checksum failure) quarantines the shard: it is
//!   removed and reported.
//!
//! ## Layout
//!
//! ```text
//! store/
//!   FORMAT                 "cairn-node store 3"; format 2 is converted,
//!                          anything else refused
//!   db/                    RocksDB
//!   shards/ab/<hex>.shard  the bytes of shard ab …, nothing else
//! ```
//!
//! | column family | key | value |
//! |---|---|---|
//! | `outboards` | 32-byte BLAKE3 digest | bao inner hashes, post-order |
//! | `meta` | digest | [`ShardMeta`], postcard |
//! | `expiry` | expires-at (u64 BE) ‖ digest | empty |
//!
//! Why files: shards are large and immutable. Kept in RocksDB (BlobDB) each
//! byte was written twice, once into the write-ahead log and once more into
//! a blob file at flush, and CRC32C'd on both paths. As a file it is written
//! once, and read back with one positioned read of just the chunk groups a
//! range needs. Removing a shard deletes its metadata first (synced), then
//! the file.
//!
//! Why one level of 256 directories: they are all made when the store
//! opens, so a put never creates a directory. Format 2 had a second level
//! (`ab/cd/`, 65 536 directories made on demand): a young node paid an
//! `mkdir` and an extra directory sync for most of its first shards (8 % of
//! the node bench's CPU), and a full fan-out costs 256 MiB of directory
//! blocks. One level holds 40 000 files per directory at ten million
//! shards, which ext4 and XFS index without trouble.
//!
//! ## Non-goals
//!
//! Networking and scheduling (the scrubber and GC loops live in
//! [`crate::maintenance`]); this module is synchronous and is called from
//! blocking threads.

mod leaves;
mod unpaid;

pub use leaves::KeptDeal;
pub use unpaid::{admit, overdue, UnpaidLimits, UnpaidRefusal, UnpaidUsage};

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
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

const CF_OUTBOARDS: &str = "outboards";
const CF_META: &str = "meta";
const CF_EXPIRY: &str = "expiry";
/// Deal leaf lists: what the node signed receipts for ([`leaves`]).
const CF_DEALS: &str = "deals";
/// Most owners one shard records; a store by a further owner is refused.
pub const MAX_OWNERS: usize = 16;
/// Puts of the same id serialize on one of these locks; different ids
/// rarely share one, so their writes still overlap and group-commit.
const PUT_STRIPES: usize = 256;

/// The file that names the store's on-disk format.
const FORMAT_FILE: &str = "FORMAT";
/// Format 1 (unmarked) kept shard bytes in RocksDB; 2 kept them in files
/// two directory levels deep; 3 keeps them one level deep.
const FORMAT: &str = "cairn-node store 3";
/// The previous format, converted to [`FORMAT`] when a store opens.
const FORMAT_2: &str = "cairn-node store 2";
const DB_DIR: &str = "db";
const SHARDS_DIR: &str = "shards";
const SHARD_SUFFIX: &str = ".shard";
const TMP_SUFFIX: &str = ".tmp";

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
    #[error("shard {id} already has {MAX_OWNERS} owners, the most a shard may have; store it under another id")]
    TooManyOwners { id: ContentId },
    #[error("{0}")]
    Unpaid(UnpaidRefusal),
    #[error("shard store (RocksDB): {0}")]
    Db(#[from] rocksdb::Error),
    #[error("deal leaf list: {0}")]
    LeafList(String),
    #[error("shard store: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shard store {}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
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

/// What [`ShardStore::open`] found and cleaned up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Shard files without metadata (a crash before the commit), deleted.
    pub orphans: u64,
    /// Metadata whose shard file was gone, dropped.
    pub lost: u64,
    /// Leftover temporary files, deleted.
    pub temporaries: u64,
}

/// The shard store. Cheap to share behind an `Arc`.
pub struct ShardStore {
    db: Db,
    shards_dir: PathBuf,
    capacity: u64,
    usage: Mutex<(u64, u64)>,
    stripes: Vec<Mutex<()>>,
    open_report: OpenReport,
    /// Set on a node of a chain ([`unpaid`]); `None`: nothing is unpaid.
    unpaid: Option<UnpaidLimits>,
    book: Mutex<unpaid::UnpaidBook>,
}

impl ShardStore {
    /// Opens (or creates) the store at `path` with room for `capacity` bytes.
    /// A store of another format is refused, never misread.
    pub fn open(path: &Path, capacity: u64) -> Result<Self, StoreError> {
        let convert = check_format(path)? == Found::Format2;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        let db = Db::open_cf_descriptors(
            &opts,
            path.join(DB_DIR),
            [
                ColumnFamilyDescriptor::new(CF_OUTBOARDS, plain_options()),
                ColumnFamilyDescriptor::new(CF_META, plain_options()),
                ColumnFamilyDescriptor::new(CF_EXPIRY, plain_options()),
                ColumnFamilyDescriptor::new(CF_DEALS, plain_options()),
                ColumnFamilyDescriptor::new(unpaid::CF_UNPAID, plain_options()),
                ColumnFamilyDescriptor::new(unpaid::CF_UNPAID_DUE, plain_options()),
            ],
        )?;
        // Every fan-out directory is made here, so puts never make one.
        let shards_dir = path.join(SHARDS_DIR);
        for b in 0..=255u8 {
            let d = shards_dir.join(hex::encode([b]));
            fs::create_dir_all(&d).map_err(io_error(&d))?;
        }
        sync_dir(&shards_dir)?;
        sync_dir(path)?;
        if convert {
            convert_from_format_2(path, &shards_dir)?;
        }
        let mut store = Self {
            db,
            shards_dir,
            capacity,
            usage: Mutex::new((0, 0)),
            stripes: (0..PUT_STRIPES).map(|_| Mutex::new(())).collect(),
            open_report: OpenReport::default(),
            unpaid: None,
            book: Mutex::new(unpaid::UnpaidBook::default()),
        };
        store.reconcile()?;
        Ok(store)
    }

    /// Matches shard files with metadata after a restart: files without
    /// metadata are deleted, metadata without a file is dropped (and
    /// logged). Usage is derived from the metadata here rather than kept as
    /// a counter on disk, so it can never drift from what is stored.
    fn reconcile(&mut self) -> Result<(), StoreError> {
        let mut report = OpenReport::default();
        let mut on_disk: HashSet<[u8; 32]> = HashSet::new();
        for l1 in read_dir_paths(&self.shards_dir)? {
            if !l1.is_dir() {
                continue;
            }
            for file in read_dir_paths(&l1)? {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.ends_with(TMP_SUFFIX) {
                    fs::remove_file(&file).map_err(io_error(&file))?;
                    report.temporaries += 1;
                } else if let Some(digest) = parse_shard_name(&name)
                    .filter(|d| self.shard_path(&ContentId::from_digest(*d)) == file)
                {
                    on_disk.insert(digest);
                } else {
                    tracing::warn!(file = %file.display(), "unexpected entry in the shard directory; left alone");
                }
            }
        }
        let (mut used, mut shards) = (0u64, 0u64);
        let mut lost = Vec::new();
        for item in self.db.iterator_cf(&self.cf(CF_META), IteratorMode::Start) {
            let (key, value) = item?;
            let Ok(digest) = <[u8; 32]>::try_from(&key[..]) else {
                continue;
            };
            if !on_disk.remove(&digest) {
                lost.push((ContentId::from_digest(digest), decode_meta(&value)));
                continue;
            }
            if let Some(meta) = decode_meta(&value) {
                used += meta.footprint();
                shards += 1;
            }
        }
        if !lost.is_empty() {
            let mut batch = WriteBatch::default();
            for (id, meta) in &lost {
                tracing::error!(shard = %id, "shard file missing; metadata dropped (shard lost)");
                batch.delete_cf(&self.cf(CF_OUTBOARDS), id.digest());
                batch.delete_cf(&self.cf(CF_META), id.digest());
                if let Some(t) = meta.as_ref().and_then(|m| m.expires_at) {
                    batch.delete_cf(&self.cf(CF_EXPIRY), expiry_key(t, id));
                }
            }
            self.db.write_opt(batch, &synced())?;
            report.lost = lost.len() as u64;
        }
        for digest in on_disk {
            let file = self.shard_path(&ContentId::from_digest(digest));
            fs::remove_file(&file).map_err(io_error(&file))?;
            report.orphans += 1;
        }
        if report.orphans + report.temporaries > 0 {
            tracing::warn!(
                orphans = report.orphans,
                temporaries = report.temporaries,
                "deleted shard files left without metadata by an interrupted store"
            );
        }
        *self.lock_usage() = (used, shards);
        self.open_report = report;
        Ok(())
    }

    /// What opening the store cleaned up.
    pub fn open_report(&self) -> OpenReport {
        self.open_report
    }

    fn cf(&self, name: &str) -> std::sync::Arc<BoundColumnFamily<'_>> {
        // The three families are created at open; their absence is a bug.
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

    /// Writes memtables out to their files, so a clean shutdown leaves no
    /// write-ahead log to replay. (Shard files are synced as they are
    /// written.)
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in [
            CF_OUTBOARDS,
            CF_META,
            CF_EXPIRY,
            CF_DEALS,
            unpaid::CF_UNPAID,
            unpaid::CF_UNPAID_DUE,
        ] {
            self.db.flush_cf(&self.cf(name))?;
        }
        Ok(())
    }

    /// Where shard `id`'s bytes live: `shards/ab/<hex>.shard`.
    pub fn shard_path(&self, id: &ContentId) -> PathBuf {
        let d = id.digest();
        self.shards_dir
            .join(hex::encode(&d[..1]))
            .join(format!("{}{SHARD_SUFFIX}", hex::encode(d)))
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
                if !meta.owners.contains(&owner) {
                    if meta.owners.len() >= MAX_OWNERS {
                        return Err(StoreError::TooManyOwners { id });
                    }
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
        // Until a deal pays for it, the shard is charged to its first owner.
        let unpaid = unpaid::UnpaidRecord {
            since: meta.stored_at,
            owner: options.owner.unwrap_or(Address([0; 32])),
            bytes: needed,
        };
        self.charge(unpaid.owner, needed)?;
        {
            let mut usage = self.lock_usage();
            if usage.0 + needed > self.capacity {
                self.uncharge(&unpaid.owner, needed);
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
        let result = self.write_shard_file(&id, data).and_then(|()| {
            // The bytes are durable under their final name; committing the
            // metadata is what makes the shard exist.
            let mut batch = WriteBatch::default();
            batch.put_cf(&self.cf(CF_OUTBOARDS), id.digest(), outboard.hashes());
            batch.put_cf(&self.cf(CF_META), id.digest(), encode_meta(&meta));
            if let Some(t) = meta.expires_at {
                batch.put_cf(&self.cf(CF_EXPIRY), expiry_key(t, &id), []);
            }
            self.unpaid_entries(&mut batch, &id, &unpaid);
            self.db.write_opt(batch, &synced()).map_err(|e| {
                let _ = fs::remove_file(self.shard_path(&id));
                StoreError::from(e)
            })
        });
        if let Err(e) = result {
            {
                let mut usage = self.lock_usage();
                usage.0 -= needed;
                usage.1 -= 1;
            }
            self.uncharge(&unpaid.owner, needed);
            return Err(e);
        }
        Ok(PutOutcome { existed: false })
    }

    /// Writes `data` to a temporary file beside its final place, syncs it,
    /// renames it into place and syncs the directory.
    fn write_shard_file(&self, id: &ContentId, data: &[u8]) -> Result<(), StoreError> {
        let path = self.shard_path(id);
        let Some(dir) = path.parent() else {
            return Err(StoreError::Io {
                path,
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        };
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", hex::encode(id.digest())));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io {
                path: tmp,
                source: e,
            });
        }
        sync_dir(dir).inspect_err(|_| {
            let _ = fs::remove_file(&path);
        })
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
        if range.start > range.end || range.end > meta.size {
            return Err(StoreError::Range(VerifyError::OutOfRange {
                start: range.start,
                end: range.end,
                size: meta.size,
            }));
        }
        let outboard = self.read_outboard(id)?;
        let outboard = Outboard::from_parts(*id, meta.size, outboard)
            .map_err(|e| self.quarantine(id, &e.to_string()))?;
        // The encoder reads the range's chunk groups straight from the file
        // and nothing else: a request holds only its encoded answer, never
        // the whole shard. The file was checked to be the stored size, so a
        // read that fails now is a failing disk: quarantined like rot.
        let file = self.open_shard(id, &meta)?;
        match outboard.encode_range_from(file, range) {
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
        let mut data = vec![0u8; meta.size as usize];
        match self.read_shard_at(id, &meta, &mut data, 0) {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        // One pass over the bytes yields both the root and the tree.
        let computed = Outboard::compute(&data);
        if computed.id() != *id {
            return Err(self.quarantine(id, "bytes no longer hash to the id"));
        }
        let stored = self.read_outboard(id)?;
        if stored != computed.hashes() {
            return Err(self.quarantine(id, "outboard does not match the bytes"));
        }
        Ok(true)
    }

    /// Reads `buf.len()` bytes of shard `id`'s file at `offset`. A missing
    /// file (while its metadata exists) or one of the wrong size
    /// quarantines the shard; other I/O errors are errors, not corruption.
    fn read_shard_at(
        &self,
        id: &ContentId,
        meta: &ShardMeta,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<(), StoreError> {
        let file = self.open_shard(id, meta)?;
        match file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.quarantine(id, "shard file shorter than its metadata says"))
            }
            Err(e) => Err(io_error(&self.shard_path(id))(e)),
        }
    }

    /// Opens shard `id`'s file, checked to be the size its metadata says.
    /// A missing file (while its metadata exists) or one of the wrong size
    /// quarantines the shard.
    fn open_shard(&self, id: &ContentId, meta: &ShardMeta) -> Result<File, StoreError> {
        let path = self.shard_path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed meanwhile (metadata goes first), or lost.
                return Err(match self.meta(id)? {
                    None => StoreError::NotFound(*id),
                    Some(_) => self.quarantine(id, "shard file missing"),
                });
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        let len = file.metadata().map_err(io_error(&path))?.len();
        if len != meta.size {
            return Err(self.quarantine(id, "stored size differs from metadata"));
        }
        Ok(file)
    }

    /// The shard's stored outboard. Missing (while its metadata exists) or
    /// failing RocksDB's checksums, the shard is quarantined.
    fn read_outboard(&self, id: &ContentId) -> Result<Vec<u8>, StoreError> {
        match self.db.get_pinned_cf(&self.cf(CF_OUTBOARDS), id.digest()) {
            Ok(Some(d)) => Ok(d.to_vec()),
            Ok(None) => Err(self.quarantine(id, "outboard missing")),
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

    /// Metadata first (synced), then the file: a crash in between leaves an
    /// orphan file, which the next open deletes.
    fn remove_locked(&self, id: &ContentId) -> Result<bool, StoreError> {
        let meta = self.meta(id)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(&self.cf(CF_OUTBOARDS), id.digest());
        batch.delete_cf(&self.cf(CF_META), id.digest());
        if let Some(t) = meta.as_ref().and_then(|m| m.expires_at) {
            batch.delete_cf(&self.cf(CF_EXPIRY), expiry_key(t, id));
        }
        let unpaid = self.drop_unpaid(&mut batch, id)?;
        self.db.write_opt(batch, &synced())?;
        if let Some(r) = unpaid {
            self.uncharge(&r.owner, r.bytes);
        }
        if let Some(meta) = &meta {
            let mut usage = self.lock_usage();
            usage.0 = usage.0.saturating_sub(meta.footprint());
            usage.1 = usage.1.saturating_sub(1);
        }
        // Under the id's lock no put is writing this file, so whatever is
        // there belongs to no metadata now.
        let path = self.shard_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(shard = %id, file = %path.display(), error = %e, "could not delete a removed shard's file; the next open will");
            }
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

/// What [`check_format`] found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// A store of this format, or a new one just marked so.
    Current,
    /// A format-2 store, to be converted by [`convert_from_format_2`].
    Format2,
}

/// Accepts a store of this format or of format 2, creates one in an empty
/// or missing directory, and refuses anything else with a reason an
/// operator can act on.
fn check_format(path: &Path) -> Result<Found, StoreError> {
    let refuse = |reason: String| StoreError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let marker = path.join(FORMAT_FILE);
    match fs::read_to_string(&marker) {
        Ok(text) if text.trim_end() == FORMAT => return Ok(Found::Current),
        Ok(text) if text.trim_end() == FORMAT_2 => return Ok(Found::Format2),
        Ok(text) => {
            return Err(refuse(format!(
                "is in format {:?}, but this cairn-node reads only {FORMAT:?}",
                text.trim_end()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&marker)(e)),
    }
    if path.join("CURRENT").exists() {
        return Err(refuse(format!(
            "is a store of the old format (shard bytes inside RocksDB, no {FORMAT_FILE} file); \
             this cairn-node keeps shards as files ({FORMAT:?}) and does not convert: \
             move the directory away and start with an empty store"
        )));
    }
    match fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(refuse(format!(
                    "is not empty but has no {FORMAT_FILE} file; refusing to guess what it holds"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(io_error(path))?;
        }
        Err(e) => return Err(io_error(path)(e)),
    }
    // The marker goes first, so a directory with anything else in it was
    // made by a cairn-node that wrote one.
    write_format(path)?;
    Ok(Found::Current)
}

/// Marks the store at `path` as [`FORMAT`], atomically and durably.
fn write_format(path: &Path) -> Result<(), StoreError> {
    let marker = path.join(FORMAT_FILE);
    let tmp = path.join(format!("{FORMAT_FILE}{TMP_SUFFIX}"));
    (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{FORMAT}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &marker)
    })()
    .map_err(io_error(&marker))?;
    sync_dir(path)
}

/// Moves a format-2 store's shard files from `ab/cd/` up into `ab/`, then
/// marks the store as format 3. Each move is a rename within one file
/// system, so a file is always in exactly one place; a crash part way
/// leaves the old marker, and the next open finishes the job. Temporary
/// files are left for `reconcile` to delete.
fn convert_from_format_2(path: &Path, shards_dir: &Path) -> Result<(), StoreError> {
    let mut moved = 0u64;
    for l1 in read_dir_paths(shards_dir)? {
        if !l1.is_dir() {
            continue;
        }
        let subdirs: Vec<PathBuf> = read_dir_paths(&l1)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if subdirs.is_empty() {
            continue;
        }
        for l2 in &subdirs {
            for file in read_dir_paths(l2)? {
                let Some(name) = file.file_name() else {
                    continue;
                };
                let to = l1.join(name);
                fs::rename(&file, &to).map_err(io_error(&file))?;
                moved += 1;
            }
        }
        // The new entries must be durable before the old directories
        // vanish: one sync for all of `l1`'s, not one per subdirectory.
        sync_dir(&l1)?;
        for l2 in &subdirs {
            fs::remove_dir(l2).map_err(io_error(l2))?;
        }
        sync_dir(&l1)?;
    }
    write_format(path)?;
    tracing::info!(
        store = %path.display(),
        files = moved,
        "converted the shard store from format 2 (ab/cd/) to format 3 (ab/)"
    );
    Ok(())
}

/// Makes a directory's entries (new files, renames, removals) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

fn read_dir_paths(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
        .map_err(io_error(dir))
}

/// The digest in a shard file's name, `<64 hex digits>.shard`.
fn parse_shard_name(name: &str) -> Option<[u8; 32]> {
    let hex_digits = name.strip_suffix(SHARD_SUFFIX)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut digest).ok()?;
    Some(digest)
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
    use cairn_protocol::shard::GROUP_BYTES;

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
    fn a_seventeenth_owner_is_refused_and_the_first_can_still_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let data = shard(10_000, 6);
        let id = ContentId::of(&data);
        let owner = |n: u8| PutOptions {
            owner: Some(Address([n; 32])),
            expires_at: None,
        };
        for n in 1..=MAX_OWNERS as u8 {
            store.put(id, &data, owner(n)).unwrap();
        }
        let e = store.put(id, &data, owner(99)).unwrap_err();
        assert!(matches!(e, StoreError::TooManyOwners { .. }), "{e}");
        assert!(e.to_string().contains("16 owners"), "{e}");
        // An owner already listed may store again.
        assert!(store.put(id, &data, owner(3)).unwrap().existed);
        let meta = store.meta(&id).unwrap().unwrap();
        assert_eq!(meta.owners.len(), MAX_OWNERS);
        assert!(!meta.owners.contains(&Address([99; 32])));
        // The first owner's release succeeds while strangers remain.
        assert!(store.release(&id, &Address([1; 32])).unwrap());
        let meta = store.meta(&id).unwrap().unwrap();
        assert!(!meta.owners.contains(&Address([1; 32])));
        assert!(matches!(
            store.release(&id, &Address([1; 32])),
            Err(StoreError::NotOwner { .. })
        ));
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

    #[test]
    fn ranges_read_only_their_chunk_groups_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let g = GROUP_BYTES;
        for size in [
            1u64,
            1000,
            1024,
            5000,
            g - 1,
            g,
            g + 1,
            3 * g + 7,
            100_000,
            1 << 20,
        ] {
            let data = shard(size as usize, size as u8);
            let id = ContentId::of(&data);
            store.put(id, &data, PutOptions::default()).unwrap();
            let mut ranges = vec![
                0..size,
                0..1,
                size - 1..size,
                size / 2..size,
                0..0,
                size..size,
            ];
            for start in [0, 1, g - 1, g, g + 1, 2 * g + 5, size / 3] {
                for len in [0, 1, 1023, 1024, g - 1, g, g + 3, 3 * g] {
                    if start + len <= size {
                        ranges.push(start..start + len);
                    }
                }
            }
            for range in ranges {
                let (got_size, enc) = store.read_range(&id, range.clone()).unwrap();
                assert_eq!(got_size, size);
                let got = cairn_protocol::shard::verify_range(id, size, range.clone(), &enc[..])
                    .unwrap_or_else(|e| panic!("size {size} range {range:?}: {e}"));
                assert_eq!(got, &data[range.start as usize..range.end as usize]);
            }
            assert!(matches!(
                store.read_range(&id, 0..size + 1),
                Err(StoreError::Range(_))
            ));
        }
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x5a;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn rot_is_found_where_it_is_read_and_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let data = shard(300_000, 9);
        let id = ContentId::of(&data);
        store.put(id, &data, PutOptions::default()).unwrap();
        let path = store.shard_path(&id);
        assert!(path.starts_with(dir.path().join("shards")));
        flip(&path, 200_000);
        // A range away from the rot reads only its own groups: served.
        store.read_range(&id, 0..50_000).unwrap();
        // The range over it is refused and the shard quarantined.
        let e = store.read_range(&id, 190_000..210_000).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(store.meta(&id).unwrap().is_none());
        assert!(!path.exists());
        assert_eq!(
            store.usage(),
            Usage {
                capacity: 1 << 30,
                used: 0,
                shards: 0
            }
        );
        // A repair stores it again.
        store.put(id, &data, PutOptions::default()).unwrap();
        assert!(store.verify(&id).unwrap());
        // The scrubber's whole-shard check finds rot anywhere.
        flip(&path, 299_999);
        assert!(matches!(store.verify(&id), Err(StoreError::Corrupt { .. })));
        assert!(!path.exists());
        assert!(!store.verify(&id).unwrap());
        // A truncated file is corrupt too, not an I/O error.
        store.put(id, &data, PutOptions::default()).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        assert!(matches!(
            store.read_range(&id, 0..10),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(store.meta(&id).unwrap().is_none());
    }

    #[test]
    fn remove_deletes_metadata_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        let data = shard(50_000, 5);
        let id = ContentId::of(&data);
        store.put(id, &data, PutOptions::default()).unwrap();
        let path = store.shard_path(&id);
        assert_eq!(fs::read(&path).unwrap(), data);
        assert!(store.remove(&id).unwrap());
        assert!(!path.exists());
        assert!(!store.remove(&id).unwrap());
        assert!(matches!(
            store.read_range(&id, 0..10),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn open_deletes_orphans_and_drops_lost_shards() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, lost, orphan) = (shard(20_000, 1), shard(30_000, 2), shard(40_000, 3));
        let ids = [&kept, &lost, &orphan].map(|d| ContentId::of(d));
        let (lost_path, orphan_path, tmp_path);
        {
            let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
            for d in [&kept, &lost] {
                let o = PutOptions {
                    expires_at: Some(500),
                    owner: None,
                };
                store.put(ContentId::of(d), d, o).unwrap();
            }
            lost_path = store.shard_path(&ids[1]);
            orphan_path = store.shard_path(&ids[2]);
            tmp_path = orphan_path.with_extension("tmp");
            // A crash between the rename and the commit; one before the rename.
            fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
            fs::write(&orphan_path, &orphan).unwrap();
            fs::write(&tmp_path, &orphan[..100]).unwrap();
            fs::remove_file(&lost_path).unwrap();
            store.flush().unwrap();
        }
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(
            store.open_report(),
            OpenReport {
                orphans: 1,
                lost: 1,
                temporaries: 1
            }
        );
        assert!(!orphan_path.exists() && !tmp_path.exists());
        assert!(store.meta(&ids[1]).unwrap().is_none());
        assert!(store.meta(&ids[2]).unwrap().is_none());
        let usage = store.usage();
        assert_eq!(usage.shards, 1);
        assert_eq!(
            usage.used,
            store.meta(&ids[0]).unwrap().unwrap().footprint()
        );
        assert!(store.verify(&ids[0]).unwrap());
        // The lost shard's expiry entry went with it.
        assert_eq!(store.collect_expired(1000, 10).unwrap(), 1);
        drop(store);
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.open_report(), OpenReport::default());
        assert_eq!(store.usage().shards, 0);
    }

    /// Turns a format-3 store into the format-2 layout it came from:
    /// each shard file one level deeper, under `ab/cd/`.
    fn make_format_2(path: &Path, leave_in_place: usize) {
        let shards = path.join(SHARDS_DIR);
        let mut files: Vec<PathBuf> = read_dir_paths(&shards)
            .unwrap()
            .into_iter()
            .flat_map(|l1| read_dir_paths(&l1).unwrap())
            .collect();
        files.sort();
        for file in files.into_iter().skip(leave_in_place) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let l2 = file.parent().unwrap().join(&name[2..4]);
            fs::create_dir_all(&l2).unwrap();
            fs::rename(&file, l2.join(&name)).unwrap();
        }
        fs::write(path.join(FORMAT_FILE), format!("{FORMAT_2}\n")).unwrap();
    }

    #[test]
    fn a_format_2_store_is_converted_and_keeps_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<Vec<u8>> = (0..40).map(|i| shard(5_000 + i * 7, i as u8)).collect();
        {
            let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
            for d in &data {
                store
                    .put(ContentId::of(d), d, PutOptions::default())
                    .unwrap();
            }
            store.flush().unwrap();
        }
        // A whole format-2 store; then one whose conversion stopped after
        // moving the first 15 files (the marker still says 2), with a
        // temporary file left by an interrupted put.
        for leave_in_place in [0, 15] {
            make_format_2(dir.path(), leave_in_place);
            let id0 = ContentId::of(&data[0]);
            let l1 = dir
                .path()
                .join(SHARDS_DIR)
                .join(hex::encode(&id0.digest()[..1]));
            let tmp = l1.join(format!("{}{TMP_SUFFIX}", hex::encode([7u8; 32])));
            fs::write(&tmp, b"half").unwrap();
            let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
            assert_eq!(
                fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap(),
                format!("{FORMAT}\n")
            );
            assert_eq!(
                store.open_report(),
                OpenReport {
                    orphans: 0,
                    lost: 0,
                    temporaries: 1
                }
            );
            assert_eq!(store.usage().shards, data.len() as u64);
            for d in &data {
                let id = ContentId::of(d);
                assert!(store.shard_path(&id).is_file());
                assert!(store.verify(&id).unwrap());
            }
            // No second-level directory is left.
            for l1 in read_dir_paths(&dir.path().join(SHARDS_DIR)).unwrap() {
                assert!(read_dir_paths(&l1).unwrap().iter().all(|p| p.is_file()));
            }
        }
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        // The old layout: RocksDB directly in the store directory.
        let old = tempfile::tempdir().unwrap();
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            Db::open(&o, old.path()).unwrap();
        }
        let e = ShardStore::open(old.path(), 1 << 30).unwrap_err();
        assert!(matches!(e, StoreError::Format { .. }), "{e}");
        assert!(e.to_string().contains("old format"), "{e}");
        // A marker of another version.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(FORMAT_FILE), "cairn-node store 4\n").unwrap();
        let e = ShardStore::open(other.path(), 1 << 30).unwrap_err();
        assert!(e.to_string().contains("cairn-node store 4"), "{e}");
        // Something else entirely.
        let stray = tempfile::tempdir().unwrap();
        fs::write(stray.path().join("notes.txt"), "hi").unwrap();
        assert!(matches!(
            ShardStore::open(stray.path(), 1 << 30),
            Err(StoreError::Format { .. })
        ));
        // A missing directory is created, and reopens.
        let fresh = tempfile::tempdir().unwrap();
        let path = fresh.path().join("a/store");
        drop(ShardStore::open(&path, 1 << 30).unwrap());
        ShardStore::open(&path, 1 << 30).unwrap();
        assert_eq!(
            fs::read_to_string(path.join(FORMAT_FILE)).unwrap(),
            format!("{FORMAT}\n")
        );
    }
}
