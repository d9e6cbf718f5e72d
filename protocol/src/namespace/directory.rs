//! Directory objects: canonical encoding and bounded decoding.
//!
//! A directory is a map from names to entries. Its bytes are postcard of
//! `(version, [(name, entry)…])` with names in strictly increasing byte
//! order, zero-padded like a manifest to a power of two of at least 4 KiB,
//! so the same directory always has the same bytes and a directory's size
//! shows its entry count only to within a factor of two. A reader accepts
//! exactly the bytes a writer produces: unsorted or repeated names, bad
//! names, oversized inline data, non-zero padding or trailing garbage are
//! each an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NamespaceError;
use crate::capability::Capability;
use crate::cipher::FileKey;
use crate::id::ContentId;

/// Format version written by this code.
pub const DIRECTORY_VERSION: u8 = 1;
/// Largest directory object accepted (about 500 000 entries).
pub const MAX_DIRECTORY_LEN: usize = 64 * 1024 * 1024;
/// Most entries in one directory.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Largest file kept inline in its directory.
pub const MAX_INLINE: usize = 64 * 1024;
/// Longest name, in bytes (as Linux's `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest symbolic link target, in bytes (as Linux's `PATH_MAX`).
pub const MAX_LINK_LEN: usize = 4096;
/// Permission bits an entry may carry (`rwx` for all three, setuid, setgid, sticky).
pub const MODE_MASK: u32 = 0o7777;
const MIN_PADDED_LEN: usize = 4096;

/// A stored object: its manifest id and file key, a capability in bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub manifest: [u8; 32],
    pub key: [u8; 32],
}

impl std::fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ObjectRef({}#<key>)",
            ContentId::from_digest(self.manifest)
        )
    }
}

impl ObjectRef {
    pub fn capability(&self) -> Capability {
        Capability::new(
            ContentId::from_digest(self.manifest),
            FileKey::from_bytes(self.key),
        )
    }
}

impl From<&Capability> for ObjectRef {
    fn from(cap: &Capability) -> Self {
        Self {
            manifest: *cap.manifest.digest(),
            key: *cap.key.as_bytes(),
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// The current time of this machine's clock.
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(_) => Self::default(),
        }
    }
}

/// Where a file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileData {
    /// In the directory object itself (small files).
    Inline(Vec<u8>),
    /// A file of its own.
    Object(ObjectRef),
    /// Bytes `[offset, offset + size)` of a pack object shared by the small
    /// files of one commit.
    Packed { pack: ObjectRef, offset: u64 },
}

/// A child directory: its object and a summary of its subtree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirRef {
    pub object: ObjectRef,
    /// Files and symbolic links in the subtree.
    pub files: u64,
    /// Bytes of all files in the subtree.
    pub bytes: u64,
}

/// What a name stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    File { size: u64, data: FileData },
    Dir(DirRef),
    Symlink(String),
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits ([`MODE_MASK`]).
    pub mode: u32,
    pub mtime: Timestamp,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir(_))
    }

    /// A file's size, a link's target length, 0 for a directory (as `ls`).
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            EntryKind::Symlink(t) => t.len() as u64,
            EntryKind::Dir(_) => 0,
        }
    }

    /// (files, bytes) in this entry's subtree, itself included.
    pub fn summary(&self) -> (u64, u64) {
        match &self.kind {
            EntryKind::File { size, .. } => (1, *size),
            EntryKind::Symlink(_) => (1, 0),
            EntryKind::Dir(d) => (d.files, d.bytes),
        }
    }

    fn check(&self) -> Result<(), NamespaceError> {
        let bad = |what: &str| Err(NamespaceError::Malformed(what.into()));
        if self.mode & !MODE_MASK != 0 {
            return bad("mode has bits outside 0o7777");
        }
        if self.mtime.nanos >= 1_000_000_000 {
            return bad("nanoseconds of a time must be below 10^9");
        }
        match &self.kind {
            EntryKind::File { size, data } => match data {
                FileData::Inline(bytes) => {
                    if bytes.len() > MAX_INLINE {
                        return bad("inline data larger than 64 KiB");
                    }
                    if bytes.len() as u64 != *size {
                        return bad("inline data length differs from the file size");
                    }
                }
                FileData::Object(_) => {}
                FileData::Packed { offset, .. } => {
                    if offset.checked_add(*size).is_none() {
                        return bad("packed range overflows");
                    }
                }
            },
            EntryKind::Symlink(target) => {
                if target.is_empty() || target.len() > MAX_LINK_LEN || target.contains('\0') {
                    return bad("a link target has 1 to 4096 bytes and no NUL");
                }
            }
            EntryKind::Dir(d) => {
                if d.bytes > 0 && d.files == 0 {
                    return bad("a directory summary with bytes but no files");
                }
            }
        }
        Ok(())
    }
}

