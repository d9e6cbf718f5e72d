//! Every way of damaging a file is caught with its own typed error, and
//! never turns into wrong plaintext.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_protocol::cipher::{BlockCipher, DecryptError, StreamDecryptor, StreamError};
use cairn_protocol::decoder::{DecodeError, ShardError};
use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::manifest::ManifestError;
use cairn_protocol::{CodingParams, FileKey, Manifest, SegmentShards};
use common::*;

const BLOCK: usize = 64 * 1024;
const SEALED: usize = BLOCK + 16;

fn config() -> EncoderConfig {
    EncoderConfig {
        params: CodingParams::new(3, 2).unwrap(),
        block_size: BLOCK as u32,
        shard_size: 32 * 1024,
    }
}

fn decrypt(e: &Encoded, key: &FileKey, ct: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let mut d = StreamDecryptor::new(key, *e.manifest.layout());
    let mut out = Vec::new();
    match d.feed(&mut ct.to_vec(), &mut out) {
        Ok(()) => {}
        Err(StreamError::Decrypt(e)) => return Err(e),
        Err(StreamError::Io(e)) => panic!("{e}"),
    }
    d.finish()?;
    Ok(out)
}

fn three_blocks() -> (FileKey, Vec<u8>, Encoded, Vec<u8>) {
    let key = FileKey::from_bytes([5; 32]);
    let data = content(3 * BLOCK - 100, 1);
    let e = encode(&data, &key, config());
    let ct = ciphertext(&e);
    assert_eq!(decrypt(&e, &key, &ct).unwrap(), data);
    (key, data, e, ct)
}

#[test]
fn bit_flip_is_corrupt_block() {
    let (key, _, e, ct) = three_blocks();
    for (pos, block) in [(0, 0), (SEALED + 7, 1), (ct.len() - 1, 2)] {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        assert_eq!(
            decrypt(&e, &key, &bad),
            Err(DecryptError::Corrupt { block }),
            "flip at {pos}"
        );
    }
}

#[test]
fn reordered_blocks_are_corrupt() {
    let (key, _, e, ct) = three_blocks();
    let mut swapped = ct[SEALED..2 * SEALED].to_vec();
    swapped.extend_from_slice(&ct[..SEALED]);
    swapped.extend_from_slice(&ct[2 * SEALED..]);
    assert_eq!(
        decrypt(&e, &key, &swapped),
        Err(DecryptError::Corrupt { block: 0 })
    );
}

#[test]
fn spliced_block_from_another_file_is_corrupt() {
    let (key, _, e, ct) = three_blocks();
    let other = encode(
        &content(3 * BLOCK - 100, 2),
        &FileKey::from_bytes([6; 32]),
        config(),
    );
    let other_ct = ciphertext(&other);
    let mut spliced = ct.clone();
    spliced[SEALED..2 * SEALED].copy_from_slice(&other_ct[SEALED..2 * SEALED]);
    assert_eq!(
        decrypt(&e, &key, &spliced),
        Err(DecryptError::Corrupt { block: 1 })
    );
}

#[test]
fn truncation_is_detected() {
    let (key, _, e, ct) = three_blocks();
    // Cut mid-block: the layout expects more.
    assert!(matches!(
        decrypt(&e, &key, &ct[..ct.len() - 10]),
        Err(DecryptError::TooShort { .. })
    ));
    // Cut at a block boundary.
    assert!(matches!(
        decrypt(&e, &key, &ct[..2 * SEALED]),
        Err(DecryptError::TooShort { .. })
    ));
    // A forged layout that claims the file ends after block 0: the block was
    // not sealed as last, and the decryptor says the stream was truncated.
    let cipher = BlockCipher::new(&key);
    let mut first = ct[..SEALED].to_vec();
    assert_eq!(
        cipher.open(0, true, &mut first),
        Err(DecryptError::Truncated { block: 0 })
    );
    // Extra bytes after the last block.
    let mut long = ct.clone();
    long.extend_from_slice(&[0; 5]);
    assert_eq!(
        decrypt(&e, &key, &long),
        Err(DecryptError::TrailingData { extra: 5 })
    );
}

#[test]
fn wrong_key_is_named_as_such() {
    let (key, _, e, ct) = three_blocks();
    let wrong = FileKey::from_bytes([7; 32]);
    assert_eq!(
        decrypt(&e, &wrong, &ct),
        Err(DecryptError::Corrupt { block: 0 })
    );
    let (id, sealed) = e.manifest.seal(&key);
    assert_eq!(
        Manifest::open(&id, &sealed, &wrong),
        Err(ManifestError::WrongKey)
    );
}

#[test]
fn corrupt_shards_are_refused_and_others_suffice() {
    let (key, data, e, _) = three_blocks();
    let mut set = SegmentShards::new(&e.manifest, 0).unwrap();
    let mut bad = e.segments[0][0].clone();
    bad[100] ^= 0x40;
    assert!(matches!(
        set.insert(0, bad),
        Err(ShardError::Mismatch { index: 0, .. })
    ));
    assert!(matches!(
        set.insert(1, vec![0; 3]),
        Err(ShardError::Size { index: 1, .. })
    ));
    assert!(matches!(
        set.insert(9, vec![]),
        Err(ShardError::Index { index: 9, n: 5 })
    ));
    // A good shard offered at the wrong index is refused too.
    let foreign = e.segments[0][2].clone();
    assert!(matches!(
        set.insert(1, foreign),
        Err(ShardError::Mismatch { .. })
    ));
    assert_eq!(set.good(), 0);

    // Decode segment 0 from shards 1, 3, 4 after refusing a corrupt 0.
    let out = decode_with(
        &e,
        &key,
        |s| if s == 0 { vec![1, 3, 4] } else { vec![0, 1, 2] },
    )
    .unwrap();
    assert!(out == data);
}

#[test]
fn too_few_or_misordered_segments_fail() {
    let (key, _, e, _) = three_blocks();
    let err = decode_with(&e, &key, |_| vec![0, 4]).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::NotEnoughShards {
            segment: 0,
            have: 2,
            need: 3
        }
    ));

    let mut dec = cairn_protocol::FileDecoder::new(&e.manifest, &key);
    let set = SegmentShards::new(&e.manifest, 1).unwrap();
    assert!(matches!(
        dec.write_segment(set, &mut Vec::new()),
        Err(DecodeError::OutOfOrder {
            expected: 0,
            got: 1
        })
    ));
    assert!(matches!(dec.finish(), Err(DecodeError::Incomplete { .. })));
    assert!(matches!(
        SegmentShards::new(&e.manifest, 99),
        Err(DecodeError::NoSuchSegment { index: 99, .. })
    ));
}
