//! End-to-end node benchmark: raw store puts against shard ingest over
//! loopback (QUIC and TCP), and serving over loopback QUIC.
//!
//! `cargo bench -p cairn-node --bench node` — env `CAIRN_BENCH_SHARDS`
//! (default 256) shards of `CAIRN_BENCH_SHARD_KIB` KiB (default 1024),
//! `CAIRN_BENCH_CONCURRENCY` requests in flight (default 8). Prints a table
//! and one JSON line. The node runs in this process on real sockets; the
//! client shares the machine's cores with it, as on a one-box deployment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_node::config::{render, Config, InitOptions};
use cairn_node::daemon::{node_addr, RuntimeInfo};
use cairn_node::net::client::{ClientSettings, NodeAddr, ShardClient};
use cairn_node::store::{PutOptions, ShardStore};
use cairn_protocol::shard::Outboard;
use cairn_protocol::ContentId;
use libp2p::futures::StreamExt;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn shards(count: usize, size: usize, salt: u64) -> Vec<(ContentId, Bytes)> {
    (0..count)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
            let data: Vec<u8> = (0..size / 8)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()
                })
                .collect();
            (ContentId::of(&data), Bytes::from(data))
        })
        .collect()
}

fn mib_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / t.as_secs_f64()
}

/// Raw store: the node's own [`ShardStore`] (shard file written, synced and
/// renamed, metadata committed in a synced batch) with the same number of
/// writers; outboards computed before the clock starts, no network.
fn raw_put(dir: &Path, data: &[(ContentId, Bytes)], writers: usize) -> Duration {
    let store = ShardStore::open(dir, 1 << 40).unwrap();
    let outboards: Vec<Outboard> = data.iter().map(|(_, b)| Outboard::compute(b)).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (store, outboards) = (&store, &outboards);
            s.spawn(move || {
                for (i, (_, bytes)) in data.iter().enumerate().skip(w).step_by(writers) {
                    store
                        .put_verified(&outboards[i], bytes, PutOptions::default())
                        .unwrap();
                }
            });
        }
    });
    started.elapsed()
}

async fn start_node(dir: &Path) -> (NodeAddr, tokio::sync::oneshot::Sender<()>) {
    let text = render(&InitOptions {
        data_dir: dir.to_path_buf(),
        capacity: 1 << 40,
        port: 0,
        host: [127, 0, 0, 1].into(),
        http: None,
        bootstrap: vec![],
    });
    let config = Config::parse(&text).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    cairn_node::identity::create(&config.identity_path()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        cairn_node::daemon::run(config, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    loop {
        if let Some(info) = RuntimeInfo::read(dir) {
            if info.listen.len() >= 2 {
                return (node_addr(&info).unwrap(), tx);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn only(addr: &NodeAddr, transport: &str) -> NodeAddr {
    let mut a = addr.clone();
    a.addrs.retain(|m| m.to_string().contains(transport));
    a
}

/// Runs `op` on every shard with `concurrency` in flight; returns the time.
async fn timed<F, Fut>(data: &[(ContentId, Bytes)], concurrency: usize, op: F) -> Duration
where
    F: Fn(ContentId, Bytes) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    libp2p::futures::stream::iter(data.iter().cloned())
        .map(|(id, bytes)| op(id, bytes))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

async fn ingest(
    client: &ShardClient,
    node: &NodeAddr,
    data: &[(ContentId, Bytes)],
    concurrency: usize,
) -> Duration {
    timed(data, concurrency, |id, bytes| async move {
        client.store(node, id, bytes, None, None).await.unwrap();
    })
    .await
}

async fn serve(
    client: &ShardClient,
    node: &NodeAddr,
    data: &[(ContentId, Bytes)],
    concurrency: usize,
) -> Duration {
    timed(data, concurrency, |id, bytes| async move {
        let size = bytes.len() as u64;
        let got = client.fetch(node, id, size, 0..size).await.unwrap();
        assert_eq!(got.len(), bytes.len());
    })
    .await
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let count = env("CAIRN_BENCH_SHARDS", 256);
    let size = env("CAIRN_BENCH_SHARD_KIB", 1024) * 1024;
    let concurrency = env("CAIRN_BENCH_CONCURRENCY", 8);
    let total = count * size;
    let root = tempfile::tempdir().unwrap();

    let raw = raw_put(
        &root.path().join("raw"),
        &shards(count, size, 1),
        concurrency,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (quic_in, tcp_in, quic_out) = runtime.block_on(async {
        let (node, stop) = start_node(&root.path().join("node")).await;
        let client = ShardClient::start(ClientSettings::default()).unwrap();
        let quic = only(&node, "/quic-v1");
        let tcp = only(&node, "/tcp/");
        // Warm up the connections.
        client.info(&quic).await.unwrap();
        client.info(&tcp).await.unwrap();
        let a = shards(count, size, 2);
        let quic_in = ingest(&client, &quic, &a, concurrency).await;
        let b = shards(count, size, 3);
        let tcp_in = ingest(&client, &tcp, &b, concurrency).await;
        // Serving reads shards the node just took in: its caches are warm.
        let quic_out = serve(&client, &quic, &a, concurrency).await;
        let _ = stop.send(());
        tokio::time::sleep(Duration::from_millis(500)).await;
        (quic_in, tcp_in, quic_out)
    });

    let rows = [
        ("raw store put (synced)", mib_s(total, raw)),
        ("ingest over QUIC", mib_s(total, quic_in)),
        ("ingest over TCP", mib_s(total, tcp_in)),
        ("serve over QUIC (verified)", mib_s(total, quic_out)),
    ];
    println!(
        "{count} shards of {} KiB, {concurrency} in flight",
        size / 1024
    );
    for (name, v) in rows {
        println!("{name:<28} {v:>8.1} MiB/s");
    }
    println!(
        "ingest/raw: QUIC {:.0} %, TCP {:.0} %; peak RSS {:.0} MiB",
        100.0 * rows[1].1 / rows[0].1,
        100.0 * rows[2].1 / rows[0].1,
        peak_rss_mib()
    );
    println!(
        "{{\"raw_put_mib_s\":{:.1},\"ingest_quic_mib_s\":{:.1},\"ingest_tcp_mib_s\":{:.1},\"serve_quic_mib_s\":{:.1},\"peak_rss_mib\":{:.0},\"shards\":{count},\"shard_bytes\":{size},\"concurrency\":{concurrency}}}",
        rows[0].1,
        rows[1].1,
        rows[2].1,
        rows[3].1,
        peak_rss_mib()
    );
}
