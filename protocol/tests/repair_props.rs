//! Properties of repair: a shard rebuilt from any k of n shards is byte for
//! byte (and so id for id) the one that was lost; the public repair data
//! round-trips, refuses hostile bytes and proves every shard against its
//! reference; random histories of proofs, losses, claims and closes keep
//! every token and never pay a repair twice.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::erasure::ErasureCoder;
use cairn_protocol::repair::{RepairData, RepairDataError};
use cairn_protocol::{CodingParams, ContentId, FileKey};
use common::chain::*;
use common::repair::*;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn a_shard_rebuilt_from_any_k_shards_is_the_original(
        len in 1usize..150_000,
        k in 1u16..7,
        m in 1u16..6,
        seed in any::<u64>(),
    ) {
        let config = EncoderConfig {
            params: CodingParams::new(k, m).unwrap(),
            block_size: 64 * 1024,
            shard_size: 4096,
        };
        let e = common::encode(&common::content(len, seed), &FileKey::from_bytes([5; 32]), config);
        let coder = ErasureCoder::new(config.params);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = config.params.n();
        for shards in &e.segments {
            let mut keep: Vec<usize> = (0..n).collect();
            keep.shuffle(&mut rng);
            keep.truncate(usize::from(k));
            let mut slots: Vec<Option<Vec<u8>>> = (0..n)
                .map(|j| keep.contains(&j).then(|| shards[j].clone()))
                .collect();
            coder.reconstruct_all(&mut slots, shards[0].len()).unwrap();
            for (j, rebuilt) in slots.iter().enumerate() {
                let rebuilt = rebuilt.as_ref().unwrap();
                prop_assert_eq!(rebuilt, &shards[j], "shard {} from {:?}", j, &keep);
                prop_assert_eq!(ContentId::of(rebuilt), ContentId::of(&shards[j]));
            }
        }
    }

    #[test]
    fn hostile_repair_data_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(data) = RepairData::decode(&bytes) {
            prop_assert!(data.validate().is_ok());
            prop_assert_eq!(RepairData::decode(&data.encode()).unwrap(), data);
        }
    }

    /// Random histories over a repairable deal: nodes prove or not, lose
    /// shards, strangers claim repairs (honest or not), the owner closes.
    #[test]
    fn repair_histories_conserve_tokens_and_pay_each_repair_once(
        steps in prop::collection::vec((0u8..5, any::<u8>()), 1..60),
    ) {
        let mut net = repairable();
        join_node_14(&mut net.s);
        let start: u64 = [2u8, 3].iter().map(|&r| net.s.account(&addr(r)).balance).sum();
        let mut fees = 0u64;
        for (kind, x) in steps {
            if history_step(&mut net, kind, x) {
                fees += 10;
            }
            prop_assert_eq!(net.s.held(), net.s.expected_supply());
            let paid = net.s.deal(&net.deal).and_then(|d| d.repair.clone()).map_or(0, |r| r.paid);
            let now: u64 = [2u8, 3].iter().map(|&r| net.s.account(&addr(r)).balance).sum();
            // While the deal lives, the repairers gained exactly what it paid.
            if net.s.deal(&net.deal).is_some() {
                prop_assert_eq!(now + fees, start + paid);
            }
            if let Some(r) = net.s.deal(&net.deal).and_then(|d| d.repair) {
                let mut places: Vec<(u32, u16)> = r.moved.iter().map(|m| (m.segment, m.index)).collect();
                places.dedup();
                prop_assert_eq!(places.len(), r.moved.len(), "a shard has one place");
            }
        }
    }
}

#[test]
fn repair_data_round_trips_and_proves_each_shard_against_its_reference() {
    let net = repairable();
    let data = &net.data;
    let bytes = data.encode();
    assert_eq!(&RepairData::decode(&bytes).unwrap(), data);
    let r = data.reference();
    assert_eq!(r.object, ContentId::of(&bytes));
    assert_eq!((r.k, r.m, r.segments, r.commitments), (2, 1, 2, 3));
    assert_eq!(r.bytes, 3 * (2048 + 1000));
    for g in 0..2u32 {
        for j in 0..3u16 {
            let (id, size) = data.shard(g, j).unwrap();
            let path = data.path(g, j).unwrap();
            assert!(r.verify(g, j, &id, size, &path));
            assert!(!r.verify(g, j, &id, size + 1, &path));
            assert!(!r.verify(g, (j + 1) % 3, &id, size, &path));
            assert!(!r.verify(g, 3, &id, size, &path));
        }
    }
    // Truncated, trailing, other versions, wrong shard counts, leaves that
    // no commitment has: each refused with its reason.
    assert!(matches!(
        RepairData::decode(&bytes[..bytes.len() - 1]),
        Err(RepairDataError::Malformed(_))
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        RepairData::decode(&long),
        Err(RepairDataError::Malformed(_))
    ));
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(RepairData::decode(&v2), Err(RepairDataError::Version(2)));
    let mut short = data.clone();
    short.segments[1].pop();
    assert!(matches!(
        RepairData::decode(&short.encode()),
        Err(RepairDataError::ShardCount { segment: 1, .. })
    ));
    let mut far = data.clone();
    far.segments[0][1] = (9, 0);
    assert_eq!(
        far.validate(),
        Err(RepairDataError::NoSuchLeaf {
            segment: 0,
            index: 1
        })
    );
    // It matches its deal; another deal's data, or a changed leaf, does not.
    data.check_against(&net.s.deal(&net.deal).unwrap()).unwrap();
    let mut changed = data.clone();
    changed.commitments[0][0].1 += 1;
    assert!(matches!(
        changed.check_against(&net.s.deal(&net.deal).unwrap()),
        Err(RepairDataError::Mismatch(_))
    ));
    let shards = [(ContentId::of(b"x"), 10)];
    assert_eq!(
        RepairData::build(
            1,
            1,
            vec![shards.to_vec()],
            &[vec![shards[0], (ContentId::of(b"y"), 10)]]
        ),
        Err(RepairDataError::NotCommitted(ContentId::of(b"y")))
    );
}

/// A reader finds a file's deal by the repair tree root its manifest gives:
/// the same root the owner's repair data names.
#[test]
fn a_manifest_gives_the_root_its_repair_data_names() {
    let config = EncoderConfig {
        params: CodingParams::new(2, 2).unwrap(),
        block_size: 64 * 1024,
        shard_size: 4096,
    };
    let e = common::encode(
        &common::content(30_000, 3),
        &FileKey::from_bytes([5; 32]),
        config,
    );
    let segments = cairn_protocol::repair::data::manifest_segments(&e.manifest);
    assert_eq!(segments.len() as u64, e.manifest.segment_count());
    assert!(segments.len() >= 2 && segments.iter().all(|s| s.len() == 4));
    let mut all: Vec<(ContentId, u64)> = segments.iter().flatten().copied().collect();
    all.sort();
    all.dedup();
    let data = RepairData::build(2, 2, vec![all], &segments).unwrap();
    let root = cairn_protocol::repair::data::tree_root(&segments).unwrap();
    assert_eq!(data.reference().root, root);
    // Another file's segments give another root.
    let mut other = segments.clone();
    other.swap(0, 1);
    assert_ne!(cairn_protocol::repair::data::tree_root(&other), Some(root));
}
