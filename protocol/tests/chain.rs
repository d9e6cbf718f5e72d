//! The chain's state machine: every rejection reason, replay protection,
//! determinism and conservation of tokens under random transactions, and
//! hostile bytes that never panic it.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::chain::{
    merkle, peer_id_of, receipt_message, ChainState, DealId, Genesis, LostLeaf, Rejection,
    RepairClaim, Sig, SignedTx, StateMap, Transaction, TxBody,
};
use cairn_protocol::repair::{
    assess, choose_holders, columns, placement_seed, prepare, RepairData, RepairPolicy,
};
use cairn_protocol::{CodingParams, ContentId};
use common::chain::*;
use ed25519_dalek::Signer;
use proptest::prelude::*;

#[test]
fn transfers_move_funds_and_burn_fees() {
    let mut s = fresh();
    let before = s.account(&addr(2)).balance;
    s.apply_tx(&tx(
        &s,
        1,
        10,
        TxBody::Transfer {
            to: addr(2),
            amount: 500,
        },
    ))
    .unwrap();
    assert_eq!(s.account(&addr(1)).balance, 1_000_000 - 510);
    assert_eq!(s.account(&addr(1)).nonce, 1);
    assert_eq!(s.account(&addr(2)).balance, before + 500);
    // To a brand-new account, and to oneself.
    s.apply_tx(&tx(
        &s,
        1,
        10,
        TxBody::Transfer {
            to: addr(50),
            amount: 7,
        },
    ))
    .unwrap();
    assert_eq!(s.account(&addr(50)).balance, 7);
    s.apply_tx(&tx(
        &s,
        1,
        10,
        TxBody::Transfer {
            to: addr(1),
            amount: 100,
        },
    ))
    .unwrap();
    assert_eq!(s.account(&addr(1)).balance, 1_000_000 - 510 - 17 - 10);
    assert_eq!(s.held(), s.expected_supply());
}

/// A block checks its signatures in one batch; a forged one among good ones
/// is refused alone, with the reason a single check gives, and a block
/// applied as a whole ends where the same transactions applied one by one end.
#[test]
fn a_block_batch_refuses_exactly_the_forged_signatures() {
    let mut whole = fresh();
    let mut single = fresh();
    let transfer = |to: u8| TxBody::Transfer {
        to: addr(to),
        amount: 5,
    };
    let good1 = tx(&whole, 1, 10, transfer(2));
    let mut forged = tx(&whole, 2, 10, transfer(3));
    forged.signature = Sig(key(3).sign(&forged.tx.signing_bytes()).to_bytes());
    let good2 = tx(&whole, 3, 10, transfer(1));
    let block = [good1, forged, good2];
    let outcome = whole.apply_block(1, [1; 32], &block).unwrap();
    assert_eq!(
        outcome.results,
        vec![Ok(()), Err(Rejection::BadSignature), Ok(())]
    );
    single.apply_block(1, [1; 32], &[]).unwrap();
    let one_by_one: Vec<_> = block.iter().map(|t| single.apply_tx(t)).collect();
    assert_eq!(one_by_one, outcome.results);
    assert_eq!(single.root(), whole.root());
}

