//! The messages clients and storage nodes exchange: protocol `/cairn/shards/1`.
//!
//! One request and one response per stream. Each message is a frame:
//!
//! ```text
//! u32 big-endian header length │ postcard header │ body (header.body_len() bytes)
//! ```
//!
//! The header is small and bounded ([`MAX_HEADER_LEN`]); the body is raw bytes
//! whose length the header declares before a byte of it is read, so a reader
//! can refuse, budget or drain it without buffering the unknown. Bodies are a
//! shard's bytes (store), a bao encoding of a shard range (fetch), which the
//! reader verifies against the shard id alone, or the (shard id, size) list a
//! deal receipt covers (receipt).
//!
//! A new incompatible version gets a new protocol name (`/cairn/shards/2`);
//! libp2p's protocol negotiation then picks what both sides speak.
//!
//! Non-goals: transport, limits on concurrency and timeouts. Those are the
//! node's; this module only says what bytes mean and which are out of bounds.

use serde::{Deserialize, Serialize};

use crate::chain::{
    merkle, receipt_message, repair_receipt_message, Address, Commitment, DealId, DealTerms,
    GenesisHash, RepairCommitment, Sig, MAX_REPAIR_SHARDS,
};
use crate::id::ContentId;
use crate::params::MAX_SHARD_SIZE;

/// The libp2p protocol name of this message set.
pub const PROTOCOL: &str = "/cairn/shards/1";
/// Largest header a peer may send.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Most ids one `Has` request may ask about.
pub const MAX_HAS_IDS: usize = 1024;
/// Longest error text a node sends (longer is cut).
pub const MAX_ERROR_TEXT: usize = 512;
/// Largest body of a fetch response: a whole shard with every tree hash.
pub const MAX_RANGE_BODY: u64 = MAX_SHARD_SIZE as u64 + MAX_SHARD_SIZE as u64 / 256 + 4096;
/// How far a delete request's time may be from the node's clock, in seconds.
pub const DELETE_WINDOW_SECS: u64 = 300;
/// How far a signed store request's time may be from the node's clock, in
/// seconds: a captured request cannot be replayed later than this.
pub const STORE_WINDOW_SECS: u64 = 300;
/// Most shards one deal receipt covers (one node's part of one deal).
pub const MAX_RECEIPT_SHARDS: u32 = 65_536;
/// Bytes of one entry of a receipt request's body: digest ‖ u64 BE size.
pub const RECEIPT_ENTRY_LEN: usize = 32 + 8;

/// What a client asks a storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Keep this shard; its `size` bytes follow as the body.
    Store(StoreRequest),
    /// Send bytes `start..end` of a shard as a bao encoding.
    Fetch { id: ContentId, start: u64, end: u64 },
    /// Which of these shards do you hold, and how large are they?
    Has { ids: Vec<ContentId> },
    /// Who are you and how full are you?
    Info,
    /// Forget this shard; signed by the owner that stored it.
    Delete(DeleteRequest),
    /// Sign a deal receipt (version 2 of [`receipt_message`], bound to the
    /// genesis hash; version 1 named the chain id and had this tag, so a
    /// version-1 request reads as one for a foreign genesis and is refused) for the
    /// `shards` (shard id, size) pairs that follow as the body, each
    /// [`RECEIPT_ENTRY_LEN`] bytes ([`encode_receipt_shards`]). A later
    /// receipt format gets a new variant, so an older node refuses it as
    /// unreadable instead of signing something it does not understand.
    ReceiptV2(ReceiptRequest),
    /// Sign a repair receipt ([`repair_receipt_message`]) for the shards a
    /// repairer stored here, listed in the body like a deal receipt's: the
    /// node's new commitment in the deal once the repairer's claim is
    /// applied.
    RepairReceiptV2(RepairReceiptRequest),
    /// Keep this shard for the owner that signed the request
    /// ([`store_message`]); its `size` bytes follow as the body. Replaces
    /// the unsigned [`Request::Store`], which nodes refuse: a node accepts
    /// bytes only from an owner it can charge for them.
    StoreV2(SignedStoreRequest),
}

