//! Deal receipts from a real node: it signs only for shards it holds, of
//! the sizes listed, owned by the deal's owner, under the right root; and
//! what it signs opens a deal in the chain's state machine.

use bytes::Bytes;
use cairn_client::net::client::{ClientError, ClientSettings, NodeAddr, ShardClient};
use cairn_client::net::peer_address;
use cairn_node::config::IDENTITY_FILE;
use cairn_protocol::chain::{
    merkle, Address, Allocation, ChainState, Genesis, GenesisHash, Sig, Transaction, TxBody,
};
use cairn_protocol::wire::{encode_header, ErrorKind, ReceiptRequest, Request, MAX_RECEIPT_SHARDS};
use cairn_protocol::ContentId;
use ed25519_dalek::SigningKey;

use crate::common::{bytes, init, TestNode};
use crate::hostile::{error_kind, hostile_peer, send, Raw};

const CHAIN: &str = "receipts-test";

/// The chain the receipts are for: the owner and the node have funds.
fn test_genesis(owner: Address, node: Address) -> Genesis {
    Genesis::devnet(
        CHAIN,
        vec![Address([1; 32])],
        [owner, node]
            .into_iter()
            .map(|address| Allocation {
                address,
                amount: 1 << 40,
            })
            .collect(),
    )
}

fn request(chain: &GenesisHash, owner: Address, shards: &[(ContentId, u64)]) -> ReceiptRequest {
    ReceiptRequest {
        genesis: *chain,
        owner,
        owner_nonce: 0,
        // This node's part is the whole deal, so the chain can open it.
        size: shards.iter().map(|s| s.1).sum(),
        price_per_epoch: 10,
        start_epoch: 1,
        end_epoch: 5,
        root: merkle::root(shards).unwrap(),
        shards: shards.len() as u32,
        bytes: shards.iter().map(|s| s.1).sum(),
    }
}

fn refusal(r: Result<Sig, ClientError>) -> ErrorKind {
    match r {
        Err(e) => {
            e.refusal()
                .unwrap_or_else(|| panic!("not a refusal: {e}"))
                .kind
        }
        Ok(_) => panic!("the node signed"),
    }
}

