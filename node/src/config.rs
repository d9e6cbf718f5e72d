//! The node's TOML configuration: what `cairn-node init` writes and
//! `cairn-node run --config` reads.
//!
//! Every field is checked when the file is loaded, and a bad one fails with
//! one line that names it (`config error: network.listen[1]: ...`), so an
//! operator never finds out about a typo from a crash an hour later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_protocol::units::{format_size, parse_size};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// Name of the identity key file inside the data directory.
pub const IDENTITY_FILE: &str = "identity.key";

/// A validator's threshold key share, by default (in the data directory).
pub const SHARE_FILE: &str = "validator.share";
/// Name of the config file `init` writes inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config error: {0}")]
    Syntax(String),
    #[error("config error: {field}: {reason}")]
    Field { field: String, reason: String },
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The file as written, before checking.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    capacity: String,
    #[serde(default)]
    log_level: Option<String>,
    network: RawNetwork,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    scrub: RawScrub,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    chain: Option<RawChain>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    listen: Vec<String>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    external: Vec<String>,
    /// `host:port` of the bulk listener, or "off".
    bulk_listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChain {
    genesis: Option<PathBuf>,
    #[serde(default)]
    validator: bool,
    listen: Option<String>,
    #[serde(default)]
    peers: Vec<String>,
    block_interval_ms: Option<u64>,
    #[serde(default)]
    api: Vec<String>,
    register: Option<bool>,
    stake: Option<u64>,
    prove: Option<bool>,
    repair: Option<bool>,
    repair_stagger_blocks: Option<u64>,
    ask_per_gib_epoch: Option<u64>,
    max_deal_epochs: Option<u64>,
    share: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    header_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_concurrent: Option<usize>,
    max_connections: Option<usize>,
    max_body: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScrub {
    interval_secs: Option<u64>,
    rate: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    direct_io: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    inbound_buffer: Option<String>,
    requests_per_peer: Option<usize>,
    streams_per_connection: Option<usize>,
    request_timeout_secs: Option<u64>,
    gc_interval_secs: Option<u64>,
    response_buffer: Option<String>,
    response_buffer_per_peer: Option<String>,
    max_requests: Option<usize>,
    store_threads: Option<usize>,
    max_connections: Option<usize>,
    connections_per_peer: Option<usize>,
    unpaid_grace_secs: Option<u64>,
    unpaid_bytes_per_owner: Option<String>,
    unpaid_bytes: Option<String>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Bytes of shard data the node may hold.
    pub capacity: u64,
    /// A `tracing` filter, e.g. `info` or `cairn_node=debug,info`.
    pub log_level: String,
    pub listen: Vec<Multiaddr>,
    /// Peers to join the network through (each with a `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce besides the ones we listen on (e.g. behind NAT).
    pub external: Vec<Multiaddr>,
    /// Where the bulk listener (shard requests over TLS on TCP) accepts;
    /// `None` turns it off. Its port is announced in `Info`.
    pub bulk_listen: Option<SocketAddr>,
    /// Where `/metrics` and `/status` are served; `None` turns HTTP off.
    pub http: Option<SocketAddr>,
    /// Bounds on the HTTP endpoint.
    pub http_limits: HttpLimits,
    pub scrub_interval: Duration,
    /// Bytes per second the scrubber may read.
    pub scrub_rate: u64,
    /// How the shard store is opened (`[store]`).
    pub store: crate::store::StoreOptions,
    pub limits: Limits,
    /// The chain this node follows, if any.
    pub chain: Option<ChainConfig>,
}

/// The `[chain]` section: for a validator, the genesis file and where it
/// meets the other validators; for every node, whether and how it registers
/// itself as a storage node ([`crate::registration`]).
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// The genesis file (JSON); relative paths are taken from the config
    /// file's directory. Required for a validator only.
    pub genesis: Option<PathBuf>,
    /// Run consensus (`cairn-node run --validator` turns this on too).
    pub validator: bool,
    /// Where this validator listens for the other validators.
    pub listen: SocketAddr,
    /// The validators' addresses: `<chain address>@<host:port>`.
    pub peers: Vec<(cairn_protocol::chain::Address, SocketAddr)>,
    pub block_interval: Duration,
    /// Validators' HTTP APIs (`http://host:port`, each checked with
    /// [`cairn_client::chain::Endpoint::parse`]) the node registers through.
    /// Empty on a validator: its own HTTP API.
    pub api: Vec<String>,
    /// Register this node on the chain at start (default true).
    pub register: bool,
    /// The stake to lock; `None`: what covers the capacity on this chain.
    pub stake: Option<u64>,
    /// Prove storage every period (default: whenever the node registers).
    pub prove: bool,
    /// Repair other deals' lost shards for their bounty (default true; see
    /// docs/repair.md).
    pub repair: bool,
    /// Blocks the repair worker waits per rank among the active nodes
    /// before it repairs a deal (default
    /// [`crate::repair::STAGGER_BLOCKS`]; 0: every worker starts at once
    /// and the chain takes the first claim).
    pub repair_stagger_blocks: u64,
    /// Least pay this node signs receipts for, per GiB it holds and epoch
    /// (default 0: any positive price).
    pub ask_per_gib_epoch: u64,
    /// Longest deal this node signs a receipt for, in epochs (default: any
    /// the chain allows).
    pub max_deal_epochs: u64,
    /// A validator's share of the threshold consensus key; relative paths
    /// are taken from the config file's directory. `None`:
    /// `<data dir>/validator.share` ([`Config::share_path`]).
    pub share: Option<PathBuf>,
}

