//! # cairn-client: the library behind the `cairn` command
//!
//! Puts files into a network of Cairn storage nodes and gets them back. A
//! file is encrypted and erasure-coded on this machine (by
//! `cairn-protocol`), its shards are spread over distinct nodes, and what
//! comes back is verified against content ids before a byte is written out.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | the client's TOML config: nodes, redundancy, parallelism |
//! | [`keys`] | the account key file (a BIP-39 recovery phrase, mode 0600) |
//! | [`devnet`] | a local network of real `cairn-node` processes |
//! | [`quickstart`] | the guided tour: devnet, store, lose nodes, read back |
//! | [`rss`] | peak memory of this process, for reports |
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
//! * Finding nodes on its own: the node list comes from the config (the
//!   chain's registry replaces it later).
//! * Paying nodes: storage deals arrive with the chain.

pub mod config;
pub mod devnet;
pub mod keys;
pub mod quickstart;
pub mod rss;
