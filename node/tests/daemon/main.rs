//! Storage-node tests with real `cairn-node` processes, real sockets on
//! 127.0.0.1 and real RocksDB stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bulk;
mod chain;
mod chain_p2p;
mod cli;
mod common;
mod faults;
mod hostile;
mod memory;
mod network;
mod payment;
mod receipts;
mod registration;
