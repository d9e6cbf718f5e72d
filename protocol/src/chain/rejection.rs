//! Why a transaction was refused.

use super::state::DealId;
use super::tx::Address;
use crate::proofs::ProofError;

/// A refused transaction, with the reason. A refused transaction changes
/// nothing, not even the sender's nonce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Rejection {
    #[error("transaction is malformed: {0}")]
    Malformed(String),
    #[error("transaction of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("transaction is for chain '{got}', this is '{expected}'")]
    WrongChain { expected: String, got: String },
    #[error("nonce {got} is not the account's next nonce {expected} (replayed or out of order)")]
    BadNonce { expected: u64, got: u64 },
    #[error("fee {got} is below the minimum {min}")]
    FeeTooLow { min: u64, got: u64 },
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds { need: u64, have: u64 },
    #[error("amount overflows")]
    Overflow,
    #[error("transfer of zero")]
    ZeroAmount,
    #[error("the faucet is disabled on this chain")]
    FaucetDisabled,
    #[error("faucet request of {got} exceeds the per-request limit {max}")]
    FaucetLimit { max: u64, got: u64 },
    #[error("node {0} is already registered")]
    NodeExists(Address),
    #[error("node {0} is not registered or not active")]
    UnknownNode(Address),
    #[error("stake {got} is below the minimum {min}")]
    StakeTooLow { min: u64, got: u64 },
    #[error("node {0} still has active deals")]
    NodeHasDeals(Address),
    #[error("deal is invalid: {0}")]
    InvalidDeal(String),
    #[error("node {0} appears twice in the deal")]
    DuplicateNode(Address),
    #[error("acceptance receipt of node {0} does not verify")]
    BadReceipt(Address),
    #[error("node {node} lacks capacity: {free} bytes free, deal needs {need}")]
    NodeFull { node: Address, free: u64, need: u64 },
    #[error("namespace version {got} is not above the current {current}")]
    StaleNamespace { current: u64, got: u64 },
    /// An `UpdateNode` would leave the node less capacity than it holds in
    /// deals. (Rejections are stored postcard-encoded in blocks, so new
    /// variants go at the end.)
    #[error("node {node} holds {used} bytes in deals: capacity {capacity} is below that")]
    CapacityBelowUsed {
        node: Address,
        used: u64,
        capacity: u64,
    },
    #[error("deal {0} does not exist (or has ended)")]
    UnknownDeal(DealId),
    #[error("only the deal's owner may close it")]
    NotDealOwner,
    #[error("node {node} must lock {need} stake for the bytes it would commit, it has {have}")]
    StakeBelowCommitted { node: Address, need: u64, have: u64 },
    #[error("node {node} is {health} and takes no new deals")]
    NodeNotAccepting { node: Address, health: String },
    #[error("proof is for period {got}, the current period is {expected}")]
    ProofWrongPeriod { expected: u64, got: u64 },
    #[error("proof names node {named}, but {signer} signed it")]
    ProofForOtherNode { named: Address, signer: Address },
    #[error("proof is early: the window opens with block {open}, this is block {height}")]
    ProofEarly { open: u64, height: u64 },
    #[error("proof is late: the window closed at block {close}, this is block {height}")]
    ProofLate { close: u64, height: u64 },
    #[error("period {period} is already proven")]
    AlreadyProven { period: u64 },
    #[error("proof rejected: {0}")]
    BadProof(ProofError),
    #[error("node {0} is disqualified")]
    NodeDisqualified(Address),
    #[error("declared shard {index}: {why}")]
    BadLostLeaf { index: usize, why: String },
}
