//! Shards: bao outboards and verified byte ranges.
//!
//! A shard's id is the BLAKE3 hash of its bytes, which is also the root of
//! its BLAKE3 tree. A node keeps an *outboard* beside each shard: the tree's
//! inner hashes, down to groups of 16 chunks (16 KiB), about 0.4 % of the
//! shard. With it the node can send any byte range together with the hashes
//! that link that range to the root, and the reader checks every 16 KiB as it
//! arrives against nothing but the shard id. This is `bao-tree`'s encoding;
//! this module fixes its parameters and wraps it in typed errors.
//!
//! The reader must know the shard's size (from the manifest or the chain):
//! the tree's shape depends on it.

use std::io::Read;
use std::ops::Range;

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::{encode_ranges_validated, DecodeResponseIter};
use bao_tree::io::{BaoContentItem, Leaf};
use bao_tree::{BaoTree, BlockSize, ByteRanges, ChunkRanges};

use crate::id::ContentId;

/// bao chunk groups of 2^4 chunks of 1 KiB: 16 KiB.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
/// Bytes per chunk group.
pub const GROUP_BYTES: u64 = 16 * 1024;

/// Why a range or outboard did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("range {start}..{end} is outside a shard of {size} bytes")]
    OutOfRange { start: u64, end: u64, size: u64 },
    #[error("hash mismatch at byte {offset}: data does not belong to shard {id}")]
    Mismatch { id: ContentId, offset: u64 },
    #[error("verified stream ended early")]
    Truncated,
    #[error("{0} bytes left over after the verified stream")]
    TrailingData(usize),
    #[error("outboard is {got} bytes, expected {expected} for a {size}-byte shard")]
    OutboardSize {
        got: usize,
        expected: u64,
        size: u64,
    },
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// The bao tree of a shard of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// Number of 16 KiB chunk groups in a shard of `size` bytes (at least one).
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_BYTES).max(1)
}

/// A shard's outboard: its id and its tree's inner hashes, post-order.
#[derive(Clone, PartialEq, Eq)]
pub struct Outboard {
    id: ContentId,
    size: u64,
    hashes: Vec<u8>,
}

impl std::fmt::Debug for Outboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outboard")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("hashes", &self.hashes.len())
            .finish()
    }
}

impl Outboard {
    /// Hashes `data` and builds its outboard.
    pub fn compute(data: &[u8]) -> Self {
        let ob = PostOrderMemOutboard::create(data, BLOCK_SIZE);
        Self {
            id: ContentId::from_digest(*ob.root.as_bytes()),
            size: data.len() as u64,
            hashes: ob.data,
        }
    }

    /// Rebuilds an outboard from stored hashes; checks only their length.
    /// (The hashes are verified against `id` whenever a range is served.)
    pub fn from_parts(id: ContentId, size: u64, hashes: Vec<u8>) -> Result<Self, VerifyError> {
        let expected = tree(size).outboard_size();
        if hashes.len() as u64 != expected {
            return Err(VerifyError::OutboardSize {
                got: hashes.len(),
                expected,
                size,
            });
        }
        Ok(Self { id, size, hashes })
    }

