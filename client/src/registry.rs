//! Storage nodes from the chain's registry.
//!
//! With a chain configured, the registry says which storage nodes exist:
//! nodes register their peer id and listen addresses themselves when they
//! start (and update them when they move), and a deal can only name
//! registered nodes. The config's `nodes` list is then only the fallback
//! for when no validator answers or nothing is registered yet.
//!
//! Registry entries are written by the nodes, so they are as hostile as any
//! network input: an entry whose peer id does not parse, or with no address
//! that parses, is skipped, and so is an address naming another peer.

use std::collections::HashMap;
use std::time::Duration;

use crate::chain::api::NodeView;
use crate::chain::{ChainClient, ChainError};
use crate::net::client::NodeAddr;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::config::ClientConfig;

/// Where a client's node list came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "source", content = "reason")]
pub enum NodeSource {
    /// The chain's registry.
    Registry,
    /// The config's `nodes`, and why not the registry (`None`: no chain
    /// configured).
    Config(Option<String>),
}

/// The dialable nodes among registry entries, in registry order; nodes
/// that are not active are left out.
pub fn node_addrs(entries: &[NodeView]) -> Vec<NodeAddr> {
    let mut out: Vec<NodeAddr> = Vec::new();
    for entry in entries.iter().filter(|e| e.status == "active") {
        let Some(peer) = hex::decode(&entry.peer_id_hex)
            .ok()
            .and_then(|b| PeerId::from_bytes(&b).ok())
        else {
            continue;
        };
        let addrs: Vec<Multiaddr> = entry
            .addresses
            .iter()
            .filter_map(|text| dialable(text, &peer))
            .collect();
        if addrs.is_empty() || out.iter().any(|n| n.peer == peer) {
            continue;
        }
        out.push(NodeAddr { peer, addrs });
    }
    out
}

/// `text` as an address to dial `peer` at, without a `/p2p` suffix; `None`
/// if it does not parse or names another peer.
fn dialable(text: &str, peer: &PeerId) -> Option<Multiaddr> {
    let mut addr: Multiaddr = text.parse().ok()?;
    if let Some(Protocol::P2p(named)) = addr.iter().last() {
        if named != *peer {
            return None;
        }
        addr.pop();
    }
    (!addr.is_empty()).then_some(addr)
}

/// With a chain in `config`, replaces its `nodes` with the registry's,
/// unless no validator answers or nothing is registered; says which.
pub async fn resolve_nodes(config: &mut ClientConfig, timeout: Duration) -> NodeSource {
    if config.chain.is_empty() {
        return NodeSource::Config(None);
    }
    let chain = match ChainClient::new(&config.chain, timeout) {
        Ok(chain) => chain,
        Err(e) => return NodeSource::Config(Some(e.to_string())),
    };
    match chain.nodes().await.map(|page| page.nodes) {
        Ok(entries) if !node_addrs(&entries).is_empty() => {
            config.nodes = node_addrs(&entries);
            config.node_stakes = node_stakes(&entries);
            NodeSource::Registry
        }
        Ok(_) => NodeSource::Config(Some("no storage node is registered on the chain".into())),
        Err(e) => NodeSource::Config(Some(format!("the registry could not be read: {e}"))),
    }
}

/// The stake of each registry entry whose peer id parses, for placement's
/// weights.
pub fn node_stakes(entries: &[NodeView]) -> HashMap<PeerId, u64> {
    entries
        .iter()
        .filter_map(|e| {
            let bytes = hex::decode(&e.peer_id_hex).ok()?;
            Some((PeerId::from_bytes(&bytes).ok()?, e.stake))
        })
        .collect()
}

/// The registry's active, dialable nodes.
pub async fn registered_nodes(chain: &ChainClient) -> Result<Vec<NodeAddr>, ChainError> {
    Ok(node_addrs(&chain.nodes().await?.nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::chain::Address;

    fn view(peer: &PeerId, addresses: &[&str]) -> NodeView {
        NodeView {
            address: Address([1; 32]),
            peer_id: Some(peer.to_string()),
            peer_id_hex: hex::encode(peer.to_bytes()),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            capacity: 1 << 30,
            used: 0,
            stake: 1000,
            status: "active".into(),
            active_deals: 0,
            registered_at: 1,
            earned: 0,
            proofs_accepted: 0,
            proofs_missed: 0,
            consecutive_misses: 0,
            slashed: 0,
        }
    }

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn hostile_entries_are_skipped_and_good_ones_kept() {
        let (a, b, c) = (peer(), peer(), peer());
        let mut garbage_id = view(&c, &["/ip4/127.0.0.1/tcp/1"]);
        garbage_id.peer_id_hex = "zz".into();
        let mut inactive = view(&c, &["/ip4/127.0.0.1/tcp/1"]);
        inactive.status = "jailed".into();
        let entries = vec![
            view(
                &a,
                &[
                    "/ip4/127.0.0.1/udp/5/quic-v1",
                    "not an address",
                    &format!("/ip4/127.0.0.1/tcp/6/p2p/{a}"),
                    &format!("/ip4/127.0.0.1/tcp/7/p2p/{b}"),
                ],
            ),
            view(&b, &["", "/p2p/x"]),
            garbage_id,
            inactive,
            view(&a, &["/ip4/127.0.0.1/tcp/9"]),
        ];
        let nodes = node_addrs(&entries);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].peer, a);
        let shown: Vec<String> = nodes[0].addrs.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            ["/ip4/127.0.0.1/udp/5/quic-v1", "/ip4/127.0.0.1/tcp/6"]
        );
    }
}
