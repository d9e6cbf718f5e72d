//! A running storage node: the store, the swarm, the HTTP endpoint and the
//! upkeep tasks, wired together, until shutdown.
//!
//! The swarm's event loop only routes: each shard request runs on its own
//! task (and its store work on a blocking thread) and its response comes
//! back over a channel. A peer may have a bounded number of requests in
//! flight; beyond that it is answered `busy` at once and logged. Chain API
//! requests (`/cairn/chain/1`) go the same way, with their own count per
//! peer: a validator answers them through its HTTP API's routes.
//!
//! Shutdown (SIGTERM, ctrl-c, or the caller's future): stop listening, let
//! requests in flight finish for a few seconds, stop the upkeep tasks, and
//! close the store. Every acknowledged shard was synced when it was
//! acknowledged, so a SIGKILL instead loses nothing either.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cairn_protocol::chain_wire::ChainApiResponse;
use libp2p::core::transport::ListenerId;
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, Multiaddr, PeerId, Swarm};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::http::StatusSource;
use crate::maintenance::{self, ScrubStatus};
use crate::metrics::Metrics;
use crate::net::bulk::{BulkLimits, BulkServer};
use crate::net::chain_service::{error_response, ChainService};
use crate::net::server::ShardService;
use crate::net::{
    build_swarm_with_codec, is_dialable, split_peer, CairnBehaviour, CairnBehaviourEvent, Role,
    ShardResponse, SwarmSettings, KAD_PROTOCOL,
};
use crate::prover::Prover;
use crate::registration::{self, RegistrationState};
use crate::repair::Repairer;
use crate::store::ShardStore;
use crate::terms::TermsPolicy;
use crate::{identity, net};

/// File in the data directory where a running node says where it listens.
pub const RUNTIME_FILE: &str = "node.json";
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the node refreshes its Kademlia routing table.
const KAD_REFRESH: Duration = Duration::from_secs(300);

