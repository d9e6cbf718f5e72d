//! Why a transaction was refused.

use super::genesis::GenesisHash;
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
    #[error("transaction is for the chain with genesis {got}, not this one (genesis {expected}): it was signed for another chain, or for an earlier launch of this one")]
    WrongChain {
        expected: GenesisHash,
        got: GenesisHash,
    },
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
    // Repair (appended: rejections are stored in blocks).
    #[error("deal {0} already has its repair data")]
    RepairDataSet(DealId),
    #[error("deal {0} has no repair data: it cannot be repaired")]
    NoRepairData(DealId),
    #[error("repair data is invalid: {0}")]
    BadRepairData(String),
    #[error("repair claim is invalid: {0}")]
    BadRepairClaim(String),
    #[error("moved shard {shard}: its id and size are not that shard of the deal's repair data")]
    RepairPathMismatch { shard: usize },
    #[error("moved shard {shard}: it is not that leaf of the commitment it is moved from")]
    RepairSourceMismatch { shard: usize },
    #[error("shard {index} of segment {segment} is not lost: its holder still proves it")]
    ShardNotLost { segment: u32, index: u16 },
    #[error("shard {index} of segment {segment} was already moved by an earlier repair")]
    AlreadyRepaired { segment: u32, index: u16 },
    #[error("node {0} already holds a part of the deal and cannot take repaired shards")]
    HolderInDeal(Address),
    #[error("node {node} would hold two shards of segment {segment}")]
    HolderTwiceInSegment { node: Address, segment: u32 },
    #[error("repair receipt of node {0} does not verify")]
    BadRepairReceipt(Address),
    // Registry (appended).
    #[error("the peer id is not the signer's: a node registers the libp2p identity of its own account key")]
    ForeignPeerId,
}
