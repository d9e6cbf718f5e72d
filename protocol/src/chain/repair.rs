//! What repair puts on the chain: a deal's public repair reference, and the
//! claim that moves lost shards of a deal to new holders.
//!
//! The repair data itself (k, m, every shard id and size, which commitment
//! holds which) is a public object in the network ([`crate::repair::data`]);
//! the chain keeps only its id and the root of a Merkle-sum tree over the
//! segments' shards, so a claim can prove each shard it moves against the
//! deal with a path, as a storage proof does against a commitment.

use serde::{Deserialize, Serialize};

use super::genesis::GenesisHash;
use super::merkle::{self, Committed, Sibling, MAX_PATH_LEN};
use super::rejection::Rejection;
use super::state::DealId;
use super::tx::{Address, Sig};
use crate::id::ContentId;

/// Most shards one claim moves.
pub const MAX_REPAIR_SHARDS: usize = 256;
/// Most new holders one claim names (one per shard of a segment at most).
pub const MAX_REPAIR_HOLDERS: usize = 256;
const REPAIR_RECEIPT_DOMAIN: &[u8] = b"cairn repair receipt v2\0";

/// What the chain keeps of a deal's public repair data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRef {
    /// The content id of the encoded [`crate::repair::RepairData`] object.
    pub object: ContentId,
    /// Root of the Merkle-sum tree over every segment's `(shard id, size)`,
    /// segment by segment, shard index within ([`crate::chain::merkle`]).
    pub root: [u8; 32],
    pub k: u16,
    pub m: u16,
    pub segments: u32,
    /// Total bytes of the segments' shards (the tree's byte total).
    pub bytes: u64,
    /// How many commitments the deal opened with (the object lists each).
    pub commitments: u32,
}

impl RepairRef {
    /// Shards per segment.
    pub fn n(&self) -> u32 {
        u32::from(self.k) + u32::from(self.m)
    }

    /// Checks the fields that do not depend on state.
    pub fn check(&self) -> Result<(), Rejection> {
        let bad = |why: &str| Err(Rejection::BadRepairData(why.into()));
        if self.k == 0 || self.m == 0 || self.n() > 256 {
            return bad("k and m must be at least 1 with k + m at most 256");
        }
        if self.segments == 0 || self.bytes == 0 || self.commitments == 0 {
            return bad("repair data names no segment, byte or commitment");
        }
        if u64::from(self.segments) * u64::from(self.n()) > u64::from(u32::MAX) {
            return bad("more than 2^32 shards");
        }
        Ok(())
    }

    /// The repair tree, as paths are checked against it.
    pub fn tree(&self) -> Committed {
        Committed {
            root: self.root,
            count: u64::from(self.segments) * u64::from(self.n()),
            bytes: self.bytes,
        }
    }

    /// Whether `(id, size)` is shard `index` of segment `segment`.
    pub fn verify(
        &self,
        segment: u32,
        index: u16,
        id: &ContentId,
        size: u64,
        path: &[Sibling],
    ) -> bool {
        if segment >= self.segments || u32::from(index) >= self.n() {
            return false;
        }
        let at = u64::from(segment) * u64::from(self.n()) + u64::from(index);
        merkle::verify(&self.tree(), id, size, at, path).is_some()
    }
}

/// One lost shard a claim moves to a new holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedShard {
    pub segment: u32,
    /// The shard's index in its segment (`0..n`).
    pub index: u16,
    pub id: ContentId,
    pub size: u64,
    /// The shard's path in the deal's repair tree.
    pub repair_path: Vec<Sibling>,
    /// The deal commitment that held it (and lost it) and its leaf there.
    pub from: u32,
    pub leaf: u32,
    /// The shard's path in that commitment.
    pub from_path: Vec<Sibling>,
    /// Which of the claim's holders takes it.
    pub to: u16,
}

/// A new holder and its signed acceptance of its new commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHolder {
    pub node: Address,
    /// The node's signature over [`repair_receipt_message`].
    pub receipt: Sig,
}

/// The body of `ClaimRepair`: the signer rebuilt `shards` and stored them on
/// `holders`. Holder `h`'s new commitment is the Merkle-sum tree over the
/// shards with `to == h`, in claim order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairClaim {
    pub deal: DealId,
    pub shards: Vec<MovedShard>,
    pub holders: Vec<NewHolder>,
}

/// A new holder's commitment as a claim defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairCommitment {
    pub node: Address,
    pub root: [u8; 32],
    pub shards: u32,
    pub bytes: u64,
}

impl RepairClaim {
    /// Checks field limits that do not depend on state.
    pub fn check_limits(&self) -> Result<(), Rejection> {
        let bad = |what: &str| Err(Rejection::Malformed(what.into()));
        if self.shards.is_empty() || self.shards.len() > MAX_REPAIR_SHARDS {
            return bad("a repair claim moves 1 to 256 shards");
        }
        if self.holders.is_empty() || self.holders.len() > MAX_REPAIR_HOLDERS {
            return bad("a repair claim names 1 to 256 holders");
        }
        if self
            .shards
            .iter()
            .any(|s| s.repair_path.len() > MAX_PATH_LEN || s.from_path.len() > MAX_PATH_LEN)
        {
            return bad("a commitment path has at most 32 levels");
        }
        Ok(())
    }

    /// The leaf list of holder `h`'s new commitment: its shards in claim order.
    pub fn leaves_of(&self, h: usize) -> Vec<(ContentId, u64)> {
        self.shards
            .iter()
            .filter(|s| usize::from(s.to) == h)
            .map(|s| (s.id, s.size))
            .collect()
    }

    /// Holder `h`'s new commitment; `None` if it takes no shard.
    pub fn commitment(&self, h: usize) -> Option<RepairCommitment> {
        let holder = self.holders.get(h)?;
        let leaves = self.leaves_of(h);
        let bytes = leaves
            .iter()
            .try_fold(0u64, |t, (_, size)| t.checked_add(*size))?;
        Some(RepairCommitment {
            node: holder.node,
            root: merkle::root(&leaves)?,
            shards: u32::try_from(leaves.len()).ok()?,
            bytes,
        })
    }
}

/// What a new holder signs to accept shards moved to it by repair: the
/// chain (its genesis hash), the repairer (so no one else can claim the bounty with this
/// receipt), the deal, and the new commitment. A node is never added to a
/// deal it is in, so a receipt is good for one claim.
pub fn repair_receipt_message(
    genesis: &GenesisHash,
    repairer: &Address,
    deal: &DealId,
    c: &RepairCommitment,
) -> Vec<u8> {
    let mut out = REPAIR_RECEIPT_DOMAIN.to_vec();
    let body = postcard::to_stdvec(&(genesis, repairer, deal, &c.node, &c.root, c.shards, c.bytes))
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
    out.extend_from_slice(&body);
    out
}
