//! The chain's API over libp2p (`/cairn/chain/1`): a `ChainClient` whose
//! only endpoint is validator 0's QUIC multiaddr reads status, accounts and
//! nodes, submits a transaction and waits for its block, and gets what the
//! HTTP API says; a storage node without a ledger says it has no chain API;
//! a path outside `/chain/` is refused.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_client::chain::{ChainClient, ChainError};
use cairn_client::net::client::{ClientError, ClientSettings, ShardClient};
use cairn_node::local_chain;
use cairn_protocol::chain::{Address, Transaction, TxBody};
use cairn_protocol::chain_wire::{ChainApiRequest, ChainMethod};
use ed25519_dalek::SigningKey;

use crate::common::{init, TestNode};

#[test]
fn the_chain_api_answers_over_libp2p_as_over_http() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| init(root.path(), &format!("v{i}"), "64MiB", &[]))
        .collect();
    local_chain::setup(root.path(), &dirs, "p2p-test", 300, |_| {}).unwrap();
    let validators: Vec<TestNode> = dirs.iter().map(|d| TestNode::start(d)).collect();
    let storage = TestNode::start(&init(root.path(), "s", "16MiB", &[]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let quic = validators[0].full_addr("/quic-v1");
        let chain = ChainClient::new(std::slice::from_ref(&quic), Duration::from_secs(10)).unwrap();

        // Status over libp2p; the chain moves on.
        let first = chain.status().await.unwrap();
        assert_eq!(first.chain_id, "p2p-test");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = chain.status().await.unwrap();
            if now.height > first.height {
                break;
            }
            assert!(Instant::now() < deadline, "height stuck at {}", now.height);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        chain.nodes().await.unwrap();

        // A faucet transaction submitted over libp2p lands in a block.
        let key = SigningKey::from_bytes(&[9; 32]);
        let signer = Address::of(&key.verifying_key());
        let before = chain.account(&signer).await.unwrap();
        let tx = Transaction {
            genesis: first.genesis_hash,
            signer,
            nonce: before.next_nonce,
            // A fresh account cannot pay a fee; a faucet needs none.
            fee: 0,
            body: TxBody::Faucet { amount: 777 },
        }
        .sign(&key);
        let id = chain.submit(&tx).await.unwrap();
        let view = chain
            .wait_for_tx(&id, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(view.ok, Some(true), "{view:?}");
        let after = chain.account(&signer).await.unwrap();
        assert_eq!(after.next_nonce, before.next_nonce + 1);
        assert!(after.balance > before.balance);

        // The same bytes as the HTTP API.
        let path = format!("/chain/account/{signer}");
        let node = quic.parse().unwrap();
        let client = ShardClient::start(ClientSettings::default()).unwrap();
        let p2p = client
            .chain_api(&node, ChainApiRequest::get(path.clone()))
            .await
            .unwrap();
        assert_eq!(p2p.status, 200);
        assert_eq!(p2p.content_type, "application/json");
        let http = validators[0].http_get(&path);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&p2p.body).unwrap(),
            serde_json::from_str::<serde_json::Value>(&http).unwrap()
        );
        // An unknown route is the router's 404; a path outside /chain/ is
        // refused before it leaves.
        let unknown = client
            .chain_api(&node, ChainApiRequest::get("/chain/nothing-here"))
            .await
            .unwrap();
        assert_eq!(unknown.status, 404);
        let outside = ChainApiRequest {
            method: ChainMethod::Get,
            path: "/status".into(),
            body: Vec::new(),
        };
        let e = client.chain_api(&node, outside).await.unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");

        // A storage node without a ledger has no chain API.
        let plain = storage.full_addr("/quic-v1");
        let e = ChainClient::new(&[plain], Duration::from_secs(10))
            .unwrap()
            .status()
            .await
            .unwrap_err();
        match e {
            ChainError::Http {
                status, message, ..
            } => {
                assert_eq!(status, 404);
                assert!(message.contains("not a validator"), "{message}");
            }
            other => panic!("expected a 404, got {other}"),
        }
    });
}
