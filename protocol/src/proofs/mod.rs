//! Storage proofs: every period each node proves, on the chain, that it still
//! holds the bytes it was paid to hold.
//!
//! A node's *committed space* is the concatenation, in deal-id order, of its
//! commitments in the deals active in a period; each commitment is the
//! Merkle-sum tree of [`crate::chain::merkle`] over its shards. In its window
//! of the period ([`challenge::window`]) the node draws `samples` byte
//! offsets from the window's seed, each depending on the previous sample's
//! chunk, and answers each with the 1 KiB chunk holding that byte, the
//! chunk's BLAKE3 path to the shard id ([`chunk`]) and the shard's path to the
//! commitment root. The chain checks a [`StorageProof`] against the
//! commitments alone ([`verify`]); the node builds it from its disk
//! ([`build`]). What a period's outcome does to pay, health and stake is in
//! [`accounting`].
//!
//! Goals: a node that lost a fraction `f` of its bytes fails a period with
//! probability `1 − (1 − f)^samples` (16 samples: 1 % lost is caught with
//! probability 0.15 per period and 0.98 in a day of hourly periods); proofs
//! under 32 KiB; verification in tens of microseconds; no trusted party.
//!
//! Non-goals: proving that the bytes are stored *separately* for each
//! replica (Filecoin's sealing). Cairn's shards of one segment are different
//! bytes already, so a node cannot answer for a sibling shard with its own;
//! what this does and does not stop is written in `docs/proofs.md`.

pub mod accounting;
pub mod challenge;
pub mod chunk;

use serde::{Deserialize, Serialize};

use crate::chain::merkle::{self, Committed, Sibling};
use crate::chain::Address;
use crate::id::ContentId;

/// The granularity of a sample: BLAKE3's chunk.
pub const CHUNK_BYTES: u64 = 1024;
/// Most samples a proof may carry, whatever the genesis says.
pub const MAX_SAMPLES: usize = 64;

/// The proof rules fixed by the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofParams {
    /// Blocks per period (the chain's epoch).
    pub period_blocks: u64,
    /// Blocks a node has to answer once its window's seed is known.
    pub window_blocks: u64,
    /// Samples per proof.
    pub samples: u32,
    /// Consecutive missed periods that make a node faulty.
    pub faulty_after: u32,
    /// Consecutive missed periods that disqualify a node (and slash it).
    pub disqualify_after: u32,
    /// Stake a node locks per GiB it commits, above the chain's minimum.
    pub stake_per_gib: u64,
}

impl Default for ProofParams {
    /// Production: hourly periods of one-second blocks, ten minutes to answer.
    fn default() -> Self {
        Self {
            period_blocks: 3600,
            window_blocks: 600,
            samples: 16,
            faulty_after: 2,
            disqualify_after: 24,
            stake_per_gib: 1_000,
        }
    }
}

impl ProofParams {
    /// Checks the rules; the message names the faulty field.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_blocks == 0 || self.window_blocks >= self.period_blocks {
            return Err("proof_window_blocks: must be at least 1 and below epoch_blocks".into());
        }
        if self.samples == 0 || self.samples as usize > MAX_SAMPLES {
            return Err(format!("proof_samples: must be 1 to {MAX_SAMPLES}"));
        }
        if self.faulty_after == 0 || self.disqualify_after < self.faulty_after {
            return Err(
                "faulty_after_misses must be at least 1 and disqualify_after_misses at least that"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One sample's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The leaf (shard) of the commitment that holds the challenged byte.
    pub leaf: u32,
    pub shard: ContentId,
    pub size: u64,
    /// The leaf's path to the commitment root.
    pub leaf_path: Vec<Sibling>,
    pub answer: Answer,
}

/// A chunk, or the admission that the node no longer has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The chunk's bytes and its BLAKE3 path to the shard id, bottom up.
    Chunk { data: Vec<u8>, path: Vec<[u8; 32]> },
    /// The node cannot produce this chunk: the period fails and the shard
    /// is marked lost. (Shards known lost before the window opened are not
    /// sampled, so declaring a loss early is cheaper than being caught.)
    Lost,
}

