//! `cairn devnet up|down|status|kill|start`: a local network of real
//! storage nodes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_cli::devnet::{self, Devnet, DevnetOptions};
use cairn_client::chain::ChainClient;
use cairn_protocol::units::{format_size, parse_size};

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum DevnetCommand {
    /// Start storage nodes on 127.0.0.1 and write a client config for them.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Devnet directory (default: ~/.local/share/cairn/devnet).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Shard data each node may hold, e.g. 1GiB.
        #[arg(long, default_value = "1GiB", value_parser = size)]
        capacity: u64,
    },
    /// Stop the nodes (SIGTERM, then SIGKILL after 10 s).
    Down {
        /// Devnet directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also delete the directory: node stores, keys and config.
        #[arg(long)]
        purge: bool,
    },
    /// Show each node: peer id, address, pid, whether it runs, what it holds.
    Status {
        /// Devnet directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stop node N at once (SIGKILL, no goodbye), to try a failure.
    Kill {
        /// The node's index, as `status` lists it.
        node: usize,
        /// Devnet directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Start node N again on its store, keys and ports (after `kill`).
    Start {
        /// The node's index, as `status` lists it.
        node: usize,
        /// Devnet directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// What `kill` or `start` did to one node.
fn report(global: &Global, node: usize, state: &str, was_alive: bool, pid: u32) {
    if global.json {
        let out = serde_json::json!({
            "node": node,
            "state": state,
            "was_running": was_alive,
            "pid": pid,
        });
        println!("{out}");
    } else if state == "killed" && !was_alive {
        println!("node {node} was not running.");
    } else if state == "running" && was_alive {
        println!("node {node} is already running (pid {pid}).");
    } else {
        println!("node {node} {state} (pid {pid}).");
    }
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

pub fn run(command: DevnetCommand, global: &Global) -> anyhow::Result<()> {
    match command {
        DevnetCommand::Up {
            nodes,
            dir,
            capacity,
        } => up(
            global,
            dir.unwrap_or_else(devnet::default_dir),
            nodes,
            capacity,
        ),
        DevnetCommand::Down { dir, purge } => {
            let dir = dir.unwrap_or_else(devnet::default_dir);
            let net = Devnet::open(&dir)?;
            let count = net.nodes().len();
            let killed = net.down(purge)?;
            if global.json {
                let out = serde_json::json!({
                    "dir": dir.display().to_string(),
                    "stopped": count,
                    "killed": killed,
                    "purged": purge,
                });
                println!("{out}");
            } else {
                println!("devnet in {} stopped ({count} node(s)).", dir.display());
                if !killed.is_empty() {
                    println!("  killed after the grace period: nodes {killed:?}");
                }
                if purge {
                    println!("  directory removed.");
                }
            }
            Ok(())
        }
        DevnetCommand::Kill { node, dir } => {
            let mut net = Devnet::open(&dir.unwrap_or_else(devnet::default_dir))?;
            let was_alive = net.is_alive(node);
            net.kill(node)?;
            report(global, node, "killed", was_alive, net.nodes()[node].pid);
            Ok(())
        }
        DevnetCommand::Start { node, dir } => {
            let mut net = Devnet::open(&dir.unwrap_or_else(devnet::default_dir))?;
            let was_alive = net.is_alive(node);
            if !was_alive {
                net.restart(node)?;
            }
            report(global, node, "running", was_alive, net.nodes()[node].pid);
            Ok(())
        }
        DevnetCommand::Status { dir } => {
            let dir = dir.unwrap_or_else(devnet::default_dir);
            let mut net = Devnet::open(&dir)?;
            let status = net.status();
            let height = chain_height(&net);
            if global.json {
                let out = serde_json::json!({
                    "dir": net.dir().display().to_string(),
                    "client_config": net.client_config_path().display().to_string(),
                    "nodes": status,
                    "validators": net.validators(),
                    "chain_height": height,
                });
                println!("{out}");
                return Ok(());
            }
            let alive = status.iter().filter(|s| s.alive).count();
            println!(
                "devnet in {}: {alive} of {} node(s) running",
                net.dir().display(),
                status.len()
            );
            println!(
                "{:>4}  {:<8} {:>7}  {:<52}  {:>7}  {:>10}  address",
                "node", "state", "pid", "peer id", "shards", "used"
            );
            for s in &status {
                let store = s.status.as_ref().and_then(|v| v.get("store"));
                let num = |k: &str| store.and_then(|st| st.get(k)).and_then(|v| v.as_u64());
                let state = match (s.alive, &s.status) {
                    (false, _) => "dead",
                    (true, Some(_)) => "up",
                    (true, None) => "silent",
                };
                println!(
                    "{:>4}  {:<8} {:>7}  {:<52}  {:>7}  {:>10}  {}",
                    s.index,
                    state,
                    s.pid,
                    s.peer_id,
                    num("shards").map(|n| n.to_string()).unwrap_or_default(),
                    num("used").map(format_size).unwrap_or_default(),
                    s.addr
                        .as_deref()
                        .and_then(|a| a.split("/p2p/").next())
                        .unwrap_or("-"),
                );
            }
            if !net.validators().is_empty() {
                println!(
                    "chain: validators {:?}, height {}",
                    net.validators(),
                    height.map_or("unknown (no validator answers)".into(), |h| h.to_string())
                );
            }
            println!("client config: {}", net.client_config_path().display());
            Ok(())
        }
    }
}

/// The chain's height from the devnet's validators, if any answers.
fn chain_height(net: &Devnet) -> Option<u64> {
    let chain = ChainClient::new(&net.chain_urls(), Duration::from_secs(2)).ok()?;
    let status = super::transfer::runtime().ok()?.block_on(chain.status());
    status.ok().map(|s| s.height)
}

fn up(global: &Global, dir: PathBuf, nodes: usize, capacity: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let options = DevnetOptions {
        nodes,
        capacity,
        ..DevnetOptions::default()
    };
    if !global.json {
        eprintln!("starting {nodes} node(s) in {} ...", dir.display());
    }
    let net = Devnet::up(&dir, &options)?;
    let config = net.client_config_path();
    if global.json {
        let out = serde_json::json!({
            "dir": net.dir().display().to_string(),
            "client_config": config.display().to_string(),
            "key_file": net.key_file().display().to_string(),
            "nodes": net.nodes(),
            "validators": net.validators(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "devnet up: {} node(s) in {:.1} s, {} each, in {}",
        net.nodes().len(),
        started.elapsed().as_secs_f64(),
        format_size(capacity),
        net.dir().display()
    );
    for node in net.nodes() {
        println!(
            "  node-{:02}  pid {:>7}  {}  http {}",
            node.index,
            node.pid,
            node.quic_addr().unwrap_or("-"),
            node.http.as_deref().unwrap_or("off"),
        );
    }
    println!();
    if !net.validators().is_empty() {
        println!(
            "chain:         {} validator(s) (nodes {:?}), genesis {}",
            net.validators().len(),
            net.validators(),
            net.dir().join(devnet::GENESIS_FILE).display()
        );
    }
    println!("client config: {}", config.display());
    println!("use it with:   export CAIRN_CONFIG={}", config.display());
    println!("logs:          {}/node-NN/node.log", net.dir().display());
    println!(
        "stop with:     cairn devnet down{}",
        if dir == devnet::default_dir() {
            String::new()
        } else {
            format!(" --dir {}", dir.display())
        }
    );
    Ok(())
}
