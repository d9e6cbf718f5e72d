//! `/cairn/shards/1` frames from a peer: request and response headers, the
//! header length prefix, and a receipt request's shard list. Decoding never
//! panics, whatever decodes re-encodes to a header that decodes the same
//! (postcard accepts overlong varints, so the bytes may differ), and the checks a
//! reader runs before trusting a header never panic either.
#![no_main]

use cairn_protocol::chain::Address;
use cairn_protocol::wire::{
    check_header_len, decode_header, decode_receipt_shards, encode_header, encode_receipt_shards,
    Request, Response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.get(..4) {
        let _ = check_header_len([prefix[0], prefix[1], prefix[2], prefix[3]]);
    }
    if let Ok(request) = decode_header::<Request>(data) {
        let _ = request.kind();
        let _ = request.body_len();
        let checked = request.check();
        let again: Request = decode_header(&encode_header(&request)[4..]).expect("re-decodes");
        assert_eq!(again, request);
        if let (Request::ReceiptV2(r), Ok(())) = (&request, checked) {
            let _ = r.terms();
            let _ = r.message(Address([1; 32]));
            if let Ok(shards) = decode_receipt_shards(data) {
                let _ = r.check_shards(&shards);
            }
        }
    }
    if let Ok(response) = decode_header::<Response>(data) {
        let _ = response.body_len();
        let _ = response.check();
        let again: Response = decode_header(&encode_header(&response)[4..]).expect("re-decodes");
        assert_eq!(again, response);
    }
    if let Ok(shards) = decode_receipt_shards(data) {
        assert_eq!(
            encode_receipt_shards(&shards),
            data,
            "receipt shards re-encode"
        );
    }
});
