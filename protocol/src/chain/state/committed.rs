//! [`CommittedMap`]: one map of the state with its Merkle commitment.
//!
//! The entries live in a persistent ordered map (`imbl::OrdMap`) and their
//! commitment in a persistent trie ([`super::trie`]), so cloning a whole
//! state (a proposal's trial, a mempool's dry run, an unfinalized block's
//! post-state) copies a few pointers, whatever the state's size. A mutation
//! only notes its key; the trie rehashes the noted keys when it is brought
//! up to date ([`CommittedMap::commit`], once per block), each in O(log n).
//! The keys are also kept until the store takes them
//! ([`CommittedMap::take_changes`]), so a block writes only what it changed.

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::trie::{self, Trie};

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value)
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"))
}

/// A map of the state and its commitment.
#[derive(Clone)]
pub struct CommittedMap<K: Ord + Clone, V: Clone> {
    entries: OrdMap<K, V>,
    /// Covers every entry but those in `stale`.
    trie: Trie,
    /// Keys changed since the trie was last brought up to date.
    stale: OrdSet<K>,
    /// Keys changed since the store last took them.
    unsaved: OrdSet<K>,
}

/// The leaf of `key` holding `value`: its path and hash.
fn leaf<K: Serialize, V: Serialize>(key: &K, value: &V) -> (trie::Path, [u8; 32]) {
    let path = trie::path_of(&encode(key));
    (path, trie::leaf_hash(&path, &encode(value)))
}

impl<K, V> CommittedMap<K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    pub fn new() -> Self {
        Self {
            entries: OrdMap::new(),
            trie: Trie::default(),
            stale: OrdSet::new(),
            unsaved: OrdSet::new(),
        }
    }

    fn touch(&mut self, key: &K) {
        self.stale.insert(key.clone());
        self.unsaved.insert(key.clone());
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// The value of `key` to change in place (the key is rehashed later,
    /// changed or not).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.entries.contains_key(key) {
            self.touch(key);
        }
        self.entries.get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touch(&key);
        self.entries.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.entries.remove(key);
        if old.is_some() {
            self.touch(key);
        }
        old
    }

    /// The place of `key`, to fill in ([`Entry::or_default`]).
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        Entry { map: self, key }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter()
    }

    /// Entries after `key` (all of them for `None`), in key order: where a
    /// page of a listing starts, found in O(log n).
    pub fn iter_after(&self, key: Option<&K>) -> impl Iterator<Item = (&K, &V)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = key.map_or(Unbounded, Excluded);
        self.entries.range::<_, K>((start, Unbounded::<&K>))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values()
    }

    /// Brings the commitment up to date: rehashes every key changed since
    /// the last time.
    pub fn commit(&mut self) {
        let stale = std::mem::take(&mut self.stale);
        apply(&mut self.trie, &self.entries, &stale);
    }

    /// The commitment to every entry. Cheap once [`Self::commit`] ran;
    /// before, it hashes the changed keys on a copy of the trie.
    pub fn root(&self) -> [u8; 32] {
        if self.stale.is_empty() {
            return self.trie.root();
        }
        let mut trie = self.trie.clone();
        apply(&mut trie, &self.entries, &self.stale);
        trie.root()
    }

    /// The root computed from nothing but the entries (what
    /// [`Self::root`] must always equal).
    pub fn root_from_scratch(&self) -> [u8; 32] {
        let mut trie = Trie::default();
        for (k, v) in self.entries.iter() {
            let (path, hash) = leaf(k, v);
            trie.insert(&path, hash);
        }
        trie.root()
    }

    /// The keys changed since the last call, each with its value now
    /// (`None`: removed), in key order.
    pub fn take_changes(&mut self) -> Vec<(K, Option<V>)> {
        std::mem::take(&mut self.unsaved)
            .into_iter()
            .map(|k| {
                let v = self.entries.get(&k).cloned();
                (k, v)
            })
            .collect()
    }
}

/// A key's place in a [`CommittedMap`], as `BTreeMap::entry` gives.
#[derive(Debug)]
pub struct Entry<'a, K: Ord + Clone, V: Clone> {
    map: &'a mut CommittedMap<K, V>,
    key: K,
}

impl<'a, K, V> Entry<'a, K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize + Default,
{
    /// The value, the default inserted first if there is none.
    pub fn or_default(self) -> &'a mut V {
        self.map.touch(&self.key);
        self.map.entries.entry(self.key).or_default()
    }
}

fn apply<K, V>(trie: &mut Trie, entries: &OrdMap<K, V>, keys: &OrdSet<K>)
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    for k in keys {
        match entries.get(k) {
            Some(v) => {
                let (path, hash) = leaf(k, v);
                trie.insert(&path, hash);
            }
            None => trie.remove(&trie::path_of(&encode(k))),
        }
    }
}

impl<K, V> Default for CommittedMap<K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    fn default() -> Self {
        Self::new()
    }
}

/// A map built from entries is committed and has nothing unsaved.
impl<K, V> FromIterator<(K, V)> for CommittedMap<K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let entries: OrdMap<K, V> = iter.into_iter().collect();
        let mut trie = Trie::default();
        for (k, v) in entries.iter() {
            let (path, hash) = leaf(k, v);
            trie.insert(&path, hash);
        }
        Self {
            entries,
            trie,
            stale: OrdSet::new(),
            unsaved: OrdSet::new(),
        }
    }
}

