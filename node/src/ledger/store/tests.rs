use super::*;
use cairn_protocol::chain::{Address, Allocation, Transaction, TxBody};
use ed25519_dalek::SigningKey;

pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(crate) fn addr(seed: u8) -> Address {
    Address::of(&key(seed).verifying_key())
}

/// A devnet genesis: epochs of 3 blocks, keys 1..=3 funded.
pub(crate) fn genesis() -> Genesis {
    let mut g = Genesis::devnet(
        "test-chain",
        vec![addr(100)],
        (1..=3)
            .map(|s| Allocation {
                address: addr(s),
                amount: 1_000_000,
            })
            .collect(),
    );
    g.epoch_blocks = 3;
    g.proof_window_blocks = 1;
    g
}

pub(crate) fn transfer(from: u8, nonce: u64, to: u8, amount: u64) -> SignedTx {
    Transaction {
        genesis: genesis().hash(),
        signer: addr(from),
        nonce,
        fee: 1,
        body: TxBody::Transfer {
            to: addr(to),
            amount,
        },
    }
    .sign(&key(from))
}

pub(crate) fn digest(height: u64) -> [u8; 32] {
    *blake3::hash(&height.to_le_bytes()).as_bytes()
}

pub(crate) fn block(height: u64, txs: Vec<SignedTx>) -> FinalizedBlock {
    FinalizedBlock {
        height,
        digest: digest(height),
        parent: digest(height.saturating_sub(1)),
        timestamp_ms: 1_700_000_000_000 + height,
        proposer: vec![7; 32],
        txs,
        beacon: BlockBeacon {
            view: height + 10,
            seed: (height > 1).then(|| SeedRecord {
                view: height + 9,
                signature: vec![height as u8; 48],
            }),
            beacon: beacon(height),
        },
        // Filled in by `rooted` for the block that follows a state.
        state_root: [0; 32],
    }
}

/// `b` with the state root it reaches on `store`'s state, when it is
/// the next block (others keep theirs: they are refused before the root
/// matters).
pub(crate) fn rooted(store: &LedgerStore, mut b: FinalizedBlock) -> FinalizedBlock {
    let mut s = (*store.state()).clone();
    if b.height == s.height() + 1 {
        b.state_root = s
            .apply_block(b.height, b.beacon.beacon, &b.txs)
            .unwrap()
            .state_root;
    }
    b
}

