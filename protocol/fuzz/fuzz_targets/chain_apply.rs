//! The chain's state machine under a sequence of signed transactions and
//! blocks built from fuzzed fields (structure-aware: plain bytes never pass
//! the signature). Honest deals and proofs are built by the harness and then
//! bent, so the fuzzer reaches deal opening, proving, settlement, slashing,
//! refunds, repair data and repair claims. After every step: no panic, tokens conserved
//! (`held() == expected_supply()`), the lazy settlement's indexes equal a
//! rebuild from the deals, a refused transaction changes nothing,
//! and every transaction round-trips through its wire encoding.
#![no_main]

use arbitrary::Arbitrary;
use cairn_protocol::chain::{
    ChainState, DealId, LostLeaf, RepairClaim, RepairRef, SignedTx, Transaction, TxBody,
};
use cairn_protocol::proofs::StorageProof;
use cairn_protocol::ContentId;
use cairn_protocol_fuzz::{
    addr, bend_proof, deal_terms, key, pick, proof_now, read_shard, start, tx, ProofBend, KEYS,
    NODES,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Body {
    Transfer {
        to: u8,
        amount: u64,
    },
    Faucet {
        amount: u64,
    },
    RegisterNode {
        peer_id: Vec<u8>,
        addresses: Vec<String>,
        capacity: u64,
        stake: u64,
    },
    DeregisterNode,
    /// An honest deal over some of the nodes, then one field bent.
    OpenDeal {
        nodes: u8,
        price: u64,
        start: u8,
        end: u8,
        bend: Option<DealBend>,
    },
    SetNamespaceRoot {
        root: [u8; 32],
        version: u64,
    },
    UpdateNode {
        addresses: Vec<String>,
        capacity: u64,
    },
    AddStake {
        amount: u64,
    },
    /// Closes the n-th open deal, or a made-up one.
    CloseDeal {
        deal: u8,
        made_up: bool,
    },
    /// The signer's honest proof (shards dropped per `drop`), then bent.
    ProveStorage {
        drop: u8,
        bend: Option<ProofBend>,
    },
    /// Declares leaves of the n-th deal lost, with true or bent paths.
    DeclareLost {
        deal: u8,
        leaves: Vec<(u32, bool)>,
    },
    /// Names the n-th deal's repair data (honest, or one byte of it bent).
    SetRepairData {
        deal: u8,
        bend: Option<(u8, u8)>,
    },
    /// Claims what the rules say is lost in the n-th deal, onto keys from
    /// `holder` on, then bent.
    ClaimRepair {
        deal: u8,
        holder: u8,
        bend: Option<ClaimBend>,
    },
}

#[derive(Debug, Arbitrary)]
enum ClaimBend {
    Id(u8, [u8; 32]),
    Size(u8, u64),
    Segment(u8, u32),
    Index(u8, u16),
    From(u8, u32),
    Leaf(u8, u32),
    To(u8, u16),
    Receipt(u8, u8),
    Holder(u8, u8),
    Drop(u8),
}

#[derive(Debug, Arbitrary)]
enum DealBend {
    Size(u64),
    Shards(u8, u32),
    Bytes(u8, u64),
    Root(u8, [u8; 32]),
    Receipt(u8, u8),
    Node(u8, u8),
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// Applied at once, or queued for the next block.
    Tx {
        signer: u8,
        fee: u16,
        nonce_off: u8,
        queue: bool,
        body: Body,
    },
    /// A block holding the queued transactions, with a beacon.
    Block { beacon: u8 },
    /// Empty blocks, to reach windows and period ends.
    Skip { blocks: u8 },
}

fn deal_by_index(state: &ChainState, i: u8) -> Option<DealId> {
    let n = state.deals().count();
    (n > 0).then(|| {
        *state
            .deals()
            .nth(i as usize % n)
            .map(|(id, _)| id)
            .unwrap_or_else(|| unreachable!())
    })
}

fn body(state: &ChainState, signer: u8, b: Body) -> TxBody {
    match b {
        Body::Transfer { to, amount } => TxBody::Transfer {
            to: addr(to % KEYS),
            amount,
        },
        Body::Faucet { amount } => TxBody::Faucet { amount },
        Body::RegisterNode {
            peer_id,
            addresses,
            capacity,
            stake,
        } => TxBody::RegisterNode {
            peer_id,
            addresses,
            capacity,
            stake,
        },
        Body::DeregisterNode => TxBody::DeregisterNode,
        Body::OpenDeal {
            nodes,
            price,
            start,
            end,
            bend,
        } => {
            let chosen: Vec<u8> = NODES
                .iter()
                .enumerate()
                .filter(|(i, _)| nodes & (1 << i) != 0)
                .map(|(_, &n)| n)
                .collect();
            let epoch = state.epoch();
            let range = (epoch + u64::from(start % 8), epoch + u64::from(end));
            let mut terms = deal_terms(state, signer, &chosen, price % 1000, range);
            match bend {
                None => {}
                Some(DealBend::Size(v)) => terms.size = v,
                Some(DealBend::Shards(i, v)) => pick(&mut terms.commitments, i)
                    .into_iter()
                    .for_each(|c| c.shards = v),
                Some(DealBend::Bytes(i, v)) => pick(&mut terms.commitments, i)
                    .into_iter()
                    .for_each(|c| c.bytes = v),
                Some(DealBend::Root(i, v)) => pick(&mut terms.commitments, i)
                    .into_iter()
                    .for_each(|c| c.root = v),
                Some(DealBend::Receipt(i, at)) => pick(&mut terms.commitments, i)
                    .into_iter()
                    .for_each(|c| c.receipt.0[at as usize % 64] ^= 1),
                Some(DealBend::Node(i, k)) => pick(&mut terms.commitments, i)
                    .into_iter()
                    .for_each(|c| c.node = addr(k % KEYS)),
            }
            TxBody::OpenDeal(terms)
        }
        Body::SetNamespaceRoot { root, version } => TxBody::SetNamespaceRoot { root, version },
        Body::UpdateNode {
            addresses,
            capacity,
        } => TxBody::UpdateNode {
            addresses,
            capacity,
        },
        Body::AddStake { amount } => TxBody::AddStake { amount },
        Body::CloseDeal { deal, made_up } => {
            let id = match deal_by_index(state, deal) {
                Some(id) if !made_up => id,
                _ => DealId([deal; 32]),
            };
            TxBody::CloseDeal { deal: id }
        }
        Body::ProveStorage { drop, bend } => {
            let read = |id: &ContentId| {
                let data = read_shard(id)?;
                (drop == 0 || data.len() % usize::from(drop) != 0).then_some(data)
            };
            let mut proof = proof_now(state, signer, read).unwrap_or(StorageProof {
                node: addr(signer),
                period: state.epoch(),
                samples: vec![],
            });
            if let Some(b) = bend {
                bend_proof(&mut proof, b);
            }
            TxBody::ProveStorage(proof)
        }
        Body::DeclareLost { deal, leaves } => {
            let id = deal_by_index(state, deal).unwrap_or(DealId([deal; 32]));
            let shards = cairn_protocol_fuzz::held_shards(signer);
            let leaves = leaves
                .into_iter()
                .take(8)
                .map(|(leaf, honest)| {
                    let at = leaf as usize % shards.len();
                    let path =
                        cairn_protocol::chain::merkle::prove(&shards, at).unwrap_or_default();
                    let (shard, size) = shards[at];
                    if honest {
                        LostLeaf {
                            deal: id,
                            leaf: at as u32,
                            shard,
                            size,
                            path,
                        }
                    } else {
                        LostLeaf {
                            deal: id,
                            leaf,
                            shard,
                            size: size + 1,
                            path,
                        }
                    }
                })
                .collect();
            TxBody::DeclareLost(leaves)
        }
        Body::SetRepairData { deal, bend } => {
            let id = deal_by_index(state, deal).unwrap_or(DealId([deal; 32]));
            let data = state
                .deal(&id)
                .and_then(|d| cairn_protocol_fuzz::repair_data(&d));
            let mut repair = match data {
                Some(d) => d.reference(),
                None => RepairRef {
                    object: ContentId::of(&[deal]),
                    root: [deal; 32],
                    k: 1,
                    m: 1,
                    segments: 1,
                    bytes: 1,
                    commitments: 1,
                },
            };
            if let Some((at, v)) = bend {
                let mut bytes = postcard::to_stdvec(&repair).unwrap_or_default();
                if !bytes.is_empty() {
                    let i = at as usize % bytes.len();
                    bytes[i] ^= v;
                }
                if let Ok(bent) = postcard::from_bytes(&bytes) {
                    repair = bent;
                }
            }
            TxBody::SetRepairData { deal: id, repair }
        }
        Body::ClaimRepair { deal, holder, bend } => {
            let id = deal_by_index(state, deal).unwrap_or(DealId([deal; 32]));
            let mut claim = cairn_protocol_fuzz::repair_claim(state, &id, signer, holder)
                .unwrap_or(RepairClaim {
                    deal: id,
                    shards: vec![],
                    holders: vec![],
                });
            match bend {
                None => {}
                Some(ClaimBend::Id(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.id = ContentId::from_digest(v)),
                Some(ClaimBend::Size(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.size = v),
                Some(ClaimBend::Segment(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.segment = v),
                Some(ClaimBend::Index(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.index = v),
                Some(ClaimBend::From(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.from = v),
                Some(ClaimBend::Leaf(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.leaf = v),
                Some(ClaimBend::To(i, v)) => pick(&mut claim.shards, i)
                    .into_iter()
                    .for_each(|s| s.to = v),
                Some(ClaimBend::Receipt(i, at)) => pick(&mut claim.holders, i)
                    .into_iter()
                    .for_each(|h| h.receipt.0[at as usize % 64] ^= 1),
                Some(ClaimBend::Holder(i, k)) => pick(&mut claim.holders, i)
                    .into_iter()
                    .for_each(|h| h.node = addr(k % KEYS)),
                Some(ClaimBend::Drop(i)) if !claim.shards.is_empty() => {
                    let at = i as usize % claim.shards.len();
                    claim.shards.remove(at);
                }
                Some(ClaimBend::Drop(_)) => {}
            }
            TxBody::ClaimRepair(claim)
        }
    }
}

fn check(state: &ChainState) {
    assert_eq!(
        state.held(),
        state.expected_supply(),
        "tokens not conserved"
    );
    // The indexes lazy settlement keeps block by block are those a
    // reloaded state rebuilds from its deals.
    assert!(state.indexes_consistent(), "indexes differ from a rebuild");
}

fuzz_target!(|steps: Vec<Step>| {
    let mut state = start(false);
    let mut queued: Vec<SignedTx> = Vec::new();
    for step in steps.into_iter().take(64) {
        match step {
            Step::Tx {
                signer,
                fee,
                nonce_off,
                queue,
                body: b,
            } => {
                let signer = signer % KEYS;
                let b = body(&state, signer, b);
                let mut t = tx(&state, signer, u64::from(fee), b);
                if nonce_off != 0 {
                    t = Transaction {
                        nonce: t.tx.nonce.wrapping_add(u64::from(nonce_off)),
                        ..t.tx
                    }
                    .sign(&key(signer));
                }
                if let Ok(decoded) = SignedTx::decode(&t.encode()) {
                    assert_eq!(decoded, t, "a transaction round-trips");
                }
                if queue {
                    if queued.len() < 16 {
                        queued.push(t);
                    }
                    continue;
                }
                let before = state.root();
                if state.apply_tx(&t).is_err() {
                    assert_eq!(
                        state.root(),
                        before,
                        "a refused transaction changed the state"
                    );
                }
                check(&state);
            }
            Step::Block { beacon } => {
                let height = state.height() + 1;
                let out = state.apply_block(height, [beacon; 32], &queued);
                assert!(out.is_ok(), "the next height applies");
                queued.clear();
                check(&state);
            }
            Step::Skip { blocks } => {
                for _ in 0..blocks % 16 {
                    let height = state.height() + 1;
                    let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
                    assert!(state.apply_block(height, beacon, &[]).is_ok());
                    check(&state);
                }
            }
        }
    }
});
