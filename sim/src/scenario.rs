//! What to simulate: a scenario, read from TOML or built from flags.
//!
//! Every field has a default, so a scenario file names only what it changes.
//! Rates are per simulated year; times are in hours.

use cairn_protocol::repair::RepairPolicy;
use cairn_protocol::CodingParams;
use serde::{Deserialize, Serialize};

use crate::rules::ProofParams;
use crate::SimError;

/// A whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub seed: u64,
    pub years: f64,
    /// Storage nodes at the start.
    pub nodes: usize,
    /// Failure domains (operators, subnets) the nodes are spread over;
    /// placement never puts more than its share of a segment in one.
    pub domains: usize,
    /// Regions: domain `d` lies in region `d % regions`.
    pub regions: usize,
    /// Segments stored at the start.
    pub segments: usize,
    /// Segments per file. A file's segments share one placement (the
    /// client places per file), so they fail and are repaired together.
    pub file_segments: usize,
    pub data_shards: u16,
    pub parity_shards: u16,
    /// Healthy shards at which repair starts (default: protocol's
    /// [`RepairPolicy::default_for`]).
    pub repair_threshold: Option<usize>,
    /// Whether the network repairs at all (off for checks against theory).
    pub repair: bool,
    /// Hours from a segment needing repair to the repair landing.
    pub repair_hours: f64,
    /// Bytes per shard.
    pub shard_bytes: u64,
    /// Hours per proof period.
    pub period_hours: f64,
    /// Live nodes a placement chooses among, per shard it places (a client
    /// ranks the nodes it knows, not every node of a large network; a node
    /// handing over one shard asks a few); at least 16; 0 means all.
    pub candidates_per_shard: usize,
    pub failures: Failures,
    pub churn: Churn,
    pub growth: Growth,
    pub dishonest: Dishonest,
    pub economics: Economics,
    pub proofs: Proofs,
    /// Scripted outages, on top of the random ones.
    pub events: Vec<ScriptedOutage>,
}

/// Nodes and domains failing on their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Failures {
    /// Annual failure rate: the fraction of nodes whose disk dies per year
    /// (the operator declares the loss and goes on with an empty disk).
    pub afr: f64,
    /// Whole-domain outages per year, across the network.
    pub domain_outages_per_year: f64,
    /// Whole-region outages per year.
    pub region_outages_per_year: f64,
    /// Mean hours an outage lasts (exponentially distributed).
    pub outage_hours: f64,
    /// Fraction of outages that are for good (the nodes never return).
    pub outage_permanent: f64,
}

/// Nodes leaving the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Churn {
    /// Fraction of nodes leaving per year (each is replaced by a newcomer).
    pub leave_per_year: f64,
    /// Fraction of leavers that leave gracefully (hand their shards over
    /// first); the rest vanish with their data.
    pub graceful: f64,
}

/// The network and its data growing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Growth {
    /// New nodes per year, as a fraction of the starting count.
    pub nodes_per_year: f64,
    /// New segments per year, as a fraction of the starting count.
    pub segments_per_year: f64,
}

/// Nodes that cheat, as fractions of the starting nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dishonest {
    /// Nodes that drop part of their data and keep answering challenges.
    pub droppers: f64,
    /// Fraction of its shards a dropper throws away.
    pub drop_fraction: f64,
    /// Nodes that often answer after the deadline.
    pub late: f64,
    /// Probability a late node misses a given period's deadline.
    pub late_probability: f64,
    /// Nodes that throw data away and declare the loss.
    pub declarers: f64,
    /// Fraction of its shards a declarer throws away.
    pub declare_fraction: f64,
    /// Nodes that drop data and, when a sample lands in it, rebuild the
    /// chunk from k sibling shards fetched from colluders.
    pub regenerators: f64,
    /// Fraction of its shards a regenerator throws away.
    pub regenerate_fraction: f64,
}

/// Prices and stakes (in the chain's base unit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Economics {
    /// Paid per GiB held per proven period.
    pub price_per_gib_period: u64,
    /// Bounty per GiB a repair rebuilds, paid to the repairer.
    pub bounty_per_gib: u64,
}

/// Changes to the chain's proof rules (each defaults to the genesis default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Proofs {
    pub samples: Option<u32>,
    pub faulty_after: Option<u32>,
    pub disqualify_after: Option<u32>,
    pub stake_per_gib: Option<u64>,
    /// Chain blocks per period (for the load per block).
    pub period_blocks: Option<u64>,
}

