//! Transactions as bytes from the network (`POST /chain/tx`, the mempool's
//! relay): decoding never panics; what decodes is within the field limits,
//! re-encodes to a transaction that decodes the same, and applying it to a
//! chain never panics, changes nothing when refused and keeps every token
//! accounted for.
#![no_main]

use std::sync::LazyLock;

use cairn_protocol::chain::{ChainState, SignedTx, MAX_TX_BYTES};
use cairn_protocol_fuzz::start;
use libfuzzer_sys::fuzz_target;

static STATE: LazyLock<ChainState> = LazyLock::new(|| start(true));

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = SignedTx::decode(data) else {
        return;
    };
    assert_eq!(signed.tx.check_limits(), Ok(()));
    let bytes = signed.encode();
    assert!(bytes.len() <= MAX_TX_BYTES);
    assert_eq!(SignedTx::decode(&bytes).as_ref(), Ok(&signed));
    let _ = signed.id();
    let _ = signed.verify();
    let mut state = STATE.clone();
    let before = state.root();
    if state.apply_tx(&signed).is_err() {
        assert_eq!(
            state.root(),
            before,
            "a refused transaction changed the state"
        );
    }
    assert_eq!(state.held(), state.expected_supply());
});
