//! End-to-end node benchmark: raw puts (RocksDB alone, and the node's
//! store alone) against shard ingest and serving over loopback: libp2p's
//! QUIC and TCP (noise + yamux), and the bulk transport (TLS 1.3 on TCP). Each phase reports MiB/s and the CPU seconds
//! the whole process spent per GiB (client and node together), which varies
//! far less between runs than wall-clock time on a shared machine.
//!
//! `cargo bench -p cairn-node --bench node` — env `CAIRN_BENCH_SHARDS`
//! (default 256) shards of `CAIRN_BENCH_SHARD_KIB` KiB (default 1024),
//! `CAIRN_BENCH_CONCURRENCY` requests in flight (default 8). Prints a table
//! and one JSON line. The node runs in this process on real sockets; the
//! client shares the machine's cores with it, as on a one-box deployment.
//!
//! Stores and nodes live in a temporary directory under `CAIRN_BENCH_DIR`
//! (default: the system temp dir; put it on the disk being measured, not a
//! tmpfs). Shard files use direct I/O unless the filesystem refuses it;
//! the `store_buffered` and `bulk_buffered` phases repeat the store put and
//! the bulk ingest and serve with `[store] direct_io = false`, so the two
//! modes are compared in one run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_client::net::client::{ClientSettings, NodeAddr, ShardClient};
use cairn_node::config::{render, Config, InitOptions};
use cairn_node::daemon::{node_addr, RuntimeInfo};
use cairn_node::store::{PutOptions, ShardStore, StoreOptions};
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

/// The baseline, a raw RocksDB put of the same bytes: one synced
/// `WriteBatch` per shard into a BlobDB column family (values of 4 KiB and
/// more in blob files), as the node's store kept shards before they became
/// files, with the same number of writers.
fn raw_rocksdb_put(dir: &Path, data: &[(ContentId, Bytes)], writers: usize) -> Phase {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_max_background_jobs(2);
    let mut blobs = rocksdb::Options::default();
    blobs.set_enable_blob_files(true);
    blobs.set_min_blob_size(4096);
    blobs.set_blob_file_size(256 << 20);
    blobs.set_blob_compression_type(rocksdb::DBCompressionType::None);
    blobs.set_compression_type(rocksdb::DBCompressionType::None);
    blobs.set_write_buffer_size(64 << 20);
    let db = rocksdb::DB::open_cf_descriptors(
        &opts,
        dir,
        [rocksdb::ColumnFamilyDescriptor::new("shards", blobs)],
    )
    .unwrap();
    let cf = db.cf_handle("shards").unwrap();
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    in_parallel(data.len(), writers, |i| {
        let (id, bytes) = &data[i];
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, id.digest(), bytes);
        db.write_opt(batch, &synced).unwrap();
    })
}

/// The node's store alone: the node's own [`ShardStore`] (shard file written, synced and
/// renamed, metadata committed in a synced batch) with the same number of
/// writers; outboards computed before the clock starts, no network.
fn raw_put(dir: &Path, data: &[(ContentId, Bytes)], writers: usize, direct_io: bool) -> Phase {
    let store = ShardStore::open_with(dir, 1 << 40, &StoreOptions { direct_io }).unwrap();
    assert!(direct_io || !store.direct_io());
    let outboards: Vec<Outboard> = data.iter().map(|(_, b)| Outboard::compute(b)).collect();
    in_parallel(data.len(), writers, |i| {
        store
            .put_verified(&outboards[i], &data[i].1, PutOptions::default())
            .unwrap();
    })
}

/// Runs `put(i)` for every `i` below `count` on `writers` threads, each
/// taking every `writers`-th index.
fn in_parallel(count: usize, writers: usize, put: impl Fn(usize) + Sync) -> Phase {
    let clock = Clock::start();
    std::thread::scope(|s| {
        for w in 0..writers {
            let put = &put;
            s.spawn(move || (w..count).step_by(writers).for_each(put));
        }
    });
    clock.stop()
}