/// A node's answer to one period's challenge; the body of `ProveStorage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    /// The node whose commitments are proved: the transaction's signer.
    pub node: Address,
    pub period: u64,
    pub samples: Vec<Sample>,
}

/// One commitment in a node's committed space, as a proof is checked: its
/// tree, and the byte ranges of shards already known lost (sorted, disjoint),
/// which are not sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    pub tree: Committed,
    /// `(start, size)` of each lost shard in the commitment's bytes.
    pub lost: Vec<(u64, u64)>,
}

impl Space {
    /// Bytes still sampled.
    pub fn live(&self) -> u64 {
        let lost: u64 = self.lost.iter().map(|l| l.1).sum();
        self.tree.bytes.saturating_sub(lost)
    }

    /// The commitment offset of the `live`-th byte that is not lost.
    fn skip_lost(&self, live: u64) -> u64 {
        let mut at = live;
        for &(start, size) in &self.lost {
            if start <= at {
                at = at.saturating_add(size);
            } else {
                break;
            }
        }
        at
    }
}

/// Where a sample falls: the commitment and the byte in it.
fn locate_sample(spaces: &[Space], offset: u64) -> Option<(usize, u64)> {
    let (ci, live) = challenge::locate(spaces.iter().map(Space::live), offset)?;
    Some((ci, spaces[ci].skip_lost(live)))
}

fn live_total(spaces: &[Space]) -> Option<u64> {
    spaces
        .iter()
        .try_fold(0u64, |t, s| t.checked_add(s.live()))
        .filter(|t| *t > 0)
}

/// A sample answered [`Answer::Lost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostSample {
    /// Index into the commitments the proof was checked against.
    pub commitment: usize,
    pub leaf: u32,
    pub shard: ContentId,
    /// Where the shard starts in the commitment's bytes.
    pub start: u64,
    pub size: u64,
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProofError {
    #[error("the node has no committed bytes to prove in this period")]
    NothingToProve,
    #[error("proof has {got} samples, the chain asks for {expected}")]
    SampleCount { expected: u32, got: usize },
    #[error("sample {sample}: the shard's path does not verify against the commitment")]
    BadLeafPath { sample: usize },
    #[error("sample {sample}: the challenged byte is not in the shard the sample answers with")]
    WrongLeaf { sample: usize },
    #[error("sample {sample}: the chunk or its path does not verify against the shard id")]
    BadChunk { sample: usize },
}

/// Checks `proof` for the window with `seed` against the node's committed
/// space `spaces` (in canonical order). Returns the samples answered "lost":
/// each is a failure, since known-lost bytes are never sampled.
pub fn verify(
    params: &ProofParams,
    proof: &StorageProof,
    seed: &[u8; 32],
    spaces: &[Space],
) -> Result<Vec<LostSample>, ProofError> {
    if proof.samples.len() != params.samples as usize {
        return Err(ProofError::SampleCount {
            expected: params.samples,
            got: proof.samples.len(),
        });
    }
    let total = live_total(spaces).ok_or(ProofError::NothingToProve)?;
    let mut prev = [0u8; 32];
    let mut lost = Vec::new();
    for (i, s) in proof.samples.iter().enumerate() {
        let offset =
            challenge::sample_offset(seed, &proof.node, proof.period, i as u32, &prev, total);
        let (ci, local) = locate_sample(spaces, offset).ok_or(ProofError::NothingToProve)?;
        let start = merkle::verify(
            &spaces[ci].tree,
            &s.shard,
            s.size,
            u64::from(s.leaf),
            &s.leaf_path,
        )
        .ok_or(ProofError::BadLeafPath { sample: i })?;
        if local < start || local - start >= s.size {
            return Err(ProofError::WrongLeaf { sample: i });
        }
        let chunk_index = (local - start) / CHUNK_BYTES;
        prev = match &s.answer {
            Answer::Chunk { data, path } => {
                chunk::verify(&s.shard, s.size, chunk_index, data, path)
                    .ok_or(ProofError::BadChunk { sample: i })?
            }
            Answer::Lost => {
                lost.push(LostSample {
                    commitment: ci,
                    leaf: s.leaf,
                    shard: s.shard,
                    start,
                    size: s.size,
                });
                challenge::lost_link(&s.shard, chunk_index)
            }
        };
    }
    Ok(lost)
}