/// Every entry of the `state` family.
fn stored_entries(store: &LedgerStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .db
        .iterator_cf(store.cf(CF_STATE).unwrap(), rocksdb::IteratorMode::Start)
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn a_block_whose_root_disagrees_is_not_written_and_halts_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let store = LedgerStore::open(dir.path(), &g).unwrap();
    store
        .commit(rooted(&store, block(1, vec![transfer(1, 0, 2, 10)])))
        .unwrap();
    let root = store.state().root();
    let entries = stored_entries(&store);
    let mut wrong = rooted(&store, block(2, vec![transfer(1, 1, 2, 10)]));
    wrong.state_root[0] ^= 1;
    let e = store.commit(wrong.clone()).unwrap_err();
    assert!(
        matches!(e, LedgerError::RootMismatch { height: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("diverged"), "{e}");
    // Nothing written, nothing in memory changed.
    assert_eq!(store.height(), 1);
    assert_eq!(store.state().root(), root);
    assert_eq!(store.state().account(&addr(1)).nonce, 1);
    assert!(store.block(2).unwrap().is_none());
    assert!(store.tx(&wrong.txs[0].id()).unwrap().is_none());
    assert_eq!(stored_entries(&store), entries);
    // Halted: even the right block is refused now.
    assert!(store.halted().unwrap().contains("height 2"));
    let right = rooted(&store, block(2, vec![transfer(1, 1, 2, 10)]));
    let e = store.commit(right.clone()).unwrap_err();
    assert!(matches!(e, LedgerError::Halted(_)), "{e}");
    drop(store);
    // A restart opens the last verified state and commits again.
    let store = LedgerStore::open(dir.path(), &g).unwrap();
    assert_eq!((store.height(), store.state().root()), (1, root));
    assert_eq!(store.halted(), None);
    store.commit(right).unwrap();
    assert_eq!(store.height(), 2);
}

#[test]
fn a_stored_state_entry_that_was_altered_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    {
        let store = LedgerStore::open(dir.path(), &g).unwrap();
        store
            .commit(rooted(&store, block(1, vec![transfer(1, 0, 2, 10)])))
            .unwrap();
        // Behind the ledger's back: another balance for account 2.
        let (key, value) = stored_entries(&store)
            .into_iter()
            .find(|(k, _)| k[0] == StateMap::Accounts.tag())
            .unwrap();
        let mut account: cairn_protocol::chain::Account = postcard::from_bytes(&value).unwrap();
        account.balance += 1;
        store
            .db
            .put_cf(store.cf(CF_STATE).unwrap(), key, encode(&account))
            .unwrap();
    }
    let e = LedgerStore::open(dir.path(), &g).unwrap_err();
    assert!(matches!(e, LedgerError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("state root"), "{e}");
}

#[test]
fn the_state_family_holds_exactly_the_state_and_a_block_writes_what_it_changed() {
    use cairn_protocol::chain::{Transaction, TxBody};
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let store = LedgerStore::open(dir.path(), &g).unwrap();
    let node_tx = |nonce: u64, body: TxBody| {
        Transaction {
            genesis: g.hash(),
            signer: addr(3),
            nonce,
            fee: 1,
            body,
        }
        .sign(&key(3))
    };
    let register = node_tx(
        0,
        TxBody::RegisterNode {
            peer_id: cairn_protocol::chain::peer_id_of(&addr(3)),
            addresses: vec![],
            capacity: 1 << 30,
            stake: g.min_stake,
        },
    );
    let blocks = vec![
        vec![register],
        vec![transfer(1, 0, 2, 10)],
        // The node entry goes again: its record is deleted.
        vec![node_tx(1, TxBody::DeregisterNode)],
        vec![],
    ];
    for (h, txs) in blocks.into_iter().enumerate() {
        let before = stored_entries(&store);
        let b = rooted(&store, block(h as u64 + 1, txs));
        let results = store.commit(b).unwrap().results;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let expected: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut e: Vec<_> = store
                .state()
                .entries()
                .map(|e| (state_key(e.map, &e.key), e.value.unwrap()))
                .collect();
            e.sort();
            e
        };
        let after = stored_entries(&store);
        assert_eq!(after, expected, "height {}", h + 1);
        let changed = after.iter().filter(|e| !before.contains(e)).count()
            + before.iter().filter(|e| !after.contains(e)).count();
        // A transfer changes two accounts; registration one account
        // and a node; deregistration the same back; an empty block none.
        assert!(changed <= 4, "height {}: {changed} entries changed", h + 1);
    }
    assert!(stored_entries(&store)
        .iter()
        .all(|(k, _)| k[0] != StateMap::Nodes.tag()));
}

pub(crate) fn beacon(height: u64) -> [u8; 32] {
    *blake3::hash(&[b'b', height as u8]).as_bytes()
}

#[test]
fn commits_a_sequence_and_matches_a_replay_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let store = LedgerStore::open(dir.path(), &g).unwrap();
    assert_eq!(store.height(), 0);
    let mut reference = ChainState::from_genesis(&g).unwrap();
    let blocks = vec![
        block(1, vec![transfer(1, 0, 2, 10), transfer(2, 0, 3, 20)]),
        // A replay of the first transaction is refused, not fatal.
        block(2, vec![transfer(1, 0, 2, 10), transfer(1, 1, 3, 5)]),
        block(3, vec![]),
        block(4, vec![transfer(3, 0, 1, 7)]),
    ];
    for mut b in blocks {
        let expected = reference
            .apply_block(b.height, b.beacon.beacon, &b.txs)
            .unwrap();
        b.state_root = expected.state_root;
        let got = store.commit(b.clone()).unwrap();
        assert_eq!(got, expected);
        assert_eq!(store.height(), b.height);
        assert_eq!(store.state().root(), reference.root());
    }
    assert!(matches!(
        store.block(2).unwrap().unwrap().results[0],
        Err(Rejection::BadNonce { .. })
    ));
    // Height 3 opened epoch 1; the state reports the latest block's
    // beacon and keeps each recent block's, as the engine handed them in.
    assert_eq!(store.state().epoch(), 1);
    assert_eq!(store.state().beacon(), beacon(4));
    let opening = store.block(3).unwrap().unwrap().beacon;
    assert_eq!(opening.view, 13);
    assert_eq!(opening.seed.unwrap().view, 12);
    assert_eq!(store.state().beacon_at(3), Some(beacon(3)));
    assert_eq!(store.state().beacon_at(4), Some(beacon(4)));
    // Only the last window's worth of beacons is kept (window 1: two).
    assert_eq!(store.state().beacon_at(2), None);
    let b = store.block(4).unwrap().unwrap();
    assert_eq!(b.parent, digest(3));
    assert_eq!(b.proposer, vec![7; 32]);
    assert_eq!(b.timestamp_ms, 1_700_000_000_004);
    assert_eq!(b.state_root, reference.root());
    assert!(store.block(5).unwrap().is_none());
    assert!(store.block(0).unwrap().is_none());
}

