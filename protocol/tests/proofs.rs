//! Storage proofs on the chain: nodes prove every period and are paid exactly
//! what the rules say; forged, replayed, early, late and foreign proofs are
//! refused, each with its reason; lost data fails, makes a node faulty, then
//! disqualifies and slashes it; declared loss is cheaper; closing a deal
//! refunds what was not earned; sampling is weighted by bytes.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::chain::{merkle, ChainState, DealId, LostLeaf, Rejection, SignedTx, TxBody};
use cairn_protocol::proofs::accounting::Health;
use cairn_protocol::proofs::{challenge, Answer, ProofError};
use cairn_protocol::ContentId;
use common::chain::*;

const SIZES: [usize; 3] = [5000, 3000, 1024];
const NODES: [u8; 3] = [10, 11, 12];

fn read_all(id: &ContentId) -> Option<Vec<u8>> {
    read_shard(&NODES, &SIZES, id)
}

/// A state with nodes 10..=13 and one deal of user 1 over `NODES` for
/// periods 1..4 at `price`; returns it and the deal's id.
fn with_deal(price: u64) -> (ChainState, DealId) {
    let mut s = fresh();
    let nonce = s.account(&addr(1)).nonce;
    let terms = deal_terms_sized(&s, 1, &NODES, price, (1, 4), &SIZES);
    s.apply_tx(&tx(&s, 1, 10, TxBody::OpenDeal(terms))).unwrap();
    (s, DealId::new(&addr(1), nonce))
}

/// Applies block `height` with the proofs of `provers` whose windows allow
/// it (each node proves once per period).
fn step(s: &mut ChainState, provers: &[u8], read: &dyn Fn(u8, &ContentId) -> Option<Vec<u8>>) {
    let height = s.height() + 1;
    let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
    // Proofs are built on the state before the block, like a node would,
    // and included in the block once their window is open.
    let txs: Vec<SignedTx> = provers
        .iter()
        .filter_map(|&n| {
            let (w, _) = s.window_seed(&addr(n))?;
            let proven = s.node(&addr(n))?.proven.map(|p| p.0) == Some(w.period);
            (!proven && w.accepts(height))
                .then(|| proof_now(s, n, &SIZES, |id| read(n, id)))
                .flatten()
        })
        .collect();
    let out = s.apply_block(height, beacon, &txs).unwrap();
    for r in &out.results {
        assert_eq!(r, &Ok(()), "a proof was refused at height {height}");
    }
    assert_eq!(s.held(), s.expected_supply());
}

fn run_until(
    s: &mut ChainState,
    height: u64,
    provers: &[u8],
    read: &dyn Fn(u8, &ContentId) -> Option<Vec<u8>>,
) {
    while s.height() < height {
        step(s, provers, read);
    }
}

#[test]
fn every_node_proves_every_period_and_is_paid_exactly_its_share() {
    let (mut s, id) = with_deal(900);
    let owner = s.account(&addr(1)).balance;
    let before: Vec<u64> = NODES.iter().map(|&n| s.account(&addr(n)).balance).collect();
    // Periods are 5 blocks; the deal pays periods 1, 2 and 3; block 20
    // settles period 3 and ends it.
    run_until(&mut s, 20, &NODES, &|_, id| read_all(id));
    assert!(s.deal(&id).is_none(), "the deal ended");
    let size: u64 = SIZES.iter().sum::<usize>() as u64 * 3;
    let per_node = 900 * (size / 3) / size; // 300 a period
    for (i, &n) in NODES.iter().enumerate() {
        let record = s.node(&addr(n)).unwrap();
        assert_eq!(record.proofs.accepted, 3, "node {n}");
        assert_eq!(record.proofs.missed, 0);
        assert_eq!(record.earned, 3 * per_node);
        // Three proofs at a fee of 10 each.
        assert_eq!(
            s.account(&addr(n)).balance,
            before[i] + 3 * per_node - 30,
            "node {n}"
        );
    }
    // 2700 of escrow, all earned: nothing comes back.
    assert_eq!(s.account(&addr(1)).balance, owner);
}

