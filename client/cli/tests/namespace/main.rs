//! The namespace on a devnet of real node and validator processes: the
//! path commands, sharing, recovery from the phrase alone, what nodes get
//! to see, two devices of one account committing at once, following
//! another device's commits, and `cairn mount` as a real FUSE mount.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../network/common.rs"]
#[allow(dead_code)]
mod common;

mod cli;
mod concurrent;
mod follow;
mod mount;
