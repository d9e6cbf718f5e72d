//! # cairn-node: the storage-node daemon
//!
//! A storage node accepts shards, keeps them safe on disk, serves them back
//! verified, and tells its operator how it is doing. This crate is the
//! daemon (binary `cairn-node`). It talks to other nodes and to validators
//! through the client library (`cairn-client`: the swarm, `ShardClient`,
//! `ChainClient`), as any client does.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | the TOML config, checked field by field |
//! | [`identity`] | the node's ed25519 key file (0600) |
//! | [`store`] | the shard store (a file per shard, metadata in RocksDB): verified, synced puts, capacity, quarantine |
//! | [`maintenance`] | the scrubber and expiry GC |
//! | [`net`] | the client library's libp2p swarm, plus the serving side of `/cairn/shards/1` and `/cairn/chain/1` |
//! | [`http`] | `/metrics`, `/status` and a status page on loopback; `/chain/...` with a ledger |
//! | [`ledger`] | the chain on this node: blocks, tx index and state in RocksDB, the mempool |
//! | [`registration`] | the node registers itself on the chain at start (and updates its record) |
//! | [`prover`] | the proof worker: proves the node's committed bytes every period, declares losses |
//! | [`terms`] | which deal terms the node signs receipts for |
//! | [`validator`] | the chain engine on real sockets, committing to the ledger |
//! | [`local_chain`] | a validator set on one machine (devnets, tests): genesis, reserved ports, `[chain]` sections |
//! | [`metrics`] | the Prometheus metrics |
//! | [`daemon`] | everything wired together, with graceful shutdown |
//!
//! ## Goals
//!
//! * A shard is acknowledged only when it is verified against its id and
//!   synced to disk; it is never visible half-written; rotten bytes are
//!   never served as good.
//! * Everything a peer sends is bounded (sizes, concurrency, time) so no
//!   peer can exhaust the node's memory or starve other peers.
//! * An operator sees what the node does: logs through `tracing`, metrics in
//!   Prometheus text, a status page.
//!
//! ## Non-goals (yet)
//!
//! Storage proofs on the chain, payments and repair orders come with the
//! chain; NAT traversal and relays are not done: a node needs a reachable
//! address.

pub mod config;
pub mod daemon;
pub mod http;
pub mod identity;
pub mod ledger;
pub mod local_chain;
pub mod log_limit;
pub mod maintenance;
pub mod metrics;
pub mod net;
pub mod prover;
pub mod registration;
pub mod repair;
pub mod store;
pub mod terms;
pub mod validator;
