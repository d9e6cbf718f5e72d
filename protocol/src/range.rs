//! Range reads: which shard bytes hold a plaintext byte range.
//!
//! A plaintext range maps to the AEAD blocks that contain it, those blocks to
//! a ciphertext range, and the ciphertext range to byte ranges of data shards
//! (possibly spanning several shards and segments). A reader fetches just
//! those shard bytes, verified against the shard ids, and [`ReadPlan::open`]
//! decrypts the blocks and cuts out the requested bytes. No parity is
//! involved unless a data shard is unavailable, in which case the reader
//! falls back to fetching any `k` whole shards of that segment.

use std::ops::Range;

use crate::cipher::{BlockCipher, DecryptError, FileKey};
use crate::id::ContentId;
use crate::manifest::Manifest;
use crate::params::Layout;

/// Why a range cannot be planned or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("range {start}..{end} is outside a file of {len} bytes")]
    OutOfRange { start: u64, end: u64, len: u64 },
    #[error("expected {expected} ciphertext bytes for the plan, got {got}")]
    CiphertextLen { expected: u64, got: u64 },
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
}

/// A byte range of one data shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPiece {
    pub segment: u64,
    /// Shard index within the segment (always a data shard, `< k`).
    pub shard: usize,
    pub id: ContentId,
    /// Full size of that shard (what verification needs).
    pub shard_size: u32,
    /// The bytes wanted, within the shard.
    pub range: Range<u64>,
}

/// How to read one plaintext range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    layout: Layout,
    plaintext: Range<u64>,
    blocks: Range<u64>,
    ciphertext: Range<u64>,
    pieces: Vec<ShardPiece>,
}

impl ReadPlan {
    /// Plans reading `range` of the file described by `manifest`.
    pub fn new(manifest: &Manifest, range: Range<u64>) -> Result<Self, RangeError> {
        let layout = *manifest.layout();
        let len = layout.plaintext_len();
        if range.start > range.end || range.end > len {
            return Err(RangeError::OutOfRange {
                start: range.start,
                end: range.end,
                len,
            });
        }
        if range.is_empty() {
            return Ok(Self {
                layout,
                plaintext: range,
                blocks: 0..0,
                ciphertext: 0..0,
                pieces: Vec::new(),
            });
        }
        let bs = layout.block_size() as u64;
        let blocks = range.start / bs..(range.end - 1) / bs + 1;
        let ciphertext = layout.block_ciphertext(blocks.start).start
            ..layout.block_ciphertext(blocks.end - 1).end;
        let mut pieces = Vec::new();
        let mut pos = ciphertext.start;
        while pos < ciphertext.end {
            let segment = pos / layout.segment_len();
            let geometry = layout.segment(segment).unwrap_or_else(|| {
                unreachable!("ciphertext position {pos} lies inside the layout")
            });
            let size = geometry.shard_size as u64;
            let within = pos - geometry.ciphertext.start;
            let shard = (within / size) as usize;
            let offset = within % size;
            let take = (size - offset).min(ciphertext.end - pos);
            let ids = manifest.segment_shards(segment).unwrap_or_default();
            pieces.push(ShardPiece {
                segment,
                shard,
                id: ids[shard],
                shard_size: geometry.shard_size,
                range: offset..offset + take,
            });
            pos += take;
        }
        Ok(Self {
            layout,
            plaintext: range,
            blocks,
            ciphertext,
            pieces,
        })
    }

    /// The shard ranges to fetch, in ciphertext order.
    pub fn pieces(&self) -> &[ShardPiece] {
        &self.pieces
    }

    /// Ciphertext bytes the pieces add up to.
    pub fn ciphertext_len(&self) -> u64 {
        self.ciphertext.end - self.ciphertext.start
    }

    /// Decrypts the fetched ciphertext (the pieces concatenated in order)
    /// and returns exactly the requested plaintext.
    pub fn open(&self, key: &FileKey, ciphertext: &[u8]) -> Result<Vec<u8>, RangeError> {
        if ciphertext.len() as u64 != self.ciphertext_len() {
            return Err(RangeError::CiphertextLen {
                expected: self.ciphertext_len(),
                got: ciphertext.len() as u64,
            });
        }
        if self.plaintext.is_empty() {
            return Ok(Vec::new());
        }
        let cipher = BlockCipher::new(key);
        let bs = self.layout.block_size() as u64;
        let last_block = self.layout.block_count() - 1;
        let mut plain = Vec::with_capacity(((self.blocks.end - self.blocks.start) * bs) as usize);
        let mut buf = Vec::with_capacity(self.layout.sealed_block_size() as usize);
        for block in self.blocks.clone() {
            let r = self.layout.block_ciphertext(block);
            buf.clear();
            buf.extend_from_slice(
                &ciphertext[(r.start - self.ciphertext.start) as usize
                    ..(r.end - self.ciphertext.start) as usize],
            );
            cipher.open(block, block == last_block, &mut buf)?;
            plain.extend_from_slice(&buf);
        }
        let skip = (self.plaintext.start - self.blocks.start * bs) as usize;
        let len = (self.plaintext.end - self.plaintext.start) as usize;
        plain.drain(..skip);
        plain.truncate(len);
        Ok(plain)
    }
}
