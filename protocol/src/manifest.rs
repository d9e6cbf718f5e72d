//! The manifest: what a reader needs to find and rebuild a file.
//!
//! It holds the plaintext length, the block size, `k`, `m`, the shard size and
//! every shard id, segment by segment, plus an optional placement hint (which
//! node was given each shard column). It is serialized with postcard, padded
//! with zeros to a power of two of at least 4 KiB so that its size reveals
//! little about the file's, and sealed with XChaCha20-Poly1305 under a key
//! derived from the file key. The sealed bytes are stored in the network like
//! any other object, and their content id is the *manifest id*.
//!
//! The nonce is synthetic: a keyed BLAKE3 hash of the padded plaintext (the
//! SIV pattern). Sealing is therefore deterministic, which keeps known-answer
//! vectors stable, and resealing a changed manifest under the same file key
//! can never reuse a nonce with different plaintext.
//!
//! Because a stored manifest is fetched by its id, its integrity is checked
//! by hashing before decryption: if the bytes hash to the id but do not
//! decrypt, the key is wrong, and that is what [`ManifestError::WrongKey`]
//! says.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::cipher::FileKey;
use crate::id::ContentId;
use crate::params::{CodingParams, Layout, ParamsError};

/// Format version written by this code.
pub const MANIFEST_VERSION: u8 = 1;
/// Largest sealed manifest accepted (about 5 TiB of file at default parameters).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024 * 1024;
/// Smallest padded manifest.
pub const MIN_PADDED_LEN: usize = 4096;
/// Longest node identifier in a placement hint.
pub const MAX_NODE_ID_LEN: usize = 64;
const NONCE_LEN: usize = 24;
const AAD: &[u8] = b"cairn manifest";

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest of {0} bytes exceeds the {MAX_MANIFEST_LEN}-byte limit")]
    TooLarge(usize),
    #[error("manifest bytes do not hash to the requested id {0}")]
    IdMismatch(ContentId),
    #[error("the key does not open this manifest (wrong key for this capability)")]
    WrongKey,
    #[error("manifest version {0} is not supported (this build reads version {MANIFEST_VERSION})")]
    Version(u8),
    #[error("malformed manifest: {0}")]
    Malformed(String),
    #[error("manifest parameters: {0}")]
    Params(#[from] ParamsError),
    #[error("manifest lists {got} shard ids, its layout needs {expected}")]
    ShardCount { expected: u64, got: usize },
    #[error("placement hint has {got} entries, expected 0 or {expected}")]
    Placement { expected: usize, got: usize },
}

/// A file's manifest, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    layout: Layout,
    shards: Vec<ContentId>,
    placement: Vec<Vec<u8>>,
}

/// The serialized form; field order is the byte order (see docs/format.md).
#[derive(Serialize, Deserialize)]
struct Wire {
    version: u8,
    plaintext_len: u64,
    block_size: u32,
    k: u16,
    m: u16,
    shard_size: u32,
    shards: Vec<[u8; 32]>,
    placement: Vec<Vec<u8>>,
}

