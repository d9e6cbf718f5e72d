//! Reads and writes [`cairn_protocol::wire`] frames on libp2p streams.
//!
//! Everything a peer sends is bounded before it is buffered: the header by
//! [`MAX_HEADER_LEN`], a body by the limits in [`Request::check`], and all
//! request bodies together by a byte budget shared by every connection. A
//! request whose body does not fit the budget within a short wait is still
//! read (and thrown away, a piece at a time) so the peer gets a clear `busy`
//! answer instead of a reset stream. How long a stream may take overall is
//! the request-response behaviour's timeout.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_protocol::wire::{
    check_header_len, decode_header, encode_header, ErrorKind, Request, Response, WireError,
    MAX_HEADER_LEN, PROTOCOL,
};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body_pool::BodyPool;
use super::invalid;

/// How long a request waits for room in the body budget before it is
/// answered `busy`.
const BUDGET_WAIT: Duration = Duration::from_secs(2);
/// Piece size for draining refused bodies.
const DRAIN_PIECE: usize = 64 * 1024;
/// Idle body buffers kept for reuse, per codec and its clones: sixteen
/// bodies of a MiB, the common shard size.
const IDLE_BODY_BYTES: usize = 16 << 20;

/// A request on the wire: header and body, plus, on the receiving side,
/// a refusal decided while reading and the budget it holds.
#[derive(Debug)]
pub struct ShardRequest {
    /// `None` when the header itself could not be read (then `refusal` says why).
    pub header: Option<Request>,
    pub body: Bytes,
    /// Set when the reader refused the request (limits, budget); the body
    /// was not kept and the request must be answered with this error.
    pub refusal: Option<WireError>,
    /// Budget held for the body until the request is dropped.
    _budget: Option<OwnedSemaphorePermit>,
}

impl ShardRequest {
    pub fn new(header: Request, body: Bytes) -> Self {
        Self {
            header: Some(header),
            body,
            refusal: None,
            _budget: None,
        }
    }

    fn refused(header: Option<Request>, refusal: WireError) -> Self {
        Self {
            header,
            body: Bytes::new(),
            refusal: Some(refusal),
            _budget: None,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.header.as_ref().map_or("unreadable", Request::kind)
    }
}

/// A response on the wire.
#[derive(Debug, Clone)]
pub struct ShardResponse {
    pub header: Response,
    pub body: Bytes,
}

impl ShardResponse {
    pub fn new(header: Response) -> Self {
        Self {
            header,
            body: Bytes::new(),
        }
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(Response::Error(WireError::new(kind, message)))
    }
}

/// The codec for `/cairn/shards/1`. Clones share the body budget.
#[derive(Clone, Debug)]
pub struct ShardCodec {
    budget: Arc<Semaphore>,
    read_timeout: Duration,
    bodies: BodyPool,
}

impl ShardCodec {
    /// A codec that buffers at most `inbound_buffer` bytes of request
    /// bodies at once (over every clone) and gives a request `read_timeout`
    /// to arrive.
    pub fn new(inbound_buffer: u64, read_timeout: Duration) -> Self {
        let permits = inbound_buffer.min(Semaphore::MAX_PERMITS as u64) as usize;
        Self {
            budget: Arc::new(Semaphore::new(permits)),
            read_timeout,
            bodies: BodyPool::new(IDLE_BODY_BYTES),
        }
    }

    /// Reads one request. Whatever the peer does wrong (a bad header, a
    /// short body, too slow) becomes a refusal the node answers and logs
    /// with the peer's id, rather than an I/O error libp2p would swallow.
    async fn read_inbound<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> ShardRequest {
        let header: Request = match read_header(io).await {
            Ok(h) => h,
            Err(e) => {
                return ShardRequest::refused(
                    None,
                    WireError::new(ErrorKind::Malformed, format!("unreadable header: {e}")),
                )
            }
        };
        let len = header.body_len();
        if let Err(refusal) = header.check() {
            // Too large to drain politely: answer and let the stream close.
            return ShardRequest::refused(Some(header), refusal);
        }
        if len == 0 {
            return ShardRequest::new(header, Bytes::new());
        }
        // `check` bounds bodies to MAX_SHARD_SIZE, well inside u32.
        let permits = u32::try_from(len).unwrap_or(u32::MAX);
        let acquire = self.budget.clone().acquire_many_owned(permits);
        let (permit, refusal) = match tokio::time::timeout(BUDGET_WAIT, acquire).await {
            Ok(Ok(permit)) => (Some(permit), None),
            _ => (
                None,
                Some(WireError::new(
                    ErrorKind::Busy,
                    "too many request bodies buffered; retry later",
                )),
            ),
        };
        let body = match permit {
            Some(_) => read_body(io, len, &self.bodies).await,
            None => drain(io, len).await.map(|()| Bytes::new()),
        };
        match body {
            Ok(body) => ShardRequest {
                header: Some(header),
                body,
                refusal,
                _budget: permit,
            },
            Err(e) => ShardRequest::refused(
                Some(header),
                WireError::new(
                    ErrorKind::Malformed,
                    format!("body of {len} bytes cut short: {e}"),
                ),
            ),
        }
    }

