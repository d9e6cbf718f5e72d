//! Storage deals for an upload: what each node commits to, and its signed
//! acceptance receipt.
//!
//! A deal on the chain names, per node, a Merkle root over the (shard id,
//! size) pairs the node holds for it ([`cairn_protocol::chain::merkle`]),
//! signed by the node. This module turns an upload's placement
//! ([`PutReport::placement`](crate::PutReport::placement)) into those
//! per-node groups and the deal's terms ([`plan`]), then asks every node
//! for its receipt ([`collect_receipts`]). [`open`] does it all: plan,
//! receipts, the owner's signed `OpenDeal` transaction with the escrow,
//! and waiting until a finalized block applied it.
//!
//! ```text
//! placement ─plan─▶ DealPlan { terms, per-node groups } ─collect_receipts─▶ Vec<Commitment>
//!           ─▶ OpenDeal tx (signed, nonce fixed before the receipts) ─▶ committed deal
//! ```
//!
//! The price follows the size: `price_per_gib_epoch` per GiB stored (all
//! shards and manifest copies, i.e. the expanded size), rounded up, at
//! least 1 per epoch; the escrow is the price times the deal's epochs, as
//! in Sia's file contracts where the renter locks the whole payment up
//! front.
//!
//! A node signs only for shards it holds, of those sizes, stored with the
//! deal's owner among their owners (the upload stores them with the
//! account's address), so receipts must be asked for with the account that
//! uploaded.

use std::collections::BTreeMap;

use crate::net::client::ClientError;
use crate::net::peer_address;
use std::time::Duration;

use crate::chain::{ChainClient, ChainError};
use cairn_protocol::chain::{
    merkle, Address, Commitment, DealId, DealTerms, GenesisHash, Transaction, TxBody,
    MAX_COMMITMENTS,
};
use cairn_protocol::wire::{ReceiptRequest, MAX_RECEIPT_SHARDS};
use cairn_protocol::ContentId;
use futures::stream::{self, StreamExt};
use libp2p::PeerId;

use crate::error::summarize;
use crate::network::{reason, Network};
use crate::repair_data::{self, PublishedRepairData};
use crate::upload::PlacedShard;

/// Why a deal could not be planned or its receipts collected.
#[derive(Debug, thiserror::Error)]
pub enum DealError {
    #[error("nothing was placed: a deal needs at least one shard")]
    Empty,
    #[error("the deal must end after it starts (epochs {start}..{end})")]
    Epochs { start: u64, end: u64 },
    #[error("node {node} holds {shards} shards of the upload; one receipt covers at most {MAX_RECEIPT_SHARDS}: split the file into several deals")]
    TooManyShards { node: PeerId, shards: usize },
    #[error("the upload spans {nodes} nodes; a deal has at most {MAX_COMMITMENTS}")]
    TooManyNodes { nodes: usize },
    #[error("the deal's size overflows")]
    Overflow,
    #[error("node {0} has no chain address (its peer id does not embed an ed25519 key)")]
    NoAddress(PeerId),
    #[error("node {0} is not in this client's network")]
    UnknownNode(PeerId),
    #[error("the chain refused the deal: {0}")]
    Refused(String),
    #[error("repair data: {0}")]
    RepairData(String),
    /// The deal opened (its escrow is locked), but its repair data was not
    /// published: opening again would open a second deal.
    #[error("deal {deal} is open, but its repair data was not published: {reason}")]
    RepairUnpublished { deal: String, reason: String },
    #[error("{0}")]
    Chain(#[from] ChainError),
    #[error("moving shards off nodes that gave no receipt: {0}")]
    Replace(String),
    #[error("{failed} of {nodes} nodes gave no receipt ({reasons}); a deal needs them all")]
    Receipts {
        failed: usize,
        nodes: usize,
        reasons: String,
        /// Each failure, for a caller that wants to act per node.
        errors: Vec<(PeerId, ClientError)>,
    },
}

/// One node's part of a deal, before it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShards {
    pub node: PeerId,
    /// The node's chain account (the key its peer id embeds).
    pub address: Address,
    /// What the node holds for the deal, each shard once, ordered by id:
    /// the leaves of its commitment.
    pub shards: Vec<(ContentId, u64)>,
    /// [`merkle::root`] over `shards`.
    pub root: [u8; 32],
    /// Sum of the sizes in `shards`.
    pub bytes: u64,
}

