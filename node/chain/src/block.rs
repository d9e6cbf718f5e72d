//! The block: what consensus orders.
//!
//! A block names its parent, its height and time, carries transactions, and
//! commits to the state root reached by applying them on top of the parent's
//! state. Committing the *post*-state (not the parent's, as Tendermint's
//! lagging app hash does) means a validator whose state machine diverges
//! refuses the very block that diverges.
//!
//! The digest is BLAKE3 over the canonical encoding. Decoding is bounded
//! (transaction count and bytes) and canonical: a decoded block re-encodes
//! to exactly the bytes it came from, as commonware's `Block` contract asks.

use bytes::BufMut;
use cairn_protocol::chain::{SignedTx, MAX_TX_BYTES};
use commonware_codec::{varint::UInt, Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::{types::Height, BoundedBlock, Heightable};
use commonware_cryptography::{
    blake3::{Blake3, Digest},
    Digestible, Hasher,
};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4096;
/// Most transaction bytes in one block (encoded).
pub const MAX_BLOCK_TX_BYTES: usize = 2 * 1024 * 1024;

/// One block of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Digest of the parent block (all zeros for genesis).
    pub parent: Digest,
    pub height: Height,
    /// Proposer's clock, milliseconds since the Unix epoch; strictly
    /// increasing along the chain.
    pub timestamp_ms: u64,
    /// Root of the state after this block's transactions.
    pub state_root: [u8; 32],
    pub txs: Vec<SignedTx>,
    /// Each transaction's encoding, kept so encoding the block (for its
    /// digest, for the wire, for storage) never re-serializes.
    encoded: Vec<Vec<u8>>,
    digest: Digest,
}

impl Block {
    pub fn new(
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        state_root: [u8; 32],
        txs: Vec<SignedTx>,
    ) -> Self {
        let encoded = txs.iter().map(SignedTx::encode).collect();
        Self::assemble(parent, height, timestamp_ms, state_root, txs, encoded)
    }

    /// A block from its parts, its digest computed once.
    fn assemble(
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        state_root: [u8; 32],
        txs: Vec<SignedTx>,
        encoded: Vec<Vec<u8>>,
    ) -> Self {
        let mut block = Self {
            parent,
            height,
            timestamp_ms,
            state_root,
            txs,
            encoded,
            digest: Digest([0; 32]),
        };
        block.digest = block.compute_digest();
        block
    }

    /// The first block: height 0, no parent, no transactions, committing to
    /// the genesis state. Every validator derives the same one from the
    /// genesis file.
    pub fn genesis(state_root: [u8; 32]) -> Self {
        Self::new(Digest([0; 32]), Height::zero(), 0, state_root, Vec::new())
    }

    /// The digest as raw bytes (the beacon source and the block id in APIs).
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
        UInt(self.timestamp_ms).write(buf);
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
            + UInt(self.timestamp_ms).encode_size()
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
        let timestamp_ms = UInt::<u64>::read(buf)?.0;
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
            parent,
            height,
            timestamp_ms,
            state_root,
            txs,
            encoded,
        ))
    }
}

impl BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        // parent + two u64 varints + root + count varint, then per
        // transaction a length varint (≤ 3 bytes for 64 KiB) and the bytes.
        32 + 10 + 10 + 32 + 10 + MAX_BLOCK_TXS * 3 + MAX_BLOCK_TX_BYTES
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
    use ed25519_dalek::SigningKey;

    fn dec(bytes: &[u8]) -> Result<Block, CodecError> {
        Block::decode(bytes::BytesMut::from(bytes))
    }

    fn tx(nonce: u64) -> SignedTx {
        let key = SigningKey::from_bytes(&[7; 32]);
        Transaction {
            chain_id: "test".into(),
            signer: Address::of(&key.verifying_key()),
            nonce,
            fee: 1,
            body: TxBody::Faucet { amount: 10 },
        }
        .sign(&key)
    }

    #[test]
    fn round_trip_is_canonical_and_digest_covers_everything() {
        let block = Block::new(
            Digest([1; 32]),
            Height::new(9),
            1234,
            [2; 32],
            vec![tx(0), tx(1)],
        );
        let bytes = block.encode();
        assert_eq!(bytes.len(), block.encode_size());
        let back = dec(&bytes).unwrap();
        assert_eq!(back, block);
        assert_eq!(back.digest(), block.digest());
        let other = Block::new(
            Digest([1; 32]),
            Height::new(9),
            1234,
            [3; 32],
            block.txs.clone(),
        );
        assert_ne!(other.digest(), back.digest());
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
    }
}
