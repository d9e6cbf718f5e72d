//! `cairn`: the command-line client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cairn_cli::bar::Bar;
use cairn_cli::quickstart::{self, QuickstartOptions, QuickstartReport, Stage};
use cairn_cli::report::error_line;
use cairn_protocol::units::{format_size, parse_size};
use cairn_protocol::CodingParams;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

mod cmd;

/// Cairn: encrypted, erasure-coded storage on machines you do not trust.
///
/// Files are encrypted on this machine, erasure-coded, and spread over
/// storage nodes; a capability (cairn:<manifest>#<key>) is all a reader
/// needs. Start with `cairn quickstart`.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, show or restore the account key (a 24-word recovery phrase).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Run a local network of storage nodes on 127.0.0.1.
    #[command(subcommand)]
    Devnet(cmd::devnet::DevnetCommand),
    /// The chain: status, the devnet faucet, transfers (validators from the
    /// config's `chain` list).
    #[command(subcommand)]
    Chain(cmd::chain::ChainCommand),
    /// Show an account's balance and nonce (default: your own).
    Account {
        /// The account's address (64 hex digits).
        address: Option<String>,
    },
    /// List open storage deals (default: your own).
    Deals {
        /// Only this owner's deals.
        #[arg(long, value_name = "ADDRESS", conflicts_with = "all")]
        owner: Option<String>,
        /// Every open deal on the chain.
        #[arg(long)]
        all: bool,
    },
    /// Encrypt, erasure-code and store files; prints one capability per
    /// file. With a last argument '/dir/' (a namespace directory, ending
    /// in '/'), puts files and directories there under their names instead.
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Data shards per segment (k); with --parity-shards, exact (no scaling).
        #[arg(long = "data-shards")]
        data_shards: Option<u16>,
        /// Parity shards per segment (m).
        #[arg(long = "parity-shards")]
        parity_shards: Option<u16>,
        /// Store without opening a storage deal on the chain.
        #[arg(long = "no-deal")]
        no_deal: bool,
    },
    /// Download a file by its capability (resumes an interrupted download).
    Get {
        capability: String,
        /// Where to write the file.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Write a file (or a byte range of it) to stdout.
    Cat {
        capability: String,
        /// First byte to write.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Bytes to write (default: to the end).
        #[arg(long)]
        length: Option<u64>,
    },
    /// Show a file's size, redundancy and how many shards of each segment remain.
    Stat { capability: String },
    /// Ask every node to drop a file's shards (only the account that stored
    /// it may); with paths ('/…'), remove them from your namespace.
    Rm {
        #[arg(required = true)]
        capability: Vec<String>,
        /// Remove directories and everything in them (namespace paths).
        #[arg(short, long)]
        recursive: bool,
    },
    /// List the configured storage nodes and whether they answer.
    Nodes,
    /// List a directory of your namespace (a path starting with '/') or a
    /// shared directory capability (cairn-dir:…).
    Ls {
        #[arg(default_value = "/")]
        path: String,
        /// Long listing: mode, size, modification time (UTC).
        #[arg(short = 'l')]
        long: bool,
    },
    /// Create directories in your namespace.
    Mkdir {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Make missing parents; an existing directory is fine.
        #[arg(short, long)]
        parents: bool,
    },
    /// Move or rename a file or directory in your namespace.
    Mv { from: String, to: String },
    /// Show a directory and everything below it.
    Tree {
        #[arg(default_value = "/")]
        path: String,
    },
    /// Files and bytes below a path.
    Du {
        #[arg(default_value = "/")]
        path: String,
    },
    /// Print a read-only capability for a file or directory of your namespace.
    Share { path: String },
    /// Mount your namespace on an empty directory (read-write, FUSE), or a
    /// shared directory with --cap (read-only).
    Mount(cmd::mount::MountArgs),
    /// Measure upload and download MiB/s and the client's peak memory on a
    /// devnet of real nodes started for the purpose.
    Bench {
        /// Storage nodes to start.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Data shards per segment (k).
        #[arg(short = 'k', long = "data-shards", default_value_t = 3)]
        data_shards: u16,
        /// Total shards per segment (n = k + m).
        #[arg(short = 'n', long = "total-shards", default_value_t = 10)]
        total_shards: u16,
        /// File sizes to measure, comma-separated.
        #[arg(long, default_value = "64MiB,1GiB", value_delimiter = ',', value_parser = parse_size_arg)]
        size: Vec<u64>,
        /// Segments in flight.
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        /// Working directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Nodes write and read shard files through the page cache
        /// (`[store] direct_io = false`), to compare with direct I/O.
        #[arg(long)]
        buffered_io: bool,
    },
    /// Start a local network, store a generated file on it, kill as many
    /// nodes as the redundancy allows, read the file back and verify it.
    Quickstart {
        /// Size of the generated file (e.g. 64MiB, 1GiB).
        #[arg(long, default_value = "64MiB", value_parser = parse_size_arg)]
        size: u64,
        /// Storage nodes to start.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Data shards per segment (k); default: 10 of 30, scaled to the nodes.
        #[arg(long = "data-shards", requires = "parity_shards")]
        data_shards: Option<u16>,
        /// Parity shards per segment (m): this many nodes are killed.
        #[arg(long = "parity-shards", requires = "data_shards")]
        parity_shards: Option<u16>,
        /// Working directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the working directory and the surviving nodes running.
        #[arg(long)]
        keep: bool,
    },
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Logs (RUST_LOG=debug for the pipelines' decisions) go to stderr and
    // stay out of the way of progress bars and JSON unless asked for.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let json = cli.global.json;
    let result = run(cli);
    // A command that fell back from the registry to the config's nodes says
    // why once: inside the error line, or as a note after success.
    let fallback = cmd::transfer::node_fallback();
    match result {
        Ok(()) => {
            if let (Some(why), false) = (fallback, json) {
                eprintln!("note: the nodes listed in the config were used: {why}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            match fallback {
                Some(why) => eprintln!(
                    "error: {} (the nodes listed in the config were used: {why})",
                    error_line(&e)
                ),
                None => eprintln!("error: {}", error_line(&e)),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cli.command {
        Command::Keys(command) => cmd::keys::run(command, &cli.global),
        Command::Devnet(command) => cmd::devnet::run(command, &cli.global),
        Command::Chain(command) => cmd::chain::run(command, &cli.global),
        Command::Account { address } => cmd::chain::account(&cli.global, address.as_deref()),
        Command::Deals { owner, all } => cmd::chain::deals(&cli.global, owner.as_deref(), all),
        Command::Put {
            files,
            data_shards,
            parity_shards,
            no_deal,
        } => match files.split_last() {
            Some((dest, local))
                if !local.is_empty()
                    && dest
                        .to_str()
                        .is_some_and(|d| d.starts_with('/') && d.ends_with('/')) =>
            {
                cmd::fs::put(&cli.global, local, &dest.to_string_lossy())
            }
            _ => cmd::transfer::put(&cli.global, &files, data_shards, parity_shards, no_deal),
        },
        Command::Get {
            capability,
            output,
            force,
        } if cmd::fs::is_namespace_arg(&capability) => {
            cmd::fs::get(&cli.global, &capability, &output, force)
        }
        Command::Get {
            capability,
            output,
            force,
        } => cmd::transfer::get(&cli.global, &capability, &output, force),
        Command::Cat {
            capability,
            offset,
            length,
        } if cmd::fs::is_namespace_arg(&capability) => {
            cmd::fs::cat(&cli.global, &capability, offset, length)
        }
        Command::Cat {
            capability,
            offset,
            length,
        } => cmd::transfer::cat(&cli.global, &capability, offset, length),
        Command::Stat { capability } => cmd::transfer::stat(&cli.global, &capability),
        Command::Rm {
            capability,
            recursive,
        } => match capability.as_slice() {
            [cap] if !cmd::fs::is_namespace_arg(cap) && !recursive => {
                cmd::transfer::rm(&cli.global, cap)
            }
            paths => cmd::fs::rm(&cli.global, paths, recursive),
        },
        Command::Nodes => cmd::transfer::nodes(&cli.global),
        Command::Ls { path, long } => cmd::fs::ls(&cli.global, &path, long),
        Command::Mkdir { paths, parents } => cmd::fs::mkdir(&cli.global, &paths, parents),
        Command::Mv { from, to } => cmd::fs::mv(&cli.global, &from, &to),
        Command::Tree { path } => cmd::fs::tree(&cli.global, &path),
        Command::Du { path } => cmd::fs::du(&cli.global, &path),
        Command::Share { path } => cmd::fs::share(&cli.global, &path),
        Command::Mount(args) => cmd::mount::run(&cli.global, &args),
        Command::Bench {
            nodes,
            data_shards,
            total_shards,
            size,
            parallelism,
            dir,
            buffered_io,
        } => bench(
            json,
            nodes,
            (data_shards, total_shards),
            size,
            parallelism,
            dir,
            buffered_io,
        ),
        Command::Quickstart {
            size,
            nodes,
            data_shards,
            parity_shards,
            dir,
            keep,
        } => {
            let params = match (data_shards, parity_shards) {
                (Some(k), Some(m)) => {
                    Some(CodingParams::new(k, m).context("invalid --data-shards/--parity-shards")?)
                }
                _ => None,
            };
            if !(1..=64).contains(&nodes) {
                anyhow::bail!("--nodes must be between 1 and 64");
            }
            let dir = dir.unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("cairn-quickstart-{}", quickstart::random_suffix()))
            });
            let opts = QuickstartOptions {
                size,
                dir,
                nodes,
                params,
                keep,
            };
            let multi = MultiProgress::new();
            if json {
                multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let report = cmd::transfer::runtime()?.block_on(quickstart::run(&opts, |stage| {
                let bar = multi.add(progress_bar(match stage {
                    Stage::Generate => "generate",
                    Stage::Upload => "store",
                    Stage::Download => "retrieve",
                }));
                Arc::new(Bar(bar)) as Arc<dyn cairn_client::progress::Progress>
            }))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
            }
            if !report.identical {
                anyhow::bail!("the file read back differs from the file stored");
            }
            Ok(())
        }
    }
}

fn bench(
    json: bool,
    nodes: usize,
    (k, n): (u16, u16),
    sizes: Vec<u64>,
    parallelism: usize,
    dir: Option<PathBuf>,
    buffered_io: bool,
) -> anyhow::Result<()> {
    if n <= k {
        anyhow::bail!("--total-shards ({n}) must exceed --data-shards ({k})");
    }
    let params = CodingParams::new(k, n - k).context("invalid -k/-n")?;
    params.check_fits(nodes)?;
    if !(1..=64).contains(&parallelism) {
        anyhow::bail!("--parallelism must be between 1 and 64");
    }
    if sizes.is_empty() || sizes.contains(&0) {
        anyhow::bail!("--size needs positive sizes");
    }
    let opts = cairn_cli::bench::BenchOptions {
        nodes,
        params,
        sizes,
        dir: dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("cairn-bench-{}", quickstart::random_suffix()))
        }),
        parallelism,
        direct_io: buffered_io.then_some(false),
    };
    let multi = MultiProgress::new();
    if json {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let runs = cmd::transfer::runtime()?.block_on(cairn_cli::bench::run(&opts, |label| {
        Arc::new(Bar(multi.add(progress_bar(label)))) as Arc<dyn cairn_client::progress::Progress>
    }))?;
    let last = runs.last().context("no run")?;
    if json {
        let mut top = serde_json::to_value(last)?;
        top["nodes"] = nodes.into();
        top["k"] = params.k().into();
        top["n"] = params.n().into();
        top["runs"] = serde_json::to_value(&runs)?;
        println!("{top}");
    } else {
        multi.clear()?;
        println!(
            "nodes={nodes} k={} n={} parallelism={parallelism}",
            params.k(),
            params.n()
        );
        println!(
            "{:>10}  {:>12}  {:>14}  {:>15}",
            "size", "upload MiB/s", "download MiB/s", "client peak RSS"
        );
        for r in &runs {
            println!(
                "{:>10}  {:>12.1}  {:>14.1}  {:>11}",
                format_size(r.size_bytes),
                r.upload_mib_s,
                r.download_mib_s,
                r.client_peak_rss_mib
                    .map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
            );
        }
        println!();
        println!("CPU seconds per GiB of file: all = client + nodes; min = the data path's least on this machine");
        println!(
            "{:>10}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
            "size", "up all", "up min", "up cli", "down all", "down min", "down cli"
        );
        let s = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        for r in &runs {
            println!(
                "{:>10}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
                format_size(r.size_bytes),
                s(r.upload_cpu_s_per_gib),
                s(r.upload_min_cpu_s_per_gib),
                s(r.upload_client_cpu_s_per_gib),
                s(r.download_cpu_s_per_gib),
                s(r.download_min_cpu_s_per_gib),
                s(r.download_client_cpu_s_per_gib),
            );
        }
    }
    Ok(())
}