impl Proofs {
    /// The rules these settings give.
    pub fn params(&self) -> ProofParams {
        let d = ProofParams::default();
        ProofParams {
            samples: self.samples.unwrap_or(d.samples),
            faulty_after: self.faulty_after.unwrap_or(d.faulty_after),
            disqualify_after: self.disqualify_after.unwrap_or(d.disqualify_after),
            stake_per_gib: self.stake_per_gib.unwrap_or(d.stake_per_gib),
            period_blocks: self.period_blocks.unwrap_or(d.period_blocks),
            window_blocks: d.window_blocks.min(
                self.period_blocks
                    .unwrap_or(d.period_blocks)
                    .saturating_sub(1),
            ),
        }
    }
}

/// One outage at a fixed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedOutage {
    pub at_hours: f64,
    pub kind: OutageKind,
    pub index: usize,
    /// How long it lasts; absent means for good.
    pub hours: Option<f64>,
}

/// What goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageKind {
    Domain,
    Region,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 1,
            years: 1.0,
            nodes: 1000,
            domains: 50,
            regions: 5,
            segments: 10_000,
            file_segments: 1,
            data_shards: cairn_protocol::params::DEFAULT_DATA_SHARDS,
            parity_shards: cairn_protocol::params::DEFAULT_PARITY_SHARDS,
            repair_threshold: None,
            repair: true,
            repair_hours: 12.0,
            shard_bytes: 839_680,
            period_hours: 1.0,
            candidates_per_shard: 4,
            failures: Failures::default(),
            churn: Churn::default(),
            growth: Growth::default(),
            dishonest: Dishonest::default(),
            economics: Economics::default(),
            proofs: Proofs::default(),
            events: Vec::new(),
        }
    }
}

impl Default for Failures {
    fn default() -> Self {
        Self {
            afr: 0.02,
            domain_outages_per_year: 1.0,
            region_outages_per_year: 0.1,
            outage_hours: 24.0,
            outage_permanent: 0.1,
        }
    }
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            leave_per_year: 0.1,
            graceful: 0.5,
        }
    }
}

impl Default for Growth {
    fn default() -> Self {
        Self {
            nodes_per_year: 0.0,
            segments_per_year: 0.0,
        }
    }
}

impl Default for Dishonest {
    fn default() -> Self {
        Self {
            droppers: 0.0,
            drop_fraction: 0.05,
            late: 0.0,
            late_probability: 0.5,
            declarers: 0.0,
            declare_fraction: 0.1,
            regenerators: 0.0,
            regenerate_fraction: 0.5,
        }
    }
}

impl Default for Economics {
    fn default() -> Self {
        Self {
            price_per_gib_period: 1_000,
            bounty_per_gib: 100_000,
        }
    }
}

fn fraction(name: &str, v: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{name} must be in 0..=1, got {v}"
        )))
    }
}

fn non_negative(name: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{name} must be a finite number ≥ 0, got {v}"
        )))
    }
}

fn positive(name: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{name} must be a finite number > 0, got {v}"
        )))
    }
}

/// Most files (segments / file_segments) and nodes a run may hold: slots
/// and file ids are `u32` with one bit kept for flags.
pub const MAX_ENTITIES: usize = 1 << 30;

impl Scenario {
    /// Parses a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let s: Self = toml::from_str(text).map_err(|e| SimError::Config(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The code's parameters.
    pub fn params(&self) -> Result<CodingParams, SimError> {
        CodingParams::new(self.data_shards, self.parity_shards)
            .map_err(|e| SimError::Config(format!("data/parity shards: {e}")))
    }

    /// The repair rule this scenario runs.
    pub fn policy(&self) -> Result<RepairPolicy, SimError> {
        let params = self.params()?;
        Ok(match self.repair_threshold {
            Some(t) => RepairPolicy::new(params, t),
            None => RepairPolicy::default_for(params),
        })
    }

    /// Files at the start.
    pub fn files(&self) -> usize {
        self.segments.div_ceil(self.file_segments.max(1))
    }