#[test]
fn every_rejection_reason() {
    let mut s = fresh();
    let t = |s: &ChainState, signer: u8, fee: u64, body: TxBody| tx(s, signer, fee, body);
    let transfer = |amount| TxBody::Transfer {
        to: addr(2),
        amount,
    };

    // Bad signature: signed by another key.
    let mut forged = t(&s, 1, 10, transfer(1));
    forged.signature = Sig(key(2).sign(&forged.tx.signing_bytes()).to_bytes());
    assert_eq!(s.apply_tx(&forged), Err(Rejection::BadSignature));
    // Wrong chain: a chain relaunched under the same id has another
    // genesis (here another allocation), so its transactions are refused.
    let relaunched = Genesis {
        min_fee: 11,
        ..genesis()
    };
    assert_eq!(relaunched.chain_id, s.chain_id());
    let other = Transaction {
        genesis: relaunched.hash(),
        signer: addr(1),
        nonce: 0,
        fee: 10,
        body: transfer(1),
    }
    .sign(&key(1));
    assert!(matches!(
        s.apply_tx(&other),
        Err(Rejection::WrongChain { .. })
    ));
    // Replay.
    let once = t(&s, 1, 10, transfer(1));
    s.apply_tx(&once).unwrap();
    assert_eq!(
        s.apply_tx(&once),
        Err(Rejection::BadNonce {
            expected: 1,
            got: 0
        })
    );
    // Everything below is refused until the namespace update.
    let root_before = s.root();
    // Fee below minimum, overdraft, zero amount, overflow.
    assert_eq!(
        s.apply_tx(&t(&s, 1, 9, transfer(1))),
        Err(Rejection::FeeTooLow { min: 10, got: 9 })
    );
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, transfer(2_000_000))),
        Err(Rejection::InsufficientFunds { .. })
    ));
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, transfer(0))),
        Err(Rejection::ZeroAmount)
    );
    assert_eq!(
        s.apply_tx(&t(&s, 1, u64::MAX, transfer(1))),
        Err(Rejection::Overflow)
    );
    // Faucet limits.
    assert!(matches!(
        s.apply_tx(&t(&s, 3, 0, TxBody::Faucet { amount: 60_000 })),
        Err(Rejection::FaucetLimit { .. })
    ));
    // Nodes.
    let reg = TxBody::RegisterNode {
        peer_id: vec![1],
        addresses: vec![],
        capacity: 10,
        stake: 5_000,
    };
    assert_eq!(
        s.apply_tx(&t(&s, 10, 10, reg.clone())),
        Err(Rejection::NodeExists(addr(10)))
    );
    // A key registers its own libp2p identity only: not another node's
    // (here node 10's), not a made-up one.
    for foreign in [peer_id_of(&addr(10)), vec![1]] {
        let reg = TxBody::RegisterNode {
            peer_id: foreign,
            addresses: vec![],
            capacity: 10,
            stake: 5_000,
        };
        assert_eq!(
            s.apply_tx(&t(&s, 1, 10, reg)),
            Err(Rejection::ForeignPeerId)
        );
    }
    let low = TxBody::RegisterNode {
        peer_id: peer_id_of(&addr(1)),
        addresses: vec![],
        capacity: 10,
        stake: 1,
    };
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, low)),
        Err(Rejection::StakeTooLow { .. })
    ));
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, TxBody::DeregisterNode)),
        Err(Rejection::UnknownNode(addr(1)))
    );
    let update = |capacity| TxBody::UpdateNode {
        addresses: vec!["/ip4/127.0.0.1/tcp/4100".into()],
        capacity,
    };
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, update(1 << 30))),
        Err(Rejection::UnknownNode(addr(1)))
    );
    assert!(matches!(
        s.apply_tx(&t(&s, 10, 10, update(0))),
        Err(Rejection::Malformed(_))
    ));
    assert_eq!(
        s.apply_tx(&t(&s, 10, 9, update(1 << 30))),
        Err(Rejection::FeeTooLow { min: 10, got: 9 })
    );
    let bad_addresses = TxBody::UpdateNode {
        addresses: vec!["x".repeat(257)],
        capacity: 1 << 30,
    };
    assert!(matches!(
        s.apply_tx(&t(&s, 10, 10, bad_addresses)),
        Err(Rejection::Malformed(_))
    ));
    let huge_peer = TxBody::RegisterNode {
        peer_id: vec![1; 65],
        addresses: vec![],
        capacity: 10,
        stake: 5_000,
    };
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, huge_peer)),
        Err(Rejection::Malformed(_))
    ));
    // Deals.
    let mut terms = deal_terms(&s, 1, &[10, 11], 100, (1, 10));
    terms.commitments[1].receipt.0[0] ^= 1;
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::BadReceipt(addr(11)))
    );
    let terms = deal_terms(&s, 1, &[10, 20], 100, (1, 10));
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::UnknownNode(addr(20)))
    );
    let terms = deal_terms(&s, 1, &[10, 10], 100, (1, 10));
    assert_eq!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::DuplicateNode(addr(10)))
    );
    let mut terms = deal_terms(&s, 1, &[10], 100, (1, 10));
    terms.size += 1;
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::InvalidDeal(_))
    ));
    let terms = deal_terms(&s, 1, &[10], 100, (5, 5));
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::InvalidDeal(_))
    ));
    let terms = deal_terms(&s, 1, &[10], 1_000_000, (1, 10));
    assert!(matches!(
        s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))),
        Err(Rejection::InsufficientFunds { .. })
    ));
    // A receipt signed for another nonce does not open a deal.
    let mut s2 = s.clone();
    let stale = deal_terms(&s2, 1, &[10], 100, (1, 10));
    s2.apply_tx(&tx(&s2, 1, 10, transfer(1))).unwrap();
    assert_eq!(
        s2.apply_tx(&tx(&s2, 1, 10, TxBody::OpenDeal(stale))),
        Err(Rejection::BadReceipt(addr(10)))
    );
    assert_eq!(
        s.root(),
        root_before,
        "refused transactions changed the state"
    );
    // Namespace versions only go up.
    s.apply_tx(&t(
        &s,
        1,
        10,
        TxBody::SetNamespaceRoot {
            root: [1; 32],
            version: 3,
        },
    ))
    .unwrap();
    assert_eq!(
        s.apply_tx(&t(
            &s,
            1,
            10,
            TxBody::SetNamespaceRoot {
                root: [2; 32],
                version: 3
            }
        )),
        Err(Rejection::StaleNamespace { current: 3, got: 3 })
    );
    // Only the namespace update above changed anything since root_before.
    assert_ne!(s.root(), root_before);
    assert_eq!(s.account(&addr(1)).nonce, 2);
    // A node with deals cannot leave.
    let terms = deal_terms(&s, 1, &[12], 100, (1, 10));
    s.apply_tx(&t(&s, 1, 10, TxBody::OpenDeal(terms))).unwrap();
    assert_eq!(
        s.apply_tx(&t(&s, 12, 10, TxBody::DeregisterNode)),
        Err(Rejection::NodeHasDeals(addr(12)))
    );
    // A node cannot shrink below what it holds in deals (3000 bytes).
    let before = s.root();
    assert_eq!(
        s.apply_tx(&t(&s, 12, 10, update(2999))),
        Err(Rejection::CapacityBelowUsed {
            node: addr(12),
            used: 3000,
            capacity: 2999
        })
    );
    assert_eq!(s.root(), before);
    s.apply_tx(&t(&s, 12, 10, update(3000))).unwrap();
    assert_eq!(s.node(&addr(12)).unwrap().capacity, 3000);
    // Capacity.
    let mut big = deal_terms(&s, 2, &[13], 1, (1, 3));
    big.commitments[0].bytes = 2 << 30;
    big.size = 2 << 30;
    let big = {
        let nonce = s.account(&addr(2)).nonce;
        let c = big.commitments[0].clone();
        big.commitments[0].receipt = Sig(key(13)
            .sign(&receipt_message(
                &s.genesis_hash(),
                &addr(2),
                nonce,
                &big,
                &c,
            ))
            .to_bytes());
        big
    };
    assert!(matches!(
        s.apply_tx(&t(&s, 2, 10, TxBody::OpenDeal(big))),
        Err(Rejection::NodeFull { .. })
    ));
    // Disabled faucet.
    let mut g = genesis();
    g.faucet_max = None;
    let mut closed = ChainState::from_genesis(&g).unwrap();
    assert_eq!(
        closed.apply_tx(&tx(&closed, 1, 0, TxBody::Faucet { amount: 1 })),
        Err(Rejection::FaucetDisabled)
    );
    assert_eq!(s.held(), s.expected_supply());
}

