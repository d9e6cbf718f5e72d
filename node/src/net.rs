//! The node's networking. The swarm (one behaviour for nodes and clients),
//! the codecs and the client side are the client library's
//! ([`cairn_client::net`], re-exported here so the daemon names one
//! module); this adds the serving side: shard requests ([`server`]), over
//! libp2p and over the bulk listener ([`bulk`]), and the chain API over
//! libp2p ([`chain_service`]).

pub use cairn_client::net::*;

pub mod budget;
pub mod bulk;
pub mod chain_service;
pub mod server;
