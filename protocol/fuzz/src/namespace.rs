//! What the `namespace` target builds directories and commits from.
//!
//! Directory entries come from fuzzed fields ([`ArbEntry`]), either made to
//! follow the rules (so most directories encode and the decoder sees real
//! ones) or left raw (so the writer's refusals are checked against
//! [`follows_rules`], the rules of docs/format.md §14 written out again
//! here). Commits are sealed by [`seal_commit_body`], §14's sealing written
//! out from the format document: plaintext bodies the fuzzer makes are
//! sealed under a fixed key so that `Commit::open` reaches its parser, and
//! a harness that disagreed with the library would fail the target.

use arbitrary::Arbitrary;
use cairn_protocol::namespace::directory::{
    check_name, MAX_INLINE, MAX_LINK_LEN, MAX_NAME_LEN, MODE_MASK,
};
use cairn_protocol::namespace::{DirRef, Entry, EntryKind, FileData, ObjectRef, Timestamp};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

/// The namespace key every sealed commit in the target is under.
pub const NAMESPACE_KEY: [u8; 32] = [0x4e; 32];
/// A commit's padded body (§14).
pub const COMMIT_BODY_LEN: usize = 256;
const NONCE_LEN: usize = 24;

/// An object named by one byte, so entries stay small enough for the
/// fuzzer to move around; the encoded bytes it bends cover the rest.
pub fn object(seed: u8) -> ObjectRef {
    ObjectRef {
        manifest: [seed; 32],
        key: [seed ^ 0xa5; 32],
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbData {
    Inline(Vec<u8>),
    Object(u8),
    Packed { pack: u8, offset: u64 },
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbKind {
    /// `size: None` is the honest size (the inline length, 0 otherwise).
    File {
        size: Option<u64>,
        data: ArbData,
    },
    Dir {
        object: u8,
        files: u64,
        bytes: u64,
    },
    Symlink(String),
}

#[derive(Debug, Clone, Arbitrary)]
pub struct ArbEntry {
    pub name: String,
    pub kind: ArbKind,
    pub mode: u32,
    pub secs: i64,
    pub nanos: u32,
    /// Keep every field as drawn; otherwise each is bent into the rules.
    pub raw: bool,
}

impl ArbEntry {
    /// The entry's name and entry, bent into the rules unless `raw`.
    pub fn build(&self) -> (String, Entry) {
        let kind = match &self.kind {
            ArbKind::File { size, data } => {
                let data = match data {
                    ArbData::Inline(bytes) => FileData::Inline(bytes.clone()),
                    ArbData::Object(s) => FileData::Object(object(*s)),
                    ArbData::Packed { pack, offset } => FileData::Packed {
                        pack: object(*pack),
                        offset: *offset,
                    },
                };
                let honest = match &data {
                    FileData::Inline(bytes) => bytes.len() as u64,
                    _ => 0,
                };
                EntryKind::File {
                    size: size.unwrap_or(honest),
                    data,
                }
            }
            ArbKind::Dir {
                object: s,
                files,
                bytes,
            } => EntryKind::Dir(DirRef {
                object: object(*s),
                files: *files,
                bytes: *bytes,
            }),
            ArbKind::Symlink(target) => EntryKind::Symlink(target.clone()),
        };
        let mut name = self.name.clone();
        let mut entry = Entry {
            kind,
            mode: self.mode,
            mtime: Timestamp {
                secs: self.secs,
                nanos: self.nanos,
            },
        };
        if !self.raw {
            name = lawful_name(&name);
            lawful_entry(&mut entry);
        }
        (name, entry)
    }
}

/// `name` made a valid name: separators and NULs replaced, cut to 255
/// bytes on a character boundary, and never empty, `.` or `..`.
fn lawful_name(name: &str) -> String {
    let mut out = String::new();
    for c in name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
    {
        if out.len() + c.len_utf8() > MAX_NAME_LEN {
            break;
        }
        out.push(c);
    }
    if out.is_empty() || out == "." || out == ".." {
        out.push('n');
    }
    out
}

fn lawful_entry(entry: &mut Entry) {
    entry.mode &= MODE_MASK;
    entry.mtime.nanos %= 1_000_000_000;
    match &mut entry.kind {
        EntryKind::File { size, data } => match data {
            FileData::Inline(bytes) => {
                bytes.truncate(MAX_INLINE);
                *size = bytes.len() as u64;
            }
            FileData::Object(_) => {}
            FileData::Packed { offset, .. } => *offset = (*offset).min(u64::MAX - *size),
        },
        EntryKind::Dir(d) => {
            if d.bytes > 0 && d.files == 0 {
                d.files = 1;
            }
        }
        EntryKind::Symlink(target) => {
            *target = target.replace('\0', "_");
            let mut cut = target.len().min(MAX_LINK_LEN);
            while !target.is_char_boundary(cut) {
                cut -= 1;
            }
            target.truncate(cut);
            if target.is_empty() {
                target.push('t');
            }
        }
    }
}

/// Whether `name` and `entry` follow docs/format.md §14, written out again
/// from the format rather than calling the library's checks.
pub fn follows_rules(name: &str, entry: &Entry) -> bool {
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    // The library's name check must agree with the format's.
    assert_eq!(name_ok, check_name(name).is_ok(), "name {name:?}");
    let kind_ok = match &entry.kind {
        EntryKind::File { size, data } => match data {
            FileData::Inline(bytes) => bytes.len() <= MAX_INLINE && bytes.len() as u64 == *size,
            FileData::Object(_) => true,
            FileData::Packed { offset, .. } => offset.checked_add(*size).is_some(),
        },
        EntryKind::Dir(d) => d.files > 0 || d.bytes == 0,
        EntryKind::Symlink(t) => !t.is_empty() && t.len() <= MAX_LINK_LEN && !t.contains('\0'),
    };
    name_ok && kind_ok && entry.mode <= MODE_MASK && entry.mtime.nanos < 1_000_000_000
}

fn commit_keys() -> ([u8; 32], [u8; 32]) {
    (
        blake3::derive_key("cairn 2026-11 v1 namespace commit key", &NAMESPACE_KEY),
        blake3::derive_key(
            "cairn 2026-11 v1 namespace commit nonce key",
            &NAMESPACE_KEY,
        ),
    )
}

/// Seals a commit body under [`NAMESPACE_KEY`] as §14 says: `nonce ‖
/// XChaCha20-Poly1305(commit key, nonce, aad, body)`, the nonce the first
/// 24 bytes of the body's keyed hash under the nonce key.
pub fn seal_commit_body(body: &[u8]) -> Vec<u8> {
    let (key, nonce_key) = commit_keys();
    let hash = blake3::keyed_hash(&nonce_key, body);
    let nonce = XNonce::try_from(&hash.as_bytes()[..NONCE_LEN]).expect("24 bytes");
    let sealed = XChaCha20Poly1305::new(&key.into())
        .encrypt(
            &nonce,
            Payload {
                msg: body,
                aad: b"cairn namespace commit",
            },
        )
        .expect("encryption into a Vec");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// The body of a commit sealed under [`NAMESPACE_KEY`], if it opens.
pub fn open_commit_body(sealed: &[u8]) -> Option<Vec<u8>> {
    let (key, _) = commit_keys();
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = XNonce::try_from(nonce).ok()?;
    XChaCha20Poly1305::new(&key.into())
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: b"cairn namespace commit",
            },
        )
        .ok()
}
