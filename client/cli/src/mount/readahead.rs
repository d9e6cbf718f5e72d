//! Read-ahead for files read in order through the mount.
//!
//! `cairn get` keeps several segments in flight; a program reading the
//! mount asks for 128 KiB–1 MiB at a time, one request after the other,
//! and every request waits for the one before. So a file read in order
//! gets a *window*: contiguous chunks of it fetched concurrently ahead of
//! the reader, each a range read on a tokio task of its own. The window
//! grows from one chunk ahead to the budget while the reader keeps going
//! in order (as the kernel's own read-ahead ramps up), so a program that
//! reads a page and stops costs one small fetch, not the budget.
//!
//! A read outside the window (a seek) drops it, which cancels its
//! fetches, and starts a new one there; so does the last close of the
//! file. A fetch that failed is retried once, by the read that needs its
//! bytes: a read-ahead nobody reaches costs nothing, and its failure
//! fails no read.
//!
//! Memory: the chunks held or in flight, over every window, stay within
//! the budget (`--read-ahead`), plus the one chunk a read waits for when
//! the budget is spent; a range read in flight holds its ciphertext too,
//! so a chunk takes up to twice its size while it is decrypted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_client::{Client, Error};
use cairn_protocol::namespace::Entry;
use cairn_protocol::Capability;
use futures::future::BoxFuture;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Fetches `len` bytes of a file from `offset` (a range read).
pub type Fetch = Arc<dyn Fn(u64, u64) -> BoxFuture<'static, Result<Vec<u8>, Error>> + Send + Sync>;

/// Largest chunk: a segment's worth at the default segment size, so a
/// chunk's fetch keeps `k` shard reads going, as a segment of `cairn get`.
pub const CHUNK_MAX: u64 = 8 << 20;
/// Smallest chunk.
const CHUNK_MIN: u64 = 128 << 10;
/// The first fetch of a window (after an open or a seek) is this much
/// at least, at most a chunk: one request's worth of a random reader.
const FIRST: u64 = 1 << 20;
/// Files with a window at once; the least recently read one gives way.
const MAX_WINDOWS: usize = 4;

/// One contiguous range of the file, fetched or being fetched.
struct Chunk {
    start: u64,
    len: u64,
    state: ChunkState,
}

enum ChunkState {
    Running(JoinHandle<Result<Vec<u8>, Error>>),
    Done(Bytes),
}

impl Drop for Chunk {
    /// A chunk dropped while fetching (seek, close, eviction) stops.
    fn drop(&mut self) {
        if let ChunkState::Running(task) = &self.state {
            task.abort();
        }
    }
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Its bytes, waiting for the fetch; a failed fetch is retried once.
    async fn bytes(&mut self, fetch: &Fetch) -> Result<&Bytes, Error> {
        if let ChunkState::Running(task) = &mut self.state {
            let fetched = match task.await {
                Ok(Ok(bytes)) if bytes.len() as u64 == self.len => Ok(bytes),
                Ok(Ok(bytes)) => Err(short(self.len, bytes.len())),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(Error::Io {
                    context: "a read-ahead task stopped".into(),
                    source: std::io::Error::other(e.to_string()),
                }),
            };
            let bytes = match fetched {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::debug!(offset = self.start, "read-ahead failed, reading again: {e}");
                    let bytes = fetch(self.start, self.len).await?;
                    if bytes.len() as u64 != self.len {
                        return Err(short(self.len, bytes.len()));
                    }
                    bytes
                }
            };
            self.state = ChunkState::Done(Bytes::from(bytes));
        }
        match &self.state {
            ChunkState::Done(bytes) => Ok(bytes),
            ChunkState::Running(_) => Err(short(self.len, 0)),
        }
    }
}

fn short(want: u64, got: usize) -> Error {
    Error::Io {
        context: "a range read".into(),
        source: std::io::Error::other(format!("{got} bytes instead of {want}")),
    }
}

/// The read-ahead of one file.
struct Window {
    ino: u64,
    /// The file as it was when the window started (another entry is
    /// other bytes).
    entry: Entry,
    size: u64,
    fetch: Fetch,
    /// Contiguous, in file order; the front one holds the reader's place.
    chunks: VecDeque<Chunk>,
    /// Where the last read ended: a read from here is in order.
    next: u64,
    /// Chunks wanted ahead of the reader's; doubles as the reader passes
    /// a chunk in order.
    depth: usize,
    /// When it was last read (for eviction).
    used: u64,
}

