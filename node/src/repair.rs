//! The repair worker: rebuilds other deals' lost shards, with the same ids,
//! stores them on new holders and claims the bounty (docs/repair.md).
//!
//! Every few blocks it asks the chain which deals have lost bytes no repair
//! moved yet (`/chain/repairs`), and for each:
//!
//! 1. takes the state a repairer needs (`/chain/repair/{deal}`) and applies
//!    the protocol's rules to it ([`cairn_protocol::repair`]): which
//!    segments need repair, which shards are lost, who the new holders are;
//! 2. fetches the deal's public repair data from a node of the deal and
//!    checks it against the chain;
//! 3. per segment, fetches any `k` healthy shards (each verified against its
//!    id) and rebuilds every lost shard at once; a rebuilt shard must hash
//!    to the id the repair data lists, or nothing is claimed;
//! 4. stores the rebuilt shards on the new holders, collects their repair
//!    receipts, and submits `ClaimRepair`.
//!
//! Racing repairers are safe (the chain takes the first valid claim) but
//! waste bandwidth, so workers stagger: each ranks itself among the active
//! nodes for the deal (rendezvous over the deal id) and waits
//! [`STAGGER_BLOCKS`] per rank (`[chain] repair_stagger_blocks`) before it
//! starts; a better-ranked worker's
//! claim usually lands first and the deal leaves the list. A claim the
//! chain refuses is logged and counted, and a deal that failed
//! [`MAX_ATTEMPTS`] times is left alone until its repair state changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_client::chain::api::{NodeView, StatusView};
use cairn_client::chain::ChainClient;
use cairn_client::net::client::{ClientSettings, NodeAddr, ShardClient};
use cairn_client::registry::node_addrs;
use cairn_protocol::chain::{Address, ChainState, DealId, NodeRecord, TxBody};
use cairn_protocol::erasure::ErasureCoder;
use cairn_protocol::repair::{
    assess, choose_holders, columns, placement_seed, prepare, RepairData, RepairPolicy, ShardState,
};
use cairn_protocol::wire::RepairReceiptRequest;
use cairn_protocol::{CodingParams, ContentId};
use serde::Serialize;
use tokio::sync::watch;

use crate::identity::ChainKey;
use crate::metrics::Metrics;

/// How often the worker looks at the chain's height.
const POLL: Duration = Duration::from_secs(1);
/// Blocks between looks at the list of deals to repair.
const EVERY_BLOCKS: u64 = 2;
/// Blocks a worker waits per rank before repairing a deal, by default.
pub const STAGGER_BLOCKS: u64 = 4;
/// Failed attempts on one deal before the worker leaves it alone (until
/// its repair state on the chain changes).
pub const MAX_ATTEMPTS: u32 = 3;
/// Most shards one claim moves: with their two paths each, a claim of
/// default shards stays well under a transaction's 64 KiB.
pub const MAX_CLAIM_SHARDS: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the claim's block before looking whether another
/// claim moved its shards first.
const CLAIM_POLL: Duration = Duration::from_secs(2);

/// The last repair the worker finished (accepted or not).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastRepair {
    pub deal: String,
    pub outcome: String,
    pub error: Option<String>,
    pub shards: u64,
    pub holders: u64,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    /// Time spent rebuilding (fetch and decode), storing with receipts, and
    /// waiting for the claim's block.
    pub rebuild_ms: u64,
    pub transfer_ms: u64,
    pub claim_ms: u64,
    pub height: Option<u64>,
}

/// `repairs` in `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairStats {
    /// Deals looked at (each time).
    pub checked: u64,
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
    pub shards_rebuilt: u64,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    pub last: Option<LastRepair>,
}

pub type SharedRepairStats = Arc<RwLock<RepairStats>>;

/// Why one repair did not happen.
#[derive(Debug, thiserror::Error)]
enum RepairFailure {
    /// The chain refused the claim (another repairer won, say).
    #[error("the chain refused the claim: {0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> RepairFailure {
    RepairFailure::Failed(e.to_string())
}

/// Per deal: when the worker first saw it needing repair, and its failures.
#[derive(Debug, Clone, Default)]
struct DealMemory {
    first_seen: u64,
    attempts: u32,
    /// The deal's moved-shard count at the last failure: a change means
    /// the chain moved on and the deal is worth a new try.
    moved_at_failure: usize,
}

