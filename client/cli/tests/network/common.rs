//! A devnet per test, and a client configured for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_cli::devnet::{Devnet, DevnetOptions};
use cairn_client::{Client, ClientConfig, GetOptions, PutOptions, PutReport};
use cairn_protocol::{Capability, CodingParams};
use rand::{RngCore, SeedableRng};

pub struct TestNet {
    pub devnet: Devnet,
    pub dir: tempfile::TempDir,
}

impl TestNet {
    /// `nodes` real nodes with a fresh account.
    pub fn start(nodes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let devnet = Devnet::up(
            &dir.path().join("devnet"),
            &DevnetOptions {
                nodes,
                capacity: 2 << 30,
                log_level: std::env::var("CAIRN_TEST_NODE_LOG").ok(),
                ..DevnetOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("devnet up: {e}"))
        .owned();
        Self { devnet, dir }
    }

    /// A config with `k`, `m`, small segments and a short slow threshold,
    /// so failures show within a test's patience.
    pub fn config(&self, k: u16, m: u16) -> ClientConfig {
        let mut c = self.devnet.client_config();
        c.params = CodingParams::new(k, m).unwrap();
        c.segment_size = 256 * 1024;
        c.slow_after = Duration::from_millis(700);
        c.request_timeout = Duration::from_secs(10);
        c.state_dir = self.dir.path().join("state");
        c
    }

    /// The config written to a file, for the CLI.
    pub fn config_file(&self, k: u16, m: u16) -> PathBuf {
        let path = self.dir.path().join("client.toml");
        self.config(k, m).write(&path).unwrap();
        path
    }

    pub fn client(&self, k: u16, m: u16) -> Client {
        Client::connect(self.config(k, m)).unwrap()
    }

    pub fn file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let bytes = content(len, seed);
        let path = self.dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }
}

pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

pub async fn put(client: &Client, path: &Path) -> PutReport {
    client
        .put_path(path, &PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put {}: {e}", path.display()))
}

pub async fn get(client: &Client, cap: &Capability) -> Vec<u8> {
    let mut out = Vec::new();
    client
        .get(cap, &mut out, &GetOptions::default())
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    out
}

/// Asserts equality without printing megabytes.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(
        got == want,
        "{what}: bytes differ (first at {:?})",
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
