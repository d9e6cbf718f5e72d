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
    /// Shards of one file are being placed: its counters only rise, so the
    /// checks wait for the last one.
    placing: bool,
    // results
    ev: report::Events,
    dur: report::Durability,
    rep: report::Repair,
    eco: report::Economics,
    chain: report::ChainLoad,
    kinds: [KindStats; 5],
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
            ev: Default::default(),
            dur: report::Durability {
                min_intact_seen: params.n(),
                ..Default::default()
            },
            rep: Default::default(),
            eco: Default::default(),
            chain: Default::default(),
            kinds: [KindStats::default(); 5],
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
        let (droppers, late, declarers) = (count(d.droppers), count(d.late), count(d.declarers));
        for i in 0..s.nodes {
            let b = if i < droppers {
                Behaviour::Dropper
            } else if i < droppers + late {
                Behaviour::Late
            } else if i < droppers + late + declarers {
                Behaviour::Declarer
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

    // ---- positions and counters ----

    /// Re-checks a file after its counters moved: loss, availability, repair.
    fn after_change(&mut self, f: usize) {
        if self.placing {
            return;
        }
        let files = &mut self.files;
        if !files.lost[f] && (files.intact[f] as usize) < self.k {
            files.lost[f] = true;
            self.dur.files_lost += 1;
            self.dur.segments_lost += self.s.file_segments as u64;
        }
        if !files.lost[f] {
            self.dur.min_intact_seen = self.dur.min_intact_seen.min(files.intact[f] as usize);
        }
        let unavailable = !files.lost[f] && (files.available[f] as usize) < self.k;
        if unavailable != self.unavail[f] {
            self.unavail[f] = unavailable;
            if unavailable {
                self.unavailable += 1;
                self.dur.peak_files_unavailable =
                    self.dur.peak_files_unavailable.max(self.unavailable);
            } else {
                self.unavailable -= 1;
            }
        }
        if self.s.repair
            && !files.lost[f]
            && !files.repair_pending[f]
            && self.policy.health(files.counted[f] as usize) != SegmentHealth::Healthy
        {
            files.repair_pending[f] = true;
            self.below_threshold += 1;
            let at = self.now + self.s.repair_hours;
            self.push(at, Event::RepairLands(f as u32));
        }
    }

    /// Drops the node's entries for positions it no longer holds.
    fn compact(&mut self, slot: u32) {
        let s = slot as usize;
        if !self.nodes.stale[s] {
            return;
        }
        let mut list = std::mem::take(&mut self.nodes.holdings[s]);
        list.retain(|&f| self.files.position_of(f, slot).is_some());
        self.nodes.holdings[s] = list;
        self.nodes.stale[s] = false;
    }

    /// Gives position `pos` to `new` (a slot, or [`EMPTY`]).
    fn set_position(&mut self, pos: usize, new: u32) {
        let f = pos / self.n;
        let old = self.files.holders[pos];
        world::subtract(&mut self.files, f, world::flags(&self.nodes, old));
        if old != EMPTY {
            let os = (old & !DROPPED) as usize;
            self.nodes.held[os] -= 1;
            self.nodes.stale[os] = true;
        }
        if new != EMPTY {
            self.compact(new);
            let ns = new as usize;
            self.nodes.held[ns] += 1;
            self.nodes.holdings[ns].push(f as u32);
            let bytes = self.nodes.held[ns] as u64 * self.leaf_bytes;
            let stake = rules::required_stake(&self.proofs, MIN_STAKE, bytes).unwrap_or(u64::MAX);
            self.nodes.stake[ns] = self.nodes.stake[ns].max(stake);
        }
        self.files.holders[pos] = new;
        world::add(&mut self.files, f, world::flags(&self.nodes, new));
        self.after_change(f);
    }

    /// The holder of `pos` loses the bytes, silently.
    fn drop_position(&mut self, pos: usize) {
        let f = pos / self.n;
        let old = self.files.holders[pos];
        if old == EMPTY || old & DROPPED != 0 {
            return;
        }
        world::subtract(&mut self.files, f, world::flags(&self.nodes, old));
        self.files.holders[pos] = old | DROPPED;
        world::add(&mut self.files, f, world::flags(&self.nodes, old | DROPPED));
        self.after_change(f);
    }

    /// Changes a node's state, moving every file counter it touches.
    fn change_node(&mut self, slot: u32, change: impl FnOnce(&mut Nodes)) {
        let list = std::mem::take(&mut self.nodes.holdings[slot as usize]);
        for &f in &list {
            if let Some(pos) = self.files.position_of(f, slot) {
                let fl = world::flags(&self.nodes, self.files.holders[pos]);
                world::subtract(&mut self.files, f as usize, fl);
            }
        }
        change(&mut self.nodes);
        for &f in &list {
            if let Some(pos) = self.files.position_of(f, slot) {
                let fl = world::flags(&self.nodes, self.files.holders[pos]);
                world::add(&mut self.files, f as usize, fl);
                self.after_change(f as usize);
            }
        }
        self.nodes.holdings[slot as usize] = list;
    }

    /// Silently loses `fraction` of the node's positions (exactly, rounded).
    fn drop_fraction(&mut self, slot: u32, fraction: f64) {
        self.compact(slot);
        let mut list = std::mem::take(&mut self.nodes.holdings[slot as usize]);
        let count = (fraction * list.len() as f64).round() as usize;
        // A partial Fisher–Yates shuffle picks `count` distinct positions.
        for i in 0..count {
            let j = self.rng.gen_range(i..list.len());
            list.swap(i, j);
        }
        for &f in &list[..count] {
            if let Some(pos) = self.files.position_of(f, slot) {
                self.drop_position(pos);
            }
        }
        self.nodes.holdings[slot as usize] = list;
    }

    /// Marks every dropped position of `slot` as known lost.
    fn declare(&mut self, slot: u32) {
        self.nodes.to_declare[slot as usize] = false;
        let list = std::mem::take(&mut self.nodes.holdings[slot as usize]);
        let mut any = false;
        for &f in &list {
            if let Some(pos) = self.files.position_of(f, slot) {
                if self.files.holders[pos] & DROPPED != 0 {
                    self.set_position(pos, EMPTY);
                    any = true;
                }
            }
        }
        let mut list = list;
        list.retain(|&f| self.files.position_of(f, slot).is_some());
        self.nodes.holdings[slot as usize] = list;
        self.nodes.stale[slot as usize] = false;
        if any {
            self.chain.declare_txs += 1;
        }
        self.detected(slot as usize, &[Kind::Declarer, Kind::DiskFailure]);
    }

    // ---- placement ----

    /// Fills `self.picked` with `count` slots for file `f` chosen by
    /// protocol's placement among a sample of eligible nodes, none of them a
    /// current holder and none in a domain that already has its share.
    fn place_for(&mut self, f: u32, count: usize) -> bool {
        self.picked.clear();
        if count == 0 {
            return true;
        }
        // Kept shards (held by active nodes) use up their domain's share;
        // the protocol's cap for the whole segment is ⌈n / domains⌉.
        let cap = self.n.div_ceil(self.s.domains).max(1);
        let range = self.files.positions(f);
        let mut holders = Vec::with_capacity(self.n);
        let mut kept_domains = Vec::with_capacity(self.n);
        for &h in &self.files.holders[range] {
            if h != EMPTY {
                holders.push(h & !DROPPED);
                if world::flags(&self.nodes, h).counted {
                    kept_domains.push(self.nodes.domain[(h & !DROPPED) as usize]);
                }
            }
        }
        let total = self.nodes.len();
        let want = match self.s.candidates_per_shard {
            0 => total,
            c => (c * count).max(16),
        };
        self.cand.clear();
        // With the domain rule first; if the live domains cannot take the
        // shards (a region is down), without it, as protocol's placement
        // itself fills from the ranking when domains run short.
        for spread in [true, false] {
            let full = |nodes: &Nodes, slot: usize| {
                spread && {
                    let d = nodes.domain[slot];
                    kept_domains.iter().filter(|&&k| k == d).count() >= cap
                }
            };
            self.stamp = self.stamp.wrapping_add(1);
            for &h in &holders {
                self.mark[h as usize] = self.stamp;
            }
            self.cand.clear();
            if want < total / 2 {
                let mut attempts = 0;
                while self.cand.len() < want && attempts < want * 8 {
                    attempts += 1;
                    let r = self.rng.gen_range(0..total);
                    if self.mark[r] != self.stamp && self.nodes.eligible(r) && !full(&self.nodes, r)
                    {
                        self.mark[r] = self.stamp;
                        self.cand.push(r as u32);
                    }
                }
            }
            if self.cand.len() < want.min(total / 2).max(count) {
                // Sampling came up short: every eligible node is a candidate.
                for r in 0..total {
                    if self.mark[r] != self.stamp && self.nodes.eligible(r) && !full(&self.nodes, r)
                    {
                        self.mark[r] = self.stamp;
                        self.cand.push(r as u32);
                    }
                }
            }
            if self.cand.len() >= count {
                break;
            }
        }
        self.ids.clear();
        self.ids.extend(
            self.cand
                .iter()
                .map(|&c| self.nodes.gen[c as usize].to_le_bytes()),
        );
        let candidates: Vec<Candidate<'_>> = self
            .ids
            .iter()
            .zip(&self.cand)
            .map(|(id, &c)| Candidate {
                id,
                domain: u64::from(self.nodes.domain[c as usize]),
            })
            .collect();
        let round = self.files.round[f as usize];
        self.files.round[f as usize] = round.wrapping_add(1);
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&f.to_le_bytes());
        seed[4..8].copy_from_slice(&round.to_le_bytes());
        seed[8..16].copy_from_slice(&self.s.seed.to_le_bytes());
        match place(&seed, &candidates, count) {
            Ok(chosen) => {
                self.picked.extend(chosen.into_iter().map(|i| self.cand[i]));
                true
            }
            Err(_) => false,
        }
    }

    /// Stores a new file; false if the network cannot place it now (it is
    /// refused and not counted as stored).
    fn upload(&mut self) -> bool {
        let f = self.files.push();
        self.unavail.push(false);
        if !self.place_for(f, self.n) {
            self.ev.uploads_refused += 1;
            self.files.lost[f as usize] = true;
            return false;
        }
        let start = self.files.positions(f).start;
        let picked = std::mem::take(&mut self.picked);
        self.placing = true;
        for (j, &slot) in picked.iter().enumerate() {
            self.set_position(start + j, slot);
        }
        self.placing = false;
        self.after_change(f as usize);
        self.picked = picked;
        self.ev.files_uploaded += 1;
        true
    }

    // ---- events ----

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

    fn handle(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::DiskFails { slot, gen } => {
                let s = slot as usize;
                if self.nodes.gen[s] != gen || self.nodes.presence[s] == Presence::Gone {
                    return Ok(());
                }
                self.ev.disk_failures += 1;
                self.drop_fraction(slot, 1.0);
                self.nodes.to_declare[s] = true;
                if self.nodes.held[s] > 0 {
                    self.start_undetected(s, Kind::DiskFailure);
                }
                let (disk, _) = self.node_rates();
                let t = self.now + exp(&mut self.rng, disk);
                self.push(t, Event::DiskFails { slot, gen });
            }
            Event::Leaves { slot, gen } => {
                let s = slot as usize;
                if self.nodes.gen[s] != gen || self.nodes.presence[s] == Presence::Gone {
                    return Ok(());
                }
                if self.rng.gen_bool(self.s.churn.graceful) {
                    self.ev.graceful_leaves += 1;
                    self.leave_gracefully(slot);
                } else {
                    self.ev.vanished += 1;
                    self.vanish(slot);
                }
            }
            Event::RandomOutage(kind) => {
                let f = &self.s.failures;
                let (rate, limit) = match kind {
                    OutageKind::Domain => (f.domain_outages_per_year, self.s.domains),
                    OutageKind::Region => (f.region_outages_per_year, self.s.regions),
                };
                let index = self.rng.gen_range(0..limit) as u32;
                let hours = if self.rng.gen_bool(f.outage_permanent) {
                    None
                } else {
                    Some(exp(&mut self.rng, 1.0 / f.outage_hours))
                };
                self.outage(kind, index, hours);
                let t = self.now + exp(&mut self.rng, rate / HOURS_PER_YEAR);
                self.push(t, Event::RandomOutage(kind));
            }
            Event::OutageStarts { kind, index, hours } => {
                self.outage(kind, index, hours.map(f64::from_bits));
            }
            Event::OutageEnds { kind, index } => {
                match kind {
                    OutageKind::Domain => self.domain_out[index as usize] -= 1,
                    OutageKind::Region => self.region_out[index as usize] -= 1,
                }
                self.refresh_presence(kind, index, false);
            }
            Event::RepairLands(f) => self.repair(f),
            Event::NodeJoins => {
                self.ev.nodes_joined += 1;
                self.add_node(Behaviour::Honest);
                self.schedule_join();
            }
            Event::Upload => {
                self.upload();
                self.schedule_upload();
            }
        }
        Ok(())
    }

    fn outage(&mut self, kind: OutageKind, index: u32, hours: Option<f64>) {
        match kind {
            OutageKind::Domain => self.ev.domain_outages += 1,
            OutageKind::Region => self.ev.region_outages += 1,
        }
        match hours {
            Some(h) => {
                match kind {
                    OutageKind::Domain => self.domain_out[index as usize] += 1,
                    OutageKind::Region => self.region_out[index as usize] += 1,
                }
                self.refresh_presence(kind, index, false);
                self.push(self.now + h, Event::OutageEnds { kind, index });
            }
            None => {
                self.ev.outages_for_good += 1;
                self.refresh_presence(kind, index, true);
            }
        }
    }

    /// Brings the nodes of a domain or region in line with the outages.
    fn refresh_presence(&mut self, kind: OutageKind, index: u32, for_good: bool) {
        let domains: Vec<usize> = match kind {
            OutageKind::Domain => vec![index as usize],
            OutageKind::Region => (index as usize..self.s.domains)
                .step_by(self.s.regions)
                .collect(),
        };
        for d in domains {
            for i in 0..self.domain_members[d].len() {
                let slot = self.domain_members[d][i];
                let s = slot as usize;
                if self.nodes.presence[s] == Presence::Gone {
                    continue;
                }
                if for_good {
                    self.vanish(slot);
                    continue;
                }
                let want = self.presence_for(s);
                if want != self.nodes.presence[s] {
                    self.change_node(slot, |n| n.presence[s] = want);
                }
            }
        }
    }

    fn vanish(&mut self, slot: u32) {
        let s = slot as usize;
        self.change_node(slot, |n| n.presence[s] = Presence::Gone);
        if self.nodes.held[s] > 0 {
            self.start_undetected(s, Kind::Vanished);
        }
    }

    fn leave_gracefully(&mut self, slot: u32) {
        self.compact(slot);
        let list = std::mem::take(&mut self.nodes.holdings[slot as usize]);
        for &f in &list {
            let Some(pos) = self.files.position_of(f, slot) else {
                continue;
            };
            let dropped = self.files.holders[pos] & DROPPED != 0;
            if !dropped
                && self.nodes.presence[slot as usize] == Presence::Up
                && self.place_for(f, 1)
            {
                let to = self.picked[0];
                self.set_position(pos, to);
                self.rep.handoff_bytes += self.leaf_bytes;
            } else {
                self.set_position(pos, EMPTY);
            }
        }
        self.retire(slot);
    }

    /// A newcomer takes the slot of a node that left or was disqualified.
    fn retire(&mut self, slot: u32) {
        let s = slot as usize;
        self.nodes.holdings[s].clear();
        let honest = self.nodes.behaviour[s] == Behaviour::Honest;
        self.retired.push((self.nodes.earned[s], honest));
        let gen = self.next_gen;
        self.next_gen += 1;
        let presence = self.presence_for(s);
        self.nodes.replace(slot, gen, presence);
        self.schedule_node(slot);
    }

    fn repair(&mut self, f: u32) {
        let fi = f as usize;
        self.files.repair_pending[fi] = false;
        self.below_threshold -= 1;
        if self.files.lost[fi] {
            return;
        }
        let healthy = self.files.counted[fi] as usize;
        if self.policy.health(healthy) == SegmentHealth::Healthy {
            return;
        }
        let defer = |sim: &mut Self| {
            sim.rep.deferred += 1;
            sim.files.repair_pending[fi] = true;
            sim.below_threshold += 1;
            let at = sim.now + sim.s.repair_hours.max(sim.s.period_hours);
            sim.push(at, Event::RepairLands(f));
        };
        if (self.files.available[fi] as usize) < self.k {
            defer(self);
            return;
        }
        self.replace.clear();
        for pos in self.files.positions(f) {
            let h = self.files.holders[pos];
            if h == EMPTY || !world::flags(&self.nodes, h).counted {
                self.replace.push(pos);
            }
        }
        if !self.place_for(f, self.replace.len()) {
            defer(self);
            return;
        }
        let replace = std::mem::take(&mut self.replace);
        let picked = std::mem::take(&mut self.picked);
        // Checked once all shards are in: half way the file is still below
        // the threshold and would queue itself again.
        self.placing = true;
        for (&pos, &slot) in replace.iter().zip(&picked) {
            self.set_position(pos, slot);
        }
        self.placing = false;
        self.after_change(fi);
        let rebuilt = replace.len() as u64;
        self.replace = replace;
        self.picked = picked;
        self.rep.repairs += 1;
        self.rep.shards_rebuilt += rebuilt;
        self.rep.repair_bytes += self.policy.repair_transfers(healthy) as u64 * self.leaf_bytes;
        // Bounties come from what the chain set aside for repair: slashed
        // stake (the repair pool) and the pay withheld from missed periods.
        let demand = rules::period_share(
            self.s.economics.bounty_per_gib,
            rebuilt * self.leaf_bytes,
            GIB,
        );
        let funds = (self.eco.slashed + self.eco.withheld).saturating_sub(self.eco.bounties);
        let paid = demand.min(funds);
        self.eco.bounties += paid;
        self.eco.bounties_unfunded += demand - paid;
    }

    // ---- proof periods ----

    fn beacon(&self, period: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("cairn-sim beacon");
        h.update(&self.s.seed.to_le_bytes());
        h.update(&period.to_le_bytes());
        *h.finalize().as_bytes()
    }

    fn period(&mut self, p: u64) {
        let seed = self.beacon(p);
        let price = self.s.economics.price_per_gib_period;
        let mut proofs = 0u64;
        let mut stored = 0u64;
        for slot in 0..self.nodes.len() {
            let s = slot;
            let outcome = match self.nodes.presence[s] {
                Presence::Gone | Presence::Down => PeriodOutcome::Missed,
                Presence::Up => {
                    if self.nodes.to_declare[s] {
                        self.declare(slot as u32);
                    }
                    match self.nodes.behaviour[s] {
                        Behaviour::Late if self.rng.gen_bool(self.s.dishonest.late_probability) => {
                            PeriodOutcome::Missed
                        }
                        Behaviour::Dropper if self.nodes.held[s] > 0 => {
                            self.sample(slot as u32, p, &seed)
                        }
                        _ => PeriodOutcome::Proven,
                    }
                }
            };
            let held_bytes = self.nodes.held[s] as u64 * self.leaf_bytes;
            stored += held_bytes;
            if held_bytes > 0 && outcome != PeriodOutcome::Missed {
                proofs += 1;
                self.chain.proof_bytes += chain_load::proof_bytes(
                    self.proofs.samples,
                    self.s.shard_bytes,
                    self.nodes.held[s] as u64 * self.s.file_segments as u64,
                );
            }
            let share = rules::period_share(price, held_bytes, GIB);
            if outcome == PeriodOutcome::Proven {
                self.nodes.earned[s] += share;
                self.eco.paid += share;
            } else {
                self.eco.withheld += share;
            }
            let before = self.nodes.record[s].health;
            let Some(after) = self.nodes.record[s].settle(&self.proofs, p, outcome) else {
                continue;
            };
            // Undo, then redo through change_node so the counters follow.
            self.nodes.record[s].health = before;
            self.change_node(slot as u32, |n| n.record[s].health = after);
            match after {
                Health::Faulty => self.detected(s, &[Kind::Late, Kind::Vanished]),
                Health::Active => self.compact(slot as u32),
                Health::Disqualified => self.disqualify(slot as u32),
            }
        }
        self.stored_byte_hours += stored as f64 * self.s.period_hours;
        self.chain.proof_txs += proofs;
        self.chain.peak_proofs_per_period = self.chain.peak_proofs_per_period.max(proofs);
    }

    /// Draws the period's samples for a node holding dropped bytes, with
    /// protocol's sampling function over its committed bytes.
    fn sample(&mut self, slot: u32, period: u64, seed: &[u8; 32]) -> PeriodOutcome {
        self.compact(slot);
        let s = slot as usize;
        let total = self.nodes.held[s] as u64 * self.leaf_bytes;
        let mut prev = [0u8; 32];
        self.hits.clear();
        for i in 0..self.proofs.samples {
            let offset =
                rules::sample_offset(seed, &self.nodes.address[s], period, i, &prev, total);
            let Some(&f) = self.nodes.holdings[s].get((offset / self.leaf_bytes) as usize) else {
                continue;
            };
            let Some(pos) = self.files.position_of(f, slot) else {
                continue;
            };
            let chunk = (offset % self.leaf_bytes) / rules::CHUNK_BYTES;
            // The chunk's chaining value: the simulator has no bytes, so a
            // hash of where the chunk is stands in for its content.
            let mut h = blake3::Hasher::new_derive_key("cairn-sim chunk");
            h.update(&(pos as u64).to_le_bytes());
            h.update(&chunk.to_le_bytes());
            prev = *h.finalize().as_bytes();
            if self.files.holders[pos] & DROPPED != 0 && !self.hits.contains(&pos) {
                self.hits.push(pos);
            }
        }
        if self.hits.is_empty() {
            return PeriodOutcome::Proven;
        }
        self.detected(s, &[Kind::Dropper]);
        let hits = std::mem::take(&mut self.hits);
        for &pos in &hits {
            self.set_position(pos, EMPTY);
        }
        self.hits = hits;
        PeriodOutcome::Failed
    }

    fn disqualify(&mut self, slot: u32) {
        let s = slot as usize;
        self.eco.disqualified_nodes += 1;
        self.eco.slashed += self.nodes.stake[s];
        self.detected(s, &Kind::ALL);
        let list = std::mem::take(&mut self.nodes.holdings[s]);
        for &f in &list {
            if let Some(pos) = self.files.position_of(f, slot) {
                self.set_position(pos, EMPTY);
            }
        }
        self.retire(slot);
    }

    fn sample_point(&mut self) {
        let faulty = self
            .nodes
            .record
            .iter()
            .filter(|r| r.health == Health::Faulty)
            .count() as u64;
        self.series.push(Point {
            day: self.now / 24.0,
            segments_lost: self.dur.segments_lost,
            repair_gib: (self.rep.repair_bytes + self.rep.handoff_bytes) as f64 / GIB as f64,
            faulty_nodes: faulty,
            files_below_threshold: self.below_threshold,
            files_unavailable: self.unavailable,
            paid: self.eco.paid,
            slashed: self.eco.slashed,
        });
    }

    fn report(mut self) -> Report {
        let s = self.s;
        let hours = self.periods as f64 * s.period_hours;
        let years = hours / HOURS_PER_YEAR;
        let segments =
            (self.files.len() - self.ev.uploads_refused as usize) as u64 * s.file_segments as u64;
        self.dur.durability = 1.0 - self.dur.segments_lost as f64 / segments.max(1) as f64;
        self.dur.annual_segment_loss =
            self.dur.segments_lost as f64 / segments.max(1) as f64 / years.max(1e-9);
        self.rep.mean_stored_bytes = self.stored_byte_hours / hours.max(1e-9);
        self.rep.repair_bytes_per_stored_byte_year = (self.rep.repair_bytes
            + self.rep.handoff_bytes) as f64
            / self.rep.mean_stored_bytes.max(1.0)
            / years.max(1e-9);
        let blocks = (self.periods * self.proofs.period_blocks).max(1) as f64;
        self.chain.proof_txs_per_block = self.chain.proof_txs as f64 / blocks;
        self.chain.proof_bytes_per_block = self.chain.proof_bytes as f64 / blocks;
        self.chain.state_bytes = chain_load::state_bytes(
            self.nodes.len() as u64,
            self.files.len() as u64,
            self.n as u64,
        );
        let mut all: Vec<(u64, bool)> = std::mem::take(&mut self.retired);
        all.extend((0..self.nodes.len()).map(|i| {
            (
                self.nodes.earned[i],
                self.nodes.behaviour[i] == Behaviour::Honest,
            )
        }));
        let mean = |honest: bool| {
            let v: Vec<u64> = all.iter().filter(|e| e.1 == honest).map(|e| e.0).collect();
            v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
        };
        let (mean_honest, mean_dishonest) = (mean(true), mean(false));
        let mut earned: Vec<u64> = all.iter().map(|e| e.0).collect();
        let (p10, p50, p90, max) = report::percentiles(&mut earned);
        let detection = Kind::ALL
            .iter()
            .map(|&kind| {
                let st = self.kinds[kind as usize];
                Detection {
                    kind,
                    what: kind.as_str(),
                    cases: st.cases,
                    detected: st.detected,
                    mean_hours: st.hours / st.detected.max(1) as f64,
                    max_hours: st.max,
                }
            })
            .collect();
        Report {
            setup: Setup {
                seed: s.seed,
                years,
                nodes: s.nodes,
                nodes_at_end: self.nodes.len(),
                segments,
                files: self.files.len() as u64,
                k: self.k,
                n: self.n,
                repair_threshold: self.policy.threshold(),
                repair: s.repair,
                period_hours: s.period_hours,
                periods: self.periods,
                samples: self.proofs.samples,
                faulty_after: self.proofs.faulty_after,
                disqualify_after: self.proofs.disqualify_after,
            },
            events: self.ev,
            durability: self.dur,
            repair: self.rep,
            detection,
            economics: self.eco,
            chain: self.chain,
            earnings: report::Earnings {
                nodes: all.len() as u64,
                p10,
                p50,
                p90,
                max,
                mean_honest,
                mean_dishonest,
            },
            series: self.series,
        }
    }
}
