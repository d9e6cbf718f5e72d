//! Deal commitments: a Merkle root over the (shard id, size) pairs one node
//! holds for a deal, with inclusion proofs.
//!
//! The tree has the shape of RFC 9162's (Certificate Transparency): for `n`
//! leaves the left subtree holds the largest power of two below `n`. Leaves
//! and inner nodes are hashed with distinct BLAKE3 derive-key contexts, so a
//! leaf can never pass for a node. An empty list has no root: a commitment
//! always names at least one shard.
//!
//! As in RFC 9162 a proof is checked against a leaf count; the count is part
//! of the commitment (its `shards` field), which the node signed.

use crate::id::ContentId;

const LEAF_CONTEXT: &str = "cairn 2026-11 v1 commitment leaf";
const NODE_CONTEXT: &str = "cairn 2026-11 v1 commitment node";

/// A leaf: one shard and its size.
pub fn leaf_hash(id: &ContentId, size: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
    h.update(id.digest());
    h.update(&size.to_le_bytes());
    *h.finalize().as_bytes()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(NODE_CONTEXT);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

fn split(n: usize) -> usize {
    // Largest power of two strictly below n (n ≥ 2).
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&subtree(&leaves[..k]), &subtree(&leaves[k..]))
        }
    }
}

/// The root over `shards`, in order; `None` for an empty list.
pub fn root(shards: &[(ContentId, u64)]) -> Option<[u8; 32]> {
    if shards.is_empty() {
        return None;
    }
    let leaves: Vec<[u8; 32]> = shards
        .iter()
        .map(|(id, size)| leaf_hash(id, *size))
        .collect();
    Some(subtree(&leaves))
}

/// The inclusion proof of leaf `index`: sibling hashes, bottom up.
pub fn prove(shards: &[(ContentId, u64)], index: usize) -> Option<Vec<[u8; 32]>> {
    if index >= shards.len() {
        return None;
    }
    let leaves: Vec<[u8; 32]> = shards
        .iter()
        .map(|(id, size)| leaf_hash(id, *size))
        .collect();
    let mut path = Vec::new();
    path_of(&leaves, index, &mut path);
    Some(path)
}

fn path_of(leaves: &[[u8; 32]], index: usize, path: &mut Vec<[u8; 32]>) {
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

/// Checks that `(id, size)` is leaf `index` of `count` under `root`.
pub fn verify(
    root: &[u8; 32],
    id: &ContentId,
    size: u64,
    index: u64,
    count: u64,
    path: &[[u8; 32]],
) -> bool {
    if index >= count {
        return false;
    }
    // RFC 9162 §2.1.3.2.
    let (mut f, mut s) = (index, count - 1);
    let mut r = leaf_hash(id, size);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(n: usize) -> Vec<(ContentId, u64)> {
        (0..n)
            .map(|i| (ContentId::of(&i.to_le_bytes()), 1000 + i as u64))
            .collect()
    }

    #[test]
    fn every_leaf_proves_for_every_size() {
        for n in 1..=33 {
            let s = shards(n);
            let r = root(&s).unwrap();
            for i in 0..n {
                let path = prove(&s, i).unwrap();
                assert!(
                    verify(&r, &s[i].0, s[i].1, i as u64, n as u64, &path),
                    "n {n} i {i}"
                );
                // Wrong size, index, count or path fail.
                assert!(!verify(&r, &s[i].0, s[i].1 + 1, i as u64, n as u64, &path));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify(&r, &s[i].0, s[i].1, j as u64, n as u64, &path));
                    assert!(!verify(&r, &s[i].0, s[i].1, i as u64, n as u64, &path[1..]));
                }
            }
        }
        assert_eq!(root(&[]), None);
        assert_eq!(prove(&shards(3), 3), None);
    }

    #[test]
    fn order_and_content_change_the_root() {
        let s = shards(5);
        let mut swapped = s.clone();
        swapped.swap(0, 1);
        assert_ne!(root(&s), root(&swapped));
        assert_ne!(root(&s), root(&s[..4]));
    }
}