/// Why the node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("cannot open the shard store at {path}: {source}")]
    Store {
        path: PathBuf,
        source: crate::store::StoreError,
    },
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Bulk(#[from] net::bulk::BulkListenError),
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("startup task failed: {0}")]
    Task(String),
    #[error("chain: {0}")]
    Chain(String),
    #[error("cannot write {path}: {source}")]
    Runtime {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a running node publishes in [`RUNTIME_FILE`], for tools (devnet,
/// tests) to find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub peer_id: String,
    /// Full addresses, each ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    pub http: Option<String>,
    pub pid: u32,
}

impl RuntimeInfo {
    /// Reads a node's runtime file, if it has written one.
    pub fn read(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join(RUNTIME_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Runs the node until `shutdown` completes (or SIGTERM / ctrl-c).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let keypair = identity::load(&config.identity_path())?;
    let peer_id = keypair.public().to_peer_id();
    let chain_key = Arc::new(identity::ChainKey::from_keypair(&keypair)?);
    let validator_secret = validator_secret(&keypair)?;
    let store_dir = config.store_dir();
    let store = {
        let dir = store_dir.clone();
        let capacity = config.capacity;
        let options = config.store.clone();
        // Payment is tracked where the proof worker can see the deals that
        // pay (a node of a chain that proves); a private node keeps shards
        // as their stores asked.
        let unpaid = config
            .chain
            .as_ref()
            .filter(|c| c.prove)
            .map(|_| config.limits.unpaid());
        tokio::task::spawn_blocking(move || {
            let mut store = ShardStore::open_with(&dir, capacity, &options)?;
            if let Some(limits) = unpaid {
                store.track_unpaid(limits)?;
            }
            Ok(store)
        })
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))?
        .map_err(|source| DaemonError::Store {
            path: store_dir.clone(),
            source,
        })?
    };
    let store = Arc::new(store);
    let usage = store.usage();
    let cleaned = store.open_report();
    tracing::info!(%peer_id, chain_address = %chain_key.address(), shards = usage.shards, used = usage.used, capacity = usage.capacity, orphans_deleted = cleaned.orphans, lost = cleaned.lost, "shard store open");
    let metrics = Metrics::new();

    // One request-body budget for libp2p and the bulk listener.
    let codec = net::ShardCodec::new(
        config.limits.inbound_buffer,
        config.limits.request_timeout * 3 / 4,
    );
    let bulk = match config.bulk_listen {
        Some(addr) => {
            let server = BulkServer::bind(
                addr,
                &keypair,
                codec.clone(),
                metrics.clone(),
                BulkLimits::from(&config.limits),
            )
            .await?;
            tracing::info!(addr = %server.local_addr(), "bulk listener (shard requests over TLS)");
            Some(server)
        }
        None => None,
    };
    let mut swarm = build_swarm_with_codec(
        keypair,
        &SwarmSettings {
            role: Role::Node,
            request_timeout: config.limits.request_timeout,
            streams_per_connection: config.limits.streams_per_connection,
            inbound_buffer: config.limits.inbound_buffer,
            connection_limits: connection_limits(&config.limits),
        },
        codec,
    )?;
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| net::NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        listeners.push(id);
    }
    for addr in &config.external {
        swarm.add_external_address(addr.clone());
    }
    for addr in &config.bootstrap {
        if let Some((peer, base)) = split_peer(addr) {
            if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, base);
            }
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }

    let (ledger, mut validator) = match config.chain.as_ref().filter(|c| c.validator) {
        Some(chain) => {
            let (ledger, validator) =
                start_validator(&config, chain, &validator_secret, &metrics).await?;
            ledger.set_halt_gauge(metrics.chain_halted.clone());
            (Some(ledger), Some(validator))
        }
        None => (None, None),
    };
    drop(validator_secret);

    let (stop_tx, stop_rx) = watch::channel(false);
    let scrub_status = Arc::new(Mutex::new(ScrubStatus::default()));
    let source = Arc::new(StatusSource {
        peer_id,
        chain_address: chain_key.address(),
        store: store.clone(),
        metrics: metrics.clone(),
        listen: RwLock::new(Vec::new()),
        connected_peers: Default::default(),
        scrub: scrub_status.clone(),
        started: Instant::now(),
        registration: RwLock::new(RegistrationState::Off),
        proofs: Default::default(),
        repairs: Default::default(),
    });
    let http = match config.http {
        Some(addr) => {
            let mut stop = stop_rx.clone();
            let (bound, task) = crate::http::serve(
                addr,
                source.clone(),
                ledger.clone(),
                &config.http_limits,
                async move {
                    let _ = stop.changed().await;
                },
            )
            .await
            .map_err(|source| DaemonError::Http { addr, source })?;
            tracing::info!(addr = %bound, "HTTP status and metrics");
            Some((bound, task))
        }
        None => None,
    };
    let upkeep = [
        tokio::spawn(maintenance::scrubber(
            store.clone(),
            metrics.clone(),
            scrub_status,
            config.scrub_interval,
            config.scrub_rate,
            stop_rx.clone(),
        )),
        tokio::spawn(maintenance::expiry_gc(
            store.clone(),
            metrics.clone(),
            config.limits.gc_interval,
            stop_rx.clone(),
        )),
    ];

    // Registration stops as soon as shutdown begins: the listeners close
    // then, and their addresses must not reach the chain as "gone".
    let (draining, draining_rx) = watch::channel(false);
    let bulk_stop = draining_rx.clone();
    // The validators' APIs this node talks to: configured, or (a validator)
    // its own, where the server actually bound.
    let chain_api: Vec<String> = match config.chain.as_ref() {
        Some(chain) if chain.api.is_empty() => http
            .as_ref()
            .map(|(bound, _)| {
                let mut own = *bound;
                if own.ip().is_unspecified() {
                    own.set_ip(match own {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                vec![format!("http://{own}")]
            })
            .unwrap_or_default(),
        Some(chain) => chain.api.clone(),
        None => Vec::new(),
    };
    let registration = match config.chain.as_ref().filter(|c| c.register) {
        Some(chain) => {
            let api = chain_api.clone();
            let settings = registration::Settings {
                api,
                capacity: config.capacity,
                stake: chain.stake,
                external: config.external.clone(),
                listen: config.listen.clone(),
            };
            match registration::Registrar::new(
                settings,
                chain_key.clone(),
                peer_id,
                source.clone(),
                metrics.clone(),
            ) {
                Ok(registrar) => Some(tokio::spawn(registrar.run(draining_rx))),
                Err(reason) => {
                    tracing::error!(%reason, "cannot register on the chain");
                    if let Ok(mut s) = source.registration.write() {
                        *s = RegistrationState::Failed(reason);
                    }
                    None
                }
            }
        }
        None => None,
    };

    let terms = Arc::new(match config.chain.as_ref() {
        Some(chain) => TermsPolicy::new(chain.ask_per_gib_epoch, chain.max_deal_epochs, true),
        None => TermsPolicy::off_chain(),
    });
    let prover = match config
        .chain
        .as_ref()
        .filter(|c| c.prove && !chain_api.is_empty())
    {
        Some(_) => match Prover::new(
            &chain_api,
            store.clone(),
            chain_key.clone(),
            metrics.clone(),
            source.proofs.clone(),
            terms.clone(),
        ) {
            Ok(prover) => Some(tokio::spawn(prover.run(stop_rx.clone()))),
            Err(reason) => {
                tracing::error!(%reason, "cannot start the proof worker");
                None
            }
        },
        None => None,
    };
    let repairer = match config
        .chain
        .as_ref()
        .filter(|c| c.repair && !chain_api.is_empty())
    {
        Some(c) => match Repairer::new(
            &chain_api,
            chain_key.clone(),
            metrics.clone(),
            source.repairs.clone(),
            c.repair_stagger_blocks,
        ) {
            Ok(repairer) => Some(tokio::spawn(repairer.run(stop_rx.clone()))),
            Err(reason) => {
                tracing::error!(%reason, "cannot start the repair worker");
                None
            }
        },
        None => None,
    };
    let mut service = ShardService::new(
        store.clone(),
        metrics.clone(),
        peer_id,
        chain_key,
        terms,
        &config.limits,
    );
    if let Some(server) = bulk {
        service.set_bulk_port(Some(server.local_addr().port()));
        tokio::spawn(server.run(service.clone(), bulk_stop));
    }
    let mut node = EventLoop {
        service,
        chain: ChainService::new(
            ledger
                .as_ref()
                .map(|l| crate::ledger::http::routes(l.clone())),
        ),
        chain_in_flight: HashMap::new(),
        chain_responses: mpsc::unbounded_channel(),
        metrics,
        source,
        runtime_path: config.data_dir.join(RUNTIME_FILE),
        http: http.as_ref().map(|(a, _)| *a),
        requests_per_peer: config.limits.requests_per_peer,
        max_requests: config.limits.max_requests,
        listeners,
        in_flight: HashMap::new(),
        responses: mpsc::unbounded_channel(),
        draining,
    };
    // A validator that dies stops the node: half a node (shards served,
    // consensus gone) would hide the failure from its operator.
    let validator_failure = validator.as_mut().map(|v| v.failure());
    let failure = std::sync::OnceLock::new();
    let shutdown = async {
        let validator_failed = async {
            match validator_failure {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            reason = validator_failed => {
                tracing::error!(%reason, "stopping the node");
                let _ = failure.set(reason);
            }
        }
    };
    let mut result = node.run(&mut swarm, shutdown).await;
    if let Some(reason) = failure.get() {
        result = result.and(Err(DaemonError::Chain(reason.clone())));
    }

    let _ = node.draining.send(true);
    if let Some(task) = registration {
        let _ = task.await;
    }
    let _ = stop_tx.send(true);
    if let Some(task) = prover {
        // It may be waiting for a block; nothing it does needs finishing.
        task.abort();
    }
    if let Some(task) = repairer {
        // A repair cut short is only work lost: nothing is claimed half.
        task.abort();
    }
    if let Some(validator) = validator {
        tokio::task::spawn_blocking(move || validator.stop())
            .await
            .ok();
    }
    for task in upkeep {
        let _ = task.await;
    }
    if let Some((_, task)) = http {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(config.data_dir.join(RUNTIME_FILE));
    drop(swarm);
    // The store closes when its last handle drops; blocking tasks that still
    // hold one finish first.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.flush() {
            tracing::warn!(error = %e, "flush at shutdown failed; the WAL will be replayed at start");
        }
        drop(store)
    })
    .await
    .ok();
    tracing::info!("stopped");
    result
}

/// Opens the ledger and starts consensus beside the node.
async fn start_validator(
    config: &Config,
    chain: &crate::config::ChainConfig,
    secret: &[u8; 32],
    metrics: &Metrics,
) -> Result<
    (
        Arc<crate::ledger::Ledger>,
        crate::validator::ValidatorHandle,
    ),
    DaemonError,
> {
    // The config refuses a validator without a genesis file.
    let path = chain
        .genesis
        .as_ref()
        .ok_or_else(|| DaemonError::Chain("a validator needs chain.genesis".into()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| DaemonError::Chain(format!("cannot read {}: {e}", path.display())))?;
    let genesis: cairn_protocol::chain::Genesis = serde_json::from_str(&text)
        .map_err(|e| DaemonError::Chain(format!("{}: {e}", path.display())))?;
    genesis
        .validate()
        .map_err(|e| DaemonError::Chain(format!("{}: {e}", path.display())))?;
    let dir = config.ledger_dir();
    let ledger = {
        let genesis = genesis.clone();
        tokio::task::spawn_blocking(move || {
            crate::ledger::Ledger::open(&dir, &genesis, Default::default())
        })
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))?
        .map_err(|e| DaemonError::Chain(e.to_string()))?
    };
    let ledger = Arc::new(ledger);
    tracing::info!(chain_id = %genesis.chain_id, height = ledger.store().height(), listen = %chain.listen, "ledger open; starting the validator");
    let handle = crate::validator::spawn(
        crate::validator::ValidatorSettings {
            genesis,
            listen: chain.listen,
            peers: chain.peers.clone(),
            engine_dir: config.engine_dir(),
            share: config.share_path(),
            block_interval: chain.block_interval,
            timing: cairn_chain::Timing::default(),
            relay_dropped: metrics.relay_dropped.clone(),
        },
        *secret,
        ledger.clone(),
    )
    .map_err(|e| DaemonError::Chain(e.to_string()))?;
    Ok((ledger, handle))
}

