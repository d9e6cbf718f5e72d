//! Helpers shared by the integration tests: encode a byte string, and put
//! shards back together.
#![allow(dead_code, clippy::unwrap_used)]

pub mod chain;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::{FileDecoder, FileKey, Manifest, ReadEncoder, SegmentShards};

/// Every shard of every segment, as encoded.
#[derive(Debug)]
pub struct Encoded {
    pub manifest: Manifest,
    pub segments: Vec<Vec<Vec<u8>>>,
}

pub fn encode(data: &[u8], key: &FileKey, config: EncoderConfig) -> Encoded {
    let mut enc = ReadEncoder::new(data, key, config).unwrap();
    let mut segments = Vec::new();
    while let Some(seg) = enc.next_segment().unwrap() {
        assert_eq!(seg.index(), segments.len() as u64);
        segments.push(seg.shards().map(<[u8]>::to_vec).collect());
        enc.recycle(seg);
    }
    Encoded {
        manifest: enc.manifest().unwrap(),
        segments,
    }
}

/// Decodes using, for each segment, the shard indices `pick(segment)` in that order.
pub fn decode_with(
    e: &Encoded,
    key: &FileKey,
    mut pick: impl FnMut(u64) -> Vec<usize>,
) -> Result<Vec<u8>, cairn_protocol::decoder::DecodeError> {
    let mut dec = FileDecoder::new(&e.manifest, key);
    let mut out = Vec::new();
    for (i, shards) in e.segments.iter().enumerate() {
        let mut set = SegmentShards::new(&e.manifest, i as u64)?;
        for j in pick(i as u64) {
            set.insert(j, shards[j].clone()).unwrap();
        }
        dec.write_segment(set, &mut out)?;
    }
    dec.finish()?;
    Ok(out)
}

/// The ciphertext stream, rebuilt from the data shards.
pub fn ciphertext(e: &Encoded) -> Vec<u8> {
    let layout = e.manifest.layout();
    let k = layout.params().k();
    let mut out = Vec::new();
    for (i, shards) in e.segments.iter().enumerate() {
        let geo = layout.segment(i as u64).unwrap();
        let mut seg: Vec<u8> = shards[..k].concat();
        seg.truncate((geo.ciphertext.end - geo.ciphertext.start) as usize);
        out.extend_from_slice(&seg);
    }
    out
}

/// Deterministic test content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}
