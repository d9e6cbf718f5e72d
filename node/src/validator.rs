//! A validator: the chain engine ([`cairn_chain`]) on real sockets, next to
//! the node's ledger.
//!
//! The engine runs on commonware's tokio runtime in a thread of its own
//! (that runtime owns its executor and its storage directory), talks to the
//! other validators over commonware's authenticated p2p (`lookup`: a fixed
//! set of peers with known addresses, ed25519 identities, encrypted
//! streams), and commits finalized blocks to the node's [`Ledger`], which
//! the HTTP API reads. The validator's key is the node's identity key.
//!
//! Consensus votes are threshold BLS signatures: besides its identity key a
//! validator holds its share of the group key named in the genesis, in a
//! file of its own ([`load_share`]; `chain.share`, by default
//! `validator.share` in the data directory), kept like the identity key:
//! mode 0600, refused if others can read it. A validator whose share is
//! missing, unreadable, or not its share of the genesis group key refuses
//! to start and says which.
//!
//! Consensus journals and block archives live under `chain/engine/` in the
//! data directory; the ledger (state, blocks by height, tx index) under
//! `chain/db/`.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_chain::relay::{push_frame, relay_frames, FRAME_HEADER, MAX_RELAY_BATCH};
use cairn_chain::threshold::{self, ValidatorShare};
use cairn_chain::{Block, ChainApp, Channels, Head, LedgerError as EngineLedgerError, Timing};
use cairn_protocol::chain::{Address, ChainState, Genesis, GenesisHash, SignedTx};
use commonware_codec::DecodeExt;
use commonware_cryptography::{ed25519, ChaCha20Poly1305, Signer};
use commonware_p2p::{authenticated::lookup, Address as PeerAddress, AddressableManager};
use commonware_runtime::{Quota, Runner, Spawner, Supervisor};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize, NZU32};
use futures::FutureExt;

use crate::ledger::{BlockBeacon, FinalizedBlock, Ledger, SeedRecord};

/// Largest message between validators: a whole block plus certificates.
const MAX_MESSAGE: u32 = 8 << 20;

/// The p2p channel on which validators pass on their clients'
/// transactions (the engine's channels are [`Channels::ALL`]).
pub const RELAY_CHANNEL: u64 = 5;
/// Transactions waiting to be relayed; more are not relayed (they still
/// commit when this validator proposes).
const RELAY_QUEUE: usize = 8192;
/// Relayed transactions one validator's messages may carry per second into
/// this mempool, after a burst of [`RELAY_BURST`]: every relayed
/// transaction costs a decode and a signature check here, so a Byzantine
/// validator flooding the relay costs this one at most this much work
/// (about a tenth of a core). More are dropped; the honest clients' ones
/// still reach every mempool through their own validator's proposals.
const RELAY_TXS_PER_PEER: u32 = 2_000;
const RELAY_BURST: u32 = 8_192;

/// What a validator needs besides its key and ledger.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    pub genesis: Genesis,
    /// Where this validator listens for the others.
    pub listen: SocketAddr,
    /// Every validator's address (this one's included or not), by chain
    /// address; each must be a genesis validator.
    pub peers: Vec<(Address, SocketAddr)>,
    /// Consensus journals and block archives.
    pub engine_dir: PathBuf,
    /// This validator's share of the genesis group key ([`load_share`]).
    pub share: PathBuf,
    /// Least time between blocks.
    pub block_interval: Duration,
    pub timing: Timing,
    /// Counts relayed transactions dropped past [`RELAY_TXS_PER_PEER`]
    /// (`cairn_node_relay_dropped_total`).
    pub relay_dropped: prometheus_client::metrics::counter::Counter,
}

