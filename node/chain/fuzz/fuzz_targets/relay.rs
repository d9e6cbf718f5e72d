//! A relay message from another validator (`cairn_chain::relay`): the
//! frames a receiver takes out of it and the transactions it decodes from
//! them.
//!
//! Checks besides "no panic": no frame exceeds `MAX_TX_BYTES`; framing the
//! yielded frames again with `push_frame` reproduces a prefix of the
//! message, and what follows that prefix is a malformed frame (a length
//! past the end or past any transaction) or too short for a length, so
//! the reader stopped at the first malformed frame and nowhere else; an
//! exhausted reader stays exhausted; every frame goes through
//! `SignedTx::decode`, and what decodes re-encodes to a transaction that
//! decodes the same.
#![no_main]

use cairn_chain::relay::{push_frame, relay_frames, FRAME_HEADER};
use cairn_protocol::chain::{SignedTx, MAX_TX_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|message: &[u8]| {
    let mut reader = relay_frames(message);
    let frames: Vec<&[u8]> = reader.by_ref().collect();
    assert!(
        reader.next().is_none(),
        "an exhausted reader yielded a frame"
    );
    let mut again = Vec::with_capacity(message.len());
    for frame in &frames {
        assert!(frame.len() <= MAX_TX_BYTES);
        push_frame(&mut again, frame).expect("a frame a reader took frames again");
    }
    assert_eq!(
        again.len(),
        frames.iter().map(|f| FRAME_HEADER + f.len()).sum::<usize>()
    );
    assert!(
        message.starts_with(&again),
        "the frames are not the message's"
    );
    let rest = &message[again.len()..];
    if let Some((len, tail)) = rest.split_first_chunk::<FRAME_HEADER>() {
        let len = u32::from_le_bytes(*len) as usize;
        assert!(
            len > MAX_TX_BYTES || len > tail.len(),
            "the reader stopped before a well-formed frame"
        );
    }
    for frame in frames {
        if let Ok(tx) = SignedTx::decode(frame) {
            let bytes = tx.encode();
            assert_eq!(SignedTx::decode(&bytes).as_ref(), Ok(&tx));
            let _ = tx.id();
        }
    }
});