#[test]
fn forged_replayed_foreign_early_and_late_proofs_are_refused() {
    let (mut s, _) = with_deal(900);
    run_until(&mut s, 5, &[], &|_, _| None);
    // Wait for node 10's window of period 1.
    while s.window_seed(&addr(10)).is_none() {
        step(&mut s, &[], &|_, _| None);
    }
    let (w, _) = s.window_seed(&addr(10)).unwrap();
    // A proof computed for the state at the window's open block is early
    // in that block itself.
    let early = proof_now(&s, 10, &SIZES, read_all).unwrap();
    if s.height() == w.open {
        assert_eq!(
            s.clone().apply_tx(&early),
            Err(Rejection::ProofEarly {
                open: w.open,
                height: w.open
            })
        );
    }
    // One block later the window accepts it.
    s.apply_block(s.height() + 1, [1; 32], &[]).unwrap();
    let good = proof_now(&s, 10, &SIZES, read_all).unwrap();
    let TxBody::ProveStorage(proof) = &good.tx.body else {
        unreachable!()
    };
    let root = s.root();
    let resign = |s: &ChainState, node: u8, body| tx(s, node, 10, body);

    let mut wrong_chunk = proof.clone();
    if let Answer::Chunk { data, .. } = &mut wrong_chunk.samples[3].answer {
        data[0] ^= 1;
    }
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(wrong_chunk))),
        Err(Rejection::BadProof(ProofError::BadChunk { sample: 3 }))
    );
    let mut wrong_path = proof.clone();
    wrong_path.samples[5].leaf_path[0].bytes += 1;
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(wrong_path))),
        Err(Rejection::BadProof(ProofError::BadLeafPath { sample: 5 }))
    );
    let mut other_leaf = proof.clone();
    let first = &other_leaf.samples[0];
    let leaf = (first.leaf + 1) % 3;
    let held = held_shards(10, &SIZES);
    other_leaf.samples[0].leaf = leaf;
    other_leaf.samples[0].shard = held[leaf as usize].0;
    other_leaf.samples[0].size = held[leaf as usize].1;
    other_leaf.samples[0].leaf_path = merkle::prove(&held, leaf as usize).unwrap();
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(other_leaf))),
        Err(Rejection::BadProof(ProofError::WrongLeaf { sample: 0 }))
    );
    let mut short = proof.clone();
    short.samples.pop();
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(short))),
        Err(Rejection::BadProof(ProofError::SampleCount {
            expected: 16,
            got: 15
        }))
    );
    let mut wrong_period = proof.clone();
    wrong_period.period += 1;
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(wrong_period))),
        Err(Rejection::ProofWrongPeriod {
            expected: w.period,
            got: w.period + 1
        })
    );
    // Node 11 submits node 10's proof as its own.
    assert_eq!(
        s.apply_tx(&resign(&s, 11, TxBody::ProveStorage(proof.clone()))),
        Err(Rejection::ProofForOtherNode {
            named: addr(10),
            signer: addr(11)
        })
    );
    // ...or relabels it: the samples are drawn for node 10, not for 11.
    let mut relabelled = proof.clone();
    relabelled.node = addr(11);
    assert!(matches!(
        s.apply_tx(&resign(&s, 11, TxBody::ProveStorage(relabelled))),
        Err(Rejection::ProofEarly { .. } | Rejection::ProofLate { .. } | Rejection::BadProof(_))
    ));
    assert_eq!(s.root(), root, "refused proofs changed the state");

    // The real one is accepted once; its replay and a re-signed copy are not.
    s.apply_tx(&good).unwrap();
    assert!(matches!(s.apply_tx(&good), Err(Rejection::BadNonce { .. })));
    assert_eq!(
        s.apply_tx(&resign(&s, 10, TxBody::ProveStorage(proof.clone()))),
        Err(Rejection::AlreadyProven { period: w.period })
    );
}

