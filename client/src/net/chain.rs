//! The chain's API over libp2p, `/cairn/chain/1`
//! ([`cairn_protocol::chain_wire`]): the codec both sides use. The service
//! a validator answers with is the node's (`cairn_node::net::chain_service`).

use std::io;
use std::time::Duration;

use cairn_protocol::chain_wire::{
    check_frame_len, ChainApiRequest, ChainApiResponse, CHAIN_PROTOCOL, MAX_REQUEST_FRAME,
    MAX_RESPONSE_FRAME,
};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use super::invalid;

/// A request on the wire. On the receiving side, `Err` says why it could
/// not be read (out of bounds, garbage, too slow); the node answers 400.
#[derive(Debug)]
pub struct ChainRequest(pub Result<ChainApiRequest, String>);

/// The codec for `/cairn/chain/1`.
#[derive(Clone, Debug)]
pub struct ChainCodec {
    read_timeout: Duration,
}

impl ChainCodec {
    /// A codec that gives a request `read_timeout` to arrive.
    pub fn new(read_timeout: Duration) -> Self {
        Self { read_timeout }
    }

    pub fn protocol() -> StreamProtocol {
        StreamProtocol::new(CHAIN_PROTOCOL)
    }
}

/// Reads one frame's message, its length checked against `max` first.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = check_frame_len(prefix, max).map_err(invalid)?;
    let mut message = vec![0u8; len];
    io.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    io.write_all(frame).await?;
    io.flush().await
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for ChainCodec {
    type Protocol = StreamProtocol;
    type Request = ChainRequest;
    type Response = ChainApiResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ChainRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let read = async {
            let message = read_frame(io, MAX_REQUEST_FRAME)
                .await
                .map_err(|e| format!("unreadable request: {e}"))?;
            ChainApiRequest::decode(&message).map_err(|e| format!("bad request: {e}"))
        };
        Ok(ChainRequest(
            match tokio::time::timeout(self.read_timeout, read).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "request did not arrive within {:?}",
                    self.read_timeout
                )),
            },
        ))
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ChainApiResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let message = read_frame(io, MAX_RESPONSE_FRAME).await?;
        ChainApiResponse::decode(&message).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: ChainRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let request = request.0.map_err(invalid)?;
        write_frame(io, &request.encode().map_err(invalid)?).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: ChainApiResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response.encode().map_err(invalid)?).await
    }
}
