//! What a spammer gets into a validator's mempool, and what a full pool
//! costs a proposal: a real ledger (RocksDB on disk) and its mempool, fed
//! through `Ledger::submit` as `POST /chain/tx` feeds it.
//!
//! Spam tried, each against a fresh pool (10 000 transactions, 64 per
//! sender, the defaults):
//!
//! * **fees owed, not held**: 1 000 accounts, each funded for one fee,
//!   send 64 transfers each;
//! * **faucet on a chain without one**: 5 000 unfunded accounts ask the
//!   faucet;
//! * **a full pool of cheap transactions** (157 funded accounts × 64 at the
//!   lowest fee), then 500 honest transfers at twice that fee.
//!
//! Then the time to select a block's transactions from the full pool, and
//! how fast the pool takes valid transactions.
//!
//! Run: `cargo bench -p cairn-node --bench mempool`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cairn_node::ledger::{Ledger, MempoolConfig};
use cairn_protocol::chain::{Address, Allocation, Genesis, SignedTx, Transaction, TxBody};
use ed25519_dalek::SigningKey;

const FEE: u64 = 10;

fn key(group: u8, i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = group;
    SigningKey::from_bytes(&seed)
}

fn address(k: &SigningKey) -> Address {
    Address::of(&k.verifying_key())
}

/// Groups: 1 spammers funded for one fee (and the 1-token transfer),
/// 2 spammers funded well, 3 honest senders.
fn genesis() -> Genesis {
    let mut allocations: Vec<Allocation> = (0..1_000)
        .map(|i| (key(1, i), FEE + 1))
        .chain((0..157).map(|i| (key(2, i), 1 << 40)))
        .chain((0..500).map(|i| (key(3, i), 1 << 40)))
        .map(|(k, amount)| Allocation {
            address: address(&k),
            amount,
        })
        .collect();
    allocations.sort_by_key(|a| a.address);
    Genesis {
        min_fee: FEE,
        faucet_max: None,
        ..Genesis::devnet("spam", vec![address(&key(9, 0))], allocations)
    }
}

fn tx(g: &Genesis, k: &SigningKey, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
    Transaction {
        genesis: g.hash(),
        signer: address(k),
        nonce,
        fee,
        body,
    }
    .sign(k)
}

fn transfer(g: &Genesis, k: &SigningKey, nonce: u64, fee: u64) -> Vec<u8> {
    let to = address(&key(8, nonce as u32));
    tx(g, k, nonce, fee, TxBody::Transfer { to, amount: 1 }).encode()
}

fn fresh(g: &Genesis) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("chain"), g, MempoolConfig::default()).unwrap();
    (dir, ledger)
}

/// Submits every transaction; returns how many the pool took.
fn submit_all(ledger: &Ledger, txs: &[Vec<u8>]) -> usize {
    txs.iter().filter(|t| ledger.submit(t).is_ok()).count()
}

fn main() {
    let g = genesis();
    println!("| spam | sent | accepted |");
    println!("|---|---|---|");

    let (_d, ledger) = fresh(&g);
    let owed: Vec<Vec<u8>> = (0..1_000)
        .flat_map(|i| {
            let k = key(1, i);
            (0..64).map(move |n| (k.clone(), n))
        })
        .map(|(k, n)| transfer(&g, &k, n, FEE))
        .collect();
    println!(
        "| 1 000 accounts funded for one fee, 64 transfers each | {} | {} |",
        owed.len(),
        submit_all(&ledger, &owed)
    );

    let (_d, ledger) = fresh(&g);
    let faucet: Vec<Vec<u8>> = (0..5_000)
        .map(|i| tx(&g, &key(4, i), 0, FEE, TxBody::Faucet { amount: 1_000 }).encode())
        .collect();
    println!(
        "| faucet requests on a chain without a faucet | {} | {} |",
        faucet.len(),
        submit_all(&ledger, &faucet)
    );

    let (_d, ledger) = fresh(&g);
    let cheap: Vec<Vec<u8>> = (0..157)
        .flat_map(|i| (0..64).map(move |n| (i, n)))
        .map(|(i, n)| transfer(&g, &key(2, i), n, FEE))
        .collect();
    let started = Instant::now();
    let took = submit_all(&ledger, &cheap);
    let rate = took as f64 / started.elapsed().as_secs_f64();
    let honest: Vec<Vec<u8>> = (0..500)
        .map(|i| transfer(&g, &key(3, i), 0, 2 * FEE))
        .collect();
    println!(
        "| pool filled at the lowest fee ({took} of {} taken), then honest transfers at twice the fee | {} | {} |",
        cheap.len(),
        honest.len(),
        submit_all(&ledger, &honest)
    );
    println!();
    let started = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        std::hint::black_box(ledger.propose(1_000, 1 << 20));
    }
    println!(
        "selecting a block (1 000 transactions) from a full pool of {}: {:.1} ms mean; the pool took valid transactions at {:.0} a second",
        ledger.mempool_len(),
        started.elapsed().as_secs_f64() * 1e3 / rounds as f64,
        rate
    );
}