/// Bounds on the HTTP endpoint (`[http]`), on every route.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers; a slower
    /// connection (slow-loris) is closed.
    pub header_timeout: Duration,
    /// How long one request may take, body and answer included (408 past it).
    pub request_timeout: Duration,
    /// Requests being answered at once; more are answered 503 at once.
    pub max_concurrent: usize,
    /// Open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request body (413 past it); `POST /chain/tx` has its own,
    /// smaller limit.
    pub max_body: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent: 64,
            max_connections: 256,
            max_body: 1 << 20,
        }
    }
}

/// Bounds on what peers can make the node hold or do at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of request bodies buffered at once, over all peers.
    pub inbound_buffer: u64,
    /// Requests one peer may have in flight.
    pub requests_per_peer: usize,
    /// Streams one connection may have open.
    pub streams_per_connection: usize,
    /// How long one request may take, from its first byte to the response.
    pub request_timeout: Duration,
    /// How often expired shards are collected.
    pub gc_interval: Duration,
    /// Bytes of response bodies held at once, over all peers: a fetch
    /// reserves its answer's size before it reads a byte, waits briefly for
    /// room, and is answered `busy` if none comes.
    pub response_buffer: u64,
    /// The most of `response_buffer` one peer may hold; past it its fetches
    /// are answered `busy` at once.
    pub response_buffer_per_peer: u64,
    /// Requests in flight at once, over all peers (shard and chain API).
    pub max_requests: usize,
    /// Threads doing store work (reads, hashing, writes) at once.
    pub store_threads: usize,
    /// Open connections, over all peers.
    pub max_connections: usize,
    /// Open connections of one peer.
    pub connections_per_peer: usize,
    /// On a node of a chain: how long a shard no deal pays for (and no
    /// signed receipt names) is kept.
    pub unpaid_grace: Duration,
    /// On a node of a chain: unpaid bytes one owner may hold here.
    pub unpaid_bytes_per_owner: u64,
    /// On a node of a chain: unpaid bytes all owners together may hold here.
    pub unpaid_bytes: u64,
}

impl Limits {
    /// The unpaid-shard bounds the store enforces on a node of a chain.
    pub fn unpaid(&self) -> crate::store::UnpaidLimits {
        crate::store::UnpaidLimits {
            grace_secs: self.unpaid_grace.as_secs(),
            per_owner: self.unpaid_bytes_per_owner,
            total: self.unpaid_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            inbound_buffer: 256 << 20,
            requests_per_peer: 32,
            streams_per_connection: 64,
            request_timeout: Duration::from_secs(60),
            gc_interval: Duration::from_secs(300),
            response_buffer: 256 << 20,
            response_buffer_per_peer: 64 << 20,
            max_requests: 512,
            store_threads: 16,
            max_connections: 512,
            connections_per_peer: 8,
            // A day: an upload, its deal's opening (up to the chain's
            // start window) and many mount commit intervals fit well
            // inside it.
            unpaid_grace: Duration::from_secs(24 * 3600),
            unpaid_bytes_per_owner: 64 << 30,
            unpaid_bytes: 256 << 30,
        }
    }
}

