//! Deal commitments: a Merkle-sum tree over the (shard id, size) pairs one
//! node holds for a deal, with inclusion proofs that also prove where each
//! shard's bytes sit.
//!
//! The tree has the shape of RFC 9162's (Certificate Transparency): for `n`
//! leaves the left subtree holds the largest power of two below `n`. Every
//! inner node hashes its children *and the byte counts under them*, so a
//! path proves not only that a shard is in the commitment but also the byte
//! range `[start, start + size)` it covers in the concatenation of all the
//! commitment's shards. That is what lets the chain draw storage challenges
//! weighted by bytes ([`crate::proofs`]): a challenged byte offset maps to
//! exactly one shard, and a node cannot answer with another.
//!
//! Leaves and inner nodes are hashed with distinct BLAKE3 derive-key
//! contexts, so a leaf can never pass for a node. An empty list has no root:
//! a commitment always names at least one shard. As in RFC 9162 a proof is
//! checked against a leaf count; the count (`shards`) and the total
//! (`bytes`) are part of the commitment the node signed.

use std::sync::LazyLock;

use blake3::hazmat::{hash_derive_key_context, ContextKey, HasherExt};
use serde::{Deserialize, Serialize};

use crate::id::ContentId;

const LEAF_CONTEXT: &str = "cairn 2026-12 v2 commitment leaf";
const NODE_CONTEXT: &str = "cairn 2026-12 v2 commitment node";

// The derive-key contexts, hashed once: proofs hash hundreds of tree nodes.
static LEAF_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(LEAF_CONTEXT));
static NODE_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(NODE_CONTEXT));

/// Longest inclusion path accepted: a commitment has at most 2^32 leaves.
pub const MAX_PATH_LEN: usize = 32;

/// A sibling on an inclusion path: its subtree's hash and byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    pub hash: [u8; 32],
    pub bytes: u64,
}

/// A leaf: one shard and its size.
pub fn leaf_hash(id: &ContentId, size: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_from_context_key(&LEAF_KEY);
    h.update(id.digest());
    h.update(&size.to_le_bytes());
    *h.finalize().as_bytes()
}

fn node_hash(left: &Sibling, right: &Sibling) -> [u8; 32] {
    let mut h = blake3::Hasher::new_from_context_key(&NODE_KEY);
    h.update(&left.hash);
    h.update(&left.bytes.to_le_bytes());
    h.update(&right.hash);
    h.update(&right.bytes.to_le_bytes());
    *h.finalize().as_bytes()
}

fn split(n: usize) -> usize {
    // Largest power of two strictly below n (n ≥ 2).
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree(leaves: &[Sibling]) -> Sibling {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = split(n);
            let (l, r) = (subtree(&leaves[..k]), subtree(&leaves[k..]));
            Sibling {
                hash: node_hash(&l, &r),
                bytes: l.bytes.saturating_add(r.bytes),
            }
        }
    }
}

fn leaves(shards: &[(ContentId, u64)]) -> Vec<Sibling> {
    shards
        .iter()
        .map(|(id, size)| Sibling {
            hash: leaf_hash(id, *size),
            bytes: *size,
        })
        .collect()
}

/// The root over `shards`, in order; `None` for an empty list.
pub fn root(shards: &[(ContentId, u64)]) -> Option<[u8; 32]> {
    if shards.is_empty() {
        return None;
    }
    Some(subtree(&leaves(shards)).hash)
}

/// The inclusion proof of leaf `index`: siblings, bottom up.
pub fn prove(shards: &[(ContentId, u64)], index: usize) -> Option<Vec<Sibling>> {
    if index >= shards.len() {
        return None;
    }
    let mut path = Vec::new();
    path_of(&leaves(shards), index, &mut path);
    Some(path)
}

fn path_of(leaves: &[Sibling], index: usize, path: &mut Vec<Sibling>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        path_of(&leaves[..k], index, path);
        path.push(subtree(&leaves[k..]));
    } else {
        path_of(&leaves[k..], index - k, path);
        path.push(subtree(&leaves[..k]));
    }
}

/// What a tree is checked against: the commitment's root, leaf count and
/// total bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub root: [u8; 32],
    pub count: u64,
    pub bytes: u64,
}

