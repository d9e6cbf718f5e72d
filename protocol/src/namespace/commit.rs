//! Commits: the sealed record the chain's namespace pointer names.
//!
//! A commit says which directory object is the root of version `v` of the
//! tree. Its body is postcard of `(format version, namespace version, root
//! object, files, bytes, previous commit id, time)`, zero-padded to 256
//! bytes, and sealed exactly as a manifest is (XChaCha20-Poly1305 with a
//! synthetic nonce: the first 24 bytes of a keyed BLAKE3 hash of the padded
//! body) under two keys derived from the account's namespace key. Sealing
//! is deterministic, and two different commits never share a nonce, so one
//! key serves every commit of the account. The chain holds the sealed
//! record's content id; the record itself is stored on nodes like a
//! manifest copy. Opening is canonical, as directory decoding is: a body
//! opens only if it is exactly the one its commit seals to.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::directory::{DirRef, ObjectRef, Timestamp};
use super::NamespaceError;
use crate::id::ContentId;

/// Format version written by this code.
pub const COMMIT_VERSION: u8 = 1;
/// Padded body length.
pub const COMMIT_BODY_LEN: usize = 256;
/// Length of a sealed commit: nonce, body, tag.
pub const SEALED_COMMIT_LEN: usize = NONCE_LEN + COMMIT_BODY_LEN + 16;
const NONCE_LEN: usize = 24;
const AAD: &[u8] = b"cairn namespace commit";
const KEY_CONTEXT: &str = "cairn 2026-11 v1 namespace commit key";
const NONCE_CONTEXT: &str = "cairn 2026-11 v1 namespace commit nonce key";

/// The two keys commits are sealed with, from the namespace key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CommitKeys {
    key: [u8; 32],
    nonce_key: [u8; 32],
}

impl std::fmt::Debug for CommitKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitKeys(<secret>)")
    }
}

impl CommitKeys {
    pub fn new(namespace_key: &[u8; 32]) -> Self {
        Self {
            key: blake3::derive_key(KEY_CONTEXT, namespace_key),
            nonce_key: blake3::derive_key(NONCE_CONTEXT, namespace_key),
        }
    }
}

/// One version of an account's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The namespace version this commit is published under on chain.
    pub version: u64,
    /// The root directory and its subtree's summary.
    pub root: DirRef,
    /// The commit this one was made on (its content id), if any.
    pub previous: Option<[u8; 32]>,
    pub time: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    format: u8,
    version: u64,
    root: ObjectRef,
    files: u64,
    bytes: u64,
    previous: Option<[u8; 32]>,
    time: Timestamp,
}

impl Commit {
    fn body(&self) -> Vec<u8> {
        let wire = Wire {
            format: COMMIT_VERSION,
            version: self.version,
            root: self.root.object.clone(),
            files: self.root.files,
            bytes: self.root.bytes,
            previous: self.previous,
            time: self.time,
        };
        let mut bytes = postcard::to_stdvec(&wire)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        // At most 1 + 10 + 64 + 10 + 10 + 33 + 10 + 5 bytes: always fits.
        bytes.resize(COMMIT_BODY_LEN, 0);
        bytes
    }

    fn parse(body: &[u8]) -> Result<Self, NamespaceError> {
        let format = *body
            .first()
            .ok_or_else(|| NamespaceError::Malformed("empty commit".into()))?;
        if format != COMMIT_VERSION {
            return Err(NamespaceError::Version(format));
        }
        let (wire, rest): (Wire, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| NamespaceError::Malformed(e.to_string()))?;
        if rest.iter().any(|b| *b != 0) {
            return Err(NamespaceError::Malformed("non-zero commit padding".into()));
        }
        let commit = Self {
            version: wire.version,
            root: DirRef {
                object: wire.root,
                files: wire.files,
                bytes: wire.bytes,
            },
            previous: wire.previous,
            time: wire.time,
        };
        // postcard reads an overlong varint (`ff 00` for 127) as the
        // number; as with directories, one commit has one encoding, so a
        // record opens only if it is the one its writer seals.
        if commit.body() != body {
            return Err(NamespaceError::Malformed(
                "commit not in canonical form (an overlong number?)".into(),
            ));
        }
        Ok(commit)
    }

