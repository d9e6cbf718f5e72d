//! The client against real `cairn-node` processes on 127.0.0.1: round
//! trips, node failures during transfers, resumption, bad input, and what
//! the nodes get to see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod cli;
mod deal;
mod faults;
mod liar;
mod privacy;
mod round_trip;
