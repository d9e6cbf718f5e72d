//! Talking to the chain: [`ChainClient`] asks validators' chain API
//! (`/chain/...`, see docs/chain.md) for state and submits signed
//! transactions, over HTTP or over libp2p (`/cairn/chain/1`).
//!
//! Validators are listed in the client config's `chain` field, each either
//! a plain `http://host:port` URL or a libp2p multiaddr ending in
//! `/p2p/<peer id>`. HTTP is meant for loopback or a trusted LAN, and
//! everything the API carries is public chain data or already signed, so
//! it needs no TLS; libp2p (noise) reaches a validator anywhere and checks
//! its peer id. Both carry the same requests and answers, so everything
//! here works alike over either. A request goes to the first validator
//! that answers; the next one is tried only when a validator cannot be
//! reached at all. The libp2p client starts on first use.

use std::sync::Arc;
use std::time::Duration;

use super::api::{
    AccountView, BlockView, DealList, DealView, ErrorView, NodeList, NodeView, ProofTaskView,
    RepairList, RepairStateView, StatusView, SubmitView, TxStatus, TxView,
};
use super::pages::{check_page, Paged, MAX_PAGES};
use crate::net::client::{ClientSettings, NodeAddr, ShardClient};
use bytes::Bytes;
use cairn_protocol::chain::{Address, SignedTx, Transaction, TxBody};
use cairn_protocol::chain_wire::{ChainApiRequest, ChainMethod};
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Request, StatusCode};
use serde::de::DeserializeOwned;

/// Largest answer read from a validator (lists are capped server-side).
const MAX_RESPONSE: usize = 16 << 20;
/// How often [`ChainClient::wait_for_tx`] asks.
const POLL: Duration = Duration::from_millis(250);

/// What went wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(
        "no chain configured: add chain = [\"http://…\"] (or a /p2p/ multiaddr) to the config"
    )]
    NotConfigured,
    #[error("chain endpoint '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no validator answered: {0}")]
    Unreachable(String),
    #[error("{url} answered {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("transaction refused: {reason}")]
    Refused {
        /// A short stable name for the reason (e.g. `stale_nonce`).
        code: Option<String>,
        reason: String,
    },
    #[error("{url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
    #[error("transaction {id} was not committed within {secs} s (it may still be)")]
    Timeout { id: String, secs: u64 },
}

/// One validator's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As configured, for messages.
    pub url: String,
    target: Target,
}

