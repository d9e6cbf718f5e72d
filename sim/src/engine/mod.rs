//! The event loop: a virtual clock of proof periods, with failures, churn,
//! outages, growth and repairs landing in between.
//!
//! Every period each registered node's outcome (proven, failed, missed) is
//! settled by the proof accounting in [`crate::rules`]; health changes move
//! the files' `counted` shards, which drive protocol's repair rule; repairs
//! place new shards with protocol's placement. Honest reachable nodes always
//! prove, so they are settled without drawing samples (exact: every sample
//! of intact data succeeds); only nodes that hold dropped bytes draw their
//! samples, with the protocol's sampling function.

mod events;
mod placing;
mod positions;
mod proving;
mod summary;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use cairn_protocol::placement::{place, Candidate};
use cairn_protocol::repair::{Health as SegmentHealth, RepairPolicy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chain_load;
use crate::report::{self, Detection, Point, Report, Setup};
use crate::rules::{self, Health, PeriodOutcome, ProofParams};
use crate::scenario::{OutageKind, Scenario};
use crate::world::{self, Behaviour, Files, Kind, Nodes, Presence, DROPPED, EMPTY};
use crate::SimError;

/// Hours in a (Julian) year.
pub const HOURS_PER_YEAR: f64 = 24.0 * 365.25;
const GIB: u64 = 1 << 30;
/// Stake every node locks whatever it holds (the chain's minimum).
const MIN_STAKE: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    DiskFails {
        slot: u32,
        gen: u64,
    },
    Leaves {
        slot: u32,
        gen: u64,
    },
    RandomOutage(OutageKind),
    OutageStarts {
        kind: OutageKind,
        index: u32,
        hours: Option<u64>,
    },
    OutageEnds {
        kind: OutageKind,
        index: u32,
    },
    RepairLands(u32),
    NodeJoins,
    Upload,
}

/// A point in virtual time (hours), totally ordered for the queue.
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

#[derive(Debug, Default, Clone, Copy)]
struct KindStats {
    cases: u64,
    detected: u64,
    hours: f64,
    max: f64,
}

/// Runs a scenario to the end.
pub fn simulate(s: &Scenario) -> Result<Report, SimError> {
    simulate_with(s, &mut |_, _| {})
}

/// Runs a scenario, calling `progress(done, total)` after every period.
pub fn simulate_with(s: &Scenario, progress: &mut dyn FnMut(u64, u64)) -> Result<Report, SimError> {
    s.validate()?;
    let mut sim = Sim::new(s)?;
    sim.run(progress)?;
    Ok(sim.report())
}

#[derive(Debug)]
struct Sim<'a> {
    s: &'a Scenario,
    policy: RepairPolicy,
    proofs: ProofParams,
    k: usize,
    n: usize,
    leaf_bytes: u64,
    rng: ChaCha8Rng,
    nodes: Nodes,
    files: Files,
    domain_members: Vec<Vec<u32>>,
    domain_out: Vec<u32>,
    region_out: Vec<u32>,
    queue: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    now: f64,
    next_gen: u64,
    periods: u64,
    // scratch, reused so nothing is allocated per event
    mark: Vec<u32>,
    stamp: u32,
    cand: Vec<u32>,
    ids: Vec<[u8; 8]>,
    picked: Vec<u32>,
    replace: Vec<usize>,
    hits: Vec<usize>,
    /// Bytes of one node's proof transaction.
    proof_size: u64,
    /// Shards of one file are being placed: its counters only rise, so the
    /// checks wait for the last one.
    placing: bool,
    // results
    ev: report::Events,
    dur: report::Durability,
    rep: report::Repair,
    eco: report::Economics,
    chain: report::ChainLoad,
    kinds: [KindStats; 6],
    unavailable: u64,
    unavail: Vec<bool>,
    below_threshold: u64,
    stored_byte_hours: f64,
    retired: Vec<(u64, bool)>,
    series: Vec<Point>,
}

fn exp(rng: &mut ChaCha8Rng, rate_per_hour: f64) -> f64 {
    if rate_per_hour <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    -u.ln() / rate_per_hour
}

