//! Uploading a file while it is still being written.
//!
//! A cache file written from its start, each write appending, and grown
//! past the pack limit gets a [`Stream`]: a background upload whose reader
//! ([`Tail`]) follows the cache file, blocking until more bytes are
//! written or the file is finished. Segments are encoded and stored on the
//! nodes while the writer goes on, so at `close` or `fsync` only the last
//! segments and the manifest are left to send. Bytes the reader has taken
//! can leave the local disk ([`Stream::releasable`]): that is how a file
//! larger than the cache is written with the cache bound kept.
//!
//! A file whose bytes left the disk and whose upload was finished while it
//! stays open (a read of those bytes needs an object to read them from,
//! and so does `fsync`) is uploaded again from the start once it is
//! written again: the new upload reads the bytes gone from the disk back
//! from the finished object ([`Prefix`]), the rest from the cache file.
//!
//! A write or truncate below what the reader has taken would change bytes
//! already on their way; the caller then cancels the stream
//! ([`Stream::abort`]) and the file is uploaded at close, from the cache,
//! as any file written out of order.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cairn_client::{Client, Error, PutOptions, PutReport};
use cairn_protocol::Capability;
use tokio::task::JoinHandle;

/// How far the writer and the reader are.
#[derive(Debug, Default)]
struct Marks {
    /// Bytes of the file written so far (its length).
    written: u64,
    /// Bytes the upload has read.
    taken: u64,
    /// No more bytes will come: the reader ends at `written`.
    finished: bool,
    /// The stream is cancelled: the reader fails.
    aborted: bool,
}

#[derive(Debug, Default)]
struct Shared {
    marks: Mutex<Marks>,
    moved: Condvar,
}

impl Shared {
    fn marks(&self) -> MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes a file's earlier upload holds (the start of a file whose bytes
/// left the disk), read back over the network.
pub struct Prefix {
    pub client: &'static Client,
    pub capability: Capability,
    /// Bytes from the start read from it.
    pub len: u64,
    pub rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefix")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Bytes of the prefix fetched per range read.
const PREFIX_READ: u64 = 8 << 20;

impl Prefix {
    /// Fills `buf` from byte `at` (below `len`); runs on the upload's
    /// blocking thread.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - at).min(buf.len() as u64).min(PREFIX_READ);
        let bytes = self
            .rt
            .block_on(self.client.get_range(&self.capability, at, n))
            .map_err(std::io::Error::other)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if bytes.len() != n {
            return Err(std::io::Error::other(format!(
                "the earlier upload gave {} bytes instead of {n}",
                bytes.len()
            )));
        }
        buf[..n].copy_from_slice(&bytes);
        Ok(n)
    }
}

/// The upload's reader: the prefix, if any, then the cache file up to
/// what is written.
struct Tail {
    file: File,
    prefix: Option<Prefix>,
    shared: Arc<Shared>,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut m = self.shared.marks();
        loop {
            if m.aborted {
                return Err(std::io::Error::other(
                    "the file was rewritten while uploading",
                ));
            }
            if let Some(prefix) = self.prefix.as_ref().filter(|p| m.taken < p.len) {
                // Not under the lock: no write reaches these bytes.
                let at = m.taken;
                drop(m);
                let n = prefix.read_at(at, buf)?;
                m = self.shared.marks();
                if m.aborted {
                    continue;
                }
                m.taken += n as u64;
                self.shared.moved.notify_all();
                return Ok(n);
            }
            if m.taken < m.written {
                let n = usize::try_from(m.written - m.taken)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                // Read under the lock: a write to these bytes waits for it.
                self.file.read_exact_at(&mut buf[..n], m.taken)?;
                m.taken += n as u64;
                self.shared.moved.notify_all();
                return Ok(n);
            }
            if m.finished {
                return Ok(0);
            }
            m = self.shared.moved.wait(m).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A background upload of one cache file.
#[derive(Debug)]
pub struct Stream {
    shared: Arc<Shared>,
    task: JoinHandle<Result<PutReport, Error>>,
}

impl Stream {
    /// Starts uploading `file` (already `written` bytes long) on `rt`;
    /// its first bytes from `prefix` instead, if given.
    pub fn start(
        client: &'static Client,
        file: File,
        written: u64,
        rt: &tokio::runtime::Handle,
        prefix: Option<Prefix>,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        shared.marks().written = written;
        let tail = Tail {
            file,
            prefix,
            shared: shared.clone(),
        };
        let task = rt.spawn(async move {
            client
                .put_reader(Box::new(tail), written, &PutOptions::default())
                .await
        });
        Self { shared, task }
    }

    /// Writes `data` at `offset` into `file` (the cache file) and moves
    /// the mark. `false`: the write falls below what the upload has read,
    /// nothing was written, and the stream must be aborted.
    pub fn write(&self, file: &File, offset: u64, data: &[u8]) -> std::io::Result<bool> {
        let mut m = self.shared.marks();
        if offset < m.taken {
            return Ok(false);
        }
        file.write_all_at(data, offset)?;
        m.written = m.written.max(offset + data.len() as u64);
        self.shared.moved.notify_all();
        Ok(true)
    }

    /// Sets the file's length; `false` as for [`Self::write`].
    pub fn set_len(&self, file: &File, len: u64) -> std::io::Result<bool> {
        let mut m = self.shared.marks();
        if len < m.taken {
            return Ok(false);
        }
        file.set_len(len)?;
        m.written = len;
        self.shared.moved.notify_all();
        Ok(true)
    }

    /// Bytes from the start the upload has read: they need not stay on disk.
    pub fn releasable(&self) -> u64 {
        self.shared.marks().taken
    }

    /// Whether the writer is ahead of the upload (waiting frees room).
    pub fn behind(&self) -> bool {
        let m = self.shared.marks();
        m.taken < m.written
    }

    /// Waits (at most `limit`) for the upload to read more.
    pub fn wait_taken(&self, limit: Duration) {
        let m = self.shared.marks();
        let before = m.taken;
        let _ = self
            .shared
            .moved
            .wait_timeout_while(m, limit, |m| m.taken == before && !m.aborted);
    }

    /// No more bytes: the upload ends at the file's length. Returns its
    /// report once the manifest is stored.
    pub async fn finish(mut self) -> Result<PutReport, Error> {
        {
            let mut m = self.shared.marks();
            m.finished = true;
            self.shared.moved.notify_all();
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io {
                context: "the background upload stopped".into(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Cancels the upload (what it stored is left unpaid, as an
    /// interrupted `put`).
    pub fn abort(self) {}
}

impl Drop for Stream {
    /// A stream dropped unfinished must not leave its reader waiting.
    fn drop(&mut self) {
        let mut m = self.shared.marks();
        if !m.finished {
            m.aborted = true;
        }
        self.shared.moved.notify_all();
    }
}
