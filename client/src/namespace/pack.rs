//! Getting local files into the tree: inline, packed, or on their own.
//!
//! A file of at most [`NsOptions::inline_max`](super::NsOptions) bytes goes
//! into its directory object. One of at most `pack_file_max` bytes enters
//! the tree as inline data too, for now: it can be read, moved, renamed and
//! changed like any entry. Before directories are written (at commit, or
//! once such files hold `pack_target` bytes) [`Namespace::pack`] gathers
//! them from the changed directories, stores them concatenated as pack
//! objects and points each entry at its range. Larger files are uploaded
//! on their own (resumable, as `cairn put`).

use std::collections::HashMap;
use std::path::Path;

use cairn_protocol::namespace::directory::MODE_MASK;
use cairn_protocol::namespace::{Entry, EntryKind, FileData, NsPath, ObjectRef, Timestamp};

use super::batch::Op;
use super::tree::{path_of, DirState};
use super::{objects, Namespace, NsError};
use crate::upload::{PlacedShard, PutReport};
use crate::PutOptions;
use cairn_protocol::Capability;

/// The time and permission bits of local metadata.
pub(crate) fn local_times(meta: &std::fs::Metadata) -> (u32, Timestamp) {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & MODE_MASK;
    let mtime = Timestamp {
        secs: meta.mtime(),
        nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
    };
    (mode, mtime)
}

impl Namespace<'_> {
    /// Adds the local file or symbolic link `local` at `dest` (parents are
    /// created). Returns its size.
    pub async fn put_file(&mut self, local: &Path, dest: &NsPath) -> Result<u64, NsError> {
        let what = || format!("cannot read {}", local.display());
        let meta = std::fs::symlink_metadata(local).map_err(NsError::io(what()))?;
        let (mode, mtime) = local_times(&meta);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(local).map_err(NsError::io(what()))?;
            let target = target.to_string_lossy().into_owned();
            let size = target.len() as u64;
            let entry = Entry {
                kind: EntryKind::Symlink(target),
                mode: 0o777,
                mtime,
            };
            self.put_entry(dest, entry).await?;
            return Ok(size);
        }
        if !meta.is_file() {
            return Err(NsError::Io {
                context: what(),
                source: std::io::Error::other("not a regular file or link"),
            });
        }
        self.put_local(local, dest, mode, mtime).await
    }

    /// Adds the local regular file `local` at `dest` with these permission
    /// bits and time (the mount's write-back cache keeps its own). Returns
    /// its size.
    pub async fn put_local(
        &mut self,
        local: &Path,
        dest: &NsPath,
        mode: u32,
        mtime: Timestamp,
    ) -> Result<u64, NsError> {
        let what = || format!("cannot read {}", local.display());
        let size = std::fs::metadata(local).map_err(NsError::io(what()))?.len();
        if size <= self.options.pack_file_max {
            let bytes = std::fs::read(local).map_err(NsError::io(what()))?;
            let size = bytes.len() as u64;
            self.put_bytes(dest, bytes, mode, mtime).await?;
            return Ok(size);
        }
        // Refuse before uploading what could not be put there.
        if self.stat(dest).await?.is_some_and(|e| e.is_dir()) {
            return Err(NsError::IsADirectory(dest.clone()));
        }
        let report = self.client.put_path(local, &PutOptions::default()).await?;
        self.stored.add(&report);
        let entry = Entry {
            kind: EntryKind::File {
                size: report.size_bytes,
                data: FileData::Object(ObjectRef::from(&report.capability)),
            },
            mode: mode & MODE_MASK,
            mtime,
        };
        self.put_entry(dest, entry).await?;
        Ok(report.size_bytes)
    }

    /// Adds a file already uploaded (`report`, as [`crate::Client::put_reader`]
    /// returns it) at `dest`; its shards join the batch's deal and its
    /// segments the deal's repair data.
    pub async fn put_uploaded(
        &mut self,
        dest: &NsPath,
        report: &PutReport,
        mode: u32,
        mtime: Timestamp,
    ) -> Result<(), NsError> {
        self.check_not_dir(dest).await?;
        self.stored.add(report);
        self.link_uploaded(dest, &report.capability, report.size_bytes, mode, mtime)
            .await
    }

    /// Adds a file uploaded before a crash, known only by its capability
    /// and where its shards went: they join the batch's deal, but its
    /// segments are not in the deal's repair data (the record does not
    /// keep them), so strangers cannot repair this one file.
    pub async fn put_replayed(
        &mut self,
        dest: &NsPath,
        capability: &Capability,
        size: u64,
        placement: &[PlacedShard],
        mode: u32,
        mtime: Timestamp,
    ) -> Result<(), NsError> {
        self.check_not_dir(dest).await?;
        self.stored.add_copies(placement.iter().copied());
        self.link_uploaded(dest, capability, size, mode, mtime)
            .await
    }

    async fn check_not_dir(&mut self, dest: &NsPath) -> Result<(), NsError> {
        if self.stat(dest).await?.is_some_and(|e| e.is_dir()) {
            return Err(NsError::IsADirectory(dest.clone()));
        }
        Ok(())
    }

    async fn link_uploaded(
        &mut self,
        dest: &NsPath,
        capability: &Capability,
        size: u64,
        mode: u32,
        mtime: Timestamp,
    ) -> Result<(), NsError> {
        let entry = Entry {
            kind: EntryKind::File {
                size,
                data: FileData::Object(ObjectRef::from(capability)),
            },
            mode: mode & MODE_MASK,
            mtime,
        };
        self.put_entry(dest, entry).await
    }

    /// Adds a file with these contents at `dest`.
    pub async fn put_bytes(
        &mut self,
        dest: &NsPath,
        bytes: Vec<u8>,
        mode: u32,
        mtime: Timestamp,
    ) -> Result<(), NsError> {
        let size = bytes.len() as u64;
        if self.stat(dest).await?.is_some_and(|e| e.is_dir()) {
            return Err(NsError::IsADirectory(dest.clone()));
        }
        let data = if size <= self.options.pack_file_max {
            if size > self.options.inline_max {
                self.unpacked += size;
            }
            FileData::Inline(bytes)
        } else {
            let report = objects::put_bytes(self.client, bytes).await?;
            self.stored.add(&report);
            FileData::Object(ObjectRef::from(&report.capability))
        };
        let entry = Entry {
            kind: EntryKind::File { size, data },
            mode: mode & MODE_MASK,
            mtime,
        };
        self.put_entry(dest, entry).await?;
        if self.unpacked >= self.options.pack_target {
            self.pack().await?;
        }
        Ok(())
    }

    /// Packs every inline file larger than `inline_max` in the changed
    /// directories: pack objects of about `pack_target` bytes, each file's
    /// entry pointed at its range.
    pub(crate) async fn pack(&mut self) -> Result<(), NsError> {
        let mut found = Vec::new();
        collect_unpacked(
            &self.tree.root,
            &mut Vec::new(),
            self.options.inline_max,
            &mut found,
        );
        let mut start = 0;
        while start < found.len() {
            let mut bytes = Vec::new();
            let mut end = start;
            while end < found.len()
                && (end == start || (bytes.len() as u64) < self.options.pack_target)
            {
                bytes.extend_from_slice(&found[end].2);
                end += 1;
            }
            let report = objects::put_bytes(self.client, bytes).await?;
            self.stored.add(&report);
            let pack = ObjectRef::from(&report.capability);
            let mut offset = 0u64;
            let mut moved = HashMap::new();
            for (dir, name, data) in &found[start..end] {
                let size = data.len() as u64;
                let packed = EntryKind::File {
                    size,
                    data: FileData::Packed {
                        pack: pack.clone(),
                        offset,
                    },
                };
                if let Some(e) = self
                    .tree
                    .dir_mut(dir)
                    .and_then(|d| d.dir.entries.get_mut(name))
                {
                    e.kind = packed.clone();
                }
                moved.insert(path_of(dir).join(name)?, (data.as_slice(), packed));
                offset += size;
            }
            start = end;
            self.forget_packed_bytes(&moved);
        }
        self.unpacked = 0;
        Ok(())
    }
}