/// A request for a repair receipt: every field of
/// [`repair_receipt_message`] except the node's own address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReceiptRequest {
    /// The chain's genesis hash: a node signs only for its own chain.
    pub genesis: GenesisHash,
    /// The account that will submit the claim (and be paid its bounty).
    pub repairer: Address,
    pub deal: DealId,
    /// [`merkle::root`] over the listed pairs, in order.
    pub root: [u8; 32],
    /// Pairs listed, 1 to [`MAX_REPAIR_SHARDS`].
    pub shards: u32,
    /// Sum of the listed sizes.
    pub bytes: u64,
}

impl RepairReceiptRequest {
    /// The new commitment of node `node` this request describes.
    pub fn commitment(&self, node: Address) -> RepairCommitment {
        RepairCommitment {
            node,
            root: self.root,
            shards: self.shards,
            bytes: self.bytes,
        }
    }

    /// The bytes node `node` signs: what the chain checks when the claim is
    /// applied.
    pub fn message(&self, node: Address) -> Vec<u8> {
        repair_receipt_message(
            &self.genesis,
            &self.repairer,
            &self.deal,
            &self.commitment(node),
        )
    }

    /// Checks that the commitment fields describe `shards` exactly.
    pub fn check_shards(&self, shards: &[(ContentId, u64)]) -> Result<(), WireError> {
        check_listed(shards, self.shards, self.bytes, &self.root)
    }
}

/// A request for a node's acceptance receipt: every field of
/// [`receipt_message`] except the node's own address, which the node adds.
/// The commitment's shard count is also the length of the body's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRequest {
    /// The chain's genesis hash: a node signs only for its own chain.
    pub genesis: GenesisHash,
    /// The deal's owner: it must own every listed shard at the node.
    pub owner: Address,
    /// The owner's nonce for the transaction that opens the deal.
    pub owner_nonce: u64,
    /// The deal's terms ([`DealTerms`] without the commitments).
    pub size: u64,
    pub price_per_epoch: u64,
    pub start_epoch: u64,
    pub end_epoch: u64,
    /// The node's commitment: [`merkle::root`] over the listed pairs, in order.
    pub root: [u8; 32],
    /// Pairs listed, 1 to [`MAX_RECEIPT_SHARDS`].
    pub shards: u32,
    /// Sum of the listed sizes.
    pub bytes: u64,
}

impl ReceiptRequest {
    /// The deal's terms as the chain sees them, without commitments (the
    /// receipt does not cover other nodes' commitments).
    pub fn terms(&self) -> DealTerms {
        DealTerms {
            size: self.size,
            price_per_epoch: self.price_per_epoch,
            start_epoch: self.start_epoch,
            end_epoch: self.end_epoch,
            commitments: Vec::new(),
        }
    }

    /// The commitment of node `node` this request describes, with `receipt`.
    pub fn commitment(&self, node: Address, receipt: Sig) -> Commitment {
        Commitment {
            node,
            root: self.root,
            shards: self.shards,
            bytes: self.bytes,
            receipt,
        }
    }

    /// The bytes node `node` signs: exactly what the chain's state machine
    /// verifies when the deal opens.
    pub fn message(&self, node: Address) -> Vec<u8> {
        // receipt_message reads neither the terms' commitments nor the
        // commitment's receipt, so placeholders stand in for them.
        receipt_message(
            &self.genesis,
            &self.owner,
            self.owner_nonce,
            &self.terms(),
            &self.commitment(node, Sig([0; 64])),
        )
    }

    /// Checks that the commitment fields describe `shards` exactly: count,
    /// byte sum and Merkle root, with no shard listed twice.
    pub fn check_shards(&self, shards: &[(ContentId, u64)]) -> Result<(), WireError> {
        check_listed(shards, self.shards, self.bytes, &self.root)
    }
}

