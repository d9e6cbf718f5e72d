use std::net::SocketAddr;

use cairn_protocol::chain::{
    peer_id_of, receipt_message, Allocation, Commitment, DealTerms, Genesis, Sig, SignedTx,
    Transaction, TxBody,
};
use ed25519_dalek::Signer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::ledger::store::tests::{addr, beacon, block, digest, genesis, key, rooted, transfer};
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

/// Key 1 opens a deal of one 4 KiB shard on key 2's node, with key 2's
/// receipt, at `nonce`.
fn open_deal(nonce: u64, price_per_epoch: u64, start_epoch: u64, end_epoch: u64) -> SignedTx {
    let mut terms = DealTerms {
        size: 4096,
        price_per_epoch,
        start_epoch,
        end_epoch,
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
        nonce,
        &terms,
        &terms.commitments[0],
    );
    terms.commitments[0].receipt = Sig(key(2).sign(&message).to_bytes());
    signed(1, nonce, TxBody::OpenDeal(terms))
}

/// Key 2 registers as a node in block 1; key 1 opens a deal on it in
/// block 2 (and pays key 3).
fn ledger_with_history(dir: &std::path::Path) -> (Arc<Ledger>, SignedTx, DealId) {
    let ledger = Ledger::open(&dir.join("chain"), &genesis(), MempoolConfig::default()).unwrap();
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
    let open = open_deal(1, 10, 1, 50);
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
    let deal = |nonce: u64| open_deal(nonce, 1, 3, 60);
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
