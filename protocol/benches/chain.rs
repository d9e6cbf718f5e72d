//! How fast one process applies chain transactions: transfers, and deals
//! with 10 or 30 node commitments (each receipt is an ed25519 verification).
#![allow(clippy::unwrap_used, missing_docs)]

use cairn_protocol::chain::{
    merkle, peer_id_of, receipt_message, Address, Allocation, ChainState, Commitment, DealTerms,
    Genesis, GenesisHash, Sig, SignedTx, Transaction, TxBody,
};
use cairn_protocol::ContentId;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey};

const CHAIN: &str = "bench";
const BATCH: u64 = 200;

fn key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn addr(i: u32) -> Address {
    Address::of(&key(i).verifying_key())
}

fn state_with_nodes(nodes: u32) -> ChainState {
    let allocations = (0..=nodes)
        .map(|i| Allocation {
            address: addr(i),
            amount: u64::MAX / 1024,
        })
        .collect();
    let genesis = Genesis {
        epoch_blocks: 1_000_000,
        min_stake: 1,
        faucet_max: None,
        max_deal_epochs: 1_000_000,
        stake_per_gib: 0,
        ..Genesis::devnet(CHAIN, vec![addr(0)], allocations)
    };
    let mut s = ChainState::from_genesis(&genesis).unwrap();
    for n in 1..=nodes {
        let body = TxBody::RegisterNode {
            peer_id: peer_id_of(&addr(n)),
            addresses: vec![],
            capacity: u64::MAX / 2,
            stake: 1,
        };
        let t = Transaction {
            genesis: s.genesis_hash(),
            signer: addr(n),
            nonce: 0,
            fee: 1,
            body,
        }
        .sign(&key(n));
        s.apply_tx(&t).unwrap();
    }
    s
}

fn deal_txs(genesis: &GenesisHash, nodes: u32) -> Vec<SignedTx> {
    (0..BATCH)
        .map(|nonce| {
            let mut terms = DealTerms {
                size: 0,
                price_per_epoch: 10,
                start_epoch: 1,
                end_epoch: 100,
                commitments: vec![],
            };
            for n in 1..=nodes {
                let shards: Vec<(ContentId, u64)> = (0..4u64)
                    .map(|j| (ContentId::of(&(nonce, n, j).0.to_le_bytes()), 839_680))
                    .collect();
                terms.commitments.push(Commitment {
                    node: addr(n),
                    root: merkle::root(&shards).unwrap(),
                    shards: 4,
                    bytes: 4 * 839_680,
                    receipt: Sig([0; 64]),
                });
                terms.size += 4 * 839_680;
            }
            let receipts: Vec<Sig> = terms
                .commitments
                .iter()
                .map(|c| {
                    let n = (1..=nodes).find(|n| addr(*n) == c.node).unwrap();
                    Sig(key(n)
                        .sign(&receipt_message(genesis, &addr(0), nonce, &terms, c))
                        .to_bytes())
                })
                .collect();
            for (c, r) in terms.commitments.iter_mut().zip(receipts) {
                c.receipt = r;
            }
            Transaction {
                genesis: *genesis,
                signer: addr(0),
                nonce,
                fee: 1,
                body: TxBody::OpenDeal(terms),
            }
            .sign(&key(0))
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_apply");
    g.sample_size(10).throughput(Throughput::Elements(BATCH));
    let base = state_with_nodes(30);
    let transfers: Vec<SignedTx> = (0..BATCH)
        .map(|nonce| {
            let body = TxBody::Transfer {
                to: addr(1),
                amount: 1,
            };
            Transaction {
                genesis: base.genesis_hash(),
                signer: addr(0),
                nonce,
                fee: 1,
                body,
            }
            .sign(&key(0))
        })
        .collect();
    g.bench_function("transfer", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| transfers.iter().for_each(|t| s.apply_tx(t).unwrap()),
            BatchSize::LargeInput,
        )
    });
    for nodes in [10u32, 30] {
        let txs = deal_txs(&base.genesis_hash(), nodes);
        g.bench_function(format!("open_deal_{nodes}_nodes"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut s| txs.iter().for_each(|t| s.apply_tx(t).unwrap()),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
