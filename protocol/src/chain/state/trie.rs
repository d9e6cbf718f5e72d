//! The state's Merkle commitment: a persistent binary Patricia trie over
//! 256-bit paths (BLAKE3 of each key), whose root changes in O(log n)
//! hashes per changed entry and whose clones share every node.
//!
//! Only the leaves' paths decide the shape: a branch sits at the first bit
//! where the paths below it differ (its keys agree on every bit before),
//! the 0 side on the left. So one set of entries has one trie and one root,
//! whatever order they were inserted or removed in. Paths are hashes, so
//! the depth is about log2(n) whatever keys an attacker picks.
//!
//! Hashes (BLAKE3, each kind with its own derive-key context, so a leaf can
//! never pass for a branch, nor a path for either):
//!
//! * path of a key: `derive_key("cairn 2026-12 v1 state path", key bytes)`;
//! * leaf: `derive_key("cairn 2026-12 v1 state leaf", path ‖ value bytes)`;
//! * branch: `derive_key("cairn 2026-12 v1 state branch", bit (u16 LE) ‖
//!   left ‖ right)`;
//! * the empty trie: 32 zero bytes.
//!
//! An update copies the nodes on one root-to-leaf path and shares the rest
//! (`Arc`), so a clone is one pointer copy and old versions stay valid.

use std::sync::{Arc, LazyLock};

use blake3::hazmat::{hash_derive_key_context, ContextKey, HasherExt};

const PATH_CONTEXT: &str = "cairn 2026-12 v1 state path";
const LEAF_CONTEXT: &str = "cairn 2026-12 v1 state leaf";
const BRANCH_CONTEXT: &str = "cairn 2026-12 v1 state branch";

// Hashed once: every update hashes a whole path of branches.
static PATH_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(PATH_CONTEXT));
static LEAF_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(LEAF_CONTEXT));
static BRANCH_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(BRANCH_CONTEXT));

/// Where a key sits in the trie.
pub(super) type Path = [u8; 32];

/// The root of a trie with no entries.
pub(super) const EMPTY_ROOT: [u8; 32] = [0; 32];

/// The path of a key, from its canonical encoding.
pub(super) fn path_of(key: &[u8]) -> Path {
    let mut h = blake3::Hasher::new_from_context_key(&PATH_KEY);
    h.update(key);
    *h.finalize().as_bytes()
}

/// The hash of the leaf at `path` holding a value with canonical encoding
/// `value`.
pub(super) fn leaf_hash(path: &Path, value: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_from_context_key(&LEAF_KEY);
    h.update(path);
    h.update(value);
    *h.finalize().as_bytes()
}

