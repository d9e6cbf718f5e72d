//! What a run found, as a table or JSON.

use serde::Serialize;

use crate::world::Kind;

/// Everything a run reports. Deterministic: the same scenario and seed give
/// the same report, byte for byte.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub setup: Setup,
    pub events: Events,
    pub durability: Durability,
    pub repair: Repair,
    pub detection: Vec<Detection>,
    pub economics: Economics,
    pub chain: ChainLoad,
    pub earnings: Earnings,
    /// The run over time, for plots.
    pub series: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub seed: u64,
    pub years: f64,
    pub nodes: usize,
    pub nodes_at_end: usize,
    pub segments: u64,
    pub files: u64,
    pub k: usize,
    pub n: usize,
    pub repair_threshold: usize,
    pub repair: bool,
    pub period_hours: f64,
    pub periods: u64,
    pub samples: u32,
    pub faulty_after: u32,
    pub disqualify_after: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Events {
    pub disk_failures: u64,
    pub graceful_leaves: u64,
    pub vanished: u64,
    pub domain_outages: u64,
    pub region_outages: u64,
    pub outages_for_good: u64,
    pub nodes_joined: u64,
    pub files_uploaded: u64,
    pub uploads_refused: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Durability {
    pub files_lost: u64,
    pub segments_lost: u64,
    /// Fraction of segments ever stored that survive.
    pub durability: f64,
    /// Segments lost per segment-year stored.
    pub annual_segment_loss: f64,
    /// Most files unreadable at one time (fewer than k shards reachable).
    pub peak_files_unavailable: u64,
    /// Fewest intact shards a surviving file was seen with.
    pub min_intact_seen: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Repair {
    pub repairs: u64,
    /// Repairs postponed because fewer than k shards were reachable.
    pub deferred: u64,
    pub shards_rebuilt: u64,
    /// Bytes moved by repairs (k reads plus one write per rebuilt shard).
    pub repair_bytes: u64,
    /// Bytes moved by graceful leaves handing their shards over.
    pub handoff_bytes: u64,
    /// Chunks colluders fetched to regenerate challenged chunks they had
    /// dropped (k per answered sample).
    pub regeneration_bytes: u64,
    /// Mean bytes stored (all shards), over the run.
    pub mean_stored_bytes: f64,
    /// (repair + handoff bytes) / mean stored bytes / years.
    pub repair_bytes_per_stored_byte_year: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub kind: Kind,
    pub what: &'static str,
    /// Times it happened (nodes that started cheating or failed).
    pub cases: u64,
    pub detected: u64,
    pub mean_hours: f64,
    pub max_hours: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Economics {
    /// Paid to nodes for proven periods.
    pub paid: u64,
    /// What missed and failed periods would have paid (stays in the deals).
    pub withheld: u64,
    pub slashed: u64,
    pub disqualified_nodes: u64,
    /// Paid to repairers, out of slashed stake and withheld pay.
    pub bounties: u64,
    /// Bounties due that those funds could not cover.
    pub bounties_unfunded: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainLoad {
    pub proof_txs: u64,
    pub proof_bytes: u64,
    pub proof_txs_per_block: f64,
    pub proof_bytes_per_block: f64,
    /// Most proofs in one period.
    pub peak_proofs_per_period: u64,
    pub declare_txs: u64,
    /// Estimated size of the chain's state at the end (node records, deals
    /// and commitments, proof records).
    pub state_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Earnings {
    /// Node lifetimes counted (a replaced node's earnings count separately).
    pub nodes: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub max: u64,
    pub mean_honest: f64,
    pub mean_dishonest: f64,
}

/// One sample of the run over time.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub day: f64,
    pub segments_lost: u64,
    pub repair_gib: f64,
    pub faulty_nodes: u64,
    pub files_below_threshold: u64,
    pub files_unavailable: u64,
    pub paid: u64,
    pub slashed: u64,
}

/// Percentiles of `v` (sorted in place); zeros for an empty list.
pub fn percentiles(v: &mut [u64]) -> (u64, u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.1), at(0.5), at(0.9), v[v.len() - 1])
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let s = &self.setup;
        let d = &self.durability;
        let r = &self.repair;
        let e = &self.economics;
        let c = &self.chain;
        let ev = &self.events;
        let mut rows: Vec<(String, String)> = vec![
            (
                "nodes (start / end)".into(),
                format!("{} / {}", s.nodes, s.nodes_at_end),
            ),
            (
                "segments / files".into(),
                format!("{} / {}", s.segments, s.files),
            ),
            ("k / n".into(), format!("{} / {}", s.k, s.n)),
            (
                "repair threshold".into(),
                if s.repair {
                    s.repair_threshold.to_string()
                } else {
                    "off".into()
                },
            ),
            (
                "years / periods".into(),
                format!("{:.2} / {} of {} h", s.years, s.periods, s.period_hours),
            ),
            (
                "disk failures / leaves / vanished".into(),
                format!(
                    "{} / {} / {}",
                    ev.disk_failures, ev.graceful_leaves, ev.vanished
                ),
            ),
            (
                "outages: domain / region / for good".into(),
                format!(
                    "{} / {} / {}",
                    ev.domain_outages, ev.region_outages, ev.outages_for_good
                ),
            ),
            ("segments lost".into(), d.segments_lost.to_string()),
            ("files lost".into(), d.files_lost.to_string()),
            ("durability".into(), format!("{:.9}", d.durability)),
            (
                "annual segment loss".into(),
                format!("{:.3e}", d.annual_segment_loss),
            ),
            (
                "peak files unavailable".into(),
                d.peak_files_unavailable.to_string(),
            ),
            (
                "fewest intact shards seen".into(),
                d.min_intact_seen.to_string(),
            ),
            (
                "repairs (deferred)".into(),
                format!("{} ({})", r.repairs, r.deferred),
            ),
            ("repair traffic".into(), gib(r.repair_bytes as f64)),
            ("handoff traffic".into(), gib(r.handoff_bytes as f64)),
            (
                "regeneration traffic".into(),
                format!("{:.1} MiB", r.regeneration_bytes as f64 / 1048576.0),
            ),
            (
                "repair bytes / stored byte / year".into(),
                format!("{:.4}", r.repair_bytes_per_stored_byte_year),
            ),
        ];
        for det in &self.detection {
            if det.cases > 0 {
                rows.push((
                    format!("detect: {}", det.what),
                    format!(
                        "{}/{} mean {:.1} h max {:.1} h",
                        det.detected, det.cases, det.mean_hours, det.max_hours
                    ),
                ));
            }
        }
        rows.extend([
            (
                "paid / withheld".into(),
                format!("{} / {}", e.paid, e.withheld),
            ),
            (
                "slashed (nodes disqualified)".into(),
                format!("{} ({})", e.slashed, e.disqualified_nodes),
            ),
            (
                "repair bounties (unfunded)".into(),
                format!("{} ({})", e.bounties, e.bounties_unfunded),
            ),
            (
                "proof txs / block".into(),
                format!(
                    "{:.2} ({:.0} B/block, peak {}/period)",
                    c.proof_txs_per_block, c.proof_bytes_per_block, c.peak_proofs_per_period
                ),
            ),
            (
                "chain state (est.)".into(),
                format!("{:.1} MiB", c.state_bytes as f64 / 1048576.0),
            ),
            (
                "earnings p10/p50/p90/max".into(),
                format!(
                    "{} / {} / {} / {}",
                    self.earnings.p10, self.earnings.p50, self.earnings.p90, self.earnings.max
                ),
            ),
            (
                "mean earnings honest / cheating".into(),
                format!(
                    "{:.0} / {:.0}",
                    self.earnings.mean_honest, self.earnings.mean_dishonest
                ),
            ),
        ]);
        let mut out = String::new();
        for (name, value) in rows {
            out.push_str(&format!("{name:>38}  {value}\n"));
        }
        out
    }
}
