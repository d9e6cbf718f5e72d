//! What the mount knows: the namespace batch, inode numbers, the
//! write-back cache; and the operations the file system maps onto them.

use std::os::unix::fs::FileExt;

use bytes::Bytes;

use cairn_protocol::namespace::{Entry, EntryKind, FileData, NsPath, Timestamp};

use super::cache::{Base, Cache, Cached, Uploaded};
use super::fs::errno;
use super::inodes::Inodes;
use super::readahead::{range_reads, ReadAhead};
use super::status::Status;
use super::stream::{Prefix, Stream};
use cairn_client::namespace::{Namespace, NsError};
use cairn_client::{Client, GetOptions};

type Errno = i32;

/// Everything behind the mount, under one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub ns: Namespace<'static>,
    pub client: &'static Client,
    /// Where background uploads run.
    pub rt: tokio::runtime::Handle,
    pub inodes: Inodes,
    pub cache: Cache,
    pub read_only: bool,
    /// The cache's bound in bytes of local disk: past it, writers wait
    /// for streamed bytes to leave it, and closing a file commits.
    pub cache_max: u64,
    pub status: Status,
    /// Times set explicitly on cached files (by `utimens`), kept until the
    /// file is put into the batch.
    pub times: std::collections::HashMap<u64, Timestamp>,
    /// Read-ahead of files read in order.
    pub ahead: ReadAhead,
    /// Files another device replaced or removed while a handle had them
    /// open: their inode left the path (a new lookup gets a new one) and
    /// reads through it go on from the entry it had, until the last close
    /// ([`super::poll`]).
    pub pinned: std::collections::HashMap<u64, Entry>,
}

