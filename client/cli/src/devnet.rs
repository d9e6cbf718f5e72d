//! A local network of real `cairn-node` processes on 127.0.0.1.
//!
//! ```text
//! dir/
//!   devnet.json     the running nodes: pid, peer id, addresses, data dir
//!   client.toml     a client config naming every node (QUIC first)
//!   account.key     the devnet's account (recovery phrase, mode 0600)
//!   genesis.json    the chain's genesis (validators: the first 4 nodes)
//!   node-00/        a node's data dir: config.toml, identity.key, store/,
//!   node-01/        node.json while it runs, node.log (its stderr)
//! ```
//!
//! [`Devnet::up`] initialises the node directories it lacks (existing ones
//! are reused, so peer ids survive a `down`/`up`), starts node 0, then the
//! others in parallel with node 0 as their bootstrap peer, and waits for
//! each to publish its `node.json`. Nodes run in their own process group, so
//! they outlive the `cairn devnet up` that started them; [`Devnet::down`]
//! stops them (SIGTERM, then SIGKILL after 10 s). A devnet made
//! [`owned`](Devnet::owned) kills its nodes when dropped (tests, benches).
//!
//! The first `min(4, N)` nodes are validators of a devnet chain
//! ([`DevnetOptions::validators`]): before they start, `up` writes
//! `genesis.json` (chain id `cairn-devnet`, those nodes' chain addresses,
//! an allocation of [`DEVNET_ALLOCATION`] to the devnet's account, the
//! faucet on) and a `[chain]` section into each validator's `config.toml`
//! with a fresh consensus port and every validator as a peer.
//! `client.toml` lists the validators' HTTP APIs under `chain`.
//!
//! Every start listens on fresh ports (port 0). [`Devnet::restart`] pins the
//! ports a node had, so addresses in `client.toml` stay valid across a
//! restart; if such a port was taken meanwhile, the restart fails and says so.
//!
//! A node may run on a host of its own ([`NodeHost`], one per node in
//! [`DevnetOptions::hosts`]): its command is prefixed by the host's
//! launcher (`ip netns exec <ns>`), it listens on the host's IP at fixed
//! ports ([`HOST_P2P_PORT`], [`HOST_CHAIN_PORT`]; HTTP on
//! `0.0.0.0:`[`HOST_HTTP_PORT`]) and announces the host's public IP
//! (`network.external`, `[chain] peers`, the chain API URLs, `client.toml`),
//! which may be a relay's. The devnet itself reads the nodes' HTTP APIs
//! at [`NodeHost::probe_http`]. The network fault tests run nodes so, in
//! network namespaces (docs/simulation.md, Network fault tests).
//!
//! Signals go through the `kill` command (the workspace forbids `unsafe`);
//! liveness is read from `/proc` where it exists (which also guards against
//! a recycled pid), else `kill -0`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::chain::ChainClient;
use cairn_client::net::client::NodeAddr;
use cairn_node::daemon::{node_addr, RuntimeInfo, RUNTIME_FILE};
use cairn_node::local_chain::NODE_CONFIG;
use cairn_protocol::chain::{Address, Allocation};
use serde::{Deserialize, Serialize};

use cairn_client::config::{self, ClientConfig, CONFIG_FILE};
use cairn_client::keys;

/// The file that lists a devnet's nodes.
pub const DEVNET_FILE: &str = "devnet.json";
/// Environment variable naming the `cairn-node` binary.
pub const NODE_BIN_ENV: &str = "CAIRN_NODE_BIN";
/// How long `down` waits for a node to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_FILE: &str = "node.log";
/// The devnet chain's genesis file, in the devnet directory.
pub use cairn_node::local_chain::GENESIS_FILE;
/// The devnet chain's id.
pub const CHAIN_ID: &str = "cairn-devnet";
/// What the genesis gives the devnet's account.
pub const DEVNET_ALLOCATION: u64 = 1_000_000_000;
/// Validators a devnet runs by default (fewer if it has fewer nodes).
pub const DEFAULT_VALIDATORS: usize = 4;
/// Milliseconds between the devnet chain's blocks.
const BLOCK_INTERVAL_MS: u64 = 1000;

/// The UDP (QUIC) and TCP port a node on a [`NodeHost`] listens on.
pub const HOST_P2P_PORT: u16 = 4001;
/// The TCP port of the bulk transport (shard bodies over TLS) of a node on
/// a [`NodeHost`]: fixed, as the others, so a relay in front of the host
/// can pass it.
pub const HOST_BULK_PORT: u16 = 4002;
/// The HTTP port of a node on a [`NodeHost`] (on every address).
pub const HOST_HTTP_PORT: u16 = 4100;
/// The consensus port of a validator on a [`NodeHost`].
pub const HOST_CHAIN_PORT: u16 = 4200;

/// Where a node runs when it has a host of its own (a network namespace)
/// rather than sharing this machine's 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHost {
    /// Words run before the node's command, e.g. `ip netns exec <ns>`;
    /// the last one must exec the node (its pid is the node's).
    pub launcher: Vec<String>,
    /// The host's own IP: libp2p and consensus listen on it.
    pub listen_ip: std::net::Ipv4Addr,
    /// The IP peers and clients reach the node at (announced).
    pub public_ip: std::net::Ipv4Addr,
    /// `host:port` at which this process reaches the node's HTTP API.
    pub probe_http: String,
}

