//! Network faults between hosts: every node, validator and client runs in
//! its own Linux network namespace, linked to a hub through which a relay
//! adds latency and loss; partitions take links down, `tc` limits rates.
//! See docs/simulation.md, "Network fault tests".
//!
//! Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; where a
//! namespace cannot be made, each test says so and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod inns;
mod lab;
mod net;
mod relay;
mod wan;
