//! A client of storage nodes: stores, fetches (verified), asks and deletes
//! shards over `/cairn/shards/1`.
//!
//! [`ShardClient`] owns a libp2p swarm on a background task and is cheap to
//! clone; every call is one request on its own stream, so many can run at
//! once over one connection. Fetched ranges are verified against the shard
//! id before they are returned: a lying or rotten node yields an error,
//! never bytes. Likewise a deal receipt is checked against the node's chain
//! address, read from its peer id, before it is returned.
//!
//! The same swarm also asks validators' chain API over `/cairn/chain/1`
//! ([`ShardClient::chain_api`]), which
//! [`ChainClient`](crate::chain::ChainClient) uses for its libp2p
//! endpoints.

// `ClientError` names the peer in every variant (a PeerId is ~80 bytes);
// requests cross the network, so moving a larger `Result` costs nothing
// that matters, and callers get the peer without a lookup.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_protocol::chain::{Address, Sig};
use cairn_protocol::chain_wire::{ChainApiRequest, ChainApiResponse, ChainMethod};
use cairn_protocol::shard::{verify_range, VerifyError};
use cairn_protocol::wire::{
    delete_message, encode_receipt_shards, DeleteRequest, NodeInfo, ReceiptRequest,
    RepairReceiptRequest, Request, Response, SignedStoreRequest, WireError,
};
use cairn_protocol::ContentId;
use ed25519_dalek::{Signer, SigningKey};
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::bulk::route::{bulk_addr, Known, Routes};
use super::bulk::{BulkClient, BulkError};
use super::chain::ChainRequest;
use super::codec::{ShardRequest, ShardResponse};
use super::{build_swarm, split_peer, CairnBehaviourEvent, Role, SwarmSettings};

/// A storage node's address: its peer id and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

impl FromStr for NodeAddr {
    type Err = ClientError;

    /// Parses `/ip4/…/udp/…/quic-v1/p2p/<peer id>`.
    fn from_str(s: &str) -> Result<Self, ClientError> {
        let addr: Multiaddr = s
            .parse()
            .map_err(|e| ClientError::BadAddress(format!("'{s}': {e}")))?;
        let (peer, base) = split_peer(&addr).ok_or_else(|| {
            ClientError::BadAddress(format!("'{s}' does not end in /p2p/<peer id>"))
        })?;
        Ok(Self {
            peer,
            addrs: vec![base],
        })
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs.first() {
            Some(a) => write!(f, "{a}/p2p/{}", self.peer),
            None => write!(f, "/p2p/{}", self.peer),
        }
    }
}

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad node address {0}")]
    BadAddress(String),
    #[error("node {peer} refused: {error}")]
    Refused { peer: PeerId, error: WireError },
    #[error("node {peer} unreachable or failed: {reason}")]
    Failed { peer: PeerId, reason: String },
    #[error("node {peer} answered out of protocol: {reason}")]
    Protocol { peer: PeerId, reason: String },
    #[error("node {peer} sent bytes that do not verify: {error}")]
    Verify { peer: PeerId, error: VerifyError },
    #[error("node {peer} sent a receipt that does not verify against its key {address}")]
    BadReceipt { peer: PeerId, address: Address },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("network task stopped")]
    Closed,
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// The node's refusal, if it refused.
    pub fn refusal(&self) -> Option<&WireError> {
        match self {
            Self::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// How long one request may take (connect, send, answer).
    pub request_timeout: Duration,
    /// Streams per connection (requests in flight to one node).
    pub streams_per_connection: usize,
    /// Send requests over a node's bulk listener when it has one
    /// ([`super::bulk`]); libp2p otherwise.
    pub bulk: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            streams_per_connection: 64,
            bulk: true,
        }
    }
}

/// Bulk connections (requests in flight) a client keeps to one node;
/// within a node's `limits.connections_per_peer` default.
const BULK_PER_NODE: usize = 8;
/// Pause before retrying a failed request (times the attempt).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Attempts of a request that failed short of an answer.
const RETRIES: u32 = 3;

/// A failed request carries whether it is worth another attempt.
type Reply = oneshot::Sender<Result<ShardResponse, Failure>>;
type ChainReply = oneshot::Sender<Result<ChainApiResponse, Failure>>;

