//! The `/chain/...` routes: the chain's state, blocks and transactions as
//! JSON, and `POST /chain/tx` into the mempool. Mounted on the node's HTTP
//! endpoint only when it runs a ledger. See docs/chain.md.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_protocol::chain::{Address, Deal, DealId, MAX_TX_BYTES};
use serde::Deserialize;

use cairn_client::chain::api::{
    account_view, BlockView, DealList, DealView, ErrorView, NodeList, NodeView, ProofTaskView,
    RepairList, RepairStateView, SeedView, StatusView, SubmitRequest, SubmitView, TxResultView,
    TxStatus, TxSummary, TxView, MAX_LIST,
};
use cairn_protocol::chain::{Rejection, SignedTx};

use super::{BlockRecord, Ledger, LedgerError, TxRecord};

/// Largest request body: a hex-encoded largest transaction in JSON. A raw
/// body is held to [`MAX_TX_BYTES`] separately.
const MAX_BODY: usize = 2 * MAX_TX_BYTES + 1024;

/// The chain routes, with their state applied, to merge into the node's
/// router.
pub fn routes(ledger: Arc<Ledger>) -> Router {
    Router::new()
        .route("/chain/status", get(status))
        .route("/chain/account/{address}", get(account))
        .route("/chain/nodes", get(nodes))
        .route("/chain/node/{address}", get(node))
        .route("/chain/proof/{address}", get(proof_task))
        .route("/chain/deal/{id}", get(deal))
        .route("/chain/deals", get(deals))
        .route("/chain/deals/repair/{root}", get(deals_by_repair_root))
        .route("/chain/repairs", get(repairs))
        .route("/chain/repair/{id}", get(repair_state))
        .route("/chain/block/{height}", get(block))
        .route(
            "/chain/tx",
            axum::routing::post(submit).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .route("/chain/tx/{id}", get(tx))
        .with_state(ledger)
}

/// An error answer: a status and a JSON [`ErrorView`].
#[derive(Debug)]
struct ApiError(StatusCode, ErrorView);

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self(
            status,
            ErrorView {
                error: error.into(),
                code: None,
            },
        )
    }

    fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        tracing::error!(error = %e, "ledger read failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn parse_address(text: &str) -> Result<Address, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "'{text}' is not an address (expected 64 hex digits)"
        ))
    })
}

fn parse_id(what: &str, text: &str) -> Result<[u8; 32], ApiError> {
    let bad =
        || ApiError::bad_request(format!("'{text}' is not a {what} (expected 64 hex digits)"));
    let bytes = hex::decode(text).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// RocksDB reads may touch the disk: off the async threads with them.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ledger task: {e}"),
        )
    })?
}

async fn status(State(ledger): State<Arc<Ledger>>) -> ApiResult<StatusView> {
    let state = ledger.store().state();
    let height = state.height();
    let latest = if height == 0 {
        None
    } else {
        let l = ledger.clone();
        blocking(move || Ok(l.store().block(height)?)).await?
    };
    let params = ledger.params();
    // The latest block's beacon is what `state.beacon()` reports.
    let beacon_view = latest
        .as_ref()
        .and_then(|b| b.beacon.seed.as_ref().map(|s| s.view));
    Ok(Json(StatusView {
        chain_id: state.chain_id().to_string(),
        genesis_hash: state.genesis_hash(),
        height,
        epoch: state.epoch(),
        beacon: hex::encode(state.beacon()),
        state_root: hex::encode(state.root()),
        validators: state.validators().to_vec(),
        latest_block_digest: latest.as_ref().map(|b| hex::encode(b.digest)),
        latest_block_time_ms: latest.as_ref().map(|b| b.timestamp_ms),
        mempool_txs: ledger.mempool_len(),
        epoch_blocks: params.epoch_blocks,
        min_fee: params.min_fee,
        min_stake: params.min_stake,
        faucet_max: params.faucet_max,
        period: state.epoch(),
        proof_window_blocks: state.proof_params().window_blocks,
        proof_samples: state.proof_params().samples,
        stake_per_gib: state.proof_params().stake_per_gib,
        max_start_ahead_epochs: state.max_start_ahead(),
        max_deal_epochs: params.max_deal_epochs,
        beacon_view,
    }))
}

async fn proof_task(
    State(ledger): State<Arc<Ledger>>,
    Path(address): Path<String>,
) -> ApiResult<ProofTaskView> {
    let address = parse_address(&address)?;
    let state = ledger.store().state();
    ProofTaskView::new(&state, &address)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("{address} is not a registered node")))
}

