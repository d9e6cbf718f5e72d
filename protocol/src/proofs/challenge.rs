//! Which bytes a node must prove, and when.
//!
//! * **When.** Period `p` is the chain's epoch `p`: blocks `[p·E, (p+1)·E)`.
//!   Each node gets its own window of `W` blocks inside the period, at an
//!   offset drawn from its address and the period, so proofs spread over
//!   the period's blocks instead of arriving all at once. The window *opens*
//!   at a height `open`; its seed is the beacon the engine handed in with
//!   block `open`, so nobody (the node included) knows the challenge before
//!   that block is final, and the proof is accepted in blocks
//!   `open + 1 ..= open + W` only.
//! * **What.** `samples` byte offsets drawn over *all* bytes the node has
//!   committed in active deals (deals in id order, shards in leaf order), so
//!   every byte is equally likely and a node cannot hide a lost shard in a
//!   large deal. A challenged byte names its 1 KiB chunk.
//! * **In sequence.** Sample `i + 1`'s offset hashes in the chaining value of
//!   sample `i`'s chunk, so a node that keeps its data elsewhere must fetch
//!   the chunks one after another, a round trip each, inside its window.

use std::sync::LazyLock;

use blake3::hazmat::{hash_derive_key_context, ContextKey, HasherExt};

use crate::chain::Address;

use super::ProofParams;

const WINDOW_CONTEXT: &str = "cairn 2026-12 v1 proof window";
const SAMPLE_CONTEXT: &str = "cairn 2026-12 v1 proof sample";
const LOST_CONTEXT: &str = "cairn 2026-12 v1 lost chunk link";

// Hashed once: a proof draws every sample through it.
static SAMPLE_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(SAMPLE_CONTEXT));

/// A node's proof window in one period: the seed comes with block `open`;
/// proofs are accepted at heights `open + 1 ..= close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub period: u64,
    pub open: u64,
    pub close: u64,
}

impl Window {
    /// Whether a proof included at `height` is on time.
    pub fn accepts(&self, height: u64) -> bool {
        self.open < height && height <= self.close
    }
}

/// Node `node`'s window in `period`.
pub fn window(params: &ProofParams, node: &Address, period: u64) -> Window {
    let mut h = blake3::Hasher::new_derive_key(WINDOW_CONTEXT);
    h.update(&node.0);
    h.update(&period.to_le_bytes());
    let mut word = [0u8; 8];
    h.finalize_xof().fill(&mut word);
    // Every window closes inside its period: open + W ≤ (p+1)·E − 1.
    let spread = params
        .period_blocks
        .saturating_sub(params.window_blocks)
        .max(1);
    let open = period
        .saturating_mul(params.period_blocks)
        .saturating_add(u64::from_le_bytes(word) % spread);
    Window {
        period,
        open,
        close: open.saturating_add(params.window_blocks),
    }
}

/// The byte offset, among the node's `total` committed bytes, of sample
/// `index`; `prev` links it to the previous sample ([`chunk_link`] of its
/// chunk, zeros for the first). `total` must be positive.
///
/// BLAKE3 in key-derivation mode, 16 output bytes as an integer reduced
/// modulo `total`: the bias is below 2^-64 for any total under 2^64.
pub fn sample_offset(
    seed: &[u8; 32],
    node: &Address,
    period: u64,
    index: u32,
    prev: &[u8; 32],
    total: u64,
) -> u64 {
    let mut h = blake3::Hasher::new_from_context_key(&SAMPLE_KEY);
    h.update(seed);
    h.update(&node.0);
    h.update(&period.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(prev);
    let mut word = [0u8; 16];
    h.finalize_xof().fill(&mut word);
    (u128::from_le_bytes(word) % u128::from(total.max(1))) as u64
}

/// What links a sample answered "lost" to the next one: derived from the
/// shard and chunk, since there is no chunk to hash.
pub fn lost_link(shard: &crate::ContentId, chunk: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(LOST_CONTEXT);
    h.update(shard.digest());
    h.update(&chunk.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Where a byte offset falls in a list of consecutive byte counts: the
/// index of the part and the offset inside it. `None` past the end.
pub fn locate(parts: impl IntoIterator<Item = u64>, offset: u64) -> Option<(usize, u64)> {
    let mut start = 0u64;
    for (i, len) in parts.into_iter().enumerate() {
        let end = start.checked_add(len)?;
        if offset < end {
            return Some((i, offset - start));
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ProofParams {
        ProofParams {
            period_blocks: 20,
            window_blocks: 5,
            ..ProofParams::default()
        }
    }

    #[test]
    fn windows_stay_inside_their_period_and_spread() {
        let p = params();
        let mut opens = std::collections::BTreeSet::new();
        for n in 0..200u8 {
            let node = Address([n; 32]);
            for period in 0..5 {
                let w = window(&p, &node, period);
                assert!(w.open >= period * 20);
                assert!(w.close < (period + 1) * 20);
                assert_eq!(w.close - w.open, 5);
                assert!(!w.accepts(w.open) && w.accepts(w.open + 1) && w.accepts(w.close));
                assert!(!w.accepts(w.close + 1));
                opens.insert(w.open - period * 20);
            }
        }
        assert_eq!(opens.len(), 15, "all 15 offsets are used");
    }

    #[test]
    fn offsets_are_deterministic_and_depend_on_every_input() {
        let a = Address([1; 32]);
        let base = sample_offset(&[7; 32], &a, 3, 0, &[0; 32], 1 << 40);
        assert_eq!(base, sample_offset(&[7; 32], &a, 3, 0, &[0; 32], 1 << 40));
        assert_ne!(base, sample_offset(&[8; 32], &a, 3, 0, &[0; 32], 1 << 40));
        assert_ne!(
            base,
            sample_offset(&[7; 32], &Address([2; 32]), 3, 0, &[0; 32], 1 << 40)
        );
        assert_ne!(base, sample_offset(&[7; 32], &a, 4, 0, &[0; 32], 1 << 40));
        assert_ne!(base, sample_offset(&[7; 32], &a, 3, 1, &[0; 32], 1 << 40));
        assert_ne!(base, sample_offset(&[7; 32], &a, 3, 0, &[1; 32], 1 << 40));
        assert!(sample_offset(&[7; 32], &a, 3, 0, &[0; 32], 10) < 10);
    }

    #[test]
    fn locate_maps_each_offset_to_one_part() {
        let parts = [3u64, 0, 5, 2];
        let got: Vec<_> = (0..10).map(|o| locate(parts, o).unwrap()).collect();
        assert_eq!(got[0], (0, 0));
        assert_eq!(got[2], (0, 2));
        assert_eq!(got[3], (2, 0));
        assert_eq!(got[7], (2, 4));
        assert_eq!(got[8], (3, 0));
        assert_eq!(locate(parts, 10), None);
        assert_eq!(locate([u64::MAX, 5], u64::MAX), None);
    }
}