impl Namespace<'_> {
    /// Points the batch's records of just-packed files at their packs, so
    /// the bytes are held once (by the pack object on the nodes), not
    /// again in the log kept for a replay.
    fn forget_packed_bytes(&mut self, moved: &HashMap<NsPath, (&[u8], EntryKind)>) {
        for record in &mut self.log {
            if let Op::Put { path, entry } = &mut record.op {
                if let (
                    Some((bytes, packed)),
                    EntryKind::File {
                        data: FileData::Inline(inline),
                        ..
                    },
                ) = (moved.get(path), &entry.kind)
                {
                    if inline.as_slice() == *bytes {
                        entry.kind = packed.clone();
                    }
                }
            }
        }
    }
}

/// (directory, name, bytes) of every inline file above `inline_max` in the
/// dirty part of the tree.
fn collect_unpacked(
    state: &DirState,
    at: &mut Vec<String>,
    inline_max: u64,
    out: &mut Vec<(Vec<String>, String, Vec<u8>)>,
) {
    if !state.dirty {
        return;
    }
    for (name, e) in &state.dir.entries {
        if let EntryKind::File {
            data: FileData::Inline(bytes),
            ..
        } = &e.kind
        {
            if bytes.len() as u64 > inline_max {
                out.push((at.clone(), name.clone(), bytes.clone()));
            }
        }
    }
    for (name, child) in &state.children {
        at.push(name.clone());
        collect_unpacked(child, at, inline_max, out);
        at.pop();
    }
}
