//! The beacon: which randomness each block hands the state machine.
//!
//! Storage challenges are drawn from the beacon, so no one may choose it
//! and no prover may learn it before the challenges it picks are fixed.
//! Cairn takes it from the consensus engine's threshold VRF: in every view
//! the validators sign the view number with a threshold BLS key (a
//! signature over the view alone, recovered from any quorum of partial
//! signatures), the **seed** of that view. It is unique (one signature per
//! message under one group key) and unpredictable to anyone holding fewer
//! than a quorum of shares, like a drand round.
//!
//! The rule ([`seed_view`]):
//!
//! * a block whose parent is the genesis block carries no seed; its beacon
//!   is [`genesis_beacon`];
//! * every other block carries the seed of **its parent's view** (the view
//!   in which the parent was proposed and notarized), and its beacon is
//!   [`beacon_from_seed`] of that seed's signature.
//!
//! So the beacon of a block is fixed before the block is proposed (the
//! parent's view has its notarization, which carries the seed), and the
//! proposer cannot choose it: it does not depend on the block's
//! transactions, their order, its timestamp or anything else the proposer
//! picks, and a proposer that withholds its block only hands the same
//! parent, and so the same seed, to the next leader. The one lever left is
//! the parent's own leader: with `f` accomplices it can learn its view's
//! seed from the votes before its block is notarized and let the block be
//! nullified instead, which moves the next block onto an older parent and
//! another seed. That is one re-draw, paid for with its slot, against the
//! unbounded grinding a block digest allowed.
//!
//! A node's proof window in a period ([`crate::proofs`]) uses the beacon of
//! the block that opens the window, so its challenge comes from the seed of
//! the view of the block before it. That block is final before the state
//! machine applies the next one, so the challenge comes from a view that is
//! final when it is used, and nothing about it was known before that view's
//! votes were cast; the prover learns it only when its window opens.
//! ([`epoch_opening_height`] names the block whose beacon a period's status
//! reports.)
//!
//! A light verifier checks a block's seed with the group public key of the
//! genesis ([`GroupKey`]) alone: the block carries the seed's view and
//! signature, and the parent block carries its own view.

use serde::{Deserialize, Serialize};

use super::genesis::GenesisHash;

/// The key-derivation context of [`beacon_from_seed`].
const BEACON_CONTEXT: &str = "cairn 2026-12 v1 beacon";

/// The beacon of a block whose parent is the genesis block (no view before
/// it has a seed).
pub fn genesis_beacon(genesis: &GenesisHash) -> [u8; 32] {
    *blake3::hash(&genesis.0).as_bytes()
}

/// The beacon a seed gives: BLAKE3 (derive-key) of the seed signature's
/// canonical (compressed) encoding, as drand hashes its round signature.
pub fn beacon_from_seed(seed_signature: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(BEACON_CONTEXT);
    h.update(seed_signature);
    *h.finalize().as_bytes()
}

/// The view whose seed a block carries, from its parent's height and view:
/// `None` on the genesis block (height 0), else the parent's view.
pub fn seed_view(parent_height: u64, parent_view: u64) -> Option<u64> {
    (parent_height > 0).then_some(parent_view)
}

/// The height of the block that opens `epoch`, whose beacon is the
/// epoch's; `None` for epoch 0, which starts at genesis with the genesis
/// state's beacon.
pub fn epoch_opening_height(epoch: u64, epoch_blocks: u64) -> Option<u64> {
    (epoch > 0).then(|| epoch.saturating_mul(epoch_blocks))
}

/// The validators' threshold group public key: the commitment to the
/// dealt polynomial, in the consensus engine's encoding (its constant term
/// is the key seeds verify against). Opaque here; JSON carries it as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey(pub Vec<u8>);

impl Serialize for GroupKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&data_encoding::HEXLOWER.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for GroupKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(text.as_bytes())
                .map(GroupKey)
                .map_err(|e| serde::de::Error::custom(format!("group key: {e}")))
        } else {
            Ok(GroupKey(serde_bytes_vec(d)?))
        }
    }
}

fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_byte_buf(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_the_parents_view_and_none_on_genesis() {
        assert_eq!(seed_view(0, 0), None);
        assert_eq!(seed_view(1, 7), Some(7));
        assert_eq!(seed_view(41, 99), Some(99));
        assert_eq!(epoch_opening_height(0, 30), None);
        assert_eq!(epoch_opening_height(3, 30), Some(90));
    }

    #[test]
    fn beacons_are_domain_separated_and_depend_on_every_byte() {
        let sig = [5u8; 48];
        let b = beacon_from_seed(&sig);
        assert_ne!(b, *blake3::hash(&sig).as_bytes());
        let mut other = sig;
        other[47] ^= 1;
        assert_ne!(beacon_from_seed(&other), b);
        assert_ne!(
            genesis_beacon(&GenesisHash([1; 32])),
            genesis_beacon(&GenesisHash([2; 32]))
        );
    }

    #[test]
    fn group_key_round_trips_through_postcard() {
        let key = GroupKey(vec![0xab, 0x01, 0xff]);
        let bytes = postcard::to_stdvec(&key).unwrap();
        assert_eq!(postcard::from_bytes::<GroupKey>(&bytes).unwrap(), key);
    }
}
