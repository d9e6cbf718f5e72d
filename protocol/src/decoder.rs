//! Shards in, verified plaintext out.
//!
//! For each segment the caller gathers shards into a [`SegmentShards`], which
//! checks every shard's size and hash against the manifest as it is inserted
//! and drops any that do not match. Once it holds `k` good shards, the
//! [`FileDecoder`] takes it: if all data shards are there it only decrypts;
//! otherwise it first rebuilds the missing data shards from any `k`. Segments
//! are taken in order, and plaintext is written block by block as each AEAD
//! tag verifies, so nothing unauthenticated is ever written and memory stays
//! at one segment.

use std::io::Write;

use crate::cipher::{DecryptError, FileKey, StreamDecryptor, StreamError};
use crate::erasure::{ErasureCoder, ErasureError};
use crate::id::ContentId;
use crate::manifest::Manifest;
use crate::params::{Layout, SegmentGeometry};

/// Why a shard was not accepted into a segment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("shard index {index} out of range: segments have {n} shards")]
    Index { index: usize, n: usize },
    #[error("shard {index} has {got} bytes, expected {expected}")]
    Size {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("shard {index} does not hash to its id {id}: corrupt or substituted")]
    Mismatch { index: usize, id: ContentId },
}

/// Why decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("segment {index} does not exist (the file has {count})")]
    NoSuchSegment { index: u64, count: u64 },
    #[error("segment {got} given while segment {expected} is next")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("segment {segment}: only {have} good shards, need {need}")]
    NotEnoughShards {
        segment: u64,
        have: usize,
        need: usize,
    },
    #[error("segment {segment}: {source}")]
    Erasure { segment: u64, source: ErasureError },
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    #[error("writing plaintext: {0}")]
    Io(#[from] std::io::Error),
    #[error("{missing} segments were never given")]
    Incomplete { missing: u64 },
}

impl From<StreamError> for DecodeError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Decrypt(d) => Self::Decrypt(d),
            StreamError::Io(io) => Self::Io(io),
        }
    }
}

/// The shards gathered for one segment, each checked against its id.
#[derive(Debug)]
pub struct SegmentShards {
    geometry: SegmentGeometry,
    k: usize,
    ids: Vec<ContentId>,
    slots: Vec<Option<Vec<u8>>>,
    good: usize,
}

impl SegmentShards {
    /// An empty set for segment `index` of `manifest`.
    pub fn new(manifest: &Manifest, index: u64) -> Result<Self, DecodeError> {
        let count = manifest.segment_count();
        let geometry = manifest
            .layout()
            .segment(index)
            .ok_or(DecodeError::NoSuchSegment { index, count })?;
        let ids = manifest
            .segment_shards(index)
            .ok_or(DecodeError::NoSuchSegment { index, count })?
            .to_vec();
        Ok(Self {
            geometry,
            k: manifest.params().k(),
            slots: vec![None; ids.len()],
            ids,
            good: 0,
        })
    }

    pub fn segment(&self) -> u64 {
        self.geometry.index
    }

    /// Size every shard of this segment has.
    pub fn shard_size(&self) -> usize {
        self.geometry.shard_size as usize
    }

    /// The id shard `index` must hash to.
    pub fn expected_id(&self, index: usize) -> Option<ContentId> {
        self.ids.get(index).copied()
    }

    /// Checks and keeps shard `index`. A shard already held is not checked
    /// again. A refused shard leaves the set as it was.
    pub fn insert(&mut self, index: usize, bytes: Vec<u8>) -> Result<(), ShardError> {
        self.keep(index, bytes, true)
    }

    /// Keeps shard `index` whose bytes the caller already verified against
    /// [`Self::expected_id`] (for example while streaming it as a bao
    /// encoding of the whole shard), sparing a second hash of every byte.
    /// The size is still checked.
    pub fn insert_verified(&mut self, index: usize, bytes: Vec<u8>) -> Result<(), ShardError> {
        self.keep(index, bytes, false)
    }

    fn keep(&mut self, index: usize, bytes: Vec<u8>, hash: bool) -> Result<(), ShardError> {
        let n = self.ids.len();
        let id = *self.ids.get(index).ok_or(ShardError::Index { index, n })?;
        if self.slots[index].is_some() {
            return Ok(());
        }
        let expected = self.shard_size();
        if bytes.len() != expected {
            return Err(ShardError::Size {
                index,
                expected,
                got: bytes.len(),
            });
        }
        if hash && !id.matches(&bytes) {
            return Err(ShardError::Mismatch { index, id });
        }
        self.slots[index] = Some(bytes);
        self.good += 1;
        Ok(())
    }