/// `map[&key]`, as for a `BTreeMap`: panics if `key` is absent.
impl<K, V> std::ops::Index<&K> for CommittedMap<K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.entries.get(key).expect("no entry for the key")
    }
}

/// Equal entries, equal maps (and equal roots), whatever is pending.
impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for CommittedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for CommittedMap<K, V> {}

impl<K: Ord + Clone + std::fmt::Debug, V: Clone + std::fmt::Debug> std::fmt::Debug
    for CommittedMap<K, V>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

/// Encoded as the map of its entries (as a `BTreeMap` is).
impl<K, V> Serialize for CommittedMap<K, V>
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter())
    }
}

impl<'de, K, V> Deserialize<'de> for CommittedMap<K, V>
where
    K: Ord + Clone + Serialize + Deserialize<'de>,
    V: Clone + Serialize + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = std::collections::BTreeMap::<K, V>::deserialize(d)?;
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Update(u16, u32),
        Remove(u16),
        Commit,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few keys, so updates and removes hit existing entries often.
        prop_oneof![
            4 => (0u16..64, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0u16..64, any::<u32>()).prop_map(|(k, v)| Op::Update(k, v)),
            2 => (0u16..64).prop_map(Op::Remove),
            1 => Just(Op::Commit),
        ]
    }

    fn run(map: &mut CommittedMap<u16, u32>, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    map.insert(*k, *v);
                }
                Op::Update(k, v) => {
                    if let Some(x) = map.get_mut(k) {
                        *x = *v;
                    } else {
                        *map.entry(*k).or_default() = *v;
                    }
                }
                Op::Remove(k) => {
                    map.remove(k);
                }
                Op::Commit => map.commit(),
            }
        }
    }

    proptest! {
        /// After any mutations the incremental root is the root of the
        /// contents built from nothing, committed or not.
        #[test]
        fn incremental_root_equals_the_root_from_scratch(
            start in proptest::collection::btree_map(0u16..64, any::<u32>(), 0..40),
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            let mut map: CommittedMap<u16, u32> = start.into_iter().collect();
            run(&mut map, &ops);
            let pending = map.root();
            prop_assert_eq!(pending, map.root_from_scratch());
            map.commit();
            prop_assert_eq!(map.root(), pending);
            let rebuilt: CommittedMap<u16, u32> =
                map.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(rebuilt.root(), pending);
        }

        /// The same contents reached in any order have the same root.
        #[test]
        fn equal_contents_give_equal_roots_whatever_the_order(
            entries in proptest::collection::btree_map(any::<u16>(), any::<u32>(), 0..80),
            seed in any::<u64>(),
            extra in proptest::collection::vec(any::<u16>(), 0..20),
        ) {
            let forward: CommittedMap<u16, u32> = entries.clone().into_iter().collect();
            // Another order, with entries that come and go on the way.
            let mut shuffled: Vec<(u16, u32)> = entries.clone().into_iter().collect();
            let n = shuffled.len().max(1) as u64;
            for i in 0..shuffled.len() {
                let j = ((seed.wrapping_mul(i as u64 + 1)) % n) as usize;
                shuffled.swap(i, j);
            }
            let mut other = CommittedMap::new();
            for k in &extra {
                other.insert(*k, 7);
            }
            other.commit();
            for (k, v) in &shuffled {
                other.insert(*k, *v);
            }
            for k in &extra {
                if !entries.contains_key(k) {
                    other.remove(k);
                }
            }
            prop_assert_eq!(&other, &forward);
            prop_assert_eq!(other.root(), forward.root());
            other.commit();
            prop_assert_eq!(other.root(), forward.root());
        }

        /// A clone is unaffected by later changes to the original, and the
        /// changes the store takes are exactly the keys whose value differs
        /// from the clone's (or were touched without a change).
        #[test]
        fn clones_are_independent_and_changes_cover_every_difference(
            start in proptest::collection::btree_map(0u16..64, any::<u32>(), 0..40),
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let mut map: CommittedMap<u16, u32> = start.into_iter().collect();
            let before = map.clone();
            let root = before.root();
            run(&mut map, &ops);
            prop_assert_eq!(before.root(), root);
            let changes = map.take_changes();
            prop_assert!(map.take_changes().is_empty());
            // Replaying the changes onto the clone gives the new contents.
            let mut replayed = before.clone();
            for (k, v) in changes {
                match v {
                    Some(v) => { replayed.insert(k, v); }
                    None => { replayed.remove(&k); }
                }
            }
            prop_assert_eq!(&replayed, &map);
            prop_assert_eq!(replayed.root(), map.root());
        }
    }

    #[test]
    fn a_value_change_changes_the_root_and_an_empty_map_has_the_empty_root() {
        let mut map: CommittedMap<u16, u32> = CommittedMap::new();
        assert_eq!(map.root(), trie::EMPTY_ROOT);
        map.insert(1, 1);
        let one = map.root();
        map.insert(1, 2);
        assert_ne!(map.root(), one);
        map.insert(1, 1);
        assert_eq!(map.root(), one);
        map.remove(&1);
        assert_eq!(map.root(), trie::EMPTY_ROOT);
    }

    #[test]
    fn encodes_as_a_btreemap() {
        let map: CommittedMap<u16, u32> = [(1, 10), (2, 20)].into_iter().collect();
        let plain: std::collections::BTreeMap<u16, u32> = [(1, 10), (2, 20)].into();
        let bytes = encode(&map);
        assert_eq!(bytes, encode(&plain));
        let back: CommittedMap<u16, u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.root(), map.root());
    }
}
