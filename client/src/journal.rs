//! The upload journal: what an interrupted `put` already stored.
//!
//! One file per upload of a path, under `state_dir/uploads/`, named by a
//! hash of the path, its size and modification time and the coding
//! settings, so running the same `put` again finds it and a changed file
//! starts afresh. The first line is a JSON header; every shard a node
//! acknowledged adds one JSON line. A line torn by a crash is ignored (that
//! shard is simply sent again).
//!
//! The header holds no secret: the file key is derived from the account key
//! and the header's random nonce, and encryption is deterministic given the
//! key, so a resumed upload produces the very same shards and ids.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

const VERSION: u32 = 1;

/// Identifies the upload: the same file, unchanged, with the same settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadIdentity {
    pub path: String,
    pub size: u64,
    pub modified_ns: u128,
    pub k: u16,
    pub m: u16,
    pub segment_size: u64,
}

/// The journal's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub identity: UploadIdentity,
    /// Random per upload; with the account key it gives the file key.
    pub nonce: String,
    /// Random per upload: ranks the nodes for the shard columns.
    pub placement_seed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Segment.
    s: u64,
    /// Shard within the segment.
    j: u16,
    /// The node that acknowledged it (peer id text).
    n: String,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    pub header: Header,
    /// Shards acknowledged by an earlier run: (segment, shard) → peer id.
    done: HashMap<(u64, u16), String>,
}

impl Journal {
    /// The journal file for `identity` under `state_dir`.
    pub fn path_for(state_dir: &Path, identity: &UploadIdentity) -> PathBuf {
        let text = serde_json::to_string(identity)
            .unwrap_or_else(|e| unreachable!("identity serializes: {e}"));
        let name = blake3::hash(text.as_bytes()).to_hex();
        state_dir
            .join("uploads")
            .join(format!("{}.journal", &name[..32]))
    }

    /// Opens the journal for `identity`, or starts one with `fresh()`'s
    /// header. A journal for a different identity, or unreadable, is
    /// replaced.
    pub fn open_or_create(
        state_dir: &Path,
        identity: &UploadIdentity,
        fresh: impl FnOnce() -> Header,
    ) -> Result<Self, Error> {
        let path = Self::path_for(state_dir, identity);
        if let Ok(file) = File::open(&path) {
            match Self::read(&path, file, identity) {
                Ok(journal) => return Ok(journal),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "starting the upload afresh");
                }
            }
        }
        let header = fresh();
        let dir = path.parent().unwrap_or(state_dir);
        std::fs::create_dir_all(dir).map_err(Error::io("creating the upload journal directory"))?;
        let mut line = serde_json::to_string(&header)
            .unwrap_or_else(|e| unreachable!("header serializes: {e}"));
        line.push('\n');
        let tmp = path.with_extension("tmp");
        write_private(&tmp, line.as_bytes())
            .map_err(Error::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("installing the upload journal"))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io("opening the upload journal"))?;
        Ok(Self {
            path,
            file,
            header,
            done: HashMap::new(),
        })
    }

    fn read(path: &Path, file: File, identity: &UploadIdentity) -> Result<Self, String> {
        let mut lines = BufReader::new(file).lines();
        let first = lines
            .next()
            .ok_or("empty journal")?
            .map_err(|e| e.to_string())?;
        let header: Header = serde_json::from_str(&first).map_err(|e| e.to_string())?;
        if header.version != VERSION {
            return Err(format!("journal version {}", header.version));
        }
        if &header.identity != identity {
            return Err("the journal is for another version of the file".into());
        }
        let mut done = HashMap::new();
        for line in lines {
            let Ok(line) = line else { break };
            // A torn last line from a crash: everything before it stands.
            let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
                break;
            };
            done.insert((entry.s, entry.j), entry.n);
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            header,
            done,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shards an earlier run stored: (segment, shard) → peer id text.
    pub fn done(&self) -> &HashMap<(u64, u16), String> {
        &self.done
    }

    /// Records an acknowledged shard (buffered by the OS; see [`Self::sync`]).
    pub fn record(&mut self, segment: u64, shard: u16, peer: &str) -> Result<(), Error> {
        let mut line = serde_json::to_string(&Entry {
            s: segment,
            j: shard,
            n: peer.to_string(),
        })
        .unwrap_or_else(|e| unreachable!("entry serializes: {e}"));
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| self.error(e))
    }

    /// Makes every recorded line durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(|e| self.error(e))
    }

    /// The upload finished: the journal goes.
    pub fn remove(self) -> Result<(), Error> {
        std::fs::remove_file(&self.path).map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::Journal {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> UploadIdentity {
        UploadIdentity {
            path: "/x".into(),
            size: 10,
            modified_ns: 5,
            k: 3,
            m: 2,
            segment_size: 1 << 20,
        }
    }

    fn header() -> Header {
        Header {
            version: VERSION,
            identity: identity(),
            nonce: "aa".into(),
            placement_seed: "bb".into(),
        }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_line_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open_or_create(tmp.path(), &identity(), header).unwrap();
        j.record(0, 1, "peerA").unwrap();
        j.record(2, 0, "peerB").unwrap();
        j.sync().unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"s\":3,\"j\":").unwrap();
        let j = Journal::open_or_create(tmp.path(), &identity(), || unreachable!()).unwrap();
        assert_eq!(j.done().len(), 2);
        assert_eq!(j.done()[&(2, 0)], "peerB");
        assert_eq!(j.header.nonce, "aa");
    }

    #[test]
    fn a_changed_file_starts_afresh() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open_or_create(tmp.path(), &identity(), header).unwrap();
        j.record(0, 1, "peerA").unwrap();
        let mut changed = identity();
        changed.modified_ns = 6;
        let fresh = Journal::open_or_create(tmp.path(), &changed, || Header {
            identity: changed.clone(),
            ..header()
        })
        .unwrap();
        assert!(fresh.done().is_empty());
        // and garbage in place of a journal is replaced, not trusted
        std::fs::write(Journal::path_for(tmp.path(), &identity()), b"garbage").unwrap();
        let j = Journal::open_or_create(tmp.path(), &identity(), header).unwrap();
        assert!(j.done().is_empty());
    }
}