#[test]
fn redelivery_is_a_no_op_and_gaps_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LedgerStore::open(dir.path(), &genesis()).unwrap();
    let b1 = rooted(&store, block(1, vec![transfer(1, 0, 2, 10)]));
    let first = store.commit(b1.clone()).unwrap();
    let root = store.state().root();
    // At-least-once delivery: the same block again changes nothing.
    assert_eq!(store.commit(b1.clone()).unwrap(), first);
    assert_eq!(store.state().root(), root);
    assert_eq!(store.state().account(&addr(1)).nonce, 1);
    store.commit(rooted(&store, block(2, vec![]))).unwrap();
    assert_eq!(store.commit(b1.clone()).unwrap(), first);
    assert_eq!(store.height(), 2);

    let e = store.commit(rooted(&store, block(4, vec![]))).unwrap_err();
    assert!(matches!(e, LedgerError::Gap { height: 2, got: 4 }), "{e}");
    let e = store.commit(rooted(&store, block(0, vec![]))).unwrap_err();
    assert!(matches!(e, LedgerError::ZeroHeight), "{e}");
    let mut other = b1.clone();
    other.digest = [9; 32];
    let e = store.commit(other).unwrap_err();
    assert!(matches!(e, LedgerError::Conflict { height: 1, .. }), "{e}");
    let mut orphan = block(3, vec![]);
    orphan.parent = [9; 32];
    let e = store.commit(orphan).unwrap_err();
    assert!(
        matches!(e, LedgerError::ParentMismatch { height: 3, .. }),
        "{e}"
    );
    assert_eq!(store.height(), 2);
    assert_eq!(store.state().root(), {
        store.block(2).unwrap().unwrap().state_root
    });
}

#[test]
fn reopen_restores_height_and_root_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let (root, height) = {
        let store = LedgerStore::open(dir.path(), &g).unwrap();
        for h in 1..=5 {
            store
                .commit(rooted(&store, block(h, vec![transfer(1, h - 1, 2, h)])))
                .unwrap();
        }
        store.flush().unwrap();
        (store.state().root(), store.height())
    };
    let store = LedgerStore::open(dir.path(), &g).unwrap();
    assert_eq!(store.height(), height);
    assert_eq!(store.state().root(), root);
    assert_eq!(store.state().account(&addr(1)).nonce, 5);
    // And it carries on from there.
    store
        .commit(rooted(&store, block(6, vec![transfer(1, 5, 2, 1)])))
        .unwrap();
    assert_eq!(store.height(), 6);
}

#[test]
fn another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    drop(LedgerStore::open(dir.path(), &g).unwrap());
    let mut other_chain = g.clone();
    other_chain.chain_id = "elsewhere".into();
    let e = LedgerStore::open(dir.path(), &other_chain).unwrap_err();
    assert!(matches!(e, LedgerError::GenesisMismatch { .. }), "{e}");
    assert!(e.to_string().contains("elsewhere"), "{e}");
    // Same chain id, different parameters: still another chain.
    let mut other_params = g.clone();
    other_params.min_fee = 5;
    let e = LedgerStore::open(dir.path(), &other_params).unwrap_err();
    assert!(matches!(e, LedgerError::GenesisMismatch { .. }), "{e}");
    let mut invalid = g.clone();
    invalid.validators.clear();
    let e = LedgerStore::open(dir.path(), &invalid).unwrap_err();
    assert!(matches!(e, LedgerError::Genesis(_)), "{e}");
    assert!(LedgerStore::open(dir.path(), &g).is_ok());
}

#[test]
fn tx_index_points_at_the_inclusion_that_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = LedgerStore::open(dir.path(), &genesis()).unwrap();
    let t1 = transfer(1, 0, 2, 10);
    let t2 = transfer(2, 0, 1, 10);
    let broke = transfer(2, 1, 1, 5_000_000);
    store
        .commit(rooted(
            &store,
            block(1, vec![t1.clone(), t2.clone(), broke.clone()]),
        ))
        .unwrap();
    // t1 again (a replay, refused) must not move its index entry.
    store
        .commit(rooted(&store, block(2, vec![t1.clone()])))
        .unwrap();
    let r = store.tx(&t1.id()).unwrap().unwrap();
    assert_eq!((r.height, r.index, r.result), (1, 0, Ok(())));
    let r = store.tx(&t2.id()).unwrap().unwrap();
    assert_eq!((r.height, r.index), (1, 1));
    let r = store.tx(&broke.id()).unwrap().unwrap();
    assert_eq!((r.height, r.index), (1, 2));
    assert!(matches!(r.result, Err(Rejection::InsufficientFunds { .. })));
    assert!(store.tx(&[0; 32]).unwrap().is_none());
}

/// Run as a child process by `a_crash_after_commit_loses_nothing`: commits
/// two blocks and aborts without flushing or closing the database.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("CAIRN_LEDGER_CRASH_DIR") else {
        return;
    };
    let store = LedgerStore::open(Path::new(&dir), &genesis()).unwrap();
    store
        .commit(rooted(&store, block(1, vec![transfer(1, 0, 2, 10)])))
        .unwrap();
    store
        .commit(rooted(&store, block(2, vec![transfer(1, 1, 2, 10)])))
        .unwrap();
    std::fs::write(Path::new(&dir).join("root"), store.state().root()).unwrap();
    std::process::abort();
}

#[test]
fn a_crash_after_commit_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ledger::store::tests::crash_child",
            "--nocapture",
        ])
        .env("CAIRN_LEDGER_CRASH_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    let root = std::fs::read(dir.path().join("root")).unwrap();
    let store = LedgerStore::open(dir.path(), &genesis()).unwrap();
    assert_eq!(store.height(), 2);
    assert_eq!(store.state().root().to_vec(), root);
    assert!(store.block(2).unwrap().is_some());
    assert_eq!(store.state().account(&addr(1)).nonce, 2);
}
