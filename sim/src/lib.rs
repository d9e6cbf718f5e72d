//! # cairn-sim: years of a Cairn network in seconds
//!
//! A discrete-event simulation of storage nodes failing and being replaced,
//! and of the network repairing what they held. It drives
//! `cairn-protocol`'s own rules — [`placement`](cairn_protocol::placement)
//! to choose nodes for every segment and for every repair, and
//! [`repair`](cairn_protocol::repair) to decide when a segment needs repair
//! and when it is lost — with a virtual clock, so a network of thousands of
//! nodes over years runs in seconds. Same seed, same result.
//!
//! What it models: independent permanent node failures (an annual failure
//! rate), correlated failures of whole failure domains, detection delayed to
//! the next proof epoch, and a repair delay. What it does not model yet:
//! dishonest nodes, bandwidth limits, the chain's economics.

pub mod model;

pub use model::{simulate, SimConfig, SimReport};