/// Opens a deal with the node's receipt in a fresh chain state: the chain's
/// own check of the signature. The node's key is read from its key file,
/// only to register it.
fn open_deal(node: &TestNode, owner_key: &SigningKey, request: &ReceiptRequest, sig: Sig) {
    let seed = hex::decode(
        std::fs::read_to_string(node.dir.join(IDENTITY_FILE))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let node_key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let node_address = Address::of(&node_key.verifying_key());
    let owner = Address::of(&owner_key.verifying_key());
    let genesis = test_genesis(owner, node_address);
    let mut state = ChainState::from_genesis(&genesis).unwrap();
    let register = Transaction {
        genesis: genesis.hash(),
        signer: node_address,
        nonce: 0,
        fee: 1,
        body: TxBody::RegisterNode {
            peer_id: cairn_protocol::chain::peer_id_of(&node_address),
            addresses: vec![node.info.listen[0].clone()],
            capacity: 1 << 30,
            stake: 2_000,
        },
    };
    state.apply_tx(&register.sign(&node_key)).unwrap();
    let mut terms = request.terms();
    terms.commitments = vec![request.commitment(node_address, sig)];
    let open = Transaction {
        genesis: genesis.hash(),
        signer: owner,
        nonce: request.owner_nonce,
        fee: 1,
        body: TxBody::OpenDeal(terms),
    };
    state.apply_tx(&open.sign(owner_key)).unwrap();
}

async fn store(
    client: &ShardClient,
    addr: &NodeAddr,
    data: &[u8],
    owner: &SigningKey,
) -> ContentId {
    let id = ContentId::of(data);
    client
        .store(addr, id, Bytes::from(data.to_vec()), None, owner)
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signs_receipts_only_for_what_it_holds_for_the_owner() {
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let owner_key = SigningKey::from_bytes(&[7; 32]);
    let owner = Address::of(&owner_key.verifying_key());
    let stranger_key = SigningKey::from_bytes(&[8; 32]);
    let stranger = Address::of(&stranger_key.verifying_key());

    // The node says who it is on the chain, the same in both places, and
    // it is the key its peer id embeds.
    let address = peer_address(&addr.peer).unwrap();
    assert_eq!(client.info(&addr).await.unwrap().chain_address, address);
    assert_eq!(
        node.status()["chain_address"].as_str().unwrap(),
        address.to_string()
    );

    let chain = test_genesis(owner, address).hash();
    let mut shards = Vec::new();
    for seed in 0..4u64 {
        let data = bytes(10_000 + seed as usize * 1000, seed);
        shards.push((
            store(&client, &addr, &data, &owner_key).await,
            data.len() as u64,
        ));
    }
    let strangers = bytes(5_000, 99);
    let strangers = (
        store(&client, &addr, &strangers, &stranger_key).await,
        5_000,
    );

    // Held, right sizes, right owner: signed, and the chain accepts it.
    let good = request(&chain, owner, &shards);
    let sig = client.receipt(&addr, &good, &shards).await.unwrap();
    open_deal(&node, &owner_key, &good, sig.clone());
    // The same request signs the same way (ed25519 is deterministic).
    assert_eq!(client.receipt(&addr, &good, &shards).await.unwrap(), sig);

    // A shard the node does not hold.
    let mut missing = shards.clone();
    missing.push((ContentId::of(b"never stored"), 12));
    assert_eq!(
        refusal(
            client
                .receipt(&addr, &request(&chain, owner, &missing), &missing)
                .await
        ),
        ErrorKind::NotFound
    );

    // A size other than the stored one, under a root that matches the lie.
    let mut resized = shards.clone();
    resized[1].1 += 1;
    assert_eq!(
        refusal(
            client
                .receipt(&addr, &request(&chain, owner, &resized), &resized)
                .await
        ),
        ErrorKind::Malformed
    );

    // A root that is not the list's (the list's order changed under it),
    // and a byte count that is not the list's.
    let mut reordered = shards.clone();
    reordered.swap(0, 3);
    assert_eq!(
        refusal(client.receipt(&addr, &good, &reordered).await),
        ErrorKind::Malformed
    );
    let mut wrong_bytes = good.clone();
    wrong_bytes.bytes += 1;
    assert_eq!(
        refusal(client.receipt(&addr, &wrong_bytes, &shards).await),
        ErrorKind::Malformed
    );
    // Terms no deal can have: the node holds more than the whole deal.
    let mut too_small = good.clone();
    too_small.size -= 1;
    assert_eq!(
        refusal(client.receipt(&addr, &too_small, &shards).await),
        ErrorKind::Malformed
    );

    // A shard stored by someone else: the owner cannot commit the node to it.
    let mut foreign = shards.clone();
    foreign.push(strangers);
    assert_eq!(
        refusal(
            client
                .receipt(&addr, &request(&chain, owner, &foreign), &foreign)
                .await
        ),
        ErrorKind::Unauthorized
    );
    // Nor can a stranger commit the node to the owner's shards.
    assert_eq!(
        refusal(
            client
                .receipt(&addr, &request(&chain, stranger, &shards), &shards)
                .await
        ),
        ErrorKind::Unauthorized
    );

    // An oversized list is refused from its header, before its body.
    let mut oversized = good.clone();
    oversized.shards = MAX_RECEIPT_SHARDS + 1;
    let (_, tx) = hostile_peer();
    let answer = send(
        &tx,
        &addr,
        Raw::Send(encode_header(&Request::ReceiptV2(oversized))),
    )
    .await
    .unwrap();
    assert_eq!(error_kind(&answer), Some(ErrorKind::TooLarge));

    // Counted by outcome, like every request kind.
    let metrics = node.http_get("/metrics");
    let count = |outcome: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("cairn_node_requests_total{")
                    && l.contains("kind=\"receipt\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(count("ok"), 2.0);
    assert_eq!(count("not_found"), 1.0);
    assert_eq!(count("malformed"), 4.0);
    assert_eq!(count("unauthorized"), 2.0);
    assert_eq!(count("too_large"), 1.0);
}

/// Repair receipts from a real node: signed over the repairer, the deal and
/// the new commitment only for shards it stores at the listed sizes, and
/// never for a deal it already keeps another part of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signs_repair_receipts_only_for_what_a_repairer_stored() {
    use cairn_protocol::chain::{repair_receipt_message, DealId};
    use cairn_protocol::wire::RepairReceiptRequest;

    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(&init(root.path(), "n", "1GiB", &[]));
    let client = ShardClient::start(ClientSettings::default()).unwrap();
    let addr = node.quic();
    let address = peer_address(&addr.peer).unwrap();
    let repairer_key = SigningKey::from_bytes(&[9; 32]);
    let repairer = Address::of(&repairer_key.verifying_key());
    let mut shards = Vec::new();
    for seed in 0..3u64 {
        let data = bytes(8_000 + seed as usize * 100, 40 + seed);
        shards.push((
            store(&client, &addr, &data, &repairer_key).await,
            data.len() as u64,
        ));
    }
    let deal = DealId([5; 32]);
    let ask = |shards: &[(ContentId, u64)], deal: DealId| RepairReceiptRequest {
        genesis: GenesisHash([7; 32]),
        repairer,
        deal,
        root: merkle::root(shards).unwrap(),
        shards: shards.len() as u32,
        bytes: shards.iter().map(|s| s.1).sum(),
    };

    // Stored, right sizes: signed over exactly what the chain checks.
    let good = ask(&shards, deal);
    let sig = client.repair_receipt(&addr, &good, &shards).await.unwrap();
    let message = repair_receipt_message(
        &GenesisHash([7; 32]),
        &repairer,
        &deal,
        &good.commitment(address),
    );
    let key = address.verifying_key().unwrap();
    key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig.0))
        .unwrap();
    // The same list again (a racing repairer with the same placement).
    assert_eq!(
        client.repair_receipt(&addr, &good, &shards).await.unwrap(),
        sig
    );

    // A shard not stored here; a size other than the stored one.
    let mut missing = shards.clone();
    missing.push((ContentId::of(b"never rebuilt"), 12));
    let other = DealId([6; 32]);
    assert_eq!(
        refusal(
            client
                .repair_receipt(&addr, &ask(&missing, other), &missing)
                .await
        ),
        ErrorKind::NotFound
    );
    let mut resized = shards.clone();
    resized[0].1 += 1;
    assert_eq!(
        refusal(
            client
                .repair_receipt(&addr, &ask(&resized, other), &resized)
                .await
        ),
        ErrorKind::Malformed
    );
    // A list that is not the request's commitment.
    let mut reordered = shards.clone();
    reordered.swap(0, 2);
    assert_eq!(
        refusal(client.repair_receipt(&addr, &good, &reordered).await),
        ErrorKind::Malformed
    );
    // Another part of a deal it already keeps a leaf list for.
    let part = &shards[..2];
    assert_eq!(
        refusal(client.repair_receipt(&addr, &ask(part, deal), part).await),
        ErrorKind::Unauthorized
    );
}