/// Checks that `count`, `total` and `root` describe `shards` exactly:
/// count, byte sum and Merkle root, with no shard listed twice.
fn check_listed(
    shards: &[(ContentId, u64)],
    count: u32,
    total: u64,
    root: &[u8; 32],
) -> Result<(), WireError> {
    let malformed = |m: String| Err(WireError::new(ErrorKind::Malformed, m));
    if shards.len() != count as usize {
        return malformed(format!(
            "{} shards listed, the commitment says {count}",
            shards.len(),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(shards.len());
    let mut bytes = 0u64;
    for (id, size) in shards {
        if !seen.insert(*id) {
            return malformed(format!("shard {id} is listed twice"));
        }
        bytes = match bytes.checked_add(*size) {
            Some(b) => b,
            None => return malformed("shard sizes overflow".into()),
        };
    }
    if bytes != total {
        return malformed(format!(
            "listed shards hold {bytes} bytes, the commitment says {total}"
        ));
    }
    if merkle::root(shards) != Some(*root) {
        return malformed("the commitment's root is not the root of the listed shards".into());
    }
    Ok(())
}

/// Encodes a receipt request's body: per shard, its digest and its size as
/// u64 big-endian.
pub fn encode_receipt_shards(shards: &[(ContentId, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(shards.len() * RECEIPT_ENTRY_LEN);
    for (id, size) in shards {
        out.extend_from_slice(id.digest());
        out.extend_from_slice(&size.to_be_bytes());
    }
    out
}

/// Decodes a receipt request's body; its length must be a whole number of
/// entries.
pub fn decode_receipt_shards(body: &[u8]) -> Result<Vec<(ContentId, u64)>, WireError> {
    if body.len() % RECEIPT_ENTRY_LEN != 0 {
        return Err(WireError::new(
            ErrorKind::Malformed,
            format!(
                "receipt body of {} bytes is not a whole number of entries",
                body.len()
            ),
        ));
    }
    Ok(body
        .chunks_exact(RECEIPT_ENTRY_LEN)
        .map(|entry| {
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&entry[..32]);
            let mut size = [0u8; 8];
            size.copy_from_slice(&entry[32..]);
            (ContentId::from_digest(digest), u64::from_be_bytes(size))
        })
        .collect())
}

/// A store request's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRequest {
    pub id: ContentId,
    pub size: u64,
    /// Unix seconds after which the node may drop the shard; `None`: until deleted.
    pub expires_at: Option<u64>,
    /// The account allowed to delete the shard early.
    pub owner: Option<Address>,
}

/// A store request signed by the shard's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStoreRequest {
    pub id: ContentId,
    pub size: u64,
    /// Unix seconds after which the node may drop the shard; `None`: until
    /// deleted (or, on a node of a chain, until no deal pays for it).
    pub expires_at: Option<u64>,
    /// The signer: the account the node records as an owner and charges
    /// the shard to until a deal pays for it.
    pub owner: Address,
    /// Unix seconds when the owner signed; requests outside
    /// [`STORE_WINDOW_SECS`] of the node's clock are refused.
    pub issued_at: u64,
    /// Over [`store_message`].
    pub signature: Sig,
}

impl SignedStoreRequest {
    /// The bytes the owner signs for the node whose libp2p peer id is
    /// `node` (bytes form).
    pub fn message(&self, node: &[u8]) -> Vec<u8> {
        store_message(node, &self.id, self.size, self.expires_at, self.issued_at)
    }

    /// Checks that the owner signed this request for node `node` within
    /// [`STORE_WINDOW_SECS`] of `now`.
    pub fn verify(&self, node: &[u8], now: u64) -> Result<(), WireError> {
        if self.issued_at.abs_diff(now) > STORE_WINDOW_SECS {
            return Err(WireError::new(
                ErrorKind::Unauthorized,
                format!(
                    "store signed at {} but the node's clock says {now}; sign again",
                    self.issued_at
                ),
            ));
        }
        crate::chain::sig::verify(&self.owner, &self.message(node), &self.signature).map_err(|_| {
            WireError::new(
                ErrorKind::Unauthorized,
                format!("bad store signature for owner {}", self.owner),
            )
        })
    }
}

/// The bytes an owner signs to store shard `id` of `size` bytes, kept
/// until `expires_at`, at the node whose libp2p peer id is `node` (bytes
/// form): useless at any other node, for any other shard, size or expiry,
/// and, past [`STORE_WINDOW_SECS`] from `issued_at`, anywhere.
pub fn store_message(
    node: &[u8],
    id: &ContentId,
    size: u64,
    expires_at: Option<u64>,
    issued_at: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + node.len() + 32 + 8 + 9 + 8);
    m.extend_from_slice(b"cairn/store-shard/v1\0");
    m.extend_from_slice(&(node.len() as u32).to_be_bytes());
    m.extend_from_slice(node);
    m.extend_from_slice(id.digest());
    m.extend_from_slice(&size.to_be_bytes());
    match expires_at {
        None => m.push(0),
        Some(t) => {
            m.push(1);
            m.extend_from_slice(&t.to_be_bytes());
        }
    }
    m.extend_from_slice(&issued_at.to_be_bytes());
    m
}

/// A signed request to delete a shard before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub id: ContentId,
    pub owner: Address,
    /// Unix seconds when the owner signed; replays outside
    /// [`DELETE_WINDOW_SECS`] of the node's clock are refused.
    pub issued_at: u64,
    /// Over [`delete_message`].
    pub signature: Sig,
}

