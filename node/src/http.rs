//! The node's HTTP endpoint, on loopback by default: `/metrics` for
//! Prometheus, `/status` as JSON, and `/` as a small HTML page for a person.
//!
//! It is read-only: nothing here changes the store, so exposing it wider
//! leaks numbers, never data.
//!
//! A node that runs a ledger also serves the chain API under `/chain/`
//! ([`crate::ledger::http`]); its one write, `POST /chain/tx`, only queues
//! a signed transaction in the mempool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use cairn_protocol::chain::Address;
use cairn_protocol::units::format_size;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use crate::ledger::Ledger;
use crate::maintenance::{ScrubStatus, SharedScrubStatus};
use crate::metrics::Metrics;
use crate::registration::RegistrationState;
use crate::store::{ShardStore, Usage};

/// What the status endpoints read.
pub struct StatusSource {
    pub peer_id: PeerId,
    /// The node's account on the chain (its identity key's public half).
    pub chain_address: Address,
    pub store: Arc<ShardStore>,
    pub metrics: Arc<Metrics>,
    pub listen: RwLock<Vec<Multiaddr>>,
    pub connected_peers: AtomicUsize,
    pub scrub: SharedScrubStatus,
    pub started: Instant,
    /// Where the node's registration on the chain stands.
    pub registration: RwLock<RegistrationState>,
    /// What the proof worker did.
    pub proofs: crate::prover::SharedProofStats,
    /// What the repair worker did.
    pub repairs: crate::repair::SharedRepairStats,
}

/// `/status` as JSON.
#[derive(Debug, Serialize)]
pub struct Status {
    pub peer_id: String,
    /// Hex, as the chain's JSON writes addresses.
    pub chain_address: Address,
    pub version: &'static str,
    pub listen: Vec<String>,
    pub connected_peers: usize,
    pub uptime_secs: u64,
    pub store: Usage,
    pub scrub: ScrubStatus,
    /// `off`, `pending`, `registered` or `failed: <reason>`.
    pub registration: RegistrationState,
    /// Storage proofs: submitted, accepted, rejected, missed, the current
    /// window, the last proof and the earnings.
    pub proofs: crate::prover::ProofStats,
    /// Repairs: deals looked at, claims accepted and refused, bytes moved,
    /// the last repair.
    pub repairs: crate::repair::RepairStats,
}

impl StatusSource {
    pub fn status(&self) -> Status {
        Status {
            peer_id: self.peer_id.to_string(),
            chain_address: self.chain_address,
            version: env!("CARGO_PKG_VERSION"),
            listen: self
                .listen
                .read()
                .map(|l| {
                    l.iter()
                        .map(|a| format!("{a}/p2p/{}", self.peer_id))
                        .collect()
                })
                .unwrap_or_default(),
            connected_peers: self.connected_peers.load(Ordering::Relaxed),
            uptime_secs: self.started.elapsed().as_secs(),
            store: self.store.usage(),
            scrub: self.scrub.lock().map(|s| s.clone()).unwrap_or_default(),
            registration: self
                .registration
                .read()
                .map(|r| r.clone())
                .unwrap_or(RegistrationState::Off),
            proofs: self.proofs.read().map(|p| p.clone()).unwrap_or_default(),
            repairs: self.repairs.read().map(|r| r.clone()).unwrap_or_default(),
        }
    }
}

/// The node's routes; with a ledger, the `/chain/...` routes too.
pub fn router(source: Arc<StatusSource>, ledger: Option<Arc<Ledger>>) -> Router {
    let app = Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(source);
    match ledger {
        Some(ledger) => app.merge(crate::ledger::http::routes(ledger)),
        None => app,
    }
}

/// Binds the HTTP endpoint; returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<StatusSource>,
    ledger: Option<Arc<Ledger>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(source, ledger);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok((bound, task))
}

async fn status(State(s): State<Arc<StatusSource>>) -> Json<Status> {
    Json(s.status())
}

async fn metrics(State(s): State<Arc<StatusSource>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(s.store.usage()),
    )
}

async fn page(State(s): State<Arc<StatusSource>>) -> Html<String> {
    let st = s.status();
    let used_pct = if st.store.capacity > 0 {
        100.0 * st.store.used as f64 / st.store.capacity as f64
    } else {
        0.0
    };
    let listen: String = st
        .listen
        .iter()
        .map(|a| format!("<li><code>{}</code></li>", escape(a)))
        .collect();
    let last_pass = st
        .scrub
        .last_pass_finished_at
        .map(|t| {
            format!(
                "{} shards, finished at unix time {t}",
                st.scrub.last_pass_shards
            )
        })
        .unwrap_or_else(|| "none yet".into());
    let p = &st.proofs;
    let next = match (p.period, p.window) {
        (Some(period), Some((open, close))) => {
            format!("period {period}: seed with block {open}, answer by block {close}")
        }
        _ => "none (no deals to prove, or no chain)".into(),
    };
    let last = p
        .last
        .as_ref()
        .map(|l| match (&l.error, l.height) {
            (None, Some(h)) => format!(
                "period {} accepted in block {h}, {} ms",
                l.period, l.latency_ms
            ),
            (Some(e), _) => format!("period {} refused: {}", l.period, escape(e)),
            (None, None) => format!("period {} pending", l.period),
        })
        .unwrap_or_else(|| "none yet".into());
    Html(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>cairn-node {peer}</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;color:#222}}
td{{padding:.2em 1em .2em 0}} .bar{{background:#eee;height:1em}} .fill{{background:#4a7;height:1em}}</style>
</head><body>
<h1>cairn-node</h1>
<table>
<tr><td>peer id</td><td><code>{peer}</code></td></tr>
<tr><td>chain address</td><td><code>{address}</code></td></tr>
<tr><td>version</td><td>{version}</td></tr>
<tr><td>uptime</td><td>{uptime} s</td></tr>
<tr><td>connected peers</td><td>{peers}</td></tr>
<tr><td>shards</td><td>{shards}</td></tr>
<tr><td>used</td><td>{used} of {capacity} ({used_pct:.1} %)</td></tr>
<tr><td>scrub</td><td>last pass: {last_pass}; corrupt found: {corrupt}{running}</td></tr>
<tr><td>chain registration</td><td>{registration}</td></tr>
<tr><td>health on the chain</td><td>{health}</td></tr>
<tr><td>next challenge</td><td>{next}</td></tr>
<tr><td>last proof</td><td>{last}</td></tr>
<tr><td>proofs</td><td>{accepted} accepted, {rejected} rejected, {missed} missed, {declared} shards declared lost</td></tr>
<tr><td>earned</td><td>{earned}</td></tr>
</table>
<div class="bar"><div class="fill" style="width:{used_pct:.1}%"></div></div>
<h2>Listening on</h2><ul>{listen}</ul>
<p><a href="/metrics">metrics</a> · <a href="/status">status (JSON)</a></p>
</body></html>"#,
        peer = escape(&st.peer_id),
        address = st.chain_address,
        version = st.version,
        uptime = st.uptime_secs,
        peers = st.connected_peers,
        shards = st.store.shards,
        used = format_size(st.store.used),
        capacity = format_size(st.store.capacity),
        corrupt = st.scrub.corrupt_found,
        registration = escape(&st.registration.to_string()),
        health = escape(p.health.as_deref().unwrap_or("unknown")),
        accepted = p.accepted,
        rejected = p.rejected,
        missed = p.missed,
        declared = p.declared,
        earned = p.earned,
        running = if st.scrub.running {
            " (running now)"
        } else {
            ""
        },
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl std::fmt::Debug for StatusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusSource")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}
