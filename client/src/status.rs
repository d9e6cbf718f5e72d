//! `stat`: how healthy a stored file is, segment by segment: what the
//! nodes answer, and with a chain, what the chain sees (each shard's holder
//! and its standing, which shards repair moved and where), by the same rule
//! the repair workers apply ([`cairn_protocol::repair::assess`]).

use cairn_protocol::chain::{Address, DealId};
use cairn_protocol::repair::data::{manifest_segments, tree_root};
use cairn_protocol::repair::{assess, Health, RepairPolicy, SegmentStatus, ShardState};
use cairn_protocol::{Capability, CodingParams, ContentId, Manifest};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::chain::ChainClient;
use crate::file_deal;
use crate::network::{Network, NodeIndex};
use crate::repair_data;

/// Health of one segment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentHealth {
    pub index: u64,
    /// Distinct shards of the segment some reachable node holds.
    pub available: usize,
    /// The segment as the chain sees it (`null` without a chain view).
    pub chain: Option<SegmentOnChain>,
}

/// One segment as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentOnChain {
    /// Shards on active nodes.
    pub healthy: usize,
    /// Shards on faulty nodes (not counted, not moved: they may come back).
    pub unhealthy: usize,
    /// Shards on disqualified nodes, or declared or found lost.
    pub lost: usize,
    /// Shards repair moved to a new holder.
    pub repaired: usize,
    /// The repair policy's verdict: `healthy`, `needs_repair` or `lost`.
    pub verdict: &'static str,
    /// Every shard, by index.
    pub shards: Vec<ShardOnChain>,
}

/// One shard as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardOnChain {
    pub index: u16,
    /// The chain address of the node holding it now (`null`: the deal
    /// names no such commitment).
    pub node: Option<Address>,
    /// That node on the chain: `active`, `faulty`, `disqualified` or
    /// `unregistered`.
    pub node_status: &'static str,
    /// `healthy`, `unhealthy` (its node is faulty) or `lost`.
    pub state: &'static str,
    /// Whether repair moved it to `node`.
    pub repaired: bool,
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
    /// `healthy` (every segment's n shards there, and with a chain view on
    /// active nodes), `degraded` (readable, some shards gone: repair soon)
    /// or `unreadable` (a segment has fewer than k).
    pub health: &'static str,
    /// The file's deal on the chain (hex), when the chain names one.
    pub deal: Option<String>,
    /// Shards repair moved to new holders, per the chain.
    pub repaired_shards: usize,
    /// Why there is no chain view, when a chain is configured but none
    /// could be made (no deal names this file, the chain or the repair
    /// data unreachable).
    pub chain_error: Option<String>,
}

/// The file's deal and its segments as the chain sees them.
struct ChainView {
    deal: String,
    segments: Vec<SegmentOnChain>,
}

