//! A deal's public repair data: what a stranger needs to rebuild its lost
//! shards without the key, and nothing more.
//!
//! It is an object in the network (postcard, content-addressed like any
//! other), not part of the chain's state: for a 1 GiB file with the default
//! `k = 10, m = 20` it lists 3 840 shards (about 150 KiB), which the chain
//! should not hold for every deal. The deal keeps its id and the root of a
//! Merkle-sum tree over the segments' `(shard id, size)` pairs
//! ([`RepairRef`]), so the chain checks each shard a claim moves with a
//! path, as it checks storage proofs.
//!
//! It holds: `k`, `m`; each commitment the deal opened with, as the leaf
//! list its node signed (so anyone can build a leaf's path in it); and for
//! each segment, which leaf of which commitment is shard `j`. No key, no
//! name, no plaintext length beyond what the shard sizes show. The byte
//! format is in `docs/format.md` §13.

use serde::{Deserialize, Serialize};

use crate::chain::merkle::{self, Sibling};
use crate::chain::{Deal, RepairRef};
use crate::id::ContentId;
use crate::manifest::Manifest;

/// The version this code writes and reads.
pub const REPAIR_DATA_VERSION: u8 = 1;
/// Largest encoded repair data accepted.
pub const MAX_REPAIR_DATA_BYTES: usize = 64 << 20;

/// Each segment of a file as its repair data lists it: the `(id, size)`
/// of its shards in index order.
pub fn manifest_segments(manifest: &Manifest) -> Vec<Vec<(ContentId, u64)>> {
    (0..manifest.segment_count())
        .filter_map(|s| {
            let size = u64::from(manifest.layout().segment(s)?.shard_size);
            let ids = manifest.segment_shards(s)?;
            Some(ids.iter().map(|id| (*id, size)).collect())
        })
        .collect()
}

/// The repair tree's root over `segments` (each segment's `(id, size)`
/// shards in index order), as [`RepairRef::root`] names it. A reader
/// computes it from a file's manifest ([`manifest_segments`]) to find the
/// file's deal on the chain without being told its id.
pub fn tree_root(segments: &[Vec<(ContentId, u64)>]) -> Option<[u8; 32]> {
    let leaves: Vec<(ContentId, u64)> = segments.iter().flatten().copied().collect();
    merkle::root(&leaves)
}

/// A deal's public repair data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairData {
    pub version: u8,
    pub k: u16,
    pub m: u16,
    /// Each commitment of the deal as opened, by index: its `(shard id,
    /// size)` leaves in the order its node signed.
    pub commitments: Vec<Vec<(ContentId, u64)>>,
    /// Each segment: for shard `j` (`0..n`), the commitment and the leaf
    /// in it that held it when the deal opened.
    pub segments: Vec<Vec<(u32, u32)>>,
}

/// Why repair data is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepairDataError {
    #[error("repair data is malformed: {0}")]
    Malformed(String),
    #[error("repair data of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("repair data version {0} is not supported")]
    Version(u8),
    #[error("k and m must be at least 1 with k + m at most 256")]
    Params,
    #[error("repair data has no segment")]
    NoSegments,
    #[error("segment {segment} lists {got} shards, not n = {n}")]
    ShardCount {
        segment: usize,
        n: usize,
        got: usize,
    },
    #[error("shard {index} of segment {segment} names a leaf no commitment has")]
    NoSuchLeaf { segment: usize, index: usize },
    #[error("shard {0:?} is in no commitment of the deal")]
    NotCommitted(ContentId),
    #[error("repair data does not match the deal: {0}")]
    Mismatch(String),
}

impl RepairData {
    /// Repair data for segments of `k + m` shards each, given as `(id, size)`,
    /// held in `commitments` (each the leaf list its node signed). Each shard
    /// is found in the first commitment and leaf that holds it.
    pub fn build(
        k: u16,
        m: u16,
        commitments: Vec<Vec<(ContentId, u64)>>,
        segments: &[Vec<(ContentId, u64)>],
    ) -> Result<Self, RepairDataError> {
        let mut at = std::collections::HashMap::new();
        for (ci, leaves) in commitments.iter().enumerate() {
            for (leaf, s) in leaves.iter().enumerate() {
                at.entry(*s).or_insert((ci as u32, leaf as u32));
            }
        }
        let segments = segments
            .iter()
            .map(|shards| {
                shards
                    .iter()
                    .map(|s| at.get(s).copied().ok_or(RepairDataError::NotCommitted(s.0)))
                    .collect()
            })
            .collect::<Result<Vec<Vec<(u32, u32)>>, _>>()?;
        let data = Self {
            version: REPAIR_DATA_VERSION,
            k,
            m,
            commitments,
            segments,
        };
        data.validate()?;
        Ok(data)
    }

