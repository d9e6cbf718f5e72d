//! The JSON shapes of the `/chain/...` HTTP API. The node serializes them,
//! [`ChainClient`](super::ChainClient) (clients, and nodes registering
//! themselves) deserializes the same types, so the two cannot drift apart. Hashes and ids are lowercase hex; addresses are
//! [`Address`]'s hex text.

use cairn_protocol::chain::{
    Address, ChainState, Deal, DealCommitment, DealId, DealRepair, GenesisHash, NamespaceRoot,
    NodeRecord, SignedTx,
};
use serde::{Deserialize, Serialize};

/// `GET /chain/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub chain_id: String,
    /// The chain's name in every signature ([`GenesisHash`]).
    pub genesis_hash: GenesisHash,
    /// Latest committed height (0: only genesis).
    pub height: u64,
    pub epoch: u64,
    /// The current epoch's beacon (its challenges are drawn from it).
    pub beacon: String,
    pub state_root: String,
    pub validators: Vec<Address>,
    /// `None` at height 0.
    pub latest_block_digest: Option<String>,
    pub latest_block_time_ms: Option<u64>,
    pub mempool_txs: usize,
    pub epoch_blocks: u64,
    pub min_fee: u64,
    pub min_stake: u64,
    /// Largest faucet request; `None`: no faucet.
    pub faucet_max: Option<u64>,
    /// The current proof period (the epoch).
    #[serde(default)]
    pub period: u64,
    #[serde(default)]
    pub proof_window_blocks: u64,
    #[serde(default)]
    pub proof_samples: u32,
    /// Stake a node locks per GiB it commits, above `min_stake`.
    #[serde(default)]
    pub stake_per_gib: u64,
    /// How far ahead of the current epoch a deal may start.
    #[serde(default)]
    pub max_start_ahead_epochs: u64,
    #[serde(default)]
    pub max_deal_epochs: u64,
    /// The consensus view whose threshold seed `beacon` is (the view of
    /// the latest block's parent); `None` before the chain has a block
    /// past the genesis one.
    #[serde(default)]
    pub beacon_view: Option<u64>,
}

/// A namespace pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceView {
    pub root: String,
    pub version: u64,
}

impl From<NamespaceRoot> for NamespaceView {
    fn from(n: NamespaceRoot) -> Self {
        Self {
            root: hex::encode(n.root),
            version: n.version,
        }
    }
}

/// `GET /chain/account/{address}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub address: Address,
    pub balance: u64,
    /// The nonce the next transaction applies with.
    pub nonce: u64,
    /// The nonce to sign the next transaction with, counting the account's
    /// transactions pending in this validator's mempool.
    pub next_nonce: u64,
    /// Set when the account is a registered storage node.
    pub node: Option<NodeView>,
    pub namespace: Option<NamespaceView>,
}

/// A registered storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub address: Address,
    /// The libp2p peer id as text, when the registered bytes are one.
    pub peer_id: Option<String>,
    pub peer_id_hex: String,
    pub addresses: Vec<String>,
    pub capacity: u64,
    pub used: u64,
    pub stake: u64,
    /// `active`, `faulty` or `disqualified`.
    pub status: String,
    pub active_deals: u32,
    pub registered_at: u64,
    pub earned: u64,
    #[serde(default)]
    pub proofs_accepted: u64,
    #[serde(default)]
    pub proofs_missed: u64,
    #[serde(default)]
    pub consecutive_misses: u32,
    #[serde(default)]
    pub slashed: u64,
}

impl NodeView {
    pub fn new(address: &Address, n: &NodeRecord) -> Self {
        Self {
            address: *address,
            peer_id: libp2p::PeerId::from_bytes(&n.peer_id)
                .ok()
                .map(|p| p.to_string()),
            peer_id_hex: hex::encode(&n.peer_id),
            addresses: n.addresses.clone(),
            capacity: n.capacity,
            used: n.used,
            stake: n.stake,
            status: n.health().as_str().into(),
            active_deals: n.active_deals,
            registered_at: n.registered_at,
            earned: n.earned,
            proofs_accepted: n.proofs.accepted,
            proofs_missed: n.proofs.missed,
            consecutive_misses: n.proofs.consecutive_misses,
            slashed: n.slashed,
        }
    }
}

