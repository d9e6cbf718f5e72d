//! `cairn-node`: the Cairn storage-node daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_node::config::{self, Config, InitOptions};
use cairn_node::{daemon, identity};
use cairn_protocol::units::parse_size;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn-node",
    version,
    about = "Cairn storage node: keeps encrypted shards for the network, serves them verified, and reports metrics.",
    after_help = "Start with `cairn-node init --data-dir DIR`, then `cairn-node run --config DIR/config.toml`. See docs/node.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory with a config file and a new identity key.
    Init {
        /// Directory for the config, the key and the shard store.
        #[arg(long)]
        data_dir: PathBuf,
        /// Shard data this node may hold, e.g. 500GiB.
        #[arg(long, default_value = "10GiB", value_parser = size)]
        capacity: u64,
        /// Port for QUIC (UDP) and TCP; 0 picks free ports at each start.
        #[arg(long, default_value_t = 4001)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        host: IpAddr,
        /// HTTP status and metrics address, or "off".
        #[arg(long, default_value = "127.0.0.1:4100")]
        http: String,
        /// Peer to join through, /ip4/…/p2p/<peer id> (repeatable).
        #[arg(long)]
        bootstrap: Vec<String>,
    },
    /// Run the node until SIGTERM or ctrl-c.
    Run {
        /// The config file `init` wrote.
        #[arg(long)]
        config: PathBuf,
        /// Also run consensus as a validator (needs `[chain]` with a
        /// genesis file naming this node's chain address).
        #[arg(long)]
        validator: bool,
    },
    /// Print the node's peer id (and, with --json, its chain address too).
    Id {
        #[arg(long)]
        config: PathBuf,
        /// Print {"peer_id": ..., "chain_address": ...}.
        #[arg(long)]
        json: bool,
    },
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            data_dir,
            capacity,
            port,
            host,
            http,
            bootstrap,
        } => init(data_dir, capacity, port, host, &http, bootstrap),
        Command::Run { config, validator } => run(config, validator),
        Command::Id { config, json } => {
            let config = Config::load(&config)?;
            let key = identity::load(&config.identity_path())?;
            if json {
                let address = identity::ChainKey::from_keypair(&key)?.address();
                println!(
                    "{}",
                    serde_json::json!({
                        "peer_id": key.public().to_peer_id().to_string(),
                        "chain_address": address.to_string(),
                    })
                );
            } else {
                println!("{}", key.public().to_peer_id());
            }
            Ok(())
        }
    }
}

fn init(
    data_dir: PathBuf,
    capacity: u64,
    port: u16,
    host: IpAddr,
    http: &str,
    bootstrap: Vec<String>,
) -> anyhow::Result<()> {
    let http = match http {
        "off" => None,
        text => Some(
            text.parse::<SocketAddr>()
                .with_context(|| format!("--http '{text}' is not an ip:port or \"off\""))?,
        ),
    };
    let bootstrap = bootstrap
        .iter()
        .map(|b| {
            b.parse()
                .with_context(|| format!("--bootstrap '{b}' is not a multiaddr"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let config_path = data_dir.join(config::CONFIG_FILE);
    if config_path.exists() {
        anyhow::bail!(
            "{} exists already; refusing to overwrite it",
            config_path.display()
        );
    }
    let text = config::render(&InitOptions {
        data_dir: data_dir.clone(),
        capacity,
        port,
        host,
        http,
        bootstrap,
    });
    // Check what we write with the same code that will read it.
    Config::parse(&text)?;
    let key = identity::create(&data_dir.join(config::IDENTITY_FILE))?;
    std::fs::write(&config_path, text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    println!("peer id: {}", key.public().to_peer_id());
    println!("config:  {}", config_path.display());
    println!("start:   cairn-node run --config {}", config_path.display());
    Ok(())
}

fn run(config_path: PathBuf, validator: bool) -> anyhow::Result<()> {
    let config = Config::load_with(&config_path, validator)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .context("log_level")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(config, std::future::pending()))?;
    Ok(())
}
