//! Range reads fetch only data-shard bytes and return exactly the range.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::range::{RangeError, ReadPlan};
use cairn_protocol::shard::{verify_range, Outboard};
use cairn_protocol::{CodingParams, FileKey};
use common::*;
use proptest::prelude::*;

fn fetch(e: &Encoded, plan: &ReadPlan) -> Vec<u8> {
    // What a client does: ask each node for a verified range, check it.
    let mut ct = Vec::new();
    for piece in plan.pieces() {
        let shard = &e.segments[piece.segment as usize][piece.shard];
        let ob = Outboard::compute(shard);
        assert_eq!(ob.id(), piece.id);
        let encoded = ob.encode_range(shard, piece.range.clone()).unwrap();
        let bytes = verify_range(
            piece.id,
            piece.shard_size as u64,
            piece.range.clone(),
            &encoded[..],
        )
        .unwrap();
        ct.extend_from_slice(&bytes);
    }
    ct
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_range_reads_back(size in 1usize..400_000, a in any::<u32>(), b in any::<u32>(), k in 1u16..5) {
        let key = FileKey::from_bytes([1; 32]);
        let data = content(size, size as u64);
        let config = EncoderConfig { params: CodingParams::new(k, 2).unwrap(), block_size: 65536, shard_size: 20_000 };
        let e = encode(&data, &key, config);
        let (mut start, mut end) = (a as usize % (size + 1), b as usize % (size + 1));
        if start > end { std::mem::swap(&mut start, &mut end); }
        let plan = ReadPlan::new(&e.manifest, start as u64..end as u64).unwrap();
        prop_assert!(plan.pieces().iter().all(|p| p.shard < k as usize), "only data shards");
        let ct = fetch(&e, &plan);
        prop_assert_eq!(ct.len() as u64, plan.ciphertext_len());
        let got = plan.open(&key, &ct).unwrap();
        prop_assert!(got == data[start..end]);
    }
}

#[test]
fn small_range_touches_one_block_only() {
    let key = FileKey::from_bytes([1; 32]);
    let data = content(10 * 1024 * 1024, 3);
    let e = encode(&data, &key, EncoderConfig::default());
    let plan = ReadPlan::new(&e.manifest, 5_000_000..5_000_010).unwrap();
    assert_eq!(plan.ciphertext_len(), 65536 + 16);
    let got = plan.open(&key, &fetch(&e, &plan)).unwrap();
    assert_eq!(got, &data[5_000_000..5_000_010]);
}

#[test]
fn bad_ranges_and_bad_ciphertext_are_refused() {
    let key = FileKey::from_bytes([1; 32]);
    let e = encode(&content(1000, 1), &key, EncoderConfig::default());
    assert!(matches!(
        ReadPlan::new(&e.manifest, 10..1001),
        Err(RangeError::OutOfRange { .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 20..10;
    assert!(matches!(
        ReadPlan::new(&e.manifest, backwards),
        Err(RangeError::OutOfRange { .. })
    ));
    let plan = ReadPlan::new(&e.manifest, 0..1000).unwrap();
    let mut ct = fetch(&e, &plan);
    assert!(matches!(
        plan.open(&key, &ct[1..]),
        Err(RangeError::CiphertextLen { .. })
    ));
    ct[3] ^= 1;
    assert!(matches!(plan.open(&key, &ct), Err(RangeError::Decrypt(_))));
    assert_eq!(
        ReadPlan::new(&e.manifest, 7..7)
            .unwrap()
            .open(&key, &[])
            .unwrap(),
        Vec::<u8>::new()
    );
}
