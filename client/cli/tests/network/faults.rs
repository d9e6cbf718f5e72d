//! Transfers while nodes die, hang, or serve rotten bytes.

use std::time::{Duration, Instant};

use crate::common::*;
use cairn_client::PutOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_survives_m_dead_nodes() {
    let mut net = TestNet::start(6);
    let client = net.client(2, 4);
    let (path, bytes) = net.file("m", 3_000_000, 11);
    let cap = put(&client, &path).await.capability;
    // Kill m = 4 of the 6 nodes: data shards' nodes among them.
    for i in [0, 2, 3, 5] {
        net.devnet.kill(i).unwrap();
    }
    let started = Instant::now();
    let got = get(&client, &cap).await;
    assert_same(&got, &bytes, "with m nodes dead");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_survives_a_hung_node_and_a_corrupt_node() {
    let mut net = TestNet::start(6);
    let client = net.client(3, 3);
    let (path, bytes) = net.file("h", 4_000_000, 12);
    let cap = put(&client, &path).await.capability;
    // Node A accepts connections but never answers (SIGSTOP); node B's
    // shards rot on disk. Both hold data shards of every segment (all six
    // nodes hold one shard of each).
    let manifest_shards: Vec<_> = {
        let status = client.stat(&cap).await.unwrap();
        assert_eq!(status.min_available, 6);
        status.segments
    };
    assert!(!manifest_shards.is_empty());
    corrupt_node_store(&mut net, 1);
    net.devnet.pause(0).unwrap();
    let started = Instant::now();
    let fresh = net.client(3, 3); // no connections from before
    let got = get(&fresh, &cap).await;
    assert_same(&got, &bytes, "with a hung node and a corrupt node");
    let took = started.elapsed();
    net.devnet.resume(0).unwrap();
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// Stops node `i` cleanly (so its shards are flushed), flips bytes in
/// every file holding shard bytes, and starts it again.
fn corrupt_node_store(net: &mut TestNet, i: usize) {
    let pid = net.devnet.nodes()[i].pid;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while net.devnet.is_alive(i) {
        assert!(Instant::now() < deadline, "node {i} did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = net.devnet.node_dir(i).join("store");
    let mut flipped = 0;
    for entry in files_under(&dir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        // Shard bytes live in RocksDB blob files or in per-shard files
        // under store/shards/, depending on the store's layout.
        let in_shards = entry
            .strip_prefix(&dir)
            .map(|p| p.starts_with("shards"))
            .unwrap_or(false);
        if name.ends_with(".blob") || (in_shards && !name.ends_with(".tmp")) {
            let mut bytes = std::fs::read(&entry).unwrap();
            // leave the blob file header alone, rot the records
            for b in bytes.iter_mut().skip(64).step_by(997) {
                *b ^= 0x5a;
                flipped += 1;
            }
            std::fs::write(&entry, bytes).unwrap();
        }
    }
    assert!(flipped > 0, "no shard files under {}", dir.display());
    net.devnet.restart(i).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_re_places_shards_when_a_node_dies_mid_transfer() {
    let mut net = TestNet::start(7);
    // n = 5 on 7 nodes: two spares.
    let client = std::sync::Arc::new(net.client(3, 2));
    let (path, bytes) = net.file("u", 24_000_000, 13);
    let (task, bar) = spawn_put(&client, &path);
    // Once the upload is under way, kill a node it surely uses: the one
    // holding most bytes.
    while bar.done() < 2_000_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = busiest_node(&net);
    net.devnet.kill(victim).unwrap();
    let report = task.await.unwrap().unwrap();
    // The dead node's shards went to spares, by re-placement or by racing.
    assert!(report.replaced + report.hedged > 0, "{report:?}");
    let got = get(&client, &report.capability).await;
    assert_same(&got, &bytes, "after re-placement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_without_spares_fails_clearly_and_resumes_without_resending() {
    let mut net = TestNet::start(5);
    let client = std::sync::Arc::new(net.client(3, 2));
    let (path, bytes) = net.file("r", 16_000_000, 14);
    let (task, bar) = spawn_put(&client, &path);
    while bar.done() < 4_000_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.devnet.kill(2).unwrap();
    let err = task.await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("run the same `cairn put` again"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    // The node comes back; the same put sends only what is missing.
    net.devnet.restart(2).unwrap();
    let report = put(&client, &path).await;
    assert!(report.shards_resumed > 0, "{report:?}");
    let total = report.segments * report.n as u64;
    assert_eq!(
        report.shards_resumed + report.shards_stored,
        total,
        "{report:?}"
    );
    let got = get(&client, &report.capability).await;
    assert_same(&got, &bytes, "resumed upload");
}

/// Starts uploading `path` in a task; the counter follows its progress.
fn spawn_put(
    client: &std::sync::Arc<cairn_client::Client>,
    path: &std::path::Path,
) -> (
    tokio::task::JoinHandle<Result<cairn_client::PutReport, cairn_client::Error>>,
    std::sync::Arc<Counter>,
) {
    let bar = std::sync::Arc::new(Counter::default());
    let (client, path, progress) = (client.clone(), path.to_path_buf(), bar.clone());
    let task = tokio::spawn(async move {
        let options = PutOptions {
            params: None,
            progress: Some(progress),
        };
        client.put_path(&path, &options).await
    });
    (task, bar)
}

/// The node whose store holds the most bytes.
fn busiest_node(net: &TestNet) -> usize {
    (0..net.devnet.nodes().len())
        .max_by_key(|&i| {
            files_under(&net.devnet.node_dir(i).join("store"))
                .iter()
                .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .sum::<u64>()
        })
        .unwrap()
}

#[derive(Default)]
struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    fn done(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl cairn_client::progress::Progress for Counter {
    fn start(&self, _total: u64) {}
    fn advance(&self, bytes: u64) {
        self.0
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}
