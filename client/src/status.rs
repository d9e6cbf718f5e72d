//! `stat`: how healthy a stored file is, segment by segment.

use cairn_protocol::{Capability, ContentId, Manifest};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::network::{Network, NodeIndex};

/// Health of one segment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentHealth {
    pub index: u64,
    /// Distinct shards of the segment some reachable node holds.
    pub available: usize,
}

/// What `stat` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileStatus {
    pub manifest_id: String,
    pub size_bytes: u64,
    pub k: usize,
    pub n: usize,
    pub shard_size: u32,
    pub segments: Vec<SegmentHealth>,
    /// The least available segment's shard count.
    pub min_available: usize,
    /// Nodes holding a manifest copy.
    pub manifest_copies: usize,
    pub nodes_asked: usize,
    pub nodes_answered: usize,
    /// `healthy` (every shard there), `degraded` (readable, some shards
    /// gone: repair soon) or `unreadable` (a segment has fewer than k).
    pub health: &'static str,
}

/// Every (node, id) pair the reachable nodes hold among `ids`, and how
/// many nodes answered.
pub(crate) async fn holders(
    network: &Network,
    ids: &[ContentId],
) -> (Vec<(NodeIndex, ContentId)>, usize) {
    let mut asks: FuturesUnordered<_> = (0..network.len())
        .map(|node| async move { (node, network.has(node, ids).await) })
        .collect();
    let mut held = Vec::new();
    let mut answered = 0;
    while let Some((node, answer)) = asks.next().await {
        if let Ok(sizes) = answer {
            answered += 1;
            for (id, size) in ids.iter().zip(sizes) {
                if size.is_some() {
                    held.push((node, *id));
                }
            }
        }
    }
    (held, answered)
}

pub(crate) async fn stat(network: &Network, cap: &Capability, manifest: &Manifest) -> FileStatus {
    let mut ids = manifest.shards().to_vec();
    ids.push(cap.manifest);
    let (held, answered) = holders(network, &ids).await;
    let present: std::collections::HashSet<ContentId> = held.iter().map(|(_, id)| *id).collect();
    let n = manifest.params().n();
    let k = manifest.params().k();
    let segments: Vec<SegmentHealth> = (0..manifest.segment_count())
        .map(|s| SegmentHealth {
            index: s,
            available: manifest
                .segment_shards(s)
                .unwrap_or_default()
                .iter()
                .filter(|id| present.contains(id))
                .count(),
        })
        .collect();
    let min_available = segments.iter().map(|s| s.available).min().unwrap_or(0);
    let health = if min_available >= n {
        "healthy"
    } else if min_available >= k {
        "degraded"
    } else {
        "unreadable"
    };
    FileStatus {
        manifest_id: cap.manifest.to_string(),
        size_bytes: manifest.plaintext_len(),
        k,
        n,
        shard_size: manifest.layout().shard_size(),
        segments,
        min_available,
        manifest_copies: held.iter().filter(|(_, id)| *id == cap.manifest).count(),
        nodes_asked: network.len(),
        nodes_answered: answered,
        health,
    }
}
