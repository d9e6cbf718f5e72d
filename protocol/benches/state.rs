//! What a block costs as the state grows: one block of 100 transfers applied
//! on a state of 1 000 and of 100 000 accounts and deals, the way a
//! validator does it now (clone the parent's state, apply, take the changed
//! entries to store) beside the way it did before the state was committed
//! incrementally (a deep copy of every map, and the whole state encoded
//! twice: once hashed for the root, once written to the store). Then the
//! epoch blocks at both sizes: the one where every deal starts, and steady
//! ones, which settle the period without touching a deal: every node
//! proved, or every node missed.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use cairn_protocol::chain::{
    peer_id_of, Address, Allocation, ChainState, Deal, DealCommitment, DealId, Genesis,
    GenesisHash, NodeRecord, SignedTx, StateMap, Transaction, TxBody,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "bench";
const SIGNERS: u32 = 100;
const NODES: u32 = 10;
const EPOCH_BLOCKS: u64 = 1_000;

fn key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 1;
    SigningKey::from_bytes(&seed)
}

fn signer(i: u32) -> Address {
    Address::of(&key(i).verifying_key())
}

/// An account nobody signs for (only receives).
fn holder(i: u32) -> Address {
    Address(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn sign(genesis: &GenesisHash, i: u32, nonce: u64, body: TxBody) -> SignedTx {
    Transaction {
        genesis: *genesis,
        signer: signer(i),
        nonce,
        fee: 1,
        body,
    }
    .sign(&key(i))
}

/// A state with `n` accounts and `n` deals (3 commitments each over 10
/// nodes), built from stored entries as a store would load it.
fn state(n: u32) -> ChainState {
    let mut allocations: Vec<Allocation> = (0..SIGNERS + NODES)
        .map(signer)
        .chain((0..n).map(holder))
        .map(|address| Allocation {
            address,
            amount: 1 << 40,
        })
        .collect();
    allocations.sort_by_key(|a| a.address);
    let genesis = Genesis {
        epoch_blocks: EPOCH_BLOCKS,
        min_stake: 1,
        faucet_max: None,
        max_deal_epochs: 1_000_000,
        stake_per_gib: 0,
        ..Genesis::devnet(CHAIN, vec![signer(0)], allocations)
    };
    let mut s = ChainState::from_genesis(&genesis).unwrap();
    for node in SIGNERS..SIGNERS + NODES {
        let body = TxBody::RegisterNode {
            peer_id: peer_id_of(&signer(node)),
            addresses: vec![],
            capacity: u64::MAX / 2,
            stake: 1,
        };
        s.apply_tx(&sign(&s.genesis_hash(), node, 0, body)).unwrap();
    }
    let mut entries: Vec<(StateMap, Vec<u8>, Vec<u8>)> = s
        .entries()
        .map(|e| (e.map, e.key, e.value.unwrap()))
        .collect();
    for i in 0..n {
        let id = DealId::new(&holder(i), 0);
        let commitments = (0..3)
            .map(|c| DealCommitment {
                node: signer(SIGNERS + (i + c) % NODES),
                root: [c as u8; 32],
                shards: 4,
                bytes: 1 << 20,
                lost: Vec::new(),
                proofs_accepted: 0,
                proofs_missed: 0,
                paid: 0,
                orphaned: false,
                since: 1,
                moved: Vec::new(),
                slashed: 0,
                counted: (0, 0),
            })
            .collect();
        let deal = Deal {
            owner: holder(i),
            size: 3 << 20,
            price_per_epoch: 1,
            start_epoch: 1,
            end_epoch: 1_000,
            commitments,
            escrow: 1_000,
            withheld: 0,
            opened_at: 0,
            repair: None,
        };
        entries.push((
            StateMap::Deals,
            postcard::to_stdvec(&id).unwrap(),
            postcard::to_stdvec(&deal).unwrap(),
        ));
    }
    load(&s, &entries)
}

/// `s` with every node's proof of `period` accepted, as its proofs in the
/// period's blocks would have left it (set in the stored records: building
/// 10 real proofs over 100 000 deals is not what is measured).
fn with_every_node_proven(s: &ChainState, period: u64) -> ChainState {
    let entries: Vec<(StateMap, Vec<u8>, Vec<u8>)> = s
        .entries()
        .map(|e| {
            let mut value = e.value.unwrap();
            if e.map == StateMap::Nodes {
                let mut node: NodeRecord = postcard::from_bytes(&value).unwrap();
                node.proven = Some((period, false));
                value = postcard::to_stdvec(&node).unwrap();
            }
            (e.map, e.key, value)
        })
        .collect();
    load(s, &entries)
}

/// A state with `s`'s header from stored entries, as a store loads it.
fn load(s: &ChainState, entries: &[(StateMap, Vec<u8>, Vec<u8>)]) -> ChainState {
    ChainState::from_stored(
        s.header(),
        entries
            .iter()
            .map(|(m, k, v)| (*m, k.as_slice(), v.as_slice())),
    )
    .unwrap()
}

/// 100 transfers, one per signer, to accounts spread over the state.
fn transfers(genesis: &GenesisHash, n: u32) -> Vec<SignedTx> {
    (0..SIGNERS)
        .map(|i| {
            let to = holder((i * 7919) % n);
            sign(genesis, i, 0, TxBody::Transfer { to, amount: 1 })
        })
        .collect()
}

/// The state before the incremental commitment, as the old path copied it:
/// every map deeply (here: every entry, encoded).
fn deep_copy(s: &ChainState) -> BTreeMap<(StateMap, Vec<u8>), Vec<u8>> {
    s.entries()
        .map(|e| ((e.map, e.key), e.value.unwrap()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_block");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_millis(500));
    for n in [1_000u32, 100_000] {
        let base = state(n);
        let txs = transfers(&base.genesis_hash(), n);
        let copy = deep_copy(&base);
        g.bench_function(format!("new_apply_100_transfers/{n}"), |b| {
            b.iter(|| {
                let mut next = base.clone();
                let out = next.apply_block(1, [1; 32], &txs).unwrap();
                assert!(out.results.iter().all(Result::is_ok));
                next.take_changes()
            })
        });
        g.bench_function(format!("old_apply_100_transfers/{n}"), |b| {
            b.iter(|| {
                let copied = copy.clone();
                let mut next = base.clone();
                let out = next.apply_block(1, [1; 32], &txs).unwrap();
                assert!(out.results.iter().all(Result::is_ok));
                // The old root: the whole state encoded and hashed; the old
                // store: the whole state encoded again.
                let whole = postcard::to_stdvec(&next).unwrap();
                let root = blake3::hash(&whole);
                let stored = postcard::to_stdvec(&next).unwrap();
                (copied.len(), root, stored.len())
            })
        });
        // Epoch blocks. At the first, every deal starts: each is written
        // once (an event its OpenDeal paid for). At the next, nothing starts
        // or ends: the period is settled node by node, and no deal is
        // touched ([`ChainState`]'s lazy settlement).
        let mut before_start = base.clone();
        for h in 1..EPOCH_BLOCKS {
            before_start.apply_block(h, [2; 32], &[]).unwrap();
        }
        g.bench_function(format!("epoch_block_every_deal_starts/{n}"), |b| {
            b.iter_batched(
                || before_start.clone(),
                |mut s| s.apply_block(EPOCH_BLOCKS, [3; 32], &[]).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let mut missed = before_start.clone();
        for h in EPOCH_BLOCKS..2 * EPOCH_BLOCKS {
            missed.apply_block(h, [2; 32], &[]).unwrap();
        }
        // A validator stores each block's changes as it goes.
        missed.take_changes();
        let proved = with_every_node_proven(&missed, 1);
        for (name, before) in [
            ("every_node_proved", &proved),
            ("every_node_missed", &missed),
        ] {
            g.bench_function(format!("epoch_block_{name}/{n}"), |b| {
                b.iter_batched(
                    || before.clone(),
                    |mut s| {
                        let out = s.apply_block(2 * EPOCH_BLOCKS, [3; 32], &[]).unwrap();
                        (out, s.take_changes())
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
