//! Repair on the chain: a disqualified node's shards are moved to a new
//! holder by a stranger's claim, and the repairer is paid exactly the
//! bounty once the new holder proved them; racing claims, claims for shards
//! that are not lost, with ids that are not the repair data's, with forged
//! receipts or holders already in the deal are refused, each with its
//! reason, and not paid; a new holder that never proves earns no bounty.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::chain::{
    merkle, DealId, LostLeaf, MovedRecord, Rejection, RepairClaim, RepairRef, Sig, TxBody,
};
use cairn_protocol::proofs::accounting::Health as NodeHealth;
use cairn_protocol::repair::{assess, choose_holders, placement_seed, Health};
use cairn_protocol::ContentId;
use common::chain::*;
use common::repair::*;
use ed25519_dalek::Signer;

#[test]
fn a_disqualified_nodes_shards_are_repaired_and_the_repairer_paid_after_the_proof() {
    let mut net = repairable();
    let owner = net.s.account(&addr(1)).balance;
    lose_node_12(&mut net);
    let d = net.s.deal(&net.deal).unwrap();
    // Three missed periods withheld; the whole stake set aside for repair.
    assert_eq!(d.withheld, 3 * SHARE);
    assert_eq!(d.commitments[2].slashed, 5_000);
    assert_eq!(net.s.repair_pool(), 5_000);

    // Both segments are at the threshold with shard 2 lost.
    let statuses = assess(&net.s, &net.deal, &net.data, &policy()).unwrap();
    for st in &statuses {
        assert_eq!(st.health, Health::NeedsRepair);
        assert_eq!((st.healthy, st.available, st.lost()), (2, 2, vec![2]));
        assert!(st.needs_repair(2));
    }
    // The only active node outside the deal is chosen.
    let holders = choose_holders(
        &net.s,
        &net.deal,
        &placement_seed(&net.deal, 0),
        &[3048],
        |_, _| 0,
    )
    .unwrap();
    assert_eq!(holders, vec![addr(13)]);
    let view = net.s.repair_view(&net.deal).unwrap();
    let seed = placement_seed(&net.deal, 0);
    assert_eq!(
        choose_holders(&view, &net.deal, &seed, &[3048], |_, _| 0).unwrap(),
        holders
    );
    assert_eq!(
        assess(&view, &net.deal, &net.data, &policy()).unwrap(),
        statuses
    );

    let claim = claim_from(&net, 2, &[13]);
    assert_eq!(claim.leaves_of(0), held_shards(12, &SIZES));
    let before = net.s.account(&addr(2)).balance;
    let results = {
        let t = claim_tx(&net.s, 2, claim);
        step(&mut net.s, &[10, 11], vec![t])
    };
    assert_eq!(results, vec![Ok(())]);
    let d = net.s.deal(&net.deal).unwrap();
    let r = d.repair.as_ref().unwrap();
    assert_eq!(d.commitments.len(), 4);
    assert_eq!(
        (d.commitments[3].node, d.commitments[3].since),
        (addr(13), 5)
    );
    assert_eq!(
        r.moved,
        vec![
            MovedRecord {
                segment: 0,
                index: 2,
                commitment: 3,
                leaf: 0
            },
            MovedRecord {
                segment: 1,
                index: 2,
                commitment: 3,
                leaf: 1
            },
        ]
    );
    assert_eq!(r.pending.len(), 1);
    assert_eq!(
        (r.pending[0].from_deal, r.pending[0].from_pool),
        (1_200, 5_000)
    );
    assert_eq!((d.withheld, net.s.repair_pool()), (0, 0));
    // Not paid before the new holder's period settles.
    run_until(&mut net.s, 29, &[10, 11, 13]);
    assert_eq!(net.s.account(&addr(2)).balance, before - 10);
    step(&mut net.s, &[10, 11, 13], vec![]);
    assert_eq!(net.s.account(&addr(2)).balance, before - 10 + 6_200);
    let r = net.s.deal(&net.deal).unwrap().repair.clone().unwrap();
    assert_eq!(
        (r.done, r.failed, r.paid, r.pending.len()),
        (1, 0, 6_200, 0)
    );
    assert_eq!(net.s.node(&addr(13)).unwrap().earned, SHARE);
    // A repairer's view of the state (what a validator serves) answers as
    // the whole state does.
    let view = net.s.repair_view(&net.deal).unwrap();
    assert_eq!(view.deals().count(), 1);
    assert_eq!(
        assess(&view, &net.deal, &net.data, &policy()).unwrap(),
        assess(&net.s, &net.deal, &net.data, &policy()).unwrap()
    );
    assert!(net.s.repair_view(&DealId([7; 32])).is_none());
    // Every segment is healthy again, with the same ids.
    for st in assess(&net.s, &net.deal, &net.data, &policy()).unwrap() {
        assert_eq!((st.health, st.healthy), (Health::Healthy, 3));
    }
    // To the end: 13 is paid periods 5..=11; period 4 (no holder) and
    // nothing else comes back to the owner.
    run_until(&mut net.s, 60, &[10, 11, 13]);
    assert!(net.s.deal(&net.deal).is_none());
    assert_eq!(net.s.node(&addr(13)).unwrap().earned, 7 * SHARE);
    assert_eq!(net.s.node(&addr(10)).unwrap().earned, 11 * SHARE);
    let escrow = 11 * PRICE;
    let refund = escrow - 2 * 11 * SHARE - 7 * SHARE - 1_200;
    assert_eq!(refund, SHARE);
    assert_eq!(net.s.account(&addr(1)).balance, owner + refund);
}

