//! Recycled buffers for the bodies read off the wire.
//!
//! Every store request a node takes and every range a client fetches is a
//! body of up to a shard (typically around a MiB) read into memory. A fresh
//! `vec![0; len]` per body costs an allocation, a memset of the whole body
//! and, for allocations the allocator serves with `mmap`, a page fault per
//! 4 KiB on first touch, on every request. A body read here lands in a
//! buffer an earlier body already initialized and gave back: the bytes are
//! handed out as [`Bytes`] whose owner returns the buffer to the pool when
//! the last reference to it is dropped (the node stored the shard, the
//! client decoded the range).
//!
//! Goals: no per-body zeroing or allocation in steady state; a hard bound on
//! the memory the pool keeps idle. Non-goals: bounding bodies in use (the
//! codec's budget does that) or sharing buffers between processes.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Idle buffers kept at most, whatever their size.
const MAX_IDLE_BUFFERS: usize = 64;

/// A pool of initialized body buffers. Clones share the pool.
#[derive(Debug, Clone)]
pub struct BodyPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Idle buffers; each is fully initialized up to its `len()`.
    idle: Mutex<Idle>,
    /// Bytes of idle buffers kept at most.
    max_idle_bytes: usize,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BodyPool {
    /// A pool that keeps at most `max_idle_bytes` of idle buffers.
    pub fn new(max_idle_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(Idle::default()),
                max_idle_bytes,
            }),
        }
    }

    /// A buffer of exactly `len` initialized bytes (their contents are
    /// whatever an earlier body left), to be filled and then
    /// [`frozen`](PooledBody::freeze).
    pub fn take(&self, len: usize) -> PooledBody {
        let mut buf = self.reuse(len).unwrap_or_default();
        if buf.len() < len {
            // Only the part no earlier body initialized is zeroed.
            buf.resize(len, 0);
        }
        PooledBody {
            buf,
            len,
            pool: self.clone(),
        }
    }

    /// Bytes held by idle buffers.
    pub fn idle_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The smallest idle buffer that holds `len` bytes, else the largest
    /// (to be grown), else none.
    fn reuse(&self, len: usize) -> Option<Vec<u8>> {
        let mut idle = self.inner.lock();
        let fits = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let largest = || {
            idle.buffers
                .iter()
                .enumerate()
                .max_by_key(|(_, b)| b.len())
                .map(|(i, _)| i)
        };
        let i = fits.or_else(largest)?;
        let buf = idle.buffers.swap_remove(i);
        idle.bytes -= buf.len();
        Some(buf)
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        let mut idle = self.inner.lock();
        if idle.buffers.len() < MAX_IDLE_BUFFERS
            && idle.bytes + buf.len() <= self.inner.max_idle_bytes
        {
            idle.bytes += buf.len();
            idle.buffers.push(buf);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The pool's state is a list of spare buffers: one a panicking
        // thread left behind is as good as any.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A body being read: `len` bytes to fill, then frozen into [`Bytes`].
#[derive(Debug)]
pub struct PooledBody {
    buf: Vec<u8>,
    len: usize,
    pool: BodyPool,
}

impl PooledBody {
    /// The bytes to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The filled body; its buffer goes back to the pool when the last
    /// clone of the returned `Bytes` is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(Frozen(self))
    }
}

/// The owner a frozen body's `Bytes` hold; dropping it drops the
/// [`PooledBody`], which gives the buffer back.
struct Frozen(PooledBody);

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        &self.0.buf[..self.0.len]
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Frozen or not (a read that failed), the buffer goes back.
        let buf = std::mem::take(&mut self.buf);
        self.pool.give_back(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_and_its_buffer_is_reused_without_growing() {
        let pool = BodyPool::new(8 << 20);
        let mut body = pool.take(1 << 20);
        body.bytes_mut().fill(7);
        let first = body.freeze();
        assert_eq!(first.len(), 1 << 20);
        assert!(first.iter().all(|&b| b == 7));
        let slice = first.slice(10..20);
        drop(first);
        // A slice keeps the buffer out of the pool.
        assert_eq!(pool.idle_bytes(), 0);
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(pool.idle_bytes(), 1 << 20);
        // A smaller body takes the same buffer: nothing new is allocated.
        let mut body = pool.take(1000);
        assert_eq!(pool.idle_bytes(), 0);
        body.bytes_mut().fill(9);
        let second = body.freeze();
        assert_eq!(&second[..], &[9; 1000][..]);
        drop(second);
        assert_eq!(pool.idle_bytes(), 1 << 20);
    }

    #[test]
    fn idle_memory_stays_within_its_bound() {
        let pool = BodyPool::new(3 << 20);
        let bodies: Vec<Bytes> = (0..10).map(|_| pool.take(1 << 20).freeze()).collect();
        drop(bodies);
        assert_eq!(pool.idle_bytes(), 3 << 20);
        let tiny = BodyPool::new(1 << 20);
        let big: Vec<Bytes> = (0..(MAX_IDLE_BUFFERS + 5))
            .map(|_| tiny.take(10).freeze())
            .collect();
        drop(big);
        assert_eq!(tiny.idle_bytes(), MAX_IDLE_BUFFERS * 10);
    }

    #[test]
    fn an_unfrozen_body_gives_its_buffer_back_and_a_grown_one_is_whole() {
        let pool = BodyPool::new(8 << 20);
        drop(pool.take(100));
        assert_eq!(pool.idle_bytes(), 100);
        // Grown past the idle buffer: all of it is the new length.
        let mut body = pool.take(5000);
        assert_eq!(body.bytes_mut().len(), 5000);
        body.bytes_mut().fill(1);
        assert!(body.freeze().iter().all(|&b| b == 1));
        assert_eq!(pool.idle_bytes(), 5000);
    }
}
