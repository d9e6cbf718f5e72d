//! Encode → shards → decode gives back the same bytes, for boundary sizes,
//! random sizes, any k of n shards, and shards delivered in any order.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::{CodingParams, FileKey};
use common::*;
use proptest::prelude::*;

const BLOCK: usize = 64 * 1024;

fn small_config(k: u16, m: u16, shard_size: u32) -> EncoderConfig {
    EncoderConfig {
        params: CodingParams::new(k, m).unwrap(),
        block_size: BLOCK as u32,
        shard_size,
    }
}

fn all_data(e: &Encoded) -> impl FnMut(u64) -> Vec<usize> + '_ {
    let k = e.manifest.params().k();
    move |_| (0..k).collect()
}

/// The plaintext length whose ciphertext is exactly `c` bytes.
fn plaintext_for_ciphertext(c: usize) -> usize {
    (1..=c / 16)
        .map(|blocks| c - 16 * blocks)
        .find(|&p| p.div_ceil(BLOCK).max(1) * 16 + p == c)
        .unwrap()
}

#[test]
fn boundary_sizes_round_trip() {
    let key = FileKey::from_bytes([9; 32]);
    // A small segment (3 × 8 KiB) makes blocks span segments; the default
    // one makes segments span blocks. Both must work at every boundary.
    for config in [
        small_config(3, 2, 8192),
        EncoderConfig::new(CodingParams::new(4, 2).unwrap()).with_segment_target(256 * 1024),
    ] {
        let segment = config.params.k() * config.shard_size as usize;
        let sizes = [
            0,
            1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            segment - 1,
            segment,
            segment + 1,
            // plaintext sizes whose ciphertext ends exactly on a segment boundary
            plaintext_for_ciphertext(segment),
            plaintext_for_ciphertext(2 * segment),
            3 * segment + 17,
        ];
        for size in sizes {
            let data = content(size, size as u64);
            let e = encode(&data, &key, config);
            assert_eq!(e.manifest.plaintext_len(), size as u64);
            assert_eq!(e.segments.len() as u64, e.manifest.segment_count());
            let got = decode_with(&e, &key, all_data(&e)).unwrap();
            assert!(got == data, "size {size} with {config:?}");
            // and from parity alone where m allows
            let n = config.params.n();
            let m = config.params.m();
            let got = decode_with(&e, &key, |_| (m..n).collect()).unwrap();
            assert!(got == data, "size {size} from the last k shards");
        }
    }
}

#[test]
fn large_file_with_default_parameters_and_m_lost_shards() {
    let key = FileKey::generate();
    let data = content(24 * 1024 * 1024 + 12_345, 77);
    let e = encode(&data, &key, EncoderConfig::default());
    assert_eq!(e.manifest.params().n(), 30);
    assert!(e.segments.len() >= 3);
    // Lose 20 shards of every segment, a different 20 each time.
    let got = decode_with(&e, &key, |s| {
        (0..30).filter(|j| (j + s as usize) % 3 == 0).collect()
    })
    .unwrap();
    assert!(got == data);
}

#[test]
fn manifest_survives_sealing() {
    let key = FileKey::generate();
    let e = encode(&content(300_000, 1), &key, small_config(5, 3, 4096));
    let (id, sealed) = e.manifest.seal(&key);
    let opened = cairn_protocol::Manifest::open(&id, &sealed, &key).unwrap();
    assert_eq!(opened, e.manifest);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn any_k_shards_in_any_order(
        size in 0usize..600_000,
        k in 1u16..7,
        m in 1u16..5,
        shard_kib in prop::sample::select(vec![4u32, 8, 20, 64]),
        seed in any::<u64>(),
    ) {
        let key = FileKey::from_bytes([seed as u8; 32]);
        let data = content(size, seed);
        let e = encode(&data, &key, small_config(k, m, shard_kib * 1024));
        let n = (k + m) as usize;
        let got = decode_with(&e, &key, |s| {
            // a seeded shuffle of 0..n, then keep k
            let mut idx: Vec<usize> = (0..n).collect();
            let mut x = seed ^ s.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                idx.swap(i, (x % (i as u64 + 1)) as usize);
            }
            idx.truncate(k as usize);
            idx
        }).unwrap();
        prop_assert!(got == data);
    }

    #[test]
    fn feeding_in_odd_pieces_gives_the_same_shards(size in 0usize..300_000, piece in 1usize..70_000) {
        let key = FileKey::from_bytes([3; 32]);
        let config = small_config(3, 2, 8192);
        let data = content(size, size as u64);
        let whole = encode(&data, &key, config);
        let mut enc = cairn_protocol::FileEncoder::new(&key, config).unwrap();
        let mut segments = Vec::new();
        for chunk in data.chunks(piece) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let used = enc.feed(rest).unwrap();
                rest = &rest[used..];
                while let Some(s) = enc.take_segment().unwrap() {
                    segments.push(s.ids().to_vec());
                }
            }
        }
        enc.finish().unwrap();
        while let Some(s) = enc.take_segment().unwrap() {
            segments.push(s.ids().to_vec());
        }
        prop_assert_eq!(enc.manifest().unwrap(), whole.manifest.clone());
        prop_assert_eq!(segments.concat(), whole.manifest.shards().to_vec());
    }
}