#[test]
fn racing_claims_one_wins_and_stolen_receipts_are_refused() {
    let mut net = repairable();
    lose_node_12(&mut net);
    let first = claim_from(&net, 2, &[13]);
    let second = claim_from(&net, 3, &[13]);
    // Repairer 3 copying repairer 2's claim (and so its receipts).
    let stolen = claim_tx(&net.s, 3, first.clone());
    assert_eq!(
        net.s.clone().apply_tx(&stolen),
        Err(Rejection::BadRepairReceipt(addr(13)))
    );
    let (b2, b3) = (
        net.s.account(&addr(2)).balance,
        net.s.account(&addr(3)).balance,
    );
    let txs = vec![claim_tx(&net.s, 2, first), claim_tx(&net.s, 3, second)];
    let results = step(&mut net.s, &[10, 11], txs);
    assert_eq!(
        results,
        vec![
            Ok(()),
            Err(Rejection::AlreadyRepaired {
                segment: 0,
                index: 2
            })
        ]
    );
    run_until(&mut net.s, 30, &[10, 11, 13]);
    assert_eq!(net.s.account(&addr(2)).balance, b2 - 10 + 6_200);
    assert_eq!(net.s.account(&addr(3)).balance, b3);
    // Once moved, the shard cannot be claimed again from its old holder.
    let again = claim_tx(
        &net.s,
        3,
        claim_from_columns(&net, 3, &[vec![(0, 2)]], &[13]),
    );
    assert_eq!(
        net.s.clone().apply_tx(&again),
        Err(Rejection::ShardNotLost {
            segment: 0,
            index: 2
        })
    );
}

