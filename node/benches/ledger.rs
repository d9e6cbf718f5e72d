//! What committing a block costs the ledger as the state grows: blocks of
//! 100 transfers committed to a real RocksDB ledger (`LedgerStore::commit`:
//! apply on a copy, check the root, one synced batch of the block, its
//! index and the entries it changed) over states of 1 000 and 100 000
//! accounts. Beside it, in the same run, what the old layout added per
//! block: the whole state encoded, hashed for its root and written as one
//! synced value.
//!
//! Run: `cargo bench -p cairn-node --bench ledger`. `CAIRN_BENCH_BLOCKS`
//! sets the blocks per size (default 30).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cairn_node::ledger::{BlockBeacon, FinalizedBlock, LedgerStore};
use cairn_protocol::chain::{
    Address, Allocation, Genesis, GenesisHash, SignedTx, Transaction, TxBody,
};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "bench";
const SIGNERS: u32 = 100;

fn key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 2;
    SigningKey::from_bytes(&seed)
}

fn signer(i: u32) -> Address {
    Address::of(&key(i).verifying_key())
}

fn holder(i: u32) -> Address {
    Address(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn genesis(n: u32) -> Genesis {
    let mut allocations: Vec<Allocation> = (0..SIGNERS)
        .map(signer)
        .chain((0..n).map(holder))
        .map(|address| Allocation {
            address,
            amount: 1 << 40,
        })
        .collect();
    allocations.sort_by_key(|a| a.address);
    Genesis {
        epoch_blocks: 1_000_000,
        faucet_max: None,
        ..Genesis::devnet(CHAIN, vec![signer(0)], allocations)
    }
}

fn transfers(genesis: &GenesisHash, n: u32, nonce: u64) -> Vec<SignedTx> {
    (0..SIGNERS)
        .map(|i| {
            let to = holder((i * 7919 + nonce as u32 * 31) % n);
            Transaction {
                genesis: *genesis,
                signer: signer(i),
                nonce,
                fee: 1,
                body: TxBody::Transfer { to, amount: 1 },
            }
            .sign(&key(i))
        })
        .collect()
}

fn block(store: &LedgerStore, txs: Vec<SignedTx>) -> FinalizedBlock {
    let height = store.height() + 1;
    let beacon = BlockBeacon::default();
    // The root consensus finalized: the proposer's.
    let state_root = (*store.state())
        .clone()
        .apply_block(height, beacon.beacon, &txs)
        .unwrap()
        .state_root;
    FinalizedBlock {
        height,
        digest: *blake3::hash(&height.to_le_bytes()).as_bytes(),
        parent: *blake3::hash(&(height - 1).to_le_bytes()).as_bytes(),
        timestamp_ms: height,
        proposer: Vec::new(),
        txs,
        beacon,
        state_root,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the line.
    let blocks: u64 = std::env::var("CAIRN_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    println!("| accounts | commit (new), mean | whole state encoded + hashed + written (old extra), mean | whole state bytes |");
    println!("|---|---|---|---|");
    for n in [1_000u32, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::open(&dir.path().join("db"), &genesis(n)).unwrap();
        let old = rocksdb::DB::open_default(dir.path().join("old")).unwrap();
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        let (mut new_time, mut old_time, mut bytes) = (Duration::ZERO, Duration::ZERO, 0);
        for nonce in 0..blocks {
            let b = block(&store, transfers(&genesis(n).hash(), n, nonce));
            let started = Instant::now();
            let out = store.commit(b).unwrap();
            new_time += started.elapsed();
            assert!(out.results.iter().all(Result::is_ok));
            let started = Instant::now();
            let state = store.state();
            let whole = postcard::to_stdvec(&*state).unwrap();
            std::hint::black_box(blake3::hash(&whole));
            old.put_opt(b"state", &whole, &sync).unwrap();
            old_time += started.elapsed();
            bytes = whole.len();
        }
        println!(
            "| {n} | {:.2} ms | {:.2} ms | {:.0} kB |",
            ms(new_time) / blocks as f64,
            ms(old_time) / blocks as f64,
            bytes as f64 / 1e3
        );
    }
}
