//! Proof periods: every node's outcome, settled by the proof accounting.

use super::*;

impl Sim<'_> {
    pub(super) fn beacon(&self, period: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("cairn-sim beacon");
        h.update(&self.s.seed.to_le_bytes());
        h.update(&period.to_le_bytes());
        *h.finalize().as_bytes()
    }

    pub(super) fn period(&mut self, p: u64) {
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
                        Behaviour::Dropper | Behaviour::Regenerator if self.nodes.held[s] > 0 => {
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
                self.chain.proof_bytes += self.proof_size;
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
    pub(super) fn sample(&mut self, slot: u32, period: u64, seed: &[u8; 32]) -> PeriodOutcome {
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
            if self.files.holders[pos] & DROPPED == 0 || self.hits.contains(&pos) {
                continue;
            }
            // A regenerator rebuilds the chunk from k siblings' chunks, if
            // it can reach k of them (the dropped one is not reachable).
            if self.nodes.behaviour[s] == Behaviour::Regenerator
                && self.files.available[f as usize] as usize >= self.k
            {
                self.rep.regeneration_bytes += self.k as u64 * rules::CHUNK_BYTES;
                continue;
            }
            self.hits.push(pos);
        }
        if self.hits.is_empty() {
            return PeriodOutcome::Proven;
        }
        self.detected(s, &[Kind::Dropper, Kind::Regenerator]);
        let hits = std::mem::take(&mut self.hits);
        for &pos in &hits {
            self.set_position(pos, EMPTY);
        }
        self.hits = hits;
        PeriodOutcome::Failed
    }

    pub(super) fn disqualify(&mut self, slot: u32) {
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
}
