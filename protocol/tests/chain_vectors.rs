//! Known-answer vectors of the chain: fixed inputs must give fixed bytes.
//!
//! Pins what every validator, node and client must agree on byte for byte:
//! the signing bytes and id of a transaction of every kind, the deal
//! receipt message, deal ids, the encoding of a genesis, the state root after
//! a fixed history of blocks (deals, proofs, settlement, a refund), the
//! Merkle-sum commitment and its paths, a chunk's path, challenge offsets and
//! proof windows. A change to any of them fails this test; if it is
//! intended, say so in docs/format.md and regenerate with
//! `CAIRN_BLESS_VECTORS=1 cargo test -p cairn-protocol --test chain_vectors`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use cairn_protocol::chain::{
    merkle, receipt_message, repair_receipt_message, ChainState, DealId, LostLeaf, MovedShard,
    NewHolder, RepairClaim, RepairCommitment, RepairRef, Sig, SignedTx, TxBody,
};
use cairn_protocol::proofs::{challenge, chunk, Answer, ProofParams, Sample, StorageProof};
use cairn_protocol::repair::RepairData;
use cairn_protocol::ContentId;
use common::chain::*;

const VECTORS: &str = "tests/vectors/chain_vectors.txt";
/// Longest value written out in full; longer ones are pinned by BLAKE3.
const FULL_HEX: usize = 256;
const SIZES: [usize; 3] = [5000, 3000, 1024];
const NODES: [u8; 3] = [10, 11, 12];

fn bytes_value(bytes: &[u8]) -> String {
    if bytes.len() <= FULL_HEX {
        hex::encode(bytes)
    } else {
        format!("blake3:{}", blake3::hash(bytes).to_hex())
    }
}

/// One transaction of each kind, signed by fixed keys on the test chain.
fn one_of_each(state: &ChainState) -> Vec<(&'static str, SignedTx)> {
    let shard = ContentId::of(b"shard");
    let sample = Sample {
        leaf: 1,
        shard,
        size: 2048,
        leaf_path: vec![merkle::Sibling {
            hash: [5; 32],
            bytes: 1000,
        }],
        answer: Answer::Chunk {
            data: vec![6; 16],
            path: vec![[7; 32]],
        },
    };
    let bodies = [
        (
            "transfer",
            1,
            TxBody::Transfer {
                to: addr(2),
                amount: 1234,
            },
        ),
        ("faucet", 2, TxBody::Faucet { amount: 500 }),
        (
            "register_node",
            13,
            TxBody::RegisterNode {
                peer_id: cairn_protocol::chain::peer_id_of(&addr(13)),
                addresses: vec!["/ip4/127.0.0.1/udp/4013/quic-v1".into()],
                capacity: 1 << 30,
                stake: 5_000,
            },
        ),
        ("deregister_node", 13, TxBody::DeregisterNode),
        (
            "open_deal",
            1,
            TxBody::OpenDeal(deal_terms_sized(state, 1, &NODES, 30, (1, 4), &SIZES)),
        ),
        (
            "set_namespace_root",
            3,
            TxBody::SetNamespaceRoot {
                root: [3; 32],
                version: 9,
            },
        ),
        (
            "update_node",
            10,
            TxBody::UpdateNode {
                addresses: vec!["/ip4/127.0.0.1/tcp/4010".into()],
                capacity: 1 << 31,
            },
        ),
        ("add_stake", 10, TxBody::AddStake { amount: 777 }),
        (
            "close_deal",
            1,
            TxBody::CloseDeal {
                deal: DealId::new(&addr(1), 0),
            },
        ),
        (
            "prove_storage",
            11,
            TxBody::ProveStorage(StorageProof {
                node: addr(11),
                period: 2,
                samples: vec![
                    sample.clone(),
                    Sample {
                        answer: Answer::Lost,
                        ..sample
                    },
                ],
            }),
        ),
        (
            "declare_lost",
            12,
            TxBody::DeclareLost(vec![LostLeaf {
                deal: DealId::new(&addr(1), 0),
                leaf: 0,
                shard,
                size: 2048,
                path: vec![merkle::Sibling {
                    hash: [8; 32],
                    bytes: 3000,
                }],
            }]),
        ),
        (
            "set_repair_data",
            1,
            TxBody::SetRepairData {
                deal: DealId::new(&addr(1), 0),
                repair: RepairRef {
                    object: ContentId::of(b"repair data"),
                    root: [9; 32],
                    k: 2,
                    m: 1,
                    segments: 3,
                    bytes: 27_072,
                    commitments: 3,
                },
            },
        ),
        (
            "claim_repair",
            2,
            TxBody::ClaimRepair(RepairClaim {
                deal: DealId::new(&addr(1), 0),
                shards: vec![MovedShard {
                    segment: 1,
                    index: 2,
                    id: shard,
                    size: 3000,
                    repair_path: vec![merkle::Sibling {
                        hash: [10; 32],
                        bytes: 6000,
                    }],
                    from: 2,
                    leaf: 1,
                    from_path: vec![merkle::Sibling {
                        hash: [11; 32],
                        bytes: 5000,
                    }],
                    to: 0,
                }],
                holders: vec![NewHolder {
                    node: addr(13),
                    receipt: Sig([12; 64]),
                }],
            }),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, signer, body)| (name, tx(state, signer, 10, body)))
        .collect()
}

