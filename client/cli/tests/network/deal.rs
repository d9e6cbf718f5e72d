//! A storage deal for an upload: receipts from every node that holds its
//! shards, each of which opens the deal in the chain's state machine and
//! commits the node to exactly what it stores.

use std::collections::HashSet;

use cairn_client::deal::{self, DealError};
use cairn_protocol::chain::{
    merkle, peer_id_of, receipt_message, Address, ChainState, Genesis, Transaction, TxBody,
};
use cairn_protocol::wire::ErrorKind;
use ed25519_dalek::SigningKey;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_holding_an_upload_signs_what_it_stores() {
    let net = TestNet::start(6);
    let client = net.client(3, 2);
    let (path, _) = net.file("f", 1_500_000, 11);
    let report = put(&client, &path).await;
    let network = client.network();

    // The placement names every shard of the file once, and each manifest copy.
    assert_eq!(
        report.placement.len() as u64,
        report.segments * report.n as u64 + report.manifest_copies as u64
    );
    let manifest_id = report.capability.manifest;
    assert_eq!(
        report
            .placement
            .iter()
            .filter(|p| p.id == manifest_id)
            .count(),
        report.manifest_copies
    );

    // Nodes sign only for a deal starting soon after the chain's epoch.
    let chain = cairn_client::chain::ChainClient::new(
        &net.devnet.chain_urls(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let epoch = chain.status().await.unwrap().epoch;
    let plan = deal::plan(&report.placement, 100, epoch + 2, epoch + 12).unwrap();
    // 5 columns plus manifest copies over 6 nodes: most nodes take part.
    assert!(plan.nodes.len() >= 5, "{} nodes", plan.nodes.len());
    let owner_key = client.account().signing_key();
    let owner = Address::of(&owner_key.verifying_key());
    let chain_hash = chain.status().await.unwrap().genesis_hash;
    let commitments = deal::collect_receipts(network, &plan, &chain_hash, owner, 1, 3)
        .await
        .unwrap();
    assert_eq!(commitments.len(), plan.nodes.len());

    let mut terms = plan.terms.clone();
    terms.commitments = commitments.clone();
    for (c, part) in commitments.iter().zip(&plan.nodes) {
        // The receipt verifies as the chain verifies it...
        let key = c.node.verifying_key().unwrap();
        key.verify_strict(
            &receipt_message(&chain_hash, &owner, 1, &terms, c),
            &ed25519_dalek::Signature::from_bytes(&c.receipt.0),
        )
        .unwrap();
        // ...and commits the node to what it really stores.
        assert_eq!(c.node, part.address);
        assert_eq!(Some(c.root), merkle::root(&part.shards));
        let index = network.index_of(&part.node.to_bytes()).unwrap();
        let ids: Vec<_> = part.shards.iter().map(|s| s.0).collect();
        let sizes = network.has(index, &ids).await.unwrap();
        let want: Vec<_> = part.shards.iter().map(|s| Some(s.1)).collect();
        assert_eq!(sizes, want, "node {}", part.node);
        assert_eq!(c.bytes, part.shards.iter().map(|s| s.1).sum::<u64>());
        assert_eq!(c.shards as usize, part.shards.len());
    }
    let placed: HashSet<_> = report.placement.iter().map(|p| p.node).collect();
    assert_eq!(placed.len(), plan.nodes.len());

    // The chain opens the deal: every node registered, the owner funded.
    let mut node_keys = Vec::new();
    for i in 0..net.devnet.nodes().len() {
        let text = std::fs::read_to_string(
            net.devnet
                .node_dir(i)
                .join(cairn_node::config::IDENTITY_FILE),
        )
        .unwrap();
        let seed: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
        node_keys.push(SigningKey::from_bytes(&seed));
    }
    // The devnet's own genesis: receipts are bound to its hash.
    let genesis: Genesis =
        serde_json::from_slice(&std::fs::read(net.devnet.dir().join("genesis.json")).unwrap())
            .unwrap();
    assert_eq!(genesis.hash(), chain_hash);
    let mut state = ChainState::from_genesis(&genesis).unwrap();
    let faucet = genesis.faucet_max.unwrap();
    let send = |state: &mut ChainState, k: &SigningKey, fee: u64, body: TxBody| {
        let signer = Address::of(&k.verifying_key());
        let tx = Transaction {
            genesis: state.genesis_hash(),
            signer,
            nonce: state.account(&signer).nonce,
            fee,
            body,
        };
        state.apply_tx(&tx.sign(k)).unwrap();
    };
    for k in node_keys.iter().chain([&owner_key]) {
        send(&mut state, k, 0, TxBody::Faucet { amount: faucet });
    }
    for k in &node_keys {
        let body = TxBody::RegisterNode {
            peer_id: peer_id_of(&Address::of(&k.verifying_key())),
            addresses: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
            capacity: 1 << 30,
            // Enough to cover what the deal commits the node to.
            stake: faucet / 2,
        };
        send(&mut state, k, genesis.min_fee, body);
    }
    // The state machine at the devnet's epoch, so the deal's start is valid.
    for h in 1..=epoch * 10 {
        state.apply_block(h, [0; 32], &[]).unwrap();
    }
    let open = Transaction {
        genesis: chain_hash,
        signer: owner,
        nonce: 1,
        fee: genesis.min_fee,
        body: TxBody::OpenDeal(terms),
    };
    state.apply_tx(&open.sign(&owner_key)).unwrap();
    assert_eq!(state.deals().count(), 1);

    // Another account cannot get receipts for this account's shards.
    let stranger = Address::of(&SigningKey::from_bytes(&[9; 32]).verifying_key());
    match deal::collect_receipts(network, &plan, &chain_hash, stranger, 0, 3).await {
        Err(DealError::Receipts { failed, errors, .. }) => {
            assert_eq!(failed, plan.nodes.len());
            for (_, e) in errors {
                assert_eq!(e.refusal().unwrap().kind, ErrorKind::Unauthorized);
            }
        }
        other => panic!("a stranger got receipts: {other:?}"),
    }
}
