//! A file's deal as the chain sees it: which deal holds the file, and where
//! repair moved its shards.
//!
//! A capability names a manifest, not a deal (the deal opens after the
//! manifest is sealed). The deal is found from the manifest alone: its
//! segments' `(shard id, size)` give the repair tree root
//! ([`cairn_protocol::repair::data::tree_root`]) the deal's public repair
//! data names, and `GET /chain/deals/repair/{root}` lists the deals that
//! name it. Each deal's `repair.moved` says, per (segment, shard index),
//! which commitment (so which node) holds a repaired shard now; the
//! manifest's placement hint still names the node it was first put on.
//!
//! The chain's answer is a hint like the manifest's: every shard fetched is
//! still checked against the manifest's id, so a lying validator costs
//! time, never correctness. Entries that do not fit the manifest (a
//! segment or index out of range, a commitment the deal does not have,
//! other parameters) are ignored.

use std::collections::HashMap;

use cairn_protocol::repair::data::{manifest_segments, tree_root};
use cairn_protocol::Manifest;

use crate::chain::api::DealView;
use crate::chain::{ChainClient, ChainError};
use crate::network::{Network, NodeIndex};

/// Where the chain says repair moved a file's shards.
#[derive(Debug, Clone, Default)]
pub(crate) struct MovedShards {
    /// By (segment, shard index): the nodes holding it now, as far as this
    /// client's network knows them.
    at: HashMap<(u64, usize), Vec<NodeIndex>>,
    /// Why the chain was not asked or did not answer, if so.
    pub error: Option<String>,
}

impl MovedShards {
    /// Nothing known from the chain.
    pub fn unknown(error: Option<String>) -> Self {
        Self {
            error,
            ..Self::default()
        }
    }

    /// The nodes the chain says hold shard `j` of segment `s` now.
    pub fn holders(&self, s: u64, j: usize) -> &[NodeIndex] {
        self.at.get(&(s, j)).map(Vec::as_slice).unwrap_or_default()
    }

    /// Shards the chain placed on a node this client knows.
    pub fn known(&self) -> usize {
        self.at.len()
    }

    /// From the deals the chain lists for the file's repair root.
    pub fn from_deals(network: &Network, manifest: &Manifest, deals: &[DealView]) -> Self {
        let n = manifest.params().n();
        let mut at: HashMap<(u64, usize), Vec<NodeIndex>> = HashMap::new();
        for d in deals.iter().filter(|d| fits(d, manifest)) {
            let Some(repair) = &d.repair else { continue };
            for m in &repair.moved {
                let (s, j) = (u64::from(m.segment), usize::from(m.index));
                if s >= manifest.segment_count() || j >= n {
                    continue;
                }
                let Some(node) = d
                    .commitments
                    .get(m.commitment as usize)
                    .and_then(|c| network.index_of_address(&c.node))
                else {
                    continue;
                };
                let nodes = at.entry((s, j)).or_default();
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        Self { at, error: None }
    }
}

/// Whether a deal's repair data has the file's parameters.
fn fits(d: &DealView, manifest: &Manifest) -> bool {
    let p = manifest.params();
    d.repair.as_ref().is_some_and(|r| {
        usize::from(r.k) == p.k()
            && usize::from(r.k) + usize::from(r.m) == p.n()
            && u64::from(r.segments) == manifest.segment_count()
    })
}

/// The open deals of the file `manifest` describes, as the chain lists
/// them by the file's repair tree root.
pub(crate) async fn deals_of(
    chain: &ChainClient,
    manifest: &Manifest,
) -> Result<Vec<DealView>, ChainError> {
    let Some(root) = tree_root(&manifest_segments(manifest)) else {
        return Ok(Vec::new());
    };
    let list = chain.deals_by_repair_root(&root).await?;
    let root = hex::encode(root);
    Ok(list
        .deals
        .into_iter()
        .filter(|d| d.repair.as_ref().is_some_and(|r| r.root == root))
        .collect())
}

/// Where the chain says repair moved the file's shards; with no chain, or
/// one that cannot be reached, nothing (the download then relies on the
/// manifest's hint and asks every node).
pub(crate) async fn moved_shards(
    chain: Option<&ChainClient>,
    network: &Network,
    manifest: &Manifest,
) -> MovedShards {
    let Some(chain) = chain else {
        return MovedShards::unknown(None);
    };
    match deals_of(chain, manifest).await {
        Ok(deals) => MovedShards::from_deals(network, manifest, &deals),
        Err(e) => {
            tracing::warn!(error = %e, "the chain cannot say where the file's shards are; using the manifest's hint");
            MovedShards::unknown(Some(e.to_string()))
        }
    }
}