#[test]
fn random_sizes_up_to_tens_of_mib() {
    let key = FileKey::generate();
    let mut seed = 0x5eed_u64;
    for _ in 0..3 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = (seed >> 33) as usize % (20 * 1024 * 1024);
        let data = content(size, seed);
        let e = encode(
            &data,
            &key,
            EncoderConfig::new(CodingParams::new(10, 5).unwrap()),
        );
        let got = decode_with(&e, &key, |s| {
            (0..15).filter(|j| (j + s as usize) % 3 != 0).collect()
        })
        .unwrap();
        assert!(got == data, "size {size}");
    }
}

#[test]
fn async_reader_gives_the_same_manifest_as_sync() {
    use cairn_protocol::AsyncReadEncoder;
    let key = FileKey::from_bytes([4; 32]);
    let config = small_config(3, 2, 8192);
    let data = content(200_000, 9);
    let sync = encode(&data, &key, config);
    let manifest = futures_lite::future::block_on(async {
        let mut enc =
            AsyncReadEncoder::new(futures_lite::io::Cursor::new(&data), &key, config).unwrap();
        let mut n = 0;
        while let Some(seg) = enc.next_segment().await.unwrap() {
            assert_eq!(seg.index(), n);
            n += 1;
            enc.recycle(seg);
        }
        enc.manifest().unwrap()
    });
    assert_eq!(manifest, sync.manifest);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Resuming at any offset writes exactly the file's suffix from the
    /// block boundary at or before that offset, for segments that cut
    /// blocks and for blocks that span segments.
    #[test]
    fn resuming_at_any_offset_writes_the_suffix(
        size in 0usize..400_000,
        at in 0f64..1.2,
        shard_kib in prop::sample::select(vec![4u32, 8, 36]),
        seed in any::<u64>(),
    ) {
        let key = FileKey::from_bytes([seed as u8; 32]);
        let data = content(size, seed);
        let e = encode(&data, &key, small_config(3, 2, shard_kib * 1024));
        let offset = (size as f64 * at) as u64;
        let (mut dec, from) = cairn_protocol::FileDecoder::resume_at(&e.manifest, &key, offset);
        prop_assert!(from <= offset.min(size as u64));
        prop_assert_eq!(from % BLOCK as u64, if from == size as u64 { from % BLOCK as u64 } else { 0 });
        let mut out = Vec::new();
        for i in dec.next_segment()..e.manifest.segment_count() {
            let mut set = cairn_protocol::SegmentShards::new(&e.manifest, i).unwrap();
            // parity for the first resumed segment, so a rebuilt segment is skipped into too
            let pick: Vec<usize> = if i % 2 == 0 { vec![1, 3, 4] } else { vec![0, 1, 2] };
            for j in pick {
                set.insert(j, e.segments[i as usize][j].clone()).unwrap();
            }
            dec.write_segment(set, &mut out).unwrap();
        }
        dec.finish().unwrap();
        prop_assert!(out == data[from as usize..], "size {} offset {} from {}", size, offset, from);
    }
}

#[test]
fn verified_inserts_check_sizes_and_indices_and_decode() {
    let key = FileKey::from_bytes([3; 32]);
    let data = content(100_000, 5);
    let e = encode(&data, &key, small_config(2, 2, 8192));
    let mut dec = cairn_protocol::FileDecoder::new(&e.manifest, &key);
    let mut out = Vec::new();
    for (i, shards) in e.segments.iter().enumerate() {
        let mut set = cairn_protocol::SegmentShards::new(&e.manifest, i as u64).unwrap();
        assert!(set.insert_verified(9, shards[0].clone()).is_err());
        assert!(set.insert_verified(0, shards[0][1..].to_vec()).is_err());
        set.insert_verified(3, shards[3].clone()).unwrap();
        set.insert_verified(0, shards[0].clone()).unwrap();
        assert!(set.is_decodable());
        dec.write_segment(set, &mut out).unwrap();
    }
    dec.finish().unwrap();
    assert!(out == data);
}
