//! The storage nodes a client knows and one connection task to them all.
//!
//! Nodes are numbered by their place in the config; placement ranks them by
//! peer id, so the numbering itself never decides where a shard goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::client::{ClientError, ClientSettings, NodeAddr, ShardClient};
use bytes::Bytes;
use cairn_protocol::chain::{Address, Sig};
use cairn_protocol::placement::{place, tickets, Candidate};
use cairn_protocol::wire::{ErrorKind, NodeInfo, ReceiptRequest};
use cairn_protocol::ContentId;
use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use crate::config::ClientConfig;
use crate::error::Error;
use crate::upload::lock;

/// Index of a node in [`Network::nodes`].
pub type NodeIndex = usize;

/// The client's view of the network.
#[derive(Debug, Clone)]
pub struct Network {
    client: ShardClient,
    nodes: Vec<NodeAddr>,
    /// Peer id bytes of each node, as placement and manifests use them.
    ids: Vec<Vec<u8>>,
    /// Each node's placement weight ([`tickets`]) from its stake.
    tickets: Vec<u32>,
    by_peer: HashMap<PeerId, NodeIndex>,
    /// The chain account each node's peer id embeds.
    by_address: HashMap<Address, NodeIndex>,
    timeout: Duration,
    /// What the last exchange with each node showed.
    health: Arc<Mutex<HashMap<NodeIndex, Health>>>,
}

/// What the client last saw of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (even a refusal is an answer).
    Answered,
    /// It could not be reached or did not answer.
    Unreachable,
}

impl Network {
    /// Starts the connection task. Must run inside a tokio runtime.
    pub fn start(config: &ClientConfig) -> Result<Self, Error> {
        if config.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        let client = ShardClient::start(ClientSettings {
            request_timeout: config.request_timeout,
            ..ClientSettings::default()
        })?;
        let nodes = config.nodes.clone();
        let ids = nodes.iter().map(|n| n.peer.to_bytes()).collect();
        let tickets = weights(&nodes, &config.node_stakes);
        let by_peer = nodes.iter().enumerate().map(|(i, n)| (n.peer, i)).collect();
        let by_address = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((crate::net::peer_address(&n.peer)?, i)))
            .collect();
        Ok(Self {
            client,
            nodes,
            ids,
            tickets,
            by_peer,
            by_address,
            timeout: config.request_timeout,
            health: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// What the last exchange with node `i` showed, if any.
    pub fn health(&self, i: NodeIndex) -> Option<Health> {
        lock(&self.health).get(&i).copied()
    }

    /// Orders by what is known: nodes that answered, then unknown ones,
    /// then unreachable ones (a dead node costs a handshake timeout).
    pub fn preference(&self, i: NodeIndex) -> u8 {
        match self.health(i) {
            Some(Health::Answered) => 0,
            None => 1,
            Some(Health::Unreachable) => 2,
        }
    }

    /// Asks every node for its info in the background, so transfers learn
    /// which nodes are up within a round trip instead of a timeout.
    pub fn probe(&self) {
        for i in 0..self.len() {
            let network = self.clone();
            tokio::spawn(async move {
                let _ = network.info(i).await;
            });
        }
    }

    fn note<T>(&self, i: NodeIndex, result: &Result<T, ClientError>) {
        let health = match result {
            Ok(_) => Health::Answered,
            Err(e) if e.refusal().is_some() || matches!(e, ClientError::Verify { .. }) => {
                Health::Answered
            }
            Err(ClientError::Failed { .. }) => Health::Unreachable,
            Err(_) => return,
        };
        lock(&self.health).insert(i, health);
    }

    pub fn nodes(&self) -> &[NodeAddr] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Peer id bytes of node `i`.
    pub fn id(&self, i: NodeIndex) -> &[u8] {
        &self.ids[i]
    }

    /// The node with these peer id bytes, if the config lists it.
    pub fn index_of(&self, id: &[u8]) -> Option<NodeIndex> {
        let peer = PeerId::from_bytes(id).ok()?;
        self.by_peer.get(&peer).copied()
    }

    /// The node with this chain address, if the config lists it.
    pub fn index_of_address(&self, address: &Address) -> Option<NodeIndex> {
        self.by_address.get(address).copied()
    }

    /// Every node, best first for the object with placement `seed`
    /// (rendezvous hashing weighted by stake), spread over subnets: nodes that share an IPv4
    /// /24 or an IPv6 /48 count as one failure domain, so no subnet gets
    /// more than its share of a segment's shards while others are free.
    /// The first `spread` are placed with the subnet cap for `spread`
    /// shards; the rest follow in rendezvous order (spares).
    pub fn ranked(&self, seed: &[u8; 32], spread: usize) -> Vec<NodeIndex> {
        let candidates: Vec<Candidate<'_>> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                id,
                domain: subnet_domain(&self.nodes[i]),
                tickets: self.tickets[i],
            })
            .collect();
        let all = self.ids.len();
        let placed = |n: usize| {
            place(seed, &candidates, n)
                .unwrap_or_else(|e| unreachable!("placing {n} of {all} nodes: {e}"))
        };
        let mut ranked = placed(spread.min(all));
        for i in placed(all) {
            if !ranked.contains(&i) {
                ranked.push(i);
            }
        }
        ranked
    }

    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn store(
        &self,
        node: NodeIndex,
        id: ContentId,
        data: Bytes,
        owner: &SigningKey,
    ) -> Result<bool, ClientError> {
        let r = self
            .client
            .store(&self.nodes[node], id, data, None, owner)
            .await;
        self.note(node, &r);
        r
    }

