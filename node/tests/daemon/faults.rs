//! Bad shards, rotten disks, full disks and killed processes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_client::net::client::{ClientSettings, ShardClient};
use cairn_protocol::wire::ErrorKind;
use cairn_protocol::ContentId;

use crate::common::{bytes, corrupt_on_disk, edit_config, init, owner_key, wait_until, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_does_not_hash_to_its_id_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let data = bytes(100_000, 1);
    let claimed = ContentId::of(b"something else");
    // Signed by its owner, but the bytes are not the claimed shard's.
    let e = client
        .store(&node.quic(), claimed, Bytes::from(data), None, &owner_key())
        .await
        .unwrap_err();
    assert_eq!(
        e.refusal().map(|r| r.kind),
        Some(ErrorKind::HashMismatch),
        "{e}"
    );
    assert_eq!(
        client.has(&node.quic(), vec![claimed]).await.unwrap(),
        vec![None]
    );
    assert_eq!(node.metric("cairn_node_shards"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_rotten_on_disk_are_never_served_and_the_scrubber_finds_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "1GiB", &[]);
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let shards: Vec<Vec<u8>> = (0..3).map(|i| bytes(300_000, 10 + i)).collect();
    let ids: Vec<ContentId> = shards.iter().map(|s| ContentId::of(s)).collect();
    let mut node = TestNode::start(&dir);
    for (s, id) in shards.iter().zip(&ids) {
        client
            .store(&node.tcp(), *id, Bytes::from(s.clone()), None, &owner_key())
            .await
            .unwrap();
    }
    assert!(node.terminate(), "clean shutdown");
    // Rot one byte of shard 0 deep inside it, and one of shard 1.
    corrupt_on_disk(&dir.join("store"), &shards[0][200_000..200_064], 7);
    corrupt_on_disk(&dir.join("store"), &shards[1][50_000..50_064], 3);

    // On read: shard 0 is refused as corrupt, not served.
    let node = TestNode::start(&dir);
    let e = client
        .fetch(&node.quic(), ids[0], 300_000, 190_000..210_000)
        .await
        .unwrap_err();
    assert_eq!(e.refusal().map(|r| r.kind), Some(ErrorKind::Corrupt), "{e}");
    assert_eq!(
        client.has(&node.quic(), vec![ids[0]]).await.unwrap(),
        vec![None]
    );
    assert!(node.metric("cairn_node_corrupt_shards_total") >= 1.0);
    drop(node);

    // By the scrubber: shard 1 is found without anyone reading it.
    edit_config(&dir, "interval_secs = 3600", "interval_secs = 1");
    let node = TestNode::start(&dir);
    wait_until(60, "the scrubber to find shard 1", || {
        node.metric("cairn_node_corrupt_shards_total") >= 1.0
    });
    let has = client
        .has(&node.quic(), vec![ids[1], ids[2]])
        .await
        .unwrap();
    assert_eq!(has, vec![None, Some(300_000)]);
    let got = client
        .fetch(&node.quic(), ids[2], 300_000, 0..300_000)
        .await
        .unwrap();
    assert_eq!(got, shards[2]);
    assert!(
        node.log().contains(&ids[1].to_string()),
        "corruption logged with the id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_stores_loses_no_acknowledged_shard() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "4GiB", &[]);
    let mut node = TestNode::start(&dir);
    let client = ShardClient::start(ClientSettings {
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap();
    let acked: Arc<Mutex<Vec<(ContentId, u64)>>> = Arc::default();
    let addr = node.quic();
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (client, addr, acked) = (client.clone(), addr.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let seed = w * 1_000_000 + i;
                let data = bytes(256 * 1024 + (seed % 5000) as usize, seed);
                let id = ContentId::of(&data);
                match client
                    .store(&addr, id, Bytes::from(data), None, &owner_key())
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push((id, seed)),
                    Err(_) => return,
                }
            }
        }));
    }
    wait_until(60, "some stores to land", || {
        acked.lock().unwrap().len() >= 40
    });
    node.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let node = TestNode::start(&dir);
    for (id, seed) in &acked {
        let data = bytes(256 * 1024 + (seed % 5000) as usize, *seed);
        let size = data.len() as u64;
        let got = client
            .fetch(&node.quic(), *id, size, 0..size)
            .await
            .unwrap_or_else(|e| panic!("acknowledged shard {id} lost: {e}"));
        assert_eq!(got, data);
    }
    assert!(node.metric("cairn_node_shards") >= acked.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_clearly_and_keeps_what_it_has() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "3MiB", &[]);
    let mut node = TestNode::start(&dir);
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let shards: Vec<Vec<u8>> = (0..3).map(|i| bytes(1 << 20, 100 + i)).collect();
    for s in &shards[..2] {
        client
            .store(
                &node.quic(),
                ContentId::of(s),
                Bytes::from(s.clone()),
                None,
                &owner_key(),
            )
            .await
            .unwrap();
    }
    let e = client
        .store(
            &node.quic(),
            ContentId::of(&shards[2]),
            Bytes::from(shards[2].clone()),
            None,
            &owner_key(),
        )
        .await
        .unwrap_err();
    let refusal = e.refusal().unwrap();
    assert_eq!(refusal.kind, ErrorKind::CapacityFull);
    assert!(refusal.message.contains("capacity"), "{refusal}");
    assert!(node.terminate());
    let node = TestNode::start(&dir);
    for s in &shards[..2] {
        let got = client
            .fetch(&node.tcp(), ContentId::of(s), 1 << 20, 0..1 << 20)
            .await
            .unwrap();
        assert_eq!(&got, s);
    }
    let info = client.info(&node.quic()).await.unwrap();
    assert_eq!(info.shards, 2);
    assert!(info.used <= info.capacity);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "1GiB", &[]);
    let mut node = TestNode::start(&dir);
    assert!(
        node.terminate(),
        "exit status after SIGTERM:\n{}",
        node.log()
    );
    assert!(node.log().contains("stopped"));
    assert!(!dir.join("node.json").exists(), "runtime file removed");
}
