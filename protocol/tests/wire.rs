//! The wire messages: round trips and hostile bytes.
#![allow(clippy::unwrap_used)]

use cairn_protocol::chain::{Address, Sig};
use cairn_protocol::wire::{
    check_header_len, decode_header, encode_header, Request, Response, SignedStoreRequest,
    StoreRequest,
};
use cairn_protocol::ContentId;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_a_reader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = decode_header::<Request>(&bytes) {
            // Whatever decodes must survive its limit check and re-encode.
            let _ = r.check();
            let again = encode_header(&r);
            prop_assert_eq!(decode_header::<Request>(&again[4..]).unwrap(), r);
        }
        if let Ok(r) = decode_header::<Response>(&bytes) {
            let _ = r.check();
        }
        if bytes.len() >= 4 {
            let _ = check_header_len(bytes[..4].try_into().unwrap());
        }
    }

    #[test]
    fn store_headers_round_trip(
        seed in any::<u64>(),
        size in 0u64..(64 << 20),
        expires in proptest::option::of(any::<u64>()),
        owner in proptest::option::of(any::<[u8; 32]>()),
    ) {
        let r = Request::Store(StoreRequest {
            id: ContentId::of(&seed.to_le_bytes()),
            size,
            expires_at: expires,
            owner: owner.map(Address),
        });
        let framed = encode_header(&r);
        prop_assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), r.clone());
        prop_assert_eq!(r.check().is_ok(), size <= 32 << 20);
        prop_assert_eq!(r.body_len(), size);
    }

    #[test]
    fn signed_store_headers_round_trip(
        seed in any::<u64>(),
        size in 0u64..(64 << 20),
        expires in proptest::option::of(any::<u64>()),
        owner in any::<[u8; 32]>(),
        issued_at in any::<u64>(),
        sig in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let r = Request::StoreV2(SignedStoreRequest {
            id: ContentId::of(&seed.to_le_bytes()),
            size,
            expires_at: expires,
            owner: Address(owner),
            issued_at,
            signature: Sig(sig.try_into().unwrap()),
        });
        let framed = encode_header(&r);
        prop_assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), r.clone());
        prop_assert_eq!(r.check().is_ok(), size <= 32 << 20);
        prop_assert_eq!(r.body_len(), size);
    }
}