impl Config {
    /// Reads and checks a config file. A relative `data_dir` is taken
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, false)
    }

    /// Like [`Self::load`]; `validator` turns `chain.validator` on before
    /// the section is checked (`cairn-node run --validator`).
    pub fn load_with(path: &Path, validator: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse_with(&text, validator)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        if let Some(chain) = config.chain.as_mut() {
            for path in [chain.genesis.as_mut(), chain.share.as_mut()]
                .into_iter()
                .flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        Ok(config)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, false)
    }

    /// Like [`Self::parse`], with `chain.validator` forced on if `validator`
    /// (a `[chain]` section is then required).
    pub fn parse_with(text: &str, validator: bool) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; the
            // first line names the key and the problem.
            let message = e.message().trim().to_string();
            // Name the offending line, which holds the key.
            let place = e
                .span()
                .map(|s| {
                    let start = s.start.min(text.len());
                    let number = text[..start].matches('\n').count() + 1;
                    let line = text.lines().nth(number - 1).unwrap_or("").trim();
                    format!("line {number} `{line}`: ")
                })
                .unwrap_or_default();
            ConfigError::Syntax(format!("{place}{message}"))
        })?;
        let defaults = Limits::default();
        let capacity = parse_size(&raw.capacity).map_err(|e| field("capacity", e.to_string()))?;
        if capacity == 0 {
            return Err(field("capacity", "must be more than 0 bytes"));
        }
        if raw.data_dir.as_os_str().is_empty() {
            return Err(field("data_dir", "must not be empty"));
        }
        let log_level = raw.log_level.unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| field("log_level", e.to_string()))?;
        let listen = addrs("network.listen", &raw.network.listen)?;
        if listen.is_empty() {
            return Err(field("network.listen", "needs at least one address"));
        }
        let bootstrap = addrs("network.bootstrap", &raw.network.bootstrap)?;
        for (i, a) in bootstrap.iter().enumerate() {
            if !a
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            {
                return Err(field(
                    format!("network.bootstrap[{i}]"),
                    "must end in /p2p/<peer id>",
                ));
            }
        }
        let external = addrs("network.external", &raw.network.external)?;
        let bulk_listen = bulk_listen(raw.network.bulk_listen.as_deref(), &listen)?;
        let http = match raw.http.listen.as_deref() {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 4100))),
            Some("off") | Some("") => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|e| field("http.listen", format!("'{text}': {e}")))?,
            ),
        };
        let http_defaults = HttpLimits::default();
        let http_limits = HttpLimits {
            header_timeout: Duration::from_secs(positive(
                "http.header_timeout_secs",
                raw.http.header_timeout_secs.map(|v| v as usize),
                http_defaults.header_timeout.as_secs() as usize,
            )? as u64),
            request_timeout: Duration::from_secs(positive(
                "http.request_timeout_secs",
                raw.http.request_timeout_secs.map(|v| v as usize),
                http_defaults.request_timeout.as_secs() as usize,
            )? as u64),
            max_concurrent: positive(
                "http.max_concurrent",
                raw.http.max_concurrent,
                http_defaults.max_concurrent,
            )?,
            max_connections: positive(
                "http.max_connections",
                raw.http.max_connections,
                http_defaults.max_connections,
            )?,
            max_body: match raw.http.max_body.as_deref() {
                Some(b) => {
                    let v = parse_size(b).map_err(|e| field("http.max_body", e.to_string()))?;
                    if v == 0 {
                        return Err(field("http.max_body", "must be more than 0 bytes"));
                    }
                    v
                }
                None => http_defaults.max_body,
            },
        };
        let scrub_interval = Duration::from_secs(raw.scrub.interval_secs.unwrap_or(3600));
        let scrub_rate = match raw.scrub.rate {
            Some(r) => parse_size(&r).map_err(|e| field("scrub.rate", e.to_string()))?,
            None => 64 << 20,
        };
        if scrub_rate == 0 {
            return Err(field("scrub.rate", "must be more than 0 bytes per second"));
        }
        let l = raw.limits;
        let limits = Limits {
            inbound_buffer: match l.inbound_buffer {
                Some(b) => {
                    let v = parse_size(&b)
                        .map_err(|e| field("limits.inbound_buffer", e.to_string()))?;
                    let min = cairn_protocol::params::MAX_SHARD_SIZE as u64;
                    if v < min {
                        return Err(field(
                            "limits.inbound_buffer",
                            format!(
                                "must hold at least one largest shard ({})",
                                format_size(min)
                            ),
                        ));
                    }
                    v
                }
                None => defaults.inbound_buffer,
            },
            requests_per_peer: positive(
                "limits.requests_per_peer",
                l.requests_per_peer,
                defaults.requests_per_peer,
            )?,
            streams_per_connection: positive(
                "limits.streams_per_connection",
                l.streams_per_connection,
                defaults.streams_per_connection,
            )?,
            request_timeout: Duration::from_secs(positive(
                "limits.request_timeout_secs",
                l.request_timeout_secs.map(|v| v as usize),
                defaults.request_timeout.as_secs() as usize,
            )? as u64),
            gc_interval: Duration::from_secs(positive(
                "limits.gc_interval_secs",
                l.gc_interval_secs.map(|v| v as usize),
                defaults.gc_interval.as_secs() as usize,
            )? as u64),
            response_buffer: match l.response_buffer {
                Some(b) => {
                    let v = parse_size(&b)
                        .map_err(|e| field("limits.response_buffer", e.to_string()))?;
                    let min = cairn_protocol::wire::MAX_RANGE_BODY;
                    if v < min {
                        return Err(field(
                            "limits.response_buffer",
                            format!(
                                "must hold at least one whole-shard answer ({})",
                                format_size(min)
                            ),
                        ));
                    }
                    v
                }
                None => defaults.response_buffer,
            },
            response_buffer_per_peer: match l.response_buffer_per_peer {
                Some(b) => {
                    let v = parse_size(&b)
                        .map_err(|e| field("limits.response_buffer_per_peer", e.to_string()))?;
                    let min = cairn_protocol::wire::MAX_RANGE_BODY;
                    if v < min {
                        return Err(field(
                            "limits.response_buffer_per_peer",
                            format!(
                                "must hold at least one whole-shard answer ({})",
                                format_size(min)
                            ),
                        ));
                    }
                    v
                }
                None => defaults.response_buffer_per_peer,
            },
            max_requests: positive("limits.max_requests", l.max_requests, defaults.max_requests)?,
            store_threads: positive(
                "limits.store_threads",
                l.store_threads,
                defaults.store_threads,
            )?,
            max_connections: positive(
                "limits.max_connections",
                l.max_connections,
                defaults.max_connections,
            )?,
            connections_per_peer: positive(
                "limits.connections_per_peer",
                l.connections_per_peer,
                defaults.connections_per_peer,
            )?,
            unpaid_grace: Duration::from_secs(positive(
                "limits.unpaid_grace_secs",
                l.unpaid_grace_secs.map(|v| v as usize),
                defaults.unpaid_grace.as_secs() as usize,
            )? as u64),
            unpaid_bytes_per_owner: match l.unpaid_bytes_per_owner {
                Some(b) => parse_size(&b)
                    .map_err(|e| field("limits.unpaid_bytes_per_owner", e.to_string()))?,
                None => defaults.unpaid_bytes_per_owner,
            },
            unpaid_bytes: match l.unpaid_bytes {
                Some(b) => {
                    parse_size(&b).map_err(|e| field("limits.unpaid_bytes", e.to_string()))?
                }
                None => defaults.unpaid_bytes,
            },
        };
        let chain = match raw.chain {
            None if validator => {
                return Err(field(
                    "chain",
                    "--validator needs a [chain] section with `genesis`",
                ))
            }
            None => None,
            Some(mut c) => {
                c.validator |= validator;
                Some(chain_config(c, http)?)
            }
        };
        Ok(Self {
            chain,
            data_dir: raw.data_dir,
            capacity,
            log_level,
            listen,
            bootstrap,
            external,
            bulk_listen,
            http,
            http_limits,
            scrub_interval,
            scrub_rate,
            store: crate::store::StoreOptions {
                direct_io: raw.store.direct_io.unwrap_or(true),
            },
            limits,
        })
    }

    /// Where the shard store (shard files and their RocksDB index) lives.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// Where a validator's ledger (its own RocksDB) lives.
    pub fn ledger_dir(&self) -> PathBuf {
        self.data_dir.join("chain").join("db")
    }

    /// Where a validator's consensus journals and block archives live.
    pub fn engine_dir(&self) -> PathBuf {
        self.data_dir.join("chain").join("engine")
    }

    /// The identity key file.
    pub fn identity_path(&self) -> PathBuf {
        self.data_dir.join(IDENTITY_FILE)
    }

    /// A validator's threshold key share: `chain.share`, or
    /// [`SHARE_FILE`] in the data directory.
    pub fn share_path(&self) -> PathBuf {
        self.chain
            .as_ref()
            .and_then(|c| c.share.clone())
            .unwrap_or_else(|| self.data_dir.join(SHARE_FILE))
    }
}

