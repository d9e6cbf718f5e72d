//! Talking to the chain: [`ChainClient`] for the validators' API (over HTTP
//! or libp2p), and the JSON shapes of that API ([`api`]), which the node
//! serves and this library reads.

pub mod api;
mod client;
mod pages;

pub use client::*;
pub use pages::{Paged, MAX_PAGES};