impl<'a> Sim<'a> {
    fn new(s: &'a Scenario) -> Result<Self, SimError> {
        let policy = s.policy()?;
        let params = s.params()?;
        let proofs = s.proofs.params();
        let mut sim = Sim {
            s,
            policy,
            proofs,
            k: params.k(),
            n: params.n(),
            leaf_bytes: s.shard_bytes * s.file_segments as u64,
            rng: ChaCha8Rng::seed_from_u64(s.seed),
            nodes: Nodes::default(),
            files: Files::new(params.k(), params.n()),
            domain_members: vec![Vec::new(); s.domains],
            domain_out: vec![0; s.domains],
            region_out: vec![0; s.regions],
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            next_gen: 0,
            periods: (s.years * HOURS_PER_YEAR / s.period_hours).floor() as u64,
            mark: Vec::new(),
            stamp: 0,
            cand: Vec::new(),
            ids: Vec::new(),
            picked: Vec::new(),
            replace: Vec::new(),
            hits: Vec::new(),
            placing: false,
            proof_size: chain_load::proof_bytes(
                proofs.samples,
                s.shard_bytes,
                s.file_segments as u64,
            ),
            ev: Default::default(),
            dur: report::Durability {
                min_intact_seen: params.n(),
                ..Default::default()
            },
            rep: Default::default(),
            eco: Default::default(),
            chain: Default::default(),
            kinds: [KindStats::default(); 6],
            unavailable: 0,
            unavail: Vec::new(),
            below_threshold: 0,
            stored_byte_hours: 0.0,
            retired: Vec::new(),
            series: Vec::new(),
        };
        sim.populate()?;
        Ok(sim)
    }

    fn push(&mut self, at: f64, event: Event) {
        if at.is_finite() {
            self.seq += 1;
            self.queue.push(Reverse((Time(at), self.seq, event)));
        }
    }

    fn node_rates(&self) -> (f64, f64) {
        let f = &self.s.failures;
        // AFR is a probability per year; the hazard rate is −ln(1 − AFR).
        let disk = if f.afr >= 1.0 {
            f64::INFINITY
        } else {
            -(1.0 - f.afr).ln() / HOURS_PER_YEAR
        };
        (disk, self.s.churn.leave_per_year / HOURS_PER_YEAR)
    }

    fn schedule_node(&mut self, slot: u32) {
        let gen = self.nodes.gen[slot as usize];
        let (disk, leave) = self.node_rates();
        let t = self.now + exp(&mut self.rng, disk);
        self.push(t, Event::DiskFails { slot, gen });
        let t = self.now + exp(&mut self.rng, leave);
        self.push(t, Event::Leaves { slot, gen });
    }

    fn presence_for(&self, slot: usize) -> Presence {
        let d = self.nodes.domain[slot] as usize;
        if self.domain_out[d] > 0 || self.region_out[d % self.s.regions] > 0 {
            Presence::Down
        } else {
            Presence::Up
        }
    }

    fn add_node(&mut self, behaviour: Behaviour) -> u32 {
        let slot = self.nodes.len();
        let domain = (slot % self.s.domains) as u32;
        let gen = self.next_gen;
        self.next_gen += 1;
        self.nodes.push(gen, domain, Presence::Up, behaviour);
        let p = self.presence_for(slot);
        self.nodes.presence[slot] = p;
        self.domain_members[domain as usize].push(slot as u32);
        self.mark.push(0);
        self.schedule_node(slot as u32);
        slot as u32
    }

