//! Prometheus metrics, served as text at `/metrics`.
//!
//! Names follow Prometheus conventions (`_total` counters, `_bytes` and
//! `_seconds` units). Gauges for the store are refreshed from its usage
//! when scraped, so they cannot drift from it.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// store, fetch, has, info, delete
    pub kind: String,
    /// ok, or an error kind (busy, hash_mismatch, ...)
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the node exports.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<KindLabel, Histogram>,
    pub received_bytes: Counter,
    pub served_bytes: Counter,
    pub shards: Gauge,
    pub used_bytes: Gauge,
    pub capacity_bytes: Gauge,
    pub scrubbed_shards: Counter,
    pub scrubbed_bytes: Counter,
    pub corrupt_shards: Counter,
    pub scrub_passes: Counter,
    pub expired_shards: Counter,
    /// Bytes of shards no deal pays for yet (a node of a chain).
    pub unpaid_bytes: Gauge,
    /// Unpaid shards removed once their grace ended.
    pub unpaid_collected_shards: Counter,
    pub connected_peers: Gauge,
    /// Open connections (a peer may hold several).
    pub connections: Gauge,
    pub rejected_streams: Counter,
    /// Requests answered over the bulk listener (TLS on TCP).
    pub bulk_requests: Counter,
    /// Bulk connections open now (handshake done).
    pub bulk_connections: Gauge,
    /// Bytes of response bodies reserved (read, or about to be) and not yet
    /// sent, over all peers; at most `limits.response_buffer`.
    pub response_bytes_in_flight: Gauge,
    /// Requests answered busy for want of a node-wide resource (response
    /// budget, total requests), by what ran out.
    pub busy: Family<ReasonLabel, Counter>,
    /// 1 once the node's registration on the chain is current, else 0.
    pub chain_registered: Gauge,
    /// 1 once this validator's ledger halted on a block whose state root
    /// disagreed with its own, else 0.
    pub chain_halted: Gauge,
    /// Transactions other validators relayed past their per-peer rate.
    pub relay_dropped: Counter,
    /// Storage proofs by outcome: accepted, rejected, missed, unbuildable.
    pub proofs: Family<OutcomeLabel, Counter>,
    /// From a window's seed to the proof's block, for accepted proofs.
    pub proof_seconds: Histogram,
    /// Repairs by outcome: accepted, refused, failed.
    pub repairs: Family<OutcomeLabel, Counter>,
    /// Shard bytes the repair worker downloaded and uploaded.
    pub repair_downloaded_bytes: Counter,
    pub repair_uploaded_bytes: Counter,
}