fn chain_config(c: RawChain, http: Option<SocketAddr>) -> Result<ChainConfig, ConfigError> {
    let genesis = c.genesis.filter(|g| !g.as_os_str().is_empty());
    if c.validator && genesis.is_none() {
        return Err(field(
            "chain.genesis",
            "names the genesis file and is required for a validator",
        ));
    }
    for (i, url) in c.api.iter().enumerate() {
        cairn_client::chain::Endpoint::parse(url)
            .map_err(|e| field(format!("chain.api[{i}]"), e.to_string()))?;
    }
    let register = c.register.unwrap_or(true);
    if register && c.api.is_empty() {
        if !c.validator {
            return Err(field(
                "chain.api",
                "a node that registers on the chain needs validators' HTTP APIs, e.g. api = [\"http://10.0.0.2:4100\"] (or register = false)",
            ));
        }
        if http.is_none() {
            return Err(field(
                "chain.api",
                "a validator with http.listen off cannot register through its own API: list validators' APIs (or register = false)",
            ));
        }
    }
    if c.stake == Some(0) {
        return Err(field("chain.stake", "must be more than 0"));
    }
    if c.max_deal_epochs == Some(0) {
        return Err(field("chain.max_deal_epochs", "must be more than 0"));
    }
    let listen = match c.listen.as_deref() {
        None => SocketAddr::from(([127, 0, 0, 1], 4200)),
        Some(text) => text
            .parse()
            .map_err(|e| field("chain.listen", format!("'{text}': {e}")))?,
    };
    let mut peers = Vec::new();
    for (i, text) in c.peers.iter().enumerate() {
        let name = format!("chain.peers[{i}]");
        let (address, socket) = text.split_once('@').ok_or_else(|| {
            field(
                &name,
                format!("'{text}': expected <chain address>@<host:port>"),
            )
        })?;
        let address = address
            .parse()
            .map_err(|e| field(&name, format!("'{address}': {e}")))?;
        let socket = socket
            .parse()
            .map_err(|e| field(&name, format!("'{socket}': {e}")))?;
        peers.push((address, socket));
    }
    let block_interval = Duration::from_millis(c.block_interval_ms.unwrap_or(1000));
    if block_interval < Duration::from_millis(50) || block_interval > Duration::from_secs(60) {
        return Err(field(
            "chain.block_interval_ms",
            "must be between 50 and 60000",
        ));
    }
    Ok(ChainConfig {
        genesis,
        validator: c.validator,
        listen,
        peers,
        block_interval,
        api: c.api,
        register,
        stake: c.stake,
        prove: c.prove.unwrap_or(register),
        repair: c.repair.unwrap_or(true),
        repair_stagger_blocks: c
            .repair_stagger_blocks
            .unwrap_or(crate::repair::STAGGER_BLOCKS),
        ask_per_gib_epoch: c.ask_per_gib_epoch.unwrap_or(0),
        max_deal_epochs: c.max_deal_epochs.unwrap_or(u64::MAX),
        share: c.share.filter(|p| !p.as_os_str().is_empty()),
    })
}

