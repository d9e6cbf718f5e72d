//! Shard positions and the file counters that follow them.

use super::*;

impl Sim<'_> {
    /// Re-checks a file after its counters moved: loss, availability, repair.
    pub(super) fn after_change(&mut self, f: usize) {
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
    pub(super) fn compact(&mut self, slot: u32) {
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
    pub(super) fn set_position(&mut self, pos: usize, new: u32) {
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
            let stake = rules::required_stake(self.proofs.stake_per_gib, MIN_STAKE, bytes)
                .unwrap_or(u64::MAX);
            self.nodes.stake[ns] = self.nodes.stake[ns].max(stake);
        }
        self.files.holders[pos] = new;
        world::add(&mut self.files, f, world::flags(&self.nodes, new));
        self.after_change(f);
    }

    /// The holder of `pos` loses the bytes, silently.
    pub(super) fn drop_position(&mut self, pos: usize) {
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
    pub(super) fn change_node(&mut self, slot: u32, change: impl FnOnce(&mut Nodes)) {
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
    pub(super) fn drop_fraction(&mut self, slot: u32, fraction: f64) {
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
    pub(super) fn declare(&mut self, slot: u32) {
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
}
