//! The bulk transport: `/cairn/shards/1` frames over TLS 1.3 over TCP.
//!
//! libp2p stays the control plane (identity, discovery, the chain API, and
//! every request to a node without a bulk listener); shard bodies move
//! here, on connections whose TLS configuration Cairn owns ([`tls`]):
//! peers authenticated by their libp2p identity certificates, AES-GCM where
//! the CPU has AES instructions, and the kernel's TCP stack moving 64 KiB
//! segments over loopback instead of QUIC's 1 452-byte packets.
//!
//! A connection carries one request at a time, each framed exactly as on a
//! libp2p stream ([`ShardCodec`]: header, then body) and answered the same
//! way; the client keeps a few connections per node open and reuses them.
//! A node says it has a bulk listener by its port in `Info`
//! ([`cairn_protocol::wire::NodeInfo::bulk_port`]), on the host its libp2p
//! address names.

pub mod route;
pub mod tls;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use futures_rustls::TlsAcceptor;
use futures_rustls::TlsConnector;
use libp2p::identity::Keypair;
use libp2p::request_response::Codec;
use libp2p::PeerId;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use super::codec::{ShardCodec, ShardRequest, ShardResponse};
pub use tls::{TlsError, TlsIdentity};

/// The client side of a bulk connection.
pub type ClientStream = futures_rustls::client::TlsStream<Compat<TcpStream>>;
/// The server side of a bulk connection.
pub type ServerStream = futures_rustls::server::TlsStream<Compat<TcpStream>>;

/// How long a TCP connect and TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a bulk request failed short of an answer.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake { addr: SocketAddr, source: io::Error },
    #[error("bulk connection failed: {0}")]
    Io(#[from] io::Error),
    /// The request was sent and not answered in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Sets TCP options bulk connections want: no Nagle delay (a frame's
/// header is written apart from its body). Socket buffers stay the
/// kernel's: setting them turns off its receive-window autotuning, which
/// grows past what `net.core.rmem_max` lets a program ask for.
pub fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)
}

/// Completes the server side of a handshake: the stream and the client's
/// peer id (its certificate, verified by the handshake).
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> io::Result<(PeerId, ServerStream)> {
    let _ = tune(&stream);
    let tls = acceptor.accept(stream.compat()).await?;
    let peer = tls::peer_of(tls.get_ref().1.peer_certificates()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the client presented no libp2p certificate",
        )
    })?;
    Ok((peer, tls))
}

/// The acceptor for a node's bulk listener.
pub fn acceptor(identity: &TlsIdentity) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(identity.server_config()?))
}

/// Connects to `addr`, which must be `peer`.
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<ClientStream, BulkError> {
    // A connect or handshake that times out sent no request: it is a
    // `Connect`/`Handshake` failure (the caller may fall back), never the
    // `Timeout` of an exchange the node may be working on.
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "timed out");
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| BulkError::Connect {
            addr,
            source: timed_out(),
        })?
        .map_err(|source| BulkError::Connect { addr, source })?;
    let _ = tune(&stream);
    // The name is not checked (the verifier checks the peer id); an IP
    // address also keeps SNI out of the handshake.
    let name = ServerName::IpAddress(addr.ip().into());
    let handshake = TlsConnector::from(config).connect(name, stream.compat());
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| BulkError::Handshake {
            addr,
            source: timed_out(),
        })?
        .map_err(|source| BulkError::Handshake { addr, source })
}

/// Open connections to one node.
struct Pool {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    idle: Mutex<Vec<ClientStream>>,
    /// Requests in flight to the node (one per connection).
    slots: Arc<Semaphore>,
}

/// Sends requests to nodes' bulk listeners over pooled connections.
pub struct BulkClient {
    identity: TlsIdentity,
    codec: ShardCodec,
    pools: Mutex<HashMap<PeerId, Arc<Pool>>>,
    per_node: usize,
    timeout: Duration,
}

impl std::fmt::Debug for BulkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkClient")
            .field("per_node", &self.per_node)
            .finish_non_exhaustive()
    }
}

impl BulkClient {
    /// A client with `keypair`'s identity, at most `per_node` connections
    /// (requests in flight) to one node, each request within `timeout`.
    pub fn new(keypair: &Keypair, per_node: usize, timeout: Duration) -> Result<Self, BulkError> {
        Ok(Self {
            identity: TlsIdentity::new(keypair)?,
            // A client reads only responses: the request-body budget is unused.
            codec: ShardCodec::new(0, timeout),
            pools: Mutex::new(HashMap::new()),
            per_node: per_node.max(1),
            timeout,
        })
    }

    fn pool(&self, peer: PeerId, addr: SocketAddr) -> Result<Arc<Pool>, BulkError> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&peer).filter(|p| p.addr == addr) {
            return Ok(pool.clone());
        }
        let pool = Arc::new(Pool {
            addr,
            config: self.identity.client_config(peer)?,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(self.per_node)),
        });
        pools.insert(peer, pool.clone());
        Ok(pool)
    }

    /// Sends `request` to `peer` at `addr` and returns its answer. A reused
    /// connection the node has closed meanwhile is replaced once.
    pub async fn request(
        &self,
        peer: PeerId,
        addr: SocketAddr,
        request: ShardRequest,
    ) -> Result<ShardResponse, BulkError> {
        let pool = self.pool(peer, addr)?;
        let _slot = pool
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BulkError::Io(io::Error::other("pool closed")))?;
        let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let request = match idle {
            Some(conn) => match self.exchange(conn, &request).await {
                Ok((conn, response)) => return Ok(self.keep(&pool, conn, response)),
                Err(BulkError::Timeout(t)) => return Err(BulkError::Timeout(t)),
                // Stale: the node closed it (idle timeout, restart).
                Err(_) => request,
            },
            None => request,
        };
        let conn = connect(pool.config.clone(), addr).await?;
        let (conn, response) = self.exchange(conn, &request).await?;
        Ok(self.keep(&pool, conn, response))
    }

    fn keep(&self, pool: &Pool, conn: ClientStream, response: ShardResponse) -> ShardResponse {
        pool.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        response
    }

    async fn exchange(
        &self,
        mut conn: ClientStream,
        request: &ShardRequest,
    ) -> Result<(ClientStream, ShardResponse), BulkError> {
        let protocol = ShardCodec::protocol();
        let mut codec = self.codec.clone();
        let outbound = ShardRequest::new(
            request
                .header
                .clone()
                .ok_or_else(|| io::Error::other("a request needs a header"))?,
            request.body.clone(),
        );
        let work = async {
            codec.write_request(&protocol, &mut conn, outbound).await?;
            codec.read_response(&protocol, &mut conn).await
        };
        let response = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| BulkError::Timeout(self.timeout))??;
        Ok((conn, response))
    }
}

#[cfg(test)]
mod tests;
