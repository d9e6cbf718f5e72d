//! What a storage node does with each `/cairn/shards/1` request.
//!
//! The store is synchronous (files, RocksDB, hashing), so every request runs on a
//! blocking thread, at most `limits.store_threads` at once; the swarm's
//! event loop only routes. A fetch first reserves its answer's size in the
//! node-wide [`ResponseBudget`], so however many peers fetch at once the
//! bodies held stay within it. Errors become
//! [`WireError`]s a client can act on; nothing a peer sends can make this
//! panic or make the node serve bytes it has not just verified.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_protocol::shard::Outboard;
use cairn_protocol::wire::{
    decode_receipt_shards, delete_message, DeleteRequest, ErrorKind, NodeInfo, ReceiptRequest,
    RepairReceiptRequest, Request, Response, SignedStoreRequest, StoreRequest, WireError,
    DELETE_WINDOW_SECS,
};
use cairn_protocol::ContentId;
use libp2p::PeerId;
use tokio::sync::Semaphore;

use super::budget::{Reservation, ResponseBudget};
use super::codec::{ShardRequest, ShardResponse};
use crate::identity::ChainKey;
use crate::metrics::Metrics;
use crate::store::{now, PutOptions, ShardStore, StoreError};
use crate::terms::TermsPolicy;

/// Answers shard requests from the local store.
#[derive(Clone)]
pub struct ShardService {
    store: Arc<ShardStore>,
    metrics: Arc<Metrics>,
    local_peer: PeerId,
    chain_key: Arc<ChainKey>,
    terms: Arc<TermsPolicy>,
    budget: ResponseBudget,
    /// Blocking threads store work may take at once.
    store_threads: Arc<Semaphore>,
    /// The bulk listener's port, announced in `Info`.
    bulk_port: Option<u16>,
}

impl ShardService {
    pub fn new(
        store: Arc<ShardStore>,
        metrics: Arc<Metrics>,
        local_peer: PeerId,
        chain_key: Arc<ChainKey>,
        terms: Arc<TermsPolicy>,
        limits: &crate::config::Limits,
    ) -> Self {
        Self {
            budget: ResponseBudget::new(
                limits.response_buffer,
                limits.response_buffer_per_peer,
                metrics.clone(),
            ),
            store_threads: Arc::new(Semaphore::new(limits.store_threads)),
            store,
            metrics,
            local_peer,
            chain_key,
            terms,
            bulk_port: None,
        }
    }

    /// Announces a bulk listener on `port` in `Info`.
    pub fn set_bulk_port(&mut self, port: Option<u16>) {
        self.bulk_port = port;
    }

    /// Handles one request and counts it.
    pub async fn handle(&self, peer: PeerId, request: ShardRequest) -> ShardResponse {
        let kind = request.kind();
        let started = Instant::now();
        let response = match (request.refusal, request.header) {
            (Some(refusal), _) => ShardResponse::new(Response::Error(refusal)),
            (None, None) => ShardResponse::error(ErrorKind::Malformed, "no header"),
            (None, Some(header)) => self.run(peer, header, request.body).await,
        };
        let outcome = match &response.header {
            Response::Error(e) => {
                tracing::debug!(%peer, kind, error = %e, "request refused");
                e.kind.as_str()
            }
            _ => "ok",
        };
        self.metrics
            .request(kind, outcome, started.elapsed().as_secs_f64());
        response
    }

