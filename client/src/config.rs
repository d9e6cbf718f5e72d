//! The client's TOML configuration: which nodes to use, where the account
//! key and the upload journals live, and how much redundancy and
//! parallelism to spend.
//!
//! Found, in order, at `--config`, `$CAIRN_CONFIG`,
//! `$XDG_CONFIG_HOME/cairn/client.toml` (or `~/.config/cairn/client.toml`),
//! and the running devnet's `client.toml`. Relative paths in the file are
//! relative to the file's directory. Every field is checked on load and a
//! bad one fails with one line that names it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::client::NodeAddr;
use cairn_protocol::params::{DEFAULT_DATA_SHARDS, DEFAULT_PARITY_SHARDS, DEFAULT_SEGMENT_TARGET};
use cairn_protocol::units::{format_size, parse_size};
use cairn_protocol::CodingParams;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::deal::DealOptions;

/// Name of the client config file (in a config or devnet directory).
pub const CONFIG_FILE: &str = "client.toml";

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config error: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config error: {0}")]
    Syntax(String),
    #[error("config error: {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("no client config found: pass --config, set CAIRN_CONFIG, write {default}, or start a local network with `cairn devnet up`")]
    NotFound { default: String },
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The file as written, before checking.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    chain: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_shards: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parity_shards: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segment_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parallelism: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_copies: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_deals: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deal_epochs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price_per_gib_epoch: Option<u64>,
}

/// A checked client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Storage nodes the client may place shards on and read from.
    pub nodes: Vec<NodeAddr>,
    /// The stake each of `nodes` locked, when the chain's registry said
    /// (placement weighs nodes by it); nodes listed in the file weigh alike.
    pub node_stakes: HashMap<PeerId, u64>,
    /// Validators' chain APIs (`http://host:port`, or a libp2p multiaddr
    /// ending in `/p2p/<peer id>`), tried in order; empty: no chain
    /// configured.
    pub chain: Vec<String>,
    /// The account key file (the recovery phrase, mode 0600).
    pub key_file: PathBuf,
    /// Upload journals, so an interrupted `put` resumes.
    pub state_dir: PathBuf,
    /// Redundancy asked for; scaled down to the nodes available (see
    /// [`CodingParams::fit_to`]) unless given explicitly on a command line.
    pub params: CodingParams,
    /// Ciphertext bytes per segment (about; shards are rounded to 4 KiB).
    pub segment_size: u64,
    /// Segments in flight at once, uploading or downloading. Memory is about
    /// `(parallelism + 1) · n · segment_size / k` (see `upload`).
    pub parallelism: usize,
    /// Longest one request to a node may take.
    pub request_timeout: Duration,
    /// A shard transfer slower than this is raced on another node.
    pub slow_after: Duration,
    /// Copies of each manifest (capped at the nodes available); by default
    /// the file's parity count plus three, so the manifest outlives the file.
    pub manifest_copies: Option<usize>,
    /// With a chain configured, `cairn put` opens a storage deal for every
    /// file it stores.
    pub open_deals: bool,
    /// The terms of those deals.
    pub deal: DealOptions,
}