#[test]
fn a_proof_after_its_window_is_late() {
    let (mut s, _) = with_deal(900);
    run_until(&mut s, 5, &[], &|_, _| None);
    let w = challenge::window(s.proof_params(), &addr(12), 1);
    while s.height() < w.open + 1 {
        step(&mut s, &[], &|_, _| None);
    }
    let proof = proof_now(&s, 12, &SIZES, read_all).unwrap();
    while s.height() < w.close {
        step(&mut s, &[], &|_, _| None);
    }
    s.apply_block(s.height() + 1, [9; 32], &[]).unwrap();
    let TxBody::ProveStorage(body) = proof.tx.body else {
        unreachable!()
    };
    let expected = if s.epoch() == 1 {
        Rejection::ProofLate {
            close: w.close,
            height: s.height(),
        }
    } else {
        Rejection::ProofWrongPeriod {
            expected: s.epoch(),
            got: 1,
        }
    };
    assert_eq!(
        s.apply_tx(&tx(&s, 12, 10, TxBody::ProveStorage(body))),
        Err(expected)
    );
}

#[test]
fn a_missed_period_is_not_paid_and_the_node_proves_again_after() {
    let (mut s, id) = with_deal(900);
    run_until(&mut s, 10, &NODES, &|_, id| read_all(id));
    // Node 11 misses period 2 (blocks 10..15), then proves period 3.
    run_until(&mut s, 15, &[10, 12], &|_, id| read_all(id));
    let deal = s.deal(&id).unwrap().clone();
    let c11 = deal
        .commitments
        .iter()
        .find(|c| c.node == addr(11))
        .unwrap();
    assert_eq!((c11.proofs_accepted, c11.proofs_missed), (1, 1));
    assert_eq!(c11.paid, 300);
    assert_eq!(deal.withheld, 300, "the missed pay stays in the deal");
    assert_eq!(s.node(&addr(11)).unwrap().health(), Health::Active);
    let owner = s.account(&addr(1)).balance;
    run_until(&mut s, 20, &NODES, &|_, id| read_all(id));
    assert_eq!(s.node(&addr(11)).unwrap().earned, 600);
    assert_eq!(s.node(&addr(10)).unwrap().earned, 900);
    // The withheld 300 goes back to the owner when the deal ends unrepaired.
    assert_eq!(s.account(&addr(1)).balance, owner + 300);
}

