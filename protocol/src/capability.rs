//! Capabilities: everything a reader needs, as one string.
//!
//! `cairn:<manifest-id>#<key>` where the manifest id is the canonical CID
//! text and the key is the 32-byte file key in RFC 4648 base32, lower case,
//! without padding (52 characters). The key sits after `#` so that tools
//! which treat the capability as a URI keep it out of requests, as URL
//! fragments are.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

use crate::cipher::{FileKey, KEY_LEN};
use crate::id::{ContentId, IdError};

const SCHEME: &str = "cairn:";

/// A read capability for one file.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability {
    pub manifest: ContentId,
    pub key: FileKey,
}

/// Why a capability string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapabilityError {
    #[error("a capability starts with 'cairn:'")]
    Scheme,
    #[error("a capability has the form cairn:<manifest-id>#<key>; the '#<key>' part is missing")]
    MissingKey,
    #[error("bad manifest id in capability: {0}")]
    Id(#[from] IdError),
    #[error("bad key in capability: expected 52 base32 characters")]
    Key,
}

impl Capability {
    pub fn new(manifest: ContentId, key: FileKey) -> Self {
        Self { manifest, key }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = BASE32_NOPAD
            .encode(self.key.as_bytes())
            .to_ascii_lowercase();
        write!(f, "{SCHEME}{}#{key}", self.manifest)
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key by accident.
        write!(f, "Capability({SCHEME}{}#<key>)", self.manifest)
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;

    fn from_str(s: &str) -> Result<Self, CapabilityError> {
        let s = s.trim();
        let rest = s.strip_prefix(SCHEME).ok_or(CapabilityError::Scheme)?;
        let (id, key) = rest.split_once('#').ok_or(CapabilityError::MissingKey)?;
        let manifest: ContentId = id.parse()?;
        if key.len() != 52 || key.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(CapabilityError::Key);
        }
        let bytes = BASE32_NOPAD
            .decode(key.to_ascii_uppercase().as_bytes())
            .map_err(|_| CapabilityError::Key)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CapabilityError::Key)?;
        Ok(Self {
            manifest,
            key: FileKey::from_bytes(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let cap = Capability::new(ContentId::of(b"m"), FileKey::from_bytes([7; 32]));
        let text = cap.to_string();
        assert!(text.starts_with("cairn:bafkr4"));
        assert_eq!(text.parse::<Capability>().unwrap(), cap);
        assert!(!format!("{cap:?}").contains(&text[text.len() - 52..]));

        let (head, key) = text.split_once('#').unwrap();
        assert_eq!(
            "http://x".parse::<Capability>(),
            Err(CapabilityError::Scheme)
        );
        assert_eq!(head.parse::<Capability>(), Err(CapabilityError::MissingKey));
        assert!(matches!(
            format!("cairn:bafoo#{key}").parse::<Capability>(),
            Err(CapabilityError::Id(_))
        ));
        assert_eq!(
            format!("{head}#{}", &key[1..]).parse::<Capability>(),
            Err(CapabilityError::Key)
        );
        assert_eq!(
            format!("{head}#{}", key.to_uppercase()).parse::<Capability>(),
            Err(CapabilityError::Key)
        );
        assert_eq!(
            format!("{head}#{}1", &key[1..]).parse::<Capability>(),
            Err(CapabilityError::Key)
        );
    }
}