/// Why a validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("this node's key {0} is not a validator in the genesis file")]
    NotAValidator(Address),
    #[error("peer {0} is not a validator in the genesis file")]
    UnknownPeer(Address),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("validator key: {0}")]
    Key(String),
    #[error("validator share {path}: {reason}")]
    Share { path: PathBuf, reason: String },
    #[error("validator share {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")]
    ShareTooOpen { path: PathBuf, mode: u32 },
    #[error("validator share {path} already exists; refusing to overwrite it")]
    ShareExists { path: PathBuf },
    #[error("cannot start the validator thread: {0}")]
    Thread(std::io::Error),
    #[error("chain.listen {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running validator; dropping it does not stop it, [`Self::stop`] does.
#[derive(Debug)]
pub struct ValidatorHandle {
    stop: Option<futures::channel::oneshot::Sender<()>>,
    failed: Option<futures::channel::oneshot::Receiver<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ValidatorHandle {
    /// Resolves with the reason if the validator stops by itself (its
    /// network failed, say); never resolves while it runs or after
    /// [`Self::stop`]. The node should stop then: a validator that does not
    /// take part is worse than one that is visibly down. Only the first call
    /// gets the reason.
    pub fn failure(&mut self) -> impl std::future::Future<Output = String> {
        let failed = self.failed.take();
        async move {
            match failed {
                Some(rx) => match rx.await {
                    Ok(reason) => reason,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
    }

    /// Asks the engine to stop and waits for its thread (at most ~10 s).
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a validator's share, refusing a file others can read (a leaked
/// share counts towards the quorum that can sign any seed).
pub fn load_share(path: &Path) -> Result<ValidatorShare, ValidatorError> {
    let share_error = |reason: String| ValidatorError::Share {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        share_error(if e.kind() == std::io::ErrorKind::NotFound {
            "missing: a validator needs its share of the genesis group key (cairn devnet up writes one per validator; set chain.share if it lives elsewhere)".into()
        } else {
            e.to_string()
        })
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ValidatorError::ShareTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| share_error(e.to_string()))?,
    );
    threshold::decode_share(&text).map_err(|e| share_error(e.to_string()))
}

/// Writes a share for [`load_share`] (mode 0600, never overwriting).
pub fn write_share(path: &Path, share: &ValidatorShare) -> Result<(), ValidatorError> {
    let share_error = |e: std::io::Error| ValidatorError::Share {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ValidatorError::ShareExists {
                    path: path.to_path_buf(),
                }
            } else {
                share_error(e)
            }
        })?;
    file.write_all(threshold::encode_share(share).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(share_error)
}

/// A chain address as the engine's validator key.
pub fn public_key(address: &Address) -> Result<ed25519::PublicKey, ValidatorError> {
    ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&address.0))
        .map_err(|e| ValidatorError::Key(format!("{address}: {e}")))
}

/// The engine's view of the node's ledger.
struct NodeLedger {
    ledger: Arc<Ledger>,
    genesis_head: Head,
    genesis: GenesisHash,
}

impl NodeLedger {
    fn head_of(&self, state: Arc<ChainState>) -> Result<Head, EngineLedgerError> {
        let height = state.height();
        if height == 0 {
            return Ok(self.genesis_head.clone());
        }
        let record = self
            .ledger
            .store()
            .block(height)
            .map_err(|e| EngineLedgerError::Storage(e.to_string()))?
            .ok_or_else(|| EngineLedgerError::Storage(format!("block {height} missing")))?;
        Ok(Head {
            height,
            digest: record.digest,
            timestamp_ms: record.timestamp_ms,
            state_root: record.state_root,
            state,
        })
    }
}

impl cairn_chain::Ledger for NodeLedger {
    fn head(&self) -> Head {
        // An unreadable head means the ledger's own RocksDB is broken; the
        // genesis head then makes every block fail to commit, which halts
        // this validator loudly instead of guessing.
        self.head_of(self.ledger.store().state())
            .unwrap_or_else(|_| self.genesis_head.clone())
    }

