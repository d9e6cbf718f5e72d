//! The block: what consensus orders.
//!
//! A block names its parent, its height and time, carries transactions, and
//! commits to the state root reached by applying them on top of the parent's
//! state. Committing the *post*-state (not the parent's, as Tendermint's
//! lagging app hash does) means a validator whose state machine diverges
//! refuses the very block that diverges.
//!
//! A block also records the consensus view it was proposed in and carries
//! the seed of its parent's view (the threshold signature over that view,
//! see `cairn_protocol::chain::beacon`): the beacon it hands the state
//! machine, checkable by anyone with the genesis group key.
//!
//! The digest is BLAKE3 over the canonical encoding. Decoding is bounded
//! (transaction count and bytes) and canonical: a decoded block re-encodes
//! to exactly the bytes it came from, as commonware's `Block` contract asks.

use bytes::BufMut;
use cairn_protocol::chain::{beacon, GenesisHash, SignedTx, MAX_TX_BYTES};
use commonware_codec::{varint::UInt, Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::{types::Height, BoundedBlock, Heightable};
use commonware_cryptography::{
    blake3::{Blake3, Digest},
    Digestible, Hasher,
};

use crate::threshold::SeedSignature;

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4096;
/// Most transaction bytes in one block (encoded).
pub const MAX_BLOCK_TX_BYTES: usize = 2 * 1024 * 1024;

/// A view's seed as a block carries it: the view and the threshold
/// signature over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSeed {
    pub view: u64,
    pub signature: SeedSignature,
}

impl BlockSeed {
    /// The signature's canonical encoding (what the beacon hashes).
    pub fn signature_bytes(&self) -> Vec<u8> {
        commonware_codec::Encode::encode(&self.signature).to_vec()
    }
}

/// One block of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Digest of the parent block (all zeros for genesis).
    pub parent: Digest,
    pub height: Height,
    /// The consensus view this block was proposed in (0 for genesis).
    pub view: u64,
    /// Proposer's clock, milliseconds since the Unix epoch; strictly
    /// increasing along the chain.
    pub timestamp_ms: u64,
    /// The seed of the parent's view; `None` exactly when the parent is
    /// the genesis block.
    pub seed: Option<BlockSeed>,
    /// Root of the state after this block's transactions.
    pub state_root: [u8; 32],
    pub txs: Vec<SignedTx>,
    /// Each transaction's encoding, kept so encoding the block (for its
    /// digest, for the wire, for storage) never re-serializes.
    encoded: Vec<Vec<u8>>,
    digest: Digest,
}

/// The beacon of a block carrying `seed` (`None`: the block on genesis).
pub fn seed_beacon(seed: Option<&BlockSeed>, genesis: &GenesisHash) -> [u8; 32] {
    match seed {
        Some(seed) => beacon::beacon_from_seed(&seed.signature_bytes()),
        None => beacon::genesis_beacon(genesis),
    }
}

/// What a block is made of, before its digest is computed.
#[derive(Clone, Debug)]
pub struct BlockParts {
    pub parent: Digest,
    pub height: Height,
    pub view: u64,
    pub timestamp_ms: u64,
    pub seed: Option<BlockSeed>,
    pub state_root: [u8; 32],
    pub txs: Vec<SignedTx>,
}

impl Block {
    pub fn new(parts: BlockParts) -> Self {
        let encoded = parts.txs.iter().map(SignedTx::encode).collect();
        Self::assemble(parts, encoded)
    }

    /// A block from its parts, its digest computed once.
    fn assemble(parts: BlockParts, encoded: Vec<Vec<u8>>) -> Self {
        let mut block = Self {
            parent: parts.parent,
            height: parts.height,
            view: parts.view,
            timestamp_ms: parts.timestamp_ms,
            seed: parts.seed,
            state_root: parts.state_root,
            txs: parts.txs,
            encoded,
            digest: Digest([0; 32]),
        };
        block.digest = block.compute_digest();
        block
    }