    pub async fn fetch(
        &self,
        node: NodeIndex,
        id: ContentId,
        size: u64,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let r = self.client.fetch(&self.nodes[node], id, size, range).await;
        self.note(node, &r);
        r
    }

    /// Which of `ids` node `node` holds, in batches the wire allows.
    pub async fn has(
        &self,
        node: NodeIndex,
        ids: &[ContentId],
    ) -> Result<Vec<Option<u64>>, ClientError> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(cairn_protocol::wire::MAX_HAS_IDS) {
            let r = self.client.has(&self.nodes[node], batch.to_vec()).await;
            self.note(node, &r);
            out.extend(r?);
        }
        Ok(out)
    }

    pub async fn info(&self, node: NodeIndex) -> Result<NodeInfo, ClientError> {
        let r = self.client.info(&self.nodes[node]).await;
        self.note(node, &r);
        r
    }

    pub async fn delete(
        &self,
        node: NodeIndex,
        id: ContentId,
        owner: &SigningKey,
    ) -> Result<bool, ClientError> {
        let r = self.client.delete(&self.nodes[node], id, owner).await;
        self.note(node, &r);
        r
    }

    /// Node `node`'s deal receipt for `shards`, verified against its key.
    pub async fn receipt(
        &self,
        node: NodeIndex,
        request: &ReceiptRequest,
        shards: &[(ContentId, u64)],
    ) -> Result<Sig, ClientError> {
        let r = self
            .client
            .receipt(&self.nodes[node], request, shards)
            .await;
        self.note(node, &r);
        r
    }
}

