//! Many peers fetching whole 32 MiB shards at once: the node's memory stays
//! within its response budget plus what it held before, every peer is
//! served in the end, and a small request from another peer is answered
//! while the flood runs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_client::net::client::{ClientError, ClientSettings, NodeAddr, ShardClient};
use cairn_protocol::wire::ErrorKind;
use cairn_protocol::ContentId;

use crate::common::{bytes, edit_config, init, owner_key, TestNode};

/// Peers fetching at once.
const PEERS: usize = 20;
/// The node's response budget in this test.
const BUDGET: u64 = 100 << 20;
/// What the node may hold beyond its budget and its peak before the flood:
/// a connection's transport buffers and task state per peer, and the
/// allocator's slack.
const SLACK: u64 = 96 << 20;

/// A line of /proc/<pid>/status, in bytes.
fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Fetches until an answer that is not `busy`.
async fn fetch_through_busy(
    client: &ShardClient,
    node: &NodeAddr,
    id: ContentId,
    size: u64,
    range: std::ops::Range<u64>,
) -> (Vec<u8>, u32) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut busy = 0;
    loop {
        match client.fetch(node, id, size, range.clone()).await {
            Ok(data) => return (data, busy),
            Err(ClientError::Refused { error, .. }) if error.kind == ErrorKind::Busy => {
                busy += 1;
                assert!(Instant::now() < deadline, "still busy after 300 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("fetch failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_fetches_stays_within_the_budget_and_others_are_served() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "1GiB", &[]);
    edit_config(
        &dir,
        "response_buffer = \"256MiB\"",
        &format!("response_buffer = \"{}MiB\"", BUDGET >> 20),
    );
    let node = TestNode::start(&dir);
    let addr = node.addr();
    let owner = ShardClient::start(ClientSettings::default()).unwrap();
    let size = cairn_protocol::params::MAX_SHARD_SIZE as u64;
    let data = Bytes::from(bytes(size as usize, 77));
    let id = ContentId::of(&data);
    owner
        .store(&addr, id, data.clone(), None, &owner_key())
        .await
        .unwrap();
    let small = bytes(100_000, 78);
    let small_id = ContentId::of(&small);
    owner
        .store(
            &addr,
            small_id,
            Bytes::from(small.clone()),
            None,
            &owner_key(),
        )
        .await
        .unwrap();
    // One whole fetch first, so the baseline includes one answer's worth.
    let (got, _) = fetch_through_busy(&owner, &addr, id, size, 0..size).await;
    assert!(got == data[..]);
    let pid = node.info.pid;
    let before = proc_status(pid, "VmHWM");
    let rss_before = proc_status(pid, "VmRSS");

    // Every peer its own swarm and identity, all asking at once.
    let mut flood = Vec::new();
    for _ in 0..PEERS {
        let addr = addr.clone();
        let client = ShardClient::start(ClientSettings::default()).unwrap();
        flood.push(tokio::spawn(async move {
            let (got, busy) = fetch_through_busy(&client, &addr, id, size, 0..size).await;
            (ContentId::of(&got), busy)
        }));
    }
    // Another peer's small request is answered while the flood runs.
    let other = ShardClient::start(ClientSettings::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (got, _) = fetch_through_busy(&other, &addr, small_id, 100_000, 0..100_000).await;
    assert_eq!(got, small);
    assert_eq!(
        other.has(&addr, vec![small_id]).await.unwrap(),
        vec![Some(100_000)]
    );
    let flood_running = flood.iter().any(|t| !t.is_finished());

    let mut busy_answers = 0;
    for task in flood {
        let (got, busy) = task.await.unwrap();
        assert_eq!(got, id, "a flooding peer got wrong bytes");
        busy_answers += busy;
    }
    let after = proc_status(pid, "VmHWM");
    let rss_after = proc_status(pid, "VmRSS");
    eprintln!(
        "flood of {PEERS} x 32 MiB fetches: VmHWM {} MiB before, {} MiB after (budget {} MiB, \
         VmRSS {} -> {} MiB), {busy_answers} busy answers, small request during the flood: {flood_running}",
        before >> 20,
        after >> 20,
        BUDGET >> 20,
        rss_before >> 20,
        rss_after >> 20,
    );
    assert!(
        after <= before + BUDGET + SLACK,
        "peak RSS {} MiB exceeds {} MiB before + {} MiB budget + {} MiB slack",
        after >> 20,
        before >> 20,
        BUDGET >> 20,
        SLACK >> 20
    );
    // All the room is given back once the answers are sent.
    crate::common::wait_until(10, "the budget to be returned", || {
        node.metric("cairn_node_response_bytes_in_flight") == 0.0
    });
}