/// The bytes an owner signs to delete shard `id` from the node whose
/// libp2p peer id is `node` (bytes form), so the signature is useless at
/// any other node or for any other shard.
pub fn delete_message(node: &[u8], id: &ContentId, issued_at: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + node.len() + 32 + 8);
    m.extend_from_slice(b"cairn/delete-shard/v1\0");
    m.extend_from_slice(&(node.len() as u32).to_be_bytes());
    m.extend_from_slice(node);
    m.extend_from_slice(id.digest());
    m.extend_from_slice(&issued_at.to_be_bytes());
    m
}

/// What a storage node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The shard is durable on the node. `existed`: it was there already.
    Stored {
        id: ContentId,
        existed: bool,
    },
    /// A bao encoding of `start..end` of a shard of `shard_size` bytes
    /// follows, `encoded_len` bytes long.
    Range {
        id: ContentId,
        shard_size: u64,
        start: u64,
        end: u64,
        encoded_len: u64,
    },
    /// For each id asked, in order: its size if held.
    Has {
        sizes: Vec<Option<u64>>,
    },
    Info(NodeInfo),
    Deleted {
        id: ContentId,
        existed: bool,
    },
    Error(WireError),
    /// The node's ed25519 signature over [`ReceiptRequest::message`] with
    /// its own address.
    Receipt {
        signature: Sig,
    },
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node software's version.
    pub version: String,
    /// Bytes the operator allows shards to take.
    pub capacity: u64,
    /// Bytes shards take now.
    pub used: u64,
    pub shards: u64,
    /// Largest shard the node accepts.
    pub max_shard_size: u64,
    /// The node's account on the chain: the public half of its libp2p
    /// ed25519 identity, which also signs its deal receipts.
    pub chain_address: Address,
    /// The TCP port of the node's bulk listener (shard requests over TLS
    /// with libp2p identity certificates), on the host of its libp2p
    /// address; `None` when it has none.
    pub bulk_port: Option<u16>,
}

/// A refusal, with a kind a program can act on and text a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl WireError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_ERROR_TEXT {
            let mut cut = MAX_ERROR_TEXT;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Self { kind, message }
    }
}

