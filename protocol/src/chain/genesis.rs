//! The genesis file: the chain's parameters and its first balances.

use serde::{Deserialize, Serialize};

use super::beacon::GroupKey;
use super::tx::{Address, MAX_CHAIN_ID_LEN};

/// An initial balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub address: Address,
    pub amount: u64,
}

/// Everything the chain starts from. Stored as JSON by validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Names the chain; every transaction repeats it.
    pub chain_id: String,
    /// Blocks per epoch (proof rounds, payments, beacons).
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
    /// The validators' threshold group public key, which every block's
    /// beacon seed is checked against (see [`super::beacon`]). A validator
    /// refuses to start without one; the state machine does not read it.
    #[serde(default)]
    pub group_key: Option<GroupKey>,
}

impl Genesis {
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

    /// A devnet genesis: a faucet, small epochs, the given validators.
    pub fn devnet(chain_id: &str, validators: Vec<Address>, allocations: Vec<Allocation>) -> Self {
        Self {
            chain_id: chain_id.into(),
            epoch_blocks: 30,
            min_fee: 1,
            min_stake: 1_000,
            faucet_max: Some(1_000_000_000),
            max_deal_epochs: 100_000,
            allocations,
            validators,
            group_key: None,
        }
    }
}
