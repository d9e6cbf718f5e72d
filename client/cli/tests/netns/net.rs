//! A devnet whose nodes are lab hosts, and a client host to drive it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_cli::devnet::{
    Devnet, DevnetOptions, NodeHost, HOST_BULK_PORT, HOST_CHAIN_PORT, HOST_HTTP_PORT, HOST_P2P_PORT,
};
use cairn_client::chain::ChainClient;
use cairn_client::ClientConfig;
use cairn_protocol::CodingParams;

use crate::inns::Forward;
use crate::lab::{self, Lab, Unsupported};
use crate::relay::Relay;

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
/// The longest a client command may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// The lab, its relay (no delay or loss until told), the devnet on its hosts (host `i` runs node `i`,
/// the last host the client) and a way into each node's HTTP API.
pub struct Net {
    // Dropped in this order: nodes first, then the forwards and the relay,
    // then the namespaces.
    pub devnet: Devnet,
    pub probes: Vec<Forward>,
    pub relay: Relay,
    pub lab: Lab,
    pub dir: tempfile::TempDir,
}

/// How to start a [`Net`].
pub struct NetOptions {
    pub nodes: usize,
    pub validators: usize,
    /// Per-host link rate (tc tbf), if any.
    pub rate_mbit: Option<u32>,
    /// Whether the relay passes TCP for shards: the nodes' bulk port and
    /// libp2p's TCP port. Without it a client finds both refusing and
    /// moves shards over libp2p's QUIC, whose datagrams the relay can
    /// drop; TCP streams it can only delay (each leg retransmits on its
    /// own).
    pub bulk: bool,
}

impl Net {
    /// `None` (after saying why) where namespaces cannot be made.
    pub fn start(options: NetOptions) -> Option<Self> {
        let lab = match Lab::new(options.nodes + 1) {
            Ok(lab) => lab,
            Err(Unsupported(why)) => {
                eprintln!("SKIPPED: network namespaces are not available here ({why}); these tests need root and iproute2");
                return None;
            }
        };
        if let Some(mbit) = options.rate_mbit {
            for i in 0..lab.hosts() {
                lab.limit_rate(i, mbit);
            }
        }
        let mut tcp = vec![HOST_HTTP_PORT, HOST_CHAIN_PORT];
        if options.bulk {
            tcp.extend([HOST_P2P_PORT, HOST_BULK_PORT]);
        }
        let relay = Relay::start(&lab, &[HOST_P2P_PORT], &tcp);
        let probes: Vec<Forward> = (0..options.nodes)
            .map(|i| {
                Forward::new(
                    &lab.host(i),
                    SocketAddr::from(([127, 0, 0, 1], HOST_HTTP_PORT)),
                )
            })
            .collect();
        let hosts = (0..options.nodes)
            .map(|i| NodeHost {
                launcher: ["ip", "netns", "exec", &lab.host(i)]
                    .map(String::from)
                    .to_vec(),
                listen_ip: lab::own_ip(i),
                public_ip: lab::public_ip(i),
                probe_http: probes[i].local.to_string(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let devnet = Devnet::up(
            &dir.path().join("devnet"),
            &DevnetOptions {
                nodes: options.nodes,
                validators: options.validators,
                capacity: 2 << 30,
                log_level: std::env::var("CAIRN_TEST_NODE_LOG").ok(),
                start_timeout: Duration::from_secs(60),
                hosts,
                ..DevnetOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("devnet up: {e}"))
        .owned();
        Some(Self {
            devnet,
            probes,
            relay,
            lab,
            dir,
        })
    }

    /// The client's host.
    pub fn client_host(&self) -> usize {
        self.lab.hosts() - 1
    }

    /// A client config file for the client host: `k` + `m` shards, small
    /// segments, timeouts that let a lost node show within the test.
    pub fn client_config(&self, k: u16, m: u16) -> PathBuf {
        let mut c: ClientConfig = self.devnet.client_config();
        c.params = CodingParams::new(k, m).unwrap();
        c.segment_size = 1 << 20;
        c.slow_after = Duration::from_secs(2);
        c.request_timeout = Duration::from_secs(15);
        c.state_dir = self.dir.path().join("client-state");
        let path = self.dir.path().join("client.toml");
        c.write(&path).unwrap();
        path
    }

    /// `cairn ARGS --config CONFIG` on the client host, started.
    pub fn spawn_cairn(&self, config: &Path, args: &[&str]) -> Child {
        let mut cmd = self.lab.command(self.client_host(), CAIRN);
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("run cairn")
    }

    /// `cairn ARGS --config CONFIG` on the client host, run to its end.
    pub fn cairn(&self, config: &Path, args: &[&str]) -> Output {
        finish(self.spawn_cairn(config, args), COMMAND_LIMIT)
    }

    /// Node `i`'s chain API, read from inside its host.
    pub fn chain(&self, i: usize) -> ChainClient {
        ChainClient::new(
            &[format!("http://{}", self.probes[i].local)],
            Duration::from_secs(3),
        )
        .unwrap()
    }

    pub fn file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let path = self.dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }
}

/// The JSON a `--json` command printed, or a panic with what it said.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "cairn failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Waits for `child` to exit, killing it (and failing) after `limit`.
/// Its output is a JSON line or a few lines of text: the pipes hold it.
pub fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for cairn").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for cairn");
            panic!(
                "cairn did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("wait for cairn")
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Byte-for-byte equality without printing megabytes.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// Runs `f` on a small runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