impl Manifest {
    /// A manifest for `layout` with `shards` listed segment by segment.
    pub fn new(layout: Layout, shards: Vec<ContentId>) -> Result<Self, ManifestError> {
        let manifest = Self {
            layout,
            shards,
            placement: Vec::new(),
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// Adds the placement hint: one opaque node id per shard column.
    pub fn with_placement(mut self, placement: Vec<Vec<u8>>) -> Result<Self, ManifestError> {
        self.placement = placement;
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let n = self.layout.params().n();
        let expected = self.layout.segment_count() * n as u64;
        if self.shards.len() as u64 != expected {
            return Err(ManifestError::ShardCount {
                expected,
                got: self.shards.len(),
            });
        }
        if !(self.placement.is_empty() || self.placement.len() == n) {
            return Err(ManifestError::Placement {
                expected: n,
                got: self.placement.len(),
            });
        }
        if self.placement.iter().any(|p| p.len() > MAX_NODE_ID_LEN) {
            return Err(ManifestError::Malformed(
                "placement node id too long".into(),
            ));
        }
        Ok(())
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn params(&self) -> CodingParams {
        self.layout.params()
    }

    pub fn plaintext_len(&self) -> u64 {
        self.layout.plaintext_len()
    }

    pub fn segment_count(&self) -> u64 {
        self.layout.segment_count()
    }

    /// The `n` shard ids of segment `index`, or `None` past the end.
    pub fn segment_shards(&self, index: u64) -> Option<&[ContentId]> {
        let n = self.params().n();
        let start = usize::try_from(index).ok()?.checked_mul(n)?;
        self.shards.get(start..start + n)
    }

    /// Every shard id, segment by segment.
    pub fn shards(&self) -> &[ContentId] {
        &self.shards
    }

    pub fn placement(&self) -> &[Vec<u8>] {
        &self.placement
    }

    /// The postcard bytes, zero-padded.
    pub fn to_padded_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            version: MANIFEST_VERSION,
            plaintext_len: self.layout.plaintext_len(),
            block_size: self.layout.block_size(),
            k: self.params().k() as u16,
            m: self.params().m() as u16,
            shard_size: self.layout.shard_size(),
            shards: self.shards.iter().map(|id| *id.digest()).collect(),
            placement: self.placement.clone(),
        };
        let mut bytes = postcard::to_stdvec(&wire)
            .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
        bytes.resize(bytes.len().next_power_of_two().max(MIN_PADDED_LEN), 0);
        bytes
    }

    /// Parses padded postcard bytes.
    pub fn from_padded_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let version = *bytes
            .first()
            .ok_or_else(|| ManifestError::Malformed("empty".into()))?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::Version(version));
        }
        let (wire, rest): (Wire, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if rest.iter().any(|b| *b != 0) {
            return Err(ManifestError::Malformed("non-zero padding".into()));
        }
        let params = CodingParams::new(wire.k, wire.m)?;
        let layout = Layout::new(params, wire.block_size, wire.shard_size, wire.plaintext_len)?;
        let shards = wire
            .shards
            .into_iter()
            .map(ContentId::from_digest)
            .collect();
        Self::new(layout, shards)?.with_placement(wire.placement)
    }

    /// Seals the manifest under `key`: returns its id and the bytes to store.
    pub fn seal(&self, key: &FileKey) -> (ContentId, Vec<u8>) {
        let plain = self.to_padded_bytes();
        let nonce_full = blake3::keyed_hash(&key.manifest_nonce_key(), &plain);
        let nonce = XNonce::try_from(&nonce_full.as_bytes()[..NONCE_LEN])
            .unwrap_or_else(|_| unreachable!("24 bytes make an XChaCha nonce"));
        let aead = XChaCha20Poly1305::new(&key.manifest_key().into());
        let sealed = aead
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption into a Vec cannot fail"));
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        (ContentId::of(&out), out)
    }

    /// Checks `bytes` against `id`, decrypts them with `key` and parses them.
    pub fn open(id: &ContentId, bytes: &[u8], key: &FileKey) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        if !id.matches(bytes) {
            return Err(ManifestError::IdMismatch(*id));
        }
        if bytes.len() < NONCE_LEN {
            return Err(ManifestError::Malformed("shorter than its nonce".into()));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let xnonce =
            XNonce::try_from(nonce).map_err(|_| ManifestError::Malformed("nonce".into()))?;
        let aead = XChaCha20Poly1305::new(&key.manifest_key().into());
        let plain = aead
            .decrypt(
                &xnonce,
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| ManifestError::WrongKey)?;
        let expected_nonce = blake3::keyed_hash(&key.manifest_nonce_key(), &plain);
        if &expected_nonce.as_bytes()[..NONCE_LEN] != nonce {
            return Err(ManifestError::Malformed(
                "synthetic nonce does not match contents".into(),
            ));
        }
        Self::from_padded_bytes(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let layout = Layout::new(CodingParams::new(2, 1).unwrap(), 65536, 4096, 10_000).unwrap();
        let shards = (0..layout.segment_count() * 3)
            .map(|i| ContentId::of(&i.to_le_bytes()))
            .collect();
        Manifest::new(layout, shards).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_padding() {
        let m = sample()
            .with_placement(vec![b"a".to_vec(), b"b".to_vec(), vec![]])
            .unwrap();
        let key = FileKey::from_bytes([1; 32]);
        let (id, bytes) = m.seal(&key);
        assert_eq!(bytes.len(), 24 + 4096 + 16);
        assert_eq!(
            m.seal(&key),
            (id, bytes.clone()),
            "sealing is deterministic"
        );
        assert_eq!(Manifest::open(&id, &bytes, &key).unwrap(), m);
    }

    #[test]
    fn every_failure_is_typed() {
        let m = sample();
        let key = FileKey::from_bytes([1; 32]);
        let (id, bytes) = m.seal(&key);
        assert_eq!(
            Manifest::open(&id, &bytes, &FileKey::from_bytes([2; 32])),
            Err(ManifestError::WrongKey)
        );
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(
            Manifest::open(&id, &flipped, &key),
            Err(ManifestError::IdMismatch(id))
        );
        // Someone holding the key forges a manifest with another version.
        let mut plain = m.to_padded_bytes();
        plain[0] = 9;
        assert_eq!(
            Manifest::from_padded_bytes(&plain),
            Err(ManifestError::Version(9))
        );
        let mut plain = m.to_padded_bytes();
        *plain.last_mut().unwrap() = 1;
        assert!(matches!(
            Manifest::from_padded_bytes(&plain),
            Err(ManifestError::Malformed(_))
        ));
        assert!(matches!(
            Manifest::from_padded_bytes(&[1, 0xff]),
            Err(ManifestError::Malformed(_))
        ));
        assert!(matches!(
            Manifest::from_padded_bytes(&[]),
            Err(ManifestError::Malformed(_))
        ));
        let short = Manifest::new(*m.layout(), m.shards()[1..].to_vec());
        assert!(matches!(short, Err(ManifestError::ShardCount { .. })));
        assert!(matches!(
            m.clone().with_placement(vec![vec![]]),
            Err(ManifestError::Placement { .. })
        ));
        let big = vec![0u8; MAX_MANIFEST_LEN + 1];
        assert_eq!(
            Manifest::open(&ContentId::of(&big), &big, &key),
            Err(ManifestError::TooLarge(big.len()))
        );
    }
}
