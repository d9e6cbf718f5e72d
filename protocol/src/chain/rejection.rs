//! Why a transaction was refused.

use super::tx::Address;

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
    /// deals. (Last variant: rejections are stored postcard-encoded in
    /// blocks, so new ones go at the end.)
    #[error("node {node} holds {used} bytes in deals: capacity {capacity} is below that")]
    CapacityBelowUsed {
        node: Address,
        used: u64,
        capacity: u64,
    },
}
