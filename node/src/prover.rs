//! The proof worker: every period, the node proves on the chain that it
//! still holds what it signed receipts for.
//!
//! Goals:
//!
//! * once the node's window of a period opens (its seed arrives with block
//!   `open`, [`cairn_protocol::proofs::challenge::window`]), build the proof
//!   from the node's own disk (the leaf lists kept at receipt time, the shard
//!   files) and get it into a block before `close`;
//! * before the window opens, declare shards the node knows it lost (the
//!   scrubber quarantined them, or they vanished) with `DeclareLost`: a loss
//!   found by a challenge fails the whole period, a declared one only stops
//!   the pay for those bytes;
//! * keep the node's view of the chain's facts current for the receipt
//!   terms ([`crate::terms`]);
//! * mark the shards of deals the chain opened with this node's commitment
//!   as paid, so the store's GC of unpaid shards spares them
//!   ([`ShardStore::settle`]);
//! * show what happens: `proofs` in `/status` ([`ProofStats`]), and
//!   `cairn_node_proofs{outcome}` and `cairn_node_proof_seconds` in
//!   `/metrics`.
//!
//! Non-goals: proving for other nodes, repairing (a later worker), and
//! guessing the seed early (it is not knowable). A failure to reach the
//! chain is logged and retried at the next poll; it never stops the node.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_protocol::chain::merkle::{self, Committed};
use cairn_protocol::chain::{Address, DealId, LostLeaf, TxBody, MAX_LOST_LEAVES};
use cairn_protocol::proofs::{self, Held, Space};
use cairn_protocol::ContentId;
use serde::Serialize;
use tokio::sync::watch;

use crate::identity::ChainKey;
use crate::metrics::Metrics;
use crate::store::ShardStore;
use crate::terms::{ChainFacts, TermsPolicy};
use cairn_client::chain::api::{ProofTaskView, StatusView, TxView};
use cairn_client::chain::ChainClient;

/// How often the worker looks at the chain: well under a block, so a
/// window of a few blocks is never missed for want of looking.
const POLL: Duration = Duration::from_millis(400);
/// One request to a validator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a submitted proof may take to be committed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Leaf lists of deals that never appeared on the chain are dropped after this.
const UNOPENED_GRACE_SECS: u64 = 3600;
/// How often kept deals are looked up to mark their shards paid.
const SETTLE_EVERY: Duration = Duration::from_secs(5);
/// A kept deal not open yet, or open without its repair data (the owner
/// names the data after the deal opens), is looked up again this often.
const RESETTLE_EVERY: Duration = Duration::from_secs(10);
/// Deals looked up per settling pass.
const SETTLE_BATCH: usize = 64;

/// The last proof the worker submitted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastProof {
    pub period: u64,
    pub height: Option<u64>,
    pub accepted: bool,
    /// The chain's reason, when it was refused.
    pub error: Option<String>,
    /// From the window's opening block being seen to the proof's block.
    pub latency_ms: u64,
}

/// `proofs` in `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProofStats {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Periods with bytes to prove that ended without an accepted proof.
    pub missed: u64,
    /// Shards declared lost.
    pub declared: u64,
    /// The current period and this node's window in it.
    pub period: Option<u64>,
    pub window: Option<(u64, u64)>,
    /// The chain's view of the node: `active`, `faulty`, `disqualified`.
    pub health: Option<String>,
    /// Paid to the node from deal escrow, as the chain says.
    pub earned: u64,
    pub last: Option<LastProof>,
}

/// Shared with the status page.
pub type SharedProofStats = Arc<RwLock<ProofStats>>;

/// The worker; the daemon spawns [`Prover::run`].
#[derive(Debug)]
pub struct Prover {
    client: ChainClient,
    store: Arc<ShardStore>,
    key: Arc<ChainKey>,
    metrics: Arc<Metrics>,
    stats: SharedProofStats,
    terms: Arc<TermsPolicy>,
}

