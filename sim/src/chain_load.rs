//! What proofs and deals cost the chain, in bytes.
//!
//! A proof's size is the length of protocol's own encoding of a
//! `ProveStorage` transaction with the path lengths a node of the run has:
//! each deal (a file) is one commitment over the shards the node holds for
//! it, so a sample carries a 1 KiB chunk, its path in the shard and the
//! shard's path in that commitment. The state size is an estimate from the
//! records' field sizes (postcard varints, 32-byte keys and hashes).

use cairn_protocol::chain::merkle::Sibling;
use cairn_protocol::chain::{Address, Sig, SignedTx, Transaction, TxBody};
use cairn_protocol::proofs::{chunk, Answer, Sample, StorageProof, CHUNK_BYTES};
use cairn_protocol::ContentId;

fn log2_ceil(x: u64) -> usize {
    (64 - x.max(1).saturating_sub(1).leading_zeros()) as usize
}

/// Bytes of one `ProveStorage` transaction of `samples` samples, shards of
/// `shard_bytes` and commitments of `leaves` shards each, as protocol
/// encodes it (the largest values where a varint's length depends on it).
/// Builds one zero shard of `shard_bytes` (at most 32 MiB, as the scenario
/// checks) to take its chunk path.
pub fn proof_bytes(samples: u32, shard_bytes: u64, leaves: u64) -> u64 {
    let shard_bytes = shard_bytes.max(1);
    let chunks = chunk::chunk_count(shard_bytes);
    // The path of the last chunk of a zero shard: its length is the depth
    // of the chunk tree, which is all that matters here.
    let shard = vec![0u8; shard_bytes as usize];
    let chunk_path = chunk::prove(&shard, chunks - 1).unwrap_or_default();
    let sample = Sample {
        leaf: leaves.saturating_sub(1) as u32,
        shard: ContentId::of(b"shard"),
        size: shard_bytes,
        leaf_path: vec![
            Sibling {
                hash: [0xa5; 32],
                bytes: shard_bytes * leaves,
            };
            log2_ceil(leaves)
        ],
        answer: Answer::Chunk {
            data: vec![0; CHUNK_BYTES.min(shard_bytes) as usize],
            path: chunk_path,
        },
    };
    let tx = Transaction {
        genesis: cairn_protocol::chain::GenesisHash([0x5a; 32]),
        signer: Address([0x5a; 32]),
        nonce: u64::from(u32::MAX),
        fee: 1_000_000,
        body: TxBody::ProveStorage(StorageProof {
            node: Address([0x5a; 32]),
            period: u64::from(u32::MAX),
            samples: vec![sample; samples as usize],
        }),
    };
    SignedTx {
        tx,
        signature: Sig([0; 64]),
    }
    .encode()
    .len() as u64
}

/// A node's registry record: key, peer id, one address, capacity, used,
/// stake, status, deal count, registration height, earnings, proof record.
const NODE_RECORD: u64 = 32 + 39 + 41 + 6 * 9 + 1 + 5 + 20;
/// A deal: id, owner, size, price, start, end, escrow, opening height.
const DEAL: u64 = 32 + 32 + 6 * 9;
/// One node's commitment in a deal: node, root, shard count, bytes.
const COMMITMENT: u64 = 32 + 32 + 5 + 9;

/// The state's size with `nodes` registered nodes and one deal per file.
pub fn state_bytes(nodes: u64, files: u64, n: u64) -> u64 {
    nodes * NODE_RECORD + files * (DEAL + n * COMMITMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_protocol_encoded_and_fit_32_kib() {
        assert_eq!(log2_ceil(1), 0);
        assert_eq!(log2_ceil(2), 1);
        assert_eq!(log2_ceil(820), 10);
        // An 8 MiB segment's shard (820 KiB), one shard per commitment.
        let one = proof_bytes(16, 839_680, 1);
        assert!(one > 16 * 1024 && one < 32 * 1024, "{one}");
        // Deeper commitments add a sibling (hash and byte count) per level.
        let many = proof_bytes(16, 839_680, 64);
        assert!(many > one + 16 * 6 * 32, "{one} {many}");
        assert!(proof_bytes(1, 839_680, 1) < one / 10);
    }
}