#[test]
fn lost_data_fails_then_faulty_then_disqualified_slashed_and_orphaned() {
    let (mut s, id) = with_deal(900);
    // A longer deal too, so the node is still committed through the misses.
    let nonce = s.account(&addr(2)).nonce;
    let terms = deal_terms_sized(&s, 2, &NODES, 90, (1, 10), &SIZES);
    s.apply_tx(&tx(&s, 2, 10, TxBody::OpenDeal(terms))).unwrap();
    let long = DealId::new(&addr(2), nonce);
    let stake = s.node(&addr(12)).unwrap().stake;
    // Node 12 lost everything: every sample answers "lost", so every proof fails.
    let read = |n: u8, id: &ContentId| if n == 12 { None } else { read_all(id) };
    run_until(&mut s, 10, &NODES, &read);
    let c12 = |s: &ChainState, d: &DealId| {
        s.deal(d)
            .unwrap()
            .commitments
            .iter()
            .find(|c| c.node == addr(12))
            .unwrap()
            .clone()
    };
    assert!(
        !c12(&s, &id).lost.is_empty(),
        "failed samples mark leaves lost"
    );
    assert!(c12(&s, &id).lost.iter().all(|l| l.found));
    assert_eq!(c12(&s, &id).paid, 0);
    assert_eq!(s.node(&addr(12)).unwrap().health(), Health::Active);
    run_until(&mut s, 15, &NODES, &read);
    assert_eq!(s.node(&addr(12)).unwrap().health(), Health::Faulty);
    // A faulty node takes no new deals.
    let terms = deal_terms_sized(&s, 3, &[12], 90, (4, 6), &SIZES);
    assert!(matches!(
        s.apply_tx(&tx(&s, 3, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::NodeNotAccepting { .. })
    ));
    run_until(&mut s, 20, &NODES, &read);
    let record = s.node(&addr(12)).unwrap();
    assert_eq!(record.health(), Health::Disqualified);
    assert_eq!((record.stake, record.slashed), (0, stake));
    assert_eq!(s.repair_pool(), stake);
    assert!(c12(&s, &long).orphaned);
    assert_eq!(record.used, 0);
    assert_eq!(record.active_deals, 0);
    assert_eq!(record.earned, 0);
    // A disqualified node cannot prove any more, and is asked nothing.
    assert!(s.committed_space(&addr(12), s.epoch()).is_empty());
    // The honest nodes go on being paid.
    run_until(&mut s, 30, &NODES, &read);
    assert_eq!(s.node(&addr(10)).unwrap().proofs.missed, 0);
    assert_eq!(s.held(), s.expected_supply());
}

#[test]
fn declared_loss_is_not_a_failure_but_is_not_paid() {
    let (mut s, id) = with_deal(900);
    // Node 10 declares its 5000-byte shard lost before period 1 starts.
    let held = held_shards(10, &SIZES);
    let declare = |leaf: u32| LostLeaf {
        deal: id,
        leaf,
        shard: held[leaf as usize].0,
        size: held[leaf as usize].1,
        path: merkle::prove(&held, leaf as usize).unwrap(),
    };
    // Hostile declarations are refused.
    let mut wrong = declare(0);
    wrong.size += 1;
    assert!(matches!(
        s.apply_tx(&tx(&s, 10, 10, TxBody::DeclareLost(vec![wrong]))),
        Err(Rejection::BadLostLeaf { index: 0, .. })
    ));
    assert!(matches!(
        s.apply_tx(&tx(&s, 13, 10, TxBody::DeclareLost(vec![declare(0)]))),
        Err(Rejection::BadLostLeaf { .. })
    ));
    assert!(matches!(
        s.apply_tx(&tx(
            &s,
            10,
            10,
            TxBody::DeclareLost(vec![declare(0), declare(0)])
        )),
        Err(Rejection::BadLostLeaf { index: 1, .. })
    ));
    s.apply_tx(&tx(&s, 10, 10, TxBody::DeclareLost(vec![declare(0)])))
        .unwrap();
    let lost = held[0].0;
    let read = move |n: u8, id: &ContentId| {
        if n == 10 && *id == lost {
            None
        } else {
            read_all(id)
        }
    };
    run_until(&mut s, 20, &NODES, &read);
    let record = s.node(&addr(10)).unwrap();
    assert_eq!(record.proofs.missed, 0, "declared loss is no failure");
    assert_eq!(record.health(), Health::Active);
    // Paid for 4024 of its 9024 bytes: 900 * 4024 / 27072 = 133 a period.
    assert_eq!(record.earned, 3 * (900 * 4024 / 27072));
}

#[test]
fn closing_a_deal_refunds_what_was_not_earned() {
    let (mut s, id) = with_deal(900);
    let owner = s.account(&addr(1)).balance;
    // Not started: the whole escrow comes back.
    let mut early = s.clone();
    early
        .apply_tx(&tx(&early, 1, 10, TxBody::CloseDeal { deal: id }))
        .unwrap();
    assert!(early.deal(&id).is_none());
    assert_eq!(early.account(&addr(1)).balance, owner + 2700 - 10);
    assert_eq!(early.node(&addr(10)).unwrap().used, 0);
    // Only the owner may close it.
    assert_eq!(
        s.apply_tx(&tx(&s, 2, 10, TxBody::CloseDeal { deal: id })),
        Err(Rejection::NotDealOwner)
    );
    assert_eq!(
        s.apply_tx(&tx(
            &s,
            2,
            10,
            TxBody::CloseDeal {
                deal: DealId([7; 32])
            }
        )),
        Err(Rejection::UnknownDeal(DealId([7; 32])))
    );
    // Running (period 1): it keeps period 1's price and ends with it.
    run_until(&mut s, 6, &NODES, &|_, id| read_all(id));
    s.apply_tx(&tx(&s, 1, 10, TxBody::CloseDeal { deal: id }))
        .unwrap();
    assert_eq!(s.account(&addr(1)).balance, owner + 1800 - 10);
    run_until(&mut s, 12, &NODES, &|_, id| read_all(id));
    assert!(s.deal(&id).is_none());
    for n in NODES {
        assert_eq!(s.node(&addr(n)).unwrap().earned, 300, "node {n}");
        assert_eq!(s.node(&addr(n)).unwrap().used, 0);
    }
    assert_eq!(s.held(), s.expected_supply());
}

#[test]
fn deal_terms_and_stake_are_checked() {
    let mut s = fresh();
    let open = |s: &mut ChainState, price, epochs| {
        let terms = deal_terms_sized(s, 1, &[10], price, epochs, &SIZES);
        s.apply_tx(&tx(s, 1, 10, TxBody::OpenDeal(terms)))
    };
    for (price, epochs) in [(0, (1, 3)), (5, (0, 3)), (5, (6, 8))] {
        assert!(
            matches!(open(&mut s, price, epochs), Err(Rejection::InvalidDeal(_))),
            "price {price} epochs {epochs:?}"
        );
    }
    // Stake must cover the bytes: node 13 locked 5000 = 1000 + 4 GiB.
    let mut big = deal_terms_sized(&s, 2, &[13], 5, (1, 3), &SIZES);
    big.commitments[0].bytes = 5 << 30;
    big.size = 5 << 30;
    s.apply_tx(&tx(
        &s,
        13,
        10,
        TxBody::UpdateNode {
            addresses: vec![],
            capacity: 8 << 30,
        },
    ))
    .unwrap();
    let signed = |s: &ChainState, mut t: cairn_protocol::chain::DealTerms| {
        use ed25519_dalek::Signer;
        let nonce = s.account(&addr(2)).nonce;
        let c = t.commitments[0].clone();
        t.commitments[0].receipt = cairn_protocol::chain::Sig(
            key(13)
                .sign(&cairn_protocol::chain::receipt_message(
                    &s.genesis_hash(),
                    &addr(2),
                    nonce,
                    &t,
                    &c,
                ))
                .to_bytes(),
        );
        t
    };
    let t = signed(&s, big.clone());
    assert_eq!(
        s.apply_tx(&tx(&s, 2, 10, TxBody::OpenDeal(t))),
        Err(Rejection::StakeBelowCommitted {
            node: addr(13),
            need: 6_000,
            have: 5_000
        })
    );
    assert_eq!(
        s.apply_tx(&tx(&s, 13, 10, TxBody::AddStake { amount: 0 })),
        Err(Rejection::ZeroAmount)
    );
    s.apply_tx(&tx(&s, 13, 10, TxBody::AddStake { amount: 1_000 }))
        .unwrap();
    let t = signed(&s, big);
    s.apply_tx(&tx(&s, 2, 10, TxBody::OpenDeal(t))).unwrap();
    assert_eq!(s.held(), s.expected_supply());
}

/// Over many seeds each shard is sampled in proportion to its bytes: a
/// chi-square test with 4 degrees of freedom (critical value 18.47 at
/// p = 0.001; the seeds are fixed, so the result is too).
#[test]
fn samples_are_weighted_by_bytes() {
    let sizes = [1024u64, 4096, 10_000, 300, 50_000];
    let total: u64 = sizes.iter().sum();
    let mut counts = [0u64; 5];
    let draws = 40_000u32;
    for d in 0..draws {
        let seed = *blake3::hash(&d.to_le_bytes()).as_bytes();
        let o = challenge::sample_offset(&seed, &addr(10), 1, 0, &[0; 32], total);
        counts[challenge::locate(sizes, o).unwrap().0] += 1;
    }
    let chi: f64 = sizes
        .iter()
        .zip(counts)
        .map(|(&size, got)| {
            let expected = f64::from(draws) * size as f64 / total as f64;
            (got as f64 - expected).powi(2) / expected
        })
        .sum();
    assert!(chi < 18.47, "chi-square {chi}: counts {counts:?}");
}

/// The same blocks give the same state; tokens are conserved through
/// proofs, misses, slashing and refunds.
#[test]
fn proving_is_deterministic() {
    let run = || {
        let (mut s, _) = with_deal(900);
        let read = |n: u8, id: &ContentId| if n == 11 { None } else { read_all(id) };
        run_until(&mut s, 25, &NODES, &read);
        s.root()
    };
    assert_eq!(run(), run());
}