    /// The beacon this block hands the state machine
    /// (`cairn_protocol::chain::beacon`): from its seed, or the genesis
    /// beacon of the chain `genesis` names for the block on genesis.
    pub fn beacon(&self, genesis: &GenesisHash) -> [u8; 32] {
        seed_beacon(self.seed.as_ref(), genesis)
    }

    /// The first block: height 0, no parent, no transactions, committing to
    /// the genesis state. Every validator derives the same one from the
    /// genesis file.
    pub fn genesis(state_root: [u8; 32]) -> Self {
        Self::new(BlockParts {
            parent: Digest([0; 32]),
            height: Height::zero(),
            view: 0,
            timestamp_ms: 0,
            seed: None,
            state_root,
            txs: Vec::new(),
        })
    }

    /// The digest as raw bytes (the block id in APIs).
    pub fn id(&self) -> [u8; 32] {
        self.digest.0
    }

    fn compute_digest(&self) -> Digest {
        let mut bytes = Vec::with_capacity(self.encode_size());
        self.write(&mut bytes);
        Blake3::hash(&[&bytes])
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.parent.write(buf);
        UInt(self.height.get()).write(buf);
        UInt(self.view).write(buf);
        UInt(self.timestamp_ms).write(buf);
        match &self.seed {
            None => buf.put_u8(0),
            Some(seed) => {
                buf.put_u8(1);
                UInt(seed.view).write(buf);
                seed.signature.write(buf);
            }
        }
        buf.put_slice(&self.state_root);
        UInt(self.encoded.len() as u64).write(buf);
        for tx in &self.encoded {
            UInt(tx.len() as u64).write(buf);
            buf.put_slice(tx);
        }
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.parent.encode_size()
            + UInt(self.height.get()).encode_size()
            + UInt(self.view).encode_size()
            + UInt(self.timestamp_ms).encode_size()
            + 1
            + self.seed.as_ref().map_or(0, |seed| {
                UInt(seed.view).encode_size() + seed.signature.encode_size()
            })
            + self.state_root.len()
            + UInt(self.encoded.len() as u64).encode_size()
            + self
                .encoded
                .iter()
                .map(|tx| UInt(tx.len() as u64).encode_size() + tx.len())
                .sum::<usize>()
    }
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let parent = Digest::read(buf)?;
        let height = Height::new(UInt::<u64>::read(buf)?.0);
        let view = UInt::<u64>::read(buf)?.0;
        let timestamp_ms = UInt::<u64>::read(buf)?.0;
        let seed = match u8::read(buf)? {
            0 => None,
            1 => Some(BlockSeed {
                view: UInt::<u64>::read(buf)?.0,
                signature: SeedSignature::read(buf)?,
            }),
            tag => return Err(CodecError::InvalidEnum(tag)),
        };
        let mut state_root = [0u8; 32];
        if buf.remaining() < 32 {
            return Err(CodecError::EndOfBuffer);
        }
        buf.copy_to_slice(&mut state_root);
        let count = UInt::<u64>::read(buf)?.0 as usize;
        if count > MAX_BLOCK_TXS {
            return Err(CodecError::InvalidLength(count));
        }
        let mut txs = Vec::with_capacity(count);
        let mut encoded = Vec::with_capacity(count);
        let mut total = 0usize;
        for _ in 0..count {
            let len = UInt::<u64>::read(buf)?.0 as usize;
            total = total.saturating_add(len);
            if len > MAX_TX_BYTES || total > MAX_BLOCK_TX_BYTES {
                return Err(CodecError::InvalidLength(len));
            }
            if buf.remaining() < len {
                return Err(CodecError::EndOfBuffer);
            }
            let mut bytes = vec![0u8; len];
            buf.copy_to_slice(&mut bytes);
            let tx = SignedTx::decode(&bytes)
                .map_err(|_| CodecError::Invalid("cairn block", "undecodable transaction"))?;
            // Canonical only: a transaction that re-encodes differently would
            // give one block two encodings (and two digests).
            if tx.encode() != bytes {
                return Err(CodecError::Invalid(
                    "cairn block",
                    "non-canonical transaction",
                ));
            }
            txs.push(tx);
            encoded.push(bytes);
        }
        Ok(Self::assemble(
            BlockParts {
                parent,
                height,
                view,
                timestamp_ms,
                seed,
                state_root,
                txs,
            },
            encoded,
        ))
    }
}

