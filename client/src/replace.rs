//! Moving an upload's shards off nodes that will not sign for them.
//!
//! A deal needs every holder's receipt. A node that took some of a file's
//! shards and then dropped off the network (partitioned, crashed) before
//! signing would sink the whole deal, although the file is whole on the
//! other nodes. So before giving up, the client rebuilds what that node
//! holds from the rest of each segment, as a repairer would (fetch `k`
//! shards, each checked against its id; reconstruct; the code is
//! systematic and deterministic, so the same bytes and the same id come
//! out), stores it on a node that holds nothing of that segment, and plans
//! the deal again without the silent node. Manifest copies on it are left
//! out of the deal: the others remain. A node that *refused* to sign is
//! not worked around: its refusal says something about the deal itself.
//!
//! Non-goal: moving shards off a node after the deal opened; that is the
//! chain's repair ([`crate::repair_data`], docs/repair.md).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use cairn_protocol::erasure::ErasureCoder;
use cairn_protocol::{CodingParams, ContentId};
use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use crate::deal::Segments;
use crate::network::{Network, NodeIndex};
use crate::upload::PlacedShard;

/// Why the shards could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("segment {segment}: only {have} of the {k} shards needed to rebuild its shard on {node} could be fetched")]
    TooFewShards {
        segment: usize,
        node: PeerId,
        have: usize,
        k: usize,
    },
    #[error("segment {segment}: no node outside the segment can take shard {id}: {reasons}")]
    NoSpare {
        segment: usize,
        id: ContentId,
        reasons: String,
    },
    #[error("rebuilding segment {segment}: {reason}")]
    Rebuild { segment: usize, reason: String },
}

/// `placement` with every shard `gone` nodes hold moved to another node
/// (rebuilt from its segment and stored there for `owner`), and manifest
/// copies on them left out. Returns the new placement and how many shards
/// moved.
pub async fn move_off(
    network: &Network,
    owner: &SigningKey,
    placement: &[PlacedShard],
    segments: Segments<'_>,
    gone: &HashSet<PeerId>,
) -> Result<(Vec<PlacedShard>, usize), ReplaceError> {
    let params = CodingParams::new(segments.k, segments.m).map_err(|e| ReplaceError::Rebuild {
        segment: 0,
        reason: e.to_string(),
    })?;
    let coder = Arc::new(ErasureCoder::new(params));
    let mut holders: HashMap<ContentId, Vec<PeerId>> = HashMap::new();
    for p in placement {
        holders.entry(p.id).or_default().push(p.node);
    }
    let mut out: Vec<PlacedShard> = placement
        .iter()
        .filter(|p| !gone.contains(&p.node))
        .cloned()
        .collect();
    let mut moved = 0;
    for (g, shards) in segments.shards.iter().enumerate() {
        let lost: Vec<usize> = (0..shards.len())
            .filter(|&j| {
                holders
                    .get(&shards[j].0)
                    .is_some_and(|h| h.iter().any(|n| gone.contains(n)))
            })
            .collect();
        if lost.is_empty() {
            continue;
        }
        // Shards placed on a gone node and on a live one need no rebuild.
        let rebuild: Vec<usize> = lost
            .into_iter()
            .filter(|&j| !live_holder(&holders, &shards[j].0, gone))
            .collect();
        if rebuild.is_empty() {
            continue;
        }
        let node = holders[&shards[rebuild[0]].0]
            .iter()
            .find(|n| gone.contains(n))
            .copied()
            .unwrap_or(network.nodes()[0].peer);
        let size = shards[0].1;
        let slots = fetch_k(network, shards, &holders, gone, usize::from(segments.k)).await;
        let have = slots.iter().filter(|s| s.is_some()).count();
        if have < usize::from(segments.k) {
            return Err(ReplaceError::TooFewShards {
                segment: g,
                node,
                have,
                k: usize::from(segments.k),
            });
        }
        let slots = rebuild_all(&coder, slots, size, g).await?;
        let in_segment: HashSet<PeerId> = shards
            .iter()
            .flat_map(|(id, _)| holders.get(id).into_iter().flatten().copied())
            .collect();
        for j in rebuild {
            let (id, _) = shards[j];
            let bytes = slots[j].clone().ok_or_else(|| ReplaceError::Rebuild {
                segment: g,
                reason: format!("shard {j} not rebuilt"),
            })?;
            if ContentId::of(&bytes) != id {
                return Err(ReplaceError::Rebuild {
                    segment: g,
                    reason: format!("rebuilt shard {j} is not {id}"),
                });
            }
            let spare = store_on_spare(network, owner, id, Bytes::from(bytes), &in_segment, gone)
                .await
                .map_err(|reasons| ReplaceError::NoSpare {
                    segment: g,
                    id,
                    reasons,
                })?;
            out.push(PlacedShard {
                node: spare,
                id,
                size,
            });
            moved += 1;
        }
    }
    Ok((out, moved))
}

fn live_holder(
    holders: &HashMap<ContentId, Vec<PeerId>>,
    id: &ContentId,
    gone: &HashSet<PeerId>,
) -> bool {
    holders
        .get(id)
        .is_some_and(|h| h.iter().any(|n| !gone.contains(n)))
}

/// Up to `k` of a segment's shards from live holders, in their slots.
async fn fetch_k(
    network: &Network,
    shards: &[(ContentId, u64)],
    holders: &HashMap<ContentId, Vec<PeerId>>,
    gone: &HashSet<PeerId>,
    k: usize,
) -> Vec<Option<Vec<u8>>> {
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; shards.len()];
    let mut have = 0;
    for (j, (id, size)) in shards.iter().enumerate() {
        if have == k {
            break;
        }
        let live = holders
            .get(id)
            .into_iter()
            .flatten()
            .filter(|n| !gone.contains(n))
            .filter_map(|n| network.index_of(&n.to_bytes()));
        for index in live {
            // The fetch checks the bytes against the id.
            if let Ok(bytes) = network.fetch(index, *id, *size, 0..*size).await {
                slots[j] = Some(bytes);
                have += 1;
                break;
            }
        }
    }
    slots
}

async fn rebuild_all(
    coder: &Arc<ErasureCoder>,
    mut slots: Vec<Option<Vec<u8>>>,
    size: u64,
    segment: usize,
) -> Result<Vec<Option<Vec<u8>>>, ReplaceError> {
    let failed = |reason: String| ReplaceError::Rebuild { segment, reason };
    let size = usize::try_from(size).map_err(|e| failed(e.to_string()))?;
    let coder = coder.clone();
    tokio::task::spawn_blocking(move || coder.reconstruct_all(&mut slots, size).map(|()| slots))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))
}

/// Stores `bytes` on the first node, in the network's order for `id`,
/// that holds nothing of the segment and is not gone; the reasons of the
/// ones that failed otherwise.
async fn store_on_spare(
    network: &Network,
    owner: &SigningKey,
    id: ContentId,
    bytes: Bytes,
    in_segment: &HashSet<PeerId>,
    gone: &HashSet<PeerId>,
) -> Result<PeerId, String> {
    let mut reasons = Vec::new();
    let candidates: Vec<NodeIndex> = network
        .ranked(id.digest(), 1)
        .into_iter()
        .filter(|&i| {
            let peer = network.nodes()[i].peer;
            !in_segment.contains(&peer) && !gone.contains(&peer)
        })
        .collect();
    for i in candidates {
        match network.store(i, id, bytes.clone(), owner).await {
            Ok(_) => return Ok(network.nodes()[i].peer),
            Err(e) => reasons.push(crate::network::reason(network, i, &e)),
        }
    }
    Err(crate::error::summarize(&reasons))
}
