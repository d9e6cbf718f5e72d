//! What happens between periods: failures, leaves, outages, growth, repairs.

use super::*;

impl Sim<'_> {
    pub(super) fn handle(&mut self, event: Event) -> Result<(), SimError> {
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

    pub(super) fn outage(&mut self, kind: OutageKind, index: u32, hours: Option<f64>) {
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
    pub(super) fn refresh_presence(&mut self, kind: OutageKind, index: u32, for_good: bool) {
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

    pub(super) fn vanish(&mut self, slot: u32) {
        let s = slot as usize;
        self.change_node(slot, |n| n.presence[s] = Presence::Gone);
        if self.nodes.held[s] > 0 {
            self.start_undetected(s, Kind::Vanished);
        }
    }

    pub(super) fn leave_gracefully(&mut self, slot: u32) {
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
    pub(super) fn retire(&mut self, slot: u32) {
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

    pub(super) fn repair(&mut self, f: u32) {
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
}