async fn start_node(dir: &Path, direct_io: bool) -> (NodeAddr, tokio::sync::oneshot::Sender<()>) {
    let mut text = render(&InitOptions {
        data_dir: dir.to_path_buf(),
        capacity: 1 << 40,
        port: 0,
        host: [127, 0, 0, 1].into(),
        http: None,
        bootstrap: vec![],
    });
    if !direct_io {
        text = text.replace("direct_io = true", "direct_io = false");
    }
    let config = Config::parse(&text).unwrap();
    assert_eq!(config.store.direct_io, direct_io);
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

/// A client that speaks libp2p only (`bulk: false`) or prefers the node's
/// bulk listener.
fn client(bulk: bool) -> ShardClient {
    ShardClient::start(ClientSettings {
        bulk,
        ..ClientSettings::default()
    })
    .unwrap()
}

fn only(addr: &NodeAddr, transport: &str) -> NodeAddr {
    let mut a = addr.clone();
    a.addrs.retain(|m| m.to_string().contains(transport));
    a
}

/// Wall-clock time and CPU seconds (of the whole process) of one phase.
#[derive(Clone, Copy)]
struct Phase {
    wall: Duration,
    cpu: f64,
}

/// Where a phase started, in both clocks.
struct Clock {
    started: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Self {
        Self {
            cpu: cpu_seconds(),
            started: Instant::now(),
        }
    }

    fn stop(self) -> Phase {
        Phase {
            wall: self.started.elapsed(),
            cpu: cpu_seconds() - self.cpu,
        }
    }
}

/// Runs `op` on every shard with `concurrency` in flight.
async fn timed<F, Fut>(data: &[(ContentId, Bytes)], concurrency: usize, op: F) -> Phase
where
    F: Fn(ContentId, Bytes) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let clock = Clock::start();
    libp2p::futures::stream::iter(data.iter().cloned())
        .map(|(id, bytes)| op(id, bytes))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    clock.stop()
}

async fn ingest(
    client: &ShardClient,
    node: &NodeAddr,
    data: &[(ContentId, Bytes)],
    concurrency: usize,
) -> Phase {
    timed(data, concurrency, |id, bytes| async move {
        client
            .store(
                node,
                id,
                bytes,
                None,
                &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            )
            .await
            .unwrap();
    })
    .await
}

