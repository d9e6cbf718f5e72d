//! put/get at the sizes that matter, ranges, stat and rm.

use crate::common::*;
use cairn_client::GetOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundary_sizes_round_trip_byte_for_byte() {
    let net = TestNet::start(6);
    let client = net.client(3, 3);
    // 0 B, 1 B, a block ± 1, and a file of many 256 KiB segments.
    for (i, len) in [0usize, 1, 65535, 65536, 65537, 3_000_001]
        .into_iter()
        .enumerate()
    {
        let (path, bytes) = net.file(&format!("f{i}"), len, i as u64);
        let report = put(&client, &path).await;
        assert_eq!(report.size_bytes, len as u64);
        assert_eq!((report.k, report.n), (3, 6));
        let got = get(&client, &report.capability).await;
        assert_same(&got, &bytes, &format!("{len} bytes"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_file_round_trips_through_a_file_on_disk() {
    let net = TestNet::start(5);
    let mut config = net.config(3, 2);
    config.segment_size = 8 << 20;
    let client = cairn_client::Client::connect(config).unwrap();
    let (path, bytes) = net.file("big", 200 << 20, 200);
    let report = put(&client, &path).await;
    assert!(report.segments >= 25);
    let out = net.dir.path().join("big.out");
    let got = client
        .get_to_path(&report.capability, &out, &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(got.size_bytes, 200 << 20);
    assert_same(&std::fs::read(&out).unwrap(), &bytes, "200 MiB");
    assert!(!cairn_client::client::partial_path(&out).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_only_what_they_need_and_match_the_file() {
    let net = TestNet::start(5);
    let client = net.client(3, 2);
    let (path, bytes) = net.file("r", 2_000_000, 7);
    let cap = put(&client, &path).await.capability;
    for (offset, len) in [
        (0u64, 1u64),
        (65530, 20),
        (700_000, 300_000),
        (1_999_990, 10),
        (5, 0),
    ] {
        let got = client.get_range(&cap, offset, len).await.unwrap();
        assert_same(
            &got,
            &bytes[offset as usize..(offset + len) as usize],
            &format!("range {offset}+{len}"),
        );
    }
    // past the end: a clear error, not a panic or a short read
    let err = client.get_range(&cap, 1_999_990, 11).await.unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    // a range whose data shard's node is gone is rebuilt from parity
    let hint_node = 0;
    let mut net = net;
    net.devnet.kill(hint_node).unwrap();
    let got = client.get_range(&cap, 100_000, 500_000).await.unwrap();
    assert_same(&got, &bytes[100_000..600_000], "range after a node died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_counts_shards_and_rm_removes_them() {
    let mut net = TestNet::start(5);
    let client = net.client(2, 3);
    let (path, _) = net.file("s", 1_000_000, 3);
    let cap = put(&client, &path).await.capability;
    let status = client.stat(&cap).await.unwrap();
    assert_eq!(status.health, "healthy");
    assert_eq!((status.k, status.n), (2, 5));
    assert_eq!(status.min_available, 5);
    assert_eq!(status.manifest_copies, 5);
    net.devnet.kill(1).unwrap();
    let status = client.stat(&cap).await.unwrap();
    assert_eq!(status.health, "degraded");
    assert_eq!(status.min_available, 4);
    let removed = client.rm(&cap).await.unwrap();
    assert!(removed.deleted >= 4 * status.segments.len(), "{removed:?}");
    assert_eq!(removed.unreachable_nodes, 1);
    let err = client.stat(&cap).await.unwrap_err();
    assert!(
        matches!(err, cairn_client::Error::ManifestNotFound { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_from_its_part_file() {
    let net = TestNet::start(4);
    let client = std::sync::Arc::new(net.client(2, 2));
    let (path, bytes) = net.file("d", 12_000_000, 41);
    let cap = put(&client, &path).await.capability;
    let out = net.dir.path().join("d.out");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    struct Count(std::sync::Arc<std::sync::atomic::AtomicU64>);
    impl cairn_client::progress::Progress for Count {
        fn start(&self, _: u64) {}
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let task = {
        let (client, cap, out, seen) = (client.clone(), cap.clone(), out.clone(), seen.clone());
        tokio::spawn(async move {
            let options = GetOptions {
                progress: Some(std::sync::Arc::new(Count(seen))),
                overwrite: false,
            };
            client.get_to_path(&cap, &out, &options).await
        })
    };
    while seen.load(std::sync::atomic::Ordering::Relaxed) < 4_000_000 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    // The aborted download's decoding thread finishes its segment on its
    // own; give it a moment before the part file is reopened.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let part = cairn_client::client::partial_path(&out);
    assert!(part.exists() && !out.exists());
    let report = client
        .get_to_path(&cap, &out, &GetOptions::default())
        .await
        .unwrap();
    assert!(report.resumed_at > 0, "{report:?}");
    assert!(report.bytes_written < bytes.len() as u64, "{report:?}");
    assert_same(&std::fs::read(&out).unwrap(), &bytes, "resumed download");
    assert!(!part.exists());
}
