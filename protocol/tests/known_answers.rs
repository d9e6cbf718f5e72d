//! Known-answer vectors: fixed inputs must give fixed ids, byte for byte.
//!
//! A change to any format (ids, encryption, coding, manifest, key
//! derivation, challenges) changes these values and fails this test. If the
//! change is intended, bump the format version, document it in
//! docs/format.md, and regenerate with
//! `CAIRN_BLESS_VECTORS=1 cargo test -p cairn-protocol --test known_answers`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cairn_protocol::chain::{merkle, Address};
use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::keys::RecoveryPhrase;
use cairn_protocol::proofs::{challenge, chunk, ProofParams};
use cairn_protocol::shard::Outboard;
use cairn_protocol::{Capability, CodingParams, ContentId, FileKey};

const VECTORS: &str = "tests/vectors/known_answers.txt";

/// The fixed file: byte i is (31·i + 7) mod 251.
fn fixed_file(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((31 * i + 7) % 251) as u8).collect()
}

fn compute() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("cid_of_hello".into(), ContentId::of(b"hello").to_string());

    let key = FileKey::from_bytes([0x42; 32]);
    let config = EncoderConfig {
        params: CodingParams::new(3, 2).unwrap(),
        block_size: 65536,
        shard_size: 16384,
    };
    let e = common::encode(&fixed_file(200_000), &key, config);
    let (manifest_id, sealed) = e.manifest.seal(&key);
    v.insert("file.manifest_id".into(), manifest_id.to_string());
    v.insert("file.sealed_manifest_len".into(), sealed.len().to_string());
    v.insert(
        "file.ciphertext_blake3".into(),
        blake3::hash(&common::ciphertext(&e)).to_hex().to_string(),
    );
    v.insert(
        "file.capability".into(),
        Capability::new(manifest_id, key.clone()).to_string(),
    );
    let mut ids = String::new();
    for (i, id) in e.manifest.shards().iter().enumerate() {
        write!(ids, "{}{id}", if i == 0 { "" } else { "," }).unwrap();
    }
    v.insert("file.shard_ids".into(), ids);

    let first = &e.segments[0][0];
    let ob = Outboard::compute(first);
    let path: Vec<u8> = chunk::prove(first, 5).unwrap().concat();
    v.insert(
        "file.shard0.chunk5_path_blake3".into(),
        blake3::hash(&path).to_hex().to_string(),
    );
    v.insert(
        "file.shard0.outboard_blake3".into(),
        blake3::hash(ob.hashes()).to_hex().to_string(),
    );
    let shards: Vec<(ContentId, u64)> = e.manifest.shards().iter().map(|id| (*id, 16384)).collect();
    v.insert(
        "file.commitment_root".into(),
        hex::encode(merkle::root(&shards).unwrap()),
    );
    v.insert(
        "challenge.sample.seed7.node1.period3.index2".into(),
        challenge::sample_offset(&[7; 32], &Address([1; 32]), 3, 2, &[9; 32], 1 << 40).to_string(),
    );
    v.insert(
        "challenge.window.node1.period3".into(),
        challenge::window(&ProofParams::default(), &Address([1; 32]), 3)
            .open
            .to_string(),
    );

    let empty = common::encode(&[], &key, EncoderConfig::default());
    v.insert(
        "empty.manifest_id".into(),
        empty.manifest.seal(&key).0.to_string(),
    );

    let phrase = RecoveryPhrase::from_entropy(&[0u8; 32]);
    let master = phrase.master();
    v.insert("keys.phrase".into(), phrase.words());
    v.insert(
        "keys.account_public".into(),
        hex::encode(master.account_key().verifying_key().to_bytes()),
    );
    v.insert("keys.namespace".into(), hex::encode(master.namespace_key()));
    v
}

fn render(v: &BTreeMap<String, String>) -> String {
    v.iter().map(|(k, val)| format!("{k} {val}\n")).collect()
}

#[test]
fn formats_match_known_answers() {
    let got = compute();
    if std::env::var_os("CAIRN_BLESS_VECTORS").is_some() {
        std::fs::write(VECTORS, render(&got)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(VECTORS).unwrap();
    let expected: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(expected.len(), got.len(), "vector names changed");
    for (name, want) in &expected {
        assert_eq!(got.get(name), Some(want), "known answer {name}");
    }
}
