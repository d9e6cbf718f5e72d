//! Storage challenges and proofs.
//!
//! Each epoch the chain publishes a beacon. For every (shard, beacon) pair
//! the challenged 16 KiB chunk group is fixed by [`challenged_group`]; the
//! node answers with that group and the sibling hashes on its path to the
//! root, which is bao's encoding of a single chunk group. Anyone holding just
//! the shard id and size checks it with [`StorageProof::verify`].
//!
//! A node that dropped a fraction `f` of a shard fails each challenge with
//! probability about `f`; the chain's proof accounting decides how many
//! samples an epoch takes and how misses are punished.

use bao_tree::{ChunkNum, ChunkRanges};

use crate::id::ContentId;
use crate::shard::{for_each_verified_leaf, group_count, Outboard, VerifyError, GROUP_BYTES};

const CHALLENGE_CONTEXT: &str = "cairn 2026-11 v1 storage challenge";
/// Largest encoded proof accepted: one chunk group plus 64 levels of sibling pairs.
pub const MAX_PROOF_LEN: usize = GROUP_BYTES as usize + 64 * 64;

/// Why a proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("proof answers chunk group {got}, the challenge asked for {expected}")]
    WrongGroup { expected: u64, got: u64 },
    #[error("proof of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("proof does not verify: {0}")]
    Invalid(#[from] VerifyError),
    #[error("proof holds no chunk data")]
    Empty,
}

/// The chunk group of `shard` (of `size` bytes) challenged by `beacon`.
///
/// BLAKE3 in key-derivation mode over `beacon ‖ shard digest`; the first 8
/// bytes as a little-endian integer, reduced modulo the group count (the
/// bias is below 2^-32 for any shard under 32 MiB).
pub fn challenged_group(beacon: &[u8; 32], shard: &ContentId, size: u64) -> u64 {
    let mut h = blake3::Hasher::new_derive_key(CHALLENGE_CONTEXT);
    h.update(beacon);
    h.update(shard.digest());
    let mut word = [0u8; 8];
    h.finalize_xof().fill(&mut word);
    u64::from_le_bytes(word) % group_count(size)
}

/// A proof that its maker held one chunk group of a shard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageProof {
    /// The chunk group it answers.
    pub group: u64,
    /// bao encoding of that group: sibling hashes root-to-leaf, then the data.
    pub encoded: Vec<u8>,
}

fn group_chunks(group: u64) -> ChunkRanges {
    let chunks_per_group = GROUP_BYTES / 1024;
    ChunkRanges::from(ChunkNum(group * chunks_per_group)..ChunkNum((group + 1) * chunks_per_group))
}

impl StorageProof {
    /// Answers a challenge for `group` from a shard's bytes and outboard.
    /// Fails if the stored bytes no longer match (the node should report the
    /// shard lost rather than send a proof that cannot verify).
    pub fn create(data: &[u8], outboard: &Outboard, group: u64) -> Result<Self, VerifyError> {
        let groups = group_count(outboard.size());
        if group >= groups {
            return Err(VerifyError::OutOfRange {
                start: group * GROUP_BYTES,
                end: (group + 1) * GROUP_BYTES,
                size: outboard.size(),
            });
        }
        let encoded = outboard.encode_chunk_groups(data, &group_chunks(group))?;
        Ok(Self { group, encoded })
    }

    /// Checks the proof against the shard id and size alone.
    pub fn verify(
        &self,
        shard: &ContentId,
        size: u64,
        expected_group: u64,
    ) -> Result<(), ProofError> {
        if self.group != expected_group {
            return Err(ProofError::WrongGroup {
                expected: expected_group,
                got: self.group,
            });
        }
        if self.encoded.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLarge(self.encoded.len()));
        }
        let mut leaves = 0usize;
        let mut encoded = &self.encoded[..];
        for_each_verified_leaf(
            *shard,
            size,
            &group_chunks(self.group),
            &mut encoded,
            |_, _| leaves += 1,
        )?;
        if !encoded.is_empty() {
            return Err(VerifyError::TrailingData(encoded.len()).into());
        }
        if leaves == 0 {
            return Err(ProofError::Empty);
        }
        Ok(())
    }
}
