//! The node's ed25519 identity: its libp2p peer id, and the key that signs
//! its chain transactions and deal receipts ([`ChainKey`]). One key per
//! node: the chain address is the public half of the libp2p key, so a
//! client that knows a node's peer id knows its address ([`cairn_client::net::peer_address`])
//! without asking it.
//!
//! Stored as the 32-byte secret seed in hex, in a file only its owner may
//! read (mode 0600). Like ssh, the node refuses to start with a key file that
//! others can read: a leaked key lets anyone impersonate the node and sign for
//! its stake.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cairn_protocol::chain::{Address, GenesisHash, Sig, SignedTx, Transaction, TxBody};
use cairn_protocol::wire::ReceiptRequest;
use ed25519_dalek::{Signer, SigningKey};
use libp2p::identity::Keypair;
use rand::RngCore;
use zeroize::Zeroizing;

type Seed = Zeroizing<[u8; 32]>;

/// Why the identity could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity key {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("identity key {path} is not 64 hex characters")]
    Malformed { path: PathBuf },
    #[error("identity key {path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("the node's identity key is not an ed25519 key")]
    NotEd25519,
}

/// The node's identity key as a chain account.
///
/// It signs deal receipts and the node's own transactions, and nothing
/// else: [`ChainKey::sign_receipt`] takes a receipt request and
/// [`ChainKey::sign_tx`] a transaction the node built itself (its
/// registration), never raw bytes, so no peer can get this key's signature
/// over a message of its choosing. Receipts and transactions are
/// domain-separated by their prefixes (`receipt_message`'s and
/// `Transaction::signing_bytes`').
pub struct ChainKey {
    key: SigningKey,
}

impl ChainKey {
    /// The chain key of a libp2p identity; the same secret, so signatures
    /// are plain Ed25519 that `ed25519-dalek`'s `verify_strict` accepts.
    pub fn from_keypair(keypair: &Keypair) -> Result<Self, IdentityError> {
        let ed = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| IdentityError::NotEd25519)?;
        let mut seed: Seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(ed.secret().as_ref());
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The node's account on the chain.
    pub fn address(&self) -> Address {
        Address::of(&self.key.verifying_key())
    }

    /// The node's acceptance receipt for `request`. The caller must have
    /// checked that the node holds what the request lists.
    pub fn sign_receipt(&self, request: &ReceiptRequest) -> Sig {
        Sig(self.key.sign(&request.message(self.address())).to_bytes())
    }

    /// Signs `message` (a repair receipt's: see
    /// [`cairn_protocol::wire::RepairReceiptRequest::message`]).
    /// The signing key itself, for the shard client's signed stores (a
    /// repairing node stores rebuilt shards as their owner).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn sign(&self, message: &[u8]) -> Sig {
        Sig(self.key.sign(message).to_bytes())
    }

    /// A transaction from this node's account (the signer is always
    /// [`Self::address`]), signed.
    pub fn sign_tx(&self, genesis: &GenesisHash, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
        Transaction {
            genesis: *genesis,
            signer: self.address(),
            nonce,
            fee,
            body,
        }
        .sign(&self.key)
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Generates a new key and writes it to `path` (mode 0600, never overwriting).
pub fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut seed: Seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut seed[..]);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                IdentityError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
    file.write_all(format!("{}\n", hex::encode(&seed[..])).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    keypair(seed, path)
}