/// `GET /chain/nodes`: at most [`MAX_LIST`] nodes, `total` says how many
/// there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList {
    pub total: usize,
    /// In increasing address order, at most [`MAX_LIST`] per answer.
    pub nodes: Vec<NodeView>,
    /// Where the next page starts (`/chain/nodes?after=<next>`); `None` on
    /// the last page.
    #[serde(default)]
    pub next: Option<Address>,
}

/// Longest list one answer carries.
pub const MAX_LIST: usize = 1000;

/// One node's part of a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentView {
    pub node: Address,
    pub root: String,
    pub shards: u32,
    pub bytes: u64,
    /// The node's health, or `orphaned` once it was disqualified.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub proofs_accepted: u64,
    #[serde(default)]
    pub proofs_missed: u64,
    /// Paid to the node from this deal so far.
    #[serde(default)]
    pub paid: u64,
    /// Shards known lost, and their bytes.
    #[serde(default)]
    pub lost_shards: u32,
    #[serde(default)]
    pub lost_bytes: u64,
    /// The first period the commitment is proven and paid in (a holder
    /// added by repair: the period after its claim).
    #[serde(default)]
    pub since: u64,
    /// Shards repair moved away from this commitment.
    #[serde(default)]
    pub moved_shards: u32,
}

/// A moved shard: shard `index` of `segment` is now leaf `leaf` of
/// commitment `commitment`, held by `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedView {
    pub segment: u32,
    pub index: u16,
    pub commitment: u32,
    pub leaf: u32,
    /// The node of that commitment.
    #[serde(default)]
    pub node: Option<Address>,
}

/// An accepted repair claim whose bounty waits for its new holders' proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRepairView {
    pub repairer: Address,
    /// The height of the claim.
    pub claimed_at: u64,
    /// What it is paid once every new holder passed a sampled proof.
    pub bounty: u64,
    pub holders: Vec<PendingHolderView>,
}

/// A new holder of a pending repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHolderView {
    pub node: Option<Address>,
    pub commitment: u32,
    /// Whether a passing proof has sampled its new commitment yet.
    pub sampled: bool,
}

/// A deal's repair: its public repair data and what repair did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRepairView {
    /// The repair data object's content id.
    pub object: String,
    /// The repair tree's root (hex): what a reader computes from a file's
    /// manifest to find its deal (`GET /chain/deals/repair/{root}`).
    #[serde(default)]
    pub root: String,
    pub k: u16,
    pub m: u16,
    pub segments: u32,
    pub moved: Vec<MovedView>,
    /// Claims whose bounty waits for the new holders' proofs.
    pub pending: u32,
    pub done: u32,
    pub failed: u32,
    /// Bounties paid, and to whom (repairers of pending and paid claims are
    /// in the chain's transactions).
    pub paid: u64,
    /// Repairers whose claims wait for their bounty.
    pub pending_repairers: Vec<Address>,
    /// The claims behind `pending`, in claim order.
    #[serde(default)]
    pub pending_claims: Vec<PendingRepairView>,
}

