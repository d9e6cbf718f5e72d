//! Publishing a deal's public repair data, so that any node can rebuild
//! its lost shards while the owner is offline (`docs/repair.md`).
//!
//! Once the deal is open the owner builds the repair data
//! ([`cairn_protocol::repair::RepairData`]: k, m, each commitment's leaves
//! as its node signed them, which leaf holds which shard of each segment),
//! stores the encoded object on every node of the deal, addressed by its
//! content id like any shard, and names it on the chain with
//! `SetRepairData`. It holds no key, no name, and nothing about the file
//! that the shard sizes do not already show.
//!
//! The object cannot be a leaf of the deal's own commitments: the data
//! lists those commitments, so its id would depend on itself. The nodes
//! keep it like any stored object of the owner (no expiry).

use bytes::Bytes;
use cairn_protocol::chain::{Address, DealId, GenesisHash, Transaction, TxBody};
use cairn_protocol::repair::RepairData;
use cairn_protocol::ContentId;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::chain::ChainClient;
use crate::deal::{DealError, DealOptions, DealPlan};
use crate::error::summarize;
use crate::network::{reason, Network};

/// What publishing the repair data did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedRepairData {
    /// The object's content id (hex), as the chain's deal names it.
    pub object: String,
    pub bytes: u64,
    /// Nodes that hold it.
    pub copies: usize,
    /// The `SetRepairData` transaction's id (hex).
    pub tx: String,
}

/// Builds the repair data of a deal opened from `plan` (its commitments in
/// the plan's order, as the chain keeps them) over `segments` (each
/// segment's `(id, size)` shards in index order).
pub fn build(
    k: u16,
    m: u16,
    plan: &DealPlan,
    segments: &[Vec<(ContentId, u64)>],
) -> Result<RepairData, DealError> {
    let commitments = plan.nodes.iter().map(|n| n.shards.clone()).collect();
    RepairData::build(k, m, commitments, segments).map_err(|e| DealError::RepairData(e.to_string()))
}

/// Stores `data` on every node of `plan` and names it on the chain for
/// `deal` with a transaction of `key`'s account at `nonce`. Fails unless
/// at least one node stored it and the chain applied the transaction.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    network: &Network,
    chain: &ChainClient,
    key: &ed25519_dalek::SigningKey,
    genesis: &GenesisHash,
    fee: u64,
    nonce: u64,
    deal: DealId,
    plan: &DealPlan,
    data: &RepairData,
    options: &DealOptions,
) -> Result<PublishedRepairData, DealError> {
    let owner = Address::of(&key.verifying_key());
    let encoded = Bytes::from(data.encode());
    let id = ContentId::of(&encoded);
    let mut stores: FuturesUnordered<_> = plan
        .nodes
        .iter()
        .filter_map(|n| network.index_of(&n.node.to_bytes()))
        .map(|i| {
            let encoded = encoded.clone();
            async move { (i, network.store(i, id, encoded, key).await) }
        })
        .collect();
    let mut copies = 0;
    let mut reasons = Vec::new();
    while let Some((i, r)) = stores.next().await {
        match r {
            Ok(_) => copies += 1,
            Err(e) => reasons.push(reason(network, i, &e)),
        }
    }
    if copies == 0 {
        return Err(DealError::RepairData(format!(
            "no node stored the repair data ({})",
            summarize(&reasons)
        )));
    }
    let tx = Transaction {
        genesis: *genesis,
        signer: owner,
        nonce,
        fee,
        body: TxBody::SetRepairData {
            deal,
            repair: data.reference(),
        },
    }
    .sign(key);
    let tx_id = chain.submit(&tx).await?;
    let view = chain.wait_for_tx(&tx_id, options.commit_timeout).await?;
    if view.ok != Some(true) {
        return Err(DealError::RepairData(format!(
            "the chain refused the repair data: {}",
            view.error.unwrap_or_else(|| "no reason given".into())
        )));
    }
    Ok(PublishedRepairData {
        object: id.to_string(),
        bytes: encoded.len() as u64,
        copies,
        tx: hex::encode(tx_id),
    })
}

/// Fetches deal `deal`'s repair data from the first node of the deal that
/// serves it, verified against its id (by the fetch) and checked against
/// the deal as the chain has it.
pub async fn fetch(
    network: &Network,
    deal: &cairn_protocol::chain::Deal,
) -> Result<RepairData, DealError> {
    let repair = deal
        .repair
        .as_ref()
        .ok_or_else(|| DealError::RepairData("the deal names no repair data".into()))?;
    let object = repair.data.object;
    let mut reasons = Vec::new();
    for i in deal
        .commitments
        .iter()
        .filter_map(|c| network.index_of_address(&c.node))
    {
        let size = match network.has(i, &[object]).await {
            Ok(sizes) => match sizes.first().copied().flatten() {
                Some(size) => size,
                None => continue,
            },
            Err(e) => {
                reasons.push(reason(network, i, &e));
                continue;
            }
        };
        if size > cairn_protocol::repair::data::MAX_REPAIR_DATA_BYTES as u64 {
            reasons.push(format!("{} serves {size} bytes", network.nodes()[i].peer));
            continue;
        }
        match network.fetch(i, object, size, 0..size).await {
            // The bytes are the object's (the fetch checked its id); one
            // that is not this deal's data is the owner's lie, not the node's.
            Ok(bytes) => {
                return RepairData::decode(&bytes)
                    .and_then(|d| d.check_against(deal).map(|()| d))
                    .map_err(|e| DealError::RepairData(e.to_string()))
            }
            Err(e) => reasons.push(reason(network, i, &e)),
        }
    }
    Err(DealError::RepairData(format!(
        "no node of the deal served its repair data {object} ({})",
        summarize(&reasons)
    )))
}
