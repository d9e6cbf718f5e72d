//! The node's bulk listener: shard requests over TLS 1.3 on TCP
//! ([`cairn_client::net::bulk`]), answered by the same [`ShardService`] as
//! requests over libp2p.
//!
//! Every bound of the libp2p path holds here too. Request bodies come out
//! of the same budget (the swarm's [`ShardCodec`] is shared, so its
//! `limits.inbound_buffer` covers both paths); fetch answers out of the
//! service's response budget; store work out of its `store_threads`. A
//! connection carries one request at a time, so a peer's requests in flight
//! here are its bulk connections, at most `limits.connections_per_peer`,
//! and all bulk connections (handshakes included) at most
//! `limits.max_connections`. A handshake must finish within
//! [`HANDSHAKE_TIMEOUT`], a request within `limits.request_timeout`, and an
//! idle connection is closed after [`IDLE_TIMEOUT`]. A request the reader
//! refused (bad header, oversize body, cut short) is answered with its
//! error and the connection closed: the stream is no longer in step.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::net::bulk::{self, ServerStream, TlsAcceptor, TlsIdentity, HANDSHAKE_TIMEOUT};
use cairn_protocol::wire::ErrorKind;
use libp2p::futures::io::{AsyncReadExt, Cursor};
use libp2p::identity::Keypair;
use libp2p::request_response::Codec;
use libp2p::PeerId;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::server::ShardService;
use super::{ShardCodec, ShardResponse};
use crate::metrics::Metrics;

/// How long a bulk connection may sit between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the bulk listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum BulkListenError {
    #[error("cannot listen for bulk transfers on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] bulk::TlsError),
}

/// Bounds of the bulk listener, from the node's `[limits]`.
#[derive(Debug, Clone)]
pub struct BulkLimits {
    pub max_connections: usize,
    pub connections_per_peer: usize,
    pub request_timeout: Duration,
}

impl From<&crate::config::Limits> for BulkLimits {
    fn from(l: &crate::config::Limits) -> Self {
        Self {
            max_connections: l.max_connections,
            connections_per_peer: l.connections_per_peer,
            request_timeout: l.request_timeout,
        }
    }
}

/// A bound bulk listener, not yet accepting.
pub struct BulkServer {
    listener: TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    codec: ShardCodec,
    metrics: Arc<Metrics>,
    limits: BulkLimits,
}

/// What every connection task of one listener uses.
struct Shared {
    service: ShardService,
    codec: ShardCodec,
    metrics: Arc<Metrics>,
    limits: BulkLimits,
    connections: Arc<Semaphore>,
    per_peer: Mutex<HashMap<PeerId, usize>>,
}

impl std::fmt::Debug for BulkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkServer")
            .field("addr", &self.local)
            .finish_non_exhaustive()
    }
}

