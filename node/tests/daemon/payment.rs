//! No free storage: a node stores only what an owner signed for it, just
//! now; a node of a chain bounds what no deal pays for and collects it
//! after its grace; strangers cannot pin a shard or block its owner's
//! delete.

use bytes::Bytes;
use cairn_client::net::client::{ClientSettings, NodeAddr, ShardClient};
use cairn_protocol::chain::Address;
use cairn_protocol::wire::{encode_header, ErrorKind, Request, SignedStoreRequest, StoreRequest};
use cairn_protocol::ContentId;
use ed25519_dalek::SigningKey;

use crate::common::{bytes, edit_config, init, signed_store, unix_now, wait_until, TestNode};
use crate::hostile::{error_kind, hostile_peer, send, Raw};

/// A store of `data` naming `owner`, signed by `signer` for the node
/// whose peer id is `for_node`, at `issued_at`.
fn signed(
    data: &[u8],
    owner: Address,
    signer: &SigningKey,
    for_node: &libp2p::PeerId,
    issued_at: u64,
) -> SignedStoreRequest {
    signed_store(
        ContentId::of(data),
        data.len() as u64,
        owner,
        signer,
        for_node,
        issued_at,
    )
}

fn refused_kind(e: &cairn_client::net::client::ClientError) -> Option<ErrorKind> {
    e.refusal().map(|r| r.kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_store_its_owner_signed_for_this_node_just_now_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let other = TestNode::start(&init(root.path(), "o", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let alice = SigningKey::from_bytes(&[1; 32]);
    let mallory = SigningKey::from_bytes(&[3; 32]);
    let alice_address = Address::of(&alice.verifying_key());
    let data = bytes(60_000, 11);
    let id = ContentId::of(&data);
    let body = || Bytes::from(data.clone());

    // The old unsigned store: refused, whatever it claims.
    let (_hostile, tx) = hostile_peer();
    let mut raw = encode_header(&Request::Store(StoreRequest {
        id,
        size: data.len() as u64,
        expires_at: None,
        owner: Some(alice_address),
    }));
    raw.extend_from_slice(&data);
    let answer = send(&tx, &addr, Raw::Send(raw)).await.unwrap();
    assert_eq!(error_kind(&answer), Some(ErrorKind::Unauthorized));

    // Signed by another key than the owner it names; signed for another
    // node; signed too long ago (a replay) or too far ahead.
    let now = unix_now();
    for (what, request) in [
        (
            "another key",
            signed(&data, alice_address, &mallory, &addr.peer, now),
        ),
        (
            "another node",
            signed(&data, alice_address, &alice, &other.quic().peer, now),
        ),
        (
            "a replay",
            signed(&data, alice_address, &alice, &addr.peer, now - 400),
        ),
        (
            "the future",
            signed(&data, alice_address, &alice, &addr.peer, now + 400),
        ),
    ] {
        let e = client
            .store_signed(&addr, request, body())
            .await
            .unwrap_err();
        assert_eq!(
            refused_kind(&e),
            Some(ErrorKind::Unauthorized),
            "{what}: {e}"
        );
    }
    // A good signature over other bytes than the body's size.
    let mut short = signed(&data, alice_address, &alice, &addr.peer, now);
    short.size -= 1;
    let e = client
        .store_signed(&addr, short, Bytes::from(data[..data.len() - 1].to_vec()))
        .await
        .unwrap_err();
    assert_eq!(refused_kind(&e), Some(ErrorKind::Unauthorized), "{e}");
    assert_eq!(client.has(&addr, vec![id]).await.unwrap(), vec![None]);

    // The owner's own signature, for this node, now: kept, and the same
    // request sent again inside the window changes nothing.
    let good = signed(&data, alice_address, &alice, &addr.peer, now);
    assert!(!client
        .store_signed(&addr, good.clone(), body())
        .await
        .unwrap());
    assert!(client.store_signed(&addr, good, body()).await.unwrap());
    assert_eq!(
        client.has(&addr, vec![id]).await.unwrap(),
        vec![Some(data.len() as u64)]
    );
    assert!(
        node.metric("cairn_node_requests_total{kind=\"store\",outcome=\"unauthorized\"}") >= 5.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_pin_a_shard_or_stop_its_owners_delete() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let owner = SigningKey::from_bytes(&[1; 32]);
    let data = bytes(30_000, 12);
    let id = ContentId::of(&data);
    let body = || Bytes::from(data.clone());
    client.store(&addr, id, body(), None, &owner).await.unwrap();
    // Fifteen strangers who fetched the bytes add themselves as owners;
    // the sixteenth is refused, clearly.
    for s in 0..15u8 {
        let stranger = SigningKey::from_bytes(&[100 + s; 32]);
        assert!(client
            .store(&addr, id, body(), None, &stranger)
            .await
            .unwrap());
    }
    let e = client
        .store(&addr, id, body(), None, &SigningKey::from_bytes(&[200; 32]))
        .await
        .unwrap_err();
    let refusal = e.refusal().unwrap();
    assert_eq!(refusal.kind, ErrorKind::CapacityFull, "{e}");
    assert!(refusal.message.contains("16 owners"), "{}", refusal.message);
    // The real owner's delete succeeds for its part: the shard stays for
    // the strangers, but the owner no longer holds it.
    assert!(client.delete(&addr, id, &owner).await.unwrap());
    let e = client.delete(&addr, id, &owner).await.unwrap_err();
    assert_eq!(refused_kind(&e), Some(ErrorKind::Unauthorized), "{e}");
    // Its place is free: the sixteenth stranger gets in now.
    client
        .store(&addr, id, body(), None, &SigningKey::from_bytes(&[200; 32]))
        .await
        .unwrap();
}

/// A node of a chain (whose validators it cannot reach, so no deal ever
/// pays) with a short grace and small unpaid limits.
fn chain_node(root: &std::path::Path) -> TestNode {
    let dir = init(root, "n", "1GiB", &[]);
    edit_config(&dir, "gc_interval_secs = 300", "gc_interval_secs = 1");
    edit_config(&dir, "unpaid_grace_secs = 86400", "unpaid_grace_secs = 3");
    edit_config(
        &dir,
        "unpaid_bytes_per_owner = \"64GiB\"",
        "unpaid_bytes_per_owner = \"300KiB\"",
    );
    edit_config(
        &dir,
        "unpaid_bytes = \"256GiB\"",
        "unpaid_bytes = \"500KiB\"",
    );
    let config = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[chain]\napi = [\"http://127.0.0.1:9\"]\nregister = false\nprove = true\n");
    std::fs::write(&config, text).unwrap();
    TestNode::start(&dir)
}

async fn store(
    client: &ShardClient,
    addr: &NodeAddr,
    owner: &SigningKey,
    len: usize,
    seed: u64,
) -> Result<ContentId, cairn_client::net::client::ClientError> {
    let data = bytes(len, seed);
    let id = ContentId::of(&data);
    client
        .store(addr, id, Bytes::from(data), None, owner)
        .await
        .map(|_| id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_node_caps_unpaid_shards_and_collects_them_after_their_grace() {
    let root = tempfile::tempdir().unwrap();
    let node = chain_node(root.path());
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let (alice, bob, carol) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
        SigningKey::from_bytes(&[3; 32]),
    );
    let mut ids = Vec::new();
    for seed in 0..2 {
        ids.push(store(&client, &addr, &alice, 100_000, seed).await.unwrap());
    }
    // Alice's third shard passes her unpaid limit: busy until a deal pays.
    let e = store(&client, &addr, &alice, 150_000, 2).await.unwrap_err();
    let refusal = e.refusal().unwrap();
    assert_eq!(refusal.kind, ErrorKind::Busy, "{e}");
    assert!(refusal.message.contains("unpaid"), "{}", refusal.message);
    ids.push(store(&client, &addr, &bob, 200_000, 3).await.unwrap());
    // The node's own unpaid limit: full, for anyone.
    let e = store(&client, &addr, &carol, 150_000, 4).await.unwrap_err();
    assert_eq!(refused_kind(&e), Some(ErrorKind::CapacityFull), "{e}");
    assert!(node.metric("cairn_node_unpaid_bytes") >= 400_000.0);

    // No deal pays for them: after the grace they are gone, space and
    // limits are free again.
    wait_until(30, "unpaid shards to be collected", || {
        node.metric("cairn_node_unpaid_collected_shards_total") >= 3.0
    });
    let held = client.has(&addr, ids.clone()).await.unwrap();
    assert_eq!(held, vec![None; 3]);
    assert_eq!(node.metric("cairn_node_unpaid_bytes"), 0.0);
    assert_eq!(node.metric("cairn_node_shards"), 0.0);
    store(&client, &addr, &carol, 150_000, 4).await.unwrap();
    store(&client, &addr, &alice, 250_000, 5).await.unwrap();
}
