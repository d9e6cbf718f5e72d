//! Direct I/O (`O_DIRECT`) for shard files: their bytes go between the
//! disk and a small aligned buffer, never through the page cache.
//!
//! ## Why
//!
//! Shards are cold and immutable: written once, read again rarely (a
//! download, a proof, a scrub pass), and each read is verified against the
//! outboard anyway. Caching them buys little, and filling the page cache is
//! not free: every fresh page is memory the kernel must find, zero and
//! later evict, and on a virtual machine that charges for the first touch
//! of guest memory the buffered copy into the cache was most of a node's
//! CPU during an upload. Storage engines for cold immutable data do the
//! same for the same reason.
//!
//! ## Goals
//!
//! * **No page-cache traffic for shard bodies**, on writes, range reads and
//!   whole-shard reads (scrub, proofs) alike.
//! * **Warm, bounded memory.** Each thread reuses one [`BUFFER_BYTES`]
//!   buffer aligned to [`ALIGN`]; bytes move through it in aligned spans.
//! * **No `unsafe`.** The alignment comes from slicing a `Vec`, not from
//!   the allocator.
//! * **Nothing else changes.** Files are the same files (padded writes are
//!   cut back to the true size before the sync), so a store written one way
//!   is read the other way, and every guarantee in the store's module doc
//!   holds in both modes.
//! * **A filesystem that refuses `O_DIRECT` still works**: [`probe`]
//!   decides once, when the store opens, and the store falls back to
//!   buffered I/O.
//!
//! ## Non-goals
//!
//! Asynchronous or queued I/O (each call waits for its transfer; the store
//! runs on many blocking threads at once), and RocksDB's own files, which
//! keep their buffered I/O.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of buffers, offsets and lengths of direct transfers: the
/// largest logical block size in common use (512 and 4096 both divide it).
pub(super) const ALIGN: usize = 4096;
/// Bytes one direct transfer moves at most: large enough that a 1 MiB
/// shard is one write, small enough to keep per thread.
pub(super) const BUFFER_BYTES: usize = 1 << 20;

