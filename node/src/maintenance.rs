//! Background upkeep of the store: the scrubber, expiry GC and the GC of
//! unpaid shards ([`crate::store`]'s `unpaid` module says which go).
//!
//! The scrubber walks every shard in key order, re-hashes it and its
//! outboard, and quarantines (removes and reports) any that rotted, so a
//! node learns of bad disks before a reader or a storage challenge does.
//! It reads at a bounded rate so it never starves serving, and it walks in
//! small batches so it holds no long-lived RocksDB iterator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_protocol::ContentId;
use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::{now, ShardStore, StoreError};

/// Shards looked up per batch of the scrubber's walk.
const SCRUB_BATCH: usize = 64;
/// Expired shards removed per GC round.
const GC_BATCH: usize = 1024;

/// What the scrubber has found, for `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScrubStatus {
    /// Unix seconds when the last full pass ended.
    pub last_pass_finished_at: Option<u64>,
    /// Shards checked in the last full pass.
    pub last_pass_shards: u64,
    /// Shards found corrupt since the node started.
    pub corrupt_found: u64,
    /// Whether a pass is running now.
    pub running: bool,
}

/// Shared scrub status.
pub type SharedScrubStatus = Arc<Mutex<ScrubStatus>>;

fn update(status: &SharedScrubStatus, f: impl FnOnce(&mut ScrubStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Sleeps `d`, or returns `true` early if shutdown was asked.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Runs scrub passes, `interval` apart, reading at most `rate` bytes/s.
pub async fn scrubber(
    store: Arc<ShardStore>,
    metrics: Arc<Metrics>,
    status: SharedScrubStatus,
    interval: Duration,
    rate: u64,
    mut stop: watch::Receiver<bool>,
) {
    // Let the node settle (and a restarted node serve) before the first pass.
    if sleep_or_stop(interval.min(Duration::from_secs(30)), &mut stop).await {
        return;
    }
    loop {
        update(&status, |s| s.running = true);
        let mut after: Option<ContentId> = None;
        let mut checked = 0u64;
        loop {
            let batch = {
                let store = store.clone();
                let from = after;
                tokio::task::spawn_blocking(move || store.ids_after(from.as_ref(), SCRUB_BATCH))
                    .await
            };
            let batch = match batch {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "scrubber cannot list shards");
                    break;
                }
                Err(_) => break,
            };
            if batch.is_empty() {
                break;
            }
            for (id, size) in batch {
                after = Some(id);
                let store = store.clone();
                let result = tokio::task::spawn_blocking(move || store.verify(&id)).await;
                match result {
                    Ok(Ok(true)) => {
                        checked += 1;
                        metrics.scrubbed_shards.inc();
                        metrics.scrubbed_bytes.inc_by(size);
                    }
                    Ok(Ok(false)) => {} // deleted meanwhile
                    Ok(Err(StoreError::Corrupt { id, reason })) => {
                        checked += 1;
                        metrics.scrubbed_shards.inc();
                        metrics.corrupt_shards.inc();
                        update(&status, |s| s.corrupt_found += 1);
                        tracing::error!(shard = %id, reason, "scrubber found a corrupt shard");
                    }
                    Ok(Err(e)) => tracing::error!(shard = %id, error = %e, "scrubber read failed"),
                    Err(_) => {}
                }
                let pause = Duration::from_secs_f64(size as f64 / rate as f64);
                if sleep_or_stop(pause, &mut stop).await {
                    return;
                }
            }
        }
        metrics.scrub_passes.inc();
        update(&status, |s| {
            s.running = false;
            s.last_pass_finished_at = Some(now());
            s.last_pass_shards = checked;
        });
        tracing::info!(shards = checked, "scrub pass finished");
        if sleep_or_stop(interval, &mut stop).await {
            return;
        }
    }
}

/// Removes expired shards, and unpaid ones past their grace, every
/// `interval`.
pub async fn expiry_gc(
    store: Arc<ShardStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if sleep_or_stop(interval, &mut stop).await {
            return;
        }
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.collect_expired(now(), GC_BATCH)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    metrics.expired_shards.inc_by(n as u64);
                    tracing::info!(removed = n, "expired shards collected");
                    if n < GC_BATCH {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "expiry GC failed");
                    break;
                }
                Err(_) => break,
            }
        }
        collect_unpaid(&store, &metrics).await;
    }
}

/// Removes unpaid shards whose grace ended, in rounds of [`GC_BATCH`].
async fn collect_unpaid(store: &Arc<ShardStore>, metrics: &Metrics) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.collect_unpaid(now(), GC_BATCH)).await {
            Ok(Ok((n, freed))) => {
                if n > 0 {
                    metrics.unpaid_collected_shards.inc_by(n as u64);
                    tracing::info!(
                        removed = n,
                        freed,
                        "unpaid shards past their grace collected"
                    );
                }
                if n < GC_BATCH {
                    break;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "unpaid GC failed");
                break;
            }
            Err(_) => break,
        }
    }
    metrics
        .unpaid_bytes
        .set(i64::try_from(store.unpaid_usage().bytes).unwrap_or(i64::MAX));
}