type Responder = (PeerId, ResponseChannel<ShardResponse>, ShardResponse);
type ChainResponder = (PeerId, ResponseChannel<ChainApiResponse>, ChainApiResponse);

struct EventLoop {
    service: ShardService,
    chain: ChainService,
    /// Chain API requests in flight, per peer (limited like shard requests).
    chain_in_flight: HashMap<PeerId, usize>,
    chain_responses: (
        mpsc::UnboundedSender<ChainResponder>,
        mpsc::UnboundedReceiver<ChainResponder>,
    ),
    metrics: Arc<Metrics>,
    source: Arc<StatusSource>,
    runtime_path: PathBuf,
    http: Option<SocketAddr>,
    requests_per_peer: usize,
    /// Requests in flight over all peers, shard and chain API together.
    max_requests: usize,
    listeners: Vec<ListenerId>,
    in_flight: HashMap<PeerId, usize>,
    responses: (
        mpsc::UnboundedSender<Responder>,
        mpsc::UnboundedReceiver<Responder>,
    ),
    /// Set when shutdown begins (stops the registration task).
    draining: watch::Sender<bool>,
}

impl EventLoop {
    async fn run(
        &mut self,
        swarm: &mut Swarm<CairnBehaviour>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        let signals = termination();
        tokio::pin!(shutdown);
        tokio::pin!(signals);
        let mut kad_refresh = tokio::time::interval(KAD_REFRESH);
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if let Some(deadline) = draining {
                let busy = self.requests_in_flight();
                if busy == 0 || tokio::time::Instant::now() >= deadline {
                    if busy > 0 {
                        tracing::warn!(requests = busy, "shutting down with requests unanswered");
                    }
                    return Ok(());
                }
            }
            tokio::select! {
                event = swarm.select_next_some() => self.on_swarm_event(swarm, event)?,
                Some((peer, channel, response)) = self.responses.1.recv() => {
                    finish(&mut self.in_flight, peer);
                    // Fails only if the peer went away; nothing to do then.
                    let _ = swarm.behaviour_mut().shards.send_response(channel, response);
                }
                Some((peer, channel, response)) = self.chain_responses.1.recv() => {
                    finish(&mut self.chain_in_flight, peer);
                    let _ = swarm.behaviour_mut().chain.send_response(channel, response);
                }
                _ = kad_refresh.tick() => {
                    if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                        let _ = kad.bootstrap();
                    }
                }
                _ = &mut shutdown, if draining.is_none() => {
                    draining = Some(self.begin_drain(swarm));
                }
                _ = &mut signals, if draining.is_none() => {
                    draining = Some(self.begin_drain(swarm));
                }
                _ = tokio::time::sleep(Duration::from_millis(200)), if draining.is_some() => {}
            }
        }
    }

    fn begin_drain(&mut self, swarm: &mut Swarm<CairnBehaviour>) -> tokio::time::Instant {
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = self.draining.send(true);
        for id in self.listeners.drain(..) {
            swarm.remove_listener(id);
        }
        let _ = std::fs::remove_file(&self.runtime_path);
        tokio::time::Instant::now() + DRAIN_TIMEOUT
    }

    fn on_swarm_event(
        &mut self,
        swarm: &mut Swarm<CairnBehaviour>,
        event: SwarmEvent<CairnBehaviourEvent>,
    ) -> Result<(), DaemonError> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(addr = %format!("{address}/p2p/{}", swarm.local_peer_id()), "listening");
                if let Ok(mut l) = self.source.listen.write() {
                    l.push(address);
                }
                self.write_runtime(swarm)?;
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Ok(mut l) = self.source.listen.write() {
                    l.retain(|a| a != &address);
                }
                self.write_runtime(swarm)?;
            }
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                let n = swarm.connected_peers().count();
                self.source.connected_peers.store(n, Ordering::Relaxed);
                self.metrics.connected_peers.set(n as i64);
                let connections = swarm.network_info().connection_counters().num_established();
                self.metrics.connections.set(i64::from(connections));
            }
            SwarmEvent::Behaviour(CairnBehaviourEvent::Shards(event)) => {
                self.on_shard_event(swarm, event)
            }
            SwarmEvent::Behaviour(CairnBehaviourEvent::Chain(event)) => {
                self.on_chain_event(swarm, event)
            }
            // Tell the DHT where Cairn nodes listen; clients (no kad server)
            // and foreign networks stay out of the table.
            SwarmEvent::Behaviour(CairnBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) => {
                if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                    for addr in info.listen_addrs.into_iter().filter(is_dialable) {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(addr = %send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
        Ok(())
    }

    fn on_shard_event(
        &mut self,
        swarm: &mut Swarm<CairnBehaviour>,
        event: request_response::Event<net::ShardRequest, ShardResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let total = self.requests_in_flight();
                let admitted = admit(
                    &mut self.in_flight,
                    (self.requests_per_peer, total, self.max_requests),
                    peer,
                    &self.metrics,
                    request.kind(),
                );
                if !admitted {
                    let _ = swarm.behaviour_mut().shards.send_response(
                        channel,
                        ShardResponse::error(
                            cairn_protocol::wire::ErrorKind::Busy,
                            "too many requests in flight from you",
                        ),
                    );
                    return;
                }
                if let Some(refusal) = &request.refusal {
                    self.metrics.rejected_streams.inc();
                    crate::peer_warn!(%peer, kind = request.kind(), error = %refusal, "bad request from peer");
                }
                let service = self.service.clone();
                let tx = self.responses.0.clone();
                tokio::spawn(async move {
                    let response = service.handle(peer, request).await;
                    let _ = tx.send((peer, channel, response));
                });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Malformed, truncated or stalled streams end here.
                self.metrics.rejected_streams.inc();
                crate::peer_warn!(%peer, %error, "inbound request failed");
            }
            _ => {}
        }
    }

    fn on_chain_event(
        &mut self,
        swarm: &mut Swarm<CairnBehaviour>,
        event: request_response::Event<net::ChainRequest, ChainApiResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let total = self.requests_in_flight();
                let admitted = admit(
                    &mut self.chain_in_flight,
                    (self.requests_per_peer, total, self.max_requests),
                    peer,
                    &self.metrics,
                    CHAIN_API_KIND,
                );
                if !admitted {
                    let _ = swarm.behaviour_mut().chain.send_response(
                        channel,
                        error_response(429, "too many chain API requests in flight from you"),
                    );
                    return;
                }
                if let Err(e) = &request.0 {
                    self.metrics.rejected_streams.inc();
                    crate::peer_warn!(%peer, error = %e, "bad chain API request from peer");
                }
                let service = self.chain.clone();
                let metrics = self.metrics.clone();
                let tx = self.chain_responses.0.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let response = service.handle(request).await;
                    let outcome = match response.status {
                        200..=299 => "ok".to_string(),
                        status => format!("http_{status}"),
                    };
                    metrics.request(CHAIN_API_KIND, &outcome, started.elapsed().as_secs_f64());
                    let _ = tx.send((peer, channel, response));
                });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.metrics.rejected_streams.inc();
                crate::peer_warn!(%peer, %error, "inbound chain API request failed");
            }
            _ => {}
        }
    }

    /// Requests in flight over all peers.
    fn requests_in_flight(&self) -> usize {
        self.in_flight
            .values()
            .chain(self.chain_in_flight.values())
            .sum()
    }

    fn write_runtime(&self, swarm: &Swarm<CairnBehaviour>) -> Result<(), DaemonError> {
        let peer = swarm.local_peer_id();
        let listen = self
            .source
            .listen
            .read()
            .map(|l| l.iter().map(|a| format!("{a}/p2p/{peer}")).collect())
            .unwrap_or_default();
        let info = RuntimeInfo {
            peer_id: peer.to_string(),
            listen,
            http: self.http.map(|a| a.to_string()),
            pid: std::process::id(),
        };
        let text = serde_json::to_string_pretty(&info).unwrap_or_default();
        // Write then rename, so a reader never sees half a file.
        let tmp = self.runtime_path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.runtime_path))
            .map_err(|source| DaemonError::Runtime {
                path: self.runtime_path.clone(),
                source,
            })
    }
}