impl BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        // parent + three u64 varints + the seed (tag, view varint,
        // signature) + root + count varint, then per transaction a length
        // varint (≤ 3 bytes for 64 KiB) and the bytes.
        32 + 3 * 10
            + 1
            + 10
            + <SeedSignature as commonware_codec::FixedSize>::SIZE
            + 32
            + 10
            + MAX_BLOCK_TXS * 3
            + MAX_BLOCK_TX_BYTES
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        self.height
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.parent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::chain::{Address, Transaction, TxBody};
    use commonware_codec::{DecodeExt, Encode};
    use commonware_cryptography::{
        bls12381::primitives::ops::threshold, ed25519::PrivateKey, Signer,
    };
    use ed25519_dalek::SigningKey;

    fn dec(bytes: &[u8]) -> Result<Block, CodecError> {
        Block::decode(bytes::BytesMut::from(bytes))
    }

    fn tx(nonce: u64) -> SignedTx {
        let key = SigningKey::from_bytes(&[7; 32]);
        Transaction {
            genesis: GenesisHash([1; 32]),
            signer: Address::of(&key.verifying_key()),
            nonce,
            fee: 1,
            body: TxBody::Faucet { amount: 10 },
        }
        .sign(&key)
    }

    fn parts(state_root: [u8; 32], txs: Vec<SignedTx>) -> BlockParts {
        let dealing =
            crate::threshold::deal([1; 32], &[PrivateKey::from_seed(0).public_key()]).unwrap();
        let signature =
            threshold::sign_message::<crate::threshold::Bls>(&dealing.shares[0], b"test", b"view")
                .value;
        BlockParts {
            parent: Digest([1; 32]),
            height: Height::new(9),
            view: 12,
            timestamp_ms: 1234,
            seed: Some(BlockSeed {
                view: 11,
                signature,
            }),
            state_root,
            txs,
        }
    }

    #[test]
    fn round_trip_is_canonical_and_digest_covers_everything() {
        let block = Block::new(parts([2; 32], vec![tx(0), tx(1)]));
        let bytes = block.encode();
        assert_eq!(bytes.len(), block.encode_size());
        assert!(bytes.len() <= Block::max_encode_size(&()));
        let back = dec(&bytes).unwrap();
        assert_eq!(back, block);
        assert_eq!(back.digest(), block.digest());
        let other = Block::new(parts([3; 32], block.txs.clone()));
        assert_ne!(other.digest(), back.digest());
        let mut p = parts([2; 32], block.txs.clone());
        p.seed = None;
        let unseeded = Block::new(p);
        assert_ne!(unseeded.digest(), block.digest());
        assert_eq!(dec(&unseeded.encode()).unwrap(), unseeded);
        let mut p = parts([2; 32], block.txs.clone());
        p.view = 13;
        assert_ne!(Block::new(p).digest(), block.digest());
        // Trailing bytes, truncation and a tampered transaction are refused.
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(dec(&long).is_err());
        assert!(dec(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.to_vec();
        let last = bad.len() - 70;
        bad[last] ^= 0xff;
        if let Ok(b) = dec(&bad) {
            assert_ne!(b.digest(), block.digest());
        }
    }

    #[test]
    fn hostile_counts_are_refused_before_allocation() {
        let mut bytes = Block::genesis([0; 32]).encode().to_vec();
        // Replace the zero transaction count with a huge one.
        bytes.pop();
        UInt(u64::MAX).write(&mut bytes);
        assert!(matches!(dec(&bytes), Err(CodecError::InvalidLength(_))));
        // An unknown seed tag is refused. The genesis encoding is parent
        // (32), height, view, timestamp (one byte each), then the tag.
        let mut bytes = Block::genesis([0; 32]).encode().to_vec();
        bytes[35] = 2;
        assert!(matches!(dec(&bytes), Err(CodecError::InvalidEnum(2))));
    }
}