#[test]
fn update_node_changes_addresses_and_capacity_only() {
    let mut s = fresh();
    let before = s.node(&addr(10)).unwrap().clone();
    let balance = s.account(&addr(10)).balance;
    let addresses = vec![
        "/ip4/10.0.0.1/udp/5000/quic-v1".to_string(),
        "/ip4/10.0.0.1/tcp/5000".to_string(),
    ];
    s.apply_tx(&tx(
        &s,
        10,
        10,
        TxBody::UpdateNode {
            addresses: addresses.clone(),
            capacity: 2 << 30,
        },
    ))
    .unwrap();
    let after = s.node(&addr(10)).unwrap();
    assert_eq!(after.addresses, addresses);
    assert_eq!(after.capacity, 2 << 30);
    assert_eq!(after.peer_id, before.peer_id);
    assert_eq!(after.stake, before.stake);
    assert_eq!(after.registered_at, before.registered_at);
    assert_eq!(s.account(&addr(10)).balance, balance - 10);
    assert_eq!(s.account(&addr(10)).nonce, 2);
    assert_eq!(s.held(), s.expected_supply());
    // A node may announce no addresses at all (it is unreachable for now).
    s.apply_tx(&tx(
        &s,
        10,
        10,
        TxBody::UpdateNode {
            addresses: vec![],
            capacity: 1,
        },
    ))
    .unwrap();
    assert!(s.node(&addr(10)).unwrap().addresses.is_empty());
}