fn progress_bar(prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bar = ProgressBar::new(0).with_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

fn print_report(r: &QuickstartReport) {
    println!();
    println!(
        "Stored {} on a devnet of {} real storage nodes: {} segment(s) of {} shards each, any {} rebuild a segment.",
        format_size(r.size_bytes),
        r.nodes,
        r.segments,
        r.n,
        r.k
    );
    println!(
        "  upload (encrypt, erasure-code, send): {:.0} MiB/s",
        r.upload_mib_s
    );
    println!(
        "Killed {} of the {} nodes with SIGKILL: {:?}",
        r.nodes_killed.len(),
        r.nodes,
        r.nodes_killed
    );
    println!(
        "  read back with the capability alone: {:.0} MiB/s, {} data shard(s) rebuilt from parity",
        r.download_mib_s, r.shards_rebuilt
    );
    println!(
        "  identical to the original: {}",
        if r.identical { "yes" } else { "NO" }
    );
    if let Some(rss) = r.peak_rss_mib {
        println!("  client peak memory: {rss:.0} MiB (bounded by segment size, not file size)");
    }
    println!();
    println!(
        "Capability (whoever holds it can read the file):\n  {}",
        r.capability
    );
    if let Some(dir) = &r.dir {
        println!("Kept {dir}: the surviving nodes still run; their data is under devnet/node-*/ and none of it is readable without the capability.");
        println!("Stop them with: cairn devnet down --dir {dir}/devnet");
    }
    println!();
    println!("Next: `cairn devnet up`, then `cairn put FILE`, `cairn get CAP -o OUT`, `cairn stat CAP`; or `cairn bench`.");
}