impl ClientConfig {
    /// A configuration for `nodes` with defaults, rooted at `dir`.
    pub fn new(dir: &Path, nodes: Vec<NodeAddr>) -> Self {
        Self {
            nodes,
            node_stakes: HashMap::new(),
            chain: Vec::new(),
            key_file: dir.join("account.key"),
            state_dir: dir.join("state"),
            params: CodingParams::default(),
            segment_size: DEFAULT_SEGMENT_TARGET,
            parallelism: 2,
            request_timeout: Duration::from_secs(60),
            slow_after: Duration::from_secs(5),
            manifest_copies: None,
            open_deals: true,
            deal: DealOptions::default(),
        }
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &dir)
    }

    /// Checks config text whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError::Syntax(e.to_string().lines().collect::<Vec<_>>().join(" "))
        })?;
        let mut config = Self::new(dir, Vec::new());
        for (i, text) in raw.nodes.iter().enumerate() {
            let node: NodeAddr = text
                .parse()
                .map_err(|e| field(format!("nodes[{i}]"), format!("{e}")))?;
            if config.nodes.iter().any(|n| n.peer == node.peer) {
                return Err(field(
                    format!("nodes[{i}]"),
                    format!("node {} is listed twice", node.peer),
                ));
            }
            config.nodes.push(node);
        }
        for (i, url) in raw.chain.iter().enumerate() {
            crate::chain::Endpoint::parse(url)
                .map_err(|e| field(format!("chain[{i}]"), e.to_string()))?;
            config.chain.push(url.clone());
        }
        if let Some(p) = raw.key_file {
            config.key_file = dir.join(p);
        }
        if let Some(p) = raw.state_dir {
            config.state_dir = dir.join(p);
        }
        let k = raw.data_shards.unwrap_or(DEFAULT_DATA_SHARDS);
        let m = raw.parity_shards.unwrap_or(DEFAULT_PARITY_SHARDS);
        config.params = CodingParams::new(k, m)
            .map_err(|e| field("data_shards/parity_shards", e.to_string()))?;
        if let Some(s) = raw.segment_size {
            let bytes = parse_size(&s).map_err(|e| field("segment_size", e.to_string()))?;
            if !(64 * 1024..=256 * 1024 * 1024).contains(&bytes) {
                return Err(field(
                    "segment_size",
                    format!("{} is outside 64KiB..=256MiB", format_size(bytes)),
                ));
            }
            config.segment_size = bytes;
        }
        if let Some(p) = raw.parallelism {
            if !(1..=64).contains(&p) {
                return Err(field("parallelism", format!("{p} is outside 1..=64")));
            }
            config.parallelism = p;
        }
        if let Some(s) = raw.request_timeout_secs {
            if !(1..=3600).contains(&s) {
                return Err(field(
                    "request_timeout_secs",
                    format!("{s} is outside 1..=3600"),
                ));
            }
            config.request_timeout = Duration::from_secs(s);
        }
        if let Some(ms) = raw.slow_after_ms {
            if !(10..=600_000).contains(&ms) {
                return Err(field(
                    "slow_after_ms",
                    format!("{ms} is outside 10..=600000"),
                ));
            }
            config.slow_after = Duration::from_millis(ms);
        }
        if let Some(c) = raw.manifest_copies {
            if !(1..=64).contains(&c) {
                return Err(field("manifest_copies", format!("{c} is outside 1..=64")));
            }
            config.manifest_copies = Some(c);
        }
        if let Some(open) = raw.open_deals {
            config.open_deals = open;
        }
        if let Some(e) = raw.deal_epochs {
            if !(1..=10_000_000).contains(&e) {
                return Err(field("deal_epochs", format!("{e} is outside 1..=10000000")));
            }
            config.deal.epochs = e;
        }
        if let Some(p) = raw.price_per_gib_epoch {
            config.deal.price_per_gib_epoch = p;
        }
        Ok(config)
    }

    /// The TOML text for this configuration (paths written as they are).
    pub fn render(&self) -> String {
        let raw = RawConfig {
            nodes: self.nodes.iter().map(ToString::to_string).collect(),
            chain: self.chain.clone(),
            key_file: Some(self.key_file.clone()),
            state_dir: Some(self.state_dir.clone()),
            data_shards: Some(self.params.k() as u16),
            parity_shards: Some(self.params.m() as u16),
            segment_size: Some(self.segment_size.to_string()),
            parallelism: Some(self.parallelism),
            request_timeout_secs: Some(self.request_timeout.as_secs()),
            slow_after_ms: Some(self.slow_after.as_millis() as u64),
            manifest_copies: self.manifest_copies,
            open_deals: Some(self.open_deals),
            deal_epochs: Some(self.deal.epochs),
            price_per_gib_epoch: Some(self.deal.price_per_gib_epoch),
        };
        let body = toml::to_string(&raw)
            .unwrap_or_else(|e| unreachable!("a config of strings and numbers serializes: {e}"));
        format!(
            "# Cairn client configuration. Relative paths are relative to this file.\n\
             # nodes: storage nodes as /ip4/…/udp/…/quic-v1/p2p/<peer id> (or /tcp/…).\n{body}"
        )
    }

    /// Writes [`Self::render`] to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, self.render()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Where the manifest copies go, given the file's parameters and the
    /// nodes available.
    pub fn manifest_copies_for(&self, params: CodingParams, nodes: usize) -> usize {
        self.manifest_copies
            .unwrap_or(params.m() + 3)
            .min(nodes)
            .max(1)
    }
}