/// The failure domain of a node: a hash of its first address's subnet.
fn subnet_domain(node: &NodeAddr) -> u64 {
    use libp2p::multiaddr::Protocol;
    let mut h = blake3::Hasher::new();
    match node.addrs.first().and_then(|a| a.iter().next()) {
        Some(Protocol::Ip4(ip)) => {
            h.update(b"ip4");
            h.update(&ip.octets()[..3]);
        }
        Some(Protocol::Ip6(ip)) => {
            h.update(b"ip6");
            h.update(&ip.octets()[..6]);
        }
        Some(other) => {
            h.update(other.to_string().as_bytes());
        }
        None => {
            h.update(&node.peer.to_bytes());
        }
    }
    let d = h.finalize();
    u64::from_le_bytes(d.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// A failure, as a short reason naming the node.
pub(crate) fn reason(network: &Network, node: NodeIndex, error: &ClientError) -> String {
    let peer = network.nodes()[node].peer.to_string();
    let short = &peer[peer.len().saturating_sub(6)..];
    match error.refusal() {
        Some(w) => format!("node …{short} refused: {}", w.kind.as_str()),
        None => match error {
            ClientError::Verify { .. } => format!("node …{short} sent corrupt bytes"),
            ClientError::Failed { reason, .. } => format!("node …{short}: {reason}"),
            other => format!("node …{short}: {other}"),
        },
    }
}

/// Whether the node said it does not have the shard (as opposed to failing).
pub(crate) fn is_not_found(error: &ClientError) -> bool {
    matches!(error.refusal(), Some(w) if w.kind == ErrorKind::NotFound)
}

/// Placement weights of `nodes`: tickets for the stake the registry says
/// each locked, in units of the smallest stake among them (the least a node
/// may register with, or more). Nodes of unknown stake (listed in the
/// config file) hold one ticket each, as does everyone when none is known.
fn weights(nodes: &[NodeAddr], stakes: &HashMap<PeerId, u64>) -> Vec<u32> {
    let unit = nodes
        .iter()
        .filter_map(|n| stakes.get(&n.peer).copied())
        .filter(|&s| s > 0)
        .min();
    nodes
        .iter()
        .map(|n| match (unit, stakes.get(&n.peer)) {
            (Some(unit), Some(&stake)) => tickets(stake, unit),
            _ => 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str) -> NodeAddr {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        format!("{addr}/p2p/{peer}").parse().unwrap()
    }

    #[test]
    fn subnets_are_failure_domains() {
        let a = subnet_domain(&node("/ip4/10.0.1.5/udp/1/quic-v1"));
        let b = subnet_domain(&node("/ip4/10.0.1.200/tcp/9"));
        let c = subnet_domain(&node("/ip4/10.0.2.5/udp/1/quic-v1"));
        let d = subnet_domain(&node("/ip6/2001:db8:1::1/udp/1/quic-v1"));
        let e = subnet_domain(&node("/ip6/2001:db8:1:ffff::2/tcp/1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(d, e);
        assert_ne!(a, d);
    }

    #[tokio::test]
    async fn placement_spreads_a_segment_over_subnets() {
        // Six nodes in one subnet, two in each of three others: n = 6
        // takes at most ⌈6/4⌉ = 2 from the crowded subnet.
        let mut nodes: Vec<NodeAddr> = (0..6)
            .map(|i| node(&format!("/ip4/10.0.0.{i}/udp/1/quic-v1")))
            .collect();
        for s in 1..4 {
            for h in 1..3 {
                nodes.push(node(&format!("/ip4/10.0.{s}.{h}/udp/1/quic-v1")));
            }
        }
        let config = ClientConfig::new(std::path::Path::new("/x"), nodes);
        let network = Network::start(&config).unwrap();
        for seed in 0..20u8 {
            let ranked = network.ranked(&[seed; 32], 6);
            assert_eq!(ranked.len(), 12);
            let crowded = ranked[..6].iter().filter(|&&i| i < 6).count();
            assert!(crowded <= 2, "seed {seed}: {crowded} of 6 in one subnet");
        }
    }

    #[test]
    fn registry_stakes_become_tickets_and_unknown_nodes_weigh_one() {
        let nodes: Vec<NodeAddr> = (0..4)
            .map(|i| node(&format!("/ip4/10.0.{i}.1/udp/1/quic-v1")))
            .collect();
        let mut stakes = HashMap::new();
        assert_eq!(weights(&nodes, &stakes), vec![1, 1, 1, 1]);
        stakes.insert(nodes[0].peer, 1_000);
        stakes.insert(nodes[1].peer, 3_500);
        stakes.insert(nodes[2].peer, 0);
        // The unit is the smallest nonzero stake: 1 000.
        assert_eq!(weights(&nodes, &stakes), vec![1, 3, 1, 1]);
    }

    #[tokio::test]
    async fn a_node_with_more_stake_ranks_first_more_often() {
        let nodes: Vec<NodeAddr> = (0..10)
            .map(|i| node(&format!("/ip4/10.0.{i}.1/udp/1/quic-v1")))
            .collect();
        let mut config = ClientConfig::new(std::path::Path::new("/x"), nodes.clone());
        for (i, n) in nodes.iter().enumerate() {
            config
                .node_stakes
                .insert(n.peer, if i == 0 { 10 } else { 1 });
        }
        let network = Network::start(&config).unwrap();
        let first = (0..400u32)
            .filter(|s| network.ranked(blake3::hash(&s.to_le_bytes()).as_bytes(), 1)[0] == 0)
            .count();
        // Ten tickets of nineteen: about half the time, not a tenth.
        assert!((150..250).contains(&first), "first {first} of 400 times");
    }
}