/// A deal ready for receipts: its terms (no commitments yet) and each
/// node's part, ordered by chain address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealPlan {
    /// `size` is the sum of every node's bytes; `commitments` is empty.
    pub terms: DealTerms,
    pub nodes: Vec<NodeShards>,
}

/// Groups an upload's placement by node and states the deal's terms.
/// Pure: the same placement, in any order, gives the same plan. An id
/// listed twice for one node counts once: the node stores it once.
pub fn plan(
    placement: &[PlacedShard],
    price_per_epoch: u64,
    start_epoch: u64,
    end_epoch: u64,
) -> Result<DealPlan, DealError> {
    if placement.is_empty() {
        return Err(DealError::Empty);
    }
    if end_epoch <= start_epoch {
        return Err(DealError::Epochs {
            start: start_epoch,
            end: end_epoch,
        });
    }
    // Keyed by id, so a repeat on one node collapses and the leaves come
    // out in id order.
    let mut by_node: BTreeMap<PeerId, BTreeMap<ContentId, u64>> = BTreeMap::new();
    for p in placement {
        by_node.entry(p.node).or_default().insert(p.id, p.size);
    }
    if by_node.len() > MAX_COMMITMENTS {
        return Err(DealError::TooManyNodes {
            nodes: by_node.len(),
        });
    }
    let mut nodes = Vec::with_capacity(by_node.len());
    let mut size = 0u64;
    for (node, held) in by_node {
        if held.len() > MAX_RECEIPT_SHARDS as usize {
            return Err(DealError::TooManyShards {
                node,
                shards: held.len(),
            });
        }
        let address = peer_address(&node).ok_or(DealError::NoAddress(node))?;
        let shards: Vec<(ContentId, u64)> = held.into_iter().collect();
        let bytes = shards
            .iter()
            .try_fold(0u64, |sum, (_, s)| sum.checked_add(*s))
            .ok_or(DealError::Overflow)?;
        size = size.checked_add(bytes).ok_or(DealError::Overflow)?;
        // Not empty: every node in the map has at least one shard.
        let root = merkle::root(&shards).ok_or(DealError::Empty)?;
        nodes.push(NodeShards {
            node,
            address,
            shards,
            root,
            bytes,
        });
    }
    // The chain sees addresses, not peer ids: order by what it sees.
    nodes.sort_by_key(|n| n.address);
    Ok(DealPlan {
        terms: DealTerms {
            size,
            price_per_epoch,
            start_epoch,
            end_epoch,
            commitments: Vec::new(),
        },
        nodes,
    })
}

impl DealPlan {
    /// What node part `i` is asked to sign for a deal of `owner` opened
    /// with `owner_nonce` on the chain `genesis` names.
    pub fn receipt_request(
        &self,
        i: usize,
        genesis: &GenesisHash,
        owner: Address,
        owner_nonce: u64,
    ) -> Option<ReceiptRequest> {
        let n = self.nodes.get(i)?;
        Some(ReceiptRequest {
            genesis: *genesis,
            owner,
            owner_nonce,
            size: self.terms.size,
            price_per_epoch: self.terms.price_per_epoch,
            start_epoch: self.terms.start_epoch,
            end_epoch: self.terms.end_epoch,
            root: n.root,
            shards: n.shards.len() as u32,
            bytes: n.bytes,
        })
    }
}

/// How long a deal is and what it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealOptions {
    /// Epochs paid for, from the epoch after the current one.
    pub epochs: u64,
    /// Paid per GiB stored and epoch (rounded up; at least 1 per epoch).
    pub price_per_gib_epoch: u64,
    /// How long to wait for the transaction to be committed.
    pub commit_timeout: Duration,
}

impl Default for DealOptions {
    fn default() -> Self {
        Self {
            epochs: 1000,
            price_per_gib_epoch: 1000,
            commit_timeout: Duration::from_secs(60),
        }
    }
}

