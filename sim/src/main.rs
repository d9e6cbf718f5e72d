//! `cairn-sim`: years of a Cairn network on protocol's rules, in seconds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_sim::sweep::{self, Axis};
use cairn_sim::{plot, simulate_with, Scenario, HOURS_PER_YEAR};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Simulates a Cairn network with a virtual clock of proof periods: nodes
/// fail, leave, go dark with their domain or region, cheat, and the network
/// proves, pays, slashes and repairs by the protocol's own rules. Reports
/// durability, repair traffic, detection latency, money and chain load.
/// Same scenario and seed, same result.
///
/// A scenario file (TOML, see docs/simulation.md) sets everything; the
/// flags below override it.
#[derive(Debug, Parser)]
#[command(name = "cairn-sim", version)]
struct Args {
    /// Scenario file (TOML).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Storage nodes at the start.
    #[arg(long)]
    nodes: Option<usize>,
    /// Failure domains the nodes are spread over.
    #[arg(long)]
    domains: Option<usize>,
    /// Regions the domains are spread over.
    #[arg(long)]
    regions: Option<usize>,
    /// Segments stored at the start.
    #[arg(long)]
    segments: Option<usize>,
    /// Segments per file (a file's segments share one placement).
    #[arg(long)]
    file_segments: Option<usize>,
    /// Data shards per segment (k).
    #[arg(long = "data-shards")]
    data_shards: Option<u16>,
    /// Parity shards per segment (m).
    #[arg(long = "parity-shards")]
    parity_shards: Option<u16>,
    /// Repair when this many healthy shards remain (default: k + m/4).
    #[arg(long)]
    repair_threshold: Option<usize>,
    /// Do not repair (for comparing with theory).
    #[arg(long)]
    no_repair: bool,
    /// Simulated years.
    #[arg(long)]
    years: Option<f64>,
    /// Annual failure rate of a node's disk.
    #[arg(long)]
    afr: Option<f64>,
    /// Whole-domain outages per year.
    #[arg(long)]
    domain_failures: Option<f64>,
    /// Hours per proof period.
    #[arg(long, alias = "epoch-hours")]
    period_hours: Option<f64>,
    /// Hours a repair takes once started.
    #[arg(long)]
    repair_hours: Option<f64>,
    /// Shard size in bytes.
    #[arg(long)]
    shard_bytes: Option<u64>,
    /// Live nodes a placement chooses among, per shard placed (0: all).
    #[arg(long)]
    candidates_per_shard: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write SVG plots into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Run a sweep instead: `threshold[=a,b,..]` or `code=k/m,k/m,..`.
    #[arg(long)]
    sweep: Option<Axis>,
    /// Runs per sweep point, with seeds seed, seed + 1, … (the same for
    /// every point).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
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

fn scenario(a: &Args) -> anyhow::Result<Scenario> {
    let mut s = match &a.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Scenario::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Scenario::default(),
    };
    macro_rules! set {
        ($($flag:ident => $($field:ident).+),* $(,)?) => {
            $(if let Some(v) = a.$flag { s.$($field).+ = v; })*
        };
    }
    set!(
        nodes => nodes, domains => domains, regions => regions, segments => segments,
        file_segments => file_segments, data_shards => data_shards,
        parity_shards => parity_shards, years => years, afr => failures.afr,
        domain_failures => failures.domain_outages_per_year,
        period_hours => period_hours, repair_hours => repair_hours,
        shard_bytes => shard_bytes, candidates_per_shard => candidates_per_shard, seed => seed,
    );
    if a.repair_threshold.is_some() {
        s.repair_threshold = a.repair_threshold;
    }
    if a.no_repair {
        s.repair = false;
    }
    s.validate()?;
    Ok(s)
}

fn bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} periods (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn run(a: Args) -> anyhow::Result<()> {
    let s = scenario(&a)?;
    let bar = bar(a.quiet);
    let mut progress = |done: u64, total: u64| {
        if done % 64 == 0 || done == total {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    if let Some(axis) = &a.sweep {
        let points = sweep::run(&s, axis, a.runs, &mut progress)?;
        bar.finish_and_clear();
        if let Some(dir) = &a.plot {
            let segment_years = s.segments as f64 * s.years * f64::from(a.runs.max(1));
            let path = plot::sweep_plot(
                &points,
                segment_years,
                matches!(axis, Axis::Threshold(_)),
                dir,
                "tradeoff",
            )?;
            eprintln!("wrote {}", path.display());
        }
        if a.json {
            println!("{}", serde_json::to_string(&points)?);
        } else {
            println!(
                "{:>16} {:>4} {:>4} {:>9} {:>8} {:>12} {:>14}",
                "point", "k", "n", "threshold", "lost", "annual loss", "repair B/B/yr"
            );
            for p in &points {
                println!(
                    "{:>16} {:>4} {:>4} {:>9} {:>8} {:>12.3e} {:>14.4}",
                    p.label,
                    p.k,
                    p.n,
                    p.repair_threshold,
                    p.segments_lost,
                    p.annual_segment_loss,
                    p.repair_bytes_per_stored_byte_year
                );
            }
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let report = simulate_with(&s, &mut progress)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if let Some(dir) = &a.plot {
        for path in plot::run_plots(&report, dir, "")? {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
        println!(
            "{:>38}  {secs:.2} s ({:.0} simulated hours per second)",
            "wall time",
            report.setup.years * HOURS_PER_YEAR / secs.max(1e-9)
        );
    }
    Ok(())
}