/// A random but well-formed transaction from a small cast of keys.
fn arb_tx() -> impl Strategy<Value = (u8, u64, u8, u64)> {
    (
        prop::sample::select(vec![1u8, 2, 3, 10, 11, 12, 13, 50]),
        0u64..20,
        0u8..13,
        0u64..2_000_000,
    )
}

fn build(state: &ChainState, (signer, fee, kind, amount): (u8, u64, u8, u64)) -> SignedTx {
    let body = match kind {
        0 => TxBody::Transfer {
            to: addr((amount % 5) as u8 + 1),
            amount,
        },
        1 => TxBody::Faucet {
            amount: amount % 60_000,
        },
        2 => TxBody::SetNamespaceRoot {
            root: [amount as u8; 32],
            version: amount % 4,
        },
        3 => TxBody::OpenDeal(deal_terms(
            state,
            signer,
            &[10, 11, 12][..(amount % 3 + 1) as usize],
            amount % 500,
            (state.epoch() + 1, state.epoch() + 2 + amount % 7),
        )),
        4 => TxBody::DeregisterNode,
        // Capacities around the 3000..9000 bytes deals put on a node, so some
        // updates are refused for going below what the node holds.
        5 => TxBody::UpdateNode {
            addresses: vec![format!("/ip4/127.0.0.1/tcp/{}", amount % 65_536)],
            capacity: amount % 12_000,
        },
        6 => TxBody::RegisterNode {
            // Now and then a foreign peer id, which must be refused.
            peer_id: if amount % 7 == 0 {
                vec![signer]
            } else {
                peer_id_of(&addr(signer))
            },
            addresses: vec![],
            capacity: 1 << 20,
            stake: amount % 10_000,
        },
        7 => TxBody::AddStake {
            amount: amount % 3_000,
        },
        8 => TxBody::CloseDeal {
            deal: state
                .deals()
                .find(|(_, d)| d.owner == addr(signer))
                .map_or(DealId([amount as u8; 32]), |(id, _)| *id),
        },
        // The owner names its deal's repair data (or a made-up deal's).
        10 => {
            let own = state.deals().find_map(|(id, d)| {
                (d.owner == addr(signer) && d.repair.is_none())
                    .then(|| Some((*id, test_repair_data(&d, 1, &SIZES)?)))
                    .flatten()
            });
            match own {
                Some((deal, data)) => TxBody::SetRepairData {
                    deal,
                    repair: data.reference(),
                },
                None => TxBody::AddStake { amount: 1 },
            }
        }
        // The signer repairs what the rules say is lost, onto the holders
        // placement picks, or tries a shard that is not lost.
        11 => match repair_claim(state, signer, amount) {
            Some(claim) => TxBody::ClaimRepair(claim),
            None => TxBody::AddStake { amount: 1 },
        },
        // A node declares one of its leaves lost.
        12 => {
            let shards = held_shards(signer, &SIZES);
            let leaf = (amount % 3) as usize;
            match state
                .deals()
                .find(|(_, d)| d.commitments.iter().any(|c| c.node == addr(signer)))
            {
                Some((deal, _)) => TxBody::DeclareLost(vec![LostLeaf {
                    deal: *deal,
                    leaf: leaf as u32,
                    shard: shards[leaf].0,
                    size: shards[leaf].1,
                    path: merkle::prove(&shards, leaf).unwrap(),
                }]),
                None => TxBody::AddStake { amount: 1 },
            }
        }
        // A proof from the test data, repaired commitments included; node 13
        // has lost everything.
        _ => {
            let read = |id: &ContentId| {
                (signer != 13)
                    .then(|| read_shard(&[10, 11, 12], &SIZES, id))
                    .flatten()
            };
            if let Some(proof) = proof_any(state, signer, 1, &SIZES, read) {
                return proof;
            }
            TxBody::AddStake { amount: 1 }
        }
    };
    tx(state, signer, fee, body)
}

const SIZES: [usize; 3] = [1000, 1000, 1000];