/// A deal the chain opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenedDeal {
    /// Hex, as `/chain/deal/{id}` and `cairn deals` show it.
    pub id: String,
    /// The `OpenDeal` transaction's id (hex).
    pub tx: String,
    /// The block that applied it.
    pub height: u64,
    pub nodes: usize,
    pub size_bytes: u64,
    pub price_per_epoch: u64,
    pub start_epoch: u64,
    pub end_epoch: u64,
    pub escrow: u64,
    /// The deal's public repair data, once stored and named on the chain.
    pub repair: Option<PublishedRepairData>,
    /// Shards rebuilt and moved off nodes that took them but then gave no
    /// receipt (unreachable), before the deal opened ([`crate::replace`]).
    pub moved_off: usize,
}

/// The price per epoch of a deal over `size` bytes.
pub fn price_per_epoch(size: u64, price_per_gib_epoch: u64) -> u64 {
    let gib = 1u128 << 30;
    let price = (u128::from(size) * u128::from(price_per_gib_epoch)).div_ceil(gib);
    u64::try_from(price).unwrap_or(u64::MAX).max(1)
}

/// The shape of an upload's code, for its repair data: `k`, `m` and every
/// segment's shards `(id, size)` in index order
/// ([`PutReport::segment_shards`](crate::PutReport::segment_shards)).
#[derive(Debug, Clone, Copy)]
pub struct Segments<'a> {
    pub k: u16,
    pub m: u16,
    pub shards: &'a [Vec<(ContentId, u64)>],
}

