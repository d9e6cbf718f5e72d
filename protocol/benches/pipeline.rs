//! Throughput of the data path on one core: the whole encode pipeline
//! (encrypt + Reed–Solomon + hash every shard), decode with every data shard
//! present, decode rebuilding from parity, and each kernel alone so a
//! regression can be pinned on its stage.
#![allow(clippy::unwrap_used, missing_docs)]

use cairn_protocol::cipher::BlockCipher;
use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::erasure::ErasureCoder;
use cairn_protocol::{CodingParams, FileDecoder, FileKey, ReadEncoder, SegmentShards};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::{RngCore, SeedableRng};

const SIZE: usize = 64 * 1024 * 1024;

fn plaintext(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut v);
    v
}

fn encode_all(
    data: &[u8],
    key: &FileKey,
    config: EncoderConfig,
) -> (cairn_protocol::Manifest, Vec<Vec<Vec<u8>>>) {
    let mut enc = ReadEncoder::new(data, key, config).unwrap();
    let mut segs = Vec::new();
    while let Some(s) = enc.next_segment().unwrap() {
        segs.push(s.shards().map(<[u8]>::to_vec).collect());
        enc.recycle(s);
    }
    (enc.manifest().unwrap(), segs)
}

fn pipeline(c: &mut Criterion) {
    let data = plaintext(SIZE);
    let key = FileKey::from_bytes([1; 32]);
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).throughput(Throughput::Bytes(SIZE as u64));
    for (k, m) in [(10u16, 20u16), (3, 7)] {
        let config = EncoderConfig::new(CodingParams::new(k, m).unwrap());
        g.bench_function(BenchmarkId::new("encode", format!("k{k}_m{m}")), |b| {
            b.iter(|| {
                let mut enc = ReadEncoder::new(&data[..], &key, config).unwrap();
                while let Some(s) = enc.next_segment().unwrap() {
                    enc.recycle(s);
                }
            })
        });
    }
    let config = EncoderConfig::default();
    let (manifest, segs) = encode_all(&data, &key, config);
    // Shards are copied outside the timed part: the decoder takes them by value.
    let gather = |picks: &[usize]| -> Vec<SegmentShards> {
        segs.iter()
            .enumerate()
            .map(|(i, shards)| {
                let mut set = SegmentShards::new(&manifest, i as u64).unwrap();
                for &j in picks {
                    set.insert(j, shards[j].clone()).unwrap();
                }
                set
            })
            .collect()
    };
    let decode = |sets: Vec<SegmentShards>| {
        let mut dec = FileDecoder::new(&manifest, &key);
        let mut sink = std::io::sink();
        for set in sets {
            dec.write_segment(set, &mut sink).unwrap();
        }
        dec.finish().unwrap();
    };
    let all_data: Vec<usize> = (0..10).collect();
    let parity: Vec<usize> = (10..20).collect();
    g.bench_function("decode/all_data_shards", |b| {
        b.iter_batched(|| gather(&all_data), decode, BatchSize::LargeInput)
    });
    g.bench_function("decode/parity_only", |b| {
        b.iter_batched(|| gather(&parity), decode, BatchSize::LargeInput)
    });
    // What a reader pays to check shards as they arrive, on top of decoding.
    g.bench_function("verify_shards/all_data_shards", |b| {
        b.iter(|| gather(&all_data))
    });
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let segment = plaintext(10 * 838_861);
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Bytes(segment.len() as u64));
    let cipher = BlockCipher::new(&FileKey::from_bytes([1; 32]));
    let mut block = Vec::with_capacity(65536 + 16);
    g.bench_function("seal_64KiB_blocks", |b| {
        b.iter(|| {
            for (i, chunk) in segment.chunks(65536).enumerate() {
                block.clear();
                block.extend_from_slice(chunk);
                cipher.seal(i as u64, false, &mut block).unwrap();
            }
        })
    });
    g.bench_function("blake3_30_shards_of_3x", |b| {
        b.iter(|| {
            for shard in segment.chunks(838_861) {
                for _ in 0..3 {
                    std::hint::black_box(blake3::hash(shard));
                }
            }
        })
    });
    g.finish();

    // Reed–Solomon k = 10, m = 20 on one 8 MiB segment, three ways: our
    // coder (64 KiB column slices), the same library on whole shards in one
    // call, and reed-solomon-simd (Leopard, O(n log n), GF(2^16)) for scale.
    const S: usize = 839_680;
    let segment = plaintext(10 * S);
    let mut g = c.benchmark_group("reed_solomon_k10_m20");
    g.throughput(Throughput::Bytes(segment.len() as u64));
    let coder = ErasureCoder::new(CodingParams::new(10, 20).unwrap());
    let mut parity = vec![0u8; 20 * S];
    g.bench_function("slices_64KiB", |b| {
        b.iter(|| coder.encode(&segment, &mut parity, S).unwrap())
    });
    let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(10, 20).unwrap();
    g.bench_function("whole_shards", |b| {
        b.iter(|| {
            let data: Vec<&[u8]> = segment.chunks(S).collect();
            let mut out: Vec<&mut [u8]> = parity.chunks_mut(S).collect();
            rs.encode_sep(&data, &mut out).unwrap();
        })
    });
    g.bench_function("reed_solomon_simd", |b| {
        b.iter(|| {
            let data: Vec<&[u8]> = segment.chunks(S).collect();
            std::hint::black_box(reed_solomon_simd::encode(10, 20, &data).unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, kernels);
criterion_main!(benches);
