//! The chain's API over libp2p, `/cairn/chain/1`: the service a node runs
//! each request through (the codec is the client library's,
//! [`cairn_client::net::chain`]).
//!
//! A validator answers with the very routes of its HTTP API
//! ([`crate::ledger::http::routes`]): a request becomes an
//! `axum::http::Request` and goes through the router, so both transports
//! answer alike by construction. A node without a ledger answers 404.

use cairn_client::chain::api::ErrorView;
use cairn_client::net::chain::ChainRequest;
use cairn_protocol::chain_wire::{
    ChainApiResponse, ChainMethod, MAX_CONTENT_TYPE_LEN, MAX_RESPONSE_BODY,
};
use http_body_util::{BodyExt, Limited};

/// What a node without a ledger says.
pub const NOT_A_VALIDATOR: &str = "this node is not a validator: it has no chain API";

/// An answer with a JSON [`ErrorView`], as the HTTP API gives.
pub fn error_response(status: u16, error: impl Into<String>) -> ChainApiResponse {
    let view = ErrorView {
        error: error.into(),
        code: None,
    };
    ChainApiResponse {
        status,
        content_type: "application/json".into(),
        body: serde_json::to_vec(&view).unwrap_or_default(),
    }
}

/// Answers chain API requests: through the ledger's HTTP routes, or 404
/// without a ledger.
#[derive(Clone)]
pub struct ChainService {
    router: Option<axum::Router>,
}

impl ChainService {
    /// `router`: [`crate::ledger::http::routes`] of the node's ledger.
    pub fn new(router: Option<axum::Router>) -> Self {
        Self { router }
    }

    /// Answers one request.
    pub async fn handle(&self, request: ChainRequest) -> ChainApiResponse {
        let request = match request.0 {
            Ok(r) => r,
            Err(e) => return error_response(400, e),
        };
        let Some(router) = &self.router else {
            return error_response(404, NOT_A_VALIDATOR);
        };
        let method = match request.method {
            ChainMethod::Get => axum::http::Method::GET,
            ChainMethod::Post => axum::http::Method::POST,
        };
        let http = match axum::http::Request::builder()
            .method(method)
            .uri(&request.path)
            .body(axum::body::Body::from(request.body))
        {
            Ok(r) => r,
            Err(e) => return error_response(400, format!("bad path: {e}")),
        };
        let response = match tower::ServiceExt::oneshot(router.clone(), http).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_CONTENT_TYPE_LEN)
            .unwrap_or_default()
            .to_string();
        match Limited::new(response.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await
        {
            Ok(body) => {
                let answer = ChainApiResponse {
                    status,
                    content_type,
                    body: body.to_bytes().to_vec(),
                };
                match answer.check() {
                    Ok(()) => answer,
                    Err(e) => error_response(500, format!("answer out of bounds: {e}")),
                }
            }
            Err(e) => error_response(500, format!("answer not readable: {e}")),
        }
    }
}

impl std::fmt::Debug for ChainService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainService")
            .field("validator", &self.router.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::net::chain::ChainCodec;
    use cairn_protocol::chain_wire::ChainApiRequest;
    use libp2p::request_response::Codec;
    use std::time::Duration;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn requests_cross_the_wire_and_garbage_becomes_a_400() {
        block_on(async {
            let mut codec = ChainCodec::new(Duration::from_secs(5));
            let p = ChainCodec::protocol();
            let request = ChainApiRequest::get("/chain/status?x=1");
            let mut wire = Vec::new();
            codec
                .write_request(&p, &mut wire, ChainRequest(Ok(request.clone())))
                .await
                .unwrap();
            let mut r = libp2p::futures::io::Cursor::new(wire);
            let got = codec.read_request(&p, &mut r).await.unwrap();
            assert_eq!(got.0, Ok(request));

            for bytes in [
                u32::MAX.to_be_bytes().to_vec(),
                vec![],
                vec![0, 0, 0, 3, 9, 9, 9],
                ChainApiRequest::get("/status")
                    .encode()
                    .unwrap_or_else(|_| {
                        // Encoding refuses it; hand-make the frame.
                        let m = postcard::to_allocvec(&ChainApiRequest::get("/status")).unwrap();
                        let mut f = (m.len() as u32).to_be_bytes().to_vec();
                        f.extend(m);
                        f
                    }),
            ] {
                let mut r = libp2p::futures::io::Cursor::new(bytes);
                let got = codec.read_request(&p, &mut r).await.unwrap();
                assert!(got.0.is_err());
                let answer = ChainService::new(None).handle(got).await;
                assert_eq!(answer.status, 400);
            }
            let mut wire = Vec::new();
            assert!(codec
                .write_request(&p, &mut wire, ChainRequest(Ok(ChainApiRequest::get("/x"))))
                .await
                .is_err());

            let answer = ChainService::new(None)
                .handle(ChainRequest(Ok(ChainApiRequest::get("/chain/status"))))
                .await;
            assert_eq!(answer.status, 404);
            let view: ErrorView = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(view.error, NOT_A_VALIDATOR);
            let mut wire = Vec::new();
            codec
                .write_response(&p, &mut wire, answer.clone())
                .await
                .unwrap();
            let mut r = libp2p::futures::io::Cursor::new(wire);
            assert_eq!(codec.read_response(&p, &mut r).await.unwrap(), answer);
        });
    }
}
