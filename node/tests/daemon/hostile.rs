//! A hostile peer: malformed, oversized and truncated messages, and streams
//! that stall while holding the node's body budget. The node must keep
//! serving others, log the offender, and store nothing bad.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::net::client::{ClientSettings, NodeAddr, ShardClient};
use cairn_protocol::wire::{
    decode_header, encode_header, ErrorKind, Request, Response, StoreRequest,
};
use cairn_protocol::ContentId;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::common::{bytes, edit_config, init, owner_key, wait_until, TestNode};

/// What the hostile peer writes on a stream.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    /// These bytes, then close.
    Send(Vec<u8>),
    /// These bytes, then nothing, ever.
    Stall(Vec<u8>),
}

#[derive(Clone, Default)]
struct RawCodec;

#[async_trait::async_trait]
impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Raw;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Raw> {
        Err(io::Error::other("the hostile peer serves nothing"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        io.take(1 << 20).read_to_end(&mut out).await?;
        Ok(out)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        raw: Raw,
    ) -> io::Result<()> {
        match raw {
            Raw::Send(b) => io.write_all(&b).await,
            Raw::Stall(b) => {
                io.write_all(&b).await?;
                io.flush().await?;
                std::future::pending().await
            }
        }
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) type Answer = oneshot::Sender<Result<Vec<u8>, String>>;

/// Starts the hostile peer; returns its id and a way to send raw streams.
pub(crate) fn hostile_peer() -> (PeerId, mpsc::UnboundedSender<(NodeAddr, Raw, Answer)>) {
    let mut swarm: Swarm<request_response::Behaviour<RawCodec>> =
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_quic()
            .with_behaviour(|_| {
                request_response::Behaviour::new(
                    [(
                        StreamProtocol::new("/cairn/shards/1"),
                        ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(120))
                        .with_max_concurrent_streams(200),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
    let peer = *swarm.local_peer_id();
    let (tx, mut rx) = mpsc::unbounded_channel::<(NodeAddr, Raw, Answer)>();
    tokio::spawn(async move {
        let mut pending = std::collections::HashMap::new();
        loop {
            tokio::select! {
                Some((node, raw, answer)) = rx.recv() => {
                    let id = swarm.behaviour_mut().send_request_with_addresses(&node.peer, raw, node.addrs.clone());
                    pending.insert(id, answer);
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response }, ..
                    }) => {
                        if let Some(a) = pending.remove(&request_id) { let _ = a.send(Ok(response)); }
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                        if let Some(a) = pending.remove(&request_id) { let _ = a.send(Err(error.to_string())); }
                    }
                    _ => {}
                }
            }
        }
    });
    (peer, tx)
}

pub(crate) async fn send(
    tx: &mpsc::UnboundedSender<(NodeAddr, Raw, Answer)>,
    node: &NodeAddr,
    raw: Raw,
) -> Result<Vec<u8>, String> {
    let (a, r) = oneshot::channel();
    tx.send((node.clone(), raw, a)).unwrap();
    r.await.unwrap()
}

fn store_header(id: ContentId, size: u64) -> Vec<u8> {
    encode_header(&Request::Store(StoreRequest {
        id,
        size,
        expires_at: None,
        owner: None,
    }))
}

pub(crate) fn error_kind(answer: &[u8]) -> Option<ErrorKind> {
    let len = u32::from_be_bytes(answer.get(..4)?.try_into().ok()?) as usize;
    match decode_header::<Response>(answer.get(4..4 + len)?).ok()? {
        Response::Error(e) => Some(e.kind),
        _ => None,
    }
}

/// A good client can still store and fetch.
async fn still_serves(client: &ShardClient, node: &NodeAddr, seed: u64) {
    let data = bytes(200_000, seed);
    let id = ContentId::of(&data);
    client
        .store(node, id, Bytes::from(data.clone()), None, &owner_key())
        .await
        .unwrap();
    let got = client.fetch(node, id, 200_000, 0..200_000).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_truncated_messages_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let (hostile, tx) = hostile_peer();
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();

    // A header length far past the limit, garbage where a header belongs,
    // an empty stream, and a body cut short: each is answered `malformed`.
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 9]);
    let data = bytes(1 << 20, 5);
    let id = ContentId::of(&data);
    let mut truncated = store_header(id, data.len() as u64);
    truncated.extend_from_slice(&data[..1000]);
    for raw in [
        u32::MAX.to_be_bytes().to_vec(),
        garbage,
        Vec::new(),
        truncated,
    ] {
        let answer = send(&tx, &addr, Raw::Send(raw)).await.unwrap();
        assert_eq!(error_kind(&answer), Some(ErrorKind::Malformed));
    }
    // A declared body over the limit: refused before a byte of it is read.
    let oversized = store_header(ContentId::of(b"x"), 64 << 20);
    let answer = send(&tx, &addr, Raw::Send(oversized)).await.unwrap();
    assert_eq!(error_kind(&answer), Some(ErrorKind::TooLarge));
    assert_eq!(client.has(&addr, vec![id]).await.unwrap(), vec![None]);

    still_serves(&client, &addr, 1).await;
    wait_until(10, "the offender to be logged", || {
        node.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&hostile.to_string()))
    });
    assert!(node.metric("cairn_node_rejected_streams_total") >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_cannot_starve_others_and_time_out() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "1GiB", &[]);
    // The smallest budget allowed: one largest shard.
    edit_config(
        &dir,
        "inbound_buffer = \"256MiB\"",
        "inbound_buffer = \"32MiB\"",
    );
    edit_config(
        &dir,
        "request_timeout_secs = 60",
        "request_timeout_secs = 10",
    );
    let node = TestNode::start(&dir);
    let (hostile, tx) = hostile_peer();
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();

    // Two stores of 16 MiB each that send half their body and stall: they
    // hold the whole body budget.
    let mut stalled = Vec::new();
    for s in 0..2u64 {
        let data = bytes(16 << 20, 50 + s);
        let mut raw = store_header(ContentId::of(&data), data.len() as u64);
        raw.extend_from_slice(&data[..8 << 20]);
        let tx = tx.clone();
        let addr = addr.clone();
        stalled.push(tokio::spawn(async move {
            send(&tx, &addr, Raw::Stall(raw)).await
        }));
    }
    // Plus many streams that never send a byte.
    for _ in 0..50 {
        let tx = tx.clone();
        let addr = addr.clone();
        stalled.push(tokio::spawn(async move {
            send(&tx, &addr, Raw::Stall(vec![0, 0])).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Requests without a body are served meanwhile; a store with a body is
    // told the node is busy instead of hanging or growing memory.
    let data = bytes(100_000, 7);
    let id = ContentId::of(&data);
    let e = client
        .store(&addr, id, Bytes::from(data.clone()), None, &owner_key())
        .await
        .unwrap_err();
    assert_eq!(e.refusal().map(|r| r.kind), Some(ErrorKind::Busy), "{e}");
    assert!(client.info(&addr).await.is_ok());

    // The node times the stalled streams out, frees the budget, and logs
    // the offender; then stores work again.
    wait_until(30, "stalled streams to time out", || {
        node.log()
            .lines()
            .filter(|l| l.contains("timed out") && l.contains(&hostile.to_string()))
            .count()
            >= 2
    });
    still_serves(&client, &addr, 2).await;
    for s in stalled {
        s.abort();
    }
}