/// A fixed history: user 1 opens a deal over `NODES` for periods 1..4;
/// every node proves in each of its windows; user 2 pays user 3; user 3 sets
/// its namespace root; user 1 closes the deal in period 2. Returns the state
/// root after each of the named points and the proofs' encodings.
fn history(v: &mut BTreeMap<String, String>) {
    let mut s = fresh();
    v.insert("state.fresh.root".into(), hex::encode(s.root()));
    let nonce = s.account(&addr(1)).nonce;
    let terms = deal_terms_sized(&s, 1, &NODES, 30, (1, 4), &SIZES);
    s.apply_tx(&tx(&s, 1, 10, TxBody::OpenDeal(terms))).unwrap();
    v.insert("state.deal_opened.root".into(), hex::encode(s.root()));
    let deal = DealId::new(&addr(1), nonce);
    let read = |id: &ContentId| read_shard(&NODES, &SIZES, id);
    let mut first_proof = true;
    while s.height() < 14 {
        let height = s.height() + 1;
        let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
        let mut txs: Vec<SignedTx> = NODES
            .iter()
            .filter_map(|&n| {
                let (w, _) = s.window_seed(&addr(n))?;
                let proven = s.node(&addr(n))?.proven.map(|p| p.0) == Some(w.period);
                (!proven && w.accepts(height))
                    .then(|| proof_now(&s, n, &SIZES, read))
                    .flatten()
            })
            .collect();
        if first_proof {
            if let Some(TxBody::ProveStorage(p)) = txs.first().map(|t| &t.tx.body) {
                v.insert(
                    "state.first_proof.encoding".into(),
                    bytes_value(&postcard::to_stdvec(p).unwrap()),
                );
                first_proof = false;
            }
        }
        match height {
            7 => txs.push(tx(
                &s,
                2,
                10,
                TxBody::Transfer {
                    to: addr(3),
                    amount: 4321,
                },
            )),
            8 => txs.push(tx(
                &s,
                3,
                10,
                TxBody::SetNamespaceRoot {
                    root: [0xaa; 32],
                    version: 1,
                },
            )),
            12 => txs.push(tx(&s, 1, 10, TxBody::CloseDeal { deal })),
            _ => {}
        }
        let out = s.apply_block(height, beacon, &txs).unwrap();
        assert!(out.results.iter().all(Result::is_ok), "block {height}");
        assert_eq!(s.held(), s.expected_supply());
        v.insert(
            format!("state.block{height:02}.root"),
            hex::encode(out.state_root),
        );
        v.insert(format!("state.block{height:02}.settled"), settled(&s));
    }
    assert!(!first_proof, "the history holds proofs");
}

/// What the state owes whom, however it is kept: every account's balance,
/// each node's earnings and proof counts, each deal settled (escrow,
/// withheld pay, and per commitment what it was paid and proved). Pins the
/// economics apart from the encoding the root pins.
fn settled(s: &ChainState) -> String {
    let accounts: Vec<(u64, u64)> = [1u8, 2, 3]
        .iter()
        .chain(&NODES)
        .map(|&i| {
            let a = s.account(&addr(i));
            (a.balance, a.nonce)
        })
        .collect();
    let nodes: Vec<(u64, u64, u64, u64)> = NODES
        .iter()
        .filter_map(|&n| s.node(&addr(n)))
        .map(|n| (n.earned, n.stake, n.proofs.accepted, n.proofs.missed))
        .collect();
    let deals: Vec<_> = s
        .deals()
        .map(|(id, d)| {
            let commitments: Vec<(u64, u64, u64, bool)> = d
                .commitments
                .iter()
                .map(|c| (c.paid, c.proofs_accepted, c.proofs_missed, c.orphaned))
                .collect();
            (*id, d.escrow, d.withheld, d.end_epoch, commitments)
        })
        .collect();
    let bytes = postcard::to_stdvec(&(accounts, nodes, deals)).unwrap();
    blake3::hash(&bytes).to_hex().to_string()
}

