//! The bulk transport's handshake on real loopback sockets: the right
//! peer is accepted and named, a wrong peer id and a plaintext peer are
//! refused, and frames go through the shared codec.

use std::net::SocketAddr;

use bytes::Bytes;
use cairn_protocol::wire::{ErrorKind, Request, Response};
use libp2p::futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::net::test_util::block_on;

/// A TLS server on 127.0.0.1 that accepts one connection and returns the
/// peer id it saw (or the handshake's error) and the agreed suite.
async fn tls_server(
    keypair: &Keypair,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<io::Result<(PeerId, String)>>,
) {
    let acceptor = acceptor(&TlsIdentity::new(keypair).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (peer, mut tls) = accept(&acceptor, stream).await?;
        let suite = tls::suite_name(tls.get_ref().1.negotiated_cipher_suite());
        // Echo one byte so the client sees the session work.
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await?;
        tls.write_all(&b).await?;
        tls.flush().await?;
        Ok((peer, suite))
    });
    (addr, task)
}

#[test]
fn the_expected_peer_is_accepted_and_both_sides_learn_who() {
    block_on(async {
        let (server, client) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (addr, task) = tls_server(&server).await;
        let identity = TlsIdentity::new(&client).unwrap();
        let config = identity
            .client_config(server.public().to_peer_id())
            .unwrap();
        let mut conn = connect(config, addr).await.unwrap();
        assert_eq!(
            tls::peer_of(conn.get_ref().1.peer_certificates()),
            Some(server.public().to_peer_id())
        );
        conn.write_all(b"x").await.unwrap();
        conn.flush().await.unwrap();
        let mut b = [0u8; 1];
        conn.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"x");
        let (peer, suite) = task.await.unwrap().unwrap();
        assert_eq!(peer, client.public().to_peer_id());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("aes") {
            assert_eq!(suite, "TLS13_AES_128_GCM_SHA256");
        }
        assert!(suite.starts_with("TLS13_"), "{suite}");
    });
}

#[test]
fn a_server_with_another_peer_id_is_refused() {
    block_on(async {
        let server = Keypair::generate_ed25519();
        let (addr, task) = tls_server(&server).await;
        let identity = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let expected = PeerId::random();
        let config = identity.client_config(expected).unwrap();
        let err = connect(config, addr).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BulkError::Handshake { .. }), "{text}");
        // rustls shows the verifier's error by its Debug form.
        assert!(
            text.contains("WrongPeer") && text.contains(&expected.to_string()),
            "{text}"
        );
        // The server saw the handshake fail too, not a session.
        assert!(task.await.unwrap().is_err());
    });
}

#[test]
fn a_plaintext_server_is_refused() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nhello").await;
            let mut sink = [0u8; 1024];
            let _ = s.read(&mut sink).await;
        });
        let identity = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
        let config = identity.client_config(PeerId::random()).unwrap();
        let err = connect(config, addr).await.unwrap_err();
        assert!(matches!(err, BulkError::Handshake { .. }), "{err}");
    });
}

#[test]
fn a_plaintext_client_gets_no_session() {
    block_on(async {
        let (addr, task) = tls_server(&Keypair::generate_ed25519()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&encode_store_header()).await.unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(!err.to_string().is_empty());
    });
}

fn encode_store_header() -> Vec<u8> {
    cairn_protocol::wire::encode_header(&Request::Info)
}

#[test]
fn a_request_and_its_answer_cross_a_pooled_connection() {
    block_on(async {
        let server = Keypair::generate_ed25519();
        let acceptor = acceptor(&TlsIdentity::new(&server).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A server that answers every request on its one connection with
        // a refusal naming the request's kind.
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (peer, mut tls) = accept(&acceptor, stream).await.unwrap();
            let mut codec = ShardCodec::new(1 << 20, Duration::from_secs(5));
            let protocol = ShardCodec::protocol();
            loop {
                let Ok(request) = codec.read_request(&protocol, &mut tls).await else {
                    return;
                };
                if request.header.is_none() {
                    return;
                }
                let answer = ShardResponse::error(
                    ErrorKind::NotFound,
                    format!("{} from {peer}", request.kind()),
                );
                if codec
                    .write_response(&protocol, &mut tls, answer)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let client_key = Keypair::generate_ed25519();
        let client = BulkClient::new(&client_key, 2, Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            let response = client
                .request(
                    server.public().to_peer_id(),
                    addr,
                    ShardRequest::new(Request::Info, Bytes::new()),
                )
                .await
                .unwrap();
            let Response::Error(e) = response.header else {
                panic!("unexpected {:?}", response.header);
            };
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert!(e
                .message
                .contains(&client_key.public().to_peer_id().to_string()));
        }
    });
}