/// What the worker remembers between polls.
#[derive(Debug, Default)]
struct Memory {
    /// The last task seen.
    last: Option<ProofTaskView>,
    /// Periods whose proof was submitted (accepted or refused).
    handled: BTreeSet<u64>,
    /// Periods whose losses were declared.
    declared: BTreeSet<u64>,
    /// When the current window's seed was first seen.
    seed_seen: Option<(u64, Instant)>,
    /// The last settling pass.
    settled_at: Option<Instant>,
    /// Kept deals looked up: when, and whether nothing is left to settle
    /// (the deal is open here and its repair data is named).
    settled: HashMap<DealId, (Instant, bool)>,
}

impl Prover {
    pub fn new(
        api: &[String],
        store: Arc<ShardStore>,
        key: Arc<ChainKey>,
        metrics: Arc<Metrics>,
        stats: SharedProofStats,
        terms: Arc<TermsPolicy>,
    ) -> Result<Self, String> {
        let client = ChainClient::new(api, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            store,
            key,
            metrics,
            stats,
            terms,
        })
    }

    fn update(&self, f: impl FnOnce(&mut ProofStats)) {
        if let Ok(mut s) = self.stats.write() {
            f(&mut s);
        }
    }

    /// Runs until `stop` is set.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut memory = Memory::default();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(POLL) => {}
            }
            if let Err(reason) = self.poll(&mut memory).await {
                tracing::debug!(%reason, "proof worker: chain not reachable");
            }
        }
    }

    async fn poll(&self, memory: &mut Memory) -> Result<(), String> {
        let me = self.key.address();
        let status = self.client.status().await.map_err(|e| e.to_string())?;
        self.terms.learn(ChainFacts {
            genesis: status.genesis_hash,
            epoch: status.epoch,
            max_start_ahead: status.max_start_ahead_epochs,
        });
        self.settle_paid(memory).await;
        let Some(task) = self
            .client
            .proof_task(&me)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(()); // not registered (yet)
        };
        self.count_missed(memory, &task);
        self.update(|s| {
            s.period = Some(task.period);
            s.window = Some((task.open, task.close));
            s.health = Some(task.status.clone());
        });
        if task.spaces.is_empty() || task.proven || task.status == "disqualified" {
            return self.refresh_earnings(&me).await;
        }
        if task.height < task.open && memory.declared.insert(task.period) {
            self.declare_losses(&status, &task).await;
        }
        let Some(seed) = task.seed.as_deref().and_then(parse_hex32) else {
            return Ok(());
        };
        if task.height >= task.close || memory.handled.contains(&task.period) {
            return Ok(());
        }
        let seen = match memory.seed_seen {
            Some((period, at)) if period == task.period => at,
            _ => {
                let now = Instant::now();
                memory.seed_seen = Some((task.period, now));
                now
            }
        };
        memory.handled.insert(task.period);
        while memory.handled.len() > 16 {
            memory.handled.pop_first();
            memory.declared.pop_first();
        }
        self.prove(&status, &task, seed, seen).await;
        self.refresh_earnings(&me).await
    }

    /// A period that ended with work and no accepted proof is a miss (the
    /// chain counts it too); the worker notices at the first poll after.
    fn count_missed(&self, memory: &mut Memory, task: &ProofTaskView) {
        if let Some(last) = &memory.last {
            let ended = task.period > last.period;
            if ended && !last.spaces.is_empty() && !last.proven && last.status != "disqualified" {
                let submitted = memory.handled.contains(&last.period);
                tracing::warn!(
                    period = last.period,
                    submitted,
                    "period ended without an accepted proof"
                );
                self.metrics.proof("missed", None);
                self.update(|s| s.missed += 1);
            }
        }
        memory.last = Some(task.clone());
    }

    /// Marks the shards of kept deals that the chain has opened with this
    /// node's commitment (the kept list's root) as paid, with the repair
    /// data object the deal names.
    async fn settle_paid(&self, memory: &mut Memory) {
        if self.store.unpaid_limits().is_none()
            || memory
                .settled_at
                .is_some_and(|t| t.elapsed() < SETTLE_EVERY)
        {
            return;
        }
        memory.settled_at = Some(Instant::now());
        let store = self.store.clone();
        let Ok(Ok(kept)) = tokio::task::spawn_blocking(move || store.kept_deals()).await else {
            return;
        };
        let kept: BTreeSet<DealId> = kept.into_iter().map(|(d, _)| d).collect();
        memory.settled.retain(|d, _| kept.contains(d));
        let mut due: Vec<(Option<Instant>, DealId)> = kept
            .into_iter()
            .filter_map(|d| match memory.settled.get(&d) {
                None => Some((None, d)),
                Some((_, true)) => None,
                Some((at, false)) => (at.elapsed() >= RESETTLE_EVERY).then_some((Some(*at), d)),
            })
            .collect();
        due.sort();
        let me = self.key.address();
        for (_, deal) in due.into_iter().take(SETTLE_BATCH) {
            let Ok(view) = self.client.deal(&hex::encode(deal.0)).await else {
                continue;
            };
            let Some(view) = view else {
                memory.settled.insert(deal, (Instant::now(), false));
                continue;
            };
            let repair = view
                .repair
                .as_ref()
                .and_then(|r| r.object.parse::<ContentId>().ok());
            let store = self.store.clone();
            let roots: Vec<String> = view
                .commitments
                .iter()
                .filter(|c| c.node == me)
                .map(|c| c.root.clone())
                .collect();
            let settled = tokio::task::spawn_blocking(move || {
                let Some(kept) = store.leaves(&deal)? else {
                    return Ok(None);
                };
                let root = merkle::root(&kept.shards).map(hex::encode);
                if !roots.iter().any(|r| Some(r) == root.as_ref()) {
                    return Ok(None);
                }
                Ok::<_, crate::store::StoreError>(Some(
                    store.settle(&deal)? + store.settle_shards(repair.iter())?,
                ))
            })
            .await;
            match settled {
                Ok(Ok(Some(n))) => {
                    if n > 0 {
                        tracing::info!(deal = %deal, shards = n, "a deal on the chain pays for these shards now");
                    }
                    memory
                        .settled
                        .insert(deal, (Instant::now(), repair.is_some()));
                }
                Ok(Ok(None)) => {
                    memory.settled.insert(deal, (Instant::now(), false));
                }
                Ok(Err(e)) => {
                    tracing::error!(deal = %deal, error = %e, "cannot mark a deal's shards paid")
                }
                Err(_) => {}
            }
        }
    }

    async fn refresh_earnings(&self, me: &Address) -> Result<(), String> {
        if let Ok(Some(node)) = self.client.node(me).await {
            self.update(|s| s.earned = node.earned);
        }
        Ok(())
    }

    /// Builds, signs and submits this period's proof, and waits for it.
    async fn prove(
        &self,
        status: &StatusView,
        task: &ProofTaskView,
        seed: [u8; 32],
        seen: Instant,
    ) {
        let (store, node, period) = (self.store.clone(), self.key.address(), task.period);
        let spaces = task.spaces.clone();
        let params = proofs::ProofParams {
            period_blocks: status.epoch_blocks,
            window_blocks: status.proof_window_blocks,
            samples: status.proof_samples,
            ..proofs::ProofParams::default()
        };
        let built = tokio::task::spawn_blocking(move || {
            build_proof(&store, &params, node, period, &seed, &spaces)
        })
        .await
        .map_err(|e| format!("proof task: {e}"))
        .and_then(|r| r);
        let proof = match built {
            Ok(proof) => proof,
            Err(reason) => {
                tracing::error!(period, %reason, "cannot build this period's proof");
                self.metrics.proof("unbuildable", None);
                return;
            }
        };
        let lost = proof
            .samples
            .iter()
            .filter(|s| matches!(s.answer, proofs::Answer::Lost))
            .count();
        if lost > 0 {
            tracing::warn!(
                period,
                lost,
                "challenged chunks are missing here: this period fails"
            );
        }
        let Some(nonce) = self.nonce_with_fee(status).await else {
            return;
        };
        let tx = self.key.sign_tx(
            &status.genesis_hash,
            nonce,
            status.min_fee,
            TxBody::ProveStorage(proof),
        );
        self.update(|s| s.submitted += 1);
        let outcome = self.commit(&tx).await;
        let latency = seen.elapsed();
        let last = match outcome {
            Ok(view) if view.ok == Some(true) => {
                tracing::info!(
                    period,
                    height = view.height,
                    latency_ms = latency.as_millis() as u64,
                    "storage proof accepted"
                );
                self.metrics.proof("accepted", Some(latency.as_secs_f64()));
                self.update(|s| s.accepted += 1);
                LastProof {
                    period,
                    height: view.height,
                    accepted: true,
                    error: None,
                    latency_ms: latency.as_millis() as u64,
                }
            }
            Ok(view) => {
                let error = view.error.unwrap_or_else(|| "no reason given".into());
                tracing::error!(period, %error, "storage proof refused by the chain");
                self.metrics.proof("rejected", None);
                self.update(|s| s.rejected += 1);
                LastProof {
                    period,
                    height: view.height,
                    accepted: false,
                    error: Some(error),
                    latency_ms: latency.as_millis() as u64,
                }
            }
            Err(error) => {
                tracing::error!(period, %error, "storage proof not committed");
                self.metrics.proof("rejected", None);
                self.update(|s| s.rejected += 1);
                LastProof {
                    period,
                    height: None,
                    accepted: false,
                    error: Some(error),
                    latency_ms: latency.as_millis() as u64,
                }
            }
        };
        self.update(|s| s.last = Some(last));
    }

    /// Submits `tx` and waits for the block that applied or refused it.
    async fn commit(&self, tx: &cairn_protocol::chain::SignedTx) -> Result<TxView, String> {
        let id = self.client.submit(tx).await.map_err(|e| e.to_string())?;
        self.client
            .wait_for_tx(&id, COMMIT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    async fn nonce_with_fee(&self, status: &StatusView) -> Option<u64> {
        nonce_with_fee(&self.client, &self.key, status).await
    }

    /// Declares the shards this node no longer has (no metadata: the
    /// scrubber quarantined them or they vanished) before the seed is known,
    /// and drops leaf lists of deals that never opened.
    async fn declare_losses(&self, status: &StatusView, task: &ProofTaskView) {
        let store = self.store.clone();
        let spaces = task.spaces.clone();
        let found = tokio::task::spawn_blocking(move || missing_leaves(&store, &spaces))
            .await
            .unwrap_or_default();
        self.forget_unopened(task).await;
        for chunk in found.chunks(MAX_LOST_LEAVES) {
            let Some(nonce) = self.nonce_with_fee(status).await else {
                return;
            };
            let tx = self.key.sign_tx(
                &status.genesis_hash,
                nonce,
                status.min_fee,
                TxBody::DeclareLost(chunk.to_vec()),
            );
            let result = self.commit(&tx).await;
            match result {
                Ok(view) if view.ok == Some(true) => {
                    tracing::warn!(shards = chunk.len(), "declared lost shards on the chain");
                    self.update(|s| s.declared += chunk.len() as u64);
                }
                Ok(view) => tracing::error!(error = ?view.error, "DeclareLost refused"),
                Err(error) => tracing::warn!(%error, "DeclareLost not committed"),
            }
        }
    }

    /// Leaf lists of deals that are not in the committed space and were
    /// signed long ago (the deal never opened, or ended) are dropped, so a
    /// client asking for receipts it never uses cannot fill the store.
    async fn forget_unopened(&self, task: &ProofTaskView) {
        let active: BTreeSet<String> = task.spaces.iter().map(|s| s.deal.clone()).collect();
        let Ok(kept) = self.store.kept_deals() else {
            return;
        };
        let now = crate::store::now();
        for (deal, signed_at) in kept.into_iter().take(256) {
            let id = hex::encode(deal.0);
            if active.contains(&id) || now.saturating_sub(signed_at) < UNOPENED_GRACE_SECS {
                continue;
            }
            // Still open (but not active this period)? Keep it.
            if !matches!(self.client.deal(&id).await, Ok(None)) {
                continue;
            }
            if self.store.forget_leaves(&deal).is_ok() {
                tracing::debug!(deal = %id, "dropped the leaf list of a deal not on the chain");
            }
        }
    }
}

/// The account's next nonce, once it can pay a fee. On a chain with a
/// faucet (a devnet) an account short of the fee asks the faucet for a
/// supply of fees first; elsewhere the operator funds it (the node's
/// earnings do, once its first proofs are paid).
pub(crate) async fn nonce_with_fee(
    client: &ChainClient,
    key: &ChainKey,
    status: &StatusView,
) -> Option<u64> {
    let me = key.address();
    let account = match client.account(&me).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "account lookup failed; retrying next poll");
            return None;
        }
    };
    if account.balance >= status.min_fee {
        return Some(account.next_nonce);
    }
    let Some(max) = status.faucet_max else {
        tracing::error!(account = %me, balance = account.balance, fee = status.min_fee, "the node's account cannot pay a proof's fee: send it funds");
        return None;
    };
    let amount = status.min_fee.saturating_mul(1_000).clamp(1, max);
    let tx = key.sign_tx(
        &status.genesis_hash,
        account.next_nonce,
        0,
        TxBody::Faucet { amount },
    );
    let committed = match client.submit(&tx).await {
        Ok(id) => client.wait_for_tx(&id, COMMIT_TIMEOUT).await.ok(),
        Err(_) => None,
    };
    match committed {
        Some(view) if view.ok == Some(true) => {
            tracing::info!(amount, "took fees for proofs from the faucet");
            Some(account.next_nonce + 1)
        }
        _ => None,
    }
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// One commitment to prove: its deal, its space, the kept leaf list.
type HeldSpace = (DealId, Space, Vec<(ContentId, u64)>);