    /// Seals the commit: its content id (what the chain points at) and bytes.
    pub fn seal(&self, keys: &CommitKeys) -> (ContentId, Vec<u8>) {
        let body = self.body();
        let full = blake3::keyed_hash(&keys.nonce_key, &body);
        let nonce = XNonce::try_from(&full.as_bytes()[..NONCE_LEN])
            .unwrap_or_else(|_| unreachable!("24 bytes make an XChaCha nonce"));
        let sealed = XChaCha20Poly1305::new(&keys.key.into())
            .encrypt(
                &nonce,
                Payload {
                    msg: &body,
                    aad: AAD,
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption into a Vec cannot fail"));
        let mut out = Vec::with_capacity(SEALED_COMMIT_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        (ContentId::of(&out), out)
    }

    /// Checks `bytes` against `id`, decrypts and parses them.
    pub fn open(id: &ContentId, bytes: &[u8], keys: &CommitKeys) -> Result<Self, NamespaceError> {
        if bytes.len() != SEALED_COMMIT_LEN {
            return Err(NamespaceError::Malformed(format!(
                "a sealed commit has {SEALED_COMMIT_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        if !id.matches(bytes) {
            return Err(NamespaceError::IdMismatch);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let xnonce = XNonce::try_from(nonce)
            .map_err(|_| NamespaceError::Malformed("commit nonce".into()))?;
        let body = XChaCha20Poly1305::new(&keys.key.into())
            .decrypt(
                &xnonce,
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| NamespaceError::WrongKey)?;
        let expected = blake3::keyed_hash(&keys.nonce_key, &body);
        if &expected.as_bytes()[..NONCE_LEN] != nonce {
            return Err(NamespaceError::Malformed(
                "synthetic nonce does not match the commit".into(),
            ));
        }
        Self::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commit(version: u64, files: u64, previous: Option<[u8; 32]>) -> Commit {
        Commit {
            version,
            root: DirRef {
                object: ObjectRef {
                    manifest: [7; 32],
                    key: [0x5a; 32],
                },
                files,
                bytes: files * 100,
            },
            previous,
            time: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
        }
    }

    proptest! {
        #[test]
        fn seal_open_round_trip_and_nothing_readable(
            version in any::<u64>(), files in 0u64..1 << 50, previous in any::<Option<[u8; 32]>>(),
            ns in any::<[u8; 32]>(),
        ) {
            let keys = CommitKeys::new(&ns);
            let c = commit(version, files, previous);
            let (id, bytes) = c.seal(&keys);
            prop_assert_eq!(bytes.len(), SEALED_COMMIT_LEN);
            prop_assert_eq!(Commit::open(&id, &bytes, &keys).unwrap(), c.clone());
            // The root's key never appears in the sealed bytes.
            prop_assert!(!bytes.windows(32).any(|w| w == [0x5a; 32]));
            let mut other = ns;
            other[0] ^= 1;
            prop_assert_eq!(
                Commit::open(&id, &bytes, &CommitKeys::new(&other)),
                Err(NamespaceError::WrongKey)
            );
        }

        #[test]
        fn hostile_commit_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), SEALED_COMMIT_LEN..=SEALED_COMMIT_LEN),
        ) {
            let keys = CommitKeys::new(&[1; 32]);
            prop_assert!(Commit::open(&ContentId::of(&bytes), &bytes, &keys).is_err());
        }
    }

    #[test]
    fn errors_are_typed() {
        let keys = CommitKeys::new(&[3; 32]);
        let (id, bytes) = commit(4, 2, None).seal(&keys);
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert_eq!(
            Commit::open(&id, &flipped, &keys),
            Err(NamespaceError::IdMismatch)
        );
        assert!(matches!(
            Commit::open(&id, &bytes[1..], &keys),
            Err(NamespaceError::Malformed(_))
        ));
        assert_eq!(commit(4, 2, None).seal(&keys), (id, bytes), "deterministic");
        assert_ne!(commit(5, 2, None).seal(&keys).0, id);
    }

    /// A body its writer would never seal, sealed under the right key:
    /// the parser refuses it rather than read the number.
    #[test]
    fn an_overlong_number_is_refused() {
        let mut body = commit(127, 2, None).body();
        assert_eq!(&body[..2], &[COMMIT_VERSION, 0x7f]);
        Commit::parse(&body).unwrap();
        // 127 as `ff 00`: the same number in one byte more.
        body.splice(1..2, [0xff, 0x00]);
        body.truncate(COMMIT_BODY_LEN);
        assert!(matches!(
            Commit::parse(&body),
            Err(NamespaceError::Malformed(m)) if m.contains("canonical")
        ));
    }
}