/// Checks that `(id, size)` is leaf `index` of `tree`; returns the offset of
/// the leaf's first byte in the concatenation of the tree's shards, or
/// `None` if anything disagrees (root, position, sizes or total).
pub fn verify(
    tree: &Committed,
    id: &ContentId,
    size: u64,
    index: u64,
    path: &[Sibling],
) -> Option<u64> {
    if index >= tree.count || path.len() > MAX_PATH_LEN {
        return None;
    }
    // RFC 9162 §2.1.3.2, carrying the byte counts along.
    let (mut f, mut s) = (index, tree.count - 1);
    let mut r = Sibling {
        hash: leaf_hash(id, size),
        bytes: size,
    };
    let mut start = 0u64;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            start = start.checked_add(p.bytes)?;
            r = Sibling {
                hash: node_hash(p, &r),
                bytes: p.bytes.checked_add(r.bytes)?,
            };
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = Sibling {
                hash: node_hash(&r, p),
                bytes: r.bytes.checked_add(p.bytes)?,
            };
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0 && r.hash == tree.root && r.bytes == tree.bytes).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(n: usize) -> Vec<(ContentId, u64)> {
        (0..n)
            .map(|i| (ContentId::of(&i.to_le_bytes()), 1000 + i as u64))
            .collect()
    }

    fn committed(s: &[(ContentId, u64)]) -> Committed {
        Committed {
            root: root(s).unwrap(),
            count: s.len() as u64,
            bytes: s.iter().map(|x| x.1).sum(),
        }
    }

    #[test]
    fn every_leaf_proves_its_position_for_every_size() {
        for n in 1..=33 {
            let s = shards(n);
            let t = committed(&s);
            let mut start = 0;
            for i in 0..n {
                let path = prove(&s, i).unwrap();
                assert_eq!(
                    verify(&t, &s[i].0, s[i].1, i as u64, &path),
                    Some(start),
                    "n {n} i {i}"
                );
                start += s[i].1;
                // Wrong size, index, count, total or path fail.
                assert_eq!(verify(&t, &s[i].0, s[i].1 + 1, i as u64, &path), None);
                let mut more = t;
                more.bytes += 1;
                assert_eq!(verify(&more, &s[i].0, s[i].1, i as u64, &path), None);
                if n > 1 {
                    let j = (i + 1) % n;
                    assert_eq!(verify(&t, &s[i].0, s[i].1, j as u64, &path), None);
                    assert_eq!(verify(&t, &s[i].0, s[i].1, i as u64, &path[1..]), None);
                    let mut lying = path.clone();
                    lying[0].bytes += 1;
                    assert_eq!(verify(&t, &s[i].0, s[i].1, i as u64, &lying), None);
                }
            }
        }
        assert_eq!(root(&[]), None);
        assert_eq!(prove(&shards(3), 3), None);
    }

    #[test]
    fn order_content_and_sizes_change_the_root() {
        let s = shards(5);
        let mut swapped = s.clone();
        swapped.swap(0, 1);
        assert_ne!(root(&s), root(&swapped));
        assert_ne!(root(&s), root(&s[..4]));
        let mut resized = s.clone();
        resized[2].1 += 1;
        assert_ne!(root(&s), root(&resized));
    }

    #[test]
    fn cached_context_keys_are_the_derive_key_contexts() {
        let id = ContentId::of(b"x");
        let mut h = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
        h.update(id.digest());
        h.update(&7u64.to_le_bytes());
        assert_eq!(leaf_hash(&id, 7), *h.finalize().as_bytes());
    }

    #[test]
    fn hostile_paths_do_not_panic() {
        let s = shards(4);
        let t = committed(&s);
        let huge = vec![
            Sibling {
                hash: [0; 32],
                bytes: u64::MAX
            };
            MAX_PATH_LEN + 1
        ];
        assert_eq!(verify(&t, &s[0].0, s[0].1, 0, &huge), None);
        assert_eq!(verify(&t, &s[0].0, s[0].1, 3, &huge[..2]), None);
        assert_eq!(verify(&t, &s[0].0, u64::MAX, 0, &huge[..2]), None);
        let empty = Committed { count: 0, ..t };
        assert_eq!(verify(&empty, &s[0].0, s[0].1, 0, &[]), None);
    }
}
