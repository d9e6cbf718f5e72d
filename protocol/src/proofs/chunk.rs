//! One 1 KiB chunk of a shard, proved against the shard's id alone.
//!
//! A shard's id is the BLAKE3 hash of its bytes, and BLAKE3 is itself a
//! Merkle tree over 1 KiB chunks. So a chunk plus the chaining values of the
//! sibling subtrees on its way to the root proves that the chunk is at its
//! place in the shard, with nothing but the id and the size to check it
//! against. The tree arithmetic is BLAKE3's own (`blake3::hazmat`), not a
//! second tree: the id the client computed when it encoded the file is the
//! root the chain checks.
//!
//! Sizes: a path has one 32-byte value per level, ⌈log2(chunks)⌉ levels, so
//! a chunk of a 1 MiB shard costs 1 KiB of data and 320 bytes of path.

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::id::ContentId;

use super::CHUNK_BYTES;

/// Deepest path accepted: shards are far below 2^48 chunks.
pub const MAX_CHUNK_PATH: usize = 48;
/// Largest shard size a proof is checked for (2^48 chunks).
const MAX_SIZE: u64 = CHUNK_BYTES << MAX_CHUNK_PATH;

/// How many chunks a shard of `size` bytes has (an empty shard has one,
/// empty, chunk in BLAKE3; Cairn never stores one).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_BYTES).max(1)
}

/// The byte range of chunk `index` in a shard of `size` bytes.
pub fn chunk_range(size: u64, index: u64) -> Option<std::ops::Range<u64>> {
    let start = index.checked_mul(CHUNK_BYTES)?;
    (start < size).then(|| start..size.min(start + CHUNK_BYTES))
}

fn cv_of(data: &[u8], offset: u64) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    h.finalize_non_root()
}

/// What links a sample to the next: the chunk's chaining value, or the
/// shard's hash for a one-chunk shard. `data` must be chunk `index`.
pub fn link(size: u64, index: u64, data: &[u8]) -> [u8; 32] {
    if size <= CHUNK_BYTES {
        *blake3::hash(data).as_bytes()
    } else {
        cv_of(data, index.saturating_mul(CHUNK_BYTES))
    }
}

/// Which side of each split, top down, leads to chunk `index` of a tree of
/// `size` bytes.
fn sides(size: u64, index: u64) -> Vec<bool> {
    let target = index * CHUNK_BYTES;
    let (mut lo, mut len) = (0u64, size);
    let mut out = Vec::new();
    while len > CHUNK_BYTES {
        let left = left_subtree_len(len);
        let in_left = target < lo + left;
        out.push(in_left);
        if in_left {
            len = left;
        } else {
            lo += left;
            len -= left;
        }
    }
    out
}

/// The sibling chaining values of chunk `index` of `shard`, bottom up.
/// `None` if the chunk is outside the shard.
pub fn prove(shard: &[u8], index: u64) -> Option<Vec<[u8; 32]>> {
    let size = shard.len() as u64;
    chunk_range(size, index)?;
    let mut path = Vec::new();
    let (mut lo, mut len) = (0u64, size);
    for in_left in sides(size, index) {
        let left = left_subtree_len(len);
        let (sib_lo, sib_len) = if in_left {
            (lo + left, len - left)
        } else {
            (lo, left)
        };
        let sib = &shard[sib_lo as usize..(sib_lo + sib_len) as usize];
        path.push(cv_of(sib, sib_lo));
        if in_left {
            len = left;
        } else {
            lo += left;
            len -= left;
        }
    }
    path.reverse();
    Some(path)
}

/// Checks that `data` is chunk `index` of the shard `id` of `size` bytes.
/// Returns the chunk's chaining value (the shard's hash for a one-chunk
/// shard), which links a sample to the next ([`super::challenge`]).
pub fn verify(
    id: &ContentId,
    size: u64,
    index: u64,
    data: &[u8],
    path: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if size > MAX_SIZE {
        return None;
    }
    let range = chunk_range(size, index)?;
    if data.len() as u64 != range.end - range.start || path.len() > MAX_CHUNK_PATH {
        return None;
    }
    let link = link(size, index, data);
    if size <= CHUNK_BYTES {
        return (path.is_empty() && &link == id.digest()).then_some(link);
    }
    let sides = sides(size, index);
    if sides.len() != path.len() {
        return None;
    }
    let mut cv = link;
    // `sides` is top down, `path` bottom up; the last merge is the root's.
    let levels = sides.len();
    for (level, (in_left, sibling)) in sides.iter().rev().zip(path).enumerate() {
        let (l, r) = if *in_left {
            (&cv, sibling)
        } else {
            (sibling, &cv)
        };
        if level + 1 == levels {
            let root = merge_subtrees_root(l, r, Mode::Hash);
            return (root.as_bytes() == id.digest()).then_some(link);
        }
        cv = merge_subtrees_non_root(l, r, Mode::Hash);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 7 + i / 1024) as u8).collect()
    }

    #[test]
    fn every_chunk_of_many_sizes_verifies_against_the_id() {
        for size in [
            1usize, 1023, 1024, 1025, 2048, 3000, 4096, 5121, 16_384, 70_001,
        ] {
            let data = shard(size);
            let id = ContentId::of(&data);
            for index in 0..chunk_count(size as u64) {
                let path = prove(&data, index).unwrap();
                let r = chunk_range(size as u64, index).unwrap();
                let chunk = &data[r.start as usize..r.end as usize];
                assert!(
                    verify(&id, size as u64, index, chunk, &path).is_some(),
                    "size {size} chunk {index}"
                );
                // A flipped byte, another index, a wrong size or a cut path fail.
                let mut bad = chunk.to_vec();
                bad[0] ^= 1;
                assert!(verify(&id, size as u64, index, &bad, &path).is_none());
                // The size is authenticated by the commitment, not the id,
                // but one that moves the chunk's end is caught here.
                if r.end == size as u64 {
                    assert!(verify(&id, size as u64 + 1, index, chunk, &path).is_none());
                }
                if !path.is_empty() {
                    assert!(verify(&id, size as u64, index, chunk, &path[1..]).is_none());
                    let other = (index + 1) % chunk_count(size as u64);
                    if other != index {
                        assert!(verify(&id, size as u64, other, chunk, &path).is_none());
                    }
                }
            }
            assert!(prove(&data, chunk_count(size as u64)).is_none());
        }
    }

    #[test]
    fn hostile_arguments_do_not_panic() {
        let data = shard(5000);
        let id = ContentId::of(&data);
        assert!(verify(&id, 5000, u64::MAX, &data[..1024], &[]).is_none());
        assert!(verify(&id, u64::MAX, 3, &data[..1024], &[[0; 32]; 40]).is_none());
        assert!(verify(&id, 0, 0, &[], &[]).is_none());
        assert!(verify(&id, 5000, 0, &data[..1024], &[[0; 32]; MAX_CHUNK_PATH + 1]).is_none());
    }
}
