//! # cairn-protocol: the rules of the Cairn network, without I/O
//!
//! This crate decides; the node, the client and the simulator do I/O around it.
//! Everything here is deterministic and synchronous: no sockets, no disk, no
//! runtime. A rule that more than one part of Cairn must agree on lives here,
//! once.
//!
//! ## What it holds
//!
//! | module | holds |
//! |---|---|
//! | [`id`] | content ids: CIDv1, raw codec, BLAKE3-256 |
//! | [`params`] | redundancy parameters and the byte geometry of a file |
//! | [`cipher`] | the per-file key and the STREAM construction over 64 KiB blocks |
//! | [`erasure`] | systematic Reed–Solomon over GF(2^8), in cache-sized slices |
//! | [`shard`] | bao outboards and verified byte ranges of a shard |
//! | [`proofs`] | storage challenges, proofs of 1 KiB chunks, and the accounting of periods |
//! | [`manifest`] | the per-file manifest, its encryption and its id |
//! | [`capability`] | `cairn:<manifest-id>#<key>`, all a reader needs |
//! | [`chain`] | the chain's state machine: accounts, nodes, deals, epochs, namespace roots |
//! | [`encoder`] | plaintext stream → encrypted, erasure-coded segments |
//! | [`decoder`] | any k shards per segment → verified plaintext |
//! | [`range`] | which shard bytes hold a plaintext byte range |
//! | [`keys`] | BIP-39 recovery phrase → account and namespace keys |
//! | [`namespace`] | directory objects, sealed commits, directory capabilities, merge rules: an account's encrypted tree |
//! | [`placement`] | which nodes get a segment's shards (rendezvous hashing, spread by failure domain) |
//! | [`repair`] | repair without the owner: when a segment needs repair, the public repair data, repair orders and claims from the chain's state |
//! | [`wire`] | the messages clients and nodes exchange under `/cairn/shards/1` |
//! | [`units`] | human byte sizes (`64MiB`) for configs and command lines |
//!
//! ## Example: a file's round trip
//!
//! ```
//! use cairn_protocol::encoder::EncoderConfig;
//! use cairn_protocol::{Capability, CodingParams, FileDecoder, FileKey, Manifest, ReadEncoder, SegmentShards};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = vec![42u8; 300_000];
//! let key = FileKey::generate();
//! let config = EncoderConfig::new(CodingParams::new(3, 2)?);
//!
//! // Encode: every segment yields n = 5 shards and their ids.
//! let mut encoder = ReadEncoder::new(&file[..], &key, config)?;
//! let mut stored = Vec::new();
//! while let Some(segment) = encoder.next_segment()? {
//!     stored.push(segment.shards().map(<[u8]>::to_vec).collect::<Vec<_>>());
//! }
//! let (manifest_id, sealed) = encoder.manifest()?.seal(&key);
//! let capability = Capability::new(manifest_id, key).to_string();
//!
//! // Decode from the capability, using only shards 2, 3 and 4 of each segment.
//! let cap: Capability = capability.parse()?;
//! let manifest = Manifest::open(&cap.manifest, &sealed, &cap.key)?;
//! let mut decoder = FileDecoder::new(&manifest, &cap.key);
//! let mut out = Vec::new();
//! for (i, shards) in stored.into_iter().enumerate() {
//!     let mut set = SegmentShards::new(&manifest, i as u64)?;
//!     for j in 2..5 {
//!         set.insert(j, shards[j].clone())?;
//!     }
//!     decoder.write_segment(set, &mut out)?;
//! }
//! decoder.finish()?;
//! assert_eq!(out, file);
//! # Ok(())
//! # }
//! ```
//!
//! ## Goals
//!
//! * **Integrity first.** Every byte that crosses a trust boundary is checked
//!   against an id or an authentication tag before it is used; a failed check
//!   is a typed error, never wrong output.
//! * **Bounded memory.** Encoding and decoding hold one segment at a time; how
//!   much that is depends on the parameters, never on the file size.
//! * **One definition.** The byte formats are specified in `docs/format.md` and
//!   pinned by known-answer vectors in `tests/`.
//!
//! ## Non-goals
//!
//! * Networking, storage or scheduling: those belong to `cairn-node` and
//!   `cairn-client`.
//! * Parallelism: the kernels are single-threaded so callers decide how many
//!   cores to spend.
//! * Hand-written cryptography or coding: the primitives come from RustCrypto,
//!   `blake3`, `bao-tree` and `reed-solomon-erasure`; this crate only composes
//!   them and fixes how.

pub mod capability;
pub mod chain;
pub mod chain_wire;
pub mod cipher;
pub mod decoder;
pub mod encoder;
pub mod erasure;
pub mod id;
pub mod keys;
pub mod manifest;
pub mod namespace;
pub mod params;
pub mod placement;
pub mod proofs;
pub mod range;
pub mod repair;
pub mod shard;
pub mod units;
pub mod wire;

pub use capability::Capability;
pub use cipher::FileKey;
pub use decoder::{FileDecoder, SegmentShards};
pub use encoder::{AsyncReadEncoder, EncodedSegment, EncoderConfig, FileEncoder, ReadEncoder};
pub use id::ContentId;
pub use manifest::Manifest;
pub use params::{CodingParams, Layout};
