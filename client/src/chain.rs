//! Talking to the chain: the validators' HTTP API. The client lives in
//! `cairn-node` (nodes use it to register themselves); see
//! [`cairn_node::chain_client`].

pub use cairn_node::chain_client::*;
