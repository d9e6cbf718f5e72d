//! Blocks as a validator receives them from its peers (consensus proposals,
//! marshal's backfill, the resolver), decoded with the block's real config.
//!
//! Every input is used twice: as the bytes of a block, and as fuzzed fields
//! (`arbitrary`) of a block built with `Block::new` from real signed
//! transactions and real seed signatures, encoded, decoded, then bent.
//! Plain bytes reach the transactions (postcard takes any bytes for keys
//! and signatures) but never a seed, which must be a point on BLS12-381.
//!
//! Checks besides "no panic": a decoded block re-encodes to exactly its
//! bytes (its encoded size is their length, within the bound consensus
//! allocates for), its digest is BLAKE3 of those bytes and the same after
//! decoding again; a built block decodes exactly when each transaction
//! passes `SignedTx::decode` within the block's limits, and decodes to
//! itself with the same digest.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use cairn_chain::block::{MAX_BLOCK_TXS, MAX_BLOCK_TX_BYTES};
use cairn_chain::{Block, BlockParts, BlockSeed};
use cairn_chain_fuzz::{bend, ArbTx, Bend, COMMITTEE, GENESIS};
use cairn_protocol::chain::{SignedTx, MAX_TX_BYTES};
use commonware_codec::{DecodeExt, Encode, EncodeSize};
use commonware_consensus::types::Height;
use commonware_consensus::BoundedBlock;
use commonware_cryptography::blake3::{Blake3, Digest};
use commonware_cryptography::{Digestible, Hasher};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Fields {
    parent: [u8; 32],
    height: u64,
    view: u64,
    timestamp_ms: u64,
    /// A seed's view and which of the committee's honest seeds it carries.
    seed: Option<(u64, u8)>,
    state_root: [u8; 32],
    txs: Vec<ArbTx>,
    bends: Vec<Bend>,
}

fuzz_target!(|data: &[u8]| {
    decodes_canonically(data);
    if let Ok(fields) = Fields::arbitrary_take_rest(Unstructured::new(data)) {
        built(fields);
    }
});

/// Decodes `bytes` as a block, from owned bytes as p2p delivers them; what
/// decodes must be exactly its bytes.
fn decodes_canonically(bytes: &[u8]) -> Option<Block> {
    let block = Block::decode(Bytes::copy_from_slice(bytes)).ok()?;
    let again = block.encode();
    assert!(
        again.as_ref() == bytes,
        "a block decoded from bytes it does not encode to"
    );
    assert_eq!(block.encode_size(), bytes.len());
    assert!(bytes.len() <= Block::max_encode_size(&()));
    assert_eq!(block.digest(), Blake3::hash(&[bytes]));
    assert_eq!(block.id(), block.digest().0);
    let twice = Block::decode(Bytes::copy_from_slice(bytes)).expect("decodes again");
    assert_eq!(twice.digest(), block.digest());
    assert_eq!(twice, block);
    let _ = block.beacon(&GENESIS);
    Some(block)
}

fn built(fields: Fields) {
    let seeds = &COMMITTEE.seeds;
    let txs: Vec<SignedTx> = fields.txs.iter().map(ArbTx::sign).collect();
    let block = Block::new(BlockParts {
        parent: Digest(fields.parent),
        height: Height::new(fields.height),
        view: fields.view,
        timestamp_ms: fields.timestamp_ms,
        seed: fields.seed.map(|(view, which)| BlockSeed {
            view,
            signature: seeds[which as usize % seeds.len()],
        }),
        state_root: fields.state_root,
        txs,
    });
    let bytes = block.encode().to_vec();
    assert_eq!(block.encode_size(), bytes.len());
    assert_eq!(block.digest(), Blake3::hash(&[&bytes]));
    // What a reader takes, from the limits rather than from the decoder.
    let encodings: Vec<Vec<u8>> = block.txs.iter().map(SignedTx::encode).collect();
    let readable = encodings.len() <= MAX_BLOCK_TXS
        && encodings.iter().map(Vec::len).sum::<usize>() <= MAX_BLOCK_TX_BYTES
        && encodings
            .iter()
            .all(|tx| tx.len() <= MAX_TX_BYTES && SignedTx::decode(tx).is_ok());
    match decodes_canonically(&bytes) {
        Some(back) => {
            assert!(readable, "a block with an unreadable transaction decoded");
            assert_eq!(back, block);
            assert_eq!(back.digest(), block.digest());
        }
        None => assert!(!readable, "a block within the limits did not decode"),
    }
    if !fields.bends.is_empty() {
        let mut bent = bytes;
        bend(&mut bent, &fields.bends);
        decodes_canonically(&bent);
    }
}