/// The user's default config file: `$XDG_CONFIG_HOME/cairn/client.toml` or
/// `~/.config/cairn/client.toml`.
pub fn default_path() -> PathBuf {
    config_home().join("cairn").join(CONFIG_FILE)
}

fn config_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x);
    }
    home().join(".config")
}

/// Where local state (the default devnet) lives: `$XDG_DATA_HOME/cairn` or
/// `~/.local/share/cairn`.
pub fn data_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("cairn");
    }
    home().join(".local").join("share").join("cairn")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Finds the config file to use: `explicit`, then `$CAIRN_CONFIG`, then the
/// default path, then `fallback` (the devnet's config) if it exists.
pub fn locate(explicit: Option<&Path>, fallback: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CAIRN_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let default = default_path();
    if default.exists() {
        return Ok(default);
    }
    match fallback {
        Some(p) if p.exists() => Ok(p.to_path_buf()),
        _ => Err(ConfigError::NotFound {
            default: default.display().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    fn error_of(text: &str) -> String {
        ClientConfig::parse(text, Path::new("/d"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rendered_config_parses_back() {
        let node: NodeAddr = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{PEER}")
            .parse()
            .unwrap();
        let mut config = ClientConfig::new(Path::new("/d"), vec![node.clone()]);
        config.params = CodingParams::new(3, 7).unwrap();
        config.parallelism = 6;
        config.chain = vec!["http://127.0.0.1:4100".into()];
        let back = ClientConfig::parse(&config.render(), Path::new("/elsewhere")).unwrap();
        assert_eq!(back.nodes, vec![node]);
        assert_eq!(back.params, config.params);
        assert_eq!(back.parallelism, 6);
        assert_eq!(back.chain, config.chain);
        assert_eq!(back.deal, config.deal);
        assert!(back.open_deals);
        assert_eq!(back.key_file, PathBuf::from("/d/account.key"));
        assert_eq!(back.segment_size, config.segment_size);
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = ClientConfig::parse("key_file = \"k\"\n", Path::new("/d")).unwrap();
        assert_eq!(c.key_file, PathBuf::from("/d/k"));
        assert_eq!(c.params, CodingParams::default());
        assert!(c.nodes.is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(error_of("nodes = [\"/ip4/1.2.3.4/tcp/1\"]").contains("nodes[0]"));
        assert!(error_of("nodes = [\"garbage\"]").contains("nodes[0]"));
        let twice = format!(
            "nodes = [\"/ip4/1.2.3.4/tcp/1/p2p/{PEER}\", \"/ip4/1.2.3.5/tcp/1/p2p/{PEER}\"]"
        );
        assert!(error_of(&twice).contains("listed twice"));
        assert!(error_of("data_shards = 0").contains("data_shards"));
        assert!(error_of("segment_size = \"1B\"").contains("segment_size"));
        assert!(error_of("segment_size = \"lots\"").contains("segment_size"));
        assert!(error_of("parallelism = 0").contains("parallelism"));
        assert!(error_of("slow_after_ms = 1").contains("slow_after_ms"));
        assert!(error_of("colour = 1").contains("colour"));
        assert!(error_of("nodes = 3").starts_with("config error"));
        assert!(error_of("chain = [\"ftp://x\"]").contains("chain[0]"));
        assert!(error_of("deal_epochs = 0").contains("deal_epochs"));
        assert!(error_of("price_per_gib_epoch = -1").starts_with("config error"));
    }
}