/// Why a node refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ErrorKind {
    /// The request broke the format or its limits.
    #[error("malformed request")]
    Malformed,
    /// The declared body is larger than the node accepts.
    #[error("too large")]
    TooLarge,
    /// The shard's bytes do not hash to its id.
    #[error("hash mismatch")]
    HashMismatch,
    #[error("not found")]
    NotFound,
    /// Storing would exceed the operator's capacity.
    #[error("capacity full")]
    CapacityFull,
    /// Too many requests in flight; retry later or elsewhere.
    #[error("busy")]
    Busy,
    /// The node's copy failed verification; it will not serve it.
    #[error("corrupt")]
    Corrupt,
    /// The signature or owner did not match.
    #[error("unauthorized")]
    Unauthorized,
    #[error("internal error")]
    Internal,
    /// The request did not arrive in time.
    #[error("timed out")]
    Timeout,
}

impl ErrorKind {
    /// A stable lowercase name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::HashMismatch => "hash_mismatch",
            Self::NotFound => "not_found",
            Self::CapacityFull => "capacity_full",
            Self::Busy => "busy",
            Self::Corrupt => "corrupt",
            Self::Unauthorized => "unauthorized",
            Self::Internal => "internal",
            Self::Timeout => "timeout",
        }
    }
}

impl Request {
    /// Bytes of body that follow this header.
    pub fn body_len(&self) -> u64 {
        match self {
            Self::Store(s) => s.size,
            Self::StoreV2(s) => s.size,
            Self::ReceiptV2(r) => r.shards as u64 * RECEIPT_ENTRY_LEN as u64,
            Self::RepairReceiptV2(r) => r.shards as u64 * RECEIPT_ENTRY_LEN as u64,
            _ => 0,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(_) => "store_unsigned",
            Self::StoreV2(_) => "store",
            Self::Fetch { .. } => "fetch",
            Self::Has { .. } => "has",
            Self::Info => "info",
            Self::Delete(_) => "delete",
            Self::ReceiptV2(_) => "receipt",
            Self::RepairReceiptV2(_) => "repair_receipt",
        }
    }