/// The chain's view of the file: its deal, found by the manifest's repair
/// tree root, and each segment under the repair rule.
async fn chain_view(
    chain: &ChainClient,
    network: &Network,
    manifest: &Manifest,
) -> Result<ChainView, String> {
    let deals = file_deal::deals_of(chain, manifest)
        .await
        .map_err(|e| e.to_string())?;
    // Anyone may name a copy of this file's repair data for a deal of
    // their own: the first few deals that name it are tried in turn.
    let mut last = "no open deal on the chain names this file's repair data".to_string();
    for deal in deals.iter().take(DEALS_TRIED) {
        match deal_view(chain, network, manifest, deal).await {
            Ok(view) => return Ok(view),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Deals naming a file's repair data that `stat` looks at.
const DEALS_TRIED: usize = 3;

/// One deal's view of the file.
async fn deal_view(
    chain: &ChainClient,
    network: &Network,
    manifest: &Manifest,
    first: &crate::chain::api::DealView,
) -> Result<ChainView, String> {
    let bad = |why: &str| format!("the chain's answer for deal {}: {why}", first.id);
    let id: [u8; 32] = hex::decode(&first.id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("not a deal id"))?;
    let deal_id = DealId(id);
    let state = chain
        .repair_state(&first.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| bad("the deal is no longer open"))?
        .decode()
        .map_err(|e| bad(&e))?;
    let deal = state
        .deal(&deal_id)
        .ok_or_else(|| bad("the state has no such deal"))?;
    let root = tree_root(&manifest_segments(manifest));
    if deal.repair.as_ref().map(|r| r.data.root) != root {
        return Err(bad("its repair data is not this file's"));
    }
    let data = repair_data::fetch(network, &deal)
        .await
        .map_err(|e| e.to_string())?;
    let params = CodingParams::new(data.k, data.m).map_err(|e| bad(&e.to_string()))?;
    let statuses = assess(&state, &deal_id, &data, &RepairPolicy::default_for(params))
        .map_err(|e| bad(&e.to_string()))?;
    let moved = |g: u32, j: u16| {
        deal.repair
            .as_ref()
            .is_some_and(|r| r.moved_to(g, j).is_some())
    };
    let segments = statuses
        .iter()
        .map(|st| segment_on_chain(st, &state, &deal, moved))
        .collect();
    Ok(ChainView {
        deal: first.id.clone(),
        segments,
    })
}

fn segment_on_chain(
    st: &SegmentStatus,
    state: &cairn_protocol::chain::ChainState,
    deal: &cairn_protocol::chain::Deal,
    moved: impl Fn(u32, u16) -> bool,
) -> SegmentOnChain {
    let shards: Vec<ShardOnChain> = st
        .shards
        .iter()
        .enumerate()
        .map(|(j, ((c, _), shard))| {
            let node = deal.commitments.get(*c as usize).map(|c| c.node);
            ShardOnChain {
                index: j as u16,
                node,
                node_status: node
                    .and_then(|a| state.node(&a))
                    .map_or("unregistered", |n| n.health().as_str()),
                state: match shard {
                    ShardState::Healthy => "healthy",
                    ShardState::Unhealthy => "unhealthy",
                    ShardState::Lost => "lost",
                },
                repaired: moved(st.segment, j as u16),
            }
        })
        .collect();
    let count = |s: &str| shards.iter().filter(|x| x.state == s).count();
    SegmentOnChain {
        healthy: count("healthy"),
        unhealthy: count("unhealthy"),
        lost: count("lost"),
        repaired: shards.iter().filter(|x| x.repaired).count(),
        verdict: match st.health {
            Health::Healthy => "healthy",
            Health::NeedsRepair => "needs_repair",
            Health::Lost => "lost",
        },
        shards,
    }
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

pub(crate) async fn stat(
    network: &Network,
    chain: Option<&ChainClient>,
    cap: &Capability,
    manifest: &Manifest,
) -> FileStatus {
    let mut ids = manifest.shards().to_vec();
    ids.push(cap.manifest);
    let (held, answered) = holders(network, &ids).await;
    let view = match chain {
        Some(chain) => Some(chain_view(chain, network, manifest).await),
        None => None,
    };
    let (deal, mut on_chain, chain_error) = match view {
        Some(Ok(v)) => (Some(v.deal), v.segments, None),
        Some(Err(e)) => (None, Vec::new(), Some(e)),
        None => (None, Vec::new(), None),
    };
    if on_chain.len() as u64 != manifest.segment_count() {
        on_chain.clear();
    }
    let mut on_chain = on_chain.into_iter();
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
            chain: on_chain.next(),
        })
        .collect();
    let min_available = segments.iter().map(|s| s.available).min().unwrap_or(0);
    let chain_whole = segments
        .iter()
        .all(|s| s.chain.as_ref().is_none_or(|c| c.healthy >= n));
    let health = if min_available >= n && chain_whole {
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
        min_available,
        manifest_copies: held.iter().filter(|(_, id)| *id == cap.manifest).count(),
        nodes_asked: network.len(),
        nodes_answered: answered,
        health,
        deal,
        repaired_shards: segments
            .iter()
            .filter_map(|s| s.chain.as_ref())
            .map(|c| c.repaired)
            .sum(),
        chain_error,
        segments,
    }
}
