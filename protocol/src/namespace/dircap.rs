//! Read-only directory capabilities: a snapshot of a subtree, as one string.
//!
//! `cairn-dir:<manifest id>#<key>` names a directory object exactly as
//! `cairn:` names a file (the same id and key encodings, §8 of
//! docs/format.md); the different scheme tells a reader to parse what it
//! fetches as a directory. Directory objects never change, so the
//! capability shows the subtree as it was when it was shared; its holder
//! can read every file and directory below and nothing else.

use std::fmt;
use std::str::FromStr;

use super::directory::ObjectRef;
use crate::capability::{Capability, CapabilityError};

const SCHEME: &str = "cairn-dir:";

/// A read capability for a directory object and everything below it.
#[derive(Clone, PartialEq, Eq)]
pub struct DirCapability(pub Capability);

impl DirCapability {
    pub fn object(&self) -> ObjectRef {
        ObjectRef::from(&self.0)
    }
}

impl From<&ObjectRef> for DirCapability {
    fn from(o: &ObjectRef) -> Self {
        Self(o.capability())
    }
}

impl fmt::Display for DirCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.0.to_string();
        // `cairn:` + rest: the same text under the directory scheme.
        write!(f, "{SCHEME}{}", &file["cairn:".len()..])
    }
}

impl fmt::Debug for DirCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirCapability({SCHEME}{}#<key>)", self.0.manifest)
    }
}

impl FromStr for DirCapability {
    type Err = CapabilityError;

    fn from_str(s: &str) -> Result<Self, CapabilityError> {
        let rest = s
            .trim()
            .strip_prefix(SCHEME)
            .ok_or(CapabilityError::Scheme)?;
        Ok(Self(format!("cairn:{rest}").parse()?))
    }
}

/// Whether `text` looks like a directory capability (before parsing it).
pub fn is_dir_capability(text: &str) -> bool {
    text.trim_start().starts_with(SCHEME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContentId, FileKey};

    #[test]
    fn round_trip_and_distinct_from_file_capabilities() {
        let cap = Capability::new(ContentId::of(b"d"), FileKey::from_bytes([9; 32]));
        let dir = DirCapability(cap.clone());
        let text = dir.to_string();
        assert!(text.starts_with("cairn-dir:bafkr4"));
        assert!(is_dir_capability(&text));
        assert_eq!(text.parse::<DirCapability>().unwrap(), dir);
        assert!(text.parse::<Capability>().is_err(), "not a file capability");
        assert!(cap.to_string().parse::<DirCapability>().is_err());
        assert!(!format!("{dir:?}").contains(&text[text.len() - 52..]));
        assert!("cairn-dir:bafkr4#x".parse::<DirCapability>().is_err());
    }
}