/// The spaces of a task with the node's kept leaf lists.
fn held_spaces(
    store: &ShardStore,
    spaces: &[cairn_client::chain::api::SpaceView],
) -> Result<Vec<HeldSpace>, String> {
    spaces
        .iter()
        .map(|s| {
            let deal = DealId(parse_hex32(&s.deal).ok_or("a deal id is not 32 hex bytes")?);
            let root = parse_hex32(&s.root).ok_or("a root is not 32 hex bytes")?;
            let kept = store
                .leaves(&deal)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no leaf list kept for deal {deal}"))?;
            let space = Space {
                tree: Committed {
                    root,
                    count: s.shards,
                    bytes: s.bytes,
                },
                lost: s.lost.clone(),
            };
            Ok((deal, space, kept.shards))
        })
        .collect()
}

/// Builds the proof from the store (blocking: it reads shard files).
fn build_proof(
    store: &ShardStore,
    params: &proofs::ProofParams,
    node: Address,
    period: u64,
    seed: &[u8; 32],
    spaces: &[cairn_client::chain::api::SpaceView],
) -> Result<proofs::StorageProof, String> {
    let held = held_spaces(store, spaces)?;
    let refs: Vec<Held<'_>> = held
        .iter()
        .map(|(_, space, shards)| Held { space, shards })
        .collect();
    proofs::build(params, node, period, seed, &refs, |id| {
        store.read_all(id).ok().flatten()
    })
    .map_err(|e| e.to_string())
}

/// Leaves of the task's spaces that are not known lost on the chain and
/// whose shard this node no longer has.
fn missing_leaves(
    store: &ShardStore,
    spaces: &[cairn_client::chain::api::SpaceView],
) -> Vec<LostLeaf> {
    let Ok(held) = held_spaces(store, spaces) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (deal, space, shards) in &held {
        let mut start = 0u64;
        for (leaf, (id, size)) in shards.iter().enumerate() {
            let known = space.lost.iter().any(|l| l.0 == start);
            start += size;
            if known || !matches!(store.meta(id), Ok(None)) {
                continue;
            }
            if let Some(path) = merkle::prove(shards, leaf) {
                out.push(LostLeaf {
                    deal: *deal,
                    leaf: leaf as u32,
                    shard: *id,
                    size: *size,
                    path,
                });
            }
        }
    }
    out
}
