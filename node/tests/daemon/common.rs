//! Real `cairn-node` processes for the tests: init, start, kill, restart,
//! and read their HTTP endpoints.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::net::client::NodeAddr;
use cairn_node::daemon::{node_addr, RuntimeInfo, RUNTIME_FILE};

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// Creates a node's data directory with `cairn-node init`.
pub fn init(root: &Path, name: &str, capacity: &str, bootstrap: &[String]) -> PathBuf {
    let dir = root.join(name);
    let mut cmd = Command::new(BIN);
    cmd.args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--capacity", capacity, "--port", "0", "--host", "127.0.0.1"])
        .args(["--http", "127.0.0.1:0"]);
    for b in bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Replaces text in a node's config file.
pub fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "config has no '{from}'");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// A running node process.
pub struct TestNode {
    pub dir: PathBuf,
    pub info: RuntimeInfo,
    child: Option<Child>,
}

impl TestNode {
    /// Starts the node in `dir` and waits until it listens on QUIC and TCP.
    pub fn start(dir: &Path) -> Self {
        let _ = std::fs::remove_file(dir.join(RUNTIME_FILE));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(dir.join("config.toml"))
            .env(
                "RUST_LOG",
                std::env::var("CAIRN_TEST_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut node = Self {
            dir: dir.to_path_buf(),
            info: RuntimeInfo {
                peer_id: String::new(),
                listen: vec![],
                http: None,
                pid: 0,
            },
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(info) = RuntimeInfo::read(dir) {
                if info.listen.len() >= 2 && info.http.is_some() {
                    node.info = info;
                    return node;
                }
            }
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "node exited with {status} before listening:\n{}",
                    node.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "node did not start:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every address of the node.
    pub fn addr(&self) -> NodeAddr {
        node_addr(&self.info).unwrap()
    }

    fn only(&self, transport: &str) -> NodeAddr {
        let mut a = self.addr();
        a.addrs.retain(|m| m.to_string().contains(transport));
        assert_eq!(a.addrs.len(), 1, "{transport} address of {:?}", self.info);
        a
    }

    /// The node reached over QUIC only.
    pub fn quic(&self) -> NodeAddr {
        self.only("/quic-v1")
    }

    /// The node reached over TCP only.
    pub fn tcp(&self) -> NodeAddr {
        self.only("/tcp/")
    }

    /// The full text address of one transport, for `--bootstrap`.
    pub fn full_addr(&self, transport: &str) -> String {
        self.info
            .listen
            .iter()
            .find(|a| a.contains(transport))
            .unwrap()
            .clone()
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        unsafe_free_sigterm(c.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// GET `path` from the node's HTTP endpoint; returns the body.
    pub fn http_get(&self, path: &str) -> String {
        let addr = self.info.http.as_ref().unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// Sum of a metric's samples (all label sets).
    pub fn metric(&self, name: &str) -> f64 {
        self.http_get("/metrics")
            .lines()
            .filter(|l| {
                l.starts_with(name)
                    && matches!(l.as_bytes().get(name.len()), Some(b' ') | Some(b'{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.http_get("/status")).unwrap()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {}/node.log ---", self.dir.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Sends SIGTERM with the `kill` command (the tests forbid unsafe code).
fn unsafe_free_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Waits until `f` holds, or panics with `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The account the tests' stores are signed by.
pub fn owner_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x42; 32])
}

/// Seconds since the Unix epoch, as a store's `issued_at`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A store of `size` bytes of `id` naming `owner`, signed by `signer` for
/// the node whose peer id is `for_node`, at `issued_at`.
pub fn signed_store(
    id: cairn_protocol::ContentId,
    size: u64,
    owner: cairn_protocol::chain::Address,
    signer: &ed25519_dalek::SigningKey,
    for_node: &libp2p::PeerId,
    issued_at: u64,
) -> cairn_protocol::wire::SignedStoreRequest {
    use ed25519_dalek::Signer;
    let mut r = cairn_protocol::wire::SignedStoreRequest {
        id,
        size,
        expires_at: None,
        owner,
        issued_at,
        signature: cairn_protocol::chain::Sig([0; 64]),
    };
    r.signature =
        cairn_protocol::chain::Sig(signer.sign(&r.message(&for_node.to_bytes())).to_bytes());
    r
}

/// Stores `data` at `node` (signed by [`owner_key`]), reads it whole back
/// and checks it is the same.
pub async fn store_and_read_back(
    client: &cairn_client::net::client::ShardClient,
    node: &NodeAddr,
    data: &[u8],
) {
    let id = cairn_protocol::ContentId::of(data);
    client
        .store(
            node,
            id,
            ::bytes::Bytes::copy_from_slice(data),
            None,
            &owner_key(),
        )
        .await
        .unwrap();
    let got = client
        .fetch(node, id, data.len() as u64, 0..data.len() as u64)
        .await
        .unwrap();
    assert!(got == data, "{} bytes read back differ", data.len());
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Flips one byte, at `needle`'s offset plus `skew`, in every file under
/// `dir` that holds `needle`; returns how many files it changed.
pub fn corrupt_on_disk(dir: &Path, needle: &[u8], skew: usize) -> usize {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut data = std::fs::read(&path).unwrap();
            if let Some(pos) = data.windows(needle.len()).position(|w| w == needle) {
                data[pos + skew] ^= 0x5a;
                std::fs::write(&path, data).unwrap();
                changed += 1;
            }
        }
    }
    assert!(changed > 0, "bytes not found under {}", dir.display());
    changed
}
