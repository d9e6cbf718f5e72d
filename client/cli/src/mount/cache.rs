//! The write-back cache: files being written live on local disk until
//! their contents are in a commit.
//!
//! Each cached file is `DIR/files/<n>.data`. When a written file is closed its
//! namespace path, mode and time go into `DIR/files/<n>.json` (written to a
//! temporary name, synced, renamed), and the file is put into the batch.
//! Once a commit holding it is published both files are deleted. A mount
//! that starts and finds `.json` records left by a crashed one puts those
//! files back into the tree and commits them ([`Cache::leftovers`]): what
//! was closed is recovered whole; what was still open when the process
//! died is dropped (its `.data` has no record), so a file is there whole
//! or not at all. `fsync` commits before it returns, so nothing it
//! acknowledged depends on the replay.
//!
//! A file uploaded while it was written ([`super::stream`]) is recorded
//! with its capability and where its shards went instead: its bytes need
//! not stay on disk (those the upload had read may have left already, to
//! keep the cache within its bound), and a replay puts the uploaded object
//! back into the tree and opens its deal with the next commit.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use cairn_client::{PlacedShard, PutReport};
use cairn_protocol::namespace::{NsPath, Timestamp};
use cairn_protocol::Capability;
use serde::{Deserialize, Serialize};

use super::stream::Stream;

/// A file already stored on the nodes, as its crash record names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uploaded {
    pub capability: String,
    pub size: u64,
    /// (node's peer id, object id, bytes) of every shard and manifest copy.
    pub placement: Vec<(String, String, u64)>,
}

impl Uploaded {
    pub fn of(report: &PutReport) -> Self {
        Self {
            capability: report.capability.to_string(),
            size: report.size_bytes,
            placement: report
                .placement
                .iter()
                .map(|p| (p.node.to_string(), p.id.to_string(), p.size))
                .collect(),
        }
    }

