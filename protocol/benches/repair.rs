//! Repair: rebuilding a default segment's lost shards from any k, how long
//! the chain takes to check a claim, and how large claims are for files of
//! a given size.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use cairn_protocol::chain::merkle::Sibling;
use cairn_protocol::chain::{DealId, MovedShard, NewHolder, RepairClaim, Sig, TxBody};
use cairn_protocol::erasure::ErasureCoder;
use cairn_protocol::{CodingParams, ContentId};
use common::chain::*;
use common::repair::*;
use criterion::{Criterion, Throughput};

/// The default segment: k = 10, m = 20, shards of 839 680 bytes.
fn rebuild(c: &mut Criterion) {
    let params = CodingParams::new(10, 20).unwrap();
    let size = 839_680usize;
    let coder = ErasureCoder::new(params);
    let data: Vec<u8> = (0..10 * size as u32)
        .map(|b| (b.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut parity = vec![0u8; 20 * size];
    coder.encode(&data, &mut parity, size).unwrap();
    let shards: Vec<Vec<u8>> = data
        .chunks(size)
        .chain(parity.chunks(size))
        .map(<[u8]>::to_vec)
        .collect();
    let mut g = c.benchmark_group("repair");
    g.sample_size(10);
    // The threshold case (15 of 30 healthy): rebuild the 15 missing, every
    // data shard among them (the worst case), from the 15 parity shards left.
    g.throughput(Throughput::Bytes(15 * size as u64));
    g.bench_function("rebuild_15_of_30_shards_of_820KiB", |b| {
        b.iter(|| {
            let mut slots: Vec<Option<Vec<u8>>> = (0..30)
                .map(|j| (j >= 15).then(|| shards[j].clone()))
                .collect();
            coder.reconstruct_all(&mut slots, size).unwrap();
            slots
        })
    });
    // The claim of the test net: two shards to one new holder.
    let mut net = repairable();
    run_until(&mut net.s, 20, &[10, 11]);
    let claim = claim_from(&net, 2, &[13]);
    let t = claim_tx(&net.s, 2, claim);
    g.throughput(Throughput::Elements(1));
    g.bench_function("state_clone", |b| b.iter(|| net.s.clone()));
    g.bench_function("check_and_apply_claim_2_shards_1_holder", |b| {
        b.iter(|| net.s.clone().apply_tx(&t).unwrap())
    });
    g.finish();
}

/// Encoded size of a claim that moves one dead node's column of a file of
/// `segments` default segments (n = 30) to one new holder that held none.
fn claim_bytes(segments: u32) -> usize {
    let depth = |leaves: u64| 64 - (leaves.max(2) - 1).leading_zeros() as usize;
    let sib = Sibling {
        hash: [1; 32],
        bytes: 1 << 40,
    };
    let shards = (0..segments)
        .map(|g| MovedShard {
            segment: g,
            index: 29,
            id: ContentId::of(&g.to_le_bytes()),
            size: 839_680,
            repair_path: vec![sib; depth(u64::from(segments) * 30)],
            from: 29,
            leaf: g,
            from_path: vec![sib; depth(u64::from(segments) + 2)],
            to: 0,
        })
        .collect();
    let claim = RepairClaim {
        deal: DealId([3; 32]),
        shards,
        holders: vec![NewHolder {
            node: addr(13),
            receipt: Sig([4; 64]),
        }],
    };
    tx(&fresh(), 2, 10, TxBody::ClaimRepair(claim))
        .encode()
        .len()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    rebuild(&mut c);
    c.final_summary();
    println!("| segments (8 MiB) | file | claim bytes, one column |");
    println!("|---|---|---|");
    for segments in [1u32, 8, 32, 64, 128] {
        println!(
            "| {segments} | {} MiB | {} |",
            segments * 8,
            claim_bytes(segments)
        );
    }
}
