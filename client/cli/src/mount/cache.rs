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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cairn_protocol::namespace::{NsPath, Timestamp};
use serde::{Deserialize, Serialize};

/// A closed file waiting for its commit, as recorded on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub path: String,
    pub mode: u32,
    pub secs: i64,
    pub nanos: u32,
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
}

/// The cache directory and the files in it, by inode.
#[derive(Debug)]
pub struct Cache {
    /// Held (an exclusive `flock`) while the mount runs: a second mount
    /// on the same cache would take the first one's files for leftovers.
    _lock: nix::fcntl::Flock<File>,
    dir: PathBuf,
    files: HashMap<u64, Cached>,
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
                        Some(r) if data.exists() => out.push((data, r)),
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
    ) -> std::io::Result<()> {
        let c = self
            .files
            .get(&ino)
            .ok_or_else(|| std::io::Error::other("not cached"))?;
        c.file.sync_all()?;
        let record = Record {
            path: path.to_string(),
            mode,
            secs: mtime.secs,
            nanos: mtime.nanos,
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
    pub fn unrecord(&self, ino: u64) {
        if let Some(c) = self.files.get(&ino) {
            let _ = std::fs::remove_file(c.data.with_extension("json"));
        }
    }

    /// Deletes a cached file and its record.
    pub fn drop_file(&mut self, ino: u64) {
        if let Some(c) = self.files.remove(&ino) {
            let _ = std::fs::remove_file(c.data.with_extension("json"));
            let _ = std::fs::remove_file(&c.data);
        }
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
        for c in self.files.values_mut() {
            c.staged = false;
        }
    }

    /// Bytes on local disk.
    pub fn bytes(&self) -> u64 {
        self.files
            .values()
            .filter_map(|c| c.file.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Inodes with open or uncommitted files.
    pub fn inodes(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }
}