    /// Shards per segment.
    pub fn n(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Checks the structure: version, parameters, `n` shards per segment,
    /// every shard a leaf of a listed commitment.
    pub fn validate(&self) -> Result<(), RepairDataError> {
        if self.version != REPAIR_DATA_VERSION {
            return Err(RepairDataError::Version(self.version));
        }
        if self.k == 0 || self.m == 0 || self.n() > 256 {
            return Err(RepairDataError::Params);
        }
        if self.segments.is_empty() {
            return Err(RepairDataError::NoSegments);
        }
        if (self.segments.len() as u64) * (self.n() as u64) > u64::from(u32::MAX) {
            return Err(RepairDataError::Malformed("more than 2^32 shards".into()));
        }
        for (g, shards) in self.segments.iter().enumerate() {
            if shards.len() != self.n() {
                return Err(RepairDataError::ShardCount {
                    segment: g,
                    n: self.n(),
                    got: shards.len(),
                });
            }
            for (j, (ci, leaf)) in shards.iter().enumerate() {
                let known = self
                    .commitments
                    .get(*ci as usize)
                    .is_some_and(|l| (*leaf as usize) < l.len());
                if !known {
                    return Err(RepairDataError::NoSuchLeaf {
                        segment: g,
                        index: j,
                    });
                }
            }
        }
        Ok(())
    }

    /// Where shard `index` of `segment` was when the deal opened.
    pub fn holder(&self, segment: u32, index: u16) -> Option<(u32, u32)> {
        self.segments
            .get(segment as usize)?
            .get(usize::from(index))
            .copied()
    }

    /// Shard `index` of `segment`: its id and size.
    pub fn shard(&self, segment: u32, index: u16) -> Option<(ContentId, u64)> {
        let (ci, leaf) = self.holder(segment, index)?;
        self.commitments
            .get(ci as usize)?
            .get(leaf as usize)
            .copied()
    }

    /// The repair tree's leaves: every segment's shards, segment by segment.
    pub fn tree_leaves(&self) -> Vec<(ContentId, u64)> {
        (0..self.segments.len() as u32)
            .flat_map(|g| (0..self.n() as u16).map(move |j| (g, j)))
            .filter_map(|(g, j)| self.shard(g, j))
            .collect()
    }

    /// Shard `index` of `segment`'s path in the repair tree.
    pub fn path(&self, segment: u32, index: u16) -> Option<Vec<Sibling>> {
        let at = segment as usize * self.n() + usize::from(index);
        merkle::prove(&self.tree_leaves(), at)
    }

    /// The canonical encoding: the object stored in the network.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"))
    }

    /// Parses and validates repair data fetched from the network.
    pub fn decode(bytes: &[u8]) -> Result<Self, RepairDataError> {
        if bytes.len() > MAX_REPAIR_DATA_BYTES {
            return Err(RepairDataError::TooLarge(bytes.len()));
        }
        if let Some(&v) = bytes.first() {
            if v != REPAIR_DATA_VERSION {
                return Err(RepairDataError::Version(v));
            }
        }
        let (data, rest): (Self, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| RepairDataError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RepairDataError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        data.validate()?;
        Ok(data)
    }

    /// What the deal keeps on the chain.
    pub fn reference(&self) -> RepairRef {
        let leaves = self.tree_leaves();
        RepairRef {
            object: ContentId::of(&self.encode()),
            root: merkle::root(&leaves).unwrap_or([0; 32]),
            k: self.k,
            m: self.m,
            segments: self.segments.len() as u32,
            bytes: leaves.iter().map(|s| s.1).fold(0u64, u64::saturating_add),
            commitments: self.commitments.len() as u32,
        }
    }

    /// Checks this data against a deal on the chain: it is the object the
    /// deal names, and each listed commitment is the one the deal opened with.
    pub fn check_against(&self, deal: &Deal) -> Result<(), RepairDataError> {
        let mismatch = |why: &str| Err(RepairDataError::Mismatch(why.into()));
        let Some(repair) = &deal.repair else {
            return mismatch("the deal names no repair data");
        };
        if self.reference() != repair.data {
            return mismatch("not the object the deal names");
        }
        for (ci, leaves) in self.commitments.iter().enumerate() {
            let Some(c) = deal.commitments.get(ci) else {
                return mismatch("more commitments than the deal");
            };
            let bytes = leaves.iter().map(|s| s.1).fold(0u64, u64::saturating_add);
            if merkle::root(leaves) != Some(c.root)
                || leaves.len() as u64 != u64::from(c.shards)
                || bytes != c.bytes
            {
                return Err(RepairDataError::Mismatch(format!(
                    "commitment {ci}'s leaves are not the ones its node signed"
                )));
            }
        }
        Ok(())
    }
}