    fn populate(&mut self) -> Result<(), SimError> {
        let s = self.s;
        let d = &s.dishonest;
        let count = |f: f64| (f * s.nodes as f64).round() as usize;
        let (droppers, late, declarers, regenerators) = (
            count(d.droppers),
            count(d.late),
            count(d.declarers),
            count(d.regenerators),
        );
        for i in 0..s.nodes {
            let b = if i < droppers {
                Behaviour::Dropper
            } else if i < droppers + late {
                Behaviour::Late
            } else if i < droppers + late + declarers {
                Behaviour::Declarer
            } else if i < droppers + late + declarers + regenerators {
                Behaviour::Regenerator
            } else {
                Behaviour::Honest
            };
            self.add_node(b);
        }
        // Cheaters are the first slots; spread them over domains by
        // shuffling behaviours (slot i is in domain i % domains already).
        for i in (1..s.nodes).rev() {
            let j = self.rng.gen_range(0..=i);
            self.nodes.behaviour.swap(i, j);
        }
        for _ in 0..s.files() {
            if !self.upload() {
                return Err(SimError::Config(
                    "not enough eligible nodes to place the starting data".into(),
                ));
            }
        }
        self.ev.files_uploaded = 0;
        // Cheaters drop (or drop and declare) at the start.
        for slot in 0..self.nodes.len() {
            let (fraction, kind) = match self.nodes.behaviour[slot] {
                Behaviour::Dropper => (d.drop_fraction, Kind::Dropper),
                Behaviour::Declarer => (d.declare_fraction, Kind::Declarer),
                Behaviour::Regenerator => (d.regenerate_fraction, Kind::Regenerator),
                Behaviour::Late => {
                    self.start_undetected(slot, Kind::Late);
                    continue;
                }
                Behaviour::Honest => continue,
            };
            self.drop_fraction(slot as u32, fraction);
            if self.nodes.behaviour[slot] == Behaviour::Declarer {
                self.nodes.to_declare[slot] = true;
            }
            if self.nodes.held[slot] > 0 && fraction > 0.0 {
                self.start_undetected(slot, kind);
            }
        }
        let f = &s.failures;
        let t = exp(&mut self.rng, f.domain_outages_per_year / HOURS_PER_YEAR);
        self.push(t, Event::RandomOutage(OutageKind::Domain));
        let t = exp(&mut self.rng, f.region_outages_per_year / HOURS_PER_YEAR);
        self.push(t, Event::RandomOutage(OutageKind::Region));
        for e in &s.events {
            self.push(
                e.at_hours,
                Event::OutageStarts {
                    kind: e.kind,
                    index: e.index as u32,
                    hours: e.hours.map(f64::to_bits),
                },
            );
        }
        self.schedule_join();
        self.schedule_upload();
        Ok(())
    }

    fn schedule_join(&mut self) {
        let rate = self.s.growth.nodes_per_year * self.s.nodes as f64 / HOURS_PER_YEAR;
        let t = self.now + exp(&mut self.rng, rate);
        self.push(t, Event::NodeJoins);
    }

    fn schedule_upload(&mut self) {
        let rate = self.s.growth.segments_per_year * self.s.files() as f64 / HOURS_PER_YEAR;
        let t = self.now + exp(&mut self.rng, rate);
        self.push(t, Event::Upload);
    }

    fn start_undetected(&mut self, slot: usize, kind: Kind) {
        if self.nodes.undetected[slot].is_none() {
            self.nodes.undetected[slot] = Some((self.now, kind));
            self.kinds[kind as usize].cases += 1;
        }
    }

    /// The chain noticed what `slot` hid, if it was of one of `kinds`.
    fn detected(&mut self, slot: usize, kinds: &[Kind]) {
        if let Some((since, kind)) = self.nodes.undetected[slot] {
            if kinds.contains(&kind) {
                let st = &mut self.kinds[kind as usize];
                let h = self.now - since;
                st.detected += 1;
                st.hours += h;
                st.max = st.max.max(h);
                self.nodes.undetected[slot] = None;
            }
        }
    }

    fn run(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<(), SimError> {
        let every = (self.periods / 365).max(1);
        self.sample_point();
        for p in 1..=self.periods {
            let t = p as f64 * self.s.period_hours;
            while let Some(Reverse((Time(at), _, _))) = self.queue.peek() {
                if *at > t {
                    break;
                }
                let Some(Reverse((Time(at), _, event))) = self.queue.pop() else {
                    break;
                };
                self.now = at;
                self.handle(event)?;
            }
            self.now = t;
            self.period(p);
            if p % every == 0 || p == self.periods {
                self.sample_point();
            }
            progress(p, self.periods);
        }
        Ok(())
    }
}