    /// The capability and placement back; `None` if the record is damaged.
    pub fn parse(&self) -> Option<(Capability, Vec<PlacedShard>)> {
        let cap = self.capability.parse().ok()?;
        let placement = self
            .placement
            .iter()
            .map(|(node, id, size)| {
                Some(PlacedShard {
                    node: node.parse().ok()?,
                    id: id.parse().ok()?,
                    size: *size,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((cap, placement))
    }
}

/// A closed file waiting for its commit, as recorded on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub path: String,
    pub mode: u32,
    pub secs: i64,
    pub nanos: u32,
    /// Set when the file was uploaded while written: the data file may be
    /// gone or partial, and is not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Uploaded>,
}

/// One cached file.
#[derive(Debug)]
pub struct Cached {
    pub file: File,
    pub data: PathBuf,
    /// Written since it was last put into the batch.
    pub dirty: bool,
    /// Open handles.
    pub open: u32,
    /// Put into the batch, waiting for a commit.
    pub staged: bool,
    /// Written from empty, every write at the end so far: a candidate
    /// for uploading while written.
    pub seq: bool,
    /// The upload running while the file is written.
    pub stream: Option<Stream>,
    /// Bytes from the start that have left the local disk (the stream had
    /// read them); 0 for a file wholly here.
    pub released: u64,
    /// The last finished upload of a file whose bytes left the disk, while
    /// it stays open: reads below `released` come from it.
    pub base: Option<Base>,
}

/// An uploaded object holding what a file open for writing had when its
/// upload finished (a read of bytes gone from the disk, or `fsync`).
#[derive(Debug, Clone)]
pub struct Base {
    pub report: PutReport,
    /// Bytes from the start it still holds as the file has them: those
    /// that had left the disk when it was made (they cannot be written
    /// again; later bytes may have been).
    pub valid: u64,
}

/// The cache directory and the files in it, by inode.
#[derive(Debug)]
pub struct Cache {
    /// Held (an exclusive `flock`) while the mount runs: a second mount
    /// on the same cache would take the first one's files for leftovers.
    _lock: nix::fcntl::Flock<File>,
    dir: PathBuf,
    files: HashMap<u64, Cached>,
    /// Records of uploaded files whose data left the cache, by inode.
    uploaded: HashMap<u64, PathBuf>,
    next: u64,
}

impl Cache {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let files = dir.join("files");
        std::fs::create_dir_all(&files)?;
        let lock = File::create(dir.join("lock"))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "another mount uses this cache (give this one its own --cache-dir)",
                )
            })?;
        Ok(Self {
            _lock: lock,
            dir: files,
            files: HashMap::new(),
            uploaded: HashMap::new(),
            next: 0,
        })
    }

    /// Closed files a crashed mount left: (data file, record); the data
    /// files without a record are deleted.
    pub fn leftovers(&self) -> std::io::Result<Vec<(PathBuf, Record)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            match p.extension().and_then(|x| x.to_str()) {
                Some("json") => {
                    let data = p.with_extension("data");
                    let record = std::fs::read(&p)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
                    match record {
                        Some(r) if r.object.is_some() || data.exists() => out.push((data, r)),
                        _ => {
                            let _ = std::fs::remove_file(&p);
                        }
                    }
                }
                Some("data") if !p.with_extension("json").exists() => {
                    let _ = std::fs::remove_file(&p);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn get(&self, ino: u64) -> Option<&Cached> {
        self.files.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Cached> {
        self.files.get_mut(&ino)
    }

    /// A new, empty cache file for `ino`, replacing any.
    pub fn create(&mut self, ino: u64) -> std::io::Result<&mut Cached> {
        self.drop_file(ino);
        let n = self.next;
        self.next += 1;
        let data = self.dir.join(format!("{}-{n}.data", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&data)?;
        Ok(self.files.entry(ino).or_insert(Cached {
            file,
            data,
            dirty: false,
            open: 0,
            staged: false,
            seq: true,
            stream: None,
            released: 0,
            base: None,
        }))
    }

    pub fn read(&self, ino: u64, offset: u64, size: usize) -> std::io::Result<Vec<u8>> {
        let c = self
            .files
            .get(&ino)
            .ok_or_else(|| std::io::Error::other("not cached"))?;
        let len = c.file.metadata()?.len();
        let end = offset.saturating_add(size as u64).min(len);
        let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
        c.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    pub fn len(&self, ino: u64) -> Option<u64> {
        self.files
            .get(&ino)
            .and_then(|c| c.file.metadata().ok())
            .map(|m| m.len())
    }

    /// Records a closed file's place so a crashed mount can recover it.
    pub fn record(
        &self,
        ino: u64,
        path: &NsPath,
        mode: u32,
        mtime: Timestamp,
        object: Option<Uploaded>,
    ) -> std::io::Result<()> {
        let c = self
            .files
            .get(&ino)
            .ok_or_else(|| std::io::Error::other("not cached"))?;
        if object.is_none() {
            c.file.sync_all()?;
        }
        let record = Record {
            path: path.to_string(),
            mode,
            secs: mtime.secs,
            nanos: mtime.nanos,
            object,
        };
        let json = c.data.with_extension("json");
        let tmp = c.data.with_extension("json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&record)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &json)?;
        Ok(())
    }

    /// Forgets the record of a file (it is being written again, or the
    /// path it named is gone).
    pub fn unrecord(&mut self, ino: u64) {
        if let Some(c) = self.files.get(&ino) {
            let _ = std::fs::remove_file(c.data.with_extension("json"));
        }
        if let Some(json) = self.uploaded.remove(&ino) {
            let _ = std::fs::remove_file(json);
        }
    }

    /// Deletes a cached file and its record.
    pub fn drop_file(&mut self, ino: u64) {
        if let Some(c) = self.files.remove(&ino) {
            let _ = std::fs::remove_file(c.data.with_extension("json"));
            let _ = std::fs::remove_file(&c.data);
        }
        if let Some(json) = self.uploaded.remove(&ino) {
            let _ = std::fs::remove_file(json);
        }
    }

    /// Deletes an uploaded file's data but keeps its record until a commit
    /// holds it (its bytes are read from the network from now on).
    pub fn forget_data(&mut self, ino: u64) {
        if let Some(c) = self.files.remove(&ino) {
            let _ = std::fs::remove_file(&c.data);
            self.uploaded.insert(ino, c.data.with_extension("json"));
        }
    }

    /// Frees the disk space of bytes streams have read: returns how many
    /// bytes left the disk.
    pub fn release_taken(&mut self) -> u64 {
        let mut freed = 0;
        for c in self.files.values_mut() {
            let Some(stream) = &c.stream else { continue };
            let upto = stream.releasable() & !4095;
            if upto <= c.released {
                continue;
            }
            let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
            let (Ok(at), Ok(len)) = (i64::try_from(c.released), i64::try_from(upto - c.released))
            else {
                continue;
            };
            match nix::fcntl::fallocate(&c.file, flags, at, len) {
                Ok(()) => {
                    freed += upto - c.released;
                    c.released = upto;
                }
                Err(e) => tracing::debug!("cannot free cache space: {e}"),
            }
        }
        freed
    }

    /// A stream whose writer is ahead of its upload, if any.
    pub fn stream_behind(&self) -> Option<&Stream> {
        self.files
            .values()
            .filter_map(|c| c.stream.as_ref())
            .find(|s| s.behind())
    }

    /// Deletes every staged file that no handle holds (after a commit).
    pub fn release_committed(&mut self) {
        let done: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, c)| c.staged && !c.dirty && c.open == 0)
            .map(|(i, _)| *i)
            .collect();
        for i in done {
            self.drop_file(i);
        }
        for (_, json) in self.uploaded.drain() {
            let _ = std::fs::remove_file(json);
        }
        for c in self.files.values_mut() {
            c.staged = false;
        }
    }

    /// Bytes on local disk (blocks in use: what streams released is not).
    pub fn bytes(&self) -> u64 {
        self.files
            .values()
            .filter_map(|c| c.file.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    }

    /// Inodes with open or uncommitted files.
    pub fn inodes(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }
}
