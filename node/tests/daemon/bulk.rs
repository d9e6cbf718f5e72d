//! The bulk listener of a real node process: shards stored and fetched
//! over it (directly and by a `ShardClient` that prefers it), a client that
//! expects another peer id refused, plaintext and hostile frames refused
//! with the node still serving, and the libp2p path when it is off.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_client::net::bulk::{self, BulkClient, TlsIdentity};
use cairn_client::net::client::{ClientSettings, ShardClient};
use cairn_client::net::ShardRequest;
use cairn_protocol::chain::Address;
use cairn_protocol::wire::{decode_header, encode_header, ErrorKind, Request, Response};
use cairn_protocol::ContentId;
use libp2p::futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;
use libp2p::PeerId;

use crate::common::{
    bytes, edit_config, init, owner_key, signed_store, store_and_read_back, unix_now, TestNode,
};

/// A store for `node`, signed by the tests' owner.
fn store(node: &PeerId, id: ContentId, size: usize) -> Request {
    let owner = owner_key();
    let address = Address::of(&owner.verifying_key());
    Request::StoreV2(signed_store(
        id,
        size as u64,
        address,
        &owner,
        node,
        unix_now(),
    ))
}

/// The node's bulk listener, from its `Info`.
async fn bulk_addr(client: &ShardClient, node: &TestNode) -> SocketAddr {
    let info = client.info(&node.quic()).await.unwrap();
    let port = info.bulk_port.expect("the node announces no bulk listener");
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_stored_and_fetched_over_the_bulk_listener() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = bulk_addr(&client, &node).await;
    let peer = node.quic().peer;

    // Straight over the transport.
    let direct = BulkClient::new(&Keypair::generate_ed25519(), 2, Duration::from_secs(20)).unwrap();
    let a = bytes(3 << 20, 1);
    let id_a = ContentId::of(&a);
    let response = direct
        .request(
            peer,
            addr,
            ShardRequest::new(store(&peer, id_a, a.len()), Bytes::from(a.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        response.header,
        Response::Stored {
            id: id_a,
            existed: false
        }
    );

    // A `ShardClient` prefers it: stores and verified fetches go there.
    let before = node.metric("cairn_node_bulk_requests_total");
    let b = bytes(1 << 20, 2);
    let id_b = ContentId::of(&b);
    assert!(!client
        .store(
            &node.quic(),
            id_b,
            Bytes::from(b.clone()),
            None,
            &owner_key()
        )
        .await
        .unwrap());
    let size = a.len() as u64;
    let got = client
        .fetch(&node.quic(), id_a, size, 0..size)
        .await
        .unwrap();
    assert_eq!(got, a);
    let part = client
        .fetch(&node.quic(), id_b, b.len() as u64, 1000..300_000)
        .await
        .unwrap();
    assert_eq!(part, b[1000..300_000]);
    assert_eq!(node.metric("cairn_node_bulk_requests_total"), before + 3.0);

    // A lie about the body is refused like on libp2p: nothing stored.
    let wrong = direct
        .request(
            peer,
            addr,
            ShardRequest::new(
                store(&peer, ContentId::of(b"other"), 4096),
                Bytes::from(vec![1u8; 4096]),
            ),
        )
        .await
        .unwrap();
    match wrong.header {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::HashMismatch),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_listener_refuses_impostors_plaintext_and_hostile_frames() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = bulk_addr(&client, &node).await;
    let identity = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();

    // A client that expects another node refuses this one.
    let impostor = PeerId::random();
    let err = bulk::connect(identity.client_config(impostor).unwrap(), addr)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("WrongPeer"), "{err}");

    // Plaintext: the node closes the connection without a word.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, &encode_header(&Request::Info))
        .await
        .unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut sink),
    )
    .await
    .expect("the node left a plaintext connection open");
    assert!(
        n.is_err() || !sink.starts_with(&[0, 0]),
        "answered in plaintext"
    );

    let peer = node.quic().peer;
    let config = identity.client_config(peer).unwrap();
    // A header length past the limit: a clear refusal, then the end.
    let mut conn = bulk::connect(config.clone(), addr).await.unwrap();
    conn.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    let error = read_refusal(&mut conn).await;
    assert_eq!(error.kind, ErrorKind::Malformed, "{error}");
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.ok();
    assert!(
        rest.is_empty(),
        "the connection stayed open after a bad frame"
    );

    // A store of more than a shard may be: refused before any body is read.
    let mut conn = bulk::connect(config.clone(), addr).await.unwrap();
    let huge = store(&peer, ContentId::of(b"x"), 64 << 20);
    conn.write_all(&encode_header(&huge)).await.unwrap();
    conn.flush().await.unwrap();
    let error = read_refusal(&mut conn).await;
    assert_ne!(error.kind, ErrorKind::Busy, "{error}");

    // A body cut short: refused, nothing kept.
    let mut conn = bulk::connect(config, addr).await.unwrap();
    let mut frame = encode_header(&store(&peer, ContentId::of(b"y"), 1 << 20));
    frame.extend_from_slice(&[7u8; 1000]);
    conn.write_all(&frame).await.unwrap();
    conn.flush().await.unwrap();
    conn.close().await.unwrap();

    // The node still serves everyone else, over both paths.
    store_and_read_back(&client, &node.quic(), &bytes(100_000, 9)).await;
    crate::common::wait_until(10, "the bad frames counted", || {
        node.metric("cairn_node_rejected_streams_total") >= 3.0
    });
}

/// Reads one response frame and returns its refusal.
async fn read_refusal(conn: &mut bulk::ClientStream) -> cairn_protocol::wire::WireError {
    let mut prefix = [0u8; 4];
    conn.read_exact(&mut prefix).await.unwrap();
    let len = u32::from_be_bytes(prefix) as usize;
    assert!(len < 1 << 16);
    let mut header = vec![0u8; len];
    conn.read_exact(&mut header).await.unwrap();
    match decode_header::<Response>(&header).unwrap() {
        Response::Error(e) => e,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_bulk_listener_is_reached_over_libp2p() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "1GiB", &[]);
    edit_config(
        &dir,
        "# bulk_listen = \"0.0.0.0:4002\"",
        "bulk_listen = \"off\"",
    );
    let node = TestNode::start(&dir);
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    assert_eq!(client.info(&node.quic()).await.unwrap().bulk_port, None);
    store_and_read_back(&client, &node.tcp(), &bytes(500_000, 3)).await;
    assert_eq!(node.metric("cairn_node_bulk_requests_total"), 0.0);
}