/// The worker; the daemon spawns [`Repairer::run`].
pub struct Repairer {
    chain: ChainClient,
    shards: ShardClient,
    key: Arc<ChainKey>,
    metrics: Arc<Metrics>,
    stats: SharedRepairStats,
    /// Blocks to wait per rank before repairing a deal.
    stagger: u64,
}

impl std::fmt::Debug for Repairer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repairer").finish_non_exhaustive()
    }
}

impl Repairer {
    /// Must be called inside a tokio runtime (it starts a shard client).
    pub fn new(
        api: &[String],
        key: Arc<ChainKey>,
        metrics: Arc<Metrics>,
        stats: SharedRepairStats,
        stagger: u64,
    ) -> Result<Self, String> {
        let chain = ChainClient::new(api, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
        let shards = ShardClient::start(ClientSettings {
            request_timeout: REQUEST_TIMEOUT,
            ..ClientSettings::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(Self {
            chain,
            shards,
            key,
            metrics,
            stats,
            stagger,
        })
    }

    fn update(&self, f: impl FnOnce(&mut RepairStats)) {
        if let Ok(mut s) = self.stats.write() {
            f(&mut s);
        }
    }

    /// Runs until `stop` is set.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut memory: HashMap<String, DealMemory> = HashMap::new();
        let mut looked_at = 0u64;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let Ok(status) = self.chain.status().await else {
                continue;
            };
            if status.height < looked_at.saturating_add(EVERY_BLOCKS) {
                continue;
            }
            looked_at = status.height;
            let Ok(list) = self.chain.repairs().await else {
                continue;
            };
            memory.retain(|id, _| list.deals.contains(id));
            for id in &list.deals {
                let m = memory.entry(id.clone()).or_insert(DealMemory {
                    first_seen: status.height,
                    ..DealMemory::default()
                });
                let mut m2 = m.clone();
                self.consider(&status, id, &mut m2).await;
                memory.insert(id.clone(), m2);
            }
        }
    }

    /// Looks at one deal and repairs it if it is this worker's turn.
    async fn consider(&self, status: &StatusView, id: &str, memory: &mut DealMemory) {
        let state = match self.chain.repair_state(id).await {
            Ok(Some(view)) => match view.decode() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(deal = id, error = %e, "undecodable repair state");
                    return;
                }
            },
            _ => return,
        };
        let Some(deal_id) = parse_deal(id) else {
            return;
        };
        let Some(deal) = state.deal(&deal_id) else {
            return;
        };
        let moved = deal.repair.as_ref().map_or(0, |r| r.moved.len());
        if memory.attempts >= MAX_ATTEMPTS {
            if memory.moved_at_failure == moved {
                return;
            }
            memory.attempts = 0;
        }
        let rank = rank_of(&state, &deal_id, &self.key.address());
        if status.height < memory.first_seen.saturating_add(rank * self.stagger) {
            return;
        }
        self.update(|s| s.checked += 1);
        let mut last = LastRepair {
            deal: id.to_string(),
            ..LastRepair::default()
        };
        let outcome = self.repair(status, &state, deal_id, &mut last).await;
        let label = match &outcome {
            Ok(false) => return, // nothing to do after all
            Ok(true) => "accepted",
            Err(RepairFailure::Refused(_)) => "refused",
            Err(RepairFailure::Failed(_)) => "failed",
        };
        if let Err(e) = &outcome {
            memory.attempts += 1;
            memory.moved_at_failure = moved;
            tracing::warn!(deal = id, error = %e, attempts = memory.attempts, "repair not done");
            last.error = Some(e.to_string());
        } else {
            tracing::info!(
                deal = id,
                shards = last.shards,
                holders = last.holders,
                downloaded = last.downloaded_bytes,
                uploaded = last.uploaded_bytes,
                "repair claim accepted"
            );
        }
        last.outcome = label.into();
        self.metrics
            .repairs
            .get_or_create(&crate::metrics::OutcomeLabel {
                outcome: label.into(),
            })
            .inc();
        self.update(|s| {
            match label {
                "accepted" => {
                    s.accepted += 1;
                    s.shards_rebuilt += last.shards;
                }
                "refused" => s.refused += 1,
                _ => s.failed += 1,
            }
            s.downloaded_bytes += last.downloaded_bytes;
            s.uploaded_bytes += last.uploaded_bytes;
            s.last = Some(last);
        });
    }

    /// One repair of `deal`; `Ok(false)` if nothing needs repair.
    async fn repair(
        &self,
        status: &StatusView,
        state: &ChainState,
        deal_id: DealId,
        last: &mut LastRepair,
    ) -> Result<bool, RepairFailure> {
        let started = Instant::now();
        let deal = state.deal(&deal_id).ok_or_else(|| failed("deal ended"))?;
        let repair = deal
            .repair
            .as_ref()
            .ok_or_else(|| failed("no repair data"))?;
        let nodes = self.chain.nodes().await.map_err(failed)?.nodes;
        let addrs = addresses(&nodes);
        let data = self
            .repair_data(state, &deal_id, repair.data.object, &addrs)
            .await?;
        let params = CodingParams::new(data.k, data.m).map_err(failed)?;
        let k = params.k();
        let statuses =
            assess(state, &deal_id, &data, &RepairPolicy::default_for(params)).map_err(failed)?;
        let cols = columns(&statuses, k);
        if cols.is_empty() {
            return Ok(false);
        }
        // Rebuild every segment that needs repair.
        let coder = Arc::new(ErasureCoder::new(params));
        let mut rebuilt: HashMap<ContentId, Bytes> = HashMap::new();
        for st in &statuses {
            let size = data
                .shard(st.segment, 0)
                .map(|s| s.1)
                .ok_or_else(|| failed("segment without shards"))?;
            let mut slots: Vec<Option<Vec<u8>>> = vec![None; data.n()];
            let mut have = 0;
            for (j, (at, shard_state)) in st.shards.iter().enumerate() {
                if have == k {
                    break;
                }
                if *shard_state != ShardState::Healthy {
                    continue;
                }
                let Some((id, _)) = data.shard(st.segment, j as u16) else {
                    continue;
                };
                let Some(holder) = deal
                    .commitments
                    .get(at.0 as usize)
                    .and_then(|c| addrs.get(&c.node))
                else {
                    continue;
                };
                // The fetch checks the bytes against the id.
                match self.shards.fetch(holder, id, size, 0..size).await {
                    Ok(bytes) => {
                        last.downloaded_bytes += bytes.len() as u64;
                        slots[j] = Some(bytes);
                        have += 1;
                    }
                    Err(e) => {
                        tracing::debug!(segment = st.segment, shard = j, error = %e, "healthy shard unreachable")
                    }
                }
            }
            let lost = st.lost();
            let size_usize = usize::try_from(size).map_err(failed)?;
            let coder = coder.clone();
            let slots = tokio::task::spawn_blocking(move || {
                coder
                    .reconstruct_all(&mut slots, size_usize)
                    .map(|()| slots)
            })
            .await
            .map_err(failed)?
            .map_err(failed)?;
            for j in lost {
                let (id, _) = data
                    .shard(st.segment, j)
                    .ok_or_else(|| failed("lost shard not in the repair data"))?;
                let bytes = slots[usize::from(j)]
                    .clone()
                    .ok_or_else(|| failed("shard not rebuilt"))?;
                // Systematic, deterministic code: the same bytes, the same id.
                if ContentId::of(&bytes) != id {
                    return Err(failed(format!(
                        "rebuilt shard {j} of segment {} is not {id}",
                        st.segment
                    )));
                }
                rebuilt.insert(id, Bytes::from(bytes));
            }
        }
        last.rebuild_ms = started.elapsed().as_millis() as u64;

        // New holders by the protocol's placement, then their receipts.
        let transfer = Instant::now();
        let bytes: Vec<u64> = cols
            .iter()
            .map(|c| {
                c.iter()
                    .filter_map(|&(g, j)| data.shard(g, j).map(|s| s.1))
                    .sum()
            })
            .collect();
        let seed = placement_seed(&deal_id, repair.moved.len());
        let holders =
            choose_holders(state, &deal_id, &seed, &bytes, subnet_domain).map_err(failed)?;
        let mut claim = prepare(state, &deal_id, &data, &cols, &holders).map_err(failed)?;
        let me = self.key.address();
        for (h, holder) in holders.iter().enumerate() {
            let node = addrs
                .get(holder)
                .ok_or_else(|| failed(format!("new holder {holder} has no address")))?;
            let leaves = claim.leaves_of(h);
            for (id, _) in &leaves {
                let body = rebuilt
                    .get(id)
                    .cloned()
                    .ok_or_else(|| failed("a claimed shard was not rebuilt"))?;
                last.uploaded_bytes += body.len() as u64;
                self.shards
                    .store(node, *id, body, None, self.key.signing_key())
                    .await
                    .map_err(failed)?;
            }
            let c = claim
                .commitment(h)
                .ok_or_else(|| failed("a holder takes no shard"))?;
            let request = RepairReceiptRequest {
                genesis: status.genesis_hash,
                repairer: me,
                deal: deal_id,
                root: c.root,
                shards: c.shards,
                bytes: c.bytes,
            };
            let sig = self
                .shards
                .repair_receipt(node, &request, &leaves)
                .await
                .map_err(failed)?;
            claim.holders[h].receipt = sig;
        }
        last.shards = claim.shards.len() as u64;
        last.holders = claim.holders.len() as u64;
        last.transfer_ms = transfer.elapsed().as_millis() as u64;
        self.metrics
            .repair_downloaded_bytes
            .inc_by(last.downloaded_bytes);
        self.metrics
            .repair_uploaded_bytes
            .inc_by(last.uploaded_bytes);

        let claimed = Instant::now();
        let probe = claim
            .shards
            .first()
            .map(|m| (m.segment, m.index, m.from, m.leaf))
            .ok_or_else(|| failed("a claim without shards"))?;
        let nonce = crate::prover::nonce_with_fee(&self.chain, &self.key, status)
            .await
            .ok_or_else(|| failed("cannot pay the claim's fee"))?;
        let tx = self.key.sign_tx(
            &status.genesis_hash,
            nonce,
            status.min_fee,
            TxBody::ClaimRepair(claim),
        );
        let id = self.chain.submit(&tx).await.map_err(failed)?;
        let view = self.wait_for_claim(&id, &deal_id, probe).await?;
        last.claim_ms = claimed.elapsed().as_millis() as u64;
        last.height = view.height;
        if view.ok != Some(true) {
            return Err(RepairFailure::Refused(
                view.error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
        Ok(true)
    }

    /// Waits for the claim's block. A claim another repairer's beat never
    /// gets one (the mempool drops a transaction that no longer applies):
    /// once the chain shows the claim's first shard moved elsewhere, the
    /// claim is refused as already repaired.
    async fn wait_for_claim(
        &self,
        id: &[u8; 32],
        deal: &DealId,
        (segment, index, from, leaf): (u32, u16, u32, u32),
    ) -> Result<cairn_client::chain::api::TxView, RepairFailure> {
        let deadline = Instant::now() + COMMIT_TIMEOUT;
        loop {
            match self.chain.wait_for_tx(id, CLAIM_POLL).await {
                Ok(view) => return Ok(view),
                Err(cairn_client::chain::ChainError::Timeout { .. }) => {}
                Err(e) => return Err(failed(e)),
            }
            let moved_elsewhere = match self.chain.repair_state(&hex::encode(deal.0)).await {
                Ok(Some(view)) => view.decode().ok().is_some_and(|state| {
                    state
                        .deal(deal)
                        .and_then(|d| d.repair)
                        .and_then(|r| r.moved_to(segment, index).copied())
                        .is_some_and(|m| (m.commitment, m.leaf) != (from, leaf))
                }),
                Ok(None) => return Err(failed("the deal ended before the claim's block")),
                Err(_) => false,
            };
            if moved_elsewhere {
                // Unless it was this very claim that moved it.
                if let Ok(Some(view)) = self.chain.tx(id).await {
                    if view.status == cairn_client::chain::api::TxStatus::Committed {
                        return Ok(view);
                    }
                }
                return Err(RepairFailure::Refused(
                    cairn_protocol::chain::Rejection::AlreadyRepaired { segment, index }
                        .to_string(),
                ));
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "no block took the claim within {} s",
                    COMMIT_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// The deal's repair data, from the first node of the deal that has it,
    /// checked against the chain.
    async fn repair_data(
        &self,
        state: &ChainState,
        deal_id: &DealId,
        object: ContentId,
        addrs: &HashMap<Address, NodeAddr>,
    ) -> Result<RepairData, RepairFailure> {
        let deal = state.deal(deal_id).ok_or_else(|| failed("deal ended"))?;
        let mut reasons = Vec::new();
        for c in &deal.commitments {
            let Some(node) = addrs.get(&c.node) else {
                continue;
            };
            let size = match self.shards.has(node, vec![object]).await {
                Ok(sizes) => match sizes.first().copied().flatten() {
                    Some(size) => size,
                    None => continue,
                },
                Err(e) => {
                    reasons.push(e.to_string());
                    continue;
                }
            };
            if size > cairn_protocol::repair::data::MAX_REPAIR_DATA_BYTES as u64 {
                continue;
            }
            match self.shards.fetch(node, object, size, 0..size).await {
                Ok(bytes) => {
                    let data = RepairData::decode(&bytes).map_err(failed)?;
                    data.check_against(&deal).map_err(failed)?;
                    return Ok(data);
                }
                Err(e) => reasons.push(e.to_string()),
            }
        }
        Err(failed(format!(
            "no node of the deal served its repair data ({})",
            reasons.join("; ")
        )))
    }
}

fn parse_deal(id: &str) -> Option<DealId> {
    Some(DealId(hex::decode(id).ok()?.try_into().ok()?))
}

/// Dialable active nodes by chain address.
fn addresses(nodes: &[NodeView]) -> HashMap<Address, NodeAddr> {
    let dialable = node_addrs(nodes);
    nodes
        .iter()
        .filter_map(|v| {
            let peer = v.peer_id.as_ref()?;
            let addr = dialable.iter().find(|a| a.peer.to_string() == *peer)?;
            Some((v.address, addr.clone()))
        })
        .collect()
}

/// This node's turn for `deal` among the active nodes: 0 for the node that
/// ranks first by rendezvous over the deal id.
fn rank_of(state: &ChainState, deal: &DealId, me: &Address) -> u64 {
    let score = |a: &Address| {
        let mut h = blake3::Hasher::new_derive_key("cairn 2026-12 v1 repairer rank");
        h.update(&deal.0);
        h.update(&a.0);
        *h.finalize().as_bytes()
    };
    let mine = score(me);
    state
        .nodes()
        .filter(|(a, n)| {
            *a != me && n.health() == cairn_protocol::proofs::accounting::Health::Active
        })
        .filter(|(a, _)| score(a) > mine)
        .count() as u64
}

/// A node's failure domain for placement: its first address's /24 (IPv4)
/// or /48 (IPv6), as the client's upload placement uses.
fn subnet_domain(_: &Address, n: &NodeRecord) -> u64 {
    use libp2p::multiaddr::Protocol;
    let mut h = blake3::Hasher::new();
    let first = n
        .addresses
        .first()
        .and_then(|a| a.parse::<libp2p::Multiaddr>().ok());
    match first.as_ref().and_then(|a| a.iter().next()) {
        Some(Protocol::Ip4(ip)) => {
            h.update(b"ip4");
            h.update(&ip.octets()[..3]);
        }
        Some(Protocol::Ip6(ip)) => {
            h.update(b"ip6");
            h.update(&ip.octets()[..6]);
        }
        _ => {
            h.update(n.addresses.first().map_or(&[][..], |a| a.as_bytes()));
        }
    }
    let d = h.finalize();
    u64::from_le_bytes(d.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deal_ids_parse_from_hex_only() {
        assert_eq!(parse_deal(&hex::encode([7u8; 32])), Some(DealId([7; 32])));
        assert_eq!(parse_deal("zz"), None);
        assert_eq!(parse_deal(&hex::encode([7u8; 31])), None);
    }

    #[test]
    fn nodes_on_one_subnet_share_a_domain() {
        let record = |addr: &str| NodeRecord {
            peer_id: Vec::new(),
            addresses: vec![addr.into()],
            capacity: 0,
            used: 0,
            stake: 0,
            active_deals: 0,
            registered_at: 0,
            earned: 0,
            proofs: Default::default(),
            proven: None,
            slashed: 0,
        };
        let a = Address([1; 32]);
        let d = |s: &str| subnet_domain(&a, &record(s));
        assert_eq!(d("/ip4/10.0.0.1/tcp/1"), d("/ip4/10.0.0.9/tcp/2"));
        assert_ne!(d("/ip4/10.0.0.1/tcp/1"), d("/ip4/10.0.1.1/tcp/1"));
    }
}