#[test]
fn bad_claims_are_refused_each_with_its_reason_and_not_paid() {
    let mut net = repairable();
    // Node 11 admits segment 0's shard 1 lost: segment 0 has two lost shards.
    let shards = held_shards(11, &SIZES);
    let lost = LostLeaf {
        deal: net.deal,
        leaf: 0,
        shard: shards[0].0,
        size: shards[0].1,
        path: merkle::prove(&shards, 0).unwrap(),
    };
    net.s
        .apply_tx(&tx(&net.s, 11, 10, TxBody::DeclareLost(vec![lost])))
        .unwrap();
    lose_node_12(&mut net);
    let refused = |net: &Net, claim: RepairClaim| {
        let mut s = net.s.clone();
        let r = s.apply_tx(&claim_tx(&net.s, 2, claim));
        assert_eq!(s.root(), net.s.root(), "a refused claim changed the state");
        r
    };

    // A shard that is not lost (node 10 still proves it).
    let c = claim_from_columns(&net, 2, &[vec![(0, 0)]], &[13]);
    assert_eq!(
        refused(&net, c),
        Err(Rejection::ShardNotLost {
            segment: 0,
            index: 0
        })
    );
    // Ids or sizes that are not the repair data's (wrong bytes uploaded).
    let good = claim_from_columns(&net, 2, &[vec![(0, 2)]], &[13]);
    let mut c = good.clone();
    c.shards[0].id = ContentId::of(b"not the shard");
    sign_receipts(&mut c, 2);
    assert_eq!(
        refused(&net, c),
        Err(Rejection::RepairPathMismatch { shard: 0 })
    );
    let mut c = good.clone();
    c.shards[0].size += 1;
    sign_receipts(&mut c, 2);
    assert_eq!(
        refused(&net, c),
        Err(Rejection::RepairPathMismatch { shard: 0 })
    );
    // Moved from a commitment that never held it.
    let mut c = good.clone();
    c.shards[0].from = 0;
    assert_eq!(
        refused(&net, c),
        Err(Rejection::RepairSourceMismatch { shard: 0 })
    );
    // A forged receipt: signed by another key, or over another repairer.
    let mut c = good.clone();
    let other = claim_from_columns(&net, 3, &[vec![(0, 2)]], &[13]);
    c.holders[0].receipt = other.holders[0].receipt.clone();
    assert_eq!(refused(&net, c), Err(Rejection::BadRepairReceipt(addr(13))));
    let mut c = good.clone();
    let rc = c.commitment(0).unwrap();
    let msg =
        cairn_protocol::chain::repair_receipt_message(&genesis().hash(), &addr(2), &net.deal, &rc);
    c.holders[0].receipt = Sig(key(12).sign(&msg).to_bytes());
    assert_eq!(refused(&net, c), Err(Rejection::BadRepairReceipt(addr(13))));
    // A holder already in the deal, one not registered, one twice in a segment.
    let c = claim_from_columns(&net, 2, &[vec![(0, 2)]], &[10]);
    assert_eq!(refused(&net, c), Err(Rejection::HolderInDeal(addr(10))));
    let mut c = good.clone();
    c.holders[0].node = addr(40);
    assert_eq!(refused(&net, c), Err(Rejection::UnknownNode(addr(40))));
    let c = claim_from_columns(&net, 2, &[vec![(0, 1), (0, 2)]], &[13]);
    assert_eq!(
        refused(&net, c),
        Err(Rejection::HolderTwiceInSegment {
            node: addr(13),
            segment: 0
        })
    );
    // The same shard twice, a shard for a holder the claim does not name,
    // nothing at all.
    let mut c = good.clone();
    c.shards.push(c.shards[0].clone());
    assert!(matches!(
        refused(&net, c),
        Err(Rejection::BadRepairClaim(_))
    ));
    let mut c = good.clone();
    c.shards[0].to = 1;
    assert!(matches!(
        refused(&net, c),
        Err(Rejection::BadRepairClaim(_))
    ));
    let mut c = good.clone();
    c.shards.clear();
    assert!(matches!(refused(&net, c), Err(Rejection::Malformed(_))));
    // Unknown deal; a deal without repair data.
    let mut c = good.clone();
    c.deal = DealId([7; 32]);
    assert_eq!(
        refused(&net, c),
        Err(Rejection::UnknownDeal(DealId([7; 32])))
    );
    let nonce = net.s.account(&addr(3)).nonce;
    let terms = deal_terms_sized(&net.s, 3, &[10, 11], 10, (5, 9), &SIZES);
    net.s
        .apply_tx(&tx(&net.s, 3, 10, TxBody::OpenDeal(terms)))
        .unwrap();
    let bare = DealId::new(&addr(3), nonce);
    let mut c = good.clone();
    c.deal = bare;
    assert_eq!(refused(&net, c), Err(Rejection::NoRepairData(bare)));
    // Repair data: only the owner, only once, only well-formed.
    let reference = net.data.reference();
    let set = |signer: u8, deal: DealId, repair: RepairRef| {
        let body = TxBody::SetRepairData { deal, repair };
        net.s.clone().apply_tx(&tx(&net.s, signer, 10, body))
    };
    assert_eq!(set(2, bare, reference), Err(Rejection::NotDealOwner));
    assert_eq!(
        set(1, net.deal, reference),
        Err(Rejection::RepairDataSet(net.deal))
    );
    assert!(matches!(
        set(3, bare, RepairRef { m: 0, ..reference }),
        Err(Rejection::BadRepairData(_))
    ));
    assert!(matches!(
        set(3, bare, reference),
        Err(Rejection::BadRepairData(_))
    ));
    // Nothing was paid, nothing changed.
    assert_eq!(net.s.account(&addr(2)).balance, 1_000_000);
    // Segment 0 has one shard left: beyond repair. Segment 1's honest claim
    // still goes through.
    let statuses = assess(&net.s, &net.deal, &net.data, &policy()).unwrap();
    assert_eq!(
        (statuses[0].health, statuses[0].available),
        (Health::Lost, 1)
    );
    assert!(!statuses[0].needs_repair(2));
    assert!(statuses[1].needs_repair(2));
    let claim = claim_from(&net, 2, &[13]);
    assert_eq!(claim.shards.len(), 1);
    let results = {
        let t = claim_tx(&net.s, 2, claim);
        step(&mut net.s, &[10, 11], vec![t])
    };
    assert_eq!(results, vec![Ok(())]);
}