/// A zeroed heap buffer whose start is aligned to [`ALIGN`]: a plain
/// `Vec` one block longer than needed, used from its first aligned byte,
/// so the alignment costs 4 KiB and no `unsafe`.
pub(super) struct AlignedBuf {
    bytes: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` bytes (a multiple of [`ALIGN`]), zeroed.
    fn new(len: usize) -> Option<Self> {
        if len == 0 || len % ALIGN != 0 {
            return None;
        }
        let bytes = vec![0u8; len.checked_add(ALIGN)?];
        let offset = bytes.as_ptr().align_offset(ALIGN);
        (offset < ALIGN).then_some(Self { bytes, offset, len })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.offset..self.offset + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.offset..self.offset + self.len]
    }
}

thread_local! {
    /// One buffer per store thread, kept so its pages stay warm.
    static BUFFER: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's buffer (or, if it is already in use, or
/// the thread is exiting, with a buffer of its own).
fn with_buffer<R>(f: impl FnOnce(&mut AlignedBuf) -> io::Result<R>) -> io::Result<R> {
    let no_memory = || io::Error::from(io::ErrorKind::OutOfMemory);
    let mut f = Some(f);
    let kept = BUFFER.try_with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return None;
        };
        if slot.is_none() {
            *slot = AlignedBuf::new(BUFFER_BYTES);
        }
        let buf = slot.as_mut()?;
        f.take().map(|f| f(buf))
    });
    match (kept, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(&mut AlignedBuf::new(BUFFER_BYTES).ok_or_else(no_memory)?),
        (_, None) => Err(no_memory()),
    }
}

/// Whether `O_DIRECT` works in `dir`: a file there opened with it, one
/// aligned block written and read back. `Ok(false)`: the filesystem
/// refuses it (`EINVAL`); other errors are the directory's, not the mode's.
pub(super) fn probe(dir: &Path) -> io::Result<bool> {
    let path = dir.join("direct-io.probe");
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        with_buffer(|buf| {
            let block = &mut buf.as_mut_slice()[..ALIGN];
            block.fill(0xA5);
            file.write_all_at(block, 0)?;
            block.fill(0);
            file.read_exact_at(block, 0)?;
            if block.iter().all(|&b| b == 0xA5) {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "direct read returned other bytes than were written",
                ))
            }
        })
    })();
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens an existing shard file for direct reads.
pub(super) fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Creates (or truncates) a file for direct writes.
pub(super) fn create_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Writes `data` at the start of `file` (opened by [`create_write`]) in
/// aligned spans, the last one padded with zeros, then cuts the file back
/// to `data.len()`. The caller syncs it.
pub(super) fn write_file(file: &File, data: &[u8]) -> io::Result<()> {
    with_buffer(|buf| {
        let buf = buf.as_mut_slice();
        for (i, piece) in data.chunks(buf.len()).enumerate() {
            let padded = piece.len().next_multiple_of(ALIGN);
            buf[..piece.len()].copy_from_slice(piece);
            buf[piece.len()..padded].fill(0);
            file.write_all_at(&buf[..padded], (i * BUFFER_BYTES) as u64)?;
        }
        Ok(())
    })?;
    file.set_len(data.len() as u64)
}

/// Reads `out.len()` bytes of `file` (opened by [`open_read`]) at
/// `offset`, through aligned spans. Past the end of the file:
/// `UnexpectedEof`.
pub(super) fn read_exact_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<()> {
    with_buffer(|buf| {
        let mut window = Window::new(file, buf, u64::MAX);
        let (mut done, end) = (0, out.len());
        while done < end {
            let n = window.read_at(offset + done as u64, &mut out[done..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    })
}

/// Runs `f` with a [`bao_tree::io::sync::ReadAt`] over `file` (opened by
/// [`open_read`]) that reads aligned spans ending at most at `limit`
/// (rounded up to [`ALIGN`]): the bytes a range's encoding needs, in as
/// few transfers as the buffer allows.
pub(super) fn with_reader<R>(
    file: &File,
    limit: u64,
    f: impl FnOnce(&DirectReader<'_>) -> R,
) -> io::Result<R> {
    with_buffer(|buf| {
        let reader = DirectReader(RefCell::new(Window::new(file, buf, limit)));
        Ok(f(&reader))
    })
}

/// The last aligned span read from a file, served from until a read
/// falls outside it.
struct Window<'a> {
    file: &'a File,
    buf: &'a mut AlignedBuf,
    /// File offset of `buf[0]`.
    start: u64,
    /// Bytes of `buf` that hold the file's bytes from `start`.
    valid: usize,
    /// No span is read past this (rounded up to [`ALIGN`]).
    limit: u64,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, buf: &'a mut AlignedBuf, limit: u64) -> Self {
        Self {
            file,
            buf,
            start: 0,
            valid: 0,
            limit,
        }
    }

    /// Copies bytes at `pos` into `out` from the window, refilling it
    /// first if `pos` is outside; `Ok(0)` at the end of the file.
    fn read_at(&mut self, pos: u64, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let inside = pos >= self.start && pos < self.start + self.valid as u64;
        if !inside {
            self.fill(pos)?;
        }
        let from = (pos - self.start) as usize;
        let n = out.len().min(self.valid.saturating_sub(from));
        out[..n].copy_from_slice(&self.buf.as_slice()[from..from + n]);
        Ok(n)
    }

    /// Reads the aligned span that starts at or just before `pos`.
    fn fill(&mut self, pos: u64) -> io::Result<()> {
        let align = ALIGN as u64;
        let start = pos - pos % align;
        let limit = self.limit.max(pos + 1).saturating_add(align - 1) / align * align;
        let len = ((limit - start) as usize).min(self.buf.len);
        let buf = &mut self.buf.as_mut_slice()[..len];
        let mut got = 0;
        while got < len {
            match self.file.read_at(&mut buf[got..], start + got as u64) {
                Ok(0) => break,
                // A short count that is not a whole block is the end of
                // the file; asking again would be a misaligned read.
                Ok(n) if n % ALIGN != 0 => {
                    got += n;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.valid = 0;
                    return Err(e);
                }
            }
        }
        self.start = start;
        self.valid = got;
        Ok(())
    }
}

/// A [`bao_tree::io::sync::ReadAt`] over a file opened for direct reads
/// (made by [`with_reader`]).
pub(super) struct DirectReader<'a>(RefCell<Window<'a>>);

impl bao_tree::io::sync::ReadAt for &DirectReader<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .try_borrow_mut()
            .map_err(|_| io::Error::other("direct reader used re-entrantly"))?
            .read_at(pos, buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn buffers_are_aligned_and_reused_when_free() {
        let a = with_buffer(|b| Ok(b.as_slice().as_ptr() as usize)).unwrap();
        assert_eq!(a % ALIGN, 0);
        let nested = with_buffer(|_| with_buffer(|b| Ok(b.as_slice().as_ptr() as usize))).unwrap();
        assert_eq!(nested % ALIGN, 0);
        assert_ne!(nested, a, "a nested use gets a buffer of its own");
        assert_eq!(
            with_buffer(|b| Ok(b.as_slice().as_ptr() as usize)).unwrap(),
            a
        );
    }

    #[test]
    fn spans_cover_reads_across_their_edges() {
        let dir = super::super::tests::disk_tempdir();
        if !probe(dir.path()).unwrap() {
            return; // nothing to test on a filesystem without O_DIRECT
        }
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..BUFFER_BYTES * 2 + 4099)
            .map(|i| (i % 251) as u8)
            .collect();
        write_file(&create_write(&path).unwrap(), &data).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);
        let file = open_read(&path).unwrap();
        for (offset, len) in [
            (0, 1),
            (4095, 2),
            (BUFFER_BYTES - 3, 9),
            (1, data.len() - 1),
        ] {
            let mut out = vec![0u8; len];
            read_exact_at(&file, &mut out, offset as u64).unwrap();
            assert_eq!(out, data[offset..offset + len], "{offset}+{len}");
        }
        let mut past = vec![0u8; 2];
        let e = read_exact_at(&file, &mut past, data.len() as u64 - 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut tail = vec![0u8; 10];
        with_reader(&file, 17, |r| {
            use bao_tree::io::sync::ReadAt;
            r.read_exact_at(BUFFER_BYTES as u64 * 2, &mut tail)
        })
        .unwrap()
        .unwrap();
        assert_eq!(tail, data[BUFFER_BYTES * 2..BUFFER_BYTES * 2 + 10]);
    }
}
