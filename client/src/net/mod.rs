//! libp2p networking shared by storage nodes and clients.
//!
//! One behaviour for both roles: identify (who is this, where does it
//! listen), Kademlia (find peers), `/cairn/shards/1` request–response
//! for shards (their bodies over [`bulk`] where a node offers it), and `/cairn/chain/1` request–response for the chain's API
//! ([`chain`]). Transports are QUIC (quinn) and TCP with noise and yamux.
//! A client only asks ([`client::ShardClient`]); a node builds the same
//! swarm and answers (its serving side is `cairn_node::net`).

pub mod body_pool;
pub mod bulk;
pub mod chain;
pub mod client;
pub mod codec;

use std::time::Duration;

use cairn_protocol::chain::Address;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour};
use libp2p::{identify, kad, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};

pub use chain::{ChainCodec, ChainRequest};
pub use codec::{ShardCodec, ShardRequest, ShardResponse};

/// An I/O error for bytes a peer sent that do not make a valid message.
fn invalid(message: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Runs a future to completion on a fresh current-thread runtime.
    pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
}

/// Identify's protocol version string; peers with another one are not Cairn.
pub const IDENTIFY_VERSION: &str = "/cairn/1";
/// Kademlia protocol name, so Cairn's DHT never mixes with another network's.
pub const KAD_PROTOCOL: &str = "/cairn/kad/1";

/// Why a swarm could not be built or could not listen.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("transport setup failed: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

/// What the peer is in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves shards; a Kademlia server.
    Node,
    /// Only asks; a Kademlia client.
    Client,
}

/// The combined behaviour.
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct CairnBehaviour {
    /// Refuses connections past [`SwarmSettings::connection_limits`].
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    /// Only nodes run Kademlia. A client knows its nodes' addresses, and a
    /// client-mode DHT keeps redialing the stale addresses of a node that
    /// restarted elsewhere; request–response then fails every request
    /// queued for that peer with the stale dial's error.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub shards: request_response::Behaviour<ShardCodec>,
    /// The chain's API; a validator answers, any other node says it has none.
    pub chain: request_response::Behaviour<ChainCodec>,
}

/// Settings of the swarm.
#[derive(Debug, Clone)]
pub struct SwarmSettings {
    pub role: Role,
    pub request_timeout: Duration,
    pub streams_per_connection: usize,
    pub inbound_buffer: u64,
    /// How many connections the swarm keeps (total, per peer, being set
    /// up); a node bounds them, a client leaves the default (none).
    pub connection_limits: ConnectionLimits,
}

/// Builds a swarm with QUIC and TCP transports and the Cairn behaviour.
pub fn build_swarm(
    keypair: Keypair,
    settings: &SwarmSettings,
) -> Result<Swarm<CairnBehaviour>, NetError> {
    // Leave the behaviour's own deadline (the whole exchange) room to
    // deliver the codec's timeout refusal.
    let codec = ShardCodec::new(settings.inbound_buffer, settings.request_timeout * 3 / 4);
    build_swarm_with_codec(keypair, settings, codec)
}

/// Like [`build_swarm`], with the shard codec given: a node shares its
/// request-body budget with its bulk listener this way.
pub fn build_swarm_with_codec(
    keypair: Keypair,
    settings: &SwarmSettings,
    codec: ShardCodec,
) -> Result<Swarm<CairnBehaviour>, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let settings = settings.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_quic_config(|mut c| {
            // Room for a whole 1 MiB shard in flight per stream, and several
            // streams per connection, so loopback and LAN transfers are not
            // throttled by flow control.
            c.max_stream_data = 16 << 20;
            c.max_connection_data = 64 << 20;
            c.max_concurrent_stream_limit = settings.streams_per_connection as u32;
            c
        })
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                    .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION"))),
            );
            let kad = (settings.role == Role::Node).then(|| {
                let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                config.set_query_timeout(Duration::from_secs(30));
                let mut kad =
                    kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config);
                kad.set_mode(Some(kad::Mode::Server));
                kad
            });
            let support = match settings.role {
                Role::Node => ProtocolSupport::Full,
                Role::Client => ProtocolSupport::Outbound,
            };
            let shards = request_response::Behaviour::with_codec(
                codec,
                [(ShardCodec::protocol(), support.clone())],
                request_response::Config::default()
                    .with_request_timeout(settings.request_timeout)
                    .with_max_concurrent_streams(settings.streams_per_connection),
            );
            let chain = request_response::Behaviour::with_codec(
                ChainCodec::new(settings.request_timeout * 3 / 4),
                [(ChainCodec::protocol(), support)],
                request_response::Config::default()
                    .with_request_timeout(settings.request_timeout)
                    .with_max_concurrent_streams(settings.streams_per_connection),
            );
            CairnBehaviour {
                limits: connection_limits::Behaviour::new(settings.connection_limits.clone()),
                identify,
                kad: kad.into(),
                shards,
                chain,
            }
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// Splits `/ip4/../p2p/<id>` into the peer id and the address without it.
pub fn split_peer(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

/// The chain address of the node with this peer id: an ed25519 peer id
/// embeds its public key. `None` for peer ids of other key types (hashed,
/// so the key cannot be read back).
pub fn peer_address(peer: &PeerId) -> Option<Address> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Code 0 is the identity multihash: the digest is the key itself.
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(Address(key.try_into_ed25519().ok()?.to_bytes()))
}

/// True for identify-reported addresses worth telling the DHT about.
pub fn is_dialable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter()
        .any(|p| matches!(p, Protocol::Tcp(_) | Protocol::QuicV1))
        && !addr.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        })
}