async fn account(
    State(ledger): State<Arc<Ledger>>,
    Path(address): Path<String>,
) -> ApiResult<cairn_client::chain::api::AccountView> {
    let address = parse_address(&address)?;
    let state = ledger.store().state();
    let next = ledger.next_nonce(&address);
    Ok(Json(account_view(&state, &address, next)))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    /// The last address of the previous page.
    after: Option<String>,
    /// At most [`MAX_LIST`].
    limit: Option<usize>,
}

/// Up to `limit` items, and the key of the last one when more follow
/// (where the next page starts).
fn page<K, T>(items: impl Iterator<Item = (K, T)>, limit: usize) -> (Vec<T>, Option<K>) {
    let mut out = Vec::new();
    let mut last = None;
    for (key, item) in items {
        if out.len() == limit {
            return (out, last);
        }
        out.push(item);
        last = Some(key);
    }
    (out, None)
}

fn page_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST)
}

/// One page of the registry, in address order: every node is reachable by
/// following `next`, so no number of registrations (say, a flood of low
/// addresses) can hide the rest from a client.
async fn nodes(
    State(ledger): State<Arc<Ledger>>,
    Query(query): Query<PageQuery>,
) -> ApiResult<NodeList> {
    let after = query.after.as_deref().map(parse_address).transpose()?;
    let state = ledger.store().state();
    let (nodes, next) = page(
        state
            .nodes_after(after.as_ref())
            .map(|(a, n)| (*a, NodeView::new(a, n))),
        page_limit(query.limit),
    );
    Ok(Json(NodeList {
        total: state.nodes().count(),
        nodes,
        next,
    }))
}

async fn node(
    State(ledger): State<Arc<Ledger>>,
    Path(address): Path<String>,
) -> ApiResult<NodeView> {
    let address = parse_address(&address)?;
    let state = ledger.store().state();
    let node = state
        .node(&address)
        .ok_or_else(|| ApiError::not_found(format!("{address} is not a registered node")))?;
    Ok(Json(NodeView::new(&address, node)))
}

async fn deal(State(ledger): State<Arc<Ledger>>, Path(id): Path<String>) -> ApiResult<DealView> {
    let id = DealId(parse_id("deal id", &id)?);
    let state = ledger.store().state();
    let deal = state.deal(&id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no open deal {} (never opened, or ended)",
            hex::encode(id.0)
        ))
    })?;
    Ok(Json(DealView::new(&id, &deal, &state)))
}

/// Deals a repairer should look at: repair data named, and bytes lost
/// (a disqualified node's, or declared or found lost) that no repair moved;
/// paged by deal id like `/chain/deals`.
async fn repairs(
    State(ledger): State<Arc<Ledger>>,
    Query(query): Query<PageQuery>,
) -> ApiResult<RepairList> {
    let after = parse_deal_after(query.after.as_deref())?;
    let state = ledger.store().state();
    let wanted = |after: Option<&DealId>| {
        state
            .deals_after(after)
            .filter(|(_, d)| {
                d.repair.is_some() && d.commitments.iter().any(|c| c.unrepaired_bytes() > 0)
            })
            .map(|(id, _)| (*id, hex::encode(id.0)))
    };
    let (deals, next) = page(wanted(after.as_ref()), page_limit(query.limit));
    Ok(Json(RepairList {
        height: state.height(),
        total: wanted(None).count(),
        deals,
        next: next.map(|id| hex::encode(id.0)),
    }))
}

fn parse_deal_after(after: Option<&str>) -> Result<Option<DealId>, ApiError> {
    after
        .map(|text| parse_id("deal id", text).map(DealId))
        .transpose()
}

