//! The chain's state machine.
//!
//! Cairn's chain is small: a handful of validators agree, with an existing
//! BFT engine, on an ordered list of transactions; every validator then runs
//! this state machine over them and must reach the same state. So this module
//! is pure and deterministic: no clock, no randomness, no I/O, ordered maps
//! only, checked arithmetic everywhere, and a state root committed in every
//! block so that any divergence is caught at once.
//!
//! It knows:
//!
//! * **accounts**: balances and nonces; genesis allocations; a devnet faucet;
//! * **transfers**, each paying a fee (burned);
//! * **storage nodes**: registration with stake, addresses, capacity;
//!   updates of a registered node's addresses and capacity;
//! * **deals**: an owner pays escrow for per-node *commitments* (a Merkle-sum
//!   root over the shard ids and sizes that node holds for the deal), each
//!   signed by its node as an acceptance receipt; `CloseDeal` ends one early
//!   and refunds what was not earned;
//! * **storage proofs**: every epoch is a proof period; each node answers
//!   its challenge ([`crate::proofs`]) with one `ProveStorage` in its window,
//!   seeded by the beacon that came with the block opening the window (the
//!   engine passes one with every block); at the period's end each deal pays
//!   the nodes that proved, pro rata to the bytes they hold and have not
//!   lost, keeps the rest for repair, and misses turn a node faulty, then
//!   disqualified: its stake is slashed into the repair pool and its
//!   commitments are orphaned; `DeclareLost` admits lost shards early;
//! * **stake** covering the bytes a node commits (`stake_per_gib`);
//! * **beacons**: the randomness the engine hands in with every block, from
//!   the consensus threshold seed of a view the proposer cannot choose
//!   ([`beacon`] says which);
//! * **namespace roots**: one mutable pointer (an id and a version) per
//!   account, so a recovery phrase alone finds a user's files.
//!
//! Every transaction is ed25519-signed over the chain's genesis hash, a
//! nonce and its body; a transaction that is replayed, badly signed, overdrawn, names an
//! unknown node or carries malformed fields is rejected with a
//! [`Rejection`] saying why, and changes nothing.
//!
//! * **repair**: a deal's owner names its public repair data
//!   (`SetRepairData`); anyone may rebuild lost shards (of orphaned
//!   commitments, or declared or found lost) and move them to new holders
//!   (`ClaimRepair`, first valid claim wins); the claim's bounty (a share of
//!   the deal's withheld pay and of the failed node's slashed stake) is held
//!   until every new holder passed a proof that sampled its new commitment,
//!   then paid, or returned if a new holder fails first.
//!
//! Non-goal here: the consensus engine itself.

pub mod beacon;
mod genesis;
mod hex32;
pub mod merkle;
mod rejection;
pub mod repair;
pub mod sig;
mod state;
mod tx;

pub use beacon::GroupKey;
pub use genesis::{Allocation, Genesis, GenesisHash};
pub use rejection::Rejection;
pub use repair::{
    repair_receipt_message, MovedShard, NewHolder, RepairClaim, RepairCommitment, RepairRef,
    MAX_REPAIR_HOLDERS, MAX_REPAIR_SHARDS,
};
pub use state::{
    Account, BlockOutcome, ChainState, CommittedMap, Deal, DealCommitment, DealId, DealRepair,
    LostRecord, MovedRecord, NamespaceRoot, NodeRecord, PendingRepair, StateEntry, StateHeader,
    StateMap,
};
pub use tx::{
    peer_id_of, receipt_message, Address, Commitment, DealTerms, LostLeaf, Sig, SignedTx,
    Transaction, TxBody, MAX_ADDRESSES, MAX_ADDRESS_LEN, MAX_CHAIN_ID_LEN, MAX_COMMITMENTS,
    MAX_LOST_LEAVES, MAX_PEER_ID_LEN, MAX_TX_BYTES,
};
