use super::*;
use crate::ledger::store::tests::{addr, genesis, key, transfer};
use cairn_protocol::chain::{Genesis, GenesisHash, Transaction};

fn state() -> ChainState {
    ChainState::from_genesis(&genesis()).unwrap()
}

fn pool() -> Mempool {
    Mempool::new(MempoolConfig::default(), genesis().min_fee)
}

fn insert(pool: &mut Mempool, tx: &SignedTx, state: &ChainState) -> Result<[u8; 32], MempoolError> {
    pool.insert(&tx.encode(), state)
}

#[test]
fn every_rejection_has_its_reason() {
    let s = state();
    let mut p = pool();
    let ok = transfer(1, 0, 2, 10);
    // Undecodable, oversized.
    let e = p.insert(b"garbage", &s).unwrap_err();
    assert_eq!(e.code(), "malformed", "{e}");
    let e = p.insert(&vec![0; MAX_TX_BYTES + 1], &s).unwrap_err();
    assert_eq!(e.code(), "too_large", "{e}");
    // Bad signature.
    let mut forged = ok.clone();
    forged.tx.body = TxBody::Transfer {
        to: addr(2),
        amount: 999,
    };
    let e = insert(&mut p, &forged, &s).unwrap_err();
    assert_eq!(e, MempoolError::Invalid(Rejection::BadSignature));
    // Wrong chain.
    let mut t = ok.tx.clone();
    t.genesis = GenesisHash([0xee; 32]);
    let e = insert(&mut p, &t.sign(&key(1)), &s).unwrap_err();
    assert_eq!(e.code(), "wrong_chain", "{e}");
    assert!(e.to_string().contains(&"ee".repeat(32)), "{e}");
    // Fee below the minimum (the faucet is exempt).
    let mut t = ok.tx.clone();
    t.fee = 0;
    let e = insert(&mut p, &t.sign(&key(1)), &s).unwrap_err();
    assert_eq!(
        e,
        MempoolError::Invalid(Rejection::FeeTooLow { min: 1, got: 0 })
    );
    // An empty account cannot pay a fee.
    let e = insert(&mut p, &transfer(9, 0, 1, 1), &s).unwrap_err();
    assert_eq!(e, MempoolError::CannotPayFee { balance: 0, fee: 1 });
    // Accepted, then a duplicate, then the same nonce again.
    let id = insert(&mut p, &ok, &s).unwrap();
    assert_eq!(id, ok.id());
    let e = insert(&mut p, &ok, &s).unwrap_err();
    assert_eq!(e.code(), "duplicate", "{e}");
    let e = insert(&mut p, &transfer(1, 0, 3, 10), &s).unwrap_err();
    assert_eq!(e.code(), "nonce_taken", "{e}");
    // A gap.
    let e = insert(&mut p, &transfer(1, 5, 2, 1), &s).unwrap_err();
    assert_eq!(e, MempoolError::NonceGap { next: 1, got: 5 });
    // Stale: the state has moved past nonce 0.
    let mut later = s.clone();
    later.apply_tx(&ok).unwrap();
    let e = insert(&mut p, &transfer(1, 0, 3, 11), &later).unwrap_err();
    assert_eq!(e, MempoolError::StaleNonce { next: 1, got: 0 });
    assert_eq!(p.len(), 1);
    assert_eq!(p.bytes(), ok.encode().len());
}

#[test]
fn the_faucet_needs_no_fee_or_balance() {
    let s = state();
    let mut p = pool();
    let faucet = Transaction {
        genesis: genesis().hash(),
        signer: addr(9),
        nonce: 0,
        fee: 0,
        body: TxBody::Faucet { amount: 1_000 },
    }
    .sign(&key(9));
    insert(&mut p, &faucet, &s).unwrap();
    assert_eq!(p.select(&s, 10, 1 << 20), vec![faucet]);
}

fn signed(signer: u8, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
    signed_on(&genesis().hash(), signer, nonce, fee, body)
}

/// [`signed`] for the chain `chain` names.
fn signed_on(chain: &GenesisHash, signer: u8, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
    Transaction {
        genesis: *chain,
        signer: addr(signer),
        nonce,
        fee,
        body,
    }
    .sign(&key(signer))
}

#[test]
fn a_faucet_request_needs_a_faucet_and_its_limit() {
    let mut g = genesis();
    let max = g.faucet_max.unwrap();
    let faucet = |amount| signed(9, 0, 0, TxBody::Faucet { amount });
    let mut p = pool();
    let e = insert(&mut p, &faucet(max + 1), &state()).unwrap_err();
    assert_eq!(e.code(), "faucet_limit", "{e}");
    g.faucet_max = None;
    let no_faucet = ChainState::from_genesis(&g).unwrap();
    let faucet = signed_on(&g.hash(), 9, 0, 0, TxBody::Faucet { amount: 1 });
    let e = insert(&mut p, &faucet, &no_faucet).unwrap_err();
    assert_eq!(e.code(), "faucet_disabled", "{e}");
    assert!(p.is_empty());
}

