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
//! * **Shard bodies bypass the page cache.** They are written and read
//!   with `O_DIRECT` ([`direct`]) where the filesystem allows it, decided
//!   once when the store opens; [`StoreOptions::direct_io`] turns it off.
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

mod direct;
mod format;
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

use format::{check_format, convert_from_format_2, Found};

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

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Read and write shard files with `O_DIRECT` (bypassing the page
    /// cache) if the filesystem allows it; `false`: buffered I/O.
    pub direct_io: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { direct_io: true }
    }
}

/// The shard store. Cheap to share behind an `Arc`.
pub struct ShardStore {
    db: Db,
    shards_dir: PathBuf,
    /// Shard files use direct I/O ([`direct`]): asked for, and the
    /// filesystem took it when the store opened.
    direct: bool,
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
        Self::open_with(path, capacity, &StoreOptions::default())
    }

    /// [`Self::open`] with `options`.
    pub fn open_with(
        path: &Path,
        capacity: u64,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
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
        let direct =
            options.direct_io && direct::probe(&shards_dir).map_err(io_error(&shards_dir))?;
        match (options.direct_io, direct) {
            (true, true) => {
                tracing::info!(dir = %shards_dir.display(), "shard files use direct I/O (O_DIRECT)")
            }
            (true, false) => {
                tracing::info!(dir = %shards_dir.display(), "the filesystem refuses O_DIRECT; shard files use buffered I/O")
            }
            (false, _) => {
                tracing::info!(dir = %shards_dir.display(), "direct I/O turned off; shard files use buffered I/O")
            }
        }
        let mut store = Self {
            db,
            shards_dir,
            direct,
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

    /// Whether shard files are read and written with direct I/O.
    pub fn direct_io(&self) -> bool {
        self.direct
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
            let file = if self.direct {
                let file = direct::create_write(&tmp)?;
                direct::write_file(&file, data)?;
                file
            } else {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                file.write_all(data)?;
                file
            };
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
        let encoded = if self.direct {
            // Spans end at the range's last chunk group: nothing past it.
            let limit = range
                .end
                .next_multiple_of(cairn_protocol::shard::GROUP_BYTES);
            direct::with_reader(&file, limit, |r| outboard.encode_range_from(r, range))
                .map_err(io_error(&self.shard_path(id)))?
        } else {
            outboard.encode_range_from(file, range)
        };
        match encoded {
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
        let read = if self.direct {
            direct::read_exact_at(&file, buf, offset)
        } else {
            file.read_exact_at(buf, offset)
        };
        match read {
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
        let opened = if self.direct {
            direct::open_read(&path)
        } else {
            File::open(&path)
        };
        let file = match opened {
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
mod tests;