/// One commitment as the node holds it: what the chain knows, and the leaf
/// list the node kept when it signed the receipt.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub space: &'a Space,
    pub shards: &'a [(ContentId, u64)],
}

/// Why a node could not build a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no committed bytes to prove")]
    NothingToProve,
    #[error("the kept leaf list of commitment {0} does not match its root, count or bytes")]
    LeafListMismatch(usize),
}

/// Builds the proof for a window: `read` returns a shard's bytes, or `None`
/// when the node no longer has them. Bytes that do not hash to the shard id
/// are answered as lost, never sent.
pub fn build(
    params: &ProofParams,
    node: Address,
    period: u64,
    seed: &[u8; 32],
    held: &[Held<'_>],
    mut read: impl FnMut(&ContentId) -> Option<Vec<u8>>,
) -> Result<StorageProof, BuildError> {
    for (i, h) in held.iter().enumerate() {
        let bytes: Option<u64> = h
            .shards
            .iter()
            .try_fold(0u64, |t, (_, size)| t.checked_add(*size));
        let tree = &h.space.tree;
        if merkle::root(h.shards) != Some(tree.root)
            || h.shards.len() as u64 != tree.count
            || bytes != Some(tree.bytes)
        {
            return Err(BuildError::LeafListMismatch(i));
        }
    }
    let spaces: Vec<Space> = held.iter().map(|h| h.space.clone()).collect();
    let total = live_total(&spaces).ok_or(BuildError::NothingToProve)?;
    let mut cached: Option<(ContentId, Option<Vec<u8>>)> = None;
    let mut prev = [0u8; 32];
    let mut samples = Vec::with_capacity(params.samples as usize);
    for i in 0..params.samples {
        let offset = challenge::sample_offset(seed, &node, period, i, &prev, total);
        let (ci, local) = locate_sample(&spaces, offset).ok_or(BuildError::NothingToProve)?;
        let shards = held[ci].shards;
        let (leaf, in_shard) = challenge::locate(shards.iter().map(|s| s.1), local)
            .ok_or(BuildError::LeafListMismatch(ci))?;
        let (shard, size) = shards[leaf];
        let chunk_index = in_shard / CHUNK_BYTES;
        if cached.as_ref().map(|c| c.0) != Some(shard) {
            let data = read(&shard).filter(|d| d.len() as u64 == size && shard.matches(d));
            cached = Some((shard, data));
        }
        let data = cached.as_ref().and_then(|c| c.1.as_deref());
        let answer = match data.and_then(|d| Some((d, chunk::prove(d, chunk_index)?))) {
            Some((d, path)) => {
                let r = chunk::chunk_range(size, chunk_index).unwrap_or(0..0);
                let chunk = d[r.start as usize..r.end as usize].to_vec();
                prev = chunk::link(size, chunk_index, &chunk);
                Answer::Chunk { data: chunk, path }
            }
            None => {
                prev = challenge::lost_link(&shard, chunk_index);
                Answer::Lost
            }
        };
        samples.push(Sample {
            leaf: leaf as u32,
            shard,
            size,
            leaf_path: merkle::prove(shards, leaf).unwrap_or_default(),
            answer,
        });
    }
    Ok(StorageProof {
        node,
        period,
        samples,
    })
}
