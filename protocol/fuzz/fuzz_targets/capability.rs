//! Capability text (`cairn:<manifest-id>#<key>`) from a user or a link:
//! parsing never panics, and whatever parses prints back to text that
//! parses to the same capability.
#![no_main]

use cairn_protocol::Capability;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cap) = text.parse::<Capability>() {
        let printed = cap.to_string();
        let again: Capability = printed.parse().expect("a printed capability parses");
        assert_eq!(again, cap);
    }
});