    fn commit(&mut self, block: &Block) -> Result<Head, EngineLedgerError> {
        let height = block.height.get();
        self.ledger
            .commit(FinalizedBlock {
                height,
                digest: block.id(),
                parent: block.parent.0,
                timestamp_ms: block.timestamp_ms,
                proposer: Vec::new(),
                txs: block.txs.clone(),
                beacon: BlockBeacon {
                    view: block.view,
                    seed: block.seed.map(|s| SeedRecord {
                        view: s.view,
                        signature: s.signature_bytes(),
                    }),
                    beacon: block.beacon(&self.genesis),
                },
                state_root: block.state_root,
            })
            .map_err(|e| EngineLedgerError::Apply(e.to_string()))?;
        self.head_of(self.ledger.store().state())
    }

    fn pending(&mut self, state: &ChainState, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        self.ledger.propose_on(state, max_txs, max_bytes)
    }
}

/// Starts the validator thread. `secret` is the node's ed25519 secret key.
pub fn spawn(
    settings: ValidatorSettings,
    secret: [u8; 32],
    ledger: Arc<Ledger>,
) -> Result<ValidatorHandle, ValidatorError> {
    let signer = ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&secret))
        .map_err(|e| ValidatorError::Key(e.to_string()))?;
    let me = signer.public_key();
    let mut my_address = [0u8; 32];
    my_address.copy_from_slice(me.as_ref());
    let my_address = Address(my_address);
    let genesis = &settings.genesis;
    if !genesis.validators.contains(&my_address) {
        return Err(ValidatorError::NotAValidator(my_address));
    }
    let validators = genesis
        .validators
        .iter()
        .map(public_key)
        .collect::<Result<Vec<_>, _>>()?;
    // The threshold key: checked here, so a missing or foreign share is a
    // clear error at start rather than a validator that cannot vote.
    let polynomial = threshold::polynomial(genesis.group_key.as_ref(), validators.len())
        .map_err(|e| ValidatorError::Genesis(e.to_string()))?;
    let share = load_share(&settings.share)?;
    threshold::check_share(&polynomial, &validators, &me, &share).map_err(|e| {
        ValidatorError::Share {
            path: settings.share.clone(),
            reason: e.to_string(),
        }
    })?;
    let verifier = threshold::seed_verifier(&polynomial, &genesis.hash());
    let mut peers = Vec::new();
    for (address, socket) in &settings.peers {
        if !genesis.validators.contains(address) {
            return Err(ValidatorError::UnknownPeer(*address));
        }
        peers.push((public_key(address)?, PeerAddress::from(*socket)));
    }
    if !settings.peers.iter().any(|(a, _)| *a == my_address) {
        peers.push((me.clone(), PeerAddress::from(settings.listen)));
    }
    let genesis_state = ChainState::from_genesis(genesis).map_err(ValidatorError::Genesis)?;
    let genesis_root = genesis_state.root();
    let genesis_hash = genesis.hash();
    let relay_ledger = ledger.clone();
    let relay_dropped = settings.relay_dropped.clone();
    let node_ledger = NodeLedger {
        ledger,
        genesis_head: Head::genesis(genesis_state),
        genesis: genesis.hash(),
    };
    let all_private = std::iter::once(settings.listen.ip())
        .chain(settings.peers.iter().map(|(_, s)| s.ip()))
        .all(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
        });
    // Bound before the thread starts so a taken port is a clear error at
    // start, not a listener task that dies in the background.
    std::net::TcpListener::bind(settings.listen).map_err(|source| ValidatorError::Listen {
        addr: settings.listen,
        source,
    })?;
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let (failed_tx, failed_rx) = futures::channel::oneshot::channel::<String>();
    let runtime = commonware_runtime::tokio::Config::new()
        .with_worker_threads(2)
        .with_storage_directory(settings.engine_dir.clone())
        .with_catch_panics(false);
    let thread = std::thread::Builder::new()
        .name("cairn-validator".into())
        .spawn(move || {
            commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
                // On loopback or a private network (a devnet) every peer
                // shares few IPs: commonware's production limits (one
                // handshake per IP per 5 s, private IPs refused, a 60 s
                // reconnect cooldown) would keep such validators apart.
                let config = if all_private {
                    lookup::Config::local
                } else {
                    lookup::Config::recommended
                };
                let p2p = config(
                    Cups::<_, ChaCha20Poly1305>::new(
                        Sake {
                            signer: signer.clone(),
                            synchrony_bound: Duration::from_secs(5),
                            max_handshake_age: Duration::from_secs(10),
                            version: sake::Version::V1,
                        },
                        cups::Version::V1,
                    ),
                    &cairn_chain::namespace(&genesis_hash),
                    settings.listen,
                    NZUsize!(validators.len().max(1) + 1),
                    MAX_MESSAGE,
                    NZUsize!(1024),
                );
                let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
                let peer_map: Map<_, PeerAddress> = match peers.try_into() {
                    Ok(map) => map,
                    Err(e) => {
                        let _ = failed_tx
                            .send(format!("the validator peer list has duplicates: {e:?}"));
                        return;
                    }
                };
                oracle.track(0, peer_map);
                let quota = Quota::per_second(NZU32!(4096));
                let mut channels = Vec::new();
                for id in Channels::ALL {
                    channels.push(network.register(id, quota));
                }
                let (relay_sender, relay_receiver) = network.register(RELAY_CHANNEL, quota);
                let (relay_tx, relay_rx) = futures::channel::mpsc::channel(RELAY_QUEUE);
                relay_ledger.set_relay(relay_tx);
                let network = network.start().fuse();
                let config = cairn_chain::Config {
                    me: signer.public_key(),
                    genesis: genesis_hash,
                    validators,
                    polynomial,
                    share,
                    partition: "cairn".into(),
                    timing: settings.timing,
                    blocker: oracle.clone(),
                    peers: oracle.clone(),
                };
                let app = ChainApp::new(
                    Box::new(node_ledger),
                    genesis_root,
                    settings.block_interval,
                    verifier,
                );
                let mut channels = channels.into_iter();
                let (Some(votes), Some(certs), Some(cfill), Some(bfill), Some(blocks)) = (
                    channels.next(),
                    channels.next(),
                    channels.next(),
                    channels.next(),
                    channels.next(),
                ) else {
                    return;
                };
                let engine = context.child("engine");
                match cairn_chain::start(engine, config, app, votes, certs, cfill, bfill, blocks)
                    .await
                {
                    Ok(_handles) => tracing::info!(listen = %settings.listen, "validator started"),
                    Err(e) => {
                        let _ = failed_tx.send(format!("the validator failed to start: {e}"));
                        return;
                    }
                }
                futures::pin_mut!(network);
                let mut stop_rx = stop_rx;
                let relay = futures::future::join(
                    relay_outbound(relay_rx, relay_sender),
                    relay_inbound(relay_receiver, relay_ledger, relay_dropped),
                )
                .fuse();
                futures::pin_mut!(relay);
                futures::select! {
                    _ = relay => {}
                    _ = stop_rx => tracing::info!("validator stopping"),
                    outcome = network => {
                        let reason = format!("the validator's network stopped: {outcome:?}");
                        tracing::error!("{reason}");
                        let _ = failed_tx.send(reason);
                    }
                }
                let _ = context.stop(0, Some(Duration::from_secs(10))).await;
            });
        })
        .map_err(ValidatorError::Thread)?;
    Ok(ValidatorHandle {
        stop: Some(stop_tx),
        failed: Some(failed_rx),
        thread: Some(thread),
    })
}

