//! Manifests from a storage node: sealed bytes under their own id (so the id
//! check passes and decryption is reached) and under a fixed key, and padded
//! plaintext as it comes out of decryption. Never a panic; a plaintext that
//! parses seals and opens back to the same manifest.
#![no_main]

use cairn_protocol::{ContentId, FileKey, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = FileKey::from_bytes([0x42; 32]);
    let _ = Manifest::open(&ContentId::of(data), data, &key);
    if let Ok(manifest) = Manifest::from_padded_bytes(data) {
        let _ = manifest.segment_count();
        let _ = manifest.segment_shards(0);
        let (id, sealed) = manifest.seal(&key);
        let opened = Manifest::open(&id, &sealed, &key).expect("a sealed manifest opens");
        assert_eq!(opened, manifest);
    }
});