fn positive(name: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(field(name, "must be more than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `network.bulk_listen`: absent, the host of the first IP listen address
/// with a free port; "off", none; else a `host:port`.
fn bulk_listen(
    text: Option<&str>,
    listen: &[Multiaddr],
) -> Result<Option<SocketAddr>, ConfigError> {
    use libp2p::multiaddr::Protocol;
    match text {
        Some("off") | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| field("network.bulk_listen", format!("'{text}': {e}"))),
        None => Ok(listen
            .iter()
            .flat_map(|a| a.iter())
            .find_map(|p| match p {
                Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            })
            .map(|ip| SocketAddr::new(ip, 0))),
    }
}

fn addrs(name: &str, texts: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.parse::<Multiaddr>()
                .map_err(|e| field(format!("{name}[{i}]"), format!("'{t}': {e}")))
        })
        .collect()
}

/// What `cairn-node init` asks for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub capacity: u64,
    /// Port for both QUIC (UDP) and TCP; 0 picks free ports.
    pub port: u16,
    /// Address to listen on, e.g. 0.0.0.0 or 127.0.0.1.
    pub host: std::net::IpAddr,
    pub http: Option<SocketAddr>,
    pub bootstrap: Vec<Multiaddr>,
}

/// The text of a fresh config file, with comments an operator can follow.
pub fn render(options: &InitOptions) -> String {
    let ip = match options.host {
        std::net::IpAddr::V4(_) => "ip4",
        std::net::IpAddr::V6(_) => "ip6",
    };
    let host = options.host;
    let port = options.port;
    let quote = |v: &[Multiaddr]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let http = options
        .http
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    format!(
        r#"# cairn-node configuration. See docs/node.md for every field.

# Where the shard store and the identity key live.
data_dir = "{data_dir}"
# How much shard data this node may hold (B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB).
capacity = "{capacity}"
# A tracing filter: error, warn, info, debug, trace, or per module.
log_level = "info"

[network]
# QUIC (UDP) and TCP; port 0 picks a free port at every start.
listen = ["/{ip}/{host}/udp/{port}/quic-v1", "/{ip}/{host}/tcp/{port}"]
# Peers to join through, each ending in /p2p/<peer id>.
bootstrap = [{bootstrap}]
# Addresses to announce besides the listen addresses (e.g. a public IP).
external = []
# Shard bodies over TLS 1.3 on TCP, beside libp2p (docs/node.md#bulk-transport):
# "host:port", or "off". Absent: the first listen address's host, a free port.
# bulk_listen = "0.0.0.0:4002"

[http]
# /metrics, /status and the status page. Keep it on loopback; "off" disables it.
listen = "{http}"
# A client must send its headers within header_timeout_secs, and have its
# answer within request_timeout_secs (408 past it); past max_concurrent
# requests at once it is answered 503, bodies past max_body 413.
header_timeout_secs = 10
request_timeout_secs = 30
max_concurrent = 64
max_connections = 256
max_body = "1MiB"

[scrub]
# Pause between full passes over the store, and the read rate while scrubbing.
interval_secs = 3600
rate = "64MiB"

[store]
# Shard files bypass the page cache (O_DIRECT) where the filesystem allows
# it; false: buffered I/O. A filesystem that refuses O_DIRECT gets buffered
# I/O either way (logged when the store opens).
direct_io = true

[limits]
# Request bodies buffered at once over all peers.
inbound_buffer = "256MiB"
# Response bodies held at once over all peers; a fetch that finds no room
# within 2 s is answered busy.
response_buffer = "256MiB"
# The most of it one peer may hold (busy past it at once).
response_buffer_per_peer = "64MiB"
requests_per_peer = 32
# Requests in flight over all peers.
max_requests = 512
streams_per_connection = 64
max_connections = 512
connections_per_peer = 8
# Threads doing store work (reads, hashing, writes) at once.
store_threads = 16
request_timeout_secs = 60
gc_interval_secs = 300
# On a node of a chain: a shard no deal pays for (and no receipt names) is
# removed after unpaid_grace_secs; one owner may hold unpaid_bytes_per_owner
# of them here, all owners unpaid_bytes.
unpaid_grace_secs = 86400
unpaid_bytes_per_owner = "64GiB"
unpaid_bytes = "256GiB"
"#,
        data_dir = toml_escape(&options.data_dir.to_string_lossy()),
        capacity = exact_size(options.capacity),
        bootstrap = quote(&options.bootstrap),
    )
}