impl Window {
    fn covers(&self, offset: u64) -> bool {
        match (self.chunks.front(), self.chunks.back()) {
            (Some(a), Some(b)) => a.start <= offset && offset < b.end(),
            _ => false,
        }
    }

    fn end(&self) -> u64 {
        self.chunks.back().map_or(self.next, Chunk::end)
    }

    fn spawn(&mut self, rt: &Handle, start: u64, len: u64) {
        let task = rt.spawn((self.fetch)(start, len));
        self.chunks.push_back(Chunk {
            start,
            len,
            state: ChunkState::Running(task),
        });
    }

    /// Starts fetches ahead while the window is short of its depth, its
    /// `share` of the budget and the budget left (`others` chunks are
    /// held by other windows).
    fn top_up(&mut self, rt: &Handle, chunk: u64, share: usize, budget: usize, others: usize) {
        let want = (1 + self.depth).min(share);
        while self.chunks.len() < want && others + self.chunks.len() < budget {
            let start = self.end();
            if start >= self.size {
                break;
            }
            self.spawn(rt, start, chunk.min(self.size - start));
        }
    }
}

/// The read-ahead windows of a mount, within one budget.
pub struct ReadAhead {
    rt: Handle,
    /// Bytes per chunk.
    chunk: u64,
    /// Chunks all windows may hold; 0: no read-ahead.
    budget: usize,
    windows: Vec<Window>,
    /// Open handles per inode: the last close drops the window.
    handles: HashMap<u64, u32>,
    clock: u64,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("chunk", &self.chunk)
            .field("budget", &self.budget)
            .field("windows", &self.windows.len())
            .finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// Read-ahead within `bytes` (0: none) on `rt`.
    pub fn new(bytes: u64, rt: Handle) -> Self {
        let chunk = (bytes / 2).clamp(CHUNK_MIN, CHUNK_MAX);
        let budget = usize::try_from(bytes / chunk).unwrap_or(usize::MAX);
        Self {
            rt,
            chunk,
            budget,
            windows: Vec::new(),
            handles: HashMap::new(),
            clock: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Chunks held or in flight, over all windows.
    pub fn chunks(&self) -> usize {
        self.windows.iter().map(|w| w.chunks.len()).sum()
    }

    /// Bytes held or being fetched.
    pub fn bytes(&self) -> u64 {
        self.windows
            .iter()
            .flat_map(|w| w.chunks.iter())
            .map(|c| c.len)
            .sum()
    }

    /// A handle of `ino` was opened.
    pub fn opened(&mut self, ino: u64) {
        *self.handles.entry(ino).or_default() += 1;
    }

    /// Whether a handle of `ino` is open.
    pub fn is_open(&self, ino: u64) -> bool {
        self.handles.get(&ino).is_some_and(|n| *n > 0)
    }

    /// A handle of `ino` was closed: the last one drops its window.
    pub fn closed(&mut self, ino: u64) {
        let open = self.handles.entry(ino).or_default();
        *open = open.saturating_sub(1);
        if *open == 0 {
            self.handles.remove(&ino);
            self.forget(ino);
        }
    }

    /// Drops the window of `ino`, cancelling its fetches.
    pub fn forget(&mut self, ino: u64) {
        self.windows.retain(|w| w.ino != ino);
    }

    /// Bytes `[offset, end)` of `ino` (whose entry is `entry`, `size`
    /// bytes long; `end <= size`), from the window, which `fetch` fills.
    pub async fn read(
        &mut self,
        ino: u64,
        entry: &Entry,
        size: u64,
        fetch: impl FnOnce() -> Fetch,
        offset: u64,
        end: u64,
    ) -> Result<Bytes, Error> {
        self.clock += 1;
        let i = match self
            .windows
            .iter()
            .position(|w| w.ino == ino && w.entry == *entry)
        {
            Some(i) => i,
            None => {
                self.forget(ino);
                if self.windows.len() >= MAX_WINDOWS {
                    let lru = (0..self.windows.len())
                        .min_by_key(|&i| self.windows[i].used)
                        .unwrap_or(0);
                    self.windows.swap_remove(lru);
                }
                self.windows.push(Window {
                    ino,
                    entry: entry.clone(),
                    size,
                    fetch: fetch(),
                    chunks: VecDeque::new(),
                    next: 0,
                    depth: 0,
                    used: 0,
                });
                self.windows.len() - 1
            }
        };
        let others = self.chunks() - self.windows[i].chunks.len();
        let share = (self.budget / self.windows.len()).max(1);
        let (rt, chunk, budget) = (self.rt.clone(), self.chunk, self.budget);
        let w = &mut self.windows[i];
        w.used = self.clock;
        let in_order = offset == w.next || w.covers(offset);
        if !w.covers(offset) {
            // A seek (or the first read): start over here.
            // An in-order reader the window fell behind keeps its depth.
            w.chunks.clear();
            w.depth = if in_order { w.depth.max(1) } else { 0 };
            let first = if in_order && offset > 0 {
                chunk
            } else {
                FIRST.min(chunk)
            };
            let len = (end - offset).max(first).min(size - offset);
            w.spawn(&rt, offset, len);
        } else if !in_order {
            w.depth = 0;
        }
        // A read within one chunk (most) shares its bytes; one across
        // chunks is copied together.
        let mut out: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut at = offset;
        while at < end {
            while w.chunks.front().is_some_and(|c| c.end() <= at) {
                w.chunks.pop_front();
                if in_order {
                    w.depth = (w.depth * 2).max(1).min(budget.max(1));
                }
            }
            if w.chunks.is_empty() {
                w.spawn(&rt, at, chunk.min(size - at));
            }
            w.top_up(&rt, chunk, share, budget, others);
            let fetch = w.fetch.clone();
            let c = w.chunks.front_mut().ok_or_else(|| short(end - at, 0))?;
            let (start, c_end) = (c.start, c.end());
            let bytes = c.bytes(&fetch).await?;
            let upto = end.min(c_end);
            let from = usize::try_from(at - start).unwrap_or(usize::MAX);
            let to = usize::try_from(upto - start).unwrap_or(usize::MAX);
            if to > bytes.len() || from > to {
                return Err(short(to as u64, bytes.len()));
            }
            let piece = bytes.slice(from..to);
            if at == offset && upto == end {
                out = Some(piece);
            } else {
                joined.extend_from_slice(&piece);
            }
            at = upto;
        }
        w.next = end;
        w.top_up(&rt, chunk, share, budget, others);
        Ok(out.unwrap_or_else(|| joined.freeze()))
    }
}

/// Range reads of the object `cap` names, from its byte `base` (a packed
/// file starts inside its pack).
pub fn range_reads(client: &'static Client, cap: Capability, base: u64) -> Fetch {
    Arc::new(move |offset, len| {
        let cap = cap.clone();
        Box::pin(async move { client.get_range(&cap, base + offset, len).await })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_protocol::namespace::{EntryKind, FileData, Timestamp};
    use std::sync::Mutex;

    fn entry(size: u64) -> Entry {
        Entry {
            kind: EntryKind::File {
                size,
                data: FileData::Inline(Vec::new()),
            },
            mode: 0o644,
            mtime: Timestamp { secs: 0, nanos: 0 },
        }
    }

    fn content(size: usize) -> Arc<Vec<u8>> {
        Arc::new((0..size).map(|i| (i * 7 + i / 4099) as u8).collect())
    }

    /// A file in memory; fetches starting at or past `fail_from` fail
    /// (every time if `always`, else the first time for each offset);
    /// every fetch is logged.
    struct Source {
        bytes: Arc<Vec<u8>>,
        fail_from: u64,
        always: bool,
        log: Mutex<Vec<(u64, u64)>>,
    }

    fn source(bytes: Arc<Vec<u8>>, fail_from: u64, always: bool) -> Arc<Source> {
        Arc::new(Source {
            bytes,
            fail_from,
            always,
            log: Mutex::new(Vec::new()),
        })
    }

    fn fetcher(src: &Arc<Source>) -> Fetch {
        let src = src.clone();
        Arc::new(move |offset, len| {
            let src = src.clone();
            // Logged when the fetch is started, not when its task runs.
            let fails = {
                let mut log = src.log.lock().unwrap();
                let again = log.iter().any(|&(o, _)| o == offset);
                log.push((offset, len));
                offset >= src.fail_from && (src.always || !again)
            };
            Box::pin(async move {
                if fails {
                    return Err(Error::Io {
                        context: "test".into(),
                        source: std::io::Error::other("a node failed"),
                    });
                }
                tokio::task::yield_now().await;
                let (a, b) = (offset as usize, (offset + len) as usize);
                Ok(src.bytes[a..b].to_vec())
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_order_random_and_across_chunks_reads_are_the_bytes() {
        let size = 3_000_000usize;
        let bytes = content(size);
        let src = source(bytes.clone(), u64::MAX, false);
        let mut ra = ReadAhead::new(1 << 20, Handle::current());
        assert_eq!((ra.chunk, ra.budget), (512 << 10, 2));
        let e = entry(size as u64);
        let mut at = 0;
        while at < size {
            let end = (at + 131_072).min(size);
            let got = ra
                .read(1, &e, size as u64, || fetcher(&src), at as u64, end as u64)
                .await
                .unwrap();
            assert_eq!(got, bytes[at..end], "in order at {at}");
            assert!(ra.chunks() <= ra.budget + 1, "{} chunks", ra.chunks());
            at = end;
        }
        // Fetched ahead in chunks, not request by request.
        let fetches = src.log.lock().unwrap().len();
        assert!(fetches < size / 131_072, "{fetches} fetches");
        let mut rng = 12345u64;
        for _ in 0..200 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (rng >> 33) as usize % size;
            let len = ((rng >> 13) as usize % 700_000).min(size - at);
            let got = ra
                .read(
                    1,
                    &e,
                    size as u64,
                    || fetcher(&src),
                    at as u64,
                    (at + len) as u64,
                )
                .await
                .unwrap();
            assert_eq!(got, bytes[at..at + len], "random read at {at}+{len}");
            assert!(ra.chunks() <= ra.budget + 1);
        }
        ra.closed(1);
        ra.opened(2);
        ra.closed(2);
        assert_eq!(ra.chunks(), 0, "the last close drops the window");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_read_ahead_fails_no_read() {
        let size = 4 << 20;
        let bytes = content(size);
        // Every fetch past the first MiB fails the first time: the reads
        // that reach those bytes fetch them again.
        let src = source(bytes.clone(), 1 << 20, false);
        let mut ra = ReadAhead::new(2 << 20, Handle::current());
        let e = entry(size as u64);
        let mut at = 0;
        while at < size {
            let end = (at + 100_000).min(size);
            let got = ra
                .read(7, &e, size as u64, || fetcher(&src), at as u64, end as u64)
                .await
                .unwrap();
            assert_eq!(got, bytes[at..end]);
            at = end;
        }
        let log = src.log.lock().unwrap().clone();
        assert!(
            log.iter()
                .any(|&(o, _)| o >= 1 << 20 && log.iter().filter(|&&(p, _)| p == o).count() == 2),
            "a failed fetch was fetched again: {log:?}"
        );
        // A read-ahead beyond what is read fails for good: the read that
        // does not need it succeeds.
        let src = source(bytes.clone(), 2 << 20, true);
        let mut ra = ReadAhead::new(4 << 20, Handle::current());
        for at in (0..(2 << 20) - 65_536).step_by(65_536) {
            let got = ra
                .read(8, &e, size as u64, || fetcher(&src), at, at + 65_536)
                .await
                .unwrap();
            assert_eq!(got, bytes[at as usize..at as usize + 65_536]);
        }
        assert!(
            src.log.lock().unwrap().iter().any(|&(o, _)| o >= 2 << 20),
            "a read-ahead past the failing offset was started"
        );
        // The read that needs the bytes fails.
        assert!(ra
            .read(
                8,
                &e,
                size as u64,
                || fetcher(&src),
                3 << 20,
                (3 << 20) + 10
            )
            .await
            .is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn windows_share_the_budget_and_a_changed_entry_starts_over() {
        let size = 8 << 20;
        let a = content(size);
        let b = Arc::new(a.iter().map(|x| x ^ 0xff).collect::<Vec<u8>>());
        let (sa, sb) = (
            source(a.clone(), u64::MAX, false),
            source(b.clone(), u64::MAX, false),
        );
        let mut ra = ReadAhead::new(4 << 20, Handle::current());
        let ea = entry(size as u64);
        let eb = ea.clone();
        let mut eb2 = eb.clone();
        eb2.mode = 0o600;
        for at in (0..(4 << 20)).step_by(131_072) {
            let end = at + 131_072;
            let x = ra
                .read(1, &ea, size as u64, || fetcher(&sa), at, end)
                .await
                .unwrap();
            let y = ra
                .read(2, &eb, size as u64, || fetcher(&sb), at, end)
                .await
                .unwrap();
            assert_eq!(x, a[at as usize..end as usize]);
            assert_eq!(y, b[at as usize..end as usize]);
            assert!(ra.chunks() <= ra.budget + 2, "{} chunks", ra.chunks());
        }
        // Inode 2 now names other bytes (a's): its window starts over.
        let y = ra
            .read(2, &eb2, size as u64, || fetcher(&sa), 0, 1000)
            .await
            .unwrap();
        assert_eq!(y, a[..1000]);
    }
}