async fn serve(
    client: &ShardClient,
    node: &NodeAddr,
    data: &[(ContentId, Bytes)],
    concurrency: usize,
) -> Phase {
    timed(data, concurrency, |id, bytes| async move {
        let size = bytes.len() as u64;
        let got = client.fetch(node, id, size, 0..size).await.unwrap();
        assert_eq!(got.len(), bytes.len());
    })
    .await
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
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
    let root = match std::env::var_os("CAIRN_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };

    // `CAIRN_BENCH_ONLY=quic,serve` (any of rocksdb, store,
    // store_buffered, quic, tcp, bulk, bulk_buffered, serve) runs only
    // those phases, to profile one at a time; serve
    // serves what the selected transports took in.
    let selected = std::env::var("CAIRN_BENCH_ONLY").ok();
    let wanted = |phase: &str| {
        selected
            .as_deref()
            .is_none_or(|o| o.split(',').any(|p| p.trim() == phase))
    };

    let rocksdb = wanted("rocksdb").then(|| {
        raw_rocksdb_put(
            &root.path().join("rocksdb"),
            &shards(count, size, 4),
            concurrency,
        )
    });
    let store = wanted("store").then(|| {
        raw_put(
            &root.path().join("store"),
            &shards(count, size, 1),
            concurrency,
            true,
        )
    });
    let store_buffered = wanted("store_buffered").then(|| {
        raw_put(
            &root.path().join("store-buffered"),
            &shards(count, size, 7),
            concurrency,
            false,
        )
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let [quic_in, tcp_in, bulk_in, buffered_in, quic_out, tcp_out, bulk_out, buffered_out] =
        runtime.block_on(async {
            let (node, stop) = start_node(&root.path().join("node"), true).await;
            let quic = only(&node, "/quic-v1");
            let tcp = only(&node, "/tcp/");
            let (mut quic_in, mut tcp_in, mut quic_out, mut tcp_out) = (None, None, None, None);
            let (mut bulk_in, mut bulk_out) = (None, None);
            if wanted("quic") {
                let client = client(false);
                client.info(&quic).await.unwrap();
                let a = shards(count, size, 2);
                quic_in = Some(ingest(&client, &quic, &a, concurrency).await);
                if wanted("serve") {
                    // Serving reads shards the node just took in: its caches are warm.
                    quic_out = Some(serve(&client, &quic, &a, concurrency).await);
                }
            }
            if wanted("tcp") {
                // A client of its own: libp2p sends a request over any
                // connection it has to the peer, so one that had dialed QUIC
                // would never use TCP.
                let client = client(false);
                client.info(&tcp).await.unwrap();
                let b = shards(count, size, 3);
                tcp_in = Some(ingest(&client, &tcp, &b, concurrency).await);
                if wanted("serve") {
                    tcp_out = Some(serve(&client, &tcp, &b, concurrency).await);
                }
            }
            if wanted("bulk") {
                // The bulk listener's port comes from `Info` (over QUIC here).
                let client = client(true);
                let info = client.info(&quic).await.unwrap();
                assert!(info.bulk_port.is_some(), "the node has no bulk listener");
                let c = shards(count, size, 5);
                bulk_in = Some(ingest(&client, &quic, &c, concurrency).await);
                if wanted("serve") {
                    bulk_out = Some(serve(&client, &quic, &c, concurrency).await);
                }
            }
            let _ = stop.send(());
            let (mut buffered_in, mut buffered_out) = (None, None);
            if wanted("bulk_buffered") {
                // The bulk phases again, on a node of its own with buffered I/O.
                let (node, stop) = start_node(&root.path().join("node-buffered"), false).await;
                let quic = only(&node, "/quic-v1");
                let client = client(true);
                let info = client.info(&quic).await.unwrap();
                assert!(info.bulk_port.is_some(), "the node has no bulk listener");
                let d = shards(count, size, 6);
                buffered_in = Some(ingest(&client, &quic, &d, concurrency).await);
                if wanted("serve") {
                    buffered_out = Some(serve(&client, &quic, &d, concurrency).await);
                }
                let _ = stop.send(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            [
                quic_in,
                tcp_in,
                bulk_in,
                buffered_in,
                quic_out,
                tcp_out,
                bulk_out,
                buffered_out,
            ]
        });

    let phases: Vec<_> = [
        ("raw RocksDB put (synced)", "raw_rocksdb_put", rocksdb),
        ("node store put (synced)", "store_put", store),
        (
            "store put, buffered I/O",
            "store_put_buffered",
            store_buffered,
        ),
        ("ingest over QUIC", "ingest_quic", quic_in),
        ("ingest over TCP", "ingest_tcp", tcp_in),
        ("ingest over bulk TLS", "ingest_bulk", bulk_in),
        (
            "ingest bulk, buffered I/O",
            "ingest_bulk_buffered",
            buffered_in,
        ),
        ("serve over QUIC (verified)", "serve_quic", quic_out),
        ("serve over TCP (verified)", "serve_tcp", tcp_out),
        ("serve over bulk TLS (verif.)", "serve_bulk", bulk_out),
        (
            "serve bulk, buffered I/O",
            "serve_bulk_buffered",
            buffered_out,
        ),
    ]
    .into_iter()
    .filter_map(|(name, key, p)| Some((name, key, p?)))
    .collect();
    let gib = total as f64 / (1u64 << 30) as f64;
    println!(
        "{count} shards of {} KiB, {concurrency} in flight",
        size / 1024
    );
    println!("{:<28} {:>10} {:>16}", "", "MiB/s", "CPU s per GiB");
    for &(name, _, p) in &phases {
        println!(
            "{name:<28} {:>10.1} {:>16.2}",
            mib_s(total, p.wall),
            p.cpu / gib
        );
    }
    let rate = |key: &str| {
        phases
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(_, _, p)| mib_s(total, p.wall))
    };
    for (base_name, base) in [("raw RocksDB", "raw_rocksdb_put"), ("store", "store_put")] {
        for (name, key) in [
            ("QUIC", "ingest_quic"),
            ("TCP", "ingest_tcp"),
            ("bulk TLS", "ingest_bulk"),
        ] {
            if let (Some(b), Some(r)) = (rate(base), rate(key)) {
                println!(
                    "ingest over {name} / {base_name} put: {:.0} %",
                    100.0 * r / b
                );
            }
        }
    }
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    let fields: Vec<String> = phases
        .iter()
        .map(|(_, key, p)| {
            format!(
                "\"{key}_mib_s\":{:.1},\"{key}_cpu_s_per_gib\":{:.2}",
                mib_s(total, p.wall),
                p.cpu / gib
            )
        })
        .collect();
    println!(
        "{{{},\"peak_rss_mib\":{:.0},\"shards\":{count},\"shard_bytes\":{size},\"concurrency\":{concurrency}}}",
        fields.join(","),
        peak_rss_mib()
    );
}
