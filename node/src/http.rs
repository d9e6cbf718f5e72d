//! The node's HTTP endpoint, on loopback by default: `/metrics` for
//! Prometheus, `/status` as JSON, and `/` as a small HTML page for a person.
//!
//! It is read-only: nothing here changes the store, so exposing it wider
//! leaks numbers, never data.
//!
//! A node that runs a ledger also serves the chain API under `/chain/`
//! ([`crate::ledger::http`]); its one write, `POST /chain/tx`, only queues
//! a signed transaction in the mempool.
//!
//! Every route is bounded ([`HttpLimits`]): a client must send its headers
//! within `header_timeout` (a slow-loris connection is closed), a request
//! gets its answer within `request_timeout` (else 408), bodies past
//! `max_body` are refused with 413, requests past `max_concurrent` at once
//! are answered 503 at once (shed, not queued), and past `max_connections`
//! new connections wait in the kernel's backlog.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use cairn_protocol::chain::Address;
use cairn_protocol::units::format_size;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use crate::config::HttpLimits;
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

/// `router` with [`HttpLimits`]' per-request bounds on every route:
/// shedding past `max_concurrent`, the request timeout, the body limit.
pub fn limited(router: Router, limits: &HttpLimits) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent));
    let max_body = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
    router
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(slots, shed))
}

/// Answers 503 at once when every request slot is taken: a flood waits in
/// no queue and holds no memory.
async fn shed(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    match slots.try_acquire() {
        Ok(_slot) => next.run(request).await,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "busy: too many requests at once; retry later",
        )
            .into_response(),
    }
}

/// Binds the HTTP endpoint; returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<StatusSource>,
    ledger: Option<Arc<Ledger>>,
    limits: &HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = limited(router(source, ledger), limits);
    let task = tokio::spawn(accept_loop(listener, app, limits.clone(), shutdown));
    Ok((bound, task))
}

/// Accepts connections while fewer than `max_connections` are open and
/// serves each with a header read timeout; at shutdown, stops accepting and
/// lets each connection finish the request it is answering.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut open = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::debug!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = limits.header_timeout;
        let mut stop = stop_rx.clone();
        open.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set stays as small as the
        // connections open.
        while open.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while open.join_next().await.is_some() {}
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
        {
            let unpaid = s.store.unpaid_usage().bytes;
            s.metrics
                .unpaid_bytes
                .set(i64::try_from(unpaid).unwrap_or(i64::MAX));
            s.metrics.render(s.store.usage())
        },
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(300),
            max_concurrent: 1,
            max_connections: 8,
            max_body: 1000,
        }
    }

    /// Routes for the tests: `/` answers at once, `/echo` reads its body,
    /// `/hold` waits until told, `/slow` outlives the request timeout.
    fn app(hold: Arc<tokio::sync::Notify>, held: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/echo", post(|body: axum::body::Bytes| async move { body }))
            .route(
                "/hold",
                get(move || async move {
                    held.notify_one();
                    hold.notified().await;
                    "released"
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    "late"
                }),
            )
    }

    fn plain() -> Router {
        app(Default::default(), Default::default())
    }

    fn get_req(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn an_over_limit_body_is_refused_with_413() {
        let app = limited(plain(), &limits());
        let ok = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, 1000)
            .body(Body::from(vec![1u8; 1000]))
            .unwrap();
        assert_eq!(
            app.clone().oneshot(ok).await.unwrap().status(),
            StatusCode::OK
        );
        let big = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, 1001)
            .body(Body::from(vec![1u8; 1001]))
            .unwrap();
        assert_eq!(
            app.clone().oneshot(big).await.unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // Without a length up front, the body is cut off at the limit.
        let stream = futures::stream::iter(
            (0..20).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![0u8; 100]))),
        );
        let chunked = axum::http::Request::post("/echo")
            .body(Body::from_stream(stream))
            .unwrap();
        assert_eq!(
            app.oneshot(chunked).await.unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn requests_past_the_concurrency_limit_get_503_and_slow_ones_408() {
        let (hold, held) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let mut l = limits();
        l.request_timeout = Duration::from_secs(600);
        let app = limited(app(hold.clone(), held.clone()), &l);
        let first = tokio::spawn(app.clone().oneshot(get_req("/hold")));
        held.notified().await;
        let second = app.clone().oneshot(get_req("/")).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(second.headers().contains_key(header::RETRY_AFTER));
        hold.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The slot is free again.
        assert_eq!(
            app.oneshot(get_req("/")).await.unwrap().status(),
            StatusCode::OK
        );

        let app = limited(plain(), &limits());
        assert_eq!(
            app.oneshot(get_req("/slow")).await.unwrap().status(),
            StatusCode::REQUEST_TIMEOUT
        );
    }

    #[tokio::test]
    async fn a_slow_loris_connection_is_dropped_and_others_are_served() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(accept_loop(
            listener,
            limited(plain(), &limits()),
            limits(),
            async move {
                let _ = stop_rx.changed().await;
            },
        ));
        // Half a request's headers, then nothing.
        let mut loris = tokio::net::TcpStream::connect(addr).await.unwrap();
        loris
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        // Meanwhile another client is answered.
        let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();
        good.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        good.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The server closes the slow one (the outer bound only keeps a
        // broken build from hanging; it is not the assertion).
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(60), loris.read_to_end(&mut rest))
            .await
            .expect("the slow connection was never closed");
        assert!(
            closed.is_err() || !String::from_utf8_lossy(&rest).contains("200"),
            "a request never completed was answered: {rest:?}"
        );
        let _ = stop_tx.send(true);
        server.await.unwrap();
    }
}
