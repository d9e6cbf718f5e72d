//! Transactions: what they say, how they are signed, how they are encoded.
//!
//! Encoding is postcard; the signature covers
//! `"cairn tx v3\0" ‖ BLAKE3(postcard(tx))` (a 44-byte message, so a 25 KB
//! storage proof costs its verifier one BLAKE3 pass, not a SHA-512 one inside
//! Ed25519 as well; checked under ZIP-215, [`super::sig`]), and the
//! transaction names its chain by the hash of its genesis
//! ([`GenesisHash`]), so a transaction can be replayed neither on another
//! chain, nor on a chain relaunched under the same id, nor (thanks to the
//! nonce) on this one.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::genesis::GenesisHash;
use super::merkle::{Sibling, MAX_PATH_LEN};
use super::rejection::Rejection;
use super::repair::{RepairClaim, RepairRef};
use super::state::DealId;
use crate::id::ContentId;
use crate::proofs::{chunk::MAX_CHUNK_PATH, Answer, StorageProof, CHUNK_BYTES, MAX_SAMPLES};

/// Largest encoded signed transaction.
pub const MAX_TX_BYTES: usize = 64 * 1024;
/// Longest libp2p peer id accepted in a node registration.
pub const MAX_PEER_ID_LEN: usize = 64;
/// Most listen addresses a node may register.
pub const MAX_ADDRESSES: usize = 8;
/// Longest address text.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Most per-node commitments in one deal (one per shard column).
pub const MAX_COMMITMENTS: usize = 256;
/// Longest chain id.
pub const MAX_CHAIN_ID_LEN: usize = 64;
const SIGNING_DOMAIN: &[u8] = b"cairn tx v3\0";
const RECEIPT_DOMAIN: &[u8] = b"cairn deal receipt v2\0";

/// An account: an ed25519 public key. Storage nodes and users alike.
/// Hex text in human-readable formats (JSON, TOML), 32 raw bytes otherwise.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

super::hex32::hex32_newtype!(Address);

impl Address {
    pub fn of(key: &VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, Rejection> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| Rejection::Malformed("address is not an ed25519 key".into()))
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sig({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Sig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sig, E> {
                let arr: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Sig(arr))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Sig, A::Error> {
                let mut arr = [0u8; 64];
                for (i, slot) in arr.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(65, &self));
                }
                Ok(Sig(arr))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One node's part of a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub node: Address,
    /// [`super::merkle::root`] over the (shard id, size) pairs this node holds.
    pub root: [u8; 32],
    pub shards: u32,
    pub bytes: u64,
    /// The node's signature over [`receipt_message`]: it accepted the shards.
    pub receipt: Sig,
}

/// What an owner asks the chain to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealTerms {
    /// Total bytes stored: the sum of the commitments' bytes.
    pub size: u64,
    /// Paid from escrow each epoch, split among nodes by bytes held.
    pub price_per_epoch: u64,
    pub start_epoch: u64,
    /// First epoch no longer paid for.
    pub end_epoch: u64,
    pub commitments: Vec<Commitment>,
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxBody {
    /// Moves `amount` to `to`.
    Transfer { to: Address, amount: u64 },
    /// Devnet only: mints `amount` to the signer.
    Faucet { amount: u64 },
    /// The signer becomes a storage node, locking `stake`.
    RegisterNode {
        peer_id: Vec<u8>,
        addresses: Vec<String>,
        capacity: u64,
        stake: u64,
    },
    /// The signer stops being a storage node and gets its stake back; only
    /// once it has no active deals.
    DeregisterNode,
    /// Opens a deal owned by the signer, locking its escrow.
    OpenDeal(DealTerms),
    /// Points the signer's namespace at `root`; versions only go up.
    SetNamespaceRoot { root: [u8; 32], version: u64 },
    /// A registered node announces new addresses (e.g. new ports after a
    /// restart) and capacity; its peer id and stake stay. The capacity may
    /// not go below the bytes it already holds in deals. (Last variant:
    /// postcard numbers variants in order, so new ones go at the end.)
    UpdateNode {
        addresses: Vec<String>,
        capacity: u64,
    },
    /// A registered node locks `amount` more stake (to commit more bytes).
    AddStake { amount: u64 },
    /// The deal's owner ends it: payments stop after the current period and
    /// the escrow not yet earned comes back.
    CloseDeal { deal: DealId },
    /// A node's answer to its challenge for one period.
    ProveStorage(StorageProof),
    /// A node admits it lost shards, before a challenge finds them: it stops
    /// being paid for them and is not failed when a sample lands on them.
    DeclareLost(Vec<LostLeaf>),
    /// The deal's owner names the deal's public repair data (once): what a
    /// stranger needs to rebuild lost shards without the key.
    SetRepairData { deal: DealId, repair: RepairRef },
    /// The signer rebuilt lost shards of a deal and stored them on new
    /// holders: the chain moves them there (first valid claim wins) and pays
    /// the signer a bounty once every new holder has proven them.
    ClaimRepair(RepairClaim),
}

/// Most shards one `DeclareLost` names.
pub const MAX_LOST_LEAVES: usize = 256;

/// A shard a node declares lost: which deal, which leaf of its commitment,
/// and the leaf's path (so the chain learns the shard's size and id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostLeaf {
    pub deal: DealId,
    pub leaf: u32,
    pub shard: ContentId,
    pub size: u64,
    pub path: Vec<Sibling>,
}