    /// The protocol this codec speaks.
    pub fn protocol() -> StreamProtocol {
        StreamProtocol::new(PROTOCOL)
    }
}

async fn read_header<T, H>(io: &mut T) -> io::Result<H>
where
    T: AsyncRead + Unpin + Send,
    H: for<'de> serde::Deserialize<'de>,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = check_header_len(prefix).map_err(invalid)?;
    debug_assert!(len <= MAX_HEADER_LEN);
    let mut header = vec![0u8; len];
    io.read_exact(&mut header).await?;
    decode_header(&header).map_err(invalid)
}

async fn read_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    len: u64,
    bodies: &BodyPool,
) -> io::Result<Bytes> {
    // `len` is checked against the protocol's limits before this is called.
    let mut body = bodies.take(len as usize);
    io.read_exact(body.bytes_mut()).await?;
    Ok(body.freeze())
}

async fn drain<T: AsyncRead + Unpin + Send>(io: &mut T, mut len: u64) -> io::Result<()> {
    let mut piece = vec![0u8; DRAIN_PIECE.min(len as usize)];
    while len > 0 {
        let n = (len as usize).min(piece.len());
        io.read_exact(&mut piece[..n]).await?;
        len -= n as u64;
    }
    Ok(())
}

async fn write_frame<T, H>(io: &mut T, header: &H, body: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    H: serde::Serialize,
{
    io.write_all(&encode_header(header)).await?;
    if !body.is_empty() {
        io.write_all(body).await?;
    }
    io.flush().await
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for ShardCodec {
    type Protocol = StreamProtocol;
    type Request = ShardRequest;
    type Response = ShardResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ShardRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match tokio::time::timeout(self.read_timeout, self.read_inbound(io)).await {
            Ok(request) => Ok(request),
            Err(_) => Ok(ShardRequest::refused(
                None,
                WireError::new(
                    ErrorKind::Timeout,
                    format!("request did not arrive within {:?}", self.read_timeout),
                ),
            )),
        }
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ShardResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let header: Response = read_header(io).await?;
        header.check().map_err(invalid)?;
        let body = match header.body_len() {
            0 => Bytes::new(),
            len => read_body(io, len, &self.bodies).await?,
        };
        Ok(ShardResponse { header, body })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: ShardRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let Some(header) = &request.header else {
            return Err(invalid("a request needs a header"));
        };
        if request.body.len() as u64 != header.body_len() {
            return Err(invalid("request body length differs from its header"));
        }
        write_frame(io, header, &request.body).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: ShardResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if response.body.len() as u64 != response.header.body_len() {
            return Err(invalid("response body length differs from its header"));
        }
        write_frame(io, &response.header, &response.body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::test_util::block_on;
    use cairn_protocol::wire::StoreRequest;
    use cairn_protocol::ContentId;
    use libp2p::request_response::Codec;

    #[test]
    fn a_request_survives_the_wire() {
        block_on(async {
            let body = Bytes::from(vec![7u8; 100_000]);
            let header = Request::Store(StoreRequest {
                id: ContentId::of(&body),
                size: body.len() as u64,
                expires_at: None,
                owner: None,
            });
            let mut codec = ShardCodec::new(1 << 20, Duration::from_secs(5));
            let mut wire = Vec::new();
            codec
                .write_request(
                    &ShardCodec::protocol(),
                    &mut wire,
                    ShardRequest::new(header.clone(), body.clone()),
                )
                .await
                .unwrap();
            let mut reader = libp2p::futures::io::Cursor::new(wire);
            let got = codec
                .read_request(&ShardCodec::protocol(), &mut reader)
                .await
                .unwrap();
            assert_eq!(got.header, Some(header));
            assert_eq!(got.body, body);
            assert!(got.refusal.is_none());
        });
    }

    #[test]
    fn garbage_and_short_bodies_become_refusals() {
        block_on(async {
            let mut codec = ShardCodec::new(1 << 20, Duration::from_secs(5));
            let read = |bytes: Vec<u8>| {
                let mut codec = codec.clone();
                async move {
                    let mut r = libp2p::futures::io::Cursor::new(bytes);
                    codec
                        .read_request(&ShardCodec::protocol(), &mut r)
                        .await
                        .unwrap()
                }
            };
            let huge = read(u32::MAX.to_be_bytes().to_vec()).await;
            assert_eq!(huge.refusal.unwrap().kind, ErrorKind::Malformed);
            let empty = read(Vec::new()).await;
            assert_eq!(empty.refusal.unwrap().kind, ErrorKind::Malformed);
            let mut short = encode_header(&Request::Store(StoreRequest {
                id: ContentId::of(b"x"),
                size: 1000,
                expires_at: None,
                owner: None,
            }));
            short.extend_from_slice(&[1; 10]);
            let short = read(short).await;
            assert_eq!(short.refusal.unwrap().kind, ErrorKind::Malformed);
            assert!(short.body.is_empty());
            // The budget was given back.
            assert_eq!(codec.budget.available_permits(), 1 << 20);
            let _ = &mut codec;
        });
    }
}
