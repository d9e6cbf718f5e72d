//! The event loop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use cairn_protocol::placement::{place, Candidate, PlacementError};
use cairn_protocol::repair::{Health, RepairPolicy};
use cairn_protocol::CodingParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HOURS_PER_YEAR: f64 = 24.0 * 365.25;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub domains: usize,
    pub segments: usize,
    pub params: CodingParams,
    /// Repair threshold (healthy shards at which repair starts).
    pub repair_threshold: usize,
    pub years: f64,
    /// Fraction of nodes that fail permanently per year.
    pub node_afr: f64,
    /// Whole-domain failures per year, across the network.
    pub domain_failures_per_year: f64,
    /// Hours between proof epochs: a loss is noticed at the next epoch.
    pub epoch_hours: f64,
    /// Hours from noticing a segment needs repair to the repair landing.
    pub repair_hours: f64,
    /// Bytes per shard (for bandwidth figures).
    pub shard_bytes: u64,
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub segments: usize,
    pub k: usize,
    pub n: usize,
    pub repair_threshold: usize,
    pub years: f64,
    pub node_failures: u64,
    pub domain_failures: u64,
    pub repairs: u64,
    pub segments_lost: u64,
    pub durability: f64,
    pub repair_bytes: u64,
    pub repair_bytes_per_segment_year: f64,
    pub mean_detection_hours: f64,
    pub min_healthy_seen: usize,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("placement: {0}")]
    Placement(#[from] PlacementError),
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    NodeFails(u32),
    DomainFails(u32),
    Epoch,
    RepairLands(u32),
}

#[derive(Debug)]
struct State {
    /// For each node slot: its generation id (a replaced node is a new node).
    node_gen: Vec<u64>,
    node_domain: Vec<u64>,
    node_alive: Vec<bool>,
    /// Segments each node slot holds a shard of.
    node_segments: Vec<Vec<u32>>,
    /// For each segment: the node slots holding its shards.
    holders: Vec<Vec<u32>>,
    healthy: Vec<usize>,
    lost: Vec<bool>,
    repair_pending: Vec<bool>,
    /// Segments that lost a shard since the last epoch, with the loss time.
    unnoticed: Vec<(u32, f64)>,
}

/// Runs the simulation.
pub fn simulate(cfg: &SimConfig) -> Result<SimReport, SimError> {
    let n = cfg.params.n();
    if cfg.nodes < n {
        return Err(SimError::Config(format!(
            "{} nodes cannot hold {} distinct shards",
            cfg.nodes, n
        )));
    }
    if cfg.domains == 0 || cfg.epoch_hours <= 0.0 || cfg.years <= 0.0 {
        return Err(SimError::Config(
            "domains, epoch hours and years must be positive".into(),
        ));
    }
    let policy = RepairPolicy::new(cfg.params, cfg.repair_threshold);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut st = State {
        node_gen: (0..cfg.nodes as u64).collect(),
        node_domain: (0..cfg.nodes).map(|i| (i % cfg.domains) as u64).collect(),
        node_alive: vec![true; cfg.nodes],
        node_segments: vec![Vec::new(); cfg.nodes],
        holders: Vec::with_capacity(cfg.segments),
        healthy: vec![n; cfg.segments],
        lost: vec![false; cfg.segments],
        repair_pending: vec![false; cfg.segments],
        unnoticed: Vec::new(),
    };
    let mut next_gen = cfg.nodes as u64;

    for seg in 0..cfg.segments {
        let slots = placement(&st, seg as u64, 0, &[], n)?;
        for &slot in &slots {
            st.node_segments[slot as usize].push(seg as u32);
        }
        st.holders.push(slots);
    }

    let horizon = cfg.years * HOURS_PER_YEAR;
    let mut queue: BinaryHeap<Reverse<(Time, Event)>> = BinaryHeap::new();
    let node_rate = cfg.node_afr / HOURS_PER_YEAR;
    for slot in 0..cfg.nodes {
        push(
            &mut queue,
            exp(&mut rng, node_rate),
            Event::NodeFails(slot as u32),
        );
    }
    push(
        &mut queue,
        exp(&mut rng, cfg.domain_failures_per_year / HOURS_PER_YEAR),
        Event::DomainFails(0),
    );
    push(&mut queue, cfg.epoch_hours, Event::Epoch);

    let mut r = SimReport {
        nodes: cfg.nodes,
        segments: cfg.segments,
        k: cfg.params.k(),
        n,
        repair_threshold: policy.threshold(),
        years: cfg.years,
        node_failures: 0,
        domain_failures: 0,
        repairs: 0,
        segments_lost: 0,
        durability: 1.0,
        repair_bytes: 0,
        repair_bytes_per_segment_year: 0.0,
        mean_detection_hours: 0.0,
        min_healthy_seen: n,
    };
    let mut detections = 0u64;
    let mut detection_hours = 0.0;

    while let Some(Reverse((Time(now), event))) = queue.pop() {
        if now > horizon {
            break;
        }
        match event {
            Event::NodeFails(slot) => {
                r.node_failures += 1;
                fail_node(&mut st, &mut r, &policy, slot, now);
                // The operator (or a newcomer) replaces it with an empty node.
                st.node_alive[slot as usize] = true;
                st.node_gen[slot as usize] = next_gen;
                next_gen += 1;
                push(
                    &mut queue,
                    now + exp(&mut rng, node_rate),
                    Event::NodeFails(slot),
                );
            }
            Event::DomainFails(_) => {
                r.domain_failures += 1;
                let domain = rng.gen_range(0..cfg.domains) as u64;
                for slot in 0..cfg.nodes {
                    if st.node_domain[slot] == domain {
                        fail_node(&mut st, &mut r, &policy, slot as u32, now);
                        st.node_alive[slot] = true;
                        st.node_gen[slot] = next_gen;
                        next_gen += 1;
                    }
                }
                push(
                    &mut queue,
                    now + exp(&mut rng, cfg.domain_failures_per_year / HOURS_PER_YEAR),
                    Event::DomainFails(0),
                );
            }
            Event::Epoch => {
                // Proofs reveal every shard lost since the last epoch.
                for (seg, lost_at) in std::mem::take(&mut st.unnoticed) {
                    let s = seg as usize;
                    detections += 1;
                    detection_hours += now - lost_at;
                    if !st.lost[s]
                        && !st.repair_pending[s]
                        && policy.health(st.healthy[s]) == Health::NeedsRepair
                    {
                        st.repair_pending[s] = true;
                        push(&mut queue, now + cfg.repair_hours, Event::RepairLands(seg));
                    }
                }
                push(&mut queue, now + cfg.epoch_hours, Event::Epoch);
            }
            Event::RepairLands(seg) => {
                let s = seg as usize;
                st.repair_pending[s] = false;
                if st.lost[s] {
                    continue;
                }
                let healthy = st.healthy[s];
                let keep: Vec<u32> = st.holders[s].clone();
                let fresh = placement(&st, seg as u64, r.repairs + 1, &keep, n - healthy)?;
                for &slot in &fresh {
                    st.node_segments[slot as usize].push(seg);
                }
                st.holders[s].extend(fresh);
                r.repair_bytes += policy.repair_transfers(healthy) as u64 * cfg.shard_bytes;
                st.healthy[s] = n;
                r.repairs += 1;
            }
        }
    }
    r.durability = 1.0 - r.segments_lost as f64 / cfg.segments.max(1) as f64;
    r.repair_bytes_per_segment_year =
        r.repair_bytes as f64 / cfg.segments.max(1) as f64 / cfg.years;
    r.mean_detection_hours = if detections > 0 {
        detection_hours / detections as f64
    } else {
        0.0
    };
    Ok(r)
}

