//! Placing shards: uploads, repairs and hand-overs, with protocol's placement.

use super::*;

impl Sim<'_> {
    /// Fills `self.picked` with `count` slots for file `f` chosen by
    /// protocol's placement among a sample of eligible nodes, none of them a
    /// current holder and none in a domain that already has its share.
    pub(super) fn place_for(&mut self, f: u32, count: usize) -> bool {
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
                tickets: 1,
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
    pub(super) fn upload(&mut self) -> bool {
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
}