fn branch_hash(bit: u16, left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_from_context_key(&BRANCH_KEY);
    h.update(&bit.to_le_bytes());
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Bit `i` of `path`, most significant bit of byte 0 first.
fn bit_at(path: &Path, i: u16) -> usize {
    let i = usize::from(i);
    usize::from((path[i / 8] >> (7 - i % 8)) & 1)
}

/// The first bit where `a` and `b` differ, or `None` if they are equal.
fn first_difference(a: &Path, b: &Path) -> Option<u16> {
    a.iter().zip(b).enumerate().find_map(|(i, (x, y))| {
        let d = x ^ y;
        (d != 0).then(|| (i * 8) as u16 + d.leading_zeros() as u16)
    })
}

#[derive(Debug)]
enum Node {
    Leaf {
        path: Path,
        hash: [u8; 32],
    },
    Branch {
        bit: u16,
        /// The path of the leftmost leaf below: every path below agrees
        /// with it before `bit`.
        path: Path,
        hash: [u8; 32],
        children: [Arc<Node>; 2],
    },
}

impl Node {
    fn hash(&self) -> &[u8; 32] {
        match self {
            Node::Leaf { hash, .. } | Node::Branch { hash, .. } => hash,
        }
    }

    fn path(&self) -> &Path {
        match self {
            Node::Leaf { path, .. } | Node::Branch { path, .. } => path,
        }
    }

    fn branch(bit: u16, children: [Arc<Node>; 2]) -> Arc<Node> {
        Arc::new(Node::Branch {
            bit,
            path: *children[0].path(),
            hash: branch_hash(bit, children[0].hash(), children[1].hash()),
            children,
        })
    }
}

/// A persistent Merkle trie from paths to leaf hashes.
#[derive(Debug, Clone, Default)]
pub(super) struct Trie {
    root: Option<Arc<Node>>,
}

impl Trie {
    /// The root hash ([`EMPTY_ROOT`] when empty).
    pub(super) fn root(&self) -> [u8; 32] {
        self.root.as_ref().map_or(EMPTY_ROOT, |n| *n.hash())
    }

    /// Sets the leaf at `path` to `hash`, adding it if it is new.
    pub(super) fn insert(&mut self, path: &Path, hash: [u8; 32]) {
        let leaf = Arc::new(Node::Leaf { path: *path, hash });
        self.root = Some(match &self.root {
            None => leaf,
            Some(root) => insert(root, path, leaf),
        });
    }

    /// Removes the leaf at `path`, if there is one.
    pub(super) fn remove(&mut self, path: &Path) {
        if let Some(root) = &self.root {
            if let Some(rest) = remove(root, path) {
                self.root = rest;
            }
        }
    }
}

/// `node` with `leaf` (at `path`) put in.
fn insert(node: &Arc<Node>, path: &Path, leaf: Arc<Node>) -> Arc<Node> {
    // Where the new path leaves the paths below `node` (they all agree with
    // `node.path()` above its branch bit).
    let split = first_difference(node.path(), path);
    match &**node {
        Node::Leaf { .. } => match split {
            None => leaf,
            Some(d) => join(d, node.clone(), leaf, path),
        },
        Node::Branch { bit, children, .. } => match split {
            Some(d) if d < *bit => join(d, node.clone(), leaf, path),
            _ => {
                let side = bit_at(path, *bit);
                let mut children = children.clone();
                children[side] = insert(&children[side], path, leaf);
                Node::branch(*bit, children)
            }
        },
    }
}

/// A branch at bit `d` over `existing` and a new `leaf` at `path`.
fn join(d: u16, existing: Arc<Node>, leaf: Arc<Node>, path: &Path) -> Arc<Node> {
    if bit_at(path, d) == 0 {
        Node::branch(d, [leaf, existing])
    } else {
        Node::branch(d, [existing, leaf])
    }
}

/// `node` without the leaf at `path`: `None` if there is no such leaf
/// (nothing changes), `Some(None)` if nothing is left.
fn remove(node: &Arc<Node>, path: &Path) -> Option<Option<Arc<Node>>> {
    match &**node {
        Node::Leaf { path: p, .. } => (p == path).then_some(None),
        Node::Branch { bit, children, .. } => {
            let side = bit_at(path, *bit);
            let rest = match remove(&children[side], path)? {
                // A branch with one child is that child.
                None => children[1 - side].clone(),
                Some(child) => {
                    let mut children = children.clone();
                    children[side] = child;
                    Node::branch(*bit, children)
                }
            };
            Some(Some(rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> (Path, [u8; 32]) {
        let path = path_of(&i.to_le_bytes());
        (path, leaf_hash(&path, b"v"))
    }

    #[test]
    fn empty_and_single_leaf() {
        let mut t = Trie::default();
        assert_eq!(t.root(), EMPTY_ROOT);
        let (p, h) = entry(1);
        t.insert(&p, h);
        assert_eq!(t.root(), h);
        t.remove(&entry(2).0);
        assert_eq!(t.root(), h);
        t.remove(&p);
        assert_eq!(t.root(), EMPTY_ROOT);
    }

    #[test]
    fn two_leaves_hash_as_the_spec_says() {
        let (a, ha) = entry(1);
        let (b, hb) = entry(2);
        let mut t = Trie::default();
        t.insert(&a, ha);
        t.insert(&b, hb);
        let d = first_difference(&a, &b).unwrap();
        let expected = if bit_at(&a, d) == 0 {
            branch_hash(d, &ha, &hb)
        } else {
            branch_hash(d, &hb, &ha)
        };
        assert_eq!(t.root(), expected);
    }

    #[test]
    fn a_clone_keeps_its_root_when_the_original_changes() {
        let mut t = Trie::default();
        for i in 0..100 {
            let (p, h) = entry(i);
            t.insert(&p, h);
        }
        let before = t.clone();
        let root = t.root();
        t.remove(&entry(5).0);
        t.insert(&entry(500).0, entry(500).1);
        assert_ne!(t.root(), root);
        assert_eq!(before.root(), root);
    }

    #[test]
    fn first_difference_counts_from_the_top_bit() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(first_difference(&a, &b), None);
        b[0] = 0x80;
        assert_eq!(first_difference(&a, &b), Some(0));
        assert_eq!(bit_at(&b, 0), 1);
        b[0] = 0;
        b[31] = 1;
        assert_eq!(first_difference(&a, &b), Some(255));
        assert_eq!(bit_at(&b, 255), 1);
    }
}