fn io(e: std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Before a write at or past `released` to a file whose bytes left the
/// disk and whose upload finished (a read or `fsync` needed the object):
/// a new upload from the start, reading what left the disk back from
/// that object.
fn resume_upload(
    c: &mut Cached,
    client: &'static Client,
    rt: &tokio::runtime::Handle,
) -> Result<(), Errno> {
    if c.stream.is_some() || c.released == 0 {
        return Ok(());
    }
    let Some(base) = &c.base else {
        return Err(libc::EIO);
    };
    let prefix = Prefix {
        client,
        capability: base.report.capability.clone(),
        len: c.released,
        rt: rt.clone(),
    };
    let written = c.file.metadata().map_err(io)?.len();
    let file = c.file.try_clone().map_err(io)?;
    c.stream = Some(Stream::start(client, file, written, rt, Some(prefix)));
    c.dirty = true;
    Ok(())
}

impl State {
    fn path(&self, ino: u64) -> Result<NsPath, Errno> {
        self.inodes.path(ino).cloned().ok_or(libc::ENOENT)
    }

    /// The time to show for `ino`: one set by `utimens` on a file still
    /// being written wins over the tree's.
    pub fn mtime(&self, ino: u64, entry: &Entry) -> Timestamp {
        self.times.get(&ino).copied().unwrap_or(entry.mtime)
    }

    /// Whether nothing local waits for a commit: no recorded change, and
    /// no file in the write-back cache (open for writing, or closed and
    /// not committed). Only then may the tree be swapped for a newer one:
    /// a cached file was copied from the tree as it was, and its put must
    /// be recorded against that tree for the commit to see a conflict.
    pub fn idle(&self) -> bool {
        !self.ns.has_changes() && self.cache.inodes().is_empty()
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.read_only {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }

    async fn entry(&mut self, path: &NsPath) -> Result<Entry, Errno> {
        match self.ns.stat(path).await {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(libc::ENOENT),
            Err(e) => Err(errno(&e)),
        }
    }

    pub async fn mkdir(&mut self, path: &NsPath, mode: u32) -> Result<Entry, Errno> {
        self.writable()?;
        self.ns.mkdir(path, false).await.map_err(|e| errno(&e))?;
        if mode != 0o755 {
            self.ns
                .set_meta(path, mode, Timestamp::now())
                .await
                .map_err(|e| errno(&e))?;
        }
        self.entry(path).await
    }

    pub async fn create_entry(&mut self, path: &NsPath, entry: Entry) -> Result<(), Errno> {
        self.writable()?;
        if self.ns.stat(path).await.map_err(|e| errno(&e))?.is_some() {
            return Err(libc::EEXIST);
        }
        self.ns.put_entry(path, entry).await.map_err(|e| errno(&e))
    }

    /// A new, empty file, open for writing.
    pub async fn create_file(
        &mut self,
        ino: u64,
        path: &NsPath,
        mode: u32,
    ) -> Result<Entry, Errno> {
        self.writable()?;
        let entry = Entry {
            kind: EntryKind::File {
                size: 0,
                data: FileData::Inline(Vec::new()),
            },
            mode,
            mtime: Timestamp::now(),
        };
        match self.ns.stat(path).await.map_err(|e| errno(&e))? {
            Some(e) if e.is_dir() => return Err(libc::EISDIR),
            _ => {}
        }
        self.ns
            .put_entry(path, entry.clone())
            .await
            .map_err(|e| errno(&e))?;
        let c = self.cache.create(ino).map_err(io)?;
        c.open = 1;
        c.dirty = true;
        self.ahead.forget(ino);
        self.ahead.opened(ino);
        Ok(entry)
    }

    pub async fn remove(&mut self, path: &NsPath, dir: bool) -> Result<(), Errno> {
        self.writable()?;
        let entry = self.entry(path).await?;
        if entry.is_dir() != dir {
            return Err(if dir { libc::ENOTDIR } else { libc::EISDIR });
        }
        self.ns.remove(path, false).await.map_err(|e| errno(&e))?;
        let ino = self.inodes.ino(path);
        // An open file keeps its cache (reads go on) but is no longer
        // recorded for recovery: its name is gone.
        match self.cache.get(ino).map(|c| c.open) {
            Some(0) => self.cache.drop_file(ino),
            Some(_) => self.cache.unrecord(ino),
            None => {}
        }
        self.inodes.remove(path);
        Ok(())
    }

    pub async fn rename(&mut self, from: &NsPath, to: &NsPath) -> Result<(), Errno> {
        self.writable()?;
        self.ns
            .rename_exact(from, to)
            .await
            .map_err(|e| errno(&e))?;
        let replaced = self.inodes.ino(to);
        if self.cache.get(replaced).is_some() && self.inodes.path(replaced) == Some(to) {
            self.cache.drop_file(replaced);
        }
        self.inodes.rename(from, to);
        Ok(())
    }

    /// Makes sure `ino` is in the cache with its current contents.
    async fn cached(&mut self, ino: u64, truncate: bool) -> Result<(), Errno> {
        if self.cache.get(ino).is_some() {
            if truncate {
                let c = self.cache.get_mut(ino).ok_or(libc::EIO)?;
                // Emptied: wholly local again, and a new stream may start.
                if let Some(s) = c.stream.take() {
                    s.abort();
                }
                c.file.set_len(0).map_err(io)?;
                c.dirty = true;
                c.seq = true;
                c.released = 0;
                c.base = None;
            }
            return Ok(());
        }
        let path = self.path(ino)?;
        let entry = self.entry(&path).await?;
        let EntryKind::File { size, data } = &entry.kind else {
            return Err(libc::EISDIR);
        };
        let data_path = self.cache.create(ino).map_err(io)?.data.clone();
        if truncate || *size == 0 {
            if truncate {
                if let Some(c) = self.cache.get_mut(ino) {
                    c.dirty = true;
                }
            }
            return Ok(());
        }
        if let Some(c) = self.cache.get_mut(ino) {
            c.seq = false;
        }
        match data {
            FileData::Object(o) => {
                let options = GetOptions {
                    progress: None,
                    overwrite: true,
                };
                self.ns
                    .client()
                    .get_to_path(&o.capability(), &data_path, &options)
                    .await
                    .map_err(|e| errno(&NsError::from(e)))?;
                // The download replaced the file: reopen it.
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&data_path)
                    .map_err(io)?;
                if let Some(c) = self.cache.get_mut(ino) {
                    c.file = file;
                }
            }
            _ => {
                let bytes = self.ns.read_all(&entry).await.map_err(|e| errno(&e))?;
                let c = self.cache.get_mut(ino).ok_or(libc::EIO)?;
                c.file.write_all_at(&bytes, 0).map_err(io)?;
            }
        }
        Ok(())
    }

    pub async fn open(&mut self, ino: u64, write: bool, truncate: bool) -> Result<(), Errno> {
        if write {
            // Its reads come from the cache from now on.
            self.ahead.forget(ino);
            self.writable()?;
            self.cached(ino, truncate).await?;
            self.cache.unrecord(ino);
        }
        if let Some(c) = self.cache.get_mut(ino) {
            c.open += 1;
        }
        self.ahead.opened(ino);
        Ok(())
    }

    /// Bytes of `ino` at `offset`: from the cache when it is being
    /// written, else range reads from the network, ahead of a reader that
    /// reads in order ([`ReadAhead`]).
    pub async fn read(&mut self, ino: u64, offset: u64, size: u32) -> Result<Bytes, Errno> {
        if let Some(c) = self.cache.get(ino) {
            if c.released == 0 || offset >= c.released {
                return self
                    .cache
                    .read(ino, offset, size as usize)
                    .map(Bytes::from)
                    .map_err(io);
            }
            return self.read_uploaded(ino, offset, size).await.map(Bytes::from);
        }
        let entry = match self.pinned.get(&ino) {
            Some(e) => e.clone(),
            None => {
                let path = self.path(ino)?;
                // The tree is loaded up to this file (the kernel looked it up).
                self.ns.peek(&path).ok_or(libc::ENOENT)?
            }
        };
        let end = offset.saturating_add(u64::from(size)).min(entry.size());
        if offset >= end {
            return Ok(Bytes::new());
        }
        let object = match &entry.kind {
            EntryKind::File {
                data: FileData::Object(o),
                ..
            } => Some((o.capability(), 0)),
            EntryKind::File {
                data: FileData::Packed { pack, offset },
                ..
            } => Some((pack.capability(), *offset)),
            _ => None,
        };
        match object {
            Some((cap, base)) if self.ahead.enabled() => {
                let client = self.client;
                self.ahead
                    .read(
                        ino,
                        &entry,
                        entry.size(),
                        || range_reads(client, cap, base),
                        offset,
                        end,
                    )
                    .await
                    .map_err(|e| errno(&NsError::from(e)))
            }
            _ => self
                .ns
                .read_range(&entry, offset, end - offset)
                .await
                .map(Bytes::from)
                .map_err(|e| errno(&e)),
        }
    }

    /// Bytes of a cached file from below `released` (they left the disk):
    /// from the file's last finished upload, finishing the running one
    /// first when that one holds bytes written since; the rest from the cache.
    async fn read_uploaded(&mut self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let client = self.client;
        let c = self.cache.get_mut(ino).ok_or(libc::EIO)?;
        let len = c.file.metadata().map_err(io)?.len();
        let end = offset.saturating_add(u64::from(size)).min(len);
        let upto = end.min(c.released);
        if c.base.as_ref().is_none_or(|b| upto > b.valid) {
            let Some(stream) = c.stream.take() else {
                tracing::warn!("bytes of a file open for writing left the cache unread");
                return Err(libc::EIO);
            };
            match stream.finish().await {
                Ok(report) => {
                    c.base = Some(Base {
                        report,
                        valid: c.released,
                    });
                }
                Err(e) => {
                    tracing::warn!("the upload of a file larger than the cache failed: {e}");
                    self.status.last_error = Some(e.to_string());
                    return Err(libc::EIO);
                }
            }
        }
        let cap = c.base.as_ref().ok_or(libc::EIO)?.report.capability.clone();
        let mut out = client
            .get_range(&cap, offset, upto - offset)
            .await
            .map_err(|e| errno(&NsError::from(e)))?;
        if end > upto {
            let rest = usize::try_from(end - upto).unwrap_or(usize::MAX);
            out.extend(self.cache.read(ino, upto, rest).map_err(io)?);
        }
        Ok(out)
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.make_room(data.len() as u64);
        let stream_after = self.ns.options().pack_file_max;
        let c = self.cache.get_mut(ino).ok_or(libc::EBADF)?;
        self.times.remove(&ino);
        if offset >= c.released {
            resume_upload(c, self.client, &self.rt)?;
        }
        if let Some(s) = &c.stream {
            if s.write(&c.file, offset, data).map_err(io)? {
                c.dirty = true;
                return Ok(());
            }
            // Below what the upload read: upload at close instead (an
            // earlier finished upload is not the file any more either).
            if let Some(s) = c.stream.take() {
                s.abort();
            }
            c.base = None;
            c.seq = false;
        }
        if c.released > 0 {
            tracing::warn!(
                "a file larger than the cache was rewritten where it had left the cache"
            );
            return Err(libc::EIO);
        }
        let len = c.file.metadata().map_err(io)?.len();
        if offset != len {
            c.seq = false;
        }
        c.file.write_all_at(data, offset).map_err(io)?;
        c.dirty = true;
        let end = offset + data.len() as u64;
        if c.seq && c.stream.is_none() && end > stream_after {
            let file = c.file.try_clone().map_err(io)?;
            c.stream = Some(Stream::start(self.client, file, end, &self.rt, None));
        }
        Ok(())
    }

    /// Waits until `need` more bytes fit in the cache's bound, freeing
    /// what streams have read; returns early when nothing more can be
    /// freed now (closed files leave the cache only through a commit).
    fn make_room(&mut self, need: u64) {
        while self.cache.bytes() + need > self.cache_max {
            if self.cache.release_taken() > 0 {
                continue;
            }
            match self.cache.stream_behind() {
                Some(s) => s.wait_taken(std::time::Duration::from_millis(200)),
                None => return,
            }
        }
    }

    pub async fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        size: Option<u64>,
        mtime: Option<Timestamp>,
    ) -> Result<Entry, Errno> {
        let path = self.path(ino)?;
        if mode.is_some() || size.is_some() || mtime.is_some() {
            self.writable()?;
        }
        if let Some(size) = size {
            self.cached(ino, false).await?;
            let c = self.cache.get_mut(ino).ok_or(libc::EIO)?;
            if size >= c.released {
                resume_upload(c, self.client, &self.rt)?;
            }
            let mut done = false;
            if let Some(s) = &c.stream {
                done = s.set_len(&c.file, size).map_err(io)?;
                if !done {
                    if let Some(s) = c.stream.take() {
                        s.abort();
                    }
                    c.base = None;
                    c.seq = false;
                }
            }
            if !done {
                if c.released > 0 {
                    return Err(libc::EIO);
                }
                if c.file.metadata().map_err(io)?.len() != size {
                    c.seq = false;
                }
                c.file.set_len(size).map_err(io)?;
            }
            c.dirty = true;
            if c.open == 0 {
                // truncate(2) on a closed file: put it back now.
                self.stage(ino).await?;
            }
        }
        if mode.is_some() || mtime.is_some() {
            let entry = self.entry(&path).await?;
            let mode = mode.map_or(entry.mode, |m| m & 0o7777);
            let mtime = mtime.unwrap_or(entry.mtime);
            if self.cache.get(ino).is_some_and(|c| c.dirty) {
                self.times.insert(ino, mtime);
            }
            self.ns
                .set_meta(&path, mode, mtime)
                .await
                .map_err(|e| errno(&e))?;
        }
        self.entry(&path).await
    }

    /// Puts a written cache file into the batch (recorded for recovery).
    pub async fn stage(&mut self, ino: u64) -> Result<(), Errno> {
        let Some(c) = self.cache.get(ino) else {
            return Ok(());
        };
        if !c.dirty {
            return Ok(());
        }
        let (data, open) = (c.data.clone(), c.open);
        let released = c.released;
        let Some(path) = self.inodes.path(ino).cloned() else {
            // Unlinked while open: its bytes die with the last handle.
            if open == 0 {
                self.cache.drop_file(ino);
            }
            return Ok(());
        };
        let entry = self.entry(&path).await?;
        let mtime = self.times.remove(&ino).unwrap_or_else(Timestamp::now);
        let finished = match self.cache.get_mut(ino) {
            Some(c) => match c.stream.take() {
                Some(stream) => Some(stream.finish().await),
                // Nothing written since the last upload finished: it is the file.
                None => c.base.as_ref().map(|b| Ok(b.report.clone())),
            },
            None => None,
        };
        if let Some(finished) = finished {
            match finished {
                Ok(report)
                    if report.size_bytes > self.ns.options().pack_file_max || released > 0 =>
                {
                    let object = Uploaded::of(&report);
                    self.cache
                        .record(ino, &path, entry.mode, mtime, Some(object))
                        .map_err(io)?;
                    self.ns
                        .put_uploaded(&path, &report, entry.mode, mtime)
                        .await
                        .map_err(|e| errno(&e))?;
                    self.status.staged += 1;
                    if open == 0 {
                        self.cache.forget_data(ino);
                    } else if let Some(c) = self.cache.get_mut(ino) {
                        c.dirty = false;
                        c.staged = true;
                        if released > 0 {
                            // Reads of what left the disk come from it now.
                            c.base = Some(Base {
                                report,
                                valid: released,
                            });
                        }
                    }
                    return Ok(());
                }
                // Truncated below the pack limit: packed from the cache.
                Ok(_) => {}
                Err(e) if released == 0 => {
                    tracing::warn!("background upload failed, uploading from the cache: {e}");
                }
                Err(e) => {
                    tracing::warn!("background upload of a file larger than the cache failed: {e}");
                    self.status.last_error = Some(e.to_string());
                    return Err(libc::EIO);
                }
            }
        }
        if released > 0 {
            // Bytes left the disk and no upload holds them.
            return Err(libc::EIO);
        }
        self.cache
            .record(ino, &path, entry.mode, mtime, None)
            .map_err(io)?;
        self.ns
            .put_local(&data, &path, entry.mode, mtime)
            .await
            .map_err(|e| errno(&e))?;
        if let Some(c) = self.cache.get_mut(ino) {
            c.dirty = false;
            c.staged = true;
        }
        self.status.staged += 1;
        Ok(())
    }

    pub async fn release(&mut self, ino: u64) -> Result<(), Errno> {
        self.ahead.closed(ino);
        if !self.ahead.is_open(ino) {
            self.pinned.remove(&ino);
        }
        let Some(c) = self.cache.get_mut(ino) else {
            return Ok(());
        };
        c.open = c.open.saturating_sub(1);
        if c.open > 0 {
            return Ok(());
        }
        if !c.dirty && !c.staged {
            // Opened for writing, never written: the tree has it already.
            self.cache.drop_file(ino);
            return Ok(());
        }
        self.stage(ino).await?;
        if self.cache.bytes() > self.cache_max {
            // The bound: closed files leave the cache only through a commit.
            self.commit().await.map_err(|e| errno(&e))?;
        }
        Ok(())
    }

    /// Stages `ino` (or nothing) and commits: returns once the commit is
    /// published.
    pub async fn fsync(&mut self, ino: Option<u64>) -> Result<(), Errno> {
        if self.read_only {
            return Ok(());
        }
        if let Some(ino) = ino {
            self.stage(ino).await?;
        }
        self.commit().await.map_err(|e| errno(&e))
    }

    /// Commits the batch, if anything changed, and frees the cache.
    pub async fn commit(&mut self) -> Result<(), NsError> {
        if !self.ns.has_changes() {
            return Ok(());
        }
        match self.ns.commit().await {
            Ok(report) => {
                self.cache.release_committed();
                self.status.committed(&report);
                Ok(())
            }
            Err(e) => {
                self.status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Stages every written file (at unmount: no handle is open any more).
    pub async fn stage_all(&mut self) -> Result<(), Errno> {
        for ino in self.cache.inodes() {
            self.stage(ino).await?;
        }
        Ok(())
    }
}
