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
use cairn_protocol::chain::{Address, DealId, MAX_TX_BYTES};
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
    Ok(Json(DealView::new(&id, deal, &state)))
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
    let matching = |after: Option<&DealId>| {
        state
            .deals_after(after)
            .filter(move |(_, d)| owner.is_none_or(|o| d.owner == o))
    };
    let (deals, next) = page(
        matching(after.as_ref()).map(|(id, d)| (*id, DealView::new(id, d, &state))),
        page_limit(query.limit),
    );
    Ok(Json(DealList {
        total: matching(None).count(),
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
    let matching = || {
        state
            .deals()
            .filter(move |(_, d)| d.repair.as_ref().is_some_and(|r| r.data.root == root))
    };
    Ok(Json(DealList {
        total: matching().count(),
        deals: matching()
            .take(MAX_LIST)
            .map(|(id, d)| DealView::new(id, d, &state))
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
mod tests {
    use std::net::SocketAddr;

    use cairn_protocol::chain::{
        peer_id_of, receipt_message, Allocation, Commitment, DealTerms, Genesis, Sig, SignedTx,
        Transaction, TxBody,
    };
    use ed25519_dalek::Signer;
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::ledger::store::tests::{
        addr, beacon, block, digest, genesis, key, rooted, transfer,
    };
    use crate::ledger::MempoolConfig;

    fn signed(from: u8, nonce: u64, body: TxBody) -> SignedTx {
        Transaction {
            genesis: genesis().hash(),
            signer: addr(from),
            nonce,
            fee: 1,
            body,
        }
        .sign(&key(from))
    }

    /// Key 2 registers as a node in block 1; key 1 opens a deal on it in
    /// block 2 (and pays key 3).
    fn ledger_with_history(dir: &std::path::Path) -> (Arc<Ledger>, SignedTx, DealId) {
        let ledger =
            Ledger::open(&dir.join("chain"), &genesis(), MempoolConfig::default()).unwrap();
        let register = signed(
            2,
            0,
            TxBody::RegisterNode {
                peer_id: peer_id_of(&addr(2)),
                addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                capacity: 1 << 30,
                stake: 5_000,
            },
        );
        let pay = transfer(1, 0, 3, 42);
        ledger
            .commit(rooted(
                ledger.store(),
                block(1, vec![register, pay.clone()]),
            ))
            .unwrap();
        let mut terms = DealTerms {
            size: 4096,
            price_per_epoch: 10,
            start_epoch: 1,
            end_epoch: 50,
            commitments: vec![Commitment {
                node: addr(2),
                root: [5; 32],
                shards: 1,
                bytes: 4096,
                receipt: Sig([0; 64]),
            }],
        };
        let message = receipt_message(
            &genesis().hash(),
            &addr(1),
            1,
            &terms,
            &terms.commitments[0],
        );
        terms.commitments[0].receipt = Sig(key(2).sign(&message).to_bytes());
        let open = signed(1, 1, TxBody::OpenDeal(terms));
        let outcome = ledger
            .commit(rooted(ledger.store(), block(2, vec![open])))
            .unwrap();
        assert_eq!(outcome.results, vec![Ok(())]);
        (Arc::new(ledger), pay, DealId::new(&addr(1), 1))
    }

    /// Serves the chain routes alone (the node's router merges them with
    /// its own, see `crate::http::router`).
    async fn start(ledger: Arc<Ledger>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let bound = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes(ledger)).await });
        bound
    }

    /// One HTTP/1.1 request on its own connection; the status and the body.
    async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        // The server may answer (413) and close before reading it all.
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
        let (status, body) = request(addr, "GET", path, None, b"").await;
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    async fn expect(addr: SocketAddr, path: &str, status: u16) -> Value {
        let (got, body) = get(addr, path).await;
        assert_eq!(got, status, "GET {path}: {body}");
        body
    }

    /// More deals than one answer lists: `/chain/deals` pages in id order
    /// (with and without an owner), and a client reads them all.
    #[tokio::test]
    async fn open_deals_are_paged_and_a_client_reads_every_page() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _, _) = ledger_with_history(dir.path());
        // Key 1 opened one deal at nonce 1; open MAX_LIST + 4 more.
        let count = MAX_LIST + 5;
        let deal = |nonce: u64| {
            let mut terms = DealTerms {
                size: 4096,
                price_per_epoch: 1,
                start_epoch: 3,
                end_epoch: 60,
                commitments: vec![Commitment {
                    node: addr(2),
                    root: [5; 32],
                    shards: 1,
                    bytes: 4096,
                    receipt: Sig([0; 64]),
                }],
            };
            let m = receipt_message(
                &genesis().hash(),
                &addr(1),
                nonce,
                &terms,
                &terms.commitments[0],
            );
            terms.commitments[0].receipt = Sig(key(2).sign(&m).to_bytes());
            signed(1, nonce, TxBody::OpenDeal(terms))
        };
        let nonces: Vec<u64> = (2..=count as u64).collect();
        for (i, chunk) in nonces.chunks(256).enumerate() {
            let txs = chunk.iter().map(|&n| deal(n)).collect();
            let outcome = ledger
                .commit(rooted(ledger.store(), block(3 + i as u64, txs)))
                .unwrap();
            let refused: Vec<_> = outcome.results.iter().filter(|r| r.is_err()).collect();
            assert!(
                refused.is_empty(),
                "{} refused: {:?}",
                refused.len(),
                refused.first()
            );
        }
        let http = start(ledger).await;

        let first = expect(http, "/chain/deals?limit=3", 200).await;
        assert_eq!(first["total"], count);
        assert_eq!(first["deals"].as_array().unwrap().len(), 3);
        assert_eq!(first["next"], first["deals"][2]["id"]);
        let after = first["next"].as_str().unwrap();
        let owner = addr(1);
        let second = expect(
            http,
            &format!("/chain/deals?owner={owner}&after={after}&limit=3"),
            200,
        )
        .await;
        assert!(second["deals"][0]["id"].as_str().unwrap() > after);
        let full = expect(http, "/chain/deals", 200).await;
        assert_eq!(full["deals"].as_array().unwrap().len(), MAX_LIST);
        let rest = expect(
            http,
            &format!("/chain/deals?after={}", full["next"].as_str().unwrap()),
            200,
        )
        .await;
        assert_eq!(rest["deals"].as_array().unwrap().len(), 5);
        assert!(rest["next"].is_null());
        let nobody = expect(http, &format!("/chain/deals?owner={}", addr(3)), 200).await;
        assert_eq!(nobody["total"], 0);
        assert!(nobody["next"].is_null());
        expect(http, "/chain/deals?after=nothex", 400).await;
        expect(http, "/chain/repairs?after=nothex", 400).await;

        let client = cairn_client::chain::ChainClient::new(
            &[format!("http://{http}")],
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let all = client.deals(Some(&owner)).await.unwrap();
        assert_eq!(all.deals.len(), count);
        assert!(all.next.is_none());
        let ids: Vec<&String> = all.deals.iter().map(|d| &d.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "deals out of order or repeated"
        );
        assert!(client.repairs().await.unwrap().deals.is_empty());
    }

    /// More nodes than one answer lists: the pages follow each other in
    /// address order, and a client reads them all.
    #[tokio::test]
    async fn the_registry_is_paged_and_a_client_reads_every_page() {
        let dir = tempfile::tempdir().unwrap();
        let count = MAX_LIST + 5;
        let keys: Vec<ed25519_dalek::SigningKey> = (0..count as u32)
            .map(|i| {
                let mut seed = [0xa5; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                ed25519_dalek::SigningKey::from_bytes(&seed)
            })
            .collect();
        let address = |k: &ed25519_dalek::SigningKey| Address::of(&k.verifying_key());
        let mut allocations: Vec<Allocation> = keys
            .iter()
            .map(|k| Allocation {
                address: address(k),
                amount: 10_000,
            })
            .collect();
        allocations.sort_by_key(|a| a.address);
        let g = Genesis::devnet("page-test", vec![addr(100)], allocations);
        let ledger = Ledger::open(&dir.path().join("chain"), &g, MempoolConfig::default()).unwrap();
        let registrations: Vec<SignedTx> = keys
            .iter()
            .map(|k| {
                Transaction {
                    genesis: g.hash(),
                    signer: address(k),
                    nonce: 0,
                    fee: 1,
                    body: TxBody::RegisterNode {
                        peer_id: peer_id_of(&address(k)),
                        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                        capacity: 1 << 30,
                        stake: g.min_stake,
                    },
                }
                .sign(k)
            })
            .collect();
        let outcome = ledger
            .commit(rooted(ledger.store(), block(1, registrations)))
            .unwrap();
        assert!(outcome.results.iter().all(|r| r.is_ok()));
        let http = start(Arc::new(ledger)).await;

        let first = expect(http, "/chain/nodes?limit=2", 200).await;
        assert_eq!(first["total"], count);
        assert_eq!(first["nodes"].as_array().unwrap().len(), 2);
        assert_eq!(first["next"], first["nodes"][1]["address"]);
        let after = first["next"].as_str().unwrap();
        let second = expect(http, &format!("/chain/nodes?after={after}&limit=2"), 200).await;
        assert!(second["nodes"][0]["address"].as_str().unwrap() > after);
        let full = expect(http, "/chain/nodes", 200).await;
        assert_eq!(full["nodes"].as_array().unwrap().len(), MAX_LIST);
        let last = expect(
            http,
            &format!("/chain/nodes?after={}", full["next"].as_str().unwrap()),
            200,
        )
        .await;
        assert_eq!(last["nodes"].as_array().unwrap().len(), 5);
        assert!(last["next"].is_null());
        expect(http, "/chain/nodes?after=nothex", 400).await;

        let client = cairn_client::chain::ChainClient::new(
            &[format!("http://{http}")],
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let all = client.nodes().await.unwrap();
        assert_eq!(all.nodes.len(), count);
        let mut want: Vec<Address> = keys.iter().map(address).collect();
        want.sort();
        let got: Vec<Address> = all.nodes.iter().map(|n| n.address).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn every_route_answers_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, pay, deal_id) = ledger_with_history(dir.path());
        let http = start(ledger.clone()).await;
        let (a1, a2, a3) = (addr(1), addr(2), addr(3));

        let s = expect(http, "/chain/status", 200).await;
        assert_eq!(s["chain_id"], "test-chain");
        assert_eq!(s["height"], 2);
        assert_eq!(s["epoch"], 0);
        assert_eq!(s["validators"][0], addr(100).to_string());
        assert_eq!(s["latest_block_digest"], hex::encode(digest(2)));
        assert_eq!(s["latest_block_time_ms"], 1_700_000_000_002u64);
        assert_eq!(s["state_root"], hex::encode(ledger.store().state().root()));
        assert_eq!(s["beacon"], hex::encode(ledger.store().state().beacon()));
        assert_eq!(s["mempool_txs"], 0);
        assert_eq!(s["min_fee"], 1);
        // The latest block (height 2) carries the seed of its parent's view.
        assert_eq!(s["beacon_view"], 11, "{s}");
        let typed: cairn_client::chain::api::StatusView = serde_json::from_value(s).unwrap();
        assert_eq!(typed.validators, vec![addr(100)]);

        let a = expect(http, &format!("/chain/account/{a1}"), 200).await;
        assert_eq!(a["nonce"], 2);
        assert_eq!(a["next_nonce"], 2);
        // The payment and its fee, the deal's fee and its escrow (10 per
        // epoch for epochs 1..50).
        assert_eq!(a["balance"], 1_000_000 - 43 - 1 - 490);
        assert!(a["node"].is_null());
        let a = expect(http, &format!("/chain/account/{a2}"), 200).await;
        assert_eq!(a["node"]["stake"], 5_000);
        let a = expect(http, &format!("/chain/account/{}", addr(50)), 200).await;
        assert_eq!(
            (a["balance"].as_u64(), a["nonce"].as_u64()),
            (Some(0), Some(0))
        );
        let e = expect(http, "/chain/account/nothex", 400).await;
        assert!(
            e["error"].as_str().unwrap().contains("not an address"),
            "{e}"
        );

        let n = expect(http, "/chain/nodes", 200).await;
        assert_eq!(n["total"], 1);
        assert_eq!(n["nodes"][0]["address"], a2.to_string());
        assert_eq!(n["nodes"][0]["used"], 4096);
        let peer = n["nodes"][0]["peer_id"].as_str().unwrap();
        assert!(peer.parse::<libp2p::PeerId>().is_ok(), "{peer}");
        let n = expect(http, &format!("/chain/node/{a2}"), 200).await;
        assert_eq!(n["active_deals"], 1);
        expect(http, &format!("/chain/node/{a1}"), 404).await;
        expect(http, "/chain/node/12", 400).await;

        let d = expect(
            http,
            &format!("/chain/deal/{}", hex::encode(deal_id.0)),
            200,
        )
        .await;
        assert_eq!(d["owner"], a1.to_string());
        assert_eq!(d["escrow"], 490);
        assert_eq!(d["commitments"][0]["node"], a2.to_string());
        assert_eq!(d["commitments"][0]["status"], "active");
        assert_eq!(d["commitments"][0]["proofs_accepted"], 0);
        // What the node must prove: this period's window, the deal's space
        // once it is active (it starts next epoch: nothing yet).
        let p = expect(http, &format!("/chain/proof/{a2}"), 200).await;
        assert_eq!(p["period"], 0);
        assert_eq!(p["proven"], false);
        assert!(p["spaces"].as_array().unwrap().is_empty(), "{p}");
        expect(http, &format!("/chain/proof/{a1}"), 404).await;
        expect(http, "/chain/proof/zz", 400).await;
        expect(
            http,
            &format!("/chain/deal/{}", hex::encode([7u8; 32])),
            404,
        )
        .await;
        expect(http, "/chain/deal/xyz", 400).await;
        let l = expect(http, &format!("/chain/deals?owner={a1}"), 200).await;
        assert_eq!(l["total"], 1);
        assert_eq!(l["deals"][0]["id"], hex::encode(deal_id.0));
        let l = expect(http, &format!("/chain/deals?owner={a3}"), 200).await;
        assert_eq!(l["total"], 0);
        let l = expect(http, "/chain/deals", 200).await;
        assert_eq!(l["total"], 1);
        expect(http, "/chain/deals?owner=bob", 400).await;
        // No deal names repair data with this root (this one names none).
        let l = expect(
            http,
            &format!("/chain/deals/repair/{}", hex::encode([7u8; 32])),
            200,
        )
        .await;
        assert_eq!(l["total"], 0, "{l}");
        expect(http, "/chain/deals/repair/zz", 400).await;

        let b = expect(http, "/chain/block/1", 200).await;
        assert_eq!(b["digest"], hex::encode(digest(1)));
        assert_eq!(b["txs"][1]["id"], hex::encode(pay.id()));
        assert_eq!(b["txs"][1]["ok"], true);
        assert_eq!(b["proposer"], hex::encode([7u8; 32]));
        assert_eq!(b["view"], 11);
        assert_eq!(b["beacon"], hex::encode(beacon(1)));
        assert!(b["seed"].is_null(), "the block on genesis has no seed: {b}");
        let b = expect(http, "/chain/block/2", 200).await;
        assert_eq!(b["seed"]["view"], 11);
        assert_eq!(b["seed"]["signature"], hex::encode([2u8; 48]));
        expect(http, "/chain/block/0", 404).await;
        let e = expect(http, "/chain/block/99", 404).await;
        assert!(e["error"].as_str().unwrap().contains("latest is 2"), "{e}");
        expect(http, "/chain/block/-1", 400).await;
        expect(http, "/chain/block/abc", 400).await;

        let t = expect(http, &format!("/chain/tx/{}", hex::encode(pay.id())), 200).await;
        assert_eq!(t["status"], "committed");
        assert_eq!(
            (t["height"].as_u64(), t["index"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(t["ok"], true);
        assert_eq!(t["tx"]["signer"], a1.to_string());
        assert_eq!(t["tx"]["body"]["Transfer"]["amount"], 42);
        expect(http, &format!("/chain/tx/{}", hex::encode([3u8; 32])), 404).await;
        expect(http, "/chain/tx/00ff", 400).await;

        // Submitting: raw bytes, then JSON.
        let next = transfer(1, 2, 3, 5);
        let (status, body) = request(http, "POST", "/chain/tx", None, &next.encode()).await;
        assert_eq!(status, 202, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], hex::encode(next.id()));
        let t = expect(http, &format!("/chain/tx/{}", hex::encode(next.id())), 200).await;
        assert_eq!(t["status"], "pending");
        let a = expect(http, &format!("/chain/account/{a1}"), 200).await;
        assert_eq!(
            (a["nonce"].as_u64(), a["next_nonce"].as_u64()),
            (Some(2), Some(3))
        );
        let (status, body) = request(http, "POST", "/chain/tx", None, &next.encode()).await;
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "duplicate");
        let json_tx = transfer(3, 0, 1, 5);
        let body = format!("{{\"tx_hex\":\"{}\"}}", hex::encode(json_tx.encode()));
        let (status, answer) = request(
            http,
            "POST",
            "/chain/tx",
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(expect(http, "/chain/status", 200).await["mempool_txs"], 2);
        // Refusals: a stale nonce, garbage, bad JSON, bad hex, too large.
        let (status, body) = request(http, "POST", "/chain/tx", None, &pay.encode()).await;
        assert_eq!(status, 400);
        assert!(body.contains("stale_nonce"), "{body}");
        let (status, body) = request(http, "POST", "/chain/tx", None, b"\xff\xff\xff").await;
        assert_eq!(status, 400);
        assert!(body.contains("malformed"), "{body}");
        let (status, _) = request(
            http,
            "POST",
            "/chain/tx",
            Some("application/json"),
            b"{\"tx\":1}",
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = request(
            http,
            "POST",
            "/chain/tx",
            Some("application/json"),
            b"{\"tx_hex\":\"zz\"}",
        )
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("not hex"), "{body}");
        let big = vec![0u8; MAX_TX_BYTES + 1];
        let (status, _) = request(http, "POST", "/chain/tx", None, &big).await;
        assert_eq!(status, 413);
        let body = format!("{{\"tx_hex\":\"{}\"}}", hex::encode(&big));
        let (status, _) = request(
            http,
            "POST",
            "/chain/tx",
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 413);
        let (status, _) = request(http, "POST", "/chain/tx", None, &vec![0u8; MAX_BODY + 1]).await;
        assert_eq!(status, 413);
        assert_eq!(expect(http, "/chain/status", 200).await["mempool_txs"], 2);

        // Committing the pending transactions empties the mempool.
        let proposal = ledger.propose(100, 1 << 20);
        assert_eq!(proposal.len(), 2);
        ledger
            .commit(rooted(ledger.store(), block(3, proposal)))
            .unwrap();
        let s = expect(http, "/chain/status", 200).await;
        assert_eq!(
            (s["height"].as_u64(), s["mempool_txs"].as_u64()),
            (Some(3), Some(0))
        );
        assert_eq!(s["epoch"], 1);
        // Block 3 opened epoch 1 with the seed of view 12 (its parent's).
        assert_eq!(s["beacon_view"], 12);
        assert_eq!(s["beacon"], hex::encode(beacon(3)));
        let t = expect(http, &format!("/chain/tx/{}", hex::encode(next.id())), 200).await;
        assert_eq!(t["status"], "committed");
    }
}
