//! Content ids.
//!
//! Every object in Cairn (a shard, a manifest) is named by the BLAKE3-256 hash
//! of its bytes, written as a CIDv1 with the `raw` codec so that standard
//! multiformats tooling can read it. Internally an id is just the 32-byte
//! digest: the codec and hash function are fixed, so carrying them around
//! would only add ways to be inconsistent.
//!
//! The BLAKE3 digest is also the root of the object's bao tree, so byte ranges
//! and storage proofs verify against the id alone (see [`crate::shard`]).

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use multihash::Multihash;

/// Multicodec code of the `raw` codec.
pub const RAW_CODEC: u64 = 0x55;
/// Multicodec code of BLAKE3 in multihash.
pub const BLAKE3_MULTIHASH: u64 = 0x1e;
/// Length of a BLAKE3-256 digest.
pub const DIGEST_LEN: usize = 32;
/// Length of the binary CID form: version, codec, hash code, digest length, digest.
pub const CID_BYTES_LEN: usize = 4 + DIGEST_LEN;

/// The id of an object: the BLAKE3-256 hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId([u8; DIGEST_LEN]);

/// Why a text or binary CID is not a Cairn content id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The text or bytes are not a CID at all.
    #[error("not a CID: {0}")]
    Malformed(String),
    /// A CIDv0 (or other version) where CIDv1 is required.
    #[error("unsupported CID version {0}: Cairn uses CIDv1")]
    Version(u64),
    /// The codec is not `raw`.
    #[error("unsupported CID codec {0:#x}: Cairn uses raw (0x55)")]
    Codec(u64),
    /// The multihash is not BLAKE3-256.
    #[error(
        "unsupported multihash {code:#x} of {len} bytes: Cairn uses BLAKE3-256 (0x1e, 32 bytes)"
    )]
    Hash { code: u64, len: usize },
    /// The text is not in the canonical base32-lower form.
    #[error("CID text must be base32 lower case (starting with 'b')")]
    NotCanonical,
}

impl ContentId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps a BLAKE3 digest computed elsewhere (for example by a bao outboard).
    pub const fn from_digest(digest: [u8; DIGEST_LEN]) -> Self {
        Self(digest)
    }

    /// The BLAKE3 digest.
    pub const fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// The digest as a `blake3::Hash`, which is also the bao tree root.
    pub fn blake3(&self) -> blake3::Hash {
        blake3::Hash::from(self.0)
    }

    /// Whether `bytes` hash to this id.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        // `blake3::Hash` compares in constant time; timing is irrelevant here
        // but the comparison is free.
        blake3::hash(bytes) == self.blake3()
    }

    /// The multiformats CID.
    pub fn to_cid(&self) -> Cid {
        // wrap() only fails for digests longer than the 64-byte capacity.
        let mh = Multihash::<64>::wrap(BLAKE3_MULTIHASH, &self.0)
            .unwrap_or_else(|_| unreachable!("a 32-byte digest fits a 64-byte multihash"));
        Cid::new_v1(RAW_CODEC, mh)
    }

    /// The binary CID (36 bytes).
    pub fn to_cid_bytes(&self) -> [u8; CID_BYTES_LEN] {
        let mut out = [0u8; CID_BYTES_LEN];
        out[..4].copy_from_slice(&[
            0x01,
            RAW_CODEC as u8,
            BLAKE3_MULTIHASH as u8,
            DIGEST_LEN as u8,
        ]);
        out[4..].copy_from_slice(&self.0);
        out
    }

    /// Parses a binary CID.
    pub fn from_cid_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let cid = Cid::try_from(bytes).map_err(|e| IdError::Malformed(e.to_string()))?;
        Self::try_from(&cid)
    }
}

impl TryFrom<&Cid> for ContentId {
    type Error = IdError;

    fn try_from(cid: &Cid) -> Result<Self, IdError> {
        let version = cid.version() as u64;
        if version != 1 {
            return Err(IdError::Version(version));
        }
        if cid.codec() != RAW_CODEC {
            return Err(IdError::Codec(cid.codec()));
        }
        let mh = cid.hash();
        let digest: [u8; DIGEST_LEN] = mh.digest().try_into().map_err(|_| IdError::Hash {
            code: mh.code(),
            len: mh.digest().len(),
        })?;
        if mh.code() != BLAKE3_MULTIHASH {
            return Err(IdError::Hash {
                code: mh.code(),
                len: DIGEST_LEN,
            });
        }
        Ok(Self(digest))
    }
}

impl FromStr for ContentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        // Accept exactly one spelling so that ids can be compared as text.
        if !s.starts_with('b') || s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(IdError::NotCanonical);
        }
        let cid = Cid::try_from(s).map_err(|e| IdError::Malformed(e.to_string()))?;
        Self::try_from(&cid)
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CIDv1 displays as base32 lower case, the canonical form.
        write!(f, "{}", self.to_cid())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl serde::Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Binary formats get the 32 digest bytes as a fixed array, exactly
        // what `Deserialize` reads back (postcard: 32 raw bytes).
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let digest = <[u8; DIGEST_LEN]>::deserialize(d)?;
            Ok(Self(digest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_serde_round_trips_as_32_raw_bytes() {
        let id = ContentId::of(b"hello");
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes, id.digest().to_vec());
        assert_eq!(postcard::from_bytes::<ContentId>(&bytes).unwrap(), id);
    }

    #[test]
    fn text_round_trip_is_canonical() {
        let id = ContentId::of(b"hello");
        let text = id.to_string();
        assert!(text.starts_with("bafkr4"), "{text}");
        assert_eq!(text.parse::<ContentId>().unwrap(), id);
        assert_eq!(ContentId::from_cid_bytes(&id.to_cid_bytes()).unwrap(), id);
        assert_eq!(id.to_cid().to_bytes(), id.to_cid_bytes().to_vec());
    }

    #[test]
    fn rejects_other_cids_with_typed_errors() {
        let id = ContentId::of(b"x");
        assert_eq!("".parse::<ContentId>(), Err(IdError::NotCanonical));
        assert_eq!(
            id.to_string().to_uppercase().parse::<ContentId>(),
            Err(IdError::NotCanonical)
        );
        assert!(matches!(
            "bnot-a-cid".parse::<ContentId>(),
            Err(IdError::Malformed(_))
        ));
        let dag_pb = Cid::new_v1(0x70, *id.to_cid().hash());
        assert_eq!(ContentId::try_from(&dag_pb), Err(IdError::Codec(0x70)));
        let sha = Multihash::<64>::wrap(0x12, &[0u8; 32]).unwrap();
        assert_eq!(
            ContentId::try_from(&Cid::new_v1(RAW_CODEC, sha)),
            Err(IdError::Hash {
                code: 0x12,
                len: 32
            })
        );
        let v0 = Cid::new_v0(sha).unwrap();
        assert_eq!(ContentId::try_from(&v0), Err(IdError::Version(0)));
        let short = Multihash::<64>::wrap(BLAKE3_MULTIHASH, &[0u8; 16]).unwrap();
        assert!(matches!(
            ContentId::try_from(&Cid::new_v1(RAW_CODEC, short)),
            Err(IdError::Hash { len: 16, .. })
        ));
        assert!(ContentId::from_cid_bytes(&[1, 2, 3]).is_err());
    }

    #[test]
    fn matches_checks_bytes() {
        let id = ContentId::of(b"abc");
        assert!(id.matches(b"abc"));
        assert!(!id.matches(b"abd"));
    }
}
