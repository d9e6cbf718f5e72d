//! Plaintext in, encrypted and erasure-coded segments out.
//!
//! [`FileEncoder`] is a push-style state machine: feed it plaintext, take
//! segments as they fill, tell it the input ended, take the last segment, and
//! read the manifest. It holds one segment of ciphertext plus one block of
//! plaintext, so its memory is `(k + m)·S` plus a little, whatever the file
//! size. [`ReadEncoder`] and [`AsyncReadEncoder`] drive it from a
//! `std::io::Read` or a `futures` `AsyncRead`.
//!
//! Per segment the work is: seal the blocks (XChaCha20-Poly1305), compute
//! the `m` parity shards (Reed–Solomon), and hash all `n` shards (BLAKE3).
//! Data shards are slices of the segment buffer, never copies.

use std::io::Read;

use futures_lite::{AsyncRead, AsyncReadExt};

use crate::cipher::{BlockCipher, FileKey};
use crate::erasure::{ErasureCoder, ErasureError};
use crate::id::ContentId;
use crate::manifest::{Manifest, ManifestError};
use crate::params::{
    CodingParams, Layout, ParamsError, DEFAULT_BLOCK_SIZE, DEFAULT_SEGMENT_TARGET, TAG_LEN,
};

/// Bytes read from a reader per call.
const READ_BUF: usize = 256 * 1024;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    pub params: CodingParams,
    pub block_size: u32,
    pub shard_size: u32,
}

impl EncoderConfig {
    /// `params` with 64 KiB blocks and segments of about 8 MiB.
    pub fn new(params: CodingParams) -> Self {
        Self {
            params,
            block_size: DEFAULT_BLOCK_SIZE,
            shard_size: params.shard_size_for_segment(DEFAULT_SEGMENT_TARGET),
        }
    }

    /// Sets the shard size so that a full segment is about `bytes`.
    pub fn with_segment_target(mut self, bytes: u64) -> Self {
        self.shard_size = self.params.shard_size_for_segment(bytes);
        self
    }

    /// Memory one encoder holds at most, in bytes.
    pub fn memory_bound(&self) -> u64 {
        let n = self.params.n() as u64;
        let k = self.params.k() as u64;
        // segment buffer (k·S plus one sealed block of spill), parity, the
        // recycled pair, and the block being filled.
        let sealed = (self.block_size + TAG_LEN) as u64;
        2 * (k * self.shard_size as u64 + sealed) + 2 * (n - k) * self.shard_size as u64 + sealed
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self::new(CodingParams::default())
    }
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("reading plaintext: {0}")]
    Io(#[from] std::io::Error),
    #[error("erasure coding: {0}")]
    Erasure(#[from] ErasureError),
    #[error("building manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("input already finished")]
    Finished,
    #[error("manifest requested before every segment was taken")]
    Unfinished,
}

/// One encoded segment: `n` shards of `shard_size` bytes and their ids.
#[derive(Clone)]
pub struct EncodedSegment {
    index: u64,
    shard_size: usize,
    k: usize,
    data: Vec<u8>,
    parity: Vec<u8>,
    ids: Vec<ContentId>,
}

impl std::fmt::Debug for EncodedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedSegment")
            .field("index", &self.index)
            .field("shard_size", &self.shard_size)
            .field("shards", &self.ids.len())
            .finish()
    }
}

impl EncodedSegment {
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn shard_size(&self) -> usize {
        self.shard_size
    }

    /// Number of shards (`n`).
    pub fn shard_count(&self) -> usize {
        self.ids.len()
    }

    /// Shard `j` (data shards first, then parity).
    pub fn shard(&self, j: usize) -> &[u8] {
        let s = self.shard_size;
        if j < self.k {
            &self.data[j * s..(j + 1) * s]
        } else {
            &self.parity[(j - self.k) * s..(j - self.k + 1) * s]
        }
    }

    /// The shards' ids, in shard order.
    pub fn ids(&self) -> &[ContentId] {
        &self.ids
    }

    /// All shards, in order.
    pub fn shards(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.ids.len()).map(|j| self.shard(j))
    }
}

/// The push-style encoder. See the module docs for the call sequence.
#[derive(Debug)]
pub struct FileEncoder {
    config: EncoderConfig,
    cipher: BlockCipher,
    coder: ErasureCoder,
    block_index: u64,
    /// Sealed ciphertext `[..sealed]`, then the plaintext of the block being
    /// filled, which is sealed in place once it is known not to be the last.
    segment: Vec<u8>,
    sealed: usize,
    segment_index: u64,
    plaintext_len: u64,
    ids: Vec<ContentId>,
    spare: Option<(Vec<u8>, Vec<u8>)>,
    finished: bool,
}