#[test]
fn a_new_holder_that_never_proves_earns_the_repairer_nothing() {
    let mut net = repairable();
    lose_node_12(&mut net);
    let before = net.s.account(&addr(2)).balance;
    let claim = claim_from(&net, 2, &[13]);
    assert_eq!(
        {
            let t = claim_tx(&net.s, 2, claim);
            step(&mut net.s, &[10, 11], vec![t])
        },
        vec![Ok(())]
    );
    // 13 misses period 5: the bounty goes back where it came from (and 13's
    // unpaid share of period 5 is withheld on top).
    run_until(&mut net.s, 30, &[10, 11]);
    assert_eq!(net.s.account(&addr(2)).balance, before - 10);
    let d = net.s.deal(&net.deal).unwrap();
    let r = d.repair.as_ref().unwrap();
    assert_eq!((r.done, r.failed, r.paid, r.pending.len()), (0, 1, 0, 0));
    assert_eq!(d.withheld, 1_200 + SHARE);
    assert_eq!(net.s.repair_pool(), 5_000);
    // 13 is disqualified in turn (periods 5–7); its shards are lost again
    // and the next repair moves them on from it, paid from both slashes.
    run_until(&mut net.s, 40, &[10, 11]);
    assert_eq!(
        net.s.node(&addr(13)).unwrap().health(),
        NodeHealth::Disqualified
    );
    join_node_14(&mut net.s);
    let claim = claim_from(&net, 3, &[14]);
    assert!(claim.shards.iter().all(|s| s.from == 3));
    let b3 = net.s.account(&addr(3)).balance;
    assert_eq!(
        {
            let t = claim_tx(&net.s, 3, claim);
            step(&mut net.s, &[10, 11], vec![t])
        },
        vec![Ok(())]
    );
    let pending = net
        .s
        .deal(&net.deal)
        .unwrap()
        .repair
        .clone()
        .unwrap()
        .pending;
    assert_eq!(
        (pending[0].from_deal, pending[0].from_pool),
        (1_200 + 3 * SHARE, 10_000)
    );
    run_until(&mut net.s, 50, &[10, 11, 14]);
    assert_eq!(net.s.account(&addr(3)).balance, b3 - 10 + 2_400 + 10_000);
}