enum Command {
    Request {
        node: NodeAddr,
        request: ShardRequest,
        reply: Reply,
    },
    Chain {
        node: NodeAddr,
        request: ChainApiRequest,
        reply: ChainReply,
    },
}

/// A reply of either protocol, to fail once a connection is closed.
enum AnyReply {
    Shard(Reply),
    Chain(ChainReply),
}

impl AnyReply {
    fn fail(self, failure: Failure) {
        match self {
            Self::Shard(r) => {
                let _ = r.send(Err(failure));
            }
            Self::Chain(r) => {
                let _ = r.send(Err(failure));
            }
        }
    }
}

/// A handle to the client's network task.
#[derive(Clone)]
pub struct ShardClient {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    bulk: Option<Arc<(BulkClient, Routes)>>,
}

impl ShardClient {
    /// Starts a client with a fresh identity. Must run inside a tokio runtime.
    pub fn start(settings: ClientSettings) -> Result<Self, ClientError> {
        Self::with_identity(Keypair::generate_ed25519(), settings)
    }

    /// Starts a client with the given identity.
    pub fn with_identity(keypair: Keypair, settings: ClientSettings) -> Result<Self, ClientError> {
        let peer_id = keypair.public().to_peer_id();
        let bulk = if settings.bulk {
            let client = BulkClient::new(&keypair, BULK_PER_NODE, settings.request_timeout)
                .map_err(|e| ClientError::Setup(e.to_string()))?;
            Some(Arc::new((client, Routes::default())))
        } else {
            None
        };
        let swarm = build_swarm(
            keypair,
            &SwarmSettings {
                role: Role::Client,
                request_timeout: settings.request_timeout,
                streams_per_connection: settings.streams_per_connection,
                // A client accepts no requests; the budget is unused.
                inbound_buffer: 0,
                connection_limits: Default::default(),
            },
        )
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        let (commands, rx) = mpsc::channel(256);
        tokio::spawn(run(swarm, rx));
        Ok(Self {
            commands,
            peer_id,
            bulk,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends one raw request and waits for the raw response: over the
    /// node's bulk listener if it has one, else (or if that fails short of
    /// an answer, but not by timing out) over libp2p.
    pub async fn request(
        &self,
        node: &NodeAddr,
        header: Request,
        body: Bytes,
    ) -> Result<ShardResponse, ClientError> {
        if let Some(addr) = self.bulk_route(node, &header).await {
            if let Some((bulk, routes)) = self.bulk.as_deref() {
                let request = ShardRequest::new(header.clone(), body.clone());
                match bulk.request(node.peer, addr, request).await {
                    Ok(response) => return Ok(response),
                    // The node may be working on it: never send it twice.
                    Err(e @ BulkError::Timeout(_)) => {
                        return Err(ClientError::Failed {
                            peer: node.peer,
                            reason: e.to_string(),
                        })
                    }
                    Err(e) => {
                        tracing::debug!(peer = %node.peer, %addr, error = %e, "bulk transport failed; using libp2p");
                        routes.failed(node.peer);
                    }
                }
            }
        }
        self.libp2p_request(node, header, body).await
    }

    /// Where `node`'s bulk listener is, asking the node (`Info`, over
    /// libp2p) the first time. `None`: send `header` over libp2p.
    async fn bulk_route(&self, node: &NodeAddr, header: &Request) -> Option<SocketAddr> {
        let (_, routes) = self.bulk.as_deref()?;
        if matches!(header, Request::Info) {
            return None;
        }
        match routes.get(&node.peer) {
            Known::Bulk(addr) => return Some(addr),
            Known::Libp2p => return None,
            Known::Unknown => {}
        }
        let port = match self
            .libp2p_request(node, Request::Info, Bytes::new())
            .await
            .map(|r| r.header)
        {
            Ok(Response::Info(info)) => info.bulk_port,
            _ => None,
        };
        let addr = match port {
            Some(port) => bulk_addr(&node.addrs, port).await,
            None => None,
        };
        routes.learn(node.peer, addr);
        addr
    }

    /// Sends one request over libp2p. A request whose connection broke or
    /// whose dial failed (the node restarted, say) is tried again, up to
    /// three times, on a fresh connection.
    async fn libp2p_request(
        &self,
        node: &NodeAddr,
        header: Request,
        body: Bytes,
    ) -> Result<ShardResponse, ClientError> {
        for attempt in 1.. {
            match self.send_once(node, header.clone(), body.clone()).await {
                Err((ClientError::Failed { .. }, true)) if attempt < RETRIES => {
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                }
                other => return other.map_err(|(e, _)| e),
            }
        }
        Err(ClientError::Closed)
    }

    async fn send_once(
        &self,
        node: &NodeAddr,
        header: Request,
        body: Bytes,
    ) -> Result<ShardResponse, (ClientError, bool)> {
        let closed = || (ClientError::Closed, false);
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                node: node.clone(),
                request: ShardRequest::new(header, body),
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Sends one chain API request to `node` and returns its answer,
    /// whatever its status. A GET whose connection broke or whose dial
    /// failed is tried again like [`Self::request`]; a POST only when the
    /// dial failed, so a transaction is not sent twice.
    pub async fn chain_api(
        &self,
        node: &NodeAddr,
        request: ChainApiRequest,
    ) -> Result<ChainApiResponse, ClientError> {
        request
            .check()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let closed = || ClientError::Closed;
        for attempt in 1.. {
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Chain {
                    node: node.clone(),
                    request: request.clone(),
                    reply,
                })
                .await
                .map_err(|_| closed())?;
            match answer.await.map_err(|_| closed())? {
                Err((ClientError::Failed { .. }, true)) if attempt < RETRIES => {
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                }
                other => return other.map_err(|(e, _)| e),
            }
        }
        Err(ClientError::Closed)
    }

    async fn ask(
        &self,
        node: &NodeAddr,
        header: Request,
        body: Bytes,
    ) -> Result<ShardResponse, ClientError> {
        let response = self.request(node, header, body).await?;
        if let Response::Error(error) = response.header {
            return Err(ClientError::Refused {
                peer: node.peer,
                error,
            });
        }
        Ok(response)
    }

    /// Stores a shard for `owner`, who signs the request for this node
    /// alone; `Ok(true)` if the node had it already.
    pub async fn store(
        &self,
        node: &NodeAddr,
        id: ContentId,
        data: Bytes,
        expires_at: Option<u64>,
        owner: &SigningKey,
    ) -> Result<bool, ClientError> {
        let issued_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = SignedStoreRequest {
            id,
            size: data.len() as u64,
            expires_at,
            owner: Address::of(&owner.verifying_key()),
            issued_at,
            signature: Sig([0; 64]),
        };
        request.signature = Sig(owner
            .sign(&request.message(&node.peer.to_bytes()))
            .to_bytes());
        self.store_signed(node, request, data).await
    }

    /// Sends a store request signed elsewhere with the shard's bytes.
    pub async fn store_signed(
        &self,
        node: &NodeAddr,
        request: SignedStoreRequest,
        data: Bytes,
    ) -> Result<bool, ClientError> {
        let id = request.id;
        let header = Request::StoreV2(request);
        match self.ask(node, header, data).await?.header {
            Response::Stored { id: got, existed } if got == id => Ok(existed),
            other => Err(unexpected(node, &other)),
        }
    }

    /// Fetches bytes `range` of shard `id` (of `shard_size` bytes) and
    /// verifies them against the id.
    pub async fn fetch(
        &self,
        node: &NodeAddr,
        id: ContentId,
        shard_size: u64,
        range: Range<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let header = Request::Fetch {
            id,
            start: range.start,
            end: range.end,
        };
        let response = self.ask(node, header, Bytes::new()).await?;
        match response.header {
            Response::Range {
                id: got,
                shard_size: size,
                start,
                end,
                ..
            } if got == id && size == shard_size && start == range.start && end == range.end => {
                let peer = node.peer;
                tokio::task::spawn_blocking(move || {
                    verify_range(id, shard_size, range, &response.body[..])
                        .map_err(|error| ClientError::Verify { peer, error })
                })
                .await
                .map_err(|e| ClientError::Setup(e.to_string()))?
            }
            other => Err(unexpected(node, &other)),
        }
    }

    /// Which of `ids` the node holds, with sizes.
    pub async fn has(
        &self,
        node: &NodeAddr,
        ids: Vec<ContentId>,
    ) -> Result<Vec<Option<u64>>, ClientError> {
        let n = ids.len();
        match self
            .ask(node, Request::Has { ids }, Bytes::new())
            .await?
            .header
        {
            Response::Has { sizes } if sizes.len() == n => Ok(sizes),
            other => Err(unexpected(node, &other)),
        }
    }

    /// The node's version, capacity and use.
    pub async fn info(&self, node: &NodeAddr) -> Result<NodeInfo, ClientError> {
        match self.ask(node, Request::Info, Bytes::new()).await?.header {
            Response::Info(info) => Ok(info),
            other => Err(unexpected(node, &other)),
        }
    }

    /// Gives up `owner`'s claim on shard `id` at `node`, signed with
    /// `owner_key`. `Ok(false)`: the node did not hold it.
    pub async fn delete(
        &self,
        node: &NodeAddr,
        id: ContentId,
        owner_key: &SigningKey,
    ) -> Result<bool, ClientError> {
        let issued_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let message = delete_message(&node.peer.to_bytes(), &id, issued_at);
        let request = DeleteRequest {
            id,
            owner: Address::of(&owner_key.verifying_key()),
            issued_at,
            signature: Sig(owner_key.sign(&message).to_bytes()),
        };
        match self
            .ask(node, Request::Delete(request), Bytes::new())
            .await?
            .header
        {
            Response::Deleted { id: got, existed } if got == id => Ok(existed),
            other => Err(unexpected(node, &other)),
        }
    }

    /// Asks `node` to sign a deal receipt for `shards` (in this order; the
    /// request's root, count and bytes must describe them) and checks the
    /// signature against the node's chain address, which its peer id
    /// embeds, before returning it: the result opens the deal on the chain
    /// as `request.commitment(address, sig)`.
    pub async fn receipt(
        &self,
        node: &NodeAddr,
        request: &ReceiptRequest,
        shards: &[(ContentId, u64)],
    ) -> Result<Sig, ClientError> {
        let header = Request::ReceiptV2(request.clone());
        self.signed_receipt(node, header, request.shards, shards, |a| request.message(a))
            .await
    }

    /// Asks `node` to sign a repair receipt for `shards` (in this order;
    /// the request's root, count and bytes must describe them, and the
    /// repairer must have stored them there) and checks the signature
    /// against the node's chain address before returning it.
    pub async fn repair_receipt(
        &self,
        node: &NodeAddr,
        request: &RepairReceiptRequest,
        shards: &[(ContentId, u64)],
    ) -> Result<Sig, ClientError> {
        let header = Request::RepairReceiptV2(request.clone());
        self.signed_receipt(node, header, request.shards, shards, |a| request.message(a))
            .await
    }

    /// Sends a receipt request (`header`, for a commitment of `count`
    /// shards) with `shards` as its body and checks the answer's signature
    /// over `message(node's chain address)`.
    async fn signed_receipt(
        &self,
        node: &NodeAddr,
        header: Request,
        count: u32,
        shards: &[(ContentId, u64)],
        message: impl FnOnce(Address) -> Vec<u8>,
    ) -> Result<Sig, ClientError> {
        let address = super::peer_address(&node.peer).ok_or_else(|| {
            ClientError::Invalid(format!(
                "peer id {} does not embed an ed25519 key, so it has no chain address",
                node.peer
            ))
        })?;
        if shards.len() != count as usize {
            return Err(ClientError::Invalid(format!(
                "{} shards listed for a commitment of {}",
                shards.len(),
                count
            )));
        }
        let body = Bytes::from(encode_receipt_shards(shards));
        match self.ask(node, header, body).await?.header {
            Response::Receipt { signature } => {
                let bad = || ClientError::BadReceipt {
                    peer: node.peer,
                    address,
                };
                let key = address.verifying_key().map_err(|_| bad())?;
                key.verify_strict(
                    &message(address),
                    &ed25519_dalek::Signature::from_bytes(&signature.0),
                )
                .map_err(|_| bad())?;
                Ok(signature)
            }
            other => Err(unexpected(node, &other)),
        }
    }
}

fn unexpected(node: &NodeAddr, response: &Response) -> ClientError {
    ClientError::Protocol {
        peer: node.peer,
        reason: format!("unexpected answer {response:?}"),
    }
}

type Failure = (ClientError, bool);

async fn run(
    mut swarm: libp2p::Swarm<super::CairnBehaviour>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut pending: HashMap<OutboundRequestId, Reply> = HashMap::new();
    let mut chain_pending: HashMap<OutboundRequestId, (ChainReply, ChainMethod)> = HashMap::new();
    // Failures on a broken connection are answered once it is closed, so a
    // retry never races the close and lands on the dead connection again.
    let mut closing: HashMap<PeerId, Vec<(AnyReply, Failure)>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Request { node, request, reply }) => {
                    let id = swarm.behaviour_mut().shards.send_request_with_addresses(
                        &node.peer,
                        request,
                        node.addrs.clone(),
                    );
                    pending.insert(id, reply);
                }
                Some(Command::Chain { node, request, reply }) => {
                    let method = request.method;
                    let id = swarm.behaviour_mut().chain.send_request_with_addresses(
                        &node.peer,
                        ChainRequest(Ok(request)),
                        node.addrs.clone(),
                    );
                    chain_pending.insert(id, (reply, method));
                }
                // Every handle is gone: stop.
                None => return,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(CairnBehaviourEvent::Shards(
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    },
                )) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
                SwarmEvent::Behaviour(CairnBehaviourEvent::Chain(
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    },
                )) => {
                    if let Some((reply, _)) = chain_pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
                SwarmEvent::Behaviour(CairnBehaviourEvent::Chain(
                    request_response::Event::OutboundFailure { request_id, error, peer, .. },
                )) => {
                    let Some((reply, method)) = chain_pending.remove(&request_id) else {
                        continue;
                    };
                    // A POST is tried again only if it never left: a
                    // transaction must not be submitted twice.
                    let retry = match method {
                        ChainMethod::Get => {
                            !matches!(error, request_response::OutboundFailure::Timeout)
                        }
                        ChainMethod::Post => {
                            matches!(error, request_response::OutboundFailure::DialFailure)
                        }
                    };
                    on_failure(&mut swarm, &mut closing, AnyReply::Chain(reply), peer, &error, retry);
                }
                SwarmEvent::Behaviour(CairnBehaviourEvent::Shards(
                    request_response::Event::OutboundFailure { request_id, error, peer, .. },
                )) => {
                    let Some(reply) = pending.remove(&request_id) else {
                        continue;
                    };
                    // Worth another attempt: a broken connection, or a dial
                    // that failed (it may have raced a restart). A timeout
                    // has already waited long enough.
                    let retry = !matches!(error, request_response::OutboundFailure::Timeout);
                    on_failure(&mut swarm, &mut closing, AnyReply::Shard(reply), peer, &error, retry);
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    for (reply, failure) in closing.remove(&peer_id).unwrap_or_default() {
                        reply.fail(failure);
                    }
                }
                _ => {}
            },
        }
    }
}

/// Fails `reply`; on a broken connection, once the connection is closed.
fn on_failure(
    swarm: &mut libp2p::Swarm<super::CairnBehaviour>,
    closing: &mut HashMap<PeerId, Vec<(AnyReply, Failure)>>,
    reply: AnyReply,
    peer: PeerId,
    error: &request_response::OutboundFailure,
    retry: bool,
) {
    let broken = matches!(
        error,
        request_response::OutboundFailure::Io(_)
            | request_response::OutboundFailure::ConnectionClosed
    );
    let failure = (
        ClientError::Failed {
            peer,
            reason: error.to_string(),
        },
        retry,
    );
    // A node that restarted keeps its peer id but not its connections:
    // close ours so a retry dials afresh.
    if broken && swarm.disconnect_peer_id(peer).is_ok() {
        closing.entry(peer).or_default().push((reply, failure));
    } else {
        reply.fail(failure);
    }
}

impl fmt::Debug for ShardClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardClient")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}