impl BulkServer {
    /// Binds `addr` with `keypair`'s identity.
    pub async fn bind(
        addr: SocketAddr,
        keypair: &Keypair,
        codec: ShardCodec,
        metrics: Arc<Metrics>,
        limits: BulkLimits,
    ) -> Result<Self, BulkListenError> {
        let acceptor = bulk::acceptor(&TlsIdentity::new(keypair)?)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BulkListenError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BulkListenError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local,
            acceptor,
            codec,
            metrics,
            limits,
        })
    }

    /// Where it listens (the port is the one `Info` announces).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts connections, answering with `service`, until `stop` turns
    /// true; connections already open finish their request in flight.
    pub async fn run(self, service: ShardService, mut stop: watch::Receiver<bool>) {
        let shared = Arc::new(Shared {
            service,
            codec: self.codec,
            metrics: self.metrics,
            connections: Arc::new(Semaphore::new(self.limits.max_connections.max(1))),
            limits: self.limits,
            per_peer: Mutex::new(HashMap::new()),
        });
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.wait_for(|s| *s) => return,
            };
            let (stream, from) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!(error = %e, "bulk accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = shared.connections.clone().try_acquire_owned() else {
                shared.metrics.refused_busy("bulk_connections");
                tracing::debug!(%from, "bulk connection refused: at limits.max_connections");
                continue;
            };
            let shared = shared.clone();
            let acceptor = self.acceptor.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let handshake =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, bulk::accept(&acceptor, stream)).await;
                let (peer, tls) = match handshake {
                    Ok(Ok(accepted)) => accepted,
                    Ok(Err(e)) => {
                        shared.metrics.rejected_streams.inc();
                        tracing::debug!(%from, error = %e, "bulk handshake failed");
                        return;
                    }
                    Err(_) => {
                        shared.metrics.rejected_streams.inc();
                        tracing::debug!(%from, "bulk handshake timed out");
                        return;
                    }
                };
                let Some(_peer_slot) = PeerSlot::take(&shared, peer) else {
                    shared.metrics.refused_busy("bulk_connections_per_peer");
                    tracing::debug!(%peer, "bulk connection refused: at limits.connections_per_peer");
                    return;
                };
                shared.metrics.bulk_connections.inc();
                shared.serve(peer, tls, stop).await;
                shared.metrics.bulk_connections.dec();
            });
        }
    }
}

/// One of a peer's bulk connections, counted until dropped.
struct PeerSlot<'a> {
    shared: &'a Shared,
    peer: PeerId,
}

impl<'a> PeerSlot<'a> {
    fn take(shared: &'a Shared, peer: PeerId) -> Option<Self> {
        let mut map = shared.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(peer).or_default();
        if *n >= shared.limits.connections_per_peer {
            if *n == 0 {
                map.remove(&peer);
            }
            return None;
        }
        *n += 1;
        Some(Self { shared, peer })
    }
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

impl Shared {
    /// Answers `peer`'s requests on `tls`, one at a time, until it closes,
    /// idles out, sends something out of step, or the node stops.
    async fn serve(&self, peer: PeerId, mut tls: ServerStream, stop: watch::Receiver<bool>) {
        let protocol = ShardCodec::protocol();
        let mut codec = self.codec.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            // The first bytes of the next request, or a clean close.
            let mut prefix = [0u8; 4];
            match tokio::time::timeout(IDLE_TIMEOUT, read_prefix(&mut tls, &mut prefix)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) | Err(_) => return,
                Ok(Err(_)) => {
                    tracing::debug!(%peer, "bulk connection ended mid-frame");
                    return;
                }
            }
            let mut reader = Cursor::new(prefix).chain(&mut tls);
            // Never fails: what goes wrong becomes the request's refusal.
            let Ok(request) = codec.read_request(&protocol, &mut reader).await else {
                return;
            };
            let in_step = request
                .refusal
                .as_ref()
                .is_none_or(|r| r.kind == ErrorKind::Busy);
            if let Some(refusal) = &request.refusal {
                self.metrics.rejected_streams.inc();
                crate::peer_warn!(%peer, kind = request.kind(), error = %refusal, "bad bulk request from peer");
            }
            self.metrics.bulk_requests.inc();
            let timeout = self.limits.request_timeout;
            let response =
                match tokio::time::timeout(timeout, self.service.handle(peer, request)).await {
                    Ok(r) => r,
                    Err(_) => ShardResponse::error(
                        ErrorKind::Timeout,
                        format!("not answered within {timeout:?}"),
                    ),
                };
            let written =
                tokio::time::timeout(timeout, codec.write_response(&protocol, &mut tls, response))
                    .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::debug!(%peer, "bulk answer not delivered");
                return;
            }
            if !in_step {
                return;
            }
        }
    }
}

/// Reads a request's 4-byte prefix: `false` if the peer closed cleanly
/// before sending any of it.
async fn read_prefix(tls: &mut ServerStream, prefix: &mut [u8; 4]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < prefix.len() {
        match tls.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Ok(false),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(true)
}