    /// Good shards held.
    pub fn good(&self) -> usize {
        self.good
    }

    /// Whether the segment can be decoded (at least `k` good shards).
    pub fn is_decodable(&self) -> bool {
        self.good >= self.k
    }

    /// Whether every data shard is held, so no decoding is needed.
    pub fn has_all_data(&self) -> bool {
        self.slots[..self.k].iter().all(Option::is_some)
    }

    /// The shards held, by index (for callers that rebuild shards
    /// themselves, such as range reads and repair).
    pub fn into_slots(self) -> Vec<Option<Vec<u8>>> {
        self.slots
    }

    /// Indices not held yet.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| i)
    }
}

/// What decoding one segment took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentReport {
    pub segment: u64,
    /// Data shards rebuilt from parity.
    pub rebuilt: usize,
}

/// Writes a file's plaintext from its segments, in order.
#[derive(Debug)]
pub struct FileDecoder {
    layout: Layout,
    coder: ErasureCoder,
    decryptor: StreamDecryptor,
    next_segment: u64,
    /// Ciphertext bytes of the next segment that precede the resume point.
    skip: u64,
}

impl FileDecoder {
    pub fn new(manifest: &Manifest, key: &FileKey) -> Self {
        let layout = *manifest.layout();
        Self {
            coder: ErasureCoder::new(layout.params()),
            decryptor: StreamDecryptor::new(key, layout),
            next_segment: 0,
            skip: 0,
            layout,
        }
    }

    /// A decoder that resumes writing plaintext at `offset`, rounded down to
    /// a block boundary; returns it with the offset it resumes at. Segments
    /// are then given from [`Self::next_segment`] on, and only plaintext
    /// from the returned offset is written.
    pub fn resume_at(manifest: &Manifest, key: &FileKey, offset: u64) -> (Self, u64) {
        let layout = *manifest.layout();
        let bs = layout.block_size() as u64;
        let len = layout.plaintext_len();
        if offset >= len {
            // Nothing left to write; `finish` still checks the whole file.
            let mut d = Self::new(manifest, key);
            d.next_segment = layout.segment_count();
            d.decryptor = StreamDecryptor::starting_at(key, layout, layout.block_count());
            return (d, len);
        }
        let block = offset / bs;
        let start = layout.block_ciphertext(block).start;
        let segment = start / layout.segment_len();
        let d = Self {
            coder: ErasureCoder::new(layout.params()),
            decryptor: StreamDecryptor::starting_at(key, layout, block),
            next_segment: segment,
            skip: start - segment * layout.segment_len(),
            layout,
        };
        (d, block * bs)
    }

    /// The segment [`Self::write_segment`] wants next.
    pub fn next_segment(&self) -> u64 {
        self.next_segment
    }

    /// Decodes one segment and writes its plaintext.
    pub fn write_segment(
        &mut self,
        mut shards: SegmentShards,
        out: &mut impl Write,
    ) -> Result<SegmentReport, DecodeError> {
        let segment = shards.segment();
        if segment != self.next_segment {
            return Err(DecodeError::OutOfOrder {
                expected: self.next_segment,
                got: segment,
            });
        }
        let k = self.layout.params().k();
        if !shards.is_decodable() {
            return Err(DecodeError::NotEnoughShards {
                segment,
                have: shards.good(),
                need: k,
            });
        }
        let rebuilt = shards.slots[..k].iter().filter(|s| s.is_none()).count();
        if rebuilt > 0 {
            let size = shards.shard_size();
            self.coder
                .reconstruct_data(&mut shards.slots, size)
                .map_err(|source| DecodeError::Erasure { segment, source })?;
        }
        let mut remaining =
            (shards.geometry.ciphertext.end - shards.geometry.ciphertext.start) as usize;
        let mut skip = std::mem::take(&mut self.skip) as usize;
        for slot in &mut shards.slots[..k] {
            let Some(data) = slot else {
                unreachable!("reconstruct_data filled every data slot");
            };
            let take = remaining.min(data.len());
            let skipped = skip.min(take);
            self.decryptor.feed(&mut data[skipped..take], out)?;
            skip -= skipped;
            remaining -= take;
        }
        self.next_segment += 1;
        Ok(SegmentReport { segment, rebuilt })
    }

    /// Checks that every segment was written.
    pub fn finish(self) -> Result<(), DecodeError> {
        let count = self.layout.segment_count();
        if self.next_segment < count {
            return Err(DecodeError::Incomplete {
                missing: count - self.next_segment,
            });
        }
        self.decryptor.finish()?;
        Ok(())
    }
}