impl DealRepairView {
    /// `commitments`: the deal's, to name each commitment's node.
    pub fn new(r: &DealRepair, commitments: &[DealCommitment]) -> Self {
        let node = |c: u32| commitments.get(c as usize).map(|c| c.node);
        Self {
            object: r.data.object.to_string(),
            root: hex::encode(r.data.root),
            k: r.data.k,
            m: r.data.m,
            segments: r.data.segments,
            moved: r
                .moved
                .iter()
                .map(|m| MovedView {
                    segment: m.segment,
                    index: m.index,
                    commitment: m.commitment,
                    leaf: m.leaf,
                    node: node(m.commitment),
                })
                .collect(),
            pending: r.pending.len() as u32,
            done: r.done,
            failed: r.failed,
            paid: r.paid,
            pending_repairers: r.pending.iter().map(|p| p.repairer).collect(),
            pending_claims: r
                .pending
                .iter()
                .map(|p| PendingRepairView {
                    repairer: p.repairer,
                    claimed_at: p.claimed_at,
                    bounty: p.bounty(),
                    holders: p
                        .holders
                        .iter()
                        .map(|&(c, sampled)| PendingHolderView {
                            node: node(c),
                            commitment: c,
                            sampled,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// `GET /chain/repairs`: open deals with repair data and bytes lost that
/// no repair moved yet (at most [`MAX_LIST`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairList {
    pub height: u64,
    pub total: usize,
    /// Deal ids (hex), in increasing order, at most [`MAX_LIST`] per answer.
    pub deals: Vec<String>,
    /// Where the next page starts (`/chain/repairs?after=<next>`); `None`
    /// on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /chain/repair/{deal}`: the state a repairer needs for one deal
/// ([`ChainState::repair_view`]), postcard-encoded as hex, so the repairer
/// applies the protocol's own rules to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStateView {
    pub height: u64,
    pub state: String,
}

impl RepairStateView {
    pub fn new(state: &ChainState, deal: &DealId) -> Option<Self> {
        let view = state.repair_view(deal)?;
        let bytes = postcard::to_stdvec(&view).ok()?;
        Some(Self {
            height: state.height(),
            state: hex::encode(bytes),
        })
    }

    /// The state, decoded.
    pub fn decode(&self) -> Result<ChainState, String> {
        let bytes = hex::decode(&self.state).map_err(|e| e.to_string())?;
        postcard::from_bytes(&bytes).map_err(|e| e.to_string())
    }
}

/// `GET /chain/deal/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealView {
    pub id: String,
    pub owner: Address,
    pub size: u64,
    pub price_per_epoch: u64,
    pub start_epoch: u64,
    pub end_epoch: u64,
    pub escrow: u64,
    /// Escrow that unproven periods and lost bytes did not pay (for repair).
    #[serde(default)]
    pub withheld: u64,
    pub opened_at: u64,
    pub commitments: Vec<CommitmentView>,
    /// Set once the owner named the deal's public repair data.
    #[serde(default)]
    pub repair: Option<DealRepairView>,
}

impl DealView {
    pub fn new(id: &DealId, d: &Deal, state: &ChainState) -> Self {
        Self {
            id: hex::encode(id.0),
            owner: d.owner,
            size: d.size,
            price_per_epoch: d.price_per_epoch,
            start_epoch: d.start_epoch,
            end_epoch: d.end_epoch,
            escrow: d.escrow,
            withheld: d.withheld,
            opened_at: d.opened_at,
            commitments: d
                .commitments
                .iter()
                .map(|c| CommitmentView {
                    node: c.node,
                    root: hex::encode(c.root),
                    shards: c.shards,
                    bytes: c.bytes,
                    status: if c.orphaned {
                        "orphaned".into()
                    } else {
                        state
                            .node(&c.node)
                            .map_or("deregistered", |n| n.health().as_str())
                            .into()
                    },
                    proofs_accepted: c.proofs_accepted,
                    proofs_missed: c.proofs_missed,
                    paid: c.paid,
                    lost_shards: c.lost.len() as u32,
                    lost_bytes: c.bytes - c.live_bytes(),
                    since: c.since,
                    moved_shards: c.moved.len() as u32,
                })
                .collect(),
            repair: d
                .repair
                .as_ref()
                .map(|r| DealRepairView::new(r, &d.commitments)),
        }
    }
}

/// One commitment of a node's committed space, for its proof worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceView {
    pub deal: String,
    pub root: String,
    pub shards: u64,
    pub bytes: u64,
    /// `(start, size)` of the shards known lost before the window opened.
    pub lost: Vec<(u64, u64)>,
}

/// `GET /chain/proof/{address}`: what the node must prove this period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofTaskView {
    pub height: u64,
    pub period: u64,
    /// The window's seed arrives with block `open`; proofs are accepted in
    /// blocks `open + 1 ..= close`.
    pub open: u64,
    pub close: u64,
    /// Hex, once block `open` is committed.
    pub seed: Option<String>,
    /// Whether this period's proof was already accepted.
    pub proven: bool,
    pub status: String,
    pub spaces: Vec<SpaceView>,
}

impl ProofTaskView {
    pub fn new(state: &ChainState, address: &Address) -> Option<Self> {
        let node = state.node(address)?;
        let period = state.epoch();
        let window =
            cairn_protocol::proofs::challenge::window(state.proof_params(), address, period);
        let spaces = state
            .committed_space(address, period)
            .iter()
            .filter_map(|(id, ci)| {
                let deal = state.deal(id)?;
                let c = deal.commitments.get(*ci)?;
                let space = c.space(window.open);
                Some(SpaceView {
                    deal: hex::encode(id.0),
                    root: hex::encode(c.root),
                    shards: space.tree.count,
                    bytes: space.tree.bytes,
                    lost: space.lost,
                })
            })
            .collect();
        Some(Self {
            height: state.height(),
            period,
            open: window.open,
            close: window.close,
            seed: state
                .beacon_at(window.open)
                .filter(|_| state.height() >= window.open)
                .map(hex::encode),
            proven: node.proven.map(|p| p.0) == Some(period),
            status: node.health().as_str().into(),
            spaces,
        })
    }
}

/// `GET /chain/deals[?owner=ADDR]`: at most [`MAX_LIST`] deals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealList {
    pub total: usize,
    /// In increasing deal id order, at most [`MAX_LIST`] per answer.
    pub deals: Vec<DealView>,
    /// Where the next page starts (`/chain/deals?after=<next>`, with the
    /// same `owner`); `None` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// A transaction's id and what became of it in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResultView {
    pub id: String,
    pub ok: bool,
    /// Why it was refused, when it was.
    pub error: Option<String>,
}

/// `GET /chain/block/{height}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub digest: String,
    pub parent: String,
    pub timestamp_ms: u64,
    pub proposer: String,
    pub state_root: String,
    pub new_epoch: bool,
    pub txs: Vec<TxResultView>,
    /// The consensus view the block was proposed in.
    pub view: u64,
    /// The beacon the block handed the state machine.
    pub beacon: String,
    /// The seed of the parent's view the beacon comes from (`None` for the
    /// block on genesis): what a light client checks against the genesis
    /// group key.
    pub seed: Option<SeedView>,
}

/// A view's threshold seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedView {
    pub view: u64,
    /// The BLS12-381 signature (G1, compressed), hex.
    pub signature: String,
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In this validator's mempool.
    Pending,
    /// In a finalized block (applied or refused: see `ok`).
    Committed,
}