/// A repair claim for some deal with repair data: what is lost, to holders
/// placement picks (receipts signed); or, with nothing lost, shard 0 of
/// segment 0 to node 13 (refused).
fn repair_claim(state: &ChainState, signer: u8, pick: u64) -> Option<RepairClaim> {
    let with_data: Vec<(DealId, RepairData)> = state
        .deals()
        .filter(|(_, d)| d.repair.is_some())
        .filter_map(|(id, d)| Some((*id, test_repair_data(&d, 1, &SIZES)?)))
        .collect();
    let (deal, data) = with_data.get(pick as usize % with_data.len().max(1))?;
    let policy = RepairPolicy::new(CodingParams::new(data.k, data.m).ok()?, data.n() - 1);
    let statuses = assess(state, deal, data, &policy).ok()?;
    let mut cols = columns(&statuses, 1);
    let holders = if cols.is_empty() {
        cols = vec![vec![(0, 0)]];
        vec![addr(13)]
    } else {
        let bytes: Vec<u64> = cols.iter().map(|c| 1000 * c.len() as u64).collect();
        let seed = placement_seed(deal, pick as usize);
        choose_holders(state, deal, &seed, &bytes, |_, _| 0)
            .unwrap_or_else(|_| vec![addr(13); cols.len()])
    };
    let mut claim = prepare(state, deal, data, &cols, &holders).ok()?;
    for holder in &claim.holders {
        node_number(&holder.node)?;
    }
    sign_receipts(&mut claim, signer);
    Some(claim)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn same_transactions_same_root_and_tokens_conserved(txs in prop::collection::vec(arb_tx(), 1..60), block_every in 1usize..8) {
        let mut a = fresh();
        let mut b = fresh();
        let mut height = 0;
        for (i, spec) in txs.into_iter().enumerate() {
            let t = build(&a, spec);
            let ra = a.apply_tx(&t);
            let rb = b.apply_tx(&t);
            prop_assert_eq!(&ra, &rb);
            if ra.is_ok() {
                // Applying it again is always a replay.
                let replay = matches!(a.apply_tx(&t), Err(Rejection::BadNonce { .. }));
                prop_assert!(replay, "a replayed transaction was accepted");
            }
            prop_assert_eq!(a.held(), a.expected_supply());
            if i % block_every == 0 {
                height += 1;
                let oa = a.apply_block(height, [height as u8; 32], &[]).unwrap();
                let ob = b.apply_block(height, [height as u8; 32], &[]).unwrap();
                prop_assert_eq!(oa.state_root, ob.state_root);
                prop_assert_eq!(a.held(), a.expected_supply());
            }
        }
        prop_assert_eq!(a.root(), b.root());
    }

    /// The incremental root is the root of the same contents hashed from
    /// nothing, and a store that keeps only each block's changed entries
    /// rebuilds the very same state.
    #[test]
    fn incremental_root_and_stored_changes_match_the_whole_state(txs in prop::collection::vec(arb_tx(), 1..60), block_every in 1usize..8) {
        let mut s = fresh();
        let mut stored: std::collections::BTreeMap<(StateMap, Vec<u8>), Vec<u8>> = s
            .entries()
            .map(|e| ((e.map, e.key), e.value.unwrap()))
            .collect();
        // Everything is in `stored` already.
        s.take_changes();
        let mut height = 0;
        for (i, spec) in txs.into_iter().enumerate() {
            let t = build(&s, spec);
            let _ = s.apply_tx(&t);
            prop_assert_eq!(s.root(), s.root_from_scratch());
            if i % block_every == 0 {
                height += 1;
                let out = s.apply_block(height, [height as u8; 32], &[]).unwrap();
                prop_assert_eq!(out.state_root, s.root_from_scratch());
                prop_assert!(s.indexes_consistent());
                for e in s.take_changes() {
                    match e.value {
                        Some(v) => stored.insert((e.map, e.key), v),
                        None => stored.remove(&(e.map, e.key)),
                    };
                }
                let loaded = ChainState::from_stored(
                    s.header(),
                    stored.iter().map(|((m, k), v)| (*m, k.as_slice(), v.as_slice())),
                )
                .unwrap();
                prop_assert_eq!(&loaded, &s);
                prop_assert_eq!(loaded.root(), out.state_root);
            }
        }
    }

    #[test]
    fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut s = fresh();
        if let Ok(t) = SignedTx::decode(&bytes) {
            let _ = s.apply_tx(&t);
        }
        prop_assert_eq!(s.held(), s.expected_supply());
    }

    #[test]
    fn mutated_valid_transactions_never_panic(spec in arb_tx(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut s = fresh();
        let mut bytes = build(&s, spec).encode();
        let i = flip.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(t) = SignedTx::decode(&bytes) {
            // A flipped bit is caught by the signature or the nonce, or
            // (if it only hit the signature's own encoding) refused.
            let _ = s.apply_tx(&t);
        }
        prop_assert_eq!(s.held(), s.expected_supply());
    }
}