fn compute() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let state = fresh();
    for (name, t) in one_of_each(&state) {
        v.insert(
            format!("tx.{name}.signing_bytes"),
            bytes_value(&t.tx.signing_bytes()),
        );
        v.insert(format!("tx.{name}.id"), hex::encode(t.id()));
        assert_eq!(SignedTx::decode(&t.encode()).unwrap(), t);
    }

    let terms = deal_terms_sized(&state, 1, &NODES, 30, (1, 4), &SIZES);
    v.insert(
        "receipt.message".into(),
        bytes_value(&receipt_message(
            &genesis().hash(),
            &addr(1),
            7,
            &terms,
            &terms.commitments[0],
        )),
    );
    v.insert(
        "repair.receipt.message".into(),
        bytes_value(&repair_receipt_message(
            &genesis().hash(),
            &addr(2),
            &DealId::new(&addr(1), 7),
            &RepairCommitment {
                node: addr(13),
                root: [4; 32],
                shards: 2,
                bytes: 8000,
            },
        )),
    );
    // The public repair data of a deal over NODES: segment g is leaf g of
    // every node's commitment, k = 2, m = 1.
    let commitments: Vec<_> = NODES.iter().map(|&n| held_shards(n, &SIZES)).collect();
    let segments: Vec<Vec<_>> = (0..SIZES.len())
        .map(|g| commitments.iter().map(|c| c[g]).collect())
        .collect();
    let data = RepairData::build(2, 1, commitments, &segments).unwrap();
    v.insert("repair.data.encoding".into(), bytes_value(&data.encode()));
    let r = data.reference();
    v.insert(
        "repair.data.reference".into(),
        bytes_value(&postcard::to_stdvec(&r).unwrap()),
    );
    v.insert(
        "repair.data.segment1.shard2.path".into(),
        bytes_value(&postcard::to_stdvec(&data.path(1, 2).unwrap()).unwrap()),
    );
    v.insert(
        "deal_id.addr1.nonce7".into(),
        hex::encode(DealId::new(&addr(1), 7).0),
    );
    // A chain is named by a keyed BLAKE3 of this encoding (docs/format.md).
    v.insert("genesis.test.hash".into(), genesis().hash().to_string());
    v.insert(
        "genesis.test.postcard_blake3".into(),
        blake3::hash(&postcard::to_stdvec(&genesis()).unwrap())
            .to_hex()
            .to_string(),
    );
    history(&mut v);

    let shards = held_shards(10, &SIZES);
    v.insert(
        "merkle.node10.root".into(),
        hex::encode(merkle::root(&shards).unwrap()),
    );
    v.insert(
        "merkle.node10.leaf2.path".into(),
        bytes_value(&postcard::to_stdvec(&merkle::prove(&shards, 2).unwrap()).unwrap()),
    );
    let shard = shard_data(10, 0, 5000);
    v.insert(
        "chunk.node10.shard0.chunk3.path".into(),
        bytes_value(&chunk::prove(&shard, 3).unwrap().concat()),
    );
    v.insert(
        "chunk.node10.shard0.chunk3.link".into(),
        hex::encode(chunk::link(5000, 3, &shard[3072..4096])),
    );
    let mut offsets = Vec::new();
    let mut prev = [0u8; 32];
    for i in 0..4 {
        let o = challenge::sample_offset(&[7; 32], &addr(10), 3, i, &prev, 9024);
        offsets.push(o.to_string());
        prev = *blake3::hash(&o.to_le_bytes()).as_bytes();
    }
    v.insert("challenge.offsets.node10.period3".into(), offsets.join(","));
    let params: ProofParams = genesis().proof_params();
    for period in [1, 2] {
        let w = challenge::window(&params, &addr(10), period);
        v.insert(
            format!("challenge.window.node10.period{period}"),
            format!("{}..{}", w.open, w.close),
        );
    }
    v
}

fn render(v: &BTreeMap<String, String>) -> String {
    v.iter().map(|(k, val)| format!("{k} {val}\n")).collect()
}

#[test]
fn chain_formats_match_known_answers() {
    let got = compute();
    if std::env::var_os("CAIRN_BLESS_VECTORS").is_some() {
        std::fs::write(VECTORS, render(&got)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(VECTORS).unwrap();
    let expected: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "vector names changed"
    );
    for (name, want) in &expected {
        assert_eq!(got.get(name), Some(want), "known answer {name}");
    }
}