async fn repair_state(
    State(ledger): State<Arc<Ledger>>,
    Path(id): Path<String>,
) -> ApiResult<RepairStateView> {
    let id = DealId(parse_id("deal id", &id)?);
    let state = ledger.store().state();
    RepairStateView::new(&state, &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no open deal {}", hex::encode(id.0))))
}

#[derive(Debug, Deserialize)]
struct DealsQuery {
    owner: Option<String>,
    /// The last deal id of the previous page.
    after: Option<String>,
    /// At most [`MAX_LIST`].
    limit: Option<usize>,
}

/// One page of open deals (all, or one owner's), in deal id order.
async fn deals(
    State(ledger): State<Arc<Ledger>>,
    Query(query): Query<DealsQuery>,
) -> ApiResult<DealList> {
    let owner = query.owner.as_deref().map(parse_address).transpose()?;
    let after = parse_deal_after(query.after.as_deref())?;
    let state = ledger.store().state();
    let keep = move |d: &Deal| owner.is_none_or(|o| d.owner == o);
    let (deals, next) = page(
        state
            .deals_where(after.as_ref(), keep)
            .map(|(id, d)| (*id, DealView::new(id, &d, &state))),
        page_limit(query.limit),
    );
    Ok(Json(DealList {
        total: state.count_deals(keep),
        deals,
        next: next.map(|id| hex::encode(id.0)),
    }))
}

/// Open deals whose repair data has this repair tree root: a reader
/// computes the root from a file's manifest and so finds the file's deal
/// (and where repair moved its shards) without being told its id.
async fn deals_by_repair_root(
    State(ledger): State<Arc<Ledger>>,
    Path(root): Path<String>,
) -> ApiResult<DealList> {
    let root = parse_id("repair tree root", &root)?;
    let state = ledger.store().state();
    let keep = move |d: &Deal| d.repair.as_ref().is_some_and(|r| r.data.root == root);
    Ok(Json(DealList {
        total: state.count_deals(keep),
        deals: state
            .deals_where(None, keep)
            .take(MAX_LIST)
            .map(|(id, d)| DealView::new(id, &d, &state))
            .collect(),
        next: None,
    }))
}

async fn block(
    State(ledger): State<Arc<Ledger>>,
    Path(height): Path<String>,
) -> ApiResult<BlockView> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(format!("'{height}' is not a block height (a whole number)"))
    })?;
    if height == 0 {
        return Err(ApiError::not_found(
            "height 0 is the genesis state; blocks start at 1",
        ));
    }
    let tip = ledger.store().height();
    let record = blocking(move || Ok(ledger.store().block(height)?)).await?;
    let record = record.ok_or_else(|| {
        ApiError::not_found(format!("no block at height {height} (the latest is {tip})"))
    })?;
    Ok(Json(block_view(&record)))
}

/// A committed block as the API shows it.
fn block_view(b: &BlockRecord) -> BlockView {
    BlockView {
        height: b.height,
        digest: hex::encode(b.digest),
        parent: hex::encode(b.parent),
        timestamp_ms: b.timestamp_ms,
        proposer: hex::encode(&b.proposer),
        state_root: hex::encode(b.state_root),
        new_epoch: b.new_epoch,
        view: b.beacon.view,
        beacon: hex::encode(b.beacon.beacon),
        seed: b.beacon.seed.as_ref().map(|s| SeedView {
            view: s.view,
            signature: hex::encode(&s.signature),
        }),
        txs: b
            .txs
            .iter()
            .zip(&b.results)
            .map(|(tx, r)| TxResultView {
                id: hex::encode(tx.id()),
                ok: r.is_ok(),
                error: error_text(r),
            })
            .collect(),
    }
}

/// A committed transaction as the API shows it.
fn committed_tx_view(id: &[u8; 32], record: &TxRecord, tx: Option<&SignedTx>) -> TxView {
    TxView {
        id: hex::encode(id),
        status: TxStatus::Committed,
        height: Some(record.height),
        index: Some(record.index),
        ok: Some(record.result.is_ok()),
        error: error_text(&record.result),
        tx: tx.map(TxSummary::new),
    }
}

fn error_text(r: &Result<(), Rejection>) -> Option<String> {
    r.as_ref().err().map(ToString::to_string)
}

async fn tx(State(ledger): State<Arc<Ledger>>, Path(id): Path<String>) -> ApiResult<TxView> {
    let id = parse_id("transaction id", &id)?;
    let view = blocking(move || {
        if let Some(record) = ledger.store().tx(&id)? {
            let block = ledger.store().block(record.height)?;
            let tx = block.and_then(|b| b.txs.get(record.index as usize).cloned());
            return Ok(Some(committed_tx_view(&id, &record, tx.as_ref())));
        }
        Ok(ledger.is_pending(&id).then(|| TxView::pending(&id)))
    })
    .await?;
    view.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "transaction {} is neither pending here nor committed",
            hex::encode(id)
        ))
    })
}

/// The body is the encoded transaction, or with a JSON content type
/// `{"tx_hex": "..."}`.
async fn submit(
    State(ledger): State<Arc<Ledger>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SubmitView>), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let bytes = if json {
        let request: SubmitRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("expected {{\"tx_hex\": \"...\"}}: {e}")))?;
        hex::decode(request.tx_hex.trim())
            .map_err(|e| ApiError::bad_request(format!("tx_hex is not hex: {e}")))?
    } else {
        body.to_vec()
    };
    if bytes.len() > MAX_TX_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a transaction of {} bytes exceeds the limit of {MAX_TX_BYTES}",
                bytes.len()
            ),
        ));
    }
    // Decoding and one signature check: cheap enough for this thread.
    match ledger.submit(&bytes) {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(SubmitView {
                id: hex::encode(id),
            }),
        )),
        Err(e) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            ErrorView {
                error: e.to_string(),
                code: Some(e.code().to_string()),
            },
        )),
    }
}

#[cfg(test)]
mod tests;
