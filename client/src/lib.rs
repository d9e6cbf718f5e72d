//! # cairn-client: the library behind the `cairn` command
//!
//! Today this crate runs Cairn's data path locally: [`quickstart`] encrypts
//! and erasure-codes a file with `cairn-protocol`, writes each shard column
//! to its own directory (one per would-be node), destroys as many of those
//! directories as the redundancy allows, and rebuilds the file from what is
//! left, checking every shard against its id and every block against its
//! tag. The networked pipelines (placement on real nodes, long-tail
//! cancellation, resumable transfers) build on the same calls.
//!
//! Non-goals for now: talking to nodes or the chain.

pub mod quickstart;
pub mod rss;
