//! Storage proofs: how fast the chain verifies one (signature included; the
//! old whole-transaction `verify_strict` beside the prehashed ZIP-215 check,
//! alone and in a block's batch),
//! what it costs a node to build one, how big it is, and how likely a node
//! that dropped part of its bytes is caught, next to `1 − (1 − f)^s`.
#![allow(clippy::unwrap_used, missing_docs)]

use cairn_protocol::chain::{merkle, sig, Address, SignedTx, Transaction, TxBody};
use cairn_protocol::proofs::{self, challenge, Held, ProofParams, Space};
use cairn_protocol::ContentId;
use criterion::{Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey};

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
        genesis: cairn_protocol::chain::GenesisHash([7; 32]),
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
    // The path before prehashing: Ed25519 (strict) over the whole 25 KB
    // encoding, so SHA-512 runs over every byte of the proof.
    let v1_message = [
        &b"cairn tx v1\0"[..],
        &postcard::to_allocvec(&tx.tx).unwrap(),
    ]
    .concat();
    let v1_sig = key.sign(&v1_message);
    g.bench_function("verify_v1_whole_tx_strict", |b| {
        b.iter(|| {
            let message = [
                &b"cairn tx v1\0"[..],
                &postcard::to_allocvec(&tx.tx).unwrap(),
            ]
            .concat();
            key.verifying_key()
                .verify_strict(&message, &v1_sig)
                .unwrap();
            let TxBody::ProveStorage(p) = &tx.tx.body else {
                unreachable!()
            };
            proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap()
        })
    });
    g.bench_function("verify_with_signature", |b| {
        b.iter(|| {
            tx.verify().unwrap();
            let TxBody::ProveStorage(p) = &tx.tx.body else {
                unreachable!()
            };
            proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap()
        })
    });
    // A block of 64 nodes' proofs: one batch for the signatures.
    let block: Vec<SignedTx> = (0..64u8)
        .map(|i| {
            proof_tx(
                &SigningKey::from_bytes(&[i; 32]),
                &params,
                &data,
                &shards,
                &space,
            )
        })
        .collect();
    g.throughput(Throughput::Elements(block.len() as u64));
    g.bench_function("verify_block_of_64_batched", |b| {
        b.iter(|| {
            let messages: Vec<Vec<u8>> = block.iter().map(|t| t.tx.signing_bytes()).collect();
            let checks = sig::check_all(
                block
                    .iter()
                    .zip(&messages)
                    .map(|(t, m)| (&t.tx.signer, m.as_slice(), &t.signature)),
            );
            assert!(checks.iter().all(Result::is_ok));
            for t in &block {
                let TxBody::ProveStorage(p) = &t.tx.body else {
                    unreachable!()
                };
                proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap();
            }
        })
    });
    g.throughput(Throughput::Elements(1));
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

/// This thread's CPU time, which other processes on a shared machine do not
/// inflate the way they inflate wall-clock time.
fn thread_cpu() -> std::time::Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// CPU microseconds per proof of each step the chain takes, median of runs.
fn cpu_breakdown() {
    let params = ProofParams::default();
    let (data, shards, space) = holding(64);
    let block: Vec<SignedTx> = (0..64u8)
        .map(|i| {
            proof_tx(
                &SigningKey::from_bytes(&[i; 32]),
                &params,
                &data,
                &shards,
                &space,
            )
        })
        .collect();
    let per_proof = |f: &mut dyn FnMut()| {
        let mut runs: Vec<f64> = (0..15)
            .map(|_| {
                let t = thread_cpu();
                f();
                (thread_cpu() - t).as_secs_f64() * 1e6 / block.len() as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let encode = per_proof(&mut || {
        for t in &block {
            std::hint::black_box(t.encode());
        }
    });
    let decode = per_proof(&mut || {
        for t in &block {
            std::hint::black_box(SignedTx::decode(&t.encode()).unwrap());
        }
    });
    let signing = per_proof(&mut || {
        for t in &block {
            std::hint::black_box(t.tx.signing_bytes());
        }
    });
    let v1 = per_proof(&mut || {
        for t in &block {
            let m = [
                &b"cairn tx v1\0"[..],
                &postcard::to_allocvec(&t.tx).unwrap(),
            ]
            .concat();
            let key = ed25519_dalek::VerifyingKey::from_bytes(&t.tx.signer.0).unwrap();
            // Signed over other bytes: the failing check costs the same.
            std::hint::black_box(key.verify_strict(&m, &key_sig(&t.signature)).is_ok());
        }
    });
    let single = per_proof(&mut || {
        for t in &block {
            t.verify().unwrap();
        }
    });
    let batched = per_proof(&mut || {
        let messages: Vec<Vec<u8>> = block.iter().map(|t| t.tx.signing_bytes()).collect();
        let checks = sig::check_all(
            block
                .iter()
                .zip(&messages)
                .map(|(t, m)| (&t.tx.signer, m.as_slice(), &t.signature)),
        );
        assert!(checks.iter().all(Result::is_ok));
    });
    let proof = per_proof(&mut || {
        for t in &block {
            let TxBody::ProveStorage(p) = &t.tx.body else {
                unreachable!()
            };
            proofs::verify(&params, p, &[3; 32], std::slice::from_ref(&space)).unwrap();
        }
    });
    println!("CPU µs per proof transaction (thread CPU time, median of 15 runs of 64):");
    println!("  encode (postcard)                         {encode:8.1}");
    println!("  decode (bounded, limits checked)          {decode:8.1}");
    println!("  v2 signing bytes (encode + BLAKE3)        {signing:8.1}");
    println!("  v1 signature: strict over the whole tx    {v1:8.1}");
    println!("  v2 signature alone (ZIP-215, prehashed)   {single:8.1}");
    println!("  v2 signatures, a batch of 64              {batched:8.1}");
    println!("  proof (16 samples)                        {proof:8.1}");
    println!(
        "  chain, v1 path: signature + proof         {:8.1}  ({:.0} proofs/s/core)",
        v1 + proof,
        1e6 / (v1 + proof)
    );
    println!(
        "  chain, v2 block: batch + proof            {:8.1}  ({:.0} proofs/s/core)",
        batched + proof,
        1e6 / (batched + proof)
    );
}

fn key_sig(s: &cairn_protocol::chain::Sig) -> ed25519_dalek::Signature {
    ed25519_dalek::Signature::from_bytes(&s.0)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    cpu_breakdown();
    detection_table();
}