/// Opens a deal for an upload's `placement`, owned by `key`'s account:
/// plans it, collects every node's receipt for the account's next nonce,
/// signs and submits the `OpenDeal` transaction, and waits until a
/// finalized block applied it. With `segments`, then publishes the deal's
/// repair data ([`crate::repair_data`]) and names it on the chain.
pub async fn open(
    network: &Network,
    chain: &ChainClient,
    key: &ed25519_dalek::SigningKey,
    placement: &[PlacedShard],
    segments: Option<Segments<'_>>,
    options: &DealOptions,
) -> Result<OpenedDeal, DealError> {
    let owner = Address::of(&key.verifying_key());
    let mut placement = placement.to_vec();
    let mut moved_off = 0;
    let mut retried = false;
    let (status, nonce, plan, repair, commitments) = loop {
        let status = chain.status().await?;
        let nonce = chain.account(&owner).await?.next_nonce;
        // A deal starts after the current epoch (the chain refuses the
        // current one); one more epoch of slack lets the receipts and the
        // transaction take a whole epoch without the deal going stale.
        let start = status.epoch.saturating_add(2);
        let end = start.saturating_add(options.epochs.max(1));
        // The price depends on the planned size (a shard placed twice on
        // one node counts once), and receipts sign the price: set it first.
        let mut plan = plan(&placement, 1, start, end)?;
        plan.terms.price_per_epoch = price_per_epoch(plan.terms.size, options.price_per_gib_epoch);
        // Built before the deal opens: a placement it cannot describe is
        // refused before any escrow is locked.
        let repair = segments
            .map(|s| repair_data::build(s.k, s.m, &plan, s.shards))
            .transpose()?;
        match collect_receipts(network, &plan, &status.genesis_hash, owner, nonce, 8).await {
            Ok(commitments) => break (status, nonce, plan, repair, commitments),
            Err(DealError::Receipts { errors, .. })
                if !retried && segments.is_some() && errors.iter().all(|(_, e)| silent(e)) =>
            {
                let segments = segments.unwrap_or_else(|| unreachable!("checked above"));
                // Nodes that went silent after taking shards: move what
                // they hold to others and plan again without them, once
                // (the epoch may have moved on meanwhile: plan afresh).
                let gone = errors.iter().map(|(peer, _)| *peer).collect();
                let (moved_placement, moved) =
                    crate::replace::move_off(network, key, &placement, segments, &gone)
                        .await
                        .map_err(|e| DealError::Replace(e.to_string()))?;
                placement = moved_placement;
                moved_off = moved;
                retried = true;
            }
            Err(e) => return Err(e),
        }
    };
    let mut terms = plan.terms.clone();
    terms.commitments = commitments;
    let nodes = terms.commitments.len();
    let (size_bytes, price_per_epoch, start_epoch, end_epoch) = (
        terms.size,
        terms.price_per_epoch,
        terms.start_epoch,
        terms.end_epoch,
    );
    let tx = Transaction {
        genesis: status.genesis_hash,
        signer: owner,
        nonce,
        fee: status.min_fee,
        body: TxBody::OpenDeal(terms),
    }
    .sign(key);
    let id = chain.submit(&tx).await?;
    let view = chain.wait_for_tx(&id, options.commit_timeout).await?;
    if view.ok != Some(true) {
        return Err(DealError::Refused(
            view.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    let deal = DealId::new(&owner, nonce);
    let repair = match repair {
        Some(data) => Some(
            repair_data::publish(
                network,
                chain,
                key,
                &status.genesis_hash,
                status.min_fee,
                nonce + 1,
                deal,
                &plan,
                &data,
                options,
            )
            .await
            .map_err(|e| DealError::RepairUnpublished {
                deal: hex::encode(deal.0),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };
    Ok(OpenedDeal {
        moved_off,
        id: hex::encode(deal.0),
        tx: hex::encode(id),
        height: view.height.unwrap_or_default(),
        nodes,
        size_bytes,
        price_per_epoch,
        start_epoch,
        end_epoch,
        escrow: price_per_epoch.saturating_mul(end_epoch - start_epoch),
        repair,
    })
}

/// Whether a receipt failed because the node could not be reached or did
/// not answer (not because it refused).
fn silent(e: &ClientError) -> bool {
    matches!(e, ClientError::Failed { .. })
}

/// Asks every node of `plan` for its receipt, at most `parallelism` at a
/// time, and returns the commitments in the plan's order, each signature
/// already checked against its node's address. The deal is to be opened by
/// `owner` (the account that stored the shards) with its transaction nonce
/// `owner_nonce` on the chain `genesis` names: a receipt is good for that
/// transaction only. Fails, naming every node that did not sign, unless
/// all did.
pub async fn collect_receipts(
    network: &Network,
    plan: &DealPlan,
    genesis: &GenesisHash,
    owner: Address,
    owner_nonce: u64,
    parallelism: usize,
) -> Result<Vec<Commitment>, DealError> {
    let ask = |i: usize| async move {
        let part = &plan.nodes[i];
        let index = network
            .index_of(&part.node.to_bytes())
            .ok_or(DealError::UnknownNode(part.node))?;
        let request = plan
            .receipt_request(i, genesis, owner, owner_nonce)
            .ok_or(DealError::UnknownNode(part.node))?;
        let result = network
            .receipt(index, &request, &part.shards)
            .await
            .map(|sig| request.commitment(part.address, sig))
            .map_err(|e| (index, e));
        Ok::<_, DealError>(result)
    };
    let results: Vec<_> = stream::iter(0..plan.nodes.len())
        .map(ask)
        .buffered(parallelism.max(1))
        .collect()
        .await;
    let mut commitments = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    let mut reasons = Vec::new();
    for result in results {
        match result? {
            Ok(c) => commitments.push(c),
            Err((index, e)) => {
                reasons.push(reason(network, index, &e));
                errors.push((network.nodes()[index].peer, e));
            }
        }
    }
    if !errors.is_empty() {
        return Err(DealError::Receipts {
            failed: errors.len(),
            nodes: plan.nodes.len(),
            reasons: summarize(&reasons),
            errors,
        });
    }
    Ok(commitments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::{HashMap, HashSet};

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n)
            .map(|_| {
                libp2p::identity::Keypair::generate_ed25519()
                    .public()
                    .to_peer_id()
            })
            .collect()
    }

    /// Random placements: shards of random sizes on random nodes, some
    /// placed on several nodes, some twice on one node.
    #[test]
    fn groups_match_what_each_node_holds() {
        let nodes = peers(12);
        for seed in 0..200u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let count = rng.gen_range(1..300);
            let mut placement = Vec::new();
            for i in 0..count {
                let id = ContentId::of(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat());
                let size = rng.gen_range(1..1_000_000u64);
                for _ in 0..rng.gen_range(1..4) {
                    let node = nodes[rng.gen_range(0..nodes.len())];
                    placement.push(PlacedShard { node, id, size });
                }
            }
            let plan = plan(&placement, 7, 2, 9).unwrap();

            // What each node holds, straight from the placement.
            let mut held: HashMap<PeerId, HashSet<(ContentId, u64)>> = HashMap::new();
            for p in &placement {
                held.entry(p.node).or_default().insert((p.id, p.size));
            }
            assert_eq!(plan.nodes.len(), held.len(), "seed {seed}");
            let mut total = 0;
            for part in &plan.nodes {
                let want = &held[&part.node];
                let got: HashSet<_> = part.shards.iter().copied().collect();
                assert_eq!(got.len(), part.shards.len(), "a shard counted twice");
                assert_eq!(&got, want, "seed {seed}");
                assert_eq!(Some(part.root), merkle::root(&part.shards));
                assert_eq!(part.bytes, want.iter().map(|s| s.1).sum::<u64>());
                assert_eq!(Some(part.address), peer_address(&part.node));
                total += part.bytes;
            }
            assert_eq!(plan.terms.size, total);
            assert_eq!(
                (
                    plan.terms.price_per_epoch,
                    plan.terms.start_epoch,
                    plan.terms.end_epoch
                ),
                (7, 2, 9)
            );
            assert!(plan.terms.commitments.is_empty());
            assert!(plan.nodes.windows(2).all(|w| w[0].address < w[1].address));
            // Every request carries its node's commitment and the terms.
            for (i, part) in plan.nodes.iter().enumerate() {
                let r = plan
                    .receipt_request(i, &GenesisHash([4; 32]), Address([1; 32]), 3)
                    .unwrap();
                assert_eq!((r.root, r.bytes, r.size), (part.root, part.bytes, total));
                assert_eq!(r.shards as usize, part.shards.len());
            }
            // The order of the placement does not matter.
            let mut shuffled = placement.clone();
            shuffled.reverse();
            assert_eq!(super::plan(&shuffled, 7, 2, 9).unwrap(), plan);
        }
    }

    #[test]
    fn the_price_follows_the_size_rounded_up() {
        let gib = 1u64 << 30;
        assert_eq!(price_per_epoch(gib, 1000), 1000);
        assert_eq!(price_per_epoch(gib + 1, 1000), 1001);
        assert_eq!(price_per_epoch(gib / 2, 1000), 500);
        assert_eq!(price_per_epoch(1, 1000), 1);
        assert_eq!(price_per_epoch(0, 1000), 1);
        assert_eq!(price_per_epoch(10 * gib, 0), 1);
        assert_eq!(price_per_epoch(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn impossible_deals_are_refused() {
        let nodes = peers(1);
        let one = [PlacedShard {
            node: nodes[0],
            id: ContentId::of(b"a"),
            size: 10,
        }];
        assert!(matches!(plan(&[], 1, 0, 1), Err(DealError::Empty)));
        assert!(matches!(plan(&one, 1, 5, 5), Err(DealError::Epochs { .. })));
        let huge: Vec<_> = (0..2u8)
            .map(|i| PlacedShard {
                node: nodes[0],
                id: ContentId::of(&[i]),
                size: u64::MAX,
            })
            .collect();
        assert!(matches!(plan(&huge, 1, 0, 1), Err(DealError::Overflow)));
        let many: Vec<_> = peers(MAX_COMMITMENTS + 1)
            .into_iter()
            .map(|node| PlacedShard {
                node,
                id: ContentId::of(b"a"),
                size: 1,
            })
            .collect();
        assert!(matches!(
            plan(&many, 1, 0, 1),
            Err(DealError::TooManyNodes { .. })
        ));
        let crowded: Vec<_> = (0..=MAX_RECEIPT_SHARDS)
            .map(|i| PlacedShard {
                node: nodes[0],
                id: ContentId::of(&i.to_le_bytes()),
                size: 1,
            })
            .collect();
        assert!(matches!(
            plan(&crowded, 1, 0, 1),
            Err(DealError::TooManyShards { .. })
        ));
    }
}