#[test]
fn every_pending_fee_must_be_covered_not_only_the_first() {
    let mut g = genesis();
    g.allocations.push(cairn_protocol::chain::Allocation {
        address: addr(7),
        amount: 25,
    });
    g.allocations.sort_by_key(|a| a.address);
    let s = ChainState::from_genesis(&g).unwrap();
    let mut p = pool();
    let to = |n| TxBody::Transfer {
        to: addr(1),
        amount: n,
    };
    // 10 + 10 fit in 25; a third fee of 10 does not, though the account
    // could pay any one of them alone.
    insert(&mut p, &signed_on(&s.genesis_hash(), 7, 0, 10, to(1)), &s).unwrap();
    insert(&mut p, &signed_on(&s.genesis_hash(), 7, 1, 10, to(1)), &s).unwrap();
    let e = insert(&mut p, &signed_on(&s.genesis_hash(), 7, 2, 10, to(1)), &s).unwrap_err();
    assert_eq!(
        e,
        MempoolError::CannotPayPending {
            balance: 25,
            fees: 30
        }
    );
    assert_eq!(e.code(), "cannot_pay_pending");
    assert_eq!(p.len(), 2);
}

#[test]
fn a_full_pool_evicts_the_cheapest_last_transaction_for_a_better_fee() {
    let s = state();
    let config = MempoolConfig {
        max_txs: 3,
        ..MempoolConfig::default()
    };
    let mut p = Mempool::new(config, 1);
    let to = TxBody::Transfer {
        to: addr(9),
        amount: 1,
    };
    let cheap0 = signed(1, 0, 1, to.clone());
    let cheap1 = signed(1, 1, 1, to.clone());
    let mid = signed(2, 0, 5, to.clone());
    for t in [&cheap0, &cheap1, &mid] {
        insert(&mut p, t, &s).unwrap();
    }
    // Paying no more per byte than anything in it is refused.
    let e = insert(&mut p, &signed(3, 0, 1, to.clone()), &s).unwrap_err();
    assert_eq!(e.code(), "mempool_full", "{e}");
    // Paying more evicts sender 1's *last* transaction (its first is
    // kept: nothing may be left with a nonce gap), the cheapest one.
    let rich = signed(3, 0, 50, to.clone());
    insert(&mut p, &rich, &s).unwrap();
    assert_eq!(p.len(), 3);
    assert!(!p.contains(&cheap1.id()));
    assert!(p.contains(&cheap0.id()) && p.contains(&mid.id()) && p.contains(&rich.id()));
    assert_eq!(p.next_nonce(&s, &addr(1)), 1);
    // The next better offer takes the cheapest that is left, sender 1's
    // first (now its last).
    insert(&mut p, &signed(3, 1, 60, to.clone()), &s).unwrap();
    assert!(!p.contains(&cheap0.id()));
    assert_eq!(p.next_nonce(&s, &addr(1)), 0);
    // A sender never evicts its own transactions to make room.
    let mut own = Mempool::new(
        MempoolConfig {
            max_txs: 3,
            ..MempoolConfig::default()
        },
        1,
    );
    insert(&mut own, &signed(3, 0, 1, to.clone()), &s).unwrap();
    insert(&mut own, &signed(3, 1, 1, to.clone()), &s).unwrap();
    insert(&mut own, &signed(2, 0, 200, to.clone()), &s).unwrap();
    let e = insert(&mut own, &signed(3, 2, 100, to.clone()), &s).unwrap_err();
    assert_eq!(e.code(), "mempool_full", "{e}");
    assert_eq!(own.len(), 3);
    // What is left still selects and applies in order.
    assert_eq!(p.select(&s, 10, 1 << 20).len(), 3);
}

#[test]
fn limits_per_sender_and_overall() {
    let s = state();
    let config = MempoolConfig {
        max_txs: 5,
        max_per_sender: 3,
        ..MempoolConfig::default()
    };
    let mut p = Mempool::new(config, 1);
    for n in 0..3 {
        insert(&mut p, &transfer(1, n, 2, 1), &s).unwrap();
    }
    let e = insert(&mut p, &transfer(1, 3, 2, 1), &s).unwrap_err();
    assert_eq!(e.code(), "sender_full", "{e}");
    insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
    insert(&mut p, &transfer(2, 1, 1, 1), &s).unwrap();
    let e = insert(&mut p, &transfer(3, 0, 1, 1), &s).unwrap_err();
    assert_eq!(e.code(), "mempool_full", "{e}");

    let one = transfer(1, 0, 2, 1).encode().len();
    let mut p = Mempool::new(
        MempoolConfig {
            max_bytes: one * 2,
            ..MempoolConfig::default()
        },
        1,
    );
    insert(&mut p, &transfer(1, 0, 2, 1), &s).unwrap();
    insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
    let e = insert(&mut p, &transfer(3, 0, 1, 1), &s).unwrap_err();
    assert_eq!(e.code(), "mempool_full", "{e}");
}