/// The `kind` label of chain API requests in `cairn_node_requests_total`.
const CHAIN_API_KIND: &str = "chain_api";

/// Counts a request of `kind` from `peer` against its in-flight limit and
/// the node's: `(per peer, in flight now over all peers, over all peers)`.
/// False, counted and logged as a refusal, when either is reached: the
/// caller answers "busy" in its protocol's own way.
fn admit(
    in_flight: &mut HashMap<PeerId, usize>,
    (limit, total, max_total): (usize, usize, usize),
    peer: PeerId,
    metrics: &Metrics,
    kind: &'static str,
) -> bool {
    let n = in_flight.entry(peer).or_default();
    if *n >= limit {
        metrics.rejected_streams.inc();
        tracing::debug!(%peer, limit, kind, "peer over its request limit; answering busy");
        metrics.request(kind, "busy", 0.0);
        if *n == 0 {
            in_flight.remove(&peer);
        }
        return false;
    }
    if total >= max_total {
        metrics.refused_busy("max_requests");
        tracing::debug!(%peer, limit = max_total, kind, "node at its request limit; answering busy");
        metrics.request(kind, "busy", 0.0);
        if *n == 0 {
            in_flight.remove(&peer);
        }
        return false;
    }
    *n += 1;
    true
}

/// The swarm's connection limits from the node's.
fn connection_limits(
    limits: &crate::config::Limits,
) -> libp2p::connection_limits::ConnectionLimits {
    let max = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let per_peer = u32::try_from(limits.connections_per_peer).unwrap_or(u32::MAX);
    libp2p::connection_limits::ConnectionLimits::default()
        .with_max_established(Some(max))
        .with_max_established_per_peer(Some(per_peer))
        // Handshakes in progress cost memory too; a flood of them must
        // not crowd out the established.
        .with_max_pending_incoming(Some(max.div_ceil(4).max(8)))
}

