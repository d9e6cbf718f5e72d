//! What proofs and deals cost the chain, in bytes.
//!
//! Estimates from the encodings' field sizes (postcard: varints, 32-byte
//! hashes and keys, 64-byte signatures), not from encoding real values: the
//! simulator holds no shard ids or paths.

/// A transaction's envelope: chain id, signer, nonce, fee, signature.
const TX_ENVELOPE: u64 = 16 + 32 + 8 + 8 + 64;
/// A sample's fixed part: leaf index, shard id, size, answer tag, lengths.
const SAMPLE_FIXED: u64 = 5 + 38 + 10 + 1 + 4;
/// A Merkle-sum sibling: a hash and a byte count.
const SUM_SIBLING: u64 = 32 + 9;

fn log2_ceil(x: u64) -> u64 {
    u64::from(64 - x.max(1).saturating_sub(1).leading_zeros())
}

/// Bytes of one `ProveStorage` transaction with `samples` samples from a
/// node holding `leaves` shards of `shard_bytes` each.
pub fn proof_bytes(samples: u32, shard_bytes: u64, leaves: u64) -> u64 {
    let chunks = shard_bytes.div_ceil(crate::rules::CHUNK_BYTES);
    let chunk_path = 32 * log2_ceil(chunks);
    let leaf_path = SUM_SIBLING * log2_ceil(leaves);
    let sample = SAMPLE_FIXED + crate::rules::CHUNK_BYTES + chunk_path + leaf_path;
    TX_ENVELOPE + 32 + 8 + u64::from(samples) * sample
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
    fn sixteen_samples_fit_the_32_kib_bound() {
        assert_eq!(log2_ceil(1), 0);
        assert_eq!(log2_ceil(2), 1);
        assert_eq!(log2_ceil(820), 10);
        // An 8 MiB segment's shard (820 KiB) on a node holding 10 000 shards.
        let b = proof_bytes(16, 839_680, 10_000);
        assert!(b < 32 * 1024, "{b}");
        assert!(b > 16 * 1024, "{b}");
        // Paths grow with the logarithm of what is held.
        assert!(proof_bytes(16, 839_680, 1 << 20) > b);
        assert_eq!(proof_bytes(1, 1024, 1), 128 + 40 + 58 + 1024);
    }
}