    /// Reserves a fetch's answer, then does the store work on a blocking
    /// thread once one of `store_threads` is free.
    async fn run(&self, peer: PeerId, header: Request, body: Bytes) -> ShardResponse {
        let reservation = match &header {
            Request::Fetch { start, end, .. } if start <= end => {
                let need = cairn_protocol::shard::encoded_len_bound(end - start);
                match self.budget.reserve(peer, need).await {
                    Some(r) => Some(r),
                    None => {
                        return ShardResponse::error(
                            ErrorKind::Busy,
                            "too many answers being sent; retry later",
                        )
                    }
                }
            }
            _ => None,
        };
        let Ok(thread) = self.store_threads.clone().acquire_owned().await else {
            return ShardResponse::error(ErrorKind::Internal, "shutting down");
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _thread = thread;
            this.dispatch(header, body, reservation)
        })
        .await
        .unwrap_or_else(|e| {
            ShardResponse::error(ErrorKind::Internal, format!("request task failed: {e}"))
        })
    }

    fn dispatch(
        &self,
        header: Request,
        body: Bytes,
        reservation: Option<Reservation>,
    ) -> ShardResponse {
        match header {
            Request::Store(_) => ShardResponse::error(
                ErrorKind::Unauthorized,
                "unsigned stores are refused: the shard's owner must sign the store (StoreV2)",
            ),
            Request::StoreV2(s) => self.store_signed(s, &body),
            Request::Fetch { id, start, end } => self.fetch(id, start, end, reservation),
            Request::Has { ids } => self.has(&ids),
            Request::Info => self.info(),
            Request::Delete(d) => self.delete(d),
            Request::ReceiptV2(r) => self.receipt(r, &body),
            Request::RepairReceiptV2(r) => self.repair_receipt(r, &body),
        }
    }

    /// Stores a shard for the owner that signed the request for this node,
    /// recent enough not to be a replay.
    fn store_signed(&self, request: SignedStoreRequest, body: &[u8]) -> ShardResponse {
        if let Err(e) = request.verify(&self.local_peer.to_bytes(), now()) {
            return ShardResponse::new(Response::Error(e));
        }
        let request = StoreRequest {
            id: request.id,
            size: request.size,
            expires_at: request.expires_at,
            owner: Some(request.owner),
        };
        self.store_shard(request, body)
    }

    fn store_shard(&self, request: StoreRequest, body: &[u8]) -> ShardResponse {
        if body.len() as u64 != request.size {
            return ShardResponse::error(ErrorKind::Malformed, "body length differs from size");
        }
        let outboard = Outboard::compute(body);
        if outboard.id() != request.id {
            return ShardResponse::error(
                ErrorKind::HashMismatch,
                format!(
                    "bytes hash to {}, not to {}; nothing stored",
                    outboard.id(),
                    request.id
                ),
            );
        }
        let options = PutOptions {
            expires_at: request.expires_at,
            owner: request.owner,
        };
        match self.store.put_verified(&outboard, body, options) {
            Ok(outcome) => {
                if !outcome.existed {
                    self.metrics.received_bytes.inc_by(request.size);
                }
                ShardResponse::new(Response::Stored {
                    id: request.id,
                    existed: outcome.existed,
                })
            }
            Err(e) => self.store_error(e),
        }
    }

    /// Reads and encodes a range into room `reservation` holds; the body
    /// keeps the room until the connection has sent it.
    fn fetch(
        &self,
        id: ContentId,
        start: u64,
        end: u64,
        reservation: Option<Reservation>,
    ) -> ShardResponse {
        match self.store.read_range(&id, start..end) {
            Ok((shard_size, encoded)) => {
                self.metrics.served_bytes.inc_by(encoded.len() as u64);
                let encoded_len = encoded.len() as u64;
                let body = match reservation {
                    Some(r) => r.hold(encoded),
                    None => Bytes::from(encoded),
                };
                ShardResponse {
                    header: Response::Range {
                        id,
                        shard_size,
                        start,
                        end,
                        encoded_len,
                    },
                    body,
                }
            }
            Err(e) => self.store_error(e),
        }
    }

    fn has(&self, ids: &[ContentId]) -> ShardResponse {
        let mut sizes = Vec::with_capacity(ids.len());
        for id in ids {
            match self.store.meta(id) {
                Ok(meta) => sizes.push(meta.map(|m| m.size)),
                Err(e) => return self.store_error(e),
            }
        }
        ShardResponse::new(Response::Has { sizes })
    }

    fn info(&self) -> ShardResponse {
        let usage = self.store.usage();
        ShardResponse::new(Response::Info(NodeInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            capacity: usage.capacity,
            used: usage.used,
            shards: usage.shards,
            max_shard_size: cairn_protocol::params::MAX_SHARD_SIZE as u64,
            chain_address: self.chain_key.address(),
            bulk_port: self.bulk_port,
        }))
    }

    /// Signs a deal receipt, but only once the request's commitment is
    /// exactly the list it sends, every listed shard is here, of that size,
    /// owned by the deal's owner, and the terms are ones this node accepts
    /// ([`TermsPolicy`]): a receipt makes the node answerable for the shards
    /// on the chain. The leaf list is kept (synced) before the receipt
    /// leaves, so the node can prove what it signed for.
    fn receipt(&self, request: ReceiptRequest, body: &[u8]) -> ShardResponse {
        let refuse = |kind, message: String| ShardResponse::error(kind, message);
        let shards = match decode_receipt_shards(body) {
            Ok(s) => s,
            Err(e) => return ShardResponse::new(Response::Error(e)),
        };
        // The cheap, store-free checks first.
        if let Err(e) = request.check_shards(&shards) {
            return ShardResponse::new(Response::Error(e));
        }
        if request.end_epoch <= request.start_epoch {
            return refuse(
                ErrorKind::Malformed,
                "the deal ends before it starts".into(),
            );
        }
        if request.bytes > request.size {
            return refuse(
                ErrorKind::Malformed,
                format!(
                    "this node's {} bytes exceed the deal's size {}",
                    request.bytes, request.size
                ),
            );
        }
        for (id, size) in &shards {
            let meta = match self.store.meta(id) {
                Ok(Some(meta)) => meta,
                Ok(None) => {
                    return refuse(
                        ErrorKind::NotFound,
                        format!("shard {id} is not stored here"),
                    )
                }
                Err(e) => return self.store_error(e),
            };
            if meta.size != *size {
                return refuse(
                    ErrorKind::Malformed,
                    format!("shard {id} is {} bytes here, not {size}", meta.size),
                );
            }
            if !meta.owners.contains(&request.owner) {
                return refuse(
                    ErrorKind::Unauthorized,
                    format!("{} is not an owner of shard {id}", request.owner),
                );
            }
        }
        if let Err(e) = self.terms.check(&request) {
            return ShardResponse::new(Response::Error(e));
        }
        let deal = cairn_protocol::chain::DealId::new(&request.owner, request.owner_nonce);
        if let Err(e) = self.store.keep_leaves(&deal, &shards, now()) {
            return self.store_error(e);
        }
        ShardResponse::new(Response::Receipt {
            signature: self.chain_key.sign_receipt(&request),
        })
    }

    /// Signs a repair receipt, but only once every listed shard is here, of
    /// that size, the list is exactly the request's commitment, and it is
    /// for this node's chain: the receipt makes the node answerable for the
    /// shards once the repairer's claim is applied. The leaf list is kept
    /// (synced) before the receipt leaves, as for a deal receipt; a
    /// different list already kept for the deal (this node's own part of
    /// it) is never replaced.
    fn repair_receipt(&self, request: RepairReceiptRequest, body: &[u8]) -> ShardResponse {
        let refuse = |kind, message: String| ShardResponse::error(kind, message);
        let shards = match decode_receipt_shards(body) {
            Ok(s) => s,
            Err(e) => return ShardResponse::new(Response::Error(e)),
        };
        if let Err(e) = request.check_shards(&shards) {
            return ShardResponse::new(Response::Error(e));
        }
        if let Err(e) = self.terms.chain(&request.genesis) {
            return ShardResponse::new(Response::Error(e));
        }
        for (id, size) in &shards {
            match self.store.meta(id) {
                Ok(Some(meta)) if meta.size == *size => {}
                Ok(Some(meta)) => {
                    return refuse(
                        ErrorKind::Malformed,
                        format!("shard {id} is {} bytes here, not {size}", meta.size),
                    )
                }
                Ok(None) => {
                    return refuse(
                        ErrorKind::NotFound,
                        format!("shard {id} is not stored here"),
                    )
                }
                Err(e) => return self.store_error(e),
            }
        }
        match self.store.leaves(&request.deal) {
            Ok(Some(kept)) if kept.shards != shards => {
                return refuse(
                    ErrorKind::Unauthorized,
                    format!(
                        "this node already holds another part of deal {}",
                        request.deal
                    ),
                )
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = self.store.keep_leaves(&request.deal, &shards, now()) {
                    return self.store_error(e);
                }
            }
            Err(e) => return self.store_error(e),
        }
        ShardResponse::new(Response::Receipt {
            signature: self
                .chain_key
                .sign(&request.message(self.chain_key.address())),
        })
    }

    fn delete(&self, request: DeleteRequest) -> ShardResponse {
        let now = now();
        if request.issued_at.abs_diff(now) > DELETE_WINDOW_SECS {
            return ShardResponse::error(
                ErrorKind::Unauthorized,
                format!(
                    "delete signed at {} but the node's clock says {now}; sign again",
                    request.issued_at
                ),
            );
        }
        let message = delete_message(&self.local_peer.to_bytes(), &request.id, request.issued_at);
        let verified = request.owner.verifying_key().ok().is_some_and(|key| {
            let sig = ed25519_dalek::Signature::from_bytes(&request.signature.0);
            key.verify_strict(&message, &sig).is_ok()
        });
        if !verified {
            return ShardResponse::error(ErrorKind::Unauthorized, "bad delete signature");
        }
        match self.store.release(&request.id, &request.owner) {
            Ok(existed) => ShardResponse::new(Response::Deleted {
                id: request.id,
                existed,
            }),
            Err(e) => self.store_error(e),
        }
    }

    fn store_error(&self, e: StoreError) -> ShardResponse {
        let kind = match &e {
            StoreError::HashMismatch { .. } => ErrorKind::HashMismatch,
            StoreError::CapacityFull { .. } => ErrorKind::CapacityFull,
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Corrupt { .. } => {
                self.metrics.corrupt_shards.inc();
                ErrorKind::Corrupt
            }
            StoreError::Range(_) => ErrorKind::Malformed,
            StoreError::NotOwner { .. } => ErrorKind::Unauthorized,
            StoreError::TooManyOwners { .. } => ErrorKind::CapacityFull,
            // Past its own cap an owner waits for a deal to pay; past the
            // node's, the node is full of unpaid data.
            StoreError::Unpaid(crate::store::UnpaidRefusal::Owner { .. }) => ErrorKind::Busy,
            StoreError::Unpaid(crate::store::UnpaidRefusal::Node { .. }) => ErrorKind::CapacityFull,
            StoreError::Db(_)
            | StoreError::Io { .. }
            | StoreError::Format { .. }
            | StoreError::LeafList(_) => {
                tracing::error!(error = %e, "shard store error");
                ErrorKind::Internal
            }
        };
        ShardResponse::new(Response::Error(WireError::new(kind, e.to_string())))
    }
}

impl std::fmt::Debug for ShardService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardService")
            .field("local_peer", &self.local_peer)
            .finish_non_exhaustive()
    }
}
