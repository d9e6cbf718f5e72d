//! The genesis file: the chain's parameters and its first balances.

use serde::{Deserialize, Serialize};

use super::beacon::GroupKey;
use super::tx::{Address, MAX_CHAIN_ID_LEN};
use crate::proofs::ProofParams;

/// The hash that names a chain: BLAKE3 (derive-key mode) of its genesis's
/// postcard encoding ([`Genesis::hash`]), so two genesis files that differ
/// in any field (the validators' fresh threshold key, an allocation, a
/// parameter) name two chains, even under one `chain_id`. Every signature
/// the chain checks covers it: transactions, deal and repair receipts (and
/// so storage proofs, which are transactions), and consensus messages
/// (their namespace is derived from it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenesisHash(pub [u8; 32]);

super::hex32::hex32_newtype!(GenesisHash);

/// The key-derivation context of [`Genesis::hash`].
const GENESIS_CONTEXT: &str = "cairn 2026-11 v1 genesis";

/// An initial balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub address: Address,
    pub amount: u64,
}

/// Everything the chain starts from. Stored as JSON by validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Names the chain for people; signatures name it by [`Genesis::hash`].
    pub chain_id: String,
    /// Blocks per epoch: one proof period, one payment of every deal.
    pub epoch_blocks: u64,
    /// Least fee a transaction pays (burned).
    pub min_fee: u64,
    /// Least stake a storage node locks.
    pub min_stake: u64,
    /// Largest faucet request, or `None` for no faucet (anything but a devnet).
    pub faucet_max: Option<u64>,
    /// Longest deal, in epochs.
    pub max_deal_epochs: u64,
    pub allocations: Vec<Allocation>,
    /// The validators' keys.
    pub validators: Vec<Address>,
    /// Blocks a node has to answer its challenge once its window opens.
    #[serde(default = "defaults::proof_window_blocks")]
    pub proof_window_blocks: u64,
    /// Samples per storage proof.
    #[serde(default = "defaults::proof_samples")]
    pub proof_samples: u32,
    /// Consecutive missed periods that make a node faulty.
    #[serde(default = "defaults::faulty_after_misses")]
    pub faulty_after_misses: u32,
    /// Consecutive missed periods that disqualify a node and slash its stake.
    #[serde(default = "defaults::disqualify_after_misses")]
    pub disqualify_after_misses: u32,
    /// Stake a node locks per GiB it commits, above `min_stake`.
    #[serde(default = "defaults::stake_per_gib")]
    pub stake_per_gib: u64,
    /// How many epochs ahead of the current one a deal may start.
    #[serde(default = "defaults::max_start_ahead_epochs")]
    pub max_start_ahead_epochs: u64,
    /// The validators' threshold group public key, which every block's
    /// beacon seed is checked against (see [`super::beacon`]). A validator
    /// refuses to start without one; the state machine does not read it.
    #[serde(default)]
    pub group_key: Option<GroupKey>,
}

/// Defaults of the fields a genesis file may leave out: the production values
/// of [`ProofParams::default`] (a file with short epochs must set the window).
mod defaults {
    use crate::proofs::ProofParams;

    pub fn proof_window_blocks() -> u64 {
        ProofParams::default().window_blocks
    }
    pub fn proof_samples() -> u32 {
        ProofParams::default().samples
    }
    pub fn faulty_after_misses() -> u32 {
        ProofParams::default().faulty_after
    }
    pub fn disqualify_after_misses() -> u32 {
        ProofParams::default().disqualify_after
    }
    pub fn stake_per_gib() -> u64 {
        ProofParams::default().stake_per_gib
    }
    pub fn max_start_ahead_epochs() -> u64 {
        4
    }
}

impl Genesis {
    /// The chain's name for signatures: see [`GenesisHash`].
    pub fn hash(&self) -> GenesisHash {
        let bytes = postcard::to_stdvec(self)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        let mut h = blake3::Hasher::new_derive_key(GENESIS_CONTEXT);
        h.update(&bytes);
        GenesisHash(*h.finalize().as_bytes())
    }

    /// Checks the parameters; the message names the faulty field.
    pub fn validate(&self) -> Result<(), String> {
        if self.chain_id.is_empty() || self.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err("chain_id: must be 1 to 64 characters".into());
        }
        if self.epoch_blocks == 0 {
            return Err("epoch_blocks: must be at least 1".into());
        }
        if self.max_deal_epochs == 0 {
            return Err("max_deal_epochs: must be at least 1".into());
        }
        self.proof_params().validate()?;
        if self.max_start_ahead_epochs == 0 {
            return Err("max_start_ahead_epochs: must be at least 1".into());
        }
        if self.validators.is_empty() {
            return Err("validators: at least one is needed".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut total: u64 = 0;
        for a in &self.allocations {
            if !seen.insert(a.address) {
                return Err(format!("allocations: {} appears twice", a.address));
            }
            total = total
                .checked_add(a.amount)
                .ok_or("allocations: total overflows")?;
        }
        Ok(())
    }

    /// The storage-proof rules this genesis sets.
    pub fn proof_params(&self) -> ProofParams {
        ProofParams {
            period_blocks: self.epoch_blocks,
            window_blocks: self.proof_window_blocks,
            samples: self.proof_samples,
            faulty_after: self.faulty_after_misses,
            disqualify_after: self.disqualify_after_misses,
            stake_per_gib: self.stake_per_gib,
        }
    }

    /// A devnet genesis: a faucet, the given validators, and periods short
    /// enough to watch: 10 blocks (about 10 s), 4 blocks to answer, faulty
    /// after 2 misses, disqualified after 3.
    pub fn devnet(chain_id: &str, validators: Vec<Address>, allocations: Vec<Allocation>) -> Self {
        Self {
            chain_id: chain_id.into(),
            epoch_blocks: 10,
            min_fee: 1,
            min_stake: 1_000,
            faucet_max: Some(1_000_000_000),
            max_deal_epochs: 100_000,
            allocations,
            validators,
            proof_window_blocks: 4,
            proof_samples: 16,
            faulty_after_misses: 2,
            disqualify_after_misses: 3,
            stake_per_gib: 1_000,
            max_start_ahead_epochs: 4,
            group_key: None,
        }
    }
}