/// The libp2p peer id (its bytes) of the account `address`: a storage
/// node's chain key is its libp2p identity key, so this is the only peer id
/// its `RegisterNode` may name. Per the libp2p peer-id spec, an Ed25519 key's
/// id is the identity multihash (code 0x00, length 36) of its protobuf
/// `PublicKey { Type: Ed25519 (1), Data: 32 bytes }`.
pub fn peer_id_of(address: &Address) -> Vec<u8> {
    let mut out = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    out.extend_from_slice(&address.0);
    out
}

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The chain this transaction is for: the hash of its genesis, so a
    /// chain relaunched with the same id (any other genesis) refuses it.
    pub genesis: GenesisHash,
    pub signer: Address,
    pub nonce: u64,
    pub fee: u64,
    pub body: TxBody,
}

/// A transaction and its signer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    pub tx: Transaction,
    pub signature: Sig,
}

fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value)
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"))
}

impl Transaction {
    /// The bytes the signature covers: the domain and the BLAKE3 hash of
    /// the transaction's encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(blake3::hash(&postcard_bytes(self)).as_bytes());
        out
    }

    /// Signs with `key`; the transaction's `signer` must be `key`'s address
    /// for the result to verify.
    pub fn sign(self, key: &SigningKey) -> SignedTx {
        let signature = Sig(key.sign(&self.signing_bytes()).to_bytes());
        SignedTx {
            tx: self,
            signature,
        }
    }

    /// Checks field limits that do not depend on state.
    pub fn check_limits(&self) -> Result<(), Rejection> {
        let bad = |what: &str| Err(Rejection::Malformed(what.into()));
        match &self.body {
            TxBody::RegisterNode {
                peer_id, addresses, ..
            } => {
                if peer_id.is_empty() || peer_id.len() > MAX_PEER_ID_LEN {
                    return bad("peer id must be 1 to 64 bytes");
                }
                check_addresses(addresses)?;
            }
            TxBody::UpdateNode { addresses, .. } => check_addresses(addresses)?,
            TxBody::OpenDeal(terms)
                if terms.commitments.is_empty() || terms.commitments.len() > MAX_COMMITMENTS =>
            {
                return bad("a deal has 1 to 256 commitments");
            }
            TxBody::ProveStorage(proof) => {
                if proof.samples.len() > MAX_SAMPLES {
                    return bad("a proof has at most 64 samples");
                }
                for s in &proof.samples {
                    if s.leaf_path.len() > MAX_PATH_LEN {
                        return bad("a commitment path has at most 32 levels");
                    }
                    if let Answer::Chunk { data, path } = &s.answer {
                        if data.len() as u64 > CHUNK_BYTES || path.len() > MAX_CHUNK_PATH {
                            return bad("a chunk is at most 1 KiB with at most 48 levels");
                        }
                    }
                }
            }
            TxBody::DeclareLost(leaves) => {
                if leaves.is_empty() || leaves.len() > MAX_LOST_LEAVES {
                    return bad("a declaration names 1 to 256 shards");
                }
                if leaves.iter().any(|l| l.path.len() > MAX_PATH_LEN) {
                    return bad("a commitment path has at most 32 levels");
                }
            }
            TxBody::SetRepairData { repair, .. } => repair.check()?,
            TxBody::ClaimRepair(claim) => claim.check_limits()?,
            _ => {}
        }
        Ok(())
    }
}

/// A node's announced addresses: at most [`MAX_ADDRESSES`], each 1 to
/// [`MAX_ADDRESS_LEN`] bytes.
fn check_addresses(addresses: &[String]) -> Result<(), Rejection> {
    if addresses.len() > MAX_ADDRESSES
        || addresses
            .iter()
            .any(|a| a.is_empty() || a.len() > MAX_ADDRESS_LEN)
    {
        return Err(Rejection::Malformed(
            "at most 8 addresses of 1 to 256 characters".into(),
        ));
    }
    Ok(())
}

impl SignedTx {
    pub fn encode(&self) -> Vec<u8> {
        postcard_bytes(self)
    }

    /// Parses a transaction from the network: size-limited, no trailing
    /// bytes, field limits checked. The signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self, Rejection> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(Rejection::TooLarge(bytes.len()));
        }
        let (tx, rest): (Self, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Rejection::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        tx.tx.check_limits()?;
        Ok(tx)
    }

    /// The transaction's id: BLAKE3 of its encoding.
    pub fn id(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Checks the signature against the signer ([`super::sig`]).
    pub fn verify(&self) -> Result<(), Rejection> {
        super::sig::verify(&self.tx.signer, &self.tx.signing_bytes(), &self.signature)
    }
}