    pub fn id(&self) -> ContentId {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored inner hashes (post-order).
    pub fn hashes(&self) -> &[u8] {
        &self.hashes
    }

    fn mem(&self) -> PostOrderMemOutboard<&[u8]> {
        PostOrderMemOutboard {
            root: self.id.blake3(),
            tree: tree(self.size),
            data: &self.hashes[..],
        }
    }

    /// Encodes the chunk groups covering `range` of `data` for a reader,
    /// checking the data against the outboard first, so a node never sends
    /// bytes that rotted on its disk as good.
    pub fn encode_range(&self, data: &[u8], range: Range<u64>) -> Result<Vec<u8>, VerifyError> {
        self.encode_range_from(data, range)
    }

    /// Like [`Self::encode_range`], reading the shard's bytes from `data` at
    /// their offsets (a file, a slice): only the chunk groups of `range`
    /// are read, so serving a small range of a large shard never holds the
    /// whole shard. A read that fails is [`VerifyError::Encode`].
    pub fn encode_range_from(
        &self,
        data: impl bao_tree::io::sync::ReadAt,
        range: Range<u64>,
    ) -> Result<Vec<u8>, VerifyError> {
        check_range(&range, self.size)?;
        let chunks = chunk_ranges(&range);
        let mut out = Vec::with_capacity(encoded_len_bound(range.end - range.start) as usize);
        encode_ranges_validated(data, self.mem(), &chunks, &mut out).map_err(|e| match e {
            bao_tree::io::EncodeError::LeafHashMismatch(chunk) => VerifyError::Mismatch {
                id: self.id,
                offset: chunk.to_bytes(),
            },
            bao_tree::io::EncodeError::ParentHashMismatch(_) => VerifyError::Mismatch {
                id: self.id,
                offset: 0,
            },
            other => VerifyError::Encode(other.to_string()),
        })?;
        Ok(out)
    }

    /// Encodes the chunk groups covering `range`, as [`Self::encode_range`].
    pub fn encode_chunk_groups(
        &self,
        data: &[u8],
        chunks: &ChunkRanges,
    ) -> Result<Vec<u8>, VerifyError> {
        let mut out = Vec::new();
        encode_ranges_validated(data, self.mem(), chunks, &mut out).map_err(|_| {
            VerifyError::Mismatch {
                id: self.id,
                offset: 0,
            }
        })?;
        Ok(out)
    }
}

fn check_range(range: &Range<u64>, size: u64) -> Result<(), VerifyError> {
    if range.start > range.end || range.end > size {
        return Err(VerifyError::OutOfRange {
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}

fn chunk_ranges(range: &Range<u64>) -> ChunkRanges {
    bao_tree::io::round_up_to_chunks(&ByteRanges::from(range.start..range.end))
}

/// At most how many bytes [`Outboard::encode_range`] writes for a range of
/// `len` bytes: the chunk groups covering it (one partial group at each
/// end), a 64-byte parent per group and two paths to the root, never more
/// than a whole largest shard's encoding. A node reserves this much of its
/// memory budget before it reads a byte.
pub fn encoded_len_bound(len: u64) -> u64 {
    let groups = len / GROUP_BYTES + 2;
    (len + 2 * GROUP_BYTES + 64 * (groups + 2 * 64)).min(crate::wire::MAX_RANGE_BODY)
}

/// Checks an encoded range of shard `id` (of `size` bytes) as it is read and
/// returns exactly the bytes of `range`. Any byte that does not hash up to
/// the id stops the read with an error; nothing unverified is returned.
pub fn verify_range(
    id: ContentId,
    size: u64,
    range: Range<u64>,
    encoded: impl Read,
) -> Result<Vec<u8>, VerifyError> {
    check_range(&range, size)?;
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    let chunks = chunk_ranges(&range);
    let mut encoded = encoded;
    for_each_verified_leaf(id, size, &chunks, &mut encoded, |offset, data| {
        // Leaves cover whole chunk groups; keep the requested bytes only.
        let leaf_end = offset + data.len() as u64;
        let start = range.start.max(offset);
        let end = range.end.min(leaf_end);
        if start < end {
            out.extend_from_slice(&data[(start - offset) as usize..(end - offset) as usize]);
        }
    })?;
    let mut rest = [0u8; 1];
    match encoded.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => return Err(VerifyError::TrailingData(1)),
        Err(_) => return Err(VerifyError::Truncated),
    }
    if out.len() as u64 != range.end - range.start {
        return Err(VerifyError::Truncated);
    }
    Ok(out)
}

/// Walks an encoded response, calling `leaf` with each verified chunk group.
pub(crate) fn for_each_verified_leaf(
    id: ContentId,
    size: u64,
    chunks: &ChunkRanges,
    encoded: impl Read,
    mut leaf: impl FnMut(u64, &[u8]),
) -> Result<(), VerifyError> {
    for item in DecodeResponseIter::new(id.blake3(), tree(size), encoded, chunks) {
        match item {
            Ok(BaoContentItem::Leaf(Leaf { offset, data })) => leaf(offset, &data),
            Ok(BaoContentItem::Parent(_)) => {}
            Err(e) => return Err(decode_error(id, e)),
        }
    }
    Ok(())
}

fn decode_error(id: ContentId, e: bao_tree::io::DecodeError) -> VerifyError {
    use bao_tree::io::DecodeError as D;
    match e {
        D::LeafHashMismatch(chunk) => VerifyError::Mismatch {
            id,
            offset: chunk.to_bytes(),
        },
        D::ParentHashMismatch(_) => VerifyError::Mismatch { id, offset: 0 },
        _ => VerifyError::Truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i >> 10) as u8).collect()
    }

    #[test]
    fn outboard_root_is_the_content_id() {
        for n in [0, 1, 1024, 16 * 1024, 16 * 1024 + 1, 300_000] {
            let d = data(n);
            let ob = Outboard::compute(&d);
            assert_eq!(ob.id(), ContentId::of(&d), "size {n}");
            assert!(Outboard::from_parts(ob.id(), n as u64, ob.hashes().to_vec()).is_ok());
        }
    }

    #[test]
    fn ranges_verify_and_return_exact_bytes() {
        let d = data(200_000);
        let ob = Outboard::compute(&d);
        for range in [
            0..0,
            0..1,
            5..70_000,
            16_384..32_768,
            199_999..200_000,
            0..200_000,
        ] {
            let enc = ob.encode_range(&d, range.clone()).unwrap();
            let got = verify_range(ob.id(), d.len() as u64, range.clone(), &enc[..]).unwrap();
            assert_eq!(got, &d[range.start as usize..range.end as usize]);
        }
    }

    proptest::proptest! {
        /// What a node reserves before it reads covers what it then writes.
        #[test]
        fn encoded_len_never_exceeds_the_bound(size in 1u64..400_000, a in 0u64..400_000, b in 0u64..400_000) {
            let d = data(size as usize);
            let ob = Outboard::compute(&d);
            let (start, end) = (a.min(b) % (size + 1), a.max(b).min(size));
            let range = start.min(end)..end;
            let enc = ob.encode_range(&d, range.clone()).unwrap();
            proptest::prop_assert!(enc.len() as u64 <= encoded_len_bound(range.end - range.start));
        }
    }

    #[test]
    fn a_whole_largest_shard_fits_the_bound() {
        let size = crate::params::MAX_SHARD_SIZE as u64;
        let d = vec![7u8; size as usize];
        let ob = Outboard::compute(&d);
        let enc = ob.encode_range(&d, 0..size).unwrap();
        assert!(enc.len() as u64 <= encoded_len_bound(size));
        assert!(encoded_len_bound(size) <= crate::wire::MAX_RANGE_BODY);
    }

    #[test]
    fn tampering_is_detected() {
        let d = data(100_000);
        let ob = Outboard::compute(&d);
        let enc = ob.encode_range(&d, 20_000..40_000).unwrap();
        let size = d.len() as u64;
        for i in [0, 64, enc.len() / 2, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[i] ^= 1;
            assert!(
                verify_range(ob.id(), size, 20_000..40_000, &bad[..]).is_err(),
                "flip at {i}"
            );
        }
        assert_eq!(
            verify_range(ob.id(), size, 20_000..40_000, &enc[..enc.len() - 1]),
            Err(VerifyError::Truncated)
        );
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(
            verify_range(ob.id(), size, 20_000..40_000, &long[..]),
            Err(VerifyError::TrailingData(1))
        );
        let other = ContentId::of(b"other");
        assert!(matches!(
            verify_range(other, size, 20_000..40_000, &enc[..]),
            Err(VerifyError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_range(ob.id(), size, 0..size + 1, &enc[..]),
            Err(VerifyError::OutOfRange { .. })
        ));
    }

    #[test]
    fn serving_rotten_data_is_refused() {
        let d = data(100_000);
        let ob = Outboard::compute(&d);
        let mut rotten = d.clone();
        rotten[50_000] ^= 0x80;
        assert!(matches!(
            ob.encode_range(&rotten, 40_000..60_000),
            Err(VerifyError::Mismatch { .. })
        ));
        assert!(
            ob.encode_range(&rotten, 0..16_384).is_ok(),
            "untouched groups still serve"
        );
        assert!(Outboard::from_parts(ob.id(), 100_000, vec![0; 3]).is_err());
    }
}