/// Sends the transactions this validator's clients submitted to every
/// other validator, batched ([`cairn_chain::relay`]'s framing): whatever
/// queued up while the last batch went out goes in the next one.
async fn relay_outbound(
    mut queue: futures::channel::mpsc::Receiver<Vec<u8>>,
    mut sender: impl commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
) {
    use futures::StreamExt;
    // The queue holds transactions the ledger accepted, which decoded
    // within MAX_TX_BYTES; one that does not frame is skipped rather than
    // sent, since a receiver would drop it and everything after it.
    let push = |batch: &mut Vec<u8>, tx: &[u8]| {
        if let Err(e) = push_frame(batch, tx) {
            tracing::warn!(error = %e, "transaction not relayed");
        }
    };
    while let Some(first) = queue.next().await {
        let mut batch = Vec::with_capacity(first.len() + FRAME_HEADER);
        push(&mut batch, &first);
        while batch.len() < MAX_RELAY_BATCH / 2 {
            match queue.try_recv() {
                Ok(tx) => push(&mut batch, &tx),
                Err(_) => break,
            }
        }
        if !batch.is_empty() && batch.len() <= MAX_RELAY_BATCH {
            let _ = sender.send(commonware_p2p::Recipients::All, batch, false);
        }
    }
    // Only when the ledger is gone; the node is stopping.
    std::future::pending::<()>().await;
}