/// Checks one path component.
pub fn check_name(name: &str) -> Result<(), NamespaceError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else if name.contains('/') || name.contains('\0') {
        Some("contains '/' or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NamespaceError::Name {
            name: name.chars().take(300).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A directory, decrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    version: u8,
    entries: Vec<(&'a String, &'a Entry)>,
}

#[derive(Deserialize)]
struct WireIn {
    version: u8,
    entries: Vec<(String, Entry)>,
}

impl Directory {
    /// (files, bytes) in the whole subtree.
    pub fn summary(&self) -> (u64, u64) {
        self.entries.values().fold((0, 0), |(f, b), e| {
            let (ef, eb) = e.summary();
            (f.saturating_add(ef), b.saturating_add(eb))
        })
    }

    /// The canonical, padded bytes. Fails only if an entry breaks the
    /// rules a reader enforces, so nothing is written that cannot be read.
    pub fn encode(&self) -> Result<Vec<u8>, NamespaceError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(NamespaceError::Malformed(format!(
                "{} entries; a directory holds at most {MAX_ENTRIES}",
                self.entries.len()
            )));
        }
        for (name, entry) in &self.entries {
            check_name(name)?;
            entry.check()?;
        }
        let wire = WireOut {
            version: DIRECTORY_VERSION,
            entries: self.entries.iter().collect(),
        };
        let mut bytes = postcard::to_stdvec(&wire)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        let padded = bytes.len().next_power_of_two().max(MIN_PADDED_LEN);
        if padded > MAX_DIRECTORY_LEN {
            return Err(NamespaceError::TooLarge(padded));
        }
        bytes.resize(padded, 0);
        Ok(bytes)
    }

    /// Parses bytes from the network: at most [`MAX_DIRECTORY_LEN`], the
    /// exact canonical form only.
    pub fn decode(bytes: &[u8]) -> Result<Self, NamespaceError> {
        if bytes.len() > MAX_DIRECTORY_LEN {
            return Err(NamespaceError::TooLarge(bytes.len()));
        }
        let version = *bytes
            .first()
            .ok_or_else(|| NamespaceError::Malformed("empty".into()))?;
        if version != DIRECTORY_VERSION {
            return Err(NamespaceError::Version(version));
        }
        // postcard reads lengths before allocating, and serde caps what it
        // preallocates for a sequence, so a hostile length costs at most
        // the input's size.
        let (wire, rest): (WireIn, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| NamespaceError::Malformed(e.to_string()))?;
        if wire.version != DIRECTORY_VERSION {
            return Err(NamespaceError::Version(wire.version));
        }
        if rest.iter().any(|b| *b != 0) {
            return Err(NamespaceError::Malformed("non-zero padding".into()));
        }
        let used = bytes.len() - rest.len();
        if bytes.len() != used.next_power_of_two().max(MIN_PADDED_LEN) {
            return Err(NamespaceError::Malformed(
                "padding of the wrong length".into(),
            ));
        }
        if wire.entries.len() > MAX_ENTRIES {
            return Err(NamespaceError::Malformed("too many entries".into()));
        }
        let mut entries = BTreeMap::new();
        let mut last: Option<&str> = None;
        for (name, entry) in &wire.entries {
            check_name(name)?;
            if last.is_some_and(|l| l.as_bytes() >= name.as_bytes()) {
                return Err(NamespaceError::Malformed(
                    "names are not in strictly increasing order".into(),
                ));
            }
            entry.check()?;
            last = Some(name);
        }
        for (name, entry) in wire.entries {
            entries.insert(name, entry);
        }
        let dir = Self { entries };
        // postcard reads an overlong varint (e.g. `d2 00` for 82) as the
        // number; one directory has one encoding, so its id cannot be
        // varied by re-encoding it.
        if dir.encode()? != bytes {
            return Err(NamespaceError::Malformed(
                "not in canonical form (an overlong number?)".into(),
            ));
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn object(seed: u8) -> ObjectRef {
        ObjectRef {
            manifest: [seed; 32],
            key: [seed.wrapping_add(1); 32],
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let data = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(FileData::Inline),
            any::<u8>().prop_map(|s| FileData::Object(object(s))),
            (any::<u8>(), 0u64..1 << 40).prop_map(|(s, offset)| FileData::Packed {
                pack: object(s),
                offset
            }),
        ];
        let kind = prop_oneof![
            (data, 0u64..1 << 40).prop_map(|(data, size)| {
                let size = match &data {
                    FileData::Inline(b) => b.len() as u64,
                    _ => size,
                };
                EntryKind::File { size, data }
            }),
            (any::<u8>(), 1u64..1000, 0u64..1 << 40).prop_map(|(s, files, bytes)| {
                EntryKind::Dir(DirRef {
                    object: object(s),
                    files,
                    bytes,
                })
            }),
            "[a-z/.]{1,40}".prop_map(EntryKind::Symlink),
        ];
        (kind, 0u32..=MODE_MASK, any::<i64>(), 0u32..1_000_000_000).prop_map(
            |(kind, mode, secs, nanos)| Entry {
                kind,
                mode,
                mtime: Timestamp { secs, nanos },
            },
        )
    }

    fn arb_directory() -> impl Strategy<Value = Directory> {
        proptest::collection::btree_map("[^/\0]{1,20}", arb_entry(), 0..30).prop_map(|m| {
            Directory {
                entries: m
                    .into_iter()
                    .filter(|(n, _)| n != "." && n != "..")
                    .collect(),
            }
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip_is_canonical(dir in arb_directory()) {
            let bytes = dir.encode().unwrap();
            prop_assert!(bytes.len().is_power_of_two() && bytes.len() >= 4096);
            let back = Directory::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &dir);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = Directory::decode(&bytes);
        }

        #[test]
        fn flipped_bytes_of_a_real_directory_never_panic(
            dir in arb_directory(), at in any::<usize>(), bit in 0u8..8
        ) {
            let mut bytes = dir.encode().unwrap();
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(d) = Directory::decode(&bytes) {
                // Whatever decodes is canonical again.
                prop_assert_eq!(d.encode().unwrap(), bytes);
            }
        }
    }

    fn file(bytes: &[u8]) -> Entry {
        Entry {
            kind: EntryKind::File {
                size: bytes.len() as u64,
                data: FileData::Inline(bytes.to_vec()),
            },
            mode: 0o644,
            mtime: Timestamp::default(),
        }
    }

    /// Bytes a writer would never produce, each refused with an error.
    #[test]
    fn non_canonical_forms_are_refused() {
        let encode = |version: u8, entries: Vec<(String, Entry)>| {
            let mut b = postcard::to_stdvec(&(version, entries)).unwrap();
            b.resize(4096, 0);
            b
        };
        let a = ("a".to_string(), file(b"x"));
        let b = ("b".to_string(), file(b"y"));
        assert!(Directory::decode(&encode(1, vec![a.clone(), b.clone()])).is_ok());
        let unsorted = encode(1, vec![b.clone(), a.clone()]);
        assert!(matches!(
            Directory::decode(&unsorted),
            Err(NamespaceError::Malformed(_))
        ));
        let repeated = encode(1, vec![a.clone(), a.clone()]);
        assert!(Directory::decode(&repeated).is_err());
        assert_eq!(
            Directory::decode(&encode(2, vec![])),
            Err(NamespaceError::Version(2))
        );
        let slash = encode(1, vec![("a/b".into(), file(b""))]);
        assert!(matches!(
            Directory::decode(&slash),
            Err(NamespaceError::Name { .. })
        ));
        let mut lying = file(b"abc");
        lying.kind = EntryKind::File {
            size: 4,
            data: FileData::Inline(b"abc".to_vec()),
        };
        assert!(Directory::decode(&encode(1, vec![("l".into(), lying)])).is_err());
        let mut padded = encode(1, vec![a.clone()]);
        padded[4095] = 1;
        assert!(Directory::decode(&padded).is_err());
        let mut long = encode(1, vec![a]);
        long.resize(8192, 0);
        assert!(Directory::decode(&long).is_err(), "over-padded");
        assert!(Directory::decode(&[]).is_err());
        assert_eq!(
            Directory::decode(&vec![1; MAX_DIRECTORY_LEN + 1]),
            Err(NamespaceError::TooLarge(MAX_DIRECTORY_LEN + 1))
        );
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("名前 with spaces").unwrap();
    }

    #[test]
    fn summaries_add_up() {
        let mut d = Directory::default();
        d.entries.insert("a".into(), file(b"abc"));
        d.entries.insert(
            "sub".into(),
            Entry {
                kind: EntryKind::Dir(DirRef {
                    object: object(1),
                    files: 2,
                    bytes: 10,
                }),
                mode: 0o755,
                mtime: Timestamp::default(),
            },
        );
        assert_eq!(d.summary(), (3, 13));
    }
}
