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
//! Consensus journals and block archives live under `chain/engine/` in the
//! data directory; the ledger (state, blocks by height, tx index) under
//! `chain/db/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_chain::{Block, ChainApp, Channels, Head, LedgerError as EngineLedgerError, Timing};
use cairn_protocol::chain::{Address, ChainState, Genesis, SignedTx};
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

use crate::ledger::{FinalizedBlock, Ledger};

/// Largest message between validators: a whole block plus certificates.
const MAX_MESSAGE: u32 = 8 << 20;

/// The p2p channel on which validators pass on their clients'
/// transactions (the engine's channels are [`Channels::ALL`]).
pub const RELAY_CHANNEL: u64 = 5;
/// Transactions waiting to be relayed; more are not relayed (they still
/// commit when this validator proposes).
const RELAY_QUEUE: usize = 8192;
/// Largest relay message: length-prefixed transactions back to back.
const MAX_RELAY_BATCH: usize = 4 << 20;

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
    /// Least time between blocks.
    pub block_interval: Duration,
    pub timing: Timing,
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

fn public_key(address: &Address) -> Result<ed25519::PublicKey, ValidatorError> {
    ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&address.0))
        .map_err(|e| ValidatorError::Key(format!("{address}: {e}")))
}

/// The engine's view of the node's ledger.
struct NodeLedger {
    ledger: Arc<Ledger>,
    genesis_head: Head,
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
    let relay_ledger = ledger.clone();
    let node_ledger = NodeLedger {
        ledger,
        genesis_head: Head::genesis(genesis_state),
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
                    cairn_chain::NAMESPACE,
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
                    signer,
                    validators,
                    partition: "cairn".into(),
                    timing: settings.timing,
                    blocker: oracle.clone(),
                    peers: oracle.clone(),
                };
                let app =
                    ChainApp::new(Box::new(node_ledger), genesis_root, settings.block_interval);
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
                    relay_inbound(relay_receiver, relay_ledger),
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
/// other validator, batched: whatever queued up while the last batch went
/// out goes in the next one.
async fn relay_outbound(
    mut queue: futures::channel::mpsc::Receiver<Vec<u8>>,
    mut sender: impl commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
) {
    use futures::StreamExt;
    while let Some(first) = queue.next().await {
        let mut batch = Vec::with_capacity(first.len() + 4);
        push_frame(&mut batch, &first);
        while batch.len() < MAX_RELAY_BATCH / 2 {
            match queue.try_recv() {
                Ok(tx) => push_frame(&mut batch, &tx),
                Err(_) => break,
            }
        }
        if batch.len() <= MAX_RELAY_BATCH {
            let _ = sender.send(commonware_p2p::Recipients::All, batch, false);
        }
    }
    // Only when the ledger is gone; the node is stopping.
    std::future::pending::<()>().await;
}

fn push_frame(batch: &mut Vec<u8>, tx: &[u8]) {
    batch.extend_from_slice(&(tx.len() as u32).to_le_bytes());
    batch.extend_from_slice(tx);
}

/// The transactions in a relay message; stops at the first malformed
/// frame (a frame longer than the rest of the message or than any
/// transaction can be).
pub fn relay_frames(mut message: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = message.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > cairn_protocol::chain::MAX_TX_BYTES || len > rest.len() {
            message = &[];
            return None;
        }
        let (tx, rest) = rest.split_at(len);
        message = rest;
        Some(tx)
    })
}

/// Puts what other validators relay into this mempool, each checked like a
/// client's submission (bad ones are dropped and logged).
async fn relay_inbound(
    mut receiver: impl commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
    ledger: Arc<Ledger>,
) {
    while let Ok((peer, message)) = receiver.recv().await {
        if message.len() > MAX_RELAY_BATCH {
            tracing::debug!(%peer, bytes = message.len(), "relay message too large; dropped");
            continue;
        }
        for tx in relay_frames(message.as_ref()) {
            if let Err(e) = ledger.accept_relayed(tx) {
                tracing::trace!(%peer, error = %e, "relayed transaction not queued");
            }
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_frames_round_trip_and_stop_at_garbage() {
        let txs: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![], vec![9; 1000]];
        let mut batch = Vec::new();
        for tx in &txs {
            push_frame(&mut batch, tx);
        }
        let back: Vec<&[u8]> = relay_frames(&batch).collect();
        assert_eq!(back, txs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Truncated: the whole frames before the cut survive.
        let cut: Vec<&[u8]> = relay_frames(&batch[..batch.len() - 1]).collect();
        assert_eq!(cut.len(), 2);
        // A length past the end or past any transaction ends the message.
        let mut lying = Vec::new();
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        lying.extend_from_slice(&[0; 16]);
        assert_eq!(relay_frames(&lying).count(), 0);
        assert_eq!(relay_frames(&[1, 0]).count(), 0);
        assert_eq!(relay_frames(&[]).count(), 0);
    }
}