/// Where and how an endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Http {
        /// `host:port`, what is dialled and sent as `Host`.
        authority: String,
        /// A path prefix (without a trailing slash), usually empty.
        prefix: String,
    },
    /// `/cairn/chain/1` to this peer.
    P2p(NodeAddr),
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]`, or a libp2p multiaddr ending
    /// in `/p2p/<peer id>` (e.g. `/ip4/10.0.0.5/udp/4001/quic-v1/p2p/12D3…`).
    pub fn parse(url: &str) -> Result<Self, ChainError> {
        let bad = |reason: &str| ChainError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.starts_with('/') {
            let node: NodeAddr = url.parse().map_err(|e: crate::net::client::ClientError| {
                bad(&format!(
                    "not a libp2p address ending in /p2p/<peer id>: {}",
                    e.to_string().trim_start_matches("bad node address ")
                ))
            })?;
            if node.addrs.iter().all(|a| a.iter().next().is_none()) {
                return Err(bad("needs a transport address before /p2p/<peer id>"));
            }
            return Ok(Self {
                url: url.to_string(),
                target: Target::P2p(node),
            });
        }
        let rest = match url.strip_prefix("http://") {
            Some(rest) => rest,
            None if url.starts_with("https://") => {
                return Err(bad("https is not supported: the chain API is plain HTTP on loopback or a trusted network (or use a libp2p /p2p/ address)"))
            }
            None => return Err(bad("must start with http:// or be a libp2p multiaddr ending in /p2p/<peer id>")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(bad("needs a host, e.g. http://127.0.0.1:4100"));
        }
        // A port after the host (not inside an IPv6 literal's brackets).
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && !port.contains(']'));
        let authority = if has_port {
            let (_, port) = authority.rsplit_once(':').unwrap_or_default();
            port.parse::<u16>()
                .map_err(|_| bad("the port must be a number up to 65535"))?;
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            url: url.to_string(),
            target: Target::Http {
                authority,
                prefix: path.trim_end_matches('/').to_string(),
            },
        })
    }

    /// Whether requests go over libp2p.
    pub fn is_p2p(&self) -> bool {
        matches!(self.target, Target::P2p(_))
    }
}

/// An answer (over either transport): status and body.
struct Answer {
    url: String,
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, ChainError> {
        serde_json::from_slice(&self.body).map_err(|e| ChainError::Decode {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// The error text the API puts in its JSON, or the body as text.
    fn message(&self) -> ErrorView {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| ErrorView {
            error: String::from_utf8_lossy(&self.body).trim().to_string(),
            code: None,
        })
    }

    fn error(&self) -> ChainError {
        ChainError::Http {
            url: self.url.clone(),
            status: self.status.as_u16(),
            message: self.message().error,
        }
    }

    /// The decoded body of a 200, or an error.
    fn ok<T: DeserializeOwned>(self) -> Result<T, ChainError> {
        if self.status == StatusCode::OK {
            self.json()
        } else {
            Err(self.error())
        }
    }

    /// `None` for a 404, else like [`Self::ok`].
    fn found<T: DeserializeOwned>(self) -> Result<Option<T>, ChainError> {
        if self.status == StatusCode::NOT_FOUND {
            Ok(None)
        } else {
            self.ok().map(Some)
        }
    }
}

/// A client of the validators' chain API.
#[derive(Debug, Clone)]
pub struct ChainClient {
    endpoints: Vec<Endpoint>,
    timeout: Duration,
    /// The libp2p client, started on the first request to a libp2p
    /// endpoint; shared by clones.
    p2p: Arc<tokio::sync::OnceCell<ShardClient>>,
}

impl ChainClient {
    /// A client of the validators at `urls` (`http://host:port` or
    /// `/…/p2p/<peer id>`, see [`Endpoint::parse`]); each request may take
    /// `timeout`.
    pub fn new(urls: &[String], timeout: Duration) -> Result<Self, ChainError> {
        if urls.is_empty() {
            return Err(ChainError::NotConfigured);
        }
        let endpoints = urls
            .iter()
            .map(|u| Endpoint::parse(u))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            endpoints,
            timeout,
            p2p: Arc::default(),
        })
    }

    /// The libp2p client, started on first use.
    async fn p2p(&self) -> Result<&ShardClient, String> {
        self.p2p
            .get_or_try_init(|| async {
                ShardClient::start(ClientSettings {
                    request_timeout: self.timeout,
                    ..ClientSettings::default()
                })
                .map_err(|e| format!("cannot start the libp2p client: {e}"))
            })
            .await
    }

    /// One request to one endpoint, over its transport.
    async fn once(
        &self,
        ep: &Endpoint,
        method: &Method,
        path: &str,
        body: &Option<(&str, Vec<u8>)>,
    ) -> Result<(StatusCode, Bytes), String> {
        let node = match &ep.target {
            Target::Http { authority, prefix } => {
                return once(authority, prefix, method, path, body).await
            }
            Target::P2p(node) => node,
        };
        let request = ChainApiRequest {
            method: if *method == Method::POST {
                ChainMethod::Post
            } else {
                ChainMethod::Get
            },
            path: path.to_string(),
            body: body.as_ref().map(|(_, b)| b.clone()).unwrap_or_default(),
        };
        let answer = self
            .p2p()
            .await?
            .chain_api(node, request)
            .await
            .map_err(|e| e.to_string())?;
        let status = StatusCode::from_u16(answer.status).map_err(|e| e.to_string())?;
        Ok((status, Bytes::from(answer.body)))
    }

    /// Sends one request to the first validator that answers.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Answer, ChainError> {
        let mut failures = Vec::new();
        for ep in &self.endpoints {
            let attempt =
                tokio::time::timeout(self.timeout, self.once(ep, &method, path, &body)).await;
            match attempt {
                Ok(Ok((status, body))) => {
                    let url = if ep.is_p2p() {
                        format!("{} {path}", ep.url)
                    } else {
                        format!("{}{path}", ep.url.trim_end_matches('/'))
                    };
                    return Ok(Answer { url, status, body });
                }
                Ok(Err(e)) => failures.push(format!("{}: {e}", ep.url)),
                Err(_) => failures.push(format!(
                    "{}: no answer within {} s",
                    ep.url,
                    self.timeout.as_secs()
                )),
            }
        }
        Err(ChainError::Unreachable(failures.join("; ")))
    }

    async fn get(&self, path: &str) -> Result<Answer, ChainError> {
        self.request(Method::GET, path, None).await
    }

    /// `GET path` of the endpoint's API as JSON: for a node's own HTTP
    /// routes beside the chain's, e.g. its `/status`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ChainError> {
        self.get(path).await?.ok()
    }

    pub async fn status(&self) -> Result<StatusView, ChainError> {
        self.get("/chain/status").await?.ok()
    }

    pub async fn account(&self, address: &Address) -> Result<AccountView, ChainError> {
        self.get(&format!("/chain/account/{address}")).await?.ok()
    }

    /// Every page of the listing at `path` (which may carry a query),
    /// checked by [`pages`](super::pages) rules.
    async fn all_pages<P: Paged>(&self, path: &str) -> Result<P, ChainError> {
        let mut all: Option<P> = None;
        let mut after: Option<P::Key> = None;
        for _ in 0..MAX_PAGES {
            let url = match &after {
                Some(a) if path.contains('?') => format!("{path}&after={a}"),
                Some(a) => format!("{path}?after={a}"),
                None => path.to_string(),
            };
            let page: P = self.get(&url).await?.ok()?;
            check_page(&page, after.as_ref()).map_err(|reason| ChainError::Decode {
                url: url.clone(),
                reason: reason.into(),
            })?;
            let next = page.next();
            match &mut all {
                Some(all) => all.extend(page),
                None => all = Some(page),
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        all.map(P::finish).ok_or_else(|| ChainError::Decode {
            url: path.to_string(),
            reason: "no page read".into(),
        })
    }

    /// The whole registry: every page of `/chain/nodes`, in address order.
    pub async fn nodes(&self) -> Result<NodeList, ChainError> {
        self.all_pages("/chain/nodes").await
    }

    /// A registered node, or `None`.
    pub async fn node(&self, address: &Address) -> Result<Option<NodeView>, ChainError> {
        self.get(&format!("/chain/node/{address}")).await?.found()
    }

    /// What node `address` must prove this period, or `None` if it is not
    /// registered.
    pub async fn proof_task(&self, address: &Address) -> Result<Option<ProofTaskView>, ChainError> {
        self.get(&format!("/chain/proof/{address}")).await?.found()
    }

    /// An open deal by its hex id, or `None` if it is not (or no longer) open.
    pub async fn deal(&self, id: &str) -> Result<Option<DealView>, ChainError> {
        self.get(&format!("/chain/deal/{id}")).await?.found()
    }

    /// Open deals with repair data and lost bytes no repair moved yet.
    pub async fn repairs(&self) -> Result<RepairList, ChainError> {
        self.all_pages("/chain/repairs").await
    }

    /// What a repairer needs of the state for deal `id` (hex), or `None`.
    pub async fn repair_state(&self, id: &str) -> Result<Option<RepairStateView>, ChainError> {
        self.get(&format!("/chain/repair/{id}")).await?.found()
    }

    /// Open deals, all of them or `owner`'s: every page, in deal id order.
    pub async fn deals(&self, owner: Option<&Address>) -> Result<DealList, ChainError> {
        let path = match owner {
            Some(o) => format!("/chain/deals?owner={o}"),
            None => "/chain/deals".to_string(),
        };
        self.all_pages(&path).await
    }

    /// Open deals whose repair data has repair tree root `root`
    /// ([`cairn_protocol::repair::data::tree_root`]): the deal of a file,
    /// found from its manifest.
    pub async fn deals_by_repair_root(&self, root: &[u8; 32]) -> Result<DealList, ChainError> {
        self.get(&format!("/chain/deals/repair/{}", hex::encode(root)))
            .await?
            .ok()
    }

    /// The block at `height`, or `None` if there is none (yet).
    pub async fn block(&self, height: u64) -> Result<Option<BlockView>, ChainError> {
        self.get(&format!("/chain/block/{height}")).await?.found()
    }

    /// A transaction pending at the validator asked or committed; `None`
    /// if it is neither.
    pub async fn tx(&self, id: &[u8; 32]) -> Result<Option<TxView>, ChainError> {
        self.get(&format!("/chain/tx/{}", hex::encode(id)))
            .await?
            .found()
    }

    /// Submits a signed transaction; returns its id once a validator's
    /// mempool took it.
    pub async fn submit(&self, tx: &SignedTx) -> Result<[u8; 32], ChainError> {
        let answer = self
            .request(
                Method::POST,
                "/chain/tx",
                Some(("application/octet-stream", tx.encode())),
            )
            .await?;
        match answer.status {
            StatusCode::ACCEPTED => {
                let view: SubmitView = answer.json()?;
                let bytes = hex::decode(&view.id).ok().and_then(|b| b.try_into().ok());
                bytes.ok_or_else(|| ChainError::Decode {
                    url: answer.url.clone(),
                    reason: format!("'{}' is not a transaction id", view.id),
                })
            }
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                let e = answer.message();
                Err(ChainError::Refused {
                    code: e.code,
                    reason: e.error,
                })
            }
            _ => Err(answer.error()),
        }
    }

    /// Waits until transaction `id` is in a finalized block (applied or
    /// refused: see the view's `ok` and `error`), for at most `timeout`.
    pub async fn wait_for_tx(
        &self,
        id: &[u8; 32],
        timeout: Duration,
    ) -> Result<TxView, ChainError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A validator other than the one submitted to knows the
            // transaction only once it is committed: a 404 means "not yet".
            if let Some(view) = self.tx(id).await? {
                if view.status == TxStatus::Committed {
                    return Ok(view);
                }
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Err(ChainError::Timeout {
                    id: hex::encode(id),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Signs `body` with `key` for this chain at the account's next nonce
    /// (counting its pending transactions) and submits it.
    pub async fn send(
        &self,
        key: &SigningKey,
        body: TxBody,
        fee: u64,
    ) -> Result<SignedTx, ChainError> {
        let status = self.status().await?;
        let signer = Address::of(&key.verifying_key());
        let account = self.account(&signer).await?;
        let tx = Transaction {
            genesis: status.genesis_hash,
            signer,
            nonce: account.next_nonce,
            fee,
            body,
        }
        .sign(key);
        self.submit(&tx).await?;
        Ok(tx)
    }
}

/// One HTTP request on a fresh connection (the API is cheap and requests
/// are few; no pool to go stale).
async fn once(
    authority: &str,
    prefix: &str,
    method: &Method,
    path: &str,
    body: &Option<(&str, Vec<u8>)>,
) -> Result<(StatusCode, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    // Drives the connection; ends when the answer is read and `sender` drops.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::builder()
        .method(method.clone())
        .uri(format!("{prefix}{path}"))
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json");
    let payload = match body {
        Some((content_type, bytes)) => {
            request = request.header(header::CONTENT_TYPE, *content_type);
            Bytes::from(bytes.clone())
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(payload))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(e: &Endpoint) -> (&str, &str) {
        match &e.target {
            Target::Http { authority, prefix } => (authority, prefix),
            Target::P2p(_) => panic!("{e:?} is not HTTP"),
        }
    }

    #[test]
    fn urls_parse_or_say_why_not() {
        let e = Endpoint::parse("http://127.0.0.1:4100").unwrap();
        assert_eq!(http(&e), ("127.0.0.1:4100", ""));
        assert!(!e.is_p2p());
        let e = Endpoint::parse("http://node.lan/api/").unwrap();
        assert_eq!(http(&e), ("node.lan:80", "/api"));
        let e = Endpoint::parse("http://[::1]:4100").unwrap();
        assert_eq!(http(&e).0, "[::1]:4100");
        assert_eq!(
            http(&Endpoint::parse("http://[::1]").unwrap()).0,
            "[::1]:80"
        );
        for bad in [
            "https://x:1",
            "127.0.0.1:4100",
            "http://",
            "http://h:port",
            "http://h:99999",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            ChainClient::new(&[], Duration::from_secs(1)),
            Err(ChainError::NotConfigured)
        ));
        assert_eq!(
            ChainError::NotConfigured.to_string(),
            "no chain configured: add chain = [\"http://…\"] (or a /p2p/ multiaddr) to the config"
        );
    }

    #[test]
    fn multiaddrs_parse_or_say_why_not() {
        let peer = libp2p::PeerId::random();
        let text = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{peer}");
        let e = Endpoint::parse(&text).unwrap();
        assert!(e.is_p2p());
        assert_eq!(e.url, text);
        match &e.target {
            Target::P2p(node) => {
                assert_eq!(node.peer, peer);
                assert_eq!(
                    node.addrs,
                    vec!["/ip4/127.0.0.1/udp/4001/quic-v1"
                        .parse::<libp2p::Multiaddr>()
                        .unwrap()]
                );
            }
            Target::Http { .. } => panic!("not libp2p"),
        }
        let tcp = format!("/dns4/validator.lan/tcp/4001/p2p/{peer}");
        assert!(Endpoint::parse(&tcp).unwrap().is_p2p());
        for bad in [
            "/ip4/127.0.0.1/udp/4001/quic-v1".to_string(),
            format!("/p2p/{peer}"),
            "/ip4/999.0.0.1/tcp/1".to_string(),
            "/nonsense".to_string(),
        ] {
            let e = Endpoint::parse(&bad).unwrap_err();
            assert!(matches!(e, ChainError::BadUrl { .. }), "{bad}");
            assert!(e.to_string().contains("/p2p/"), "{e}");
        }
        // Both kinds in one list.
        let client = ChainClient::new(
            &["http://127.0.0.1:4100".to_string(), text],
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(client.endpoints.len(), 2);
        // No swarm until a libp2p endpoint is asked.
        assert!(client.p2p.get().is_none());
        let e = Endpoint::parse("ftp://x").unwrap_err().to_string();
        assert!(e.contains("http://") && e.contains("/p2p/"), "{e}");
    }
}