/// What a node signs to accept its part of a deal: the chain (its genesis
/// hash), the owner and
/// the owner's nonce for the opening transaction (so a receipt opens one
/// deal only), the deal's terms, and the node's own commitment.
pub fn receipt_message(
    genesis: &GenesisHash,
    owner: &Address,
    owner_nonce: u64,
    terms: &DealTerms,
    c: &Commitment,
) -> Vec<u8> {
    let mut out = RECEIPT_DOMAIN.to_vec();
    out.extend_from_slice(&postcard_bytes(&(
        genesis,
        owner,
        owner_nonce,
        terms.size,
        terms.price_per_epoch,
        terms.start_epoch,
        terms.end_epoch,
        &c.node,
        &c.root,
        c.shards,
        c.bytes,
    )));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_id_is_libp2ps_for_the_same_key() {
        for seed in [1u8, 7, 200] {
            let key = SigningKey::from_bytes(&[seed; 32]);
            let address = Address::of(&key.verifying_key());
            let ed = libp2p_identity::ed25519::PublicKey::try_from_bytes(&address.0).unwrap();
            let libp2p = libp2p_identity::PublicKey::from(ed).to_peer_id();
            assert_eq!(peer_id_of(&address), libp2p.to_bytes());
        }
    }

    #[test]
    fn sign_encode_decode_verify() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let tx = Transaction {
            genesis: GenesisHash([7; 32]),
            signer: Address::of(&key.verifying_key()),
            nonce: 0,
            fee: 1,
            body: TxBody::Transfer {
                to: Address([9; 32]),
                amount: 5,
            },
        };
        let signed = tx.sign(&key);
        let bytes = signed.encode();
        let back = SignedTx::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        back.verify().unwrap();
        let mut tampered = back.clone();
        tampered.tx.fee = 2;
        assert_eq!(tampered.verify(), Err(Rejection::BadSignature));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            SignedTx::decode(&long),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            SignedTx::decode(&bytes[..bytes.len() - 1]),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(
            SignedTx::decode(&vec![0; MAX_TX_BYTES + 1]),
            Err(Rejection::TooLarge(MAX_TX_BYTES + 1))
        );
        let mut many = signed.tx.clone();
        many.body = TxBody::UpdateNode {
            addresses: vec!["/ip4/1.2.3.4/tcp/1".into(); MAX_ADDRESSES + 1],
            capacity: 1,
        };
        assert!(matches!(
            SignedTx::decode(&many.clone().sign(&key).encode()),
            Err(Rejection::Malformed(_))
        ));
        many.body = TxBody::UpdateNode {
            addresses: vec![String::new()],
            capacity: 1,
        };
        assert!(matches!(
            SignedTx::decode(&many.sign(&key).encode()),
            Err(Rejection::Malformed(_))
        ));
        let a = Address([0xab; 32]);
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        assert!("zz".parse::<Address>().is_err());
    }

    /// New variants go last: the encodings of the earlier ones (stored in
    /// blocks and signed) do not move.
    #[test]
    fn variant_tags_are_stable() {
        let tag = |b: &TxBody| postcard::to_stdvec(b).unwrap()[0];
        assert_eq!(tag(&TxBody::Faucet { amount: 0 }), 1);
        assert_eq!(tag(&TxBody::DeregisterNode), 3);
        assert_eq!(
            tag(&TxBody::SetNamespaceRoot {
                root: [0; 32],
                version: 0
            }),
            5
        );
        let update = TxBody::UpdateNode {
            addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
            capacity: 7,
        };
        assert_eq!(tag(&update), 6);
        let r = Rejection::CapacityBelowUsed {
            node: Address([0; 32]),
            used: 2,
            capacity: 1,
        };
        assert_eq!(postcard::to_stdvec(&r).unwrap()[0], 20);
        assert_eq!(
            postcard::to_stdvec(&Rejection::StaleNamespace { current: 0, got: 0 }).unwrap()[0],
            19
        );
        assert_eq!(tag(&TxBody::AddStake { amount: 1 }), 7);
        assert_eq!(
            tag(&TxBody::CloseDeal {
                deal: DealId([0; 32])
            }),
            8
        );
        assert_eq!(tag(&TxBody::DeclareLost(vec![])), 10);
        let claim = RepairClaim {
            deal: DealId([0; 32]),
            shards: vec![],
            holders: vec![],
        };
        assert_eq!(tag(&TxBody::ClaimRepair(claim)), 12);
        assert_eq!(
            postcard::to_stdvec(&Rejection::NoRepairData(DealId([0; 32]))).unwrap()[0],
            34
        );
    }
}