/// Reads the key at `path`, refusing a file others can read.
pub fn load(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let malformed = || IdentityError::Malformed {
        path: path.to_path_buf(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
    let bytes = Zeroizing::new(bytes);
    let seed: Seed = Zeroizing::new(bytes[..].try_into().map_err(|_| malformed())?);
    keypair(seed, path)
}

fn keypair(mut seed: Seed, path: &Path) -> Result<Keypair, IdentityError> {
    Keypair::ed25519_from_bytes(&mut seed[..]).map_err(|_| IdentityError::Malformed {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::net::peer_address;
    use libp2p::PeerId;

    #[test]
    fn create_then_load_gives_the_same_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let a = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        assert!(matches!(create(&path), Err(IdentityError::Exists { .. })));
    }

    #[test]
    fn the_chain_address_is_the_peer_ids_key_and_its_receipts_open_a_deal() {
        use cairn_protocol::chain::{
            merkle, Allocation, ChainState, Genesis, Rejection, Transaction, TxBody,
        };
        use cairn_protocol::ContentId;

        let dir = tempfile::tempdir().unwrap();
        let keypair = create(&dir.path().join("id.key")).unwrap();
        let chain_key = ChainKey::from_keypair(&keypair).unwrap();
        let node = chain_key.address();
        let peer = keypair.public().to_peer_id();
        assert_eq!(peer_address(&peer), Some(node));
        assert_eq!(
            keypair.public().try_into_ed25519().unwrap().to_bytes(),
            node.0
        );
        assert!(!format!("{chain_key:?}").contains(&hex::encode(
            keypair
                .clone()
                .try_into_ed25519()
                .unwrap()
                .secret()
                .as_ref()
        )));

        // The chain's own check: a genesis, the node registers, the owner
        // opens a deal carrying the node's receipt.
        let owner_key = SigningKey::from_bytes(&[4; 32]);
        let owner = Address::of(&owner_key.verifying_key());
        let validator = Address([1; 32]);
        let genesis = Genesis::devnet(
            "receipts",
            vec![validator],
            vec![
                Allocation {
                    address: owner,
                    amount: 1_000_000,
                },
                Allocation {
                    address: node,
                    amount: 1_000_000,
                },
            ],
        );
        let mut state = ChainState::from_genesis(&genesis).unwrap();
        let register = Transaction {
            genesis: genesis.hash(),
            signer: node,
            nonce: 0,
            fee: 1,
            body: TxBody::RegisterNode {
                peer_id: peer.to_bytes(),
                addresses: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
                capacity: 1 << 30,
                stake: 2_000,
            },
        };
        let node_signing = ChainKey::from_keypair(&keypair).unwrap().key;
        state.apply_tx(&register.sign(&node_signing)).unwrap();

        let shards: Vec<_> = (0..3u8)
            .map(|i| (ContentId::of(&[i]), 100 + i as u64))
            .collect();
        let request = ReceiptRequest {
            genesis: genesis.hash(),
            owner,
            owner_nonce: 0,
            size: 303,
            price_per_epoch: 5,
            start_epoch: 1,
            end_epoch: 4,
            root: merkle::root(&shards).unwrap(),
            shards: 3,
            bytes: 303,
        };
        let receipt = chain_key.sign_receipt(&request);
        let open = |request: &ReceiptRequest, receipt: Sig| {
            let mut terms = request.terms();
            terms.commitments = vec![request.commitment(node, receipt)];
            Transaction {
                genesis: genesis.hash(),
                signer: owner,
                nonce: request.owner_nonce,
                fee: 1,
                body: TxBody::OpenDeal(terms),
            }
            .sign(&owner_key)
        };
        // A receipt for other terms does not open this deal.
        let mut other = request.clone();
        other.price_per_epoch = 6;
        assert_eq!(
            state.clone().apply_tx(&open(&other, receipt.clone())),
            Err(Rejection::BadReceipt(node))
        );
        state.apply_tx(&open(&request, receipt)).unwrap();
    }

    #[test]
    fn other_key_types_have_no_address() {
        // A sha2-256 peer id (how large keys are named) hides its key.
        let digest = libp2p::multihash::Multihash::<64>::wrap(0x12, &[7; 32]).unwrap();
        let hashed = PeerId::from_multihash(digest).unwrap();
        assert_eq!(peer_address(&hashed), None);
    }

    #[test]
    fn open_or_garbled_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(IdentityError::TooOpen { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(load(&path), Err(IdentityError::Malformed { .. })));
    }
}
