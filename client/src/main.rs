//! `cairn`: the command-line client.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_client::quickstart::{self, QuickstartOptions, QuickstartReport, Stage};
use cairn_protocol::units::{format_size, parse_size};
use cairn_protocol::CodingParams;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Cairn: encrypted, erasure-coded storage on machines you do not trust.
///
/// This build runs Cairn's data path on this machine only: files are
/// encrypted and coded exactly as for the network, but shards go to local
/// directories. Storage nodes and the network client come next.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Encrypt and erasure-code a generated file into one directory per
    /// would-be node, destroy as many nodes as the redundancy allows, read the
    /// file back from the survivors, verify it, and report what happened.
    Quickstart {
        /// Size of the generated file (e.g. 64MiB, 1GiB).
        #[arg(long, default_value = "64MiB", value_parser = parse_size_arg)]
        size: u64,
        /// Data shards per segment (k).
        #[arg(long = "data-shards", default_value_t = 10)]
        data_shards: u16,
        /// Parity shards per segment (m); this many nodes are destroyed.
        #[arg(long = "parity-shards", default_value_t = 20)]
        parity_shards: u16,
        /// Working directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the working directory to look at the shards afterwards.
        #[arg(long)]
        keep: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Quickstart {
            size,
            data_shards,
            parity_shards,
            dir,
            keep,
            json,
        } => {
            let params = CodingParams::new(data_shards, parity_shards)
                .context("invalid --data-shards/--parity-shards")?;
            let dir = dir.unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("cairn-quickstart-{}", quickstart::random_suffix()))
            });
            let opts = QuickstartOptions {
                size,
                dir,
                params,
                keep,
            };
            let report = with_progress(json, |progress| quickstart::run(&opts, progress))?;
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

fn with_progress<T>(
    hidden: bool,
    f: impl FnOnce(&mut dyn FnMut(Stage, u64, u64)) -> Result<T, quickstart::QuickstartError>,
) -> anyhow::Result<T> {
    let multi = MultiProgress::new();
    if hidden {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bars: Vec<(Stage, ProgressBar)> = Vec::new();
    let mut update = |stage: Stage, done: u64, total: u64| {
        if bars.last().map(|(s, _)| *s) != Some(stage) {
            if let Some((_, bar)) = bars.last() {
                bar.finish();
            }
            let bar = multi.add(ProgressBar::new(total).with_style(style.clone()));
            bar.set_prefix(match stage {
                Stage::Generate => "generate",
                Stage::Encode => "store",
                Stage::Decode => "retrieve",
            });
            bars.push((stage, bar));
        }
        if let Some((_, bar)) = bars.last() {
            bar.set_position(done);
        }
    };
    let result = f(&mut update);
    if let Some((_, bar)) = bars.last() {
        bar.finish();
    }
    Ok(result?)
}

fn print_report(r: &QuickstartReport) {
    println!();
    println!(
        "Stored {} as {} segment(s) of {} shards (any {} rebuild a segment).",
        format_size(r.size_bytes),
        r.segments,
        r.n,
        r.k
    );
    println!(
        "  encrypt + erasure-code + hash: {:.0} MiB/s; {} of shards on {} node directories",
        r.encode_mib_s,
        format_size(r.stored_bytes),
        r.n
    );
    println!(
        "Destroyed {} of {} nodes: {:?}",
        r.nodes_lost.len(),
        r.n,
        r.nodes_lost
    );
    println!("  read back from the survivors with the capability alone: {:.0} MiB/s, {} data shard(s) rebuilt", r.decode_mib_s, r.shards_rebuilt);
    println!(
        "  identical to the original: {}",
        if r.identical { "yes" } else { "NO" }
    );
    if let Some(rss) = r.peak_rss_mib {
        println!("  peak memory: {rss:.0} MiB (bounded by segment size, not file size)");
    }
    println!();
    println!(
        "Capability (whoever holds it can read the file):\n  {}",
        r.capability
    );
    if let Some(dir) = &r.dir {
        println!(
            "Shards kept under {dir}/nodes: nothing there is readable without the capability."
        );
    }
    println!();
    println!("Next: try --size 1GiB, --data-shards 3 --parity-shards 7, or --keep to inspect the shards.");
}
