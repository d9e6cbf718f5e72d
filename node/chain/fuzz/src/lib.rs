//! What the chain crate's fuzz targets build their inputs from: signed
//! transactions from fuzzed fields (their real encodings, so a block's
//! transactions get past `SignedTx::decode`), bends of encoded bytes, and a
//! fixed committee of four validators with a dealt group key, its shares
//! and the honest seeds of its first views (BLS signatures the fuzzer
//! could never make from bytes).

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use cairn_chain::threshold::{
    self, round, Bls, Dealing, Polynomial, Scheme, SeedSignature, ValidatorShare,
};
use cairn_protocol::chain::{Address, DealId, GenesisHash, SignedTx, Transaction, TxBody};
use commonware_codec::Encode;
use commonware_cryptography::bls12381::primitives::ops::threshold as ops;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::Signer as _;
use ed25519_dalek::SigningKey;

/// The chain every block and seed here belongs to.
pub const GENESIS: GenesisHash = GenesisHash([6; 32]);
/// Views whose honest seeds the committee holds.
pub const SEED_VIEWS: u64 = 8;
/// Keys transactions are signed with.
pub const TX_KEYS: u8 = 8;

pub fn tx_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[(i % TX_KEYS).wrapping_add(1); 32])
}

/// A transaction body from fuzzed fields: the kinds whose fields are
/// plain values (proofs, deals and repair claims have targets of their
/// own in protocol/fuzz; here only their bytes' framing matters).
#[derive(Debug, Clone, Arbitrary)]
pub enum ArbBody {
    Transfer {
        to: u8,
        amount: u64,
    },
    Faucet {
        amount: u64,
    },
    RegisterNode {
        peer_id: Vec<u8>,
        addresses: Vec<String>,
        capacity: u64,
        stake: u64,
    },
    DeregisterNode,
    SetNamespaceRoot {
        root: [u8; 32],
        version: u64,
    },
    UpdateNode {
        addresses: Vec<String>,
        capacity: u64,
    },
    AddStake {
        amount: u64,
    },
    CloseDeal {
        deal: [u8; 32],
    },
}

#[derive(Debug, Clone, Arbitrary)]
pub struct ArbTx {
    pub signer: u8,
    pub nonce: u64,
    pub fee: u64,
    pub body: ArbBody,
}

impl ArbTx {
    /// The transaction, signed by its signer's key. Its fields are not
    /// checked: one outside the limits must keep its block from decoding.
    pub fn sign(&self) -> SignedTx {
        let key = tx_key(self.signer);
        let body = match self.body.clone() {
            ArbBody::Transfer { to, amount } => TxBody::Transfer {
                to: Address::of(&tx_key(to).verifying_key()),
                amount,
            },
            ArbBody::Faucet { amount } => TxBody::Faucet { amount },
            ArbBody::RegisterNode {
                peer_id,
                addresses,
                capacity,
                stake,
            } => TxBody::RegisterNode {
                peer_id,
                addresses,
                capacity,
                stake,
            },
            ArbBody::DeregisterNode => TxBody::DeregisterNode,
            ArbBody::SetNamespaceRoot { root, version } => {
                TxBody::SetNamespaceRoot { root, version }
            }
            ArbBody::UpdateNode {
                addresses,
                capacity,
            } => TxBody::UpdateNode {
                addresses,
                capacity,
            },
            ArbBody::AddStake { amount } => TxBody::AddStake { amount },
            ArbBody::CloseDeal { deal } => TxBody::CloseDeal { deal: DealId(deal) },
        };
        Transaction {
            genesis: GENESIS,
            signer: Address::of(&key.verifying_key()),
            nonce: self.nonce,
            fee: self.fee,
            body,
        }
        .sign(&key)
    }
}

/// A change to encoded bytes; positions wrap around the bytes' length.
#[derive(Debug, Clone, Arbitrary)]
pub enum Bend {
    Flip { at: u32, bit: u8 },
    Set { at: u32, byte: u8 },
    Insert { at: u32, bytes: Vec<u8> },
    Remove { at: u32, len: u8 },
    Truncate(u32),
    Append(Vec<u8>),
}

/// Applies up to four bends to `bytes`.
pub fn bend(bytes: &mut Vec<u8>, bends: &[Bend]) {
    for b in bends.iter().take(4) {
        let len = bytes.len();
        let at = |at: u32| at as usize % (len + 1);
        match b {
            Bend::Flip { at: i, bit } if len > 0 => bytes[*i as usize % len] ^= 1 << (bit % 8),
            Bend::Set { at: i, byte } if len > 0 => bytes[*i as usize % len] = *byte,
            Bend::Flip { .. } | Bend::Set { .. } => {}
            Bend::Insert { at: i, bytes: more } => {
                let i = at(*i);
                bytes.splice(i..i, more.iter().copied());
            }
            Bend::Remove { at: i, len: n } => {
                let i = at(*i);
                bytes.drain(i..(i + *n as usize).min(len));
            }
            Bend::Truncate(n) => bytes.truncate(at(*n)),
            Bend::Append(more) => bytes.extend_from_slice(more),
        }
    }
}

/// Four validators, their dealt group key and shares, the verifier of
/// their seeds, and the honest seeds of views `0..SEED_VIEWS`.
pub struct Committee {
    pub validators: Vec<PublicKey>,
    pub dealing: Dealing,
    pub polynomial: Polynomial,
    pub verifier: Scheme,
    pub seeds: Vec<SeedSignature>,
}

impl std::fmt::Debug for Committee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committee").finish_non_exhaustive()
    }
}

/// `n` validators' identity keys.
pub fn validators(n: u64) -> Vec<PublicKey> {
    (0..n)
        .map(|i| PrivateKey::from_seed(i).public_key())
        .collect()
}

pub static COMMITTEE: LazyLock<Committee> = LazyLock::new(|| {
    let validators = validators(4);
    let dealing = threshold::deal([7; 32], &validators).expect("four validators deal");
    let polynomial =
        threshold::polynomial(Some(&dealing.group_key), 4).expect("a dealt group key decodes");
    let verifier = threshold::seed_verifier(&polynomial, &GENESIS);
    let seeds = (0..SEED_VIEWS)
        .map(|view| seed(&polynomial, &dealing.shares, view))
        .collect();
    Committee {
        validators,
        dealing,
        polynomial,
        verifier,
        seeds,
    }
});

/// The seed of `view` as consensus recovers it: a quorum (3 of 4) of
/// partial signatures over the round, in the seed namespace.
fn seed(polynomial: &Polynomial, shares: &[ValidatorShare], view: u64) -> SeedSignature {
    let namespace = commonware_utils::union(&cairn_chain::namespace(&GENESIS), b"_SEED");
    let message = round(view).encode();
    let partials: Vec<_> = shares[..3]
        .iter()
        .map(|s| ops::sign_message::<Bls>(s, &namespace, &message))
        .collect();
    ops::recover::<Bls, _>(polynomial, &partials, &commonware_parallel::Sequential)
        .expect("a quorum of partials recovers the seed")
}
