//! Sampling the run over time and the final report.

use super::*;

impl Sim<'_> {
    pub(super) fn sample_point(&mut self) {
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

    pub(super) fn report(mut self) -> Report {
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
