//! Storage proofs: how fast the chain verifies one (signature included),
//! what it costs a node to build one, how big it is, and how likely a node
//! that dropped part of its bytes is caught, next to `1 − (1 − f)^s`.
#![allow(clippy::unwrap_used, missing_docs)]

use cairn_protocol::chain::{merkle, Address, SignedTx, Transaction, TxBody};
use cairn_protocol::proofs::{self, challenge, Held, ProofParams, Space};
use cairn_protocol::ContentId;
use criterion::{Criterion, Throughput};
use ed25519_dalek::SigningKey;

/// A node holding `count` shards of the default size (8 MiB segments, k = 10).
fn holding(count: usize) -> (Vec<Vec<u8>>, Vec<(ContentId, u64)>, Space) {
    let data: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            (0..839_680u32)
                .map(|b| (b.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
                .collect()
        })
        .collect();
    let shards: Vec<(ContentId, u64)> = data
        .iter()
        .map(|d| (ContentId::of(d), d.len() as u64))
        .collect();
    let tree = merkle::Committed {
        root: merkle::root(&shards).unwrap(),
        count: count as u64,
        bytes: shards.iter().map(|s| s.1).sum(),
    };
    (data, shards, Space { tree, lost: vec![] })
}

fn proof_tx(
    key: &SigningKey,
    params: &ProofParams,
    data: &[Vec<u8>],
    shards: &[(ContentId, u64)],
    space: &Space,
) -> SignedTx {
    let node = Address::of(&key.verifying_key());
    let held = [Held { space, shards }];
    let proof = proofs::build(params, node, 7, &[3; 32], &held, |id| {
        shards
            .iter()
            .position(|s| s.0 == *id)
            .map(|i| data[i].clone())
    })
    .unwrap();
    Transaction {
        chain_id: "bench".into(),
        signer: node,
        nonce: 0,
        fee: 1,
        body: TxBody::ProveStorage(proof),
    }
    .sign(key)
}

fn bench(c: &mut Criterion) {
    let params = ProofParams::default();
    let key = SigningKey::from_bytes(&[5; 32]);
    let (data, shards, space) = holding(64);
    let tx = proof_tx(&key, &params, &data, &shards, &space);
    println!(
        "proof transaction: {} bytes for {} samples",
        tx.encode().len(),
        params.samples
    );
    let mut g = c.benchmark_group("proofs");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_with_signature", |b| {
        b.iter(|| {
            tx.verify().unwrap();
            let TxBody::ProveStorage(p) = &tx.tx.body else {
                unreachable!()
            };
            proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap()
        })
    });
    g.bench_function("verify_proof_only", |b| {
        let TxBody::ProveStorage(p) = &tx.tx.body else {
            unreachable!()
        };
        b.iter(|| proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap())
    });
    g.sample_size(20);
    g.bench_function("build_from_memory", |b| {
        b.iter(|| proof_tx(&key, &params, &data, &shards, &space))
    });
    g.finish();
}

/// Probability that a node which dropped a fraction `f` of its bytes is
/// caught in one period and within 24 periods (a day of hourly periods),
/// over many seeds, with the protocol's own sampling.
fn detection_table() {
    let params = ProofParams::default();
    let node = Address([9; 32]);
    // 1 TiB in 1 MiB shards; the first f of the bytes are dropped.
    let total: u64 = 1 << 40;
    let days = 2_000u64;
    println!(
        "\ndetection ({} samples per period, {days} simulated days):",
        params.samples
    );
    println!("| dropped | caught in a period | formula | caught within a day | formula |");
    println!("|---|---|---|---|---|");
    for f in [0.001f64, 0.01, 0.05, 0.10] {
        let dropped = (total as f64 * f) as u64;
        let (mut periods_caught, mut days_caught) = (0u64, 0u64);
        for day in 0..days {
            let mut caught_today = false;
            for hour in 0..24u64 {
                let period = day * 24 + hour;
                let seed = *blake3::hash(&period.to_le_bytes()).as_bytes();
                let mut prev = [0u8; 32];
                let mut caught = false;
                for i in 0..params.samples {
                    let o = challenge::sample_offset(&seed, &node, period, i, &prev, total);
                    caught |= o < dropped;
                    prev = challenge::lost_link(&ContentId::from_digest(seed), o / 1024);
                }
                periods_caught += u64::from(caught);
                caught_today |= caught;
            }
            days_caught += u64::from(caught_today);
        }
        let s = f64::from(params.samples);
        let per_period = 1.0 - (1.0 - f).powf(s);
        let per_day = 1.0 - (1.0 - f).powf(24.0 * s);
        println!(
            "| {:.1} % | {:.4} | {:.4} | {:.4} | {:.4} |",
            f * 100.0,
            periods_caught as f64 / (days * 24) as f64,
            per_period,
            days_caught as f64 / days as f64,
            per_day
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    detection_table();
}