/// A transaction's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxSummary {
    /// The genesis hash of the chain the transaction is for.
    pub genesis: GenesisHash,
    pub signer: Address,
    pub nonce: u64,
    pub fee: u64,
    /// The body as serde renders it, e.g. `{"Transfer":{"to":"…","amount":5}}`.
    pub body: serde_json::Value,
}

impl TxSummary {
    pub fn new(tx: &SignedTx) -> Self {
        Self {
            genesis: tx.tx.genesis,
            signer: tx.tx.signer,
            nonce: tx.tx.nonce,
            fee: tx.tx.fee,
            body: serde_json::to_value(&tx.tx.body).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// `GET /chain/tx/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxView {
    pub id: String,
    pub status: TxStatus,
    /// Set once committed.
    pub height: Option<u64>,
    pub index: Option<u32>,
    pub ok: Option<bool>,
    pub error: Option<String>,
    pub tx: Option<TxSummary>,
}

impl TxView {
    pub fn pending(id: &[u8; 32]) -> Self {
        Self {
            id: hex::encode(id),
            status: TxStatus::Pending,
            height: None,
            index: None,
            ok: None,
            error: None,
            tx: None,
        }
    }
}

/// `POST /chain/tx` as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub tx_hex: String,
}

/// `POST /chain/tx`'s answer (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitView {
    pub id: String,
}

/// Every error answer: the reason, and for a refused transaction a short
/// stable code (the node's `MempoolError::code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The account view of `address` in `state`.
pub fn account_view(state: &ChainState, address: &Address, next_nonce: u64) -> AccountView {
    let account = state.account(address);
    AccountView {
        address: *address,
        balance: account.balance,
        nonce: account.nonce,
        next_nonce: next_nonce.max(account.nonce),
        node: state.node(address).map(|n| NodeView::new(address, n)),
        namespace: state.namespace(address).map(NamespaceView::from),
    }
}
