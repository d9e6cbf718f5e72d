//! Repair without the owner: lost shards are rebuilt, with the same bytes
//! and so the same ids, by anyone, and moved to new holders through the
//! chain.
//!
//! Cairn's Reed–Solomon code is systematic and deterministic, so any `k`
//! shards of a segment give back every other shard byte for byte: a
//! stranger who knows a segment's shard ids can rebuild a lost shard and
//! anyone can check the result against its id, without the file's key.
//! One rule for node, chain and simulator:
//!
//! * [`policy`]: when a segment needs repair (Storj's threshold rule);
//! * [`data`]: the public repair data of a deal (k, m, the shard ids and
//!   sizes of every segment, which commitment holds which), the object whose
//!   id and tree root the deal keeps on the chain;
//! * [`plan`]: from the chain's state, each segment's health, the shards
//!   that are lost, and where the rebuilt ones go (protocol placement,
//!   never a node already in the deal, never a faulty or disqualified one);
//! * [`claim`]: the `ClaimRepair` body for a set of moved shards, with every
//!   path the chain checks;
//! * [`bounty`]: what a claim is paid, from the deal and from the pool.
//!
//! The chain side (what a claim must prove, the bounty) is in
//! `chain::state::repairing`; the scheme and its threat model in
//! `docs/repair.md`.

pub mod bounty;
pub mod claim;
pub mod data;
pub mod plan;
pub mod policy;

pub use claim::prepare;
pub use data::{RepairData, RepairDataError};
pub use plan::{
    assess, choose_holders, columns, placement_seed, RepairError, SegmentStatus, ShardState,
};
pub use policy::{Health, RepairPolicy};
