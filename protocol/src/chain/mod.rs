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
//! * **deals**: an owner pays escrow for per-node *commitments* (a Merkle root
//!   over the shard ids and sizes that node holds for the deal), each signed
//!   by its node as an acceptance receipt; every epoch the escrow pays the
//!   nodes pro rata to the bytes they hold, and what is left returns to the
//!   owner when the deal ends;
//! * **epochs**, each with a beacon: the randomness the engine hands in
//!   with the block that opens it, from the consensus threshold seed of a
//!   view the proposer cannot choose ([`beacon`] says which),
//!   from which storage challenges are derived ([`crate::proof`]);
//! * **namespace roots**: one mutable pointer (an id and a version) per
//!   account, so a recovery phrase alone finds a user's files.
//!
//! Every transaction is ed25519-signed over the chain id, a nonce and its
//! body; a transaction that is replayed, badly signed, overdrawn, names an
//! unknown node or carries malformed fields is rejected with a
//! [`Rejection`] saying why, and changes nothing.
//!
//! Non-goals here: storage-proof accounting, slashing and repair bounties
//! (they build on deals and epochs), and the consensus engine itself.

pub mod beacon;
mod genesis;
pub mod merkle;
mod rejection;
mod state;
mod tx;

pub use beacon::GroupKey;
pub use genesis::{Allocation, Genesis};
pub use rejection::Rejection;
pub use state::{
    Account, BlockOutcome, ChainState, Deal, DealCommitment, DealId, NamespaceRoot, NodeRecord,
    NodeStatus,
};
pub use tx::{
    receipt_message, Address, Commitment, DealTerms, Sig, SignedTx, Transaction, TxBody,
    MAX_ADDRESSES, MAX_ADDRESS_LEN, MAX_CHAIN_ID_LEN, MAX_COMMITMENTS, MAX_PEER_ID_LEN,
    MAX_TX_BYTES,
};