/// The 32-byte ed25519 secret the validator signs with. A key that does not
/// yield one is an error: never a stand-in (all zeros would be a key every
/// attacker knows).
fn validator_secret(
    keypair: &libp2p::identity::Keypair,
) -> Result<zeroize::Zeroizing<[u8; 32]>, DaemonError> {
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|_| identity::IdentityError::NotEd25519)?;
    let secret = <[u8; 32]>::try_from(ed.secret().as_ref())
        .map_err(|_| identity::IdentityError::NotEd25519)?;
    Ok(zeroize::Zeroizing::new(secret))
}

/// One request of `peer`'s is answered.
fn finish(in_flight: &mut HashMap<PeerId, usize>, peer: PeerId) {
    if let Some(n) = in_flight.get_mut(&peer) {
        *n -= 1;
        if *n == 0 {
            in_flight.remove(&peer);
        }
    }
}

/// Completes on SIGTERM or ctrl-c.
async fn termination() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

/// Collects addresses for [`ShardClient`](crate::net::client::ShardClient)
/// from a node's runtime info.
pub fn node_addr(info: &RuntimeInfo) -> Option<net::client::NodeAddr> {
    let mut peer = None;
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for text in &info.listen {
        let addr: Multiaddr = text.parse().ok()?;
        let (p, base) = split_peer(&addr)?;
        peer = Some(p);
        addrs.push(base);
    }
    Some(net::client::NodeAddr { peer: peer?, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_secret_is_the_identity_keys_own() {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let secret = validator_secret(&keypair).unwrap();
        assert_ne!(*secret, [0; 32]);
        let ed = keypair.try_into_ed25519().unwrap();
        assert_eq!(&secret[..], ed.secret().as_ref());
    }

    #[test]
    fn admission_stops_at_the_peer_limit_and_at_the_node_limit() {
        let metrics = Metrics::new();
        let mut in_flight = HashMap::new();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(admit(&mut in_flight, (2, 0, 3), a, &metrics, "fetch"));
        assert!(admit(&mut in_flight, (2, 1, 3), a, &metrics, "fetch"));
        assert!(!admit(&mut in_flight, (2, 2, 3), a, &metrics, "fetch"));
        assert!(admit(&mut in_flight, (2, 2, 3), b, &metrics, "fetch"));
        // The node is full: another peer is refused and leaves no entry.
        let c = PeerId::random();
        assert!(!admit(&mut in_flight, (2, 3, 3), c, &metrics, "fetch"));
        assert!(!in_flight.contains_key(&c));
        assert_eq!(
            metrics
                .busy
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: "max_requests".into()
                })
                .get(),
            1
        );
    }
}