#[test]
fn select_orders_by_nonce_round_robin_and_only_what_applies() {
    let s = state();
    let mut p = pool();
    // Sender 1: nonces 0..3; the second overdraws, so the third cannot
    // follow either. Sender 2: two fine ones. Sender 3: one.
    insert(&mut p, &transfer(1, 0, 2, 10), &s).unwrap();
    insert(&mut p, &transfer(1, 1, 2, 5_000_000), &s).unwrap();
    insert(&mut p, &transfer(1, 2, 2, 10), &s).unwrap();
    insert(&mut p, &transfer(2, 0, 1, 10), &s).unwrap();
    insert(&mut p, &transfer(2, 1, 1, 10), &s).unwrap();
    insert(&mut p, &transfer(3, 0, 1, 10), &s).unwrap();
    let picked = p.select(&s, 100, 1 << 20);
    assert_eq!(picked.len(), 4, "{picked:?}");
    // Each sender's in nonce order; round-robin: the first round has one
    // of each sender.
    for sender in [1u8, 2, 3] {
        let nonces: Vec<u64> = picked
            .iter()
            .filter(|t| t.tx.signer == addr(sender))
            .map(|t| t.tx.nonce)
            .collect();
        let expected: Vec<u64> = match sender {
            1 => vec![0],
            2 => vec![0, 1],
            _ => vec![0],
        };
        assert_eq!(nonces, expected, "sender {sender}");
    }
    let first_round: std::collections::BTreeSet<_> =
        picked[..3].iter().map(|t| t.tx.signer).collect();
    assert_eq!(first_round.len(), 3);
    // All of it applies, in this order.
    let mut check = s.clone();
    for t in &picked {
        check.apply_tx(t).unwrap();
    }
    // Limits on count and bytes.
    assert_eq!(p.select(&s, 2, 1 << 20).len(), 2);
    let one = picked[0].encode().len();
    assert_eq!(p.select(&s, 100, one * 3).len(), 3);
    assert!(p.select(&s, 100, one - 1).is_empty());
    assert!(p.select(&s, 0, 1 << 20).is_empty());
    // Selecting takes nothing out.
    assert_eq!(p.len(), 6);
}

#[test]
fn remove_committed_drops_included_and_stale() {
    let g: Genesis = genesis();
    let mut s = ChainState::from_genesis(&g).unwrap();
    let mut p = pool();
    let a0 = transfer(1, 0, 2, 10);
    let a1 = transfer(1, 1, 2, 10);
    let b0 = transfer(2, 0, 1, 10);
    let c0 = transfer(3, 0, 1, 10);
    for t in [&a0, &a1, &b0, &c0] {
        insert(&mut p, t, &s).unwrap();
    }
    // The block holds a0, and a different nonce-0 transaction of sender
    // 2 (submitted elsewhere): b0 is now stale.
    let b0_elsewhere = transfer(2, 0, 3, 99);
    let included = vec![a0.clone(), b0_elsewhere];
    s.apply_block(1, [1; 32], &included).unwrap();
    p.remove_committed(&included, &s);
    assert!(!p.contains(&a0.id()));
    assert!(!p.contains(&b0.id()));
    assert!(p.contains(&a1.id()));
    assert!(p.contains(&c0.id()));
    assert_eq!(p.len(), 2);
    assert_eq!(p.bytes(), a1.encode().len() + c0.encode().len());
    assert_eq!(p.next_nonce(&s, &addr(1)), 2);
    assert_eq!(p.next_nonce(&s, &addr(2)), 1);
    let next = p.select(&s, 10, 1 << 20);
    assert_eq!(next.len(), 2);
}

#[test]
fn after_a_block_what_no_longer_applies_is_dropped_with_its_successors() {
    let g: Genesis = genesis();
    let mut s = ChainState::from_genesis(&g).unwrap();
    let mut p = pool();
    // Sender 1's next transaction pays more than it has: it can never
    // apply, and would hold back its nonce 1 until it expired.
    let balance = s.account(&addr(1)).balance;
    let stuck = transfer(1, 0, 2, balance);
    let behind = transfer(1, 1, 2, 10);
    let fine = transfer(3, 0, 1, 10);
    for t in [&stuck, &behind, &fine] {
        insert(&mut p, t, &s).unwrap();
    }
    assert_eq!(p.next_nonce(&s, &addr(1)), 2);
    let included = vec![transfer(2, 0, 3, 5)];
    s.apply_block(1, [1; 32], &included).unwrap();
    p.remove_committed(&included, &s);
    assert!(!p.contains(&stuck.id()));
    assert!(!p.contains(&behind.id()));
    assert!(p.contains(&fine.id()));
    assert_eq!(p.len(), 1);
    // The sender's nonces are free again.
    assert_eq!(p.next_nonce(&s, &addr(1)), 0);
    insert(&mut p, &transfer(1, 0, 2, 10), &s).unwrap();
}

#[test]
fn old_transactions_expire_with_their_successors() {
    let s = state();
    let mut p = Mempool::new(
        MempoolConfig {
            max_age: Duration::from_millis(20),
            ..MempoolConfig::default()
        },
        1,
    );
    insert(&mut p, &transfer(1, 0, 2, 1), &s).unwrap();
    insert(&mut p, &transfer(1, 1, 2, 1), &s).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    insert(&mut p, &transfer(2, 0, 1, 1), &s).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p.next_nonce(&s, &addr(1)), 0);
}
