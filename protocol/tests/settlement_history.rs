//! Settlement pinned by what it pays, not by how the state keeps it.
//!
//! Fixed pseudo-random histories over a repairable deal (nodes prove or
//! not, lose shards, strangers claim repairs by the rules or bent, the
//! owner closes; nodes fall faulty and are disqualified) are replayed, and
//! after every step what the state owes whom is hashed: balances, node
//! earnings, stakes and proof records, and each deal settled (escrow,
//! withheld pay, and each commitment's pay, proof counts, losses and
//! moves). The known answer was computed by the settlement that paid every
//! commitment at each period's end; the lazy settlement that replaced it
//! (docs/chain.md, "Settlement") must give the very same numbers. After
//! every step the state's indexes must also be those a reload rebuilds.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::chain::ChainState;
use common::chain::*;
use common::repair::*;

/// BLAKE3 of every step's line over seeds 0..40 (80 steps each).
const KNOWN: &str = "14557fe39ed90c9ad7f35a63f5ddfb2d9ed89b2398dd0490f99544098c8e380f";

/// What the state owes whom, as primitive numbers.
fn owed(s: &ChainState) -> Vec<u8> {
    type Commitment = (
        u64,
        u64,
        u64,
        bool,
        u64,
        u64,
        Vec<(u32, u64, bool)>,
        Vec<(u32, u64)>,
    );
    let accounts: Vec<(u64, u64)> = (0u8..20)
        .map(|i| {
            let a = s.account(&addr(i));
            (a.balance, a.nonce)
        })
        .collect();
    let nodes: Vec<_> = (0u8..20)
        .filter_map(|n| s.node(&addr(n)))
        .map(|n| {
            let p = &n.proofs;
            (
                n.earned,
                n.stake,
                n.slashed,
                n.used,
                n.active_deals,
                p.health.as_str(),
                p.accepted,
                p.missed,
            )
        })
        .collect();
    let deals: Vec<_> = s
        .deals()
        .map(|(id, d)| {
            let commitments: Vec<Commitment> = d
                .commitments
                .iter()
                .map(|c| {
                    (
                        c.paid,
                        c.proofs_accepted,
                        c.proofs_missed,
                        c.orphaned,
                        c.slashed,
                        c.since,
                        c.lost.iter().map(|l| (l.leaf, l.size, l.found)).collect(),
                        c.moved.clone(),
                    )
                })
                .collect();
            let repair = d
                .repair
                .as_ref()
                .map(|r| (r.moved.len(), r.pending.len(), r.done, r.failed, r.paid));
            (id.0, d.escrow, d.withheld, d.end_epoch, commitments, repair)
        })
        .collect();
    let held = u64::try_from(s.held()).unwrap();
    postcard::to_stdvec(&(held, s.repair_pool(), accounts, nodes, deals)).unwrap()
}

#[test]
fn settlement_pays_what_period_by_period_settlement_paid() {
    let mut all = blake3::Hasher::new();
    for seed in 0u64..40 {
        // xorshift64: the same steps on every machine.
        let mut r = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let mut net = repairable();
        join_node_14(&mut net.s);
        for i in 0..80 {
            let v = next();
            let (kind, x) = ((v % 5) as u8, (v >> 8) as u8);
            history_step(&mut net, kind, x);
            assert_eq!(
                net.s.held(),
                net.s.expected_supply(),
                "seed {seed} step {i}"
            );
            assert!(net.s.indexes_consistent(), "seed {seed} step {i}");
            all.update(&seed.to_le_bytes());
            all.update(&(i as u64).to_le_bytes());
            all.update(&net.s.height().to_le_bytes());
            all.update(&owed(&net.s));
        }
    }
    let got = all.finalize().to_hex().to_string();
    assert_eq!(got, KNOWN, "what settlement pays changed");
}
