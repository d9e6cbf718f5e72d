//! `ChainClient` against a validator's chain API served in-process, with a
//! stand-in for the consensus engine that commits what the mempool
//! proposes every 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::chain::api::TxStatus;
use cairn_client::chain::{ChainClient, ChainError};
use cairn_node::ledger::{FinalizedBlock, Ledger, MempoolConfig};
use cairn_protocol::chain::{Address, Allocation, Genesis, Transaction, TxBody};
use ed25519_dalek::SigningKey;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn addr(seed: u8) -> Address {
    Address::of(&key(seed).verifying_key())
}

async fn serve(ledger: Arc<Ledger>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let bound = listener.local_addr().unwrap();
    let app = cairn_node::ledger::http::routes(ledger);
    tokio::spawn(async move { axum::serve(listener, app).await });
    bound
}

/// Commits the mempool's proposal as the next block, forever.
fn engine(ledger: Arc<Ledger>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut parent = [0u8; 32];
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let height = ledger.store().height() + 1;
            let digest = *blake3::hash(&height.to_le_bytes()).as_bytes();
            let txs = ledger.propose(100, 1 << 20);
            // The root consensus would have finalized: the proposer's.
            let beacon: cairn_node::ledger::BlockBeacon = Default::default();
            let state_root = (*ledger.store().state())
                .clone()
                .apply_block(height, beacon.beacon, &txs)
                .unwrap()
                .state_root;
            ledger
                .commit(FinalizedBlock {
                    height,
                    digest,
                    parent,
                    timestamp_ms: 1_000 * height,
                    proposer: vec![1],
                    txs,
                    beacon,
                    state_root,
                })
                .unwrap();
            parent = digest;
        }
    })
}

/// A port nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn status_submit_wait_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = Genesis::devnet(
        "client-test",
        vec![addr(100), addr(101)],
        vec![Allocation {
            address: addr(1),
            amount: 1_000,
        }],
    );
    let ledger = Arc::new(Ledger::open(dir.path(), &genesis, MempoolConfig::default()).unwrap());
    let http = serve(ledger.clone()).await;
    let _engine = engine(ledger.clone());
    // The first validator is down: requests go on to the next.
    let chain = ChainClient::new(
        &[dead_url(), format!("http://{http}/")],
        Duration::from_secs(5),
    )
    .unwrap();

    let status = chain.status().await.unwrap();
    assert_eq!(status.chain_id, "client-test");
    assert_eq!(status.validators, vec![addr(100), addr(101)]);
    assert_eq!(status.faucet_max, Some(1_000_000_000));

    // A transfer, signed at the account's next nonce, waited for.
    let tx = chain
        .send(
            &key(1),
            TxBody::Transfer {
                to: addr(2),
                amount: 300,
            },
            status.min_fee,
        )
        .await
        .unwrap();
    let view = chain
        .wait_for_tx(&tx.id(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(view.status, TxStatus::Committed);
    assert_eq!(view.ok, Some(true), "{view:?}");
    let height = view.height.unwrap();
    let block = chain.block(height).await.unwrap().unwrap();
    assert!(block.txs.iter().any(|t| t.id == hex::encode(tx.id())));
    assert_eq!(chain.account(&addr(2)).await.unwrap().balance, 300);
    let a1 = chain.account(&addr(1)).await.unwrap();
    assert_eq!((a1.balance, a1.nonce), (1_000 - 300 - 1, 1));

    // The faucet, from an empty account, with no fee.
    let mint = chain
        .send(&key(3), TxBody::Faucet { amount: 5_000 }, 0)
        .await
        .unwrap();
    let view = chain
        .wait_for_tx(&mint.id(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(view.ok, Some(true));
    assert_eq!(chain.account(&addr(3)).await.unwrap().balance, 5_000);

    // A refusal carries the mempool's reason; a replay is stale.
    let e = chain.submit(&tx).await.unwrap_err();
    match e {
        ChainError::Refused { code, reason } => {
            assert_eq!(code.as_deref(), Some("stale_nonce"), "{reason}");
            assert!(reason.contains("nonce"), "{reason}");
        }
        other => panic!("{other}"),
    }
    let other_chain = Transaction {
        genesis: cairn_protocol::chain::GenesisHash([0xee; 32]),
        signer: addr(1),
        nonce: 1,
        fee: 1,
        body: TxBody::Transfer {
            to: addr(2),
            amount: 1,
        },
    }
    .sign(&key(1));
    let e = chain.submit(&other_chain).await.unwrap_err();
    assert!(e.to_string().contains(&"ee".repeat(32)), "{e}");

    assert!(chain.tx(&[9; 32]).await.unwrap().is_none());
    assert!(chain.block(1_000_000).await.unwrap().is_none());
    assert!(chain.node(&addr(1)).await.unwrap().is_none());
    assert_eq!(chain.nodes().await.unwrap().total, 0);
    assert_eq!(chain.deals(Some(&addr(1))).await.unwrap().total, 0);
    assert_eq!(chain.deals(None).await.unwrap().total, 0);
    let e = chain
        .wait_for_tx(&[9; 32], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn no_chain_or_no_validator_says_so() {
    let e = ChainClient::new(&[], Duration::from_secs(1)).unwrap_err();
    assert!(e.to_string().starts_with("no chain configured"), "{e}");
    let chain = ChainClient::new(&[dead_url(), dead_url()], Duration::from_secs(2)).unwrap();
    let e = chain.status().await.unwrap_err();
    assert!(matches!(e, ChainError::Unreachable(_)), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}
