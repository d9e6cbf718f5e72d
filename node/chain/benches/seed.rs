//! What checking a block's beacon seed costs a verifier: one BLS12-381
//! signature verification (a pairing check) against the genesis group key,
//! plus hashing the seed into the beacon.
//!
//! Run: `cargo bench -p cairn-chain --bench seed`.
#![allow(clippy::unwrap_used)]

use cairn_chain::threshold::{self, round, Bls};
use cairn_chain::{seeds, Block, BlockParts, BlockSeed};
use commonware_codec::Encode;
use commonware_consensus::types::Height;
use commonware_cryptography::{
    blake3::Digest, bls12381::primitives::ops::threshold as ops, ed25519::PrivateKey, Signer,
};
use commonware_parallel::Sequential;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let validators: Vec<_> = (0..4)
        .map(|i| PrivateKey::from_seed(i).public_key())
        .collect();
    let dealing = threshold::deal([1; 32], &validators).unwrap();
    let polynomial = threshold::polynomial(Some(&dealing.group_key), 4).unwrap();
    let genesis = cairn_protocol::chain::GenesisHash([1; 32]);
    let verifier = threshold::seed_verifier(&polynomial, &genesis);
    let namespace = commonware_utils::union(&cairn_chain::namespace(&genesis), b"_SEED");
    let view = 41;
    let partials: Vec<_> = dealing.shares[..3]
        .iter()
        .map(|s| ops::sign_message::<Bls>(s, &namespace, &round(view).encode()))
        .collect();
    let signature = ops::recover::<Bls, _>(&polynomial, &partials, &Sequential).unwrap();
    let parent = Block::new(BlockParts {
        parent: Digest([1; 32]),
        height: Height::new(10),
        view,
        timestamp_ms: 1,
        seed: None,
        state_root: [0; 32],
        txs: Vec::new(),
    });
    let block = Block::new(BlockParts {
        parent: Digest([2; 32]),
        height: Height::new(11),
        view: view + 1,
        timestamp_ms: 2,
        seed: Some(BlockSeed { view, signature }),
        state_root: [0; 32],
        txs: Vec::new(),
    });

    c.bench_function("seed/verify (one block's seed)", |b| {
        b.iter(|| assert!(threshold::verify_seed(&verifier, view, &signature)))
    });
    c.bench_function("seed/check block (rule + verify)", |b| {
        b.iter(|| seeds::check(&verifier, &block, &parent, view + 1, view).unwrap())
    });
    c.bench_function("seed/beacon_from_seed", |b| {
        b.iter(|| block.beacon(&genesis))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
