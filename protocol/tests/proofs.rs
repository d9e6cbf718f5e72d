//! Storage proofs: a valid proof verifies against the shard id alone; a
//! wrong chunk, wrong index, wrong shard or truncated path fails.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::proof::{challenged_group, ProofError, StorageProof};
use cairn_protocol::shard::{group_count, Outboard};
use cairn_protocol::ContentId;
use common::content;

fn shard(size: usize) -> (Vec<u8>, Outboard) {
    let data = content(size, size as u64);
    let ob = Outboard::compute(&data);
    (data, ob)
}

#[test]
fn valid_proofs_verify_for_every_group() {
    for size in [1usize, 16 * 1024, 16 * 1024 + 1, 100_000, 838_861] {
        let (data, ob) = shard(size);
        for group in 0..group_count(size as u64) {
            let proof = StorageProof::create(&data, &ob, group).unwrap();
            proof.verify(&ob.id(), size as u64, group).unwrap();
        }
    }
}

#[test]
fn challenges_are_deterministic_and_spread() {
    let (_, ob) = shard(838_861);
    let groups = group_count(838_861);
    let picks: std::collections::BTreeSet<u64> = (0..200u8)
        .map(|b| challenged_group(&[b; 32], &ob.id(), 838_861))
        .collect();
    assert!(picks.iter().all(|g| *g < groups));
    assert!(
        picks.len() as u64 > groups / 2,
        "200 beacons hit {} of {groups} groups",
        picks.len()
    );
    assert_eq!(
        challenged_group(&[1; 32], &ob.id(), 838_861),
        challenged_group(&[1; 32], &ob.id(), 838_861)
    );
}

#[test]
fn wrong_chunk_fails() {
    let (data, ob) = shard(100_000);
    let mut proof = StorageProof::create(&data, &ob, 2).unwrap();
    let last = proof.encoded.len() - 1;
    proof.encoded[last] ^= 1;
    assert!(matches!(
        proof.verify(&ob.id(), 100_000, 2),
        Err(ProofError::Invalid(_))
    ));
    // A node that lost the group cannot build a proof from other data.
    let mut rotten = data.clone();
    rotten[2 * 16 * 1024 + 5] ^= 1;
    assert!(StorageProof::create(&rotten, &ob, 2).is_err());
}

#[test]
fn wrong_index_fails() {
    let (data, ob) = shard(100_000);
    let proof = StorageProof::create(&data, &ob, 2).unwrap();
    assert_eq!(
        proof.verify(&ob.id(), 100_000, 3),
        Err(ProofError::WrongGroup {
            expected: 3,
            got: 2
        })
    );
    // Relabelling the proof as another group does not help.
    let relabelled = StorageProof {
        group: 3,
        encoded: proof.encoded.clone(),
    };
    assert!(matches!(
        relabelled.verify(&ob.id(), 100_000, 3),
        Err(ProofError::Invalid(_))
    ));
}

#[test]
fn wrong_shard_fails() {
    let (data, ob) = shard(100_000);
    let proof = StorageProof::create(&data, &ob, 1).unwrap();
    let other = ContentId::of(b"another shard");
    assert!(matches!(
        proof.verify(&other, 100_000, 1),
        Err(ProofError::Invalid(_))
    ));
}

#[test]
fn truncated_or_padded_path_fails() {
    let (data, ob) = shard(300_000);
    let proof = StorageProof::create(&data, &ob, 7).unwrap();
    for cut in [1, 32, 64, proof.encoded.len() - 1] {
        let short = StorageProof {
            group: 7,
            encoded: proof.encoded[..proof.encoded.len() - cut].to_vec(),
        };
        assert!(short.verify(&ob.id(), 300_000, 7).is_err(), "cut {cut}");
    }
    let mut long = proof.clone();
    long.encoded.push(0);
    assert!(long.verify(&ob.id(), 300_000, 7).is_err());
    let huge = StorageProof {
        group: 7,
        encoded: vec![0; 1 << 20],
    };
    assert!(matches!(
        huge.verify(&ob.id(), 300_000, 7),
        Err(ProofError::TooLarge(_))
    ));
    assert!(
        StorageProof::create(&data, &ob, group_count(300_000)).is_err(),
        "group past the end"
    );
}