    /// Checks the limits every reader enforces before it trusts a header.
    pub fn check(&self) -> Result<(), WireError> {
        match self {
            Self::Store(s) if s.size > MAX_SHARD_SIZE as u64 => Err(WireError::new(
                ErrorKind::TooLarge,
                format!(
                    "shard of {} bytes exceeds the {} byte limit",
                    s.size, MAX_SHARD_SIZE
                ),
            )),
            Self::StoreV2(s) if s.size > MAX_SHARD_SIZE as u64 => Err(WireError::new(
                ErrorKind::TooLarge,
                format!(
                    "shard of {} bytes exceeds the {} byte limit",
                    s.size, MAX_SHARD_SIZE
                ),
            )),
            Self::Fetch { start, end, .. } if start > end => Err(WireError::new(
                ErrorKind::Malformed,
                format!("range {start}..{end} is backwards"),
            )),
            Self::Fetch { start, end, .. } if end - start > MAX_SHARD_SIZE as u64 => Err(
                WireError::new(ErrorKind::TooLarge, "range exceeds the shard size limit"),
            ),
            Self::Has { ids } if ids.len() > MAX_HAS_IDS => Err(WireError::new(
                ErrorKind::TooLarge,
                format!("{} ids asked, at most {MAX_HAS_IDS}", ids.len()),
            )),
            Self::ReceiptV2(r) if r.shards > MAX_RECEIPT_SHARDS => Err(WireError::new(
                ErrorKind::TooLarge,
                format!(
                    "receipt for {} shards, at most {MAX_RECEIPT_SHARDS}",
                    r.shards
                ),
            )),
            Self::ReceiptV2(r) if r.shards == 0 => Err(WireError::new(
                ErrorKind::Malformed,
                "a receipt covers at least one shard",
            )),
            Self::RepairReceiptV2(r) if r.shards == 0 || r.shards as usize > MAX_REPAIR_SHARDS => {
                Err(WireError::new(
                    ErrorKind::Malformed,
                    format!("a repair receipt covers 1 to {MAX_REPAIR_SHARDS} shards"),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Response {
    /// Bytes of body that follow this header.
    pub fn body_len(&self) -> u64 {
        match self {
            Self::Range { encoded_len, .. } => *encoded_len,
            _ => 0,
        }
    }

    /// Checks the limits a client enforces before it trusts a header.
    pub fn check(&self) -> Result<(), WireError> {
        match self {
            Self::Range {
                start,
                end,
                shard_size,
                encoded_len,
                ..
            } if start > end
                || end > shard_size
                || *encoded_len > MAX_RANGE_BODY
                || *shard_size > MAX_SHARD_SIZE as u64 =>
            {
                Err(WireError::new(
                    ErrorKind::Malformed,
                    "range response out of bounds",
                ))
            }
            Self::Has { sizes } if sizes.len() > MAX_HAS_IDS => Err(WireError::new(
                ErrorKind::Malformed,
                "too many entries in has response",
            )),
            Self::Error(e) if e.message.len() > MAX_ERROR_TEXT => {
                Err(WireError::new(ErrorKind::Malformed, "error text too long"))
            }
            _ => Ok(()),
        }
    }
}

/// Why a frame's header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("header of {0} bytes exceeds the {MAX_HEADER_LEN} byte limit")]
    HeaderTooLong(usize),
    #[error("header does not decode: {0}")]
    Decode(String),
    #[error("{0} bytes left over after the header")]
    TrailingBytes(usize),
}

/// Encodes a header with its length prefix.
pub fn encode_header<T: Serialize>(header: &T) -> Vec<u8> {
    // Serializing plain enums and structs into a Vec cannot fail.
    let body = postcard::to_allocvec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a header length prefix before the header is read.
pub fn check_header_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_HEADER_LEN {
        return Err(FrameError::HeaderTooLong(len));
    }
    Ok(len)
}

/// Decodes a header (without its length prefix); every byte must be used.
pub fn decode_header<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FrameError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ContentId {
        ContentId::of(&[n])
    }

    #[test]
    fn headers_round_trip_and_refuse_garbage() {
        let requests = [
            Request::Store(StoreRequest {
                id: id(1),
                size: 1 << 20,
                expires_at: Some(99),
                owner: Some(Address([7; 32])),
            }),
            Request::Fetch {
                id: id(2),
                start: 5,
                end: 70_000,
            },
            Request::Has {
                ids: vec![id(1), id(2)],
            },
            Request::Info,
        ];
        for r in requests {
            let framed = encode_header(&r);
            let len = check_header_len(framed[..4].try_into().unwrap()).unwrap();
            assert_eq!(len, framed.len() - 4);
            assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), r);
            let mut extra = framed[4..].to_vec();
            extra.push(0);
            assert_eq!(
                decode_header::<Request>(&extra),
                Err(FrameError::TrailingBytes(1))
            );
        }
        assert!(decode_header::<Request>(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(
            check_header_len((MAX_HEADER_LEN as u32 + 1).to_be_bytes()),
            Err(FrameError::HeaderTooLong(MAX_HEADER_LEN + 1))
        );
    }

    #[test]
    fn limits_are_checked() {
        let big = Request::Store(StoreRequest {
            id: id(1),
            size: MAX_SHARD_SIZE as u64 + 1,
            expires_at: None,
            owner: None,
        });
        assert_eq!(big.check().unwrap_err().kind, ErrorKind::TooLarge);
        let backwards = Request::Fetch {
            id: id(1),
            start: 9,
            end: 3,
        };
        assert_eq!(backwards.check().unwrap_err().kind, ErrorKind::Malformed);
        let many = Request::Has {
            ids: vec![id(1); MAX_HAS_IDS + 1],
        };
        assert_eq!(many.check().unwrap_err().kind, ErrorKind::TooLarge);
        let lying = Response::Range {
            id: id(1),
            shard_size: 10,
            start: 0,
            end: 11,
            encoded_len: 11,
        };
        assert!(lying.check().is_err());
    }

    #[test]
    fn repair_receipt_requests_are_bounded_and_describe_their_shards() {
        let shards = vec![(id(1), 10), (id(2), 20)];
        let r = RepairReceiptRequest {
            genesis: GenesisHash([2; 32]),
            repairer: Address([3; 32]),
            deal: DealId([4; 32]),
            root: merkle::root(&shards).unwrap(),
            shards: 2,
            bytes: 30,
        };
        let header = Request::RepairReceiptV2(r.clone());
        assert!(header.check().is_ok());
        assert_eq!(header.body_len(), 2 * RECEIPT_ENTRY_LEN as u64);
        let framed = encode_header(&header);
        assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), header);
        assert!(r.check_shards(&shards).is_ok());
        assert!(r.check_shards(&shards[..1]).is_err());
        assert!(r.check_shards(&[(id(1), 10), (id(2), 21)]).is_err());
        assert!(r.check_shards(&[(id(2), 20), (id(1), 10)]).is_err());
        let node = Address([9; 32]);
        assert_eq!(
            r.message(node),
            repair_receipt_message(&r.genesis, &r.repairer, &r.deal, &r.commitment(node))
        );
        for bad in [
            RepairReceiptRequest {
                shards: 0,
                ..r.clone()
            },
            RepairReceiptRequest {
                shards: MAX_REPAIR_SHARDS as u32 + 1,
                ..r.clone()
            },
        ] {
            assert_eq!(
                Request::RepairReceiptV2(bad).check().unwrap_err().kind,
                ErrorKind::Malformed
            );
        }
    }

    #[test]
    fn error_text_is_cut_on_a_char_boundary() {
        let e = WireError::new(ErrorKind::Internal, "é".repeat(MAX_ERROR_TEXT));
        assert!(e.message.len() <= MAX_ERROR_TEXT);
        assert!(Response::Error(e).check().is_ok());
    }

    fn receipt_request(shards: &[(ContentId, u64)]) -> ReceiptRequest {
        ReceiptRequest {
            genesis: GenesisHash([3; 32]),
            owner: Address([5; 32]),
            owner_nonce: 7,
            size: 1 << 30,
            price_per_epoch: 10,
            start_epoch: 1,
            end_epoch: 9,
            root: merkle::root(shards).unwrap_or([0; 32]),
            shards: shards.len() as u32,
            bytes: shards.iter().map(|s| s.1).sum(),
        }
    }

    #[test]
    fn receipt_requests_round_trip_and_check_their_list() {
        let shards: Vec<_> = (0..5).map(|i| (id(i), 1000 + i as u64)).collect();
        let r = receipt_request(&shards);
        let header = Request::ReceiptV2(r.clone());
        let framed = encode_header(&header);
        assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), header);
        assert_eq!(header.body_len(), 5 * RECEIPT_ENTRY_LEN as u64);
        assert!(header.check().is_ok());
        let body = encode_receipt_shards(&shards);
        assert_eq!(body.len() as u64, header.body_len());
        assert_eq!(decode_receipt_shards(&body).unwrap(), shards);
        assert!(decode_receipt_shards(&body[1..]).is_err());
        r.check_shards(&shards).unwrap();

        let malformed = |r: &ReceiptRequest, s: &[(ContentId, u64)]| {
            assert_eq!(r.check_shards(s).unwrap_err().kind, ErrorKind::Malformed);
        };
        let mut wrong_size = shards.clone();
        wrong_size[2].1 += 1;
        malformed(&r, &wrong_size);
        let mut swapped = shards.clone();
        swapped.swap(0, 1);
        malformed(&r, &swapped);
        malformed(&r, &shards[..4]);
        let mut twice = shards.clone();
        twice[4] = twice[3];
        malformed(&receipt_request(&twice), &twice);
        let overflow = [(id(1), u64::MAX), (id(2), 1)];
        let mut o = receipt_request(&overflow[..1]);
        o.shards = 2;
        malformed(&o, &overflow);

        let mut many = r.clone();
        many.shards = MAX_RECEIPT_SHARDS + 1;
        assert_eq!(
            Request::ReceiptV2(many).check().unwrap_err().kind,
            ErrorKind::TooLarge
        );
        let mut none = r.clone();
        none.shards = 0;
        assert!(Request::ReceiptV2(none).check().is_err());
        // The largest list fits a body, well inside the shard limit.
        let mut max = r;
        max.shards = MAX_RECEIPT_SHARDS;
        assert!(Request::ReceiptV2(max.clone()).check().is_ok());
        assert!(Request::ReceiptV2(max).body_len() < MAX_SHARD_SIZE as u64);
    }

