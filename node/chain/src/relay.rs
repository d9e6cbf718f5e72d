//! The framing of the validators' transaction relay.
//!
//! A validator passes the transactions its clients submit on to the other
//! validators in batches: each transaction's encoding prefixed by its
//! length (4 bytes, little-endian), back to back, one batch per p2p
//! message. Every validator must write and read the same framing, and every
//! batch it reads comes from a peer that may be hostile, so the format
//! lives here, beside the block codec, rather than in the node's wiring:
//! the chain crate builds without the node's storage engine, so its fuzz
//! targets (`node/chain/fuzz`) can drive the very code validators run.
//!
//! A reader takes whole frames until the first malformed one (a length
//! past the end of the message or beyond any transaction) and drops the
//! rest, so a hostile batch costs at most a pass over its bytes.

use cairn_protocol::chain::MAX_TX_BYTES;

/// Largest relay message a validator reads: length-prefixed transactions
/// back to back. A sender fills a batch to half of it, so even a last
/// transaction of [`MAX_TX_BYTES`] keeps the batch within it.
pub const MAX_RELAY_BATCH: usize = 4 << 20;

/// Bytes of a frame's length prefix.
pub const FRAME_HEADER: usize = 4;

// A batch filled to half of the largest message, plus one last frame of the
// largest transaction, is still a message every reader takes.
const _: () = assert!(MAX_RELAY_BATCH / 2 + FRAME_HEADER + MAX_TX_BYTES <= MAX_RELAY_BATCH);

/// Why a transaction cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// A receiver would stop reading the batch at this frame and drop every
    /// transaction after it.
    #[error("a relayed transaction has at most {MAX_TX_BYTES} bytes, not {0}")]
    TooLarge(usize),
}

/// Appends `tx` to `batch` as one frame.
pub fn push_frame(batch: &mut Vec<u8>, tx: &[u8]) -> Result<(), RelayError> {
    if tx.len() > MAX_TX_BYTES {
        return Err(RelayError::TooLarge(tx.len()));
    }
    // At most MAX_TX_BYTES (64 KiB), so the length fits its 4 bytes.
    batch.extend_from_slice(&(tx.len() as u32).to_le_bytes());
    batch.extend_from_slice(tx);
    Ok(())
}

/// The transactions in a relay message; stops at the first malformed
/// frame (a frame longer than the rest of the message or than any
/// transaction can be).
pub fn relay_frames(mut message: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = message.split_first_chunk::<FRAME_HEADER>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_TX_BYTES || len > rest.len() {
            message = &[];
            return None;
        }
        let (tx, rest) = rest.split_at(len);
        message = rest;
        Some(tx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_frames_round_trip_and_stop_at_garbage() {
        let txs: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![], vec![9; 1000]];
        let mut batch = Vec::new();
        for tx in &txs {
            push_frame(&mut batch, tx).unwrap();
        }
        let back: Vec<&[u8]> = relay_frames(&batch).collect();
        assert_eq!(back, txs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Truncated: the whole frames before the cut survive.
        let cut: Vec<&[u8]> = relay_frames(&batch[..batch.len() - 1]).collect();
        assert_eq!(cut.len(), 2);
        // A length past the end or past any transaction ends the message.
        let mut lying = Vec::new();
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        lying.extend_from_slice(&[0; 16]);
        assert_eq!(relay_frames(&lying).count(), 0);
        assert_eq!(relay_frames(&[1, 0]).count(), 0);
        assert_eq!(relay_frames(&[]).count(), 0);
    }

    #[test]
    fn a_transaction_no_reader_would_take_is_not_framed() {
        let mut batch = Vec::new();
        push_frame(&mut batch, &vec![0; MAX_TX_BYTES]).unwrap();
        let framed = batch.len();
        assert_eq!(
            push_frame(&mut batch, &vec![0; MAX_TX_BYTES + 1]),
            Err(RelayError::TooLarge(MAX_TX_BYTES + 1))
        );
        assert_eq!(batch.len(), framed, "nothing appended");
        assert_eq!(relay_frames(&batch).count(), 1);
    }
}