impl FileEncoder {
    pub fn new(key: &FileKey, config: EncoderConfig) -> Result<Self, EncodeError> {
        Layout::validate_sizes(config.block_size, config.shard_size)?;
        let segment_len = config.params.k() * config.shard_size as usize;
        Ok(Self {
            cipher: BlockCipher::new(key),
            coder: ErasureCoder::new(config.params),
            block_index: 0,
            sealed: 0,
            segment: Vec::with_capacity(segment_len + (config.block_size + TAG_LEN) as usize),
            segment_index: 0,
            plaintext_len: 0,
            ids: Vec::new(),
            spare: None,
            finished: false,
            config,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Plaintext bytes taken so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    fn segment_len(&self) -> usize {
        self.config.params.k() * self.config.shard_size as usize
    }

    fn segment_ready(&self) -> bool {
        self.sealed >= self.segment_len() || (self.finished && self.sealed > 0)
    }

    fn seal_block(&mut self, last: bool) -> Result<(), EncodeError> {
        self.cipher
            .seal_tail(self.block_index, last, &mut self.segment, self.sealed)
            .map_err(|_| ParamsError::FileTooLarge(self.plaintext_len))?;
        self.sealed = self.segment.len();
        self.block_index += 1;
        Ok(())
    }

    /// Takes plaintext; returns how much it took. It takes less than all of
    /// `data` only when a segment is ready: call [`Self::take_segment`] and
    /// feed the rest.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, EncodeError> {
        if self.finished {
            return Err(EncodeError::Finished);
        }
        let block_size = self.config.block_size as usize;
        let mut used = 0;
        while used < data.len() && !self.segment_ready() {
            let filled = self.segment.len() - self.sealed;
            if filled == block_size {
                // More plaintext follows, so this block is not the last.
                self.seal_block(false)?;
                continue;
            }
            let take = (block_size - filled).min(data.len() - used);
            self.segment.extend_from_slice(&data[used..used + take]);
            used += take;
        }
        self.plaintext_len += used as u64;
        if self.plaintext_len > Layout::max_plaintext_len(self.config.block_size) {
            return Err(ParamsError::FileTooLarge(self.plaintext_len).into());
        }
        Ok(used)
    }

    /// Marks the end of the plaintext; the last block is sealed.
    pub fn finish(&mut self) -> Result<(), EncodeError> {
        if self.finished {
            return Err(EncodeError::Finished);
        }
        // The unsealed tail of the segment buffer is the last block.
        self.seal_block(true)?;
        self.finished = true;
        Ok(())
    }

    /// The next complete segment, if one is ready.
    pub fn take_segment(&mut self) -> Result<Option<EncodedSegment>, EncodeError> {
        if !self.segment_ready() {
            return Ok(None);
        }
        let k = self.config.params.k();
        let m = self.config.params.m();
        let full = self.segment_len();
        let (next, mut parity) = self.spare.take().unwrap_or_default();
        let mut data = std::mem::replace(&mut self.segment, next);
        self.segment.clear();
        let shard_size = if self.sealed >= full {
            // Carry the sealed spill-over and the unsealed block into the
            // fresh buffer.
            self.segment.extend_from_slice(&data[full..]);
            self.sealed -= full;
            data.truncate(full);
            self.config.shard_size as usize
        } else {
            let size = data.len().div_ceil(k);
            data.resize(k * size, 0);
            self.sealed = 0;
            size
        };
        parity.clear();
        parity.resize(m * shard_size, 0);
        // Hash each column slice right after it is coded, while it is hot.
        let mut hashers = vec![blake3::Hasher::new(); k + m];
        self.coder
            .encode_with(&data, &mut parity, shard_size, |range, data, parity| {
                for (j, hasher) in hashers.iter_mut().enumerate() {
                    let (buf, row) = if j < k { (data, j) } else { (parity, j - k) };
                    hasher
                        .update(&buf[row * shard_size + range.start..row * shard_size + range.end]);
                }
            })?;
        let ids: Vec<ContentId> = hashers
            .iter()
            .map(|h| ContentId::from_digest(*h.finalize().as_bytes()))
            .collect();
        self.ids.extend_from_slice(&ids);
        let segment = EncodedSegment {
            index: self.segment_index,
            shard_size,
            k,
            data,
            parity,
            ids,
        };
        self.segment_index += 1;
        Ok(Some(segment))
    }

    /// Gives a segment's buffers back for reuse, sparing an allocation and
    /// its page faults per segment.
    pub fn recycle(&mut self, segment: EncodedSegment) {
        self.spare = Some((segment.data, segment.parity));
    }

    /// The manifest, once the input is finished and every segment taken.
    pub fn manifest(&self) -> Result<Manifest, EncodeError> {
        if !self.finished || !self.segment.is_empty() {
            return Err(EncodeError::Unfinished);
        }
        let layout = Layout::new(
            self.config.params,
            self.config.block_size,
            self.config.shard_size,
            self.plaintext_len,
        )?;
        Ok(Manifest::new(layout, self.ids.clone())?)
    }
}

/// What the shared pump wants next.
enum Step {
    Segment(EncodedSegment),
    NeedInput,
    Done,
}

/// The read loop shared by the sync and async drivers.
#[derive(Debug)]
struct Pump {
    encoder: FileEncoder,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Pump {
    fn new(encoder: FileEncoder) -> Self {
        Self {
            encoder,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    fn step(&mut self) -> Result<Step, EncodeError> {
        loop {
            if let Some(segment) = self.encoder.take_segment()? {
                return Ok(Step::Segment(segment));
            }
            if self.encoder.finished {
                return Ok(Step::Done);
            }
            if self.start == self.end {
                return Ok(Step::NeedInput);
            }
            self.start += self.encoder.feed(&self.buf[self.start..self.end])?;
        }
    }

    fn filled(&mut self, n: usize) -> Result<(), EncodeError> {
        if n == 0 {
            self.encoder.finish()?;
        }
        self.start = 0;
        self.end = n;
        Ok(())
    }
}

/// Encodes everything a `Read` yields, one segment per call.
#[derive(Debug)]
pub struct ReadEncoder<R> {
    reader: R,
    pump: Pump,
}

impl<R: Read> ReadEncoder<R> {
    pub fn new(reader: R, key: &FileKey, config: EncoderConfig) -> Result<Self, EncodeError> {
        Ok(Self {
            reader,
            pump: Pump::new(FileEncoder::new(key, config)?),
        })
    }

    /// The next segment, or `None` once the reader is exhausted and every
    /// segment was returned.
    pub fn next_segment(&mut self) -> Result<Option<EncodedSegment>, EncodeError> {
        loop {
            match self.pump.step()? {
                Step::Segment(s) => return Ok(Some(s)),
                Step::Done => return Ok(None),
                Step::NeedInput => {
                    let n = loop {
                        match self.reader.read(&mut self.pump.buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            other => break other?,
                        }
                    };
                    self.pump.filled(n)?;
                }
            }
        }
    }

    /// See [`FileEncoder::recycle`].
    pub fn recycle(&mut self, segment: EncodedSegment) {
        self.pump.encoder.recycle(segment);
    }

    /// Plaintext bytes read so far.
    pub fn plaintext_len(&self) -> u64 {
        self.pump.encoder.plaintext_len()
    }

    /// The manifest, after `next_segment` returned `None`.
    pub fn manifest(&self) -> Result<Manifest, EncodeError> {
        self.pump.encoder.manifest()
    }
}

/// Encodes everything an `AsyncRead` yields, one segment per call.
/// (tokio readers plug in through `tokio_util::compat`.)
#[derive(Debug)]
pub struct AsyncReadEncoder<R> {
    reader: R,
    pump: Pump,
}

impl<R: AsyncRead + Unpin> AsyncReadEncoder<R> {
    pub fn new(reader: R, key: &FileKey, config: EncoderConfig) -> Result<Self, EncodeError> {
        Ok(Self {
            reader,
            pump: Pump::new(FileEncoder::new(key, config)?),
        })
    }

    /// As [`ReadEncoder::next_segment`]. The coding itself is CPU work done
    /// inline; callers on a multi-threaded runtime may want `block_in_place`.
    pub async fn next_segment(&mut self) -> Result<Option<EncodedSegment>, EncodeError> {
        loop {
            match self.pump.step()? {
                Step::Segment(s) => return Ok(Some(s)),
                Step::Done => return Ok(None),
                Step::NeedInput => {
                    let n = self.reader.read(&mut self.pump.buf).await?;
                    self.pump.filled(n)?;
                }
            }
        }
    }

    pub fn recycle(&mut self, segment: EncodedSegment) {
        self.pump.encoder.recycle(segment);
    }

    pub fn plaintext_len(&self) -> u64 {
        self.pump.encoder.plaintext_len()
    }

    pub fn manifest(&self) -> Result<Manifest, EncodeError> {
        self.pump.encoder.manifest()
    }
}