/// The relay's budget per sending validator ([`RELAY_TXS_PER_PEER`]).
pub struct RelayLimit {
    limiter: governor::DefaultKeyedRateLimiter<ed25519::PublicKey>,
}

impl std::fmt::Debug for RelayLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLimit").finish_non_exhaustive()
    }
}

impl RelayLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let one = NZU32!(1);
        let quota = governor::Quota::per_second(per_second.try_into().unwrap_or(one))
            .allow_burst(burst.try_into().unwrap_or(one));
        Self {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Whether one more transaction from `peer` may be checked now.
    pub fn allow(&self, peer: &ed25519::PublicKey) -> bool {
        self.limiter.check_key(peer).is_ok()
    }
}

/// Puts what other validators relay into this mempool, each checked like a
/// client's submission (bad ones are dropped and logged), at most
/// [`RELAY_TXS_PER_PEER`] a second from each validator.
async fn relay_inbound(
    mut receiver: impl commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
    ledger: Arc<Ledger>,
    dropped_total: prometheus_client::metrics::counter::Counter,
) {
    let limit = RelayLimit::new(RELAY_TXS_PER_PEER, RELAY_BURST);
    while let Ok((peer, message)) = receiver.recv().await {
        if message.len() > MAX_RELAY_BATCH {
            crate::peer_warn!(%peer, bytes = message.len(), "relay message too large; dropped");
            continue;
        }
        let mut dropped = 0usize;
        for tx in relay_frames(message.as_ref()) {
            if !limit.allow(&peer) {
                dropped += 1;
                continue;
            }
            if let Err(e) = ledger.accept_relayed(tx) {
                tracing::trace!(%peer, error = %e, "relayed transaction not queued");
            }
        }
        if dropped > 0 {
            dropped_total.inc_by(dropped as u64);
            crate::peer_warn!(%peer, dropped, "validator relays more than {RELAY_TXS_PER_PEER} transactions a second; the rest dropped");
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four validators' secrets, their genesis (with a dealt group key)
    /// and their shares written to `dir/v{i}.share`.
    fn four(dir: &Path) -> ([[u8; 32]; 4], Genesis, Vec<PathBuf>) {
        let secrets = [[1u8; 32], [2; 32], [3; 32], [4; 32]];
        let addresses: Vec<Address> = secrets
            .iter()
            .map(|s| Address::of(&ed25519_dalek::SigningKey::from_bytes(s).verifying_key()))
            .collect();
        let keys: Vec<_> = addresses.iter().map(|a| public_key(a).unwrap()).collect();
        let dealing = threshold::deal([9; 32], &keys).unwrap();
        let mut genesis = Genesis::devnet("share-test", addresses, Vec::new());
        genesis.group_key = Some(dealing.group_key);
        let paths: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("v{i}.share"))).collect();
        for (path, share) in paths.iter().zip(&dealing.shares) {
            write_share(path, share).unwrap();
        }
        (secrets, genesis, paths)
    }

    fn start(
        dir: &Path,
        genesis: &Genesis,
        secret: [u8; 32],
        share: &Path,
    ) -> Result<ValidatorHandle, ValidatorError> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = dir.join(format!("db{n}"));
        let ledger = Arc::new(Ledger::open(&db, genesis, Default::default()).unwrap());
        spawn(
            ValidatorSettings {
                genesis: genesis.clone(),
                listen: "127.0.0.1:1".parse().unwrap(),
                peers: Vec::new(),
                engine_dir: dir.join("engine"),
                share: share.to_path_buf(),
                block_interval: Duration::from_secs(1),
                timing: Timing::default(),
                relay_dropped: Default::default(),
            },
            secret,
            ledger,
        )
    }

    #[test]
    fn a_validator_with_a_missing_open_or_wrong_share_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let (secrets, genesis, shares) = four(dir.path());
        let refused = |secret: [u8; 32], share: &Path, genesis: &Genesis| {
            let e = start(dir.path(), genesis, secret, share).unwrap_err();
            let text = e.to_string();
            (e, text)
        };

        let (_, text) = refused(secrets[0], &dir.path().join("none.share"), &genesis);
        assert!(
            text.contains("none.share") && text.contains("missing"),
            "{text}"
        );

        // Validator 1's share (a genuine one) on validator 0.
        let (_, text) = refused(secrets[0], &shares[1], &genesis);
        assert!(
            text.contains("v1.share") && text.contains("index"),
            "{text}"
        );

        // Its own index, from another dealing: another group key.
        let keys: Vec<_> = genesis
            .validators
            .iter()
            .map(|a| public_key(a).unwrap())
            .collect();
        let foreign = dir.path().join("foreign.share");
        write_share(
            &foreign,
            &threshold::deal([10; 32], &keys).unwrap().shares[0],
        )
        .unwrap();
        let (_, text) = refused(secrets[0], &foreign, &genesis);
        assert!(text.contains("another dealing"), "{text}");

        // Readable by others: refused like the identity key.
        std::fs::set_permissions(&shares[2], std::fs::Permissions::from_mode(0o644)).unwrap();
        let (e, text) = refused(secrets[2], &shares[2], &genesis);
        assert!(matches!(e, ValidatorError::ShareTooOpen { .. }), "{text}");
        assert!(text.contains("chmod 600"), "{text}");

        // Garbage in the file.
        let garbage = dir.path().join("garbage.share");
        std::fs::write(&garbage, "not hex\n").unwrap();
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, text) = refused(secrets[3], &garbage, &genesis);
        assert!(text.contains("does not decode"), "{text}");

        // A genesis from before threshold consensus.
        let mut old = genesis.clone();
        old.group_key = None;
        let (_, text) = refused(secrets[3], &shares[3], &old);
        assert!(text.contains("group_key"), "{text}");

        // Writing never overwrites a share.
        let share = load_share(&shares[3]).unwrap();
        assert!(matches!(
            write_share(&shares[3], &share),
            Err(ValidatorError::ShareExists { .. })
        ));
        let mode = std::fs::metadata(&shares[3]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_relay_limit_is_per_validator() {
        let limit = RelayLimit::new(1, 5);
        let peer = |seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            public_key(&Address::of(&key.verifying_key())).unwrap()
        };
        let (a, b) = (peer(1), peer(2));
        let passed = (0..100).filter(|_| limit.allow(&a)).count();
        assert_eq!(passed, 5, "a burst of 5, then one a second");
        // Another validator's budget is its own.
        assert_eq!((0..100).filter(|_| limit.allow(&b)).count(), 5);
    }
}
