//! `/cairn/chain/1` frames from a peer: requests and responses decode or
//! fail with an error, never a panic; whatever decodes is within bounds and
//! re-encodes to a frame that decodes the same.
#![no_main]

use cairn_protocol::chain_wire::{
    check_frame_len, ChainApiRequest, ChainApiResponse, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.get(..4) {
        let prefix = [prefix[0], prefix[1], prefix[2], prefix[3]];
        let _ = check_frame_len(prefix, MAX_REQUEST_FRAME);
        let _ = check_frame_len(prefix, MAX_RESPONSE_FRAME);
    }
    if let Ok(request) = ChainApiRequest::decode(data) {
        let _ = request.method.as_str();
        let frame = request
            .encode()
            .expect("a decoded request is within bounds");
        assert_eq!(ChainApiRequest::decode(&frame[4..]).as_ref(), Ok(&request));
    }
    if let Ok(response) = ChainApiResponse::decode(data) {
        let frame = response
            .encode()
            .expect("a decoded response is within bounds");
        assert_eq!(
            ChainApiResponse::decode(&frame[4..]).as_ref(),
            Ok(&response)
        );
    }
});
