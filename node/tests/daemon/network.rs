//! Storing and fetching between nodes over QUIC and TCP.

use bytes::Bytes;
use cairn_client::net::client::{ClientSettings, ShardClient};
use cairn_protocol::wire::ErrorKind;
use cairn_protocol::ContentId;
use ed25519_dalek::SigningKey;

use crate::common::{bytes, init, owner_key, wait_until, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_round_trip_over_quic_and_tcp_between_three_nodes() {
    let root = tempfile::tempdir().unwrap();
    let a = TestNode::start(&init(root.path(), "a", "1GiB", &[]));
    let b = TestNode::start(&init(root.path(), "b", "1GiB", &[a.full_addr("/quic-v1")]));
    let c = TestNode::start(&init(root.path(), "c", "1GiB", &[a.full_addr("/tcp/")]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();

    let targets = [
        (a.quic(), "a over quic"),
        (b.tcp(), "b over tcp"),
        (c.quic(), "c over quic"),
        (a.tcp(), "a over tcp"),
    ];
    for (i, (node, what)) in targets.iter().enumerate() {
        let size = 1_000_000 + i * 4099;
        let data = bytes(size, i as u64 + 1);
        let id = ContentId::of(&data);
        let existed = client
            .store(node, id, Bytes::from(data.clone()), None, &owner_key())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!existed, "{what}");
        let again = client
            .store(node, id, Bytes::from(data.clone()), None, &owner_key())
            .await
            .unwrap();
        assert!(
            again,
            "{what}: second store must report the shard as present"
        );

        let size = size as u64;
        for range in [
            0..size,
            0..1,
            16_383..16_385,
            size - 1..size,
            300_001..777_777,
        ] {
            let got = client.fetch(node, id, size, range.clone()).await.unwrap();
            assert_eq!(
                &got[..],
                &data[range.start as usize..range.end as usize],
                "{what} {range:?}"
            );
        }
        let absent = ContentId::of(b"never stored");
        let has = client.has(node, vec![id, absent]).await.unwrap();
        assert_eq!(has, vec![Some(size), None], "{what}");
        let e = client.fetch(node, absent, 10, 0..10).await.unwrap_err();
        assert_eq!(e.refusal().unwrap().kind, ErrorKind::NotFound, "{what}");
        let e = client.fetch(node, id, size, 0..size + 1).await.unwrap_err();
        assert_eq!(e.refusal().unwrap().kind, ErrorKind::Malformed, "{what}");
    }
    let info = client.info(&a.addr()).await.unwrap();
    assert_eq!(info.shards, 2);
    assert!(
        info.used >= 2_000_000 && info.capacity == 1 << 30,
        "{info:?}"
    );

    // b and c joined through a; a learns of both.
    wait_until(30, "a to see b and c", || {
        a.status()["connected_peers"].as_u64().unwrap() >= 2
    });
    let m = a.metric("cairn_node_requests_total");
    assert!(m >= 10.0, "requests counted: {m}");
    let page = a.http_get("/");
    assert!(page.contains(&a.info.peer_id) && page.contains("<html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_owner_can_delete_and_the_last_one_removes_the_shard() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let alice = SigningKey::from_bytes(&[1; 32]);
    let bob = SigningKey::from_bytes(&[2; 32]);
    let mallory = SigningKey::from_bytes(&[3; 32]);
    let data = bytes(50_000, 9);
    let id = ContentId::of(&data);
    for key in [&alice, &bob] {
        client
            .store(&addr, id, Bytes::from(data.clone()), None, key)
            .await
            .unwrap();
    }
    let e = client.delete(&addr, id, &mallory).await.unwrap_err();
    assert_eq!(e.refusal().unwrap().kind, ErrorKind::Unauthorized);
    assert!(client.delete(&addr, id, &alice).await.unwrap());
    assert_eq!(
        client.has(&addr, vec![id]).await.unwrap(),
        vec![Some(50_000)]
    );
    assert!(client.delete(&addr, id, &bob).await.unwrap());
    assert_eq!(client.has(&addr, vec![id]).await.unwrap(), vec![None]);
    assert!(!client.delete(&addr, id, &bob).await.unwrap());
}