impl NodeHost {
    fn multiaddrs(ip: std::net::Ipv4Addr) -> Vec<String> {
        vec![
            format!("/ip4/{ip}/udp/{HOST_P2P_PORT}/quic-v1"),
            format!("/ip4/{ip}/tcp/{HOST_P2P_PORT}"),
        ]
    }
}

/// The default devnet directory: `$XDG_DATA_HOME/cairn/devnet`.
pub fn default_dir() -> PathBuf {
    config::data_home().join("devnet")
}

/// Why a devnet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("cannot find the cairn-node binary: set {NODE_BIN_ENV}, put it next to `cairn`, or on PATH (build it with `cargo build -p cairn-node`)")]
    NoNodeBinary,
    #[error("{NODE_BIN_ENV}={0} is not an executable file")]
    BadNodeBinary(PathBuf),
    #[error("a devnet is already running in {dir} ({alive} node(s) alive); stop it with `cairn devnet down --dir {dir}`")]
    AlreadyRunning { dir: PathBuf, alive: usize },
    #[error("no devnet in {dir} ({DEVNET_FILE} missing); start one with `cairn devnet up`")]
    NotRunning { dir: PathBuf },
    #[error("a devnet needs at least one node")]
    NoNodes,
    #[error("{hosts} hosts given for {nodes} nodes (one per node, or none)")]
    Hosts { hosts: usize, nodes: usize },
    #[error("no node {index} in this devnet (it has {count})")]
    NoSuchNode { index: usize, count: usize },
    #[error("`cairn-node init` failed for {dir}: {reason}")]
    Init { dir: PathBuf, reason: String },
    #[error("node {index} did not start: {reason}\n--- last lines of {log} ---\n{tail}")]
    Start {
        index: usize,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Key(#[from] keys::KeyFileError),
    #[error("cannot set up the devnet's chain: {0}")]
    LocalChain(#[from] cairn_node::local_chain::LocalChainError),
    #[error("devnet chain: {0}")]
    Chain(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DevnetError + 'a {
    move |source| DevnetError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How to start a devnet.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Shard bytes each node may hold.
    pub capacity: u64,
    /// The `cairn-node` binary; default: [`find_node_bin`].
    pub node_bin: Option<PathBuf>,
    /// How long one node may take to publish its `node.json`.
    pub start_timeout: Duration,
    /// `RUST_LOG` for the nodes (default: their config's `info`).
    pub log_level: Option<String>,
    /// How many of the nodes (the first ones) are chain validators, at most
    /// `nodes`; 0: no chain.
    pub validators: usize,
    /// `[chain] repair_stagger_blocks` for every node (`None`: the node's
    /// default); 0 makes every node's repair worker start on a deal at once,
    /// to watch the chain settle racing claims.
    pub repair_stagger_blocks: Option<u64>,
    /// Node `i` runs on `hosts[i]`; empty: every node on 127.0.0.1.
    pub hosts: Vec<NodeHost>,
    /// `[store] direct_io` for every new node (`None`: the node's default).
    pub direct_io: Option<bool>,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            nodes: 10,
            capacity: 1 << 30,
            node_bin: None,
            start_timeout: Duration::from_secs(30),
            log_level: None,
            validators: DEFAULT_VALIDATORS,
            repair_stagger_blocks: None,
            hosts: Vec::new(),
            direct_io: None,
        }
    }
}

/// Finds the `cairn-node` binary: `explicit`, `$CAIRN_NODE_BIN`, next to the
/// running executable, in its parent directory (test binaries live in
/// `target/debug/deps/`), or on `PATH`.
pub fn find_node_bin(explicit: Option<&Path>) -> Result<PathBuf, DevnetError> {
    let given = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(NODE_BIN_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = given {
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(DevnetError::BadNodeBinary(path))
        };
    }
    let name = format!("cairn-node{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(&name));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(&name));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(&name)));
    }
    candidates
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or(DevnetError::NoNodeBinary)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// One node of a devnet, as recorded in `devnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetNode {
    pub index: usize,
    pub pid: u32,
    pub peer_id: String,
    /// Full addresses, each ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    pub http: Option<String>,
    pub data_dir: PathBuf,
}

impl DevnetNode {
    /// The node's address for a client, QUIC first.
    pub fn addr(&self) -> Option<NodeAddr> {
        let info = RuntimeInfo {
            peer_id: self.peer_id.clone(),
            listen: self.listen.clone(),
            http: self.http.clone(),
            pid: self.pid,
        };
        let mut addr = node_addr(&info)?;
        addr.addrs
            .sort_by_key(|a| !a.to_string().contains("/quic-v1"));
        Some(addr)
    }

    /// The first QUIC address in full, for display and bootstrap.
    pub fn quic_addr(&self) -> Option<&str> {
        self.listen
            .iter()
            .find(|a| a.contains("/quic-v1"))
            .or(self.listen.first())
            .map(String::as_str)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DevnetFile {
    node_bin: PathBuf,
    nodes: Vec<DevnetNode>,
    /// Indexes of the nodes that are chain validators (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    validators: Vec<usize>,
}

/// What [`Devnet::status`] reports for one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub index: usize,
    pub peer_id: String,
    pub addr: Option<String>,
    pub http: Option<String>,
    pub pid: u32,
    pub alive: bool,
    /// The node's `/status` document, if it answered.
    pub status: Option<serde_json::Value>,
}

/// A devnet: its directory, its nodes and, for nodes this process started,
/// their process handles.
#[derive(Debug)]
pub struct Devnet {
    dir: PathBuf,
    node_bin: PathBuf,
    nodes: Vec<DevnetNode>,
    validators: Vec<usize>,
    children: Vec<Option<Child>>,
    owned: bool,
    log_level: Option<String>,
    start_timeout: Duration,
    /// Set in every started node's `[chain]` by [`Self::up`].
    repair_stagger_blocks: Option<u64>,
    /// [`DevnetOptions::hosts`] (not recorded in `devnet.json`).
    hosts: Vec<NodeHost>,
}

impl Devnet {
    /// Starts a devnet of `options.nodes` nodes in `dir` and waits until
    /// every node listens. Refuses if a devnet already runs there.
    pub fn up(dir: &Path, options: &DevnetOptions) -> Result<Self, DevnetError> {
        if options.nodes == 0 {
            return Err(DevnetError::NoNodes);
        }
        let node_bin = find_node_bin(options.node_bin.as_deref())?;
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let dir = dir.canonicalize().map_err(io("resolve", dir))?;
        if let Ok(mut old) = Self::open(&dir) {
            let alive = (0..old.nodes.len()).filter(|&i| old.is_alive(i)).count();
            if alive > 0 {
                return Err(DevnetError::AlreadyRunning { dir, alive });
            }
        }
        let mut net = Self {
            node_bin,
            nodes: Vec::new(),
            validators: (0..options.validators.min(options.nodes)).collect(),
            children: Vec::new(),
            owned: true, // until fully up: a failure kills what started
            log_level: options.log_level.clone(),
            start_timeout: options.start_timeout,
            repair_stagger_blocks: options.repair_stagger_blocks,
            hosts: options.hosts.clone(),
            dir,
        };
        if !net.hosts.is_empty() && net.hosts.len() != options.nodes {
            return Err(DevnetError::Hosts {
                hosts: net.hosts.len(),
                nodes: options.nodes,
            });
        }
        let dirs: Vec<PathBuf> = (0..options.nodes).map(|i| net.node_dir(i)).collect();
        let inits: Vec<Result<(), DevnetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .iter()
                .map(|d| {
                    let bin = &net.node_bin;
                    s.spawn(move || {
                        init_node(bin, d, options.capacity)?;
                        match options.direct_io {
                            Some(on) => edit_node_config(d, |t| set_direct_io(t, on)),
                            None => Ok(()),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked(&net.dir))))
                .collect()
        });
        inits.into_iter().collect::<Result<Vec<()>, _>>()?;
        let key_file = net.dir.join(keys::KEY_FILE);
        if !key_file.exists() {
            keys::create(
                &key_file,
                &cairn_protocol::keys::RecoveryPhrase::generate(),
                false,
            )?;
        }
        if !net.validators.is_empty() {
            let account = keys::load(&key_file)?.address();
            let validator_dirs: Vec<PathBuf> =
                net.validators.iter().map(|&i| dirs[i].clone()).collect();
            setup_chain(&net.dir, &validator_dirs, Some(account))?;
            if !net.hosts.is_empty() {
                let hosts: Vec<&NodeHost> = net.validators.iter().map(|&i| &net.hosts[i]).collect();
                for (dir, host) in validator_dirs.iter().zip(&hosts) {
                    edit_node_config(dir, |t| set_host_chain(t, host, &hosts))?;
                }
            }
        }

        // Node 0 first; the others bootstrap through it. Validators before
        // storage nodes, which register through the validators' APIs.
        let validators = net.validators.len().max(1).min(options.nodes);
        net.start_batch(0..1, &[], None)?;
        let bootstrap: Vec<String> = net.nodes[0].listen.clone();
        net.start_batch(1..validators, &bootstrap, None)?;
        let chain_api = net.chain_urls();
        net.start_batch(validators..options.nodes, &bootstrap, Some(&chain_api))?;
        if !net.validators.is_empty() {
            net.wait_for_registrations()?;
        }
        net.write_files()?;
        net.owned = false;
        Ok(net)
    }

    /// Starts nodes `range` (the next ones after those running) in
    /// parallel, bootstrapping through `bootstrap`; storage nodes get
    /// `chain_api` to register through (`Some(&[])`: no chain).
    fn start_batch(
        &mut self,
        range: std::ops::Range<usize>,
        bootstrap: &[String],
        chain_api: Option<&[String]>,
    ) -> Result<(), DevnetError> {
        let started: Vec<Result<(DevnetNode, Child), DevnetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = range
                .map(|i| {
                    let net = &*self;
                    s.spawn(move || {
                        edit_node_config(&net.node_dir(i), |table| {
                            match net.hosts.get(i) {
                                Some(host) => set_host_ports(table, host, Some(bootstrap))?,
                                None => set_ports(table, None, bootstrap)?,
                            }
                            if let Some(urls) = chain_api {
                                set_chain_api(table, urls);
                            }
                            match net.repair_stagger_blocks {
                                Some(blocks) if table.contains_key("chain") => {
                                    set_chain_key(table, "repair_stagger_blocks", blocks)
                                }
                                _ => Ok(()),
                            }
                        })?;
                        net.start_node(i)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked(&self.dir))))
                .collect()
        });
        let mut first_error = None;
        for r in started {
            match r {
                Ok((node, child)) => {
                    self.nodes.push(node);
                    self.children.push(Some(child));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e), // dropping the devnet kills the nodes that did start
            None => Ok(()),
        }
    }

    /// Waits until every node is in the chain's registry with the
    /// addresses it listens on now, so clients find them all.
    fn wait_for_registrations(&self) -> Result<(), DevnetError> {
        let urls = self.probe_urls();
        let want: Vec<(String, Vec<String>)> = self
            .nodes
            .iter()
            .map(|n| {
                let mut bare: Vec<String> = n
                    .listen
                    .iter()
                    .filter_map(|a| a.split("/p2p/").next().map(String::from))
                    .collect();
                bare.sort();
                (n.peer_id.clone(), bare)
            })
            .collect();
        let deadline = Instant::now() + self.start_timeout.max(Duration::from_secs(30));
        // Its own runtime on its own thread: `up` may be called from
        // inside another runtime.
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io("start a runtime for", &self.dir))?;
                runtime.block_on(async {
                    let chain = ChainClient::new(&urls, Duration::from_secs(2))
                        .map_err(|e| DevnetError::Chain(e.to_string()))?;
                    let mut missing = want.len();
                    while Instant::now() < deadline {
                        if let Ok(list) = chain.nodes().await {
                            missing = want
                                .iter()
                                .filter(|(peer, listening)| {
                                    !list.nodes.iter().any(|n| {
                                        // Announced (external) addresses
                                        // come besides the listen ones.
                                        n.peer_id.as_deref() == Some(peer.as_str())
                                            && listening.iter().all(|a| n.addresses.contains(a))
                                    })
                                })
                                .count();
                            if missing == 0 {
                                return Ok(());
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(DevnetError::Chain(format!(
                        "{missing} of {} nodes did not register on the chain in time; see their node.log",
                        want.len()
                    )))
                })
            })
            .join()
            .unwrap_or_else(|_| Err(panicked(&self.dir)))
        })
    }

    /// The devnet recorded in `dir` (running or not).
    pub fn open(dir: &Path) -> Result<Self, DevnetError> {
        let path = dir.join(DEVNET_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DevnetError::NotRunning {
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        let file: DevnetFile = serde_json::from_str(&text).map_err(|e| DevnetError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let count = file.nodes.len();
        Ok(Self {
            dir: dir.to_path_buf(),
            node_bin: file.node_bin,
            nodes: file.nodes,
            validators: file.validators,
            children: (0..count).map(|_| None).collect(),
            owned: false,
            log_level: None,
            start_timeout: DevnetOptions::default().start_timeout,
            repair_stagger_blocks: None,
            hosts: Vec::new(),
        })
    }

    /// Makes dropping this value kill every node (for tests and benches).
    pub fn owned(mut self) -> Self {
        self.owned = true;
        self
    }

    /// Whether dropping this value kills the nodes.
    pub fn set_owned(&mut self, owned: bool) {
        self.owned = owned;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn nodes(&self) -> &[DevnetNode] {
        &self.nodes
    }

    /// Indexes of the nodes that are chain validators.
    pub fn validators(&self) -> &[usize] {
        &self.validators
    }

    /// The validators' chain APIs, `http://host:port`.
    pub fn chain_urls(&self) -> Vec<String> {
        self.validators
            .iter()
            .filter_map(|&i| self.nodes.get(i)?.http.as_ref())
            .map(|h| format!("http://{h}"))
            .collect()
    }

    /// Where this process reads the validators' chain APIs: their
    /// [`NodeHost::probe_http`] on hosts, else [`Self::chain_urls`].
    pub fn probe_urls(&self) -> Vec<String> {
        if self.hosts.is_empty() {
            return self.chain_urls();
        }
        self.validators
            .iter()
            .filter_map(|&i| self.hosts.get(i))
            .map(|h| format!("http://{}", h.probe_http))
            .collect()
    }

    /// Node `index`'s data directory (`dir/node-NN`).
    pub fn node_dir(&self, index: usize) -> PathBuf {
        self.dir.join(format!("node-{index:02}"))
    }

    /// The client config naming every node.
    pub fn client_config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The devnet's account key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join(keys::KEY_FILE)
    }

    /// A client config for this devnet (as written to `client.toml`).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            &self.dir,
            self.nodes.iter().filter_map(DevnetNode::addr).collect(),
        );
        config.chain = self.chain_urls();
        config
    }

    /// Every node's address, QUIC first.
    pub fn node_addrs(&self) -> Vec<NodeAddr> {
        self.nodes.iter().filter_map(DevnetNode::addr).collect()
    }

    fn check(&self, index: usize) -> Result<(), DevnetError> {
        if index < self.nodes.len() {
            Ok(())
        } else {
            Err(DevnetError::NoSuchNode {
                index,
                count: self.nodes.len(),
            })
        }
    }

    /// Whether node `index`'s process is running (or stopped by
    /// [`pause`](Self::pause)).
    pub fn is_alive(&mut self, index: usize) -> bool {
        let Some(node) = self.nodes.get(index) else {
            return false;
        };
        if let Some(Some(child)) = self.children.get_mut(index) {
            if !matches!(child.try_wait(), Ok(None)) {
                self.children[index] = None;
                return false;
            }
        }
        pid_alive(node.pid)
    }

    /// Each node's process state and, if it answers, its `/status`.
    pub fn status(&mut self) -> Vec<NodeStatus> {
        let alive: Vec<bool> = (0..self.nodes.len()).map(|i| self.is_alive(i)).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .nodes
                .iter()
                .zip(alive)
                .map(|(node, alive)| {
                    // A node on a host answers this process at its probe.
                    let http = match self.hosts.get(node.index) {
                        Some(host) => Some(host.probe_http.clone()),
                        None => node.http.clone(),
                    };
                    s.spawn(move || NodeStatus {
                        index: node.index,
                        peer_id: node.peer_id.clone(),
                        addr: node.quic_addr().map(String::from),
                        http: node.http.clone(),
                        pid: node.pid,
                        alive,
                        status: if alive {
                            http.as_deref().and_then(|h| http_get_json(h, "/status"))
                        } else {
                            None
                        },
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&self.nodes)
                .map(|(h, node)| {
                    h.join().unwrap_or_else(|_| NodeStatus {
                        index: node.index,
                        peer_id: node.peer_id.clone(),
                        addr: None,
                        http: None,
                        pid: node.pid,
                        alive: false,
                        status: None,
                    })
                })
                .collect()
        })
    }

    /// SIGKILL node `index` (no goodbye), and reap it if this process
    /// started it.
    pub fn kill(&mut self, index: usize) -> Result<(), DevnetError> {
        self.check(index)?;
        self.signal_and_reap(index, "KILL");
        Ok(())
    }

    /// SIGSTOP node `index`: it keeps its sockets but answers nothing.
    pub fn pause(&mut self, index: usize) -> Result<(), DevnetError> {
        self.check(index)?;
        if self.is_alive(index) {
            send_signal(self.nodes[index].pid, "STOP");
        }
        Ok(())
    }

    /// SIGCONT node `index` after [`pause`](Self::pause).
    pub fn resume(&mut self, index: usize) -> Result<(), DevnetError> {
        self.check(index)?;
        if self.is_alive(index) {
            send_signal(self.nodes[index].pid, "CONT");
        }
        Ok(())
    }

    /// Starts node `index` again on its data dir (same peer id) and the
    /// ports it had, killing it first if it still runs. Rewrites
    /// `devnet.json` with the new pid.
    pub fn restart(&mut self, index: usize) -> Result<(), DevnetError> {
        self.check(index)?;
        if self.is_alive(index) {
            self.signal_and_reap(index, "KILL");
        }
        // A node killed from elsewhere may still be tearing down its threads
        // (and holding its store's lock) after its pid stopped looking alive.
        wait_exited(self.nodes[index].pid, Duration::from_secs(10));
        let old = self.nodes[index].clone();
        let listen: Vec<String> = old
            .listen
            .iter()
            .filter_map(|a| a.split("/p2p/").next().map(String::from))
            .collect();
        let http = old.http.clone();
        match self.hosts.get(index) {
            Some(host) => {
                edit_node_config(&self.node_dir(index), |t| set_host_ports(t, host, None))?
            }
            None => set_node_ports(
                &self.node_dir(index),
                Some((listen.as_slice(), http.as_deref())),
                &[],
            )?,
        }
        let (node, child) = self.start_node(index)?;
        self.nodes[index] = node;
        self.children[index] = Some(child);
        self.write_files()
    }

    /// Stops every node: SIGTERM, up to 10 s to exit, then SIGKILL. Removes
    /// `devnet.json`; with `purge`, the whole directory. Returns the indexes
    /// of nodes that had to be killed.
    pub fn down(mut self, purge: bool) -> Result<Vec<usize>, DevnetError> {
        let killed = self.stop_all(STOP_TIMEOUT);
        self.owned = false;
        if purge {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", &self.dir)(e))
                }
                _ => {}
            }
        } else {
            match std::fs::remove_file(self.dir.join(DEVNET_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", &self.dir.join(DEVNET_FILE))(e))
                }
                _ => {}
            }
        }
        Ok(killed)
    }

    fn stop_all(&mut self, timeout: Duration) -> Vec<usize> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_alive(i))
            .collect();
        for &i in &live {
            // A paused node must run to see the SIGTERM.
            send_signal(self.nodes[i].pid, "TERM");
            send_signal(self.nodes[i].pid, "CONT");
        }
        let deadline = Instant::now() + timeout;
        let mut waiting = live;
        while !waiting.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            waiting.retain(|&i| self.is_alive(i));
        }
        for &i in &waiting {
            self.signal_and_reap(i, "KILL");
        }
        waiting
    }

    fn signal_and_reap(&mut self, index: usize, signal: &str) {
        if let Some(mut child) = self.children[index].take() {
            if signal == "KILL" {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            send_signal(child.id(), signal);
            self.children[index] = Some(child);
            return;
        }
        if pid_alive(self.nodes[index].pid) {
            send_signal(self.nodes[index].pid, signal);
            if signal == "KILL" {
                wait_exited(self.nodes[index].pid, Duration::from_secs(10));
            }
        }
    }

    fn write_files(&self) -> Result<(), DevnetError> {
        let file = DevnetFile {
            node_bin: self.node_bin.clone(),
            nodes: self.nodes.clone(),
            validators: self.validators.clone(),
        };
        let path = self.dir.join(DEVNET_FILE);
        let text = serde_json::to_string_pretty(&file).map_err(|e| DevnetError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io("write", &path))?;
        self.client_config().write(&self.client_config_path())?;
        Ok(())
    }

    /// Runs `cairn-node run` for node `index` and waits for its `node.json`.
    fn start_node(&self, index: usize) -> Result<(DevnetNode, Child), DevnetError> {
        use std::os::unix::process::CommandExt;
        let dir = self.node_dir(index);
        let runtime = dir.join(RUNTIME_FILE);
        match std::fs::remove_file(&runtime) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &runtime)(e))
            }
            _ => {}
        }
        let log_path = dir.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("open", &log_path))?;
        let log2 = log.try_clone().map_err(io("open", &log_path))?;
        let host = self.hosts.get(index);
        let mut cmd = match host.and_then(|h| h.launcher.split_first()) {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&self.node_bin);
                cmd
            }
            None => Command::new(&self.node_bin),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(dir.join(NODE_CONFIG))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        if let Some(level) = &self.log_level {
            cmd.env("RUST_LOG", level);
        }
        let mut child = cmd.spawn().map_err(io("run", &self.node_bin))?;
        let fail = |reason: String| DevnetError::Start {
            index,
            reason,
            tail: log_tail(&log_path, 20),
            log: log_path.clone(),
        };
        let deadline = Instant::now() + self.start_timeout;
        loop {
            if let Some(info) = RuntimeInfo::read(&dir) {
                if info.pid == child.id() && info.listen.len() >= 2 && info.http.is_some() {
                    let mut node = DevnetNode {
                        index,
                        pid: info.pid,
                        peer_id: info.peer_id,
                        listen: info.listen,
                        http: info.http,
                        data_dir: dir.clone(),
                    };
                    if let Some(host) = host {
                        // Others reach it at its public IP only.
                        let peer = &node.peer_id;
                        node.listen = NodeHost::multiaddrs(host.public_ip)
                            .into_iter()
                            .map(|a| format!("{a}/p2p/{peer}"))
                            .collect();
                        node.http = Some(format!("{}:{HOST_HTTP_PORT}", host.public_ip));
                    }
                    return Ok((node, child));
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => return Err(fail(format!("it exited with {status}"))),
                Ok(None) => {}
                Err(e) => return Err(fail(e.to_string())),
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no {RUNTIME_FILE} within {:?}",
                    self.start_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if self.owned {
            for i in 0..self.nodes.len() {
                self.signal_and_reap(i, "KILL");
            }
            // Nodes still starting when `up` failed have a handle only.
            for mut child in self.children.iter_mut().filter_map(Option::take) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn panicked(path: &Path) -> DevnetError {
    DevnetError::Io {
        action: "start a node in",
        path: path.to_path_buf(),
        source: std::io::Error::other("a worker thread panicked"),
    }
}

/// `cairn-node init` unless the directory has a config already.
fn init_node(bin: &Path, dir: &Path, capacity: u64) -> Result<(), DevnetError> {
    if dir.join(NODE_CONFIG).exists() {
        return Ok(());
    }
    let out = Command::new(bin)
        .arg("init")
        .arg("--data-dir")
        .arg(dir)
        .args(["--capacity", &format!("{capacity}B")])
        .args([
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--http",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io("run", bin))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DevnetError::Init {
            dir: dir.to_path_buf(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Writes `dir/genesis.json` naming the nodes in `validators` (their data
/// dirs) and gives each a `[chain]` section on a fresh consensus port, every
/// validator its peer. The genesis is a function of the validators and the
/// account, so the same devnet writes the same file at every `up`.
fn setup_chain(
    dir: &Path,
    validators: &[PathBuf],
    account: Option<Address>,
) -> Result<(), DevnetError> {
    cairn_node::local_chain::setup(dir, validators, CHAIN_ID, BLOCK_INTERVAL_MS, |genesis| {
        genesis.allocations = account
            .map(|address| Allocation {
                address,
                amount: DEVNET_ALLOCATION,
            })
            .into_iter()
            .collect();
    })
    .map(drop)
    .map_err(DevnetError::LocalChain)
}

/// Reads node `dir`'s config, applies `edit` to its TOML, and writes it
/// back atomically under the devnet's header: one read and one write
/// however many settings a start changes.
fn edit_node_config(
    dir: &Path,
    edit: impl FnOnce(&mut toml::Table) -> Result<(), String>,
) -> Result<(), DevnetError> {
    let path = dir.join(NODE_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
    let bad = |reason: String| DevnetError::BadFile {
        path: path.clone(),
        reason,
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    edit(&mut table).map_err(bad)?;
    let body = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
    let out = format!(
        "# cairn-node configuration, managed by `cairn devnet` (listen ports and bootstrap\n\
         # are rewritten at every start, [chain] api at every `up`). See docs/node.md.\n{body}"
    );
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, out)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io("write", &path))
}

fn strings(v: &[String]) -> toml::Value {
    toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect())
}

/// Points a storage node at the validators' APIs to register through
/// (`[chain] api`), or with no validators removes its `[chain]` section.
fn set_chain_api(table: &mut toml::Table, urls: &[String]) {
    if urls.is_empty() {
        table.remove("chain");
    } else {
        let mut chain = toml::Table::new();
        chain.insert("api".into(), strings(urls));
        table.insert("chain".into(), toml::Value::Table(chain));
    }
}

/// Sets `[chain] key = value`, creating the section if need be.
fn set_direct_io(table: &mut toml::Table, on: bool) -> Result<(), String> {
    let store = table
        .entry("store")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(store) = store else {
        return Err("[store] is not a table".into());
    };
    store.insert("direct_io".into(), toml::Value::Boolean(on));
    Ok(())
}

fn set_chain_key(table: &mut toml::Table, key: &str, value: u64) -> Result<(), String> {
    let chain = table
        .entry("chain")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(chain) = chain else {
        return Err("[chain] is not a table".into());
    };
    let value = i64::try_from(value).map_err(|_| format!("{key} is too large"))?;
    chain.insert(key.into(), toml::Value::Integer(value));
    Ok(())
}

/// Rewrites a node's listen addresses (`pinned`: the ones it had; `None`:
/// port 0 on 127.0.0.1) and bootstrap peers.
fn set_ports(
    table: &mut toml::Table,
    pinned: Option<(&[String], Option<&str>)>,
    bootstrap: &[String],
) -> Result<(), String> {
    let (listen, http) = match pinned {
        Some((listen, http)) => (listen.to_vec(), http.unwrap_or("127.0.0.1:0").to_string()),
        None => (
            vec![
                "/ip4/127.0.0.1/udp/0/quic-v1".to_string(),
                "/ip4/127.0.0.1/tcp/0".to_string(),
            ],
            "127.0.0.1:0".to_string(),
        ),
    };
    let network = table
        .entry("network")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(network) = network else {
        return Err("[network] is not a table".into());
    };
    network.insert("listen".into(), strings(listen.as_slice()));
    if pinned.is_none() {
        network.insert("bootstrap".into(), strings(bootstrap));
    }
    let http_table = table
        .entry("http")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(http_table) = http_table else {
        return Err("[http] is not a table".into());
    };
    http_table.insert("listen".into(), toml::Value::String(http));
    Ok(())
}

/// A node on `host`: libp2p and the bulk transport on its own IP, its
/// public IP announced (`network.external`; clients reach the bulk port at
/// the host of that address), HTTP on every address at [`HOST_HTTP_PORT`]
/// (so [`NodeHost::probe_http`] can reach it from inside the host);
/// `bootstrap` replaces the bootstrap peers unless `None`.
fn set_host_ports(
    table: &mut toml::Table,
    host: &NodeHost,
    bootstrap: Option<&[String]>,
) -> Result<(), String> {
    let network = table
        .entry("network")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(network) = network else {
        return Err("[network] is not a table".into());
    };
    network.insert(
        "listen".into(),
        strings(&NodeHost::multiaddrs(host.listen_ip)),
    );
    network.insert(
        "external".into(),
        strings(&NodeHost::multiaddrs(host.public_ip)),
    );
    network.insert(
        "bulk_listen".into(),
        toml::Value::String(format!("{}:{HOST_BULK_PORT}", host.listen_ip)),
    );
    if let Some(bootstrap) = bootstrap {
        network.insert("bootstrap".into(), strings(bootstrap));
    }
    let http = table
        .entry("http")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let toml::Value::Table(http) = http else {
        return Err("[http] is not a table".into());
    };
    http.insert(
        "listen".into(),
        toml::Value::String(format!("0.0.0.0:{HOST_HTTP_PORT}")),
    );
    Ok(())
}

/// A validator on `host`: consensus on its own IP at [`HOST_CHAIN_PORT`],
/// every validator (`all`, in the genesis's order of `[chain] peers`) at
/// its public IP.
fn set_host_chain(
    table: &mut toml::Table,
    host: &NodeHost,
    all: &[&NodeHost],
) -> Result<(), String> {
    let Some(toml::Value::Table(chain)) = table.get_mut("chain") else {
        return Err("no [chain] section".into());
    };
    let Some(toml::Value::Array(peers)) = chain.get("peers") else {
        return Err("no [chain] peers".into());
    };
    if peers.len() != all.len() {
        return Err(format!(
            "{} [chain] peers for {} hosts",
            peers.len(),
            all.len()
        ));
    }
    let mut moved = Vec::with_capacity(peers.len());
    for (peer, h) in peers.iter().zip(all) {
        let address = peer
            .as_str()
            .and_then(|p| p.split_once('@'))
            .map(|(a, _)| a)
            .ok_or("a [chain] peer is not address@host:port")?;
        moved.push(format!("{address}@{}:{HOST_CHAIN_PORT}", h.public_ip));
    }
    chain.insert("peers".into(), strings(&moved));
    chain.insert(
        "listen".into(),
        toml::Value::String(format!("{}:{HOST_CHAIN_PORT}", host.listen_ip)),
    );
    Ok(())
}

/// [`set_ports`] on node `dir`'s config file.
fn set_node_ports(
    dir: &Path,
    pinned: Option<(&[String], Option<&str>)>,
    bootstrap: &[String],
) -> Result<(), DevnetError> {
    edit_node_config(dir, |table| set_ports(table, pinned, bootstrap))
}

/// The last `lines` lines of a log file.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `signal` (TERM, KILL, STOP, CONT, 0) with the `kill` command.
fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether `pid` is a live (or stopped) node process. On Linux this reads
/// `/proc`, which also tells a zombie and a recycled pid (a process that is
/// not `… run --config …`) apart.
/// Waits (up to `limit`) until process `pid` has fully exited: not only
/// its main thread (whose state turns zombie first, which is all
/// [`pid_alive`] looks at) but every thread, so its files, and the store's
/// lock, are closed.
fn wait_exited(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !fully_exited(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fully_exited(pid: u32) -> bool {
    if pid == 0 || !Path::new("/proc/self/stat").exists() {
        return !pid_alive(pid);
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let zombie = matches!(
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next()),
        Some('Z') | Some('X')
    );
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    zombie && threads <= 1
}

pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state follows the command name's closing parenthesis.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('Z') | Some('X') | None) {
            return false;
        }
        // A node runs as `<bin> run --config <file>`.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        return args.get(1..3) == Some(&[b"run".as_slice(), b"--config".as_slice()][..]);
    }
    send_signal(pid, "0")
}

/// GET `path` from a node's HTTP endpoint at `addr` as JSON, with the
/// chain API's client (the node serves `/status` beside `/chain/...`).
fn http_get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let client = ChainClient::new(&[format!("http://{addr}")], Duration::from_secs(2)).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(client.get_json(path)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_node_binary_must_exist() {
        let err = find_node_bin(Some(Path::new("/nonexistent/cairn-node"))).unwrap_err();
        assert!(matches!(err, DevnetError::BadNodeBinary(_)), "{err}");
    }

    #[test]
    fn node_addr_puts_quic_first() {
        let peer = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let node = DevnetNode {
            index: 0,
            pid: 1,
            peer_id: peer.into(),
            listen: vec![
                format!("/ip4/127.0.0.1/tcp/5/p2p/{peer}"),
                format!("/ip4/127.0.0.1/udp/6/quic-v1/p2p/{peer}"),
            ],
            http: None,
            data_dir: PathBuf::from("/d"),
        };
        let addr = node.addr().unwrap();
        assert!(addr.addrs[0].to_string().contains("quic-v1"));
        assert_eq!(node.quic_addr(), Some(node.listen[1].as_str()));
    }

    #[test]
    fn dead_and_bogus_pids_are_not_alive() {
        assert!(!pid_alive(0));
        assert!(!pid_alive(std::process::id())); // alive, but not cairn-node
        assert!(!pid_alive(u32::MAX / 2));
    }

    #[test]
    fn a_node_on_a_host_listens_on_its_ip_and_announces_the_public_one() {
        let host = |n: u8| NodeHost {
            launcher: vec!["ip".into(), "netns".into(), "exec".into(), format!("h{n}")],
            listen_ip: std::net::Ipv4Addr::new(10, 0, n, 2),
            public_ip: std::net::Ipv4Addr::new(10, 0, n, 1),
            probe_http: "127.0.0.1:9".into(),
        };
        let (a, b) = (host(1), host(2));
        let mut t: toml::Table = toml::from_str(
            "[network]\nlisten = []\nbootstrap = [\"x\"]\n[chain]\nlisten = \"127.0.0.1:5\"\npeers = [\"aa@127.0.0.1:5\", \"bb@127.0.0.1:6\"]\n",
        )
        .unwrap();
        set_host_ports(&mut t, &b, None).unwrap();
        assert_eq!(
            t["network"]["listen"][0].as_str(),
            Some("/ip4/10.0.2.2/udp/4001/quic-v1")
        );
        assert_eq!(
            t["network"]["external"][1].as_str(),
            Some("/ip4/10.0.2.1/tcp/4001")
        );
        assert_eq!(t["network"]["bulk_listen"].as_str(), Some("10.0.2.2:4002"));
        assert_eq!(t["network"]["bootstrap"][0].as_str(), Some("x"));
        assert_eq!(t["http"]["listen"].as_str(), Some("0.0.0.0:4100"));
        set_host_chain(&mut t, &b, &[&a, &b]).unwrap();
        assert_eq!(t["chain"]["listen"].as_str(), Some("10.0.2.2:4200"));
        assert_eq!(t["chain"]["peers"][0].as_str(), Some("aa@10.0.1.1:4200"));
        assert_eq!(t["chain"]["peers"][1].as_str(), Some("bb@10.0.2.1:4200"));
        assert!(
            set_host_chain(&mut t, &b, &[&a]).is_err(),
            "peers and hosts must pair up"
        );
    }

    #[test]
    fn node_config_ports_are_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(NODE_CONFIG),
            "data_dir = \"/x\"\n[network]\nlisten = [\"/ip4/0.0.0.0/tcp/4001\"]\nbootstrap = []\n[http]\nlisten = \"127.0.0.1:4100\"\n",
        )
        .unwrap();
        set_node_ports(tmp.path(), None, &["/ip4/1.2.3.4/tcp/1/p2p/x".into()]).unwrap();
        let t: toml::Table =
            toml::from_str(&std::fs::read_to_string(tmp.path().join(NODE_CONFIG)).unwrap())
                .unwrap();
        assert_eq!(
            t["network"]["listen"][1].as_str(),
            Some("/ip4/127.0.0.1/tcp/0")
        );
        assert_eq!(
            t["network"]["bootstrap"][0].as_str(),
            Some("/ip4/1.2.3.4/tcp/1/p2p/x")
        );
        assert_eq!(t["http"]["listen"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(t["data_dir"].as_str(), Some("/x"));
        let pinned = vec!["/ip4/127.0.0.1/tcp/7".to_string()];
        set_node_ports(
            tmp.path(),
            Some((pinned.as_slice(), Some("127.0.0.1:8"))),
            &[],
        )
        .unwrap();
        let t: toml::Table =
            toml::from_str(&std::fs::read_to_string(tmp.path().join(NODE_CONFIG)).unwrap())
                .unwrap();
        assert_eq!(
            t["network"]["listen"][0].as_str(),
            Some("/ip4/127.0.0.1/tcp/7")
        );
        assert_eq!(
            t["network"]["bootstrap"][0].as_str(),
            Some("/ip4/1.2.3.4/tcp/1/p2p/x")
        );
        assert_eq!(t["http"]["listen"].as_str(), Some("127.0.0.1:8"));
    }
}