#[test]
fn a_declared_loss_is_repaired_from_the_deals_withheld_pay_alone() {
    let mut net = repairable();
    let shards = held_shards(11, &SIZES);
    let lost = LostLeaf {
        deal: net.deal,
        leaf: 1,
        shard: shards[1].0,
        size: shards[1].1,
        path: merkle::prove(&shards, 1).unwrap(),
    };
    net.s
        .apply_tx(&tx(&net.s, 11, 10, TxBody::DeclareLost(vec![lost])))
        .unwrap();
    run_until(&mut net.s, 15, &[10, 11, 12]);
    // Node 11 is paid for its 2048 live bytes: 268 of 400 a period.
    let withheld = net.s.deal(&net.deal).unwrap().withheld;
    assert_eq!(withheld, 2 * (SHARE - 268));
    let st = &assess(&net.s, &net.deal, &net.data, &policy()).unwrap()[1];
    assert_eq!(st.lost(), vec![1]);
    let claim = claim_from(&net, 2, &[13]);
    assert_eq!(claim.shards.len(), 1);
    let before = net.s.account(&addr(2)).balance;
    assert_eq!(
        {
            let t = claim_tx(&net.s, 2, claim);
            step(&mut net.s, &[10, 11, 12], vec![t])
        },
        vec![Ok(())]
    );
    let pending = net
        .s
        .deal(&net.deal)
        .unwrap()
        .repair
        .clone()
        .unwrap()
        .pending;
    assert_eq!((pending[0].from_deal, pending[0].from_pool), (withheld, 0));
    // The moved bytes are no longer withheld from node 11's share.
    run_until(&mut net.s, 25, &[10, 11, 12, 13]);
    assert_eq!(net.s.deal(&net.deal).unwrap().withheld, 0);
    assert_eq!(net.s.account(&addr(2)).balance, before - 10 + withheld);
}

#[test]
fn a_node_whose_found_losses_were_repaired_away_stops_missing() {
    let mut net = repairable();
    // Node 11 lost everything: its period-1 proof answers "lost" and the
    // chain finds both its shards lost.
    while net.s.height() < 10 {
        let height = net.s.height() + 1;
        let mut txs = Vec::new();
        for n in NODES {
            let Some((w, _)) = net.s.window_seed(&addr(n)) else {
                continue;
            };
            if w.accepts(height) && net.s.node(&addr(n)).unwrap().proven.is_none() {
                let read = |id: &ContentId| if n == 11 { None } else { read_all(id) };
                txs.extend(proof_any(&net.s, n, K, &SIZES, read));
            }
        }
        let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
        let out = net.s.apply_block(height, beacon, &txs).unwrap();
        assert!(out.results.iter().all(Result::is_ok));
    }
    let c = &net.s.deal(&net.deal).unwrap().commitments[1];
    assert_eq!(c.lost.iter().filter(|l| l.found).count(), 2);
    assert_eq!(net.s.node(&addr(11)).unwrap().proofs.missed, 1);
    let claim = claim_from(&net, 2, &[13]);
    assert!(claim.shards.iter().all(|s| s.from == 1));
    let t = claim_tx(&net.s, 2, claim);
    assert_eq!(step(&mut net.s, &[], vec![t]), vec![Ok(())]);
    // Nothing left to prove and nothing unrepaired: skipped, not missed.
    run_until(&mut net.s, 30, &[10, 12, 13]);
    let n11 = net.s.node(&addr(11)).unwrap();
    assert_eq!((n11.proofs.missed, n11.health()), (1, NodeHealth::Active));
    assert_eq!(net.s.node(&addr(13)).unwrap().proofs.accepted, 3);
}