/// What a busy answer ran out of.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// A proof's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("cairn_node");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests served, by kind and outcome",
            requests.clone(),
        );
        let request_seconds = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_seconds",
            "Time from a request's arrival to its response, by kind",
            request_seconds.clone(),
        );
        let received_bytes = Counter::default();
        registry.register(
            "received_bytes",
            "Shard bytes accepted from peers",
            received_bytes.clone(),
        );
        let served_bytes = Counter::default();
        registry.register(
            "served_bytes",
            "Encoded shard bytes sent to peers",
            served_bytes.clone(),
        );
        let shards = Gauge::default();
        registry.register("shards", "Shards stored", shards.clone());
        let used_bytes = Gauge::default();
        registry.register(
            "used_bytes",
            "Bytes of shards and outboards stored",
            used_bytes.clone(),
        );
        let capacity_bytes = Gauge::default();
        registry.register(
            "capacity_bytes",
            "Bytes the operator allows",
            capacity_bytes.clone(),
        );
        let scrubbed_shards = Counter::default();
        registry.register(
            "scrubbed_shards",
            "Shards re-verified by the scrubber",
            scrubbed_shards.clone(),
        );
        let scrubbed_bytes = Counter::default();
        registry.register(
            "scrubbed_bytes",
            "Bytes re-verified by the scrubber",
            scrubbed_bytes.clone(),
        );
        let corrupt_shards = Counter::default();
        registry.register(
            "corrupt_shards",
            "Shards found corrupt (by the scrubber or on read) and quarantined",
            corrupt_shards.clone(),
        );
        let scrub_passes = Counter::default();
        registry.register(
            "scrub_passes",
            "Completed passes of the scrubber over the whole store",
            scrub_passes.clone(),
        );
        let expired_shards = Counter::default();
        registry.register(
            "expired_shards",
            "Shards removed because they expired",
            expired_shards.clone(),
        );
        let unpaid_bytes = Gauge::default();
        registry.register(
            "unpaid_bytes",
            "Bytes of shards (with outboards) that no deal on the chain pays for yet",
            unpaid_bytes.clone(),
        );
        let unpaid_collected_shards = Counter::default();
        registry.register(
            "unpaid_collected_shards",
            "Unpaid shards no receipt names, removed once their grace ended",
            unpaid_collected_shards.clone(),
        );
        let connected_peers = Gauge::default();
        registry.register(
            "connected_peers",
            "Peers with an open connection",
            connected_peers.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open connections, over all peers",
            connections.clone(),
        );
        let response_bytes_in_flight = Gauge::default();
        registry.register(
            "response_bytes_in_flight",
            "Bytes of response bodies reserved and not yet sent",
            response_bytes_in_flight.clone(),
        );
        let busy = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "busy_refusals",
            "Requests answered busy for want of a node-wide resource, by reason",
            busy.clone(),
        );
        let rejected_streams = Counter::default();
        registry.register(
            "rejected_streams",
            "Inbound streams refused for breaking limits (size, budget, per-peer)",
            rejected_streams.clone(),
        );
        let bulk_requests = Counter::default();
        registry.register(
            "bulk_requests",
            "Shard requests answered over the bulk listener (TLS on TCP)",
            bulk_requests.clone(),
        );
        let bulk_connections = Gauge::default();
        registry.register(
            "bulk_connections",
            "Bulk connections open now (TLS handshake done)",
            bulk_connections.clone(),
        );
        let chain_registered = Gauge::default();
        registry.register(
            "chain_registered",
            "1 when this node is registered on the chain with its current addresses and capacity",
            chain_registered.clone(),
        );
        let chain_halted = Gauge::default();
        registry.register(
            "chain_halted",
            "1 when this validator halted on a finalized block whose state root disagrees with its own",
            chain_halted.clone(),
        );
        let relay_dropped = Counter::default();
        registry.register(
            "relay_dropped",
            "Transactions other validators relayed past their per-validator rate, not checked",
            relay_dropped.clone(),
        );
        let proofs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "proofs",
            "Storage proofs by outcome (accepted, rejected, missed, unbuildable)",
            proofs.clone(),
        );
        let proof_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "proof_seconds",
            "Time from a proof window's seed to the proof's block",
            proof_seconds.clone(),
        );
        let repairs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "repairs",
            "Repair claims by outcome (accepted, refused, failed)",
            repairs.clone(),
        );
        let repair_downloaded_bytes = Counter::default();
        registry.register(
            "repair_downloaded_bytes",
            "Shard bytes fetched from other nodes to rebuild lost shards",
            repair_downloaded_bytes.clone(),
        );
        let repair_uploaded_bytes = Counter::default();
        registry.register(
            "repair_uploaded_bytes",
            "Rebuilt shard bytes stored on new holders",
            repair_uploaded_bytes.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            request_seconds,
            received_bytes,
            served_bytes,
            shards,
            used_bytes,
            capacity_bytes,
            scrubbed_shards,
            scrubbed_bytes,
            corrupt_shards,
            scrub_passes,
            expired_shards,
            unpaid_bytes,
            unpaid_collected_shards,
            connected_peers,
            connections,
            rejected_streams,
            bulk_requests,
            bulk_connections,
            response_bytes_in_flight,
            busy,
            chain_registered,
            chain_halted,
            relay_dropped,
            proofs,
            proof_seconds,
            repairs,
            repair_downloaded_bytes,
            repair_uploaded_bytes,
        })
    }

    /// Counts one proof outcome; `seconds` for accepted ones.
    pub fn proof(&self, outcome: &str, seconds: Option<f64>) {
        self.proofs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
        if let Some(s) = seconds {
            self.proof_seconds.observe(s);
        }
    }

    /// Counts one finished request.
    /// One request answered busy because `reason` (a node-wide limit) ran out.
    pub fn refused_busy(&self, reason: &str) {
        self.busy
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn request(&self, kind: &str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&KindLabel { kind: kind.into() })
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, usage: crate::store::Usage) -> String {
        self.shards.set(usage.shards as i64);
        self.used_bytes.set(usage.used as i64);
        self.capacity_bytes.set(usage.capacity as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
