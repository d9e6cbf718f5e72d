//! End-to-end chain throughput: four `cairn-node --validator` processes on
//! 127.0.0.1, signed transfers submitted over HTTP as fast as the mempools
//! take them, for a fixed time. Reports committed transfers per second and
//! the mean block time.
//!
//! Run: `cargo bench -p cairn-node --bench chain` (release), or add
//! `--profile dev` to reuse a debug build. Options through the
//! environment: `CAIRN_BENCH_SECS` (submission time, default 20),
//! `CAIRN_BENCH_SENDERS` (accounts, default 128).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_node::daemon::RuntimeInfo;
use cairn_node::local_chain;
use cairn_protocol::chain::{Address, Allocation, GenesisHash, Transaction, TxBody};
use ed25519_dalek::SigningKey;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

fn json(addr: &str, path: &str) -> serde_json::Value {
    serde_json::from_str(&http(addr, "GET", path, b"").1).unwrap_or_default()
}

fn sender(i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8] = 0xbe;
    SigningKey::from_bytes(&seed)
}

struct Validator {
    child: Child,
    http: String,
}

// The child is handed to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path) -> Validator {
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(info) = RuntimeInfo::read(dir) {
            if let Some(http) = info.http {
                return Validator { child, http };
            }
        }
        assert!(Instant::now() < deadline, "validator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let secs = env_u64("CAIRN_BENCH_SECS", 20);
    let senders = env_u64("CAIRN_BENCH_SENDERS", 128);
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let dir = root.path().join(format!("v{i}"));
            let out = Command::new(BIN)
                .args(["init", "--data-dir"])
                .arg(&dir)
                .args(["--capacity", "64MiB", "--port", "0", "--host", "127.0.0.1"])
                .args(["--http", "127.0.0.1:0"])
                .output()
                .unwrap();
            assert!(out.status.success());
            dir
        })
        .collect();
    local_chain::setup(root.path(), &dirs, "bench", 1000, |g| {
        g.allocations = (0..senders)
            .map(|i| Allocation {
                address: Address::of(&sender(i).verifying_key()),
                amount: 1_000_000_000,
            })
            .collect();
    })
    .unwrap();
    let mut validators: Vec<Validator> = dirs.iter().map(|d| start(d)).collect();
    let apis: Vec<String> = validators.iter().map(|v| v.http.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while json(&apis[0], "/chain/status")["height"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "no blocks");
        std::thread::sleep(Duration::from_millis(100));
    }
    let start_height = json(&apis[0], "/chain/status")["height"].as_u64().unwrap();
    let genesis: GenesisHash = json(&apis[0], "/chain/status")["genesis_hash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Each thread owns some senders and sends their transfers in nonce
    // order to one validator (a validator proposes only its own mempool).
    let submitted = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let stop = began + Duration::from_secs(secs);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let api = apis[(t % 4) as usize].clone();
            let submitted = submitted.clone();
            std::thread::spawn(move || {
                let mine: Vec<u64> = (0..senders).filter(|s| s % 8 == t).collect();
                let mut nonces = vec![0u64; mine.len()];
                while Instant::now() < stop {
                    let mut refused = 0;
                    for (k, s) in mine.iter().enumerate() {
                        let key = sender(*s);
                        let tx = Transaction {
                            genesis,
                            signer: Address::of(&key.verifying_key()),
                            nonce: nonces[k],
                            fee: 1,
                            body: TxBody::Transfer {
                                to: Address([7; 32]),
                                amount: 1,
                            },
                        }
                        .sign(&key);
                        let (status, _) = http(&api, "POST", "/chain/tx", &tx.encode());
                        if status == 202 {
                            nonces[k] += 1;
                            submitted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            refused += 1;
                        }
                    }
                    if refused == mine.len() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let submitted = submitted.load(Ordering::Relaxed);
    // Let the mempools drain, then count what committed.
    let committed = |apis: &[String]| -> u64 {
        let v = json(&apis[0], &format!("/chain/account/{}", Address([7; 32])));
        v["balance"].as_u64().unwrap_or(0)
    };
    let drain = Instant::now() + Duration::from_secs(30);
    while committed(&apis) < submitted && Instant::now() < drain {
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = began.elapsed().as_secs_f64();
    let done = committed(&apis);
    let end_height = json(&apis[0], "/chain/status")["height"].as_u64().unwrap();
    let t0 = json(&apis[0], &format!("/chain/block/{start_height}"))["timestamp_ms"]
        .as_u64()
        .unwrap_or(0);
    let t1 = json(&apis[0], &format!("/chain/block/{end_height}"))["timestamp_ms"]
        .as_u64()
        .unwrap_or(0);
    let blocks = end_height - start_height;
    let block_ms = (t1.saturating_sub(t0)) as f64 / blocks.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "validators": 4,
            "senders": senders,
            "submitted": submitted,
            "committed": done,
            "seconds": elapsed,
            "transfers_per_s": done as f64 / elapsed,
            "blocks": blocks,
            "block_time_ms": block_ms,
        })
    );
    for v in validators.iter_mut() {
        let _ = v.child.kill();
        let _ = v.child.wait();
    }
}