/// A size in the largest binary unit that states it exactly.
fn exact_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        render(&InitOptions {
            data_dir: "/tmp/x".into(),
            capacity: 10 << 30,
            port: 0,
            host: [127, 0, 0, 1].into(),
            http: Some(([127, 0, 0, 1], 0).into()),
            bootstrap: vec![],
        })
    }

    #[test]
    fn rendered_config_parses() {
        let c = Config::parse(&sample()).unwrap();
        assert_eq!(c.capacity, 10 << 30);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.limits.requests_per_peer, 32);
        assert_eq!(c.limits.response_buffer, Limits::default().response_buffer);
        assert_eq!(c.limits.store_threads, 16);
        assert!(c.store.direct_io);
    }

    #[test]
    fn direct_io_can_be_turned_off_and_defaults_on() {
        let s = sample();
        let off = Config::parse(&s.replace("direct_io = true", "direct_io = false")).unwrap();
        assert!(!off.store.direct_io);
        let absent = Config::parse(&s.replace("direct_io = true", "")).unwrap();
        assert!(absent.store.direct_io);
        let e = Config::parse(&s.replace("direct_io = true", "direct_io = 1")).unwrap_err();
        assert!(e.to_string().contains("direct_io"), "{e}");
    }

    #[test]
    fn http_limits_are_read_and_checked() {
        let s = sample();
        let c = Config::parse(&s).unwrap();
        assert_eq!(c.http_limits.header_timeout, Duration::from_secs(10));
        assert_eq!(c.http_limits.max_body, 1 << 20);
        let c = Config::parse(&s.replace("max_concurrent = 64", "max_concurrent = 2")).unwrap();
        assert_eq!(c.http_limits.max_concurrent, 2);
        let e = error_of(&s.replace("header_timeout_secs = 10", "header_timeout_secs = 0"));
        assert!(e.contains("http.header_timeout_secs"), "{e}");
        let e = error_of(&s.replace("max_body = \"1MiB\"", "max_body = \"0B\""));
        assert!(e.contains("http.max_body"), "{e}");
    }

    #[test]
    fn a_response_buffer_below_one_whole_shard_answer_is_refused() {
        let s = sample();
        let e = error_of(&s.replace(
            "response_buffer = \"256MiB\"",
            "response_buffer = \"32MiB\"",
        ));
        assert!(e.contains("limits.response_buffer"), "{e}");
        let e = error_of(&s.replace("store_threads = 16", "store_threads = 0"));
        assert!(e.contains("limits.store_threads"), "{e}");
        let c = Config::parse(&s.replace("max_connections = 512", "max_connections = 3")).unwrap();
        assert_eq!(c.limits.max_connections, 3);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_fields_are_named() {
        let s = sample();
        let e = error_of(&s.replace("capacity = \"10GiB\"", "capacity = \"lots\""));
        assert!(e.contains("capacity"), "{e}");
        let e = error_of(&s.replace("/udp/0/quic-v1", "/udp/zero/quic-v1"));
        assert!(e.contains("network.listen[0]"), "{e}");
        let e = error_of(&s.replace("bootstrap = []", "bootstrap = [\"/ip4/1.2.3.4/tcp/1\"]"));
        assert!(
            e.contains("network.bootstrap[0]") && e.contains("/p2p/"),
            "{e}"
        );
        let e = error_of(&s.replace("listen = \"127.0.0.1:0\"", "listen = \"localhost\""));
        assert!(e.contains("http.listen"), "{e}");
        let e = error_of(&s.replace("requests_per_peer = 32", "requests_per_peer = 0"));
        assert!(e.contains("limits.requests_per_peer"), "{e}");
        let e = error_of(&s.replace("log_level = \"info\"", "log_level = \"[[\""));
        assert!(e.contains("log_level"), "{e}");
        let e = error_of(&s.replace("[scrub]", "[scrub]\nspeed = 3"));
        assert!(e.contains("speed") && !e.contains('\n'), "{e}");
        let e = error_of(&s.replace("inbound_buffer = \"256MiB\"", "inbound_buffer = \"1MiB\""));
        assert!(e.contains("limits.inbound_buffer"), "{e}");
        let e = error_of("capacity = 5");
        assert!(e.starts_with("config error:") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn chain_section() {
        let s = sample();
        let with = |chain: &str| format!("{s}\n[chain]\n{chain}\n");
        // A storage node: validators' APIs, no genesis.
        let c = Config::parse(&with(
            "api = [\"http://127.0.0.1:4100\", \"http://10.0.0.2:4100/x\"]\nstake = 5000",
        ))
        .unwrap();
        let chain = c.chain.unwrap();
        assert!(!chain.validator && chain.register && chain.genesis.is_none());
        assert_eq!(chain.api.len(), 2);
        assert_eq!(chain.stake, Some(5000));
        // Defaults: register on, stake from the chain.
        let c = Config::parse(&with("genesis = \"g.json\"\nvalidator = true")).unwrap();
        // The share defaults to the data directory, like the identity key.
        assert_eq!(c.share_path(), c.data_dir.join(SHARE_FILE));
        let chain = c.chain.unwrap();
        assert!(chain.register && chain.api.is_empty() && chain.stake.is_none());
        let c = Config::parse(&with(
            "genesis = \"g.json\"\nvalidator = true\nshare = \"/keys/v0.share\"",
        ))
        .unwrap();
        assert_eq!(c.share_path(), PathBuf::from("/keys/v0.share"));
        // Not registering needs nothing.
        let c = Config::parse(&with("register = false")).unwrap();
        assert!(!c.chain.unwrap().register);

        let e = error_of(&with("validator = true"));
        assert!(e.contains("chain.genesis") && !e.contains('\n'), "{e}");
        let e = error_of(&with(""));
        assert!(e.contains("chain.api") && !e.contains('\n'), "{e}");
        let e = error_of(&with("api = [\"http://h:1\", \"https://h:1\"]"));
        assert!(e.contains("chain.api[1]") && e.contains("https"), "{e}");
        let e = error_of(&with("api = [\"127.0.0.1:4100\"]"));
        assert!(e.contains("chain.api[0]") && !e.contains('\n'), "{e}");
        let e = error_of(&with("api = [\"http://h:1\"]\nstake = 0"));
        assert!(e.contains("chain.stake"), "{e}");
        let e = error_of(&with("api = [\"http://h:1\"]\nstake = -1"));
        assert!(e.contains("stake") && !e.contains('\n'), "{e}");
        let e = error_of(&with("register = \"yes\""));
        assert!(e.contains("register") && !e.contains('\n'), "{e}");
        let e = error_of(&with("apis = []"));
        assert!(e.contains("apis") && !e.contains('\n'), "{e}");
        // A validator without HTTP cannot use its own API.
        let no_http = with("genesis = \"g.json\"\nvalidator = true")
            .replace("listen = \"127.0.0.1:0\"", "listen = \"off\"");
        let e = error_of(&no_http);
        assert!(e.contains("chain.api"), "{e}");
        // --validator on a section without `validator = true`.
        let c = Config::parse_with(&with("genesis = \"g.json\""), true).unwrap();
        assert!(c.chain.unwrap().validator);
        let e = Config::parse_with(&with("api = [\"http://h:1\"]"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chain.genesis"), "{e}");
        let e = Config::parse_with(&s, true).unwrap_err().to_string();
        assert!(e.contains("[chain]"), "{e}");
    }
}