    #[test]
    fn a_receipt_message_is_the_chains() {
        let shards = [(id(1), 10)];
        let r = receipt_request(&shards);
        let node = Address([9; 32]);
        let mut terms = r.terms();
        let c = r.commitment(node, Sig([1; 64]));
        terms.commitments = vec![c.clone()];
        assert_eq!(
            r.message(node),
            receipt_message(&r.genesis, &r.owner, r.owner_nonce, &terms, &c)
        );
        assert_ne!(r.message(node), r.message(Address([8; 32])));
        let other_chain = ReceiptRequest {
            genesis: GenesisHash([4; 32]),
            ..r.clone()
        };
        assert_ne!(r.message(node), other_chain.message(node));
    }

    fn signed_store(key: &ed25519_dalek::SigningKey, node: &[u8], now: u64) -> SignedStoreRequest {
        use ed25519_dalek::Signer;
        let mut r = SignedStoreRequest {
            id: id(1),
            size: 4096,
            expires_at: Some(now + 60),
            owner: Address::of(&key.verifying_key()),
            issued_at: now,
            signature: Sig([0; 64]),
        };
        r.signature = Sig(key.sign(&r.message(node)).to_bytes());
        r
    }

    #[test]
    fn a_signed_store_holds_only_for_its_node_shard_size_expiry_and_time() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let now = 1_000_000;
        let r = signed_store(&key, b"node-a", now);
        r.verify(b"node-a", now).unwrap();
        r.verify(b"node-a", now + STORE_WINDOW_SECS).unwrap();
        let unauthorized = |r: &SignedStoreRequest, node: &[u8], at: u64| {
            assert_eq!(
                r.verify(node, at).unwrap_err().kind,
                ErrorKind::Unauthorized
            );
        };
        unauthorized(&r, b"node-b", now);
        unauthorized(&r, b"node-a", now + STORE_WINDOW_SECS + 1);
        unauthorized(&r, b"node-a", now - STORE_WINDOW_SECS - 1);
        for changed in [
            SignedStoreRequest {
                id: id(2),
                ..r.clone()
            },
            SignedStoreRequest {
                size: 4097,
                ..r.clone()
            },
            SignedStoreRequest {
                expires_at: None,
                ..r.clone()
            },
            SignedStoreRequest {
                issued_at: now + 1,
                ..r.clone()
            },
            SignedStoreRequest {
                owner: Address([9; 32]),
                ..r.clone()
            },
        ] {
            unauthorized(&changed, b"node-a", now);
        }
        let header = Request::StoreV2(r.clone());
        assert_eq!(header.body_len(), 4096);
        assert_eq!(header.kind(), "store");
        let framed = encode_header(&header);
        assert_eq!(decode_header::<Request>(&framed[4..]).unwrap(), header);
        let big = Request::StoreV2(SignedStoreRequest {
            size: MAX_SHARD_SIZE as u64 + 1,
            ..r
        });
        assert_eq!(big.check().unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn delete_messages_differ_by_node_shard_and_time() {
        let a = delete_message(b"node-a", &id(1), 10);
        assert_ne!(a, delete_message(b"node-b", &id(1), 10));
        assert_ne!(a, delete_message(b"node-a", &id(2), 10));
        assert_ne!(a, delete_message(b"node-a", &id(1), 11));
    }
}