/// Removes a node's shards from every segment it held.
fn fail_node(st: &mut State, r: &mut SimReport, policy: &RepairPolicy, slot: u32, now: f64) {
    st.node_alive[slot as usize] = false;
    for seg in std::mem::take(&mut st.node_segments[slot as usize]) {
        let s = seg as usize;
        st.holders[s].retain(|h| *h != slot);
        if st.lost[s] {
            continue;
        }
        st.healthy[s] -= 1;
        r.min_healthy_seen = r.min_healthy_seen.min(st.healthy[s]);
        if policy.health(st.healthy[s]) == Health::Lost {
            st.lost[s] = true;
            r.segments_lost += 1;
        } else {
            st.unnoticed.push((seg, now));
        }
    }
}

/// Node slots for `count` shards of a segment, avoiding `exclude`, chosen by
/// the protocol's placement rule over the live nodes.
fn placement(
    st: &State,
    seg: u64,
    round: u64,
    exclude: &[u32],
    count: usize,
) -> Result<Vec<u32>, SimError> {
    let ids: Vec<[u8; 8]> = st.node_gen.iter().map(|g| g.to_le_bytes()).collect();
    let slots: Vec<u32> = (0..st.node_gen.len() as u32)
        .filter(|s| st.node_alive[*s as usize] && !exclude.contains(s))
        .collect();
    let candidates: Vec<Candidate<'_>> = slots
        .iter()
        .map(|&s| Candidate {
            id: &ids[s as usize],
            domain: st.node_domain[s as usize],
        })
        .collect();
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&seg.to_le_bytes());
    seed[8..16].copy_from_slice(&round.to_le_bytes());
    let picked = place(&seed, &candidates, count)?;
    Ok(picked.into_iter().map(|i| slots[i]).collect())
}

/// A point in virtual time (hours), totally ordered for the event queue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn push(queue: &mut BinaryHeap<Reverse<(Time, Event)>>, at: f64, event: Event) {
    if at.is_finite() {
        queue.push(Reverse((Time(at), event)));
    }
}

/// An exponential waiting time for `rate` events per hour (∞ for rate 0).
fn exp(rng: &mut ChaCha8Rng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    -u.ln() / rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimConfig {
        SimConfig {
            nodes: 200,
            domains: 20,
            segments: 500,
            params: CodingParams::new(4, 4).unwrap(),
            repair_threshold: 5,
            years: 2.0,
            node_afr: 0.2,
            domain_failures_per_year: 1.0,
            epoch_hours: 24.0,
            repair_hours: 6.0,
            shard_bytes: 1 << 20,
            seed: 7,
        }
    }

    #[test]
    fn same_seed_same_result() {
        let a = simulate(&cfg()).unwrap();
        let b = simulate(&cfg()).unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert!(a.node_failures > 0 && a.repairs > 0);
    }

    #[test]
    fn repair_prevents_loss_that_happens_without_it() {
        let with = simulate(&cfg()).unwrap();
        assert_eq!(with.segments_lost, 0, "{with:?}");
        // Repair that never lands within the horizon: losses accumulate.
        let without = simulate(&SimConfig {
            repair_hours: 1e9,
            ..cfg()
        })
        .unwrap();
        assert!(without.segments_lost > 0, "{without:?}");
    }

    #[test]
    fn refuses_impossible_configs() {
        assert!(simulate(&SimConfig { nodes: 5, ..cfg() }).is_err());
        assert!(simulate(&SimConfig {
            domains: 0,
            ..cfg()
        })
        .is_err());
    }
}
