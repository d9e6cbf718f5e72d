//! # cairn-client: the network-access library
//!
//! Puts files into a network of Cairn storage nodes and gets them back, and
//! talks to the chain; the `cairn` command (crate `cairn-cli`) and the
//! storage node (`cairn-node`) are built on it. It depends on
//! `cairn-protocol` and never on the node: a program that only stores and
//! reads files does not compile a storage engine or a consensus engine. A
//! file is encrypted and erasure-coded on this machine (by
//! `cairn-protocol`), its shards are spread over distinct nodes, and what
//! comes back is verified against content ids before a byte is written out.
//!
//! | module | holds |
//! |---|---|
//! | [`client`] | [`Client`]: put, get, get_range, stat, rm |
//! | [`chain`] | [`ChainClient`](chain::ChainClient): the validators' API (HTTP or libp2p): state, deals, submitting transactions; [`chain::api`], its JSON shapes |
//! | [`net`] | the libp2p swarm nodes and clients share, the `/cairn/shards/1` and `/cairn/chain/1` codecs, [`ShardClient`](net::client::ShardClient) |
//! | [`upload`] | the upload pipeline: encode, place, race slow nodes, journal |
//! | [`deal`] | a storage deal for an upload: per-node commitments, the nodes' signed receipts, the `OpenDeal` transaction |
//! | [`download`] | the download pipeline: data shards first, race, decode, in order |
//! | [`file_deal`] | a file's deal as the chain sees it: found from the manifest, where repair moved its shards |
//! | [`status`] / [`remove`] | `stat` and `rm` |
//! | [`journal`] | what an interrupted upload already stored |
//! | [`network`] | the known nodes and the connection task |
//! | [`registry`] | storage nodes from the chain's registry |
//! | [`error`] | [`Error`]: every failure, with what to do |
//! | [`progress`] | progress reports for bars |
//! | [`config`] | the client's TOML config: nodes, redundancy, parallelism |
//! | [`keys`] | the account key file (a BIP-39 recovery phrase, mode 0600) |
//! | [`namespace`] | files with names: the account's encrypted tree, batches, commits on chain |
//!
//! ## Goals
//!
//! * **Nothing readable leaves the machine.** Nodes see shard ids, shard
//!   bytes (ciphertext) and shard sizes; never names, keys or plaintext.
//! * **Bounded memory.** A transfer holds a few segments, whatever the file
//!   size.
//! * **Integrity.** Every shard and every range is checked against its id;
//!   every block against its authentication tag.
//!
//! ## Non-goals (for now)
//!
//! * Discovering nodes without a chain: without one, the node list comes
//!   from the config; with one, from its registry ([`Client::open`]).
//! * Proving storage and repairing: a deal ([`Client::open_deal`]) records
//!   what each node committed to; storage proofs and repair orders are
//!   built on it next.

pub mod chain;
pub mod client;
pub mod config;
pub mod deal;
pub mod download;
pub mod error;
pub mod file_deal;
pub mod journal;
pub mod keys;
pub mod namespace;
pub mod net;
pub mod network;
pub mod progress;
pub mod registry;
pub mod remove;
pub mod repair_data;
pub mod replace;
pub mod status;
pub mod upload;

pub use client::{Client, GetOptions, PutOptions};
pub use config::ClientConfig;
pub use deal::{DealOptions, OpenedDeal};
pub use download::GetReport;
pub use error::Error;
pub use status::FileStatus;
pub use upload::{PlacedShard, PutReport};