    /// Refuses what cannot run, with the reason.
    pub fn validate(&self) -> Result<(), SimError> {
        let n = self.params()?.n();
        if self.nodes < n {
            return Err(SimError::Config(format!(
                "{} nodes cannot hold {n} distinct shards",
                self.nodes
            )));
        }
        if self.domains == 0 || self.regions == 0 || self.file_segments == 0 {
            return Err(SimError::Config(
                "domains, regions and file_segments must be at least 1".into(),
            ));
        }
        let max_shard = u64::from(cairn_protocol::params::MAX_SHARD_SIZE);
        if self.shard_bytes == 0 || self.shard_bytes > max_shard {
            return Err(SimError::Config(format!(
                "shard_bytes must be 1 to {max_shard} (protocol's largest shard)"
            )));
        }
        self.proofs
            .params()
            .validate()
            .map_err(|e| SimError::Config(format!("proofs: {e}")))?;
        positive("years", self.years)?;
        positive("period_hours", self.period_hours)?;
        non_negative("repair_hours", self.repair_hours)?;
        let f = &self.failures;
        fraction("failures.afr", f.afr)?;
        non_negative(
            "failures.domain_outages_per_year",
            f.domain_outages_per_year,
        )?;
        non_negative(
            "failures.region_outages_per_year",
            f.region_outages_per_year,
        )?;
        positive("failures.outage_hours", f.outage_hours)?;
        fraction("failures.outage_permanent", f.outage_permanent)?;
        non_negative("churn.leave_per_year", self.churn.leave_per_year)?;
        fraction("churn.graceful", self.churn.graceful)?;
        non_negative("growth.nodes_per_year", self.growth.nodes_per_year)?;
        non_negative("growth.segments_per_year", self.growth.segments_per_year)?;
        let d = &self.dishonest;
        for (name, v) in [
            ("dishonest.droppers", d.droppers),
            ("dishonest.drop_fraction", d.drop_fraction),
            ("dishonest.late", d.late),
            ("dishonest.late_probability", d.late_probability),
            ("dishonest.declarers", d.declarers),
            ("dishonest.declare_fraction", d.declare_fraction),
            ("dishonest.regenerators", d.regenerators),
            ("dishonest.regenerate_fraction", d.regenerate_fraction),
        ] {
            fraction(name, v)?;
        }
        if d.droppers + d.late + d.declarers + d.regenerators > 1.0 {
            return Err(SimError::Config(
                "dishonest fractions add up to more than 1".into(),
            ));
        }
        for e in &self.events {
            non_negative("events.at_hours", e.at_hours)?;
            if let Some(h) = e.hours {
                positive("events.hours", h)?;
            }
            let limit = match e.kind {
                OutageKind::Domain => self.domains,
                OutageKind::Region => self.regions,
            };
            if e.index >= limit {
                return Err(SimError::Config(format!(
                    "event {:?} index {} out of range (0..{limit})",
                    e.kind, e.index
                )));
            }
        }
        let grown = |base: usize, rate: f64| base as f64 * (1.0 + rate * self.years) * 1.2 + 1.0;
        if grown(self.nodes, self.growth.nodes_per_year) > MAX_ENTITIES as f64
            || grown(self.files(), self.growth.segments_per_year) > MAX_ENTITIES as f64
        {
            return Err(SimError::Config(format!(
                "at most {MAX_ENTITIES} nodes and files"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_names_only_what_it_changes() {
        let s = Scenario::from_toml(
            "nodes = 300\n[failures]\nafr = 0.05\n[[events]]\nat_hours = 10\nkind = \"region\"\nindex = 2\nhours = 48\n",
        )
        .unwrap();
        assert_eq!(s.nodes, 300);
        assert_eq!(s.failures.afr, 0.05);
        assert_eq!(s.failures.outage_hours, Failures::default().outage_hours);
        assert_eq!(s.events[0].kind, OutageKind::Region);
        assert_eq!(s.policy().unwrap().threshold(), 15);
    }

    #[test]
    fn refuses_bad_scenarios_with_a_reason() {
        for (text, needle) in [
            ("nodes = 5", "distinct shards"),
            ("colour = 1", "unknown field"),
            ("[failures]\nafr = 1.5", "afr"),
            ("years = -1", "years"),
            (
                "[[events]]\nat_hours = 1\nkind = \"region\"\nindex = 9",
                "out of range",
            ),
            ("[dishonest]\ndroppers = 0.7\nlate = 0.7", "more than 1"),
            ("data_shards = 0", "data/parity"),
            ("shard_bytes = 40000000", "largest shard"),
            ("[proofs]\nsamples = 100", "proof_samples"),
            (
                "[proofs]\nfaulty_after = 5\ndisqualify_after = 2",
                "faulty_after",
            ),
        ] {
            let e = Scenario::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
