//! `cairn-sim`: simulate node failures and repair over years.

use std::process::ExitCode;

use anyhow::Context;
use cairn_protocol::repair::RepairPolicy;
use cairn_protocol::CodingParams;
use cairn_sim::{simulate, SimConfig, SimReport};
use clap::Parser;

/// Simulates a Cairn network with a virtual clock: nodes fail (alone and a
/// whole failure domain at a time) and are replaced, proofs reveal the loss at
/// the next epoch, and segments are repaired by the protocol's own placement
/// and repair rules. Reports durability and repair bandwidth. Same seed,
/// same result.
#[derive(Debug, Parser)]
#[command(name = "cairn-sim", version)]
struct Args {
    /// Storage nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Failure domains the nodes are spread over.
    #[arg(long, default_value_t = 50)]
    domains: usize,
    /// Segments stored (each with n shards).
    #[arg(long, default_value_t = 10_000)]
    segments: usize,
    /// Data shards per segment (k).
    #[arg(long = "data-shards", default_value_t = 10)]
    data_shards: u16,
    /// Parity shards per segment (m).
    #[arg(long = "parity-shards", default_value_t = 20)]
    parity_shards: u16,
    /// Repair when this many healthy shards remain (default: k + m/4).
    #[arg(long)]
    repair_threshold: Option<usize>,
    /// Simulated years.
    #[arg(long, default_value_t = 5.0)]
    years: f64,
    /// Fraction of nodes failing permanently per year.
    #[arg(long, default_value_t = 0.1)]
    afr: f64,
    /// Whole-domain failures per year.
    #[arg(long, default_value_t = 0.5)]
    domain_failures: f64,
    /// Hours between proof epochs.
    #[arg(long, default_value_t = 24.0)]
    epoch_hours: f64,
    /// Hours a repair takes once started.
    #[arg(long, default_value_t = 12.0)]
    repair_hours: f64,
    /// Shard size in bytes, for bandwidth figures.
    #[arg(long, default_value_t = 839_680)]
    shard_bytes: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> anyhow::Result<()> {
    let params = CodingParams::new(a.data_shards, a.parity_shards)
        .context("invalid --data-shards/--parity-shards")?;
    let threshold = a
        .repair_threshold
        .unwrap_or_else(|| RepairPolicy::default_for(params).threshold());
    let cfg = SimConfig {
        nodes: a.nodes,
        domains: a.domains,
        segments: a.segments,
        params,
        repair_threshold: threshold,
        years: a.years,
        node_afr: a.afr,
        domain_failures_per_year: a.domain_failures,
        epoch_hours: a.epoch_hours,
        repair_hours: a.repair_hours,
        shard_bytes: a.shard_bytes,
        seed: a.seed,
    };
    let started = std::time::Instant::now();
    let report = simulate(&cfg)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report, started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn print(r: &SimReport, secs: f64) {
    let rows = [
        ("nodes", r.nodes.to_string()),
        ("segments", r.segments.to_string()),
        ("k / n", format!("{} / {}", r.k, r.n)),
        ("repair threshold", r.repair_threshold.to_string()),
        ("years", format!("{:.1}", r.years)),
        ("node failures", r.node_failures.to_string()),
        ("domain failures", r.domain_failures.to_string()),
        ("repairs", r.repairs.to_string()),
        ("segments lost", r.segments_lost.to_string()),
        ("durability", format!("{:.6}", r.durability)),
        ("fewest healthy shards seen", r.min_healthy_seen.to_string()),
        (
            "mean detection delay",
            format!("{:.1} h", r.mean_detection_hours),
        ),
        (
            "repair traffic",
            format!("{:.1} GiB", r.repair_bytes as f64 / (1u64 << 30) as f64),
        ),
        (
            "repair traffic / segment-year",
            format!("{:.1} MiB", r.repair_bytes_per_segment_year / 1048576.0),
        ),
        ("wall time", format!("{secs:.2} s")),
    ];
    for (name, value) in rows {
        println!("{name:>30}  {value}");
    }
}
