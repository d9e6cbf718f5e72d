//! Chain helpers shared by the state-machine and proof tests: a cast of
//! keys, a genesis, signed transactions, registered nodes and deals.
#![allow(dead_code, clippy::unwrap_used)]

use cairn_protocol::chain::merkle;
use cairn_protocol::chain::{
    peer_id_of, receipt_message, repair_receipt_message, Address, Allocation, ChainState,
    Commitment, Deal, DealId, DealTerms, Genesis, RepairClaim, Sig, SignedTx, Transaction, TxBody,
};
use cairn_protocol::proofs::{self, Held};
use cairn_protocol::repair::claim::leaves_of;
use cairn_protocol::repair::RepairData;
use cairn_protocol::ContentId;
use ed25519_dalek::{Signer, SigningKey};

pub const CHAIN: &str = "cairn-test";

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

pub fn addr(i: u8) -> Address {
    Address::of(&key(i).verifying_key())
}

/// Keys 1..=3 are users with funds, 10..=13 storage nodes with funds.
pub fn genesis() -> Genesis {
    let mut allocations: Vec<Allocation> = [1u8, 2, 3, 10, 11, 12, 13]
        .iter()
        .map(|&i| Allocation {
            address: addr(i),
            amount: 1_000_000,
        })
        .collect();
    allocations.sort_by_key(|a| a.address);
    Genesis {
        epoch_blocks: 5,
        min_fee: 10,
        faucet_max: Some(50_000),
        max_deal_epochs: 1_000,
        proof_window_blocks: 2,
        ..Genesis::devnet(CHAIN, vec![addr(100)], allocations)
    }
}

pub fn tx(state: &ChainState, signer: u8, fee: u64, body: TxBody) -> SignedTx {
    Transaction {
        genesis: state.genesis_hash(),
        signer: addr(signer),
        nonce: state.account(&addr(signer)).nonce,
        fee,
        body,
    }
    .sign(&key(signer))
}

pub fn register(state: &mut ChainState, node: u8) {
    let body = TxBody::RegisterNode {
        peer_id: peer_id_of(&addr(node)),
        addresses: vec![format!("/ip4/127.0.0.1/udp/{}/quic-v1", 4000 + node as u16)],
        capacity: 1 << 30,
        stake: 5_000,
    };
    let t = tx(state, node, 10, body);
    state.apply_tx(&t).unwrap();
}

/// Shard `j` of node `node`'s part of a test deal: `size` deterministic bytes.
pub fn shard_data(node: u8, j: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31) ^ node ^ ((j as u8) << 3) ^ ((i >> 10) as u8))
        .collect()
}

/// The leaf list node `node` keeps for a test deal with shards of `sizes`.
pub fn held_shards(node: u8, sizes: &[usize]) -> Vec<(ContentId, u64)> {
    (0..sizes.len())
        .map(|j| {
            let data = shard_data(node, j, sizes[j]);
            (ContentId::of(&data), data.len() as u64)
        })
        .collect()
}

/// The bytes of the shard `id` held by one of `nodes`, if any.
pub fn read_shard(nodes: &[u8], sizes: &[usize], id: &ContentId) -> Option<Vec<u8>> {
    for &n in nodes {
        for (j, &size) in sizes.iter().enumerate() {
            let data = shard_data(n, j, size);
            if ContentId::of(&data) == *id {
                return Some(data);
            }
        }
    }
    None
}

/// A deal over `nodes`, each holding three shards of 1000 bytes, signed by
/// each node.
pub fn deal_terms(
    state: &ChainState,
    owner: u8,
    nodes: &[u8],
    price: u64,
    epochs: (u64, u64),
) -> DealTerms {
    deal_terms_sized(state, owner, nodes, price, epochs, &[1000, 1000, 1000])
}

/// A deal over `nodes`, each holding shards of `sizes`, signed by each node.
pub fn deal_terms_sized(
    state: &ChainState,
    owner: u8,
    nodes: &[u8],
    price: u64,
    epochs: (u64, u64),
    sizes: &[usize],
) -> DealTerms {
    let mut terms = DealTerms {
        size: 0,
        price_per_epoch: price,
        start_epoch: epochs.0,
        end_epoch: epochs.1,
        commitments: vec![],
    };
    for &n in nodes {
        let shards = held_shards(n, sizes);
        let bytes: u64 = shards.iter().map(|s| s.1).sum();
        terms.commitments.push(Commitment {
            node: addr(n),
            root: merkle::root(&shards).unwrap(),
            shards: shards.len() as u32,
            bytes,
            receipt: Sig([0; 64]),
        });
        terms.size += bytes;
    }
    let nonce = state.account(&addr(owner)).nonce;
    let signed: Vec<Sig> = terms
        .commitments
        .iter()
        .zip(nodes)
        .map(|(c, &n)| {
            Sig(key(n)
                .sign(&receipt_message(
                    &state.genesis_hash(),
                    &addr(owner),
                    nonce,
                    &terms,
                    c,
                ))
                .to_bytes())
        })
        .collect();
    for (c, s) in terms.commitments.iter_mut().zip(signed) {
        c.receipt = s;
    }
    terms
}

/// Node `node`'s proof for its open window, built from the test data of
/// deals whose shards all have `sizes`; `None` before its window opens or
/// when it has nothing to prove. `read` may drop shards.
pub fn proof_now(
    state: &ChainState,
    node: u8,
    sizes: &[usize],
    mut read: impl FnMut(&ContentId) -> Option<Vec<u8>>,
) -> Option<SignedTx> {
    let (window, seed) = state.window_seed(&addr(node))?;
    let spaces = state.committed_spaces(&addr(node), window.period, window.open);
    let shards = held_shards(node, sizes);
    let held: Vec<Held<'_>> = spaces
        .iter()
        .map(|space| Held {
            space,
            shards: &shards,
        })
        .collect();
    let proof = proofs::build(
        state.proof_params(),
        addr(node),
        window.period,
        &seed,
        &held,
        &mut read,
    )
    .ok()?;
    Some(tx(state, node, 10, TxBody::ProveStorage(proof)))
}

pub fn fresh() -> ChainState {
    let mut s = ChainState::from_genesis(&genesis()).unwrap();
    for n in 10..=13 {
        register(&mut s, n);
    }
    s
}

/// The test cast's node number behind an address.
pub fn node_number(a: &Address) -> Option<u8> {
    (10..=20).find(|&n| addr(n) == *a)
}

/// The public repair data of a test deal whose commitment `j` is node
/// `j`'s `held_shards(node, sizes)`: segment `g` is leaf `g` of every
/// commitment, shard `j` on commitment `j`; `k` data shards, the rest
/// parity. `None` for a deal of one node (no parity).
pub fn test_repair_data(deal: &Deal, k: u16, sizes: &[usize]) -> Option<RepairData> {
    let opened = deal
        .repair
        .as_ref()
        .map_or(deal.commitments.len(), |r| r.data.commitments as usize);
    let originals: Vec<u8> = deal.commitments[..opened.min(deal.commitments.len())]
        .iter()
        .map(|c| node_number(&c.node))
        .collect::<Option<_>>()?;
    let n = originals.len() as u16;
    if n <= k {
        return None;
    }
    let commitments: Vec<Vec<(ContentId, u64)>> =
        originals.iter().map(|&i| held_shards(i, sizes)).collect();
    let segments: Vec<Vec<(ContentId, u64)>> = (0..sizes.len())
        .map(|g| commitments.iter().map(|c| c[g]).collect())
        .collect();
    RepairData::build(k, n - k, commitments, &segments).ok()
}

/// The leaf list node `node` keeps for commitment `ci` of `deal`: its own
/// test shards, or, for a commitment repair gave it, the shards moved to it.
pub fn test_leaves(
    state: &ChainState,
    deal: &DealId,
    ci: usize,
    k: u16,
    sizes: &[usize],
) -> Vec<(ContentId, u64)> {
    let Some(d) = state.deal(deal) else {
        return vec![];
    };
    let c = &d.commitments[ci];
    match (&d.repair, test_repair_data(&d, k, sizes)) {
        (Some(r), Some(data)) if ci >= r.data.commitments as usize => {
            leaves_of(&d, r, &data, ci as u32).unwrap_or_default()
        }
        _ => node_number(&c.node).map_or(vec![], |n| held_shards(n, sizes)),
    }
}

/// Node `node`'s proof for its open window over every commitment it holds,
/// original or repaired (leaf lists from [`test_leaves`]); `None` before its
/// window or with nothing to prove.
pub fn proof_any(
    state: &ChainState,
    node: u8,
    k: u16,
    sizes: &[usize],
    mut read: impl FnMut(&ContentId) -> Option<Vec<u8>>,
) -> Option<SignedTx> {
    let (window, seed) = state.window_seed(&addr(node))?;
    let at = state.committed_space(&addr(node), window.period);
    let spaces = state.committed_spaces(&addr(node), window.period, window.open);
    let leaves: Vec<Vec<(ContentId, u64)>> = at
        .iter()
        .map(|(id, ci)| test_leaves(state, id, *ci, k, sizes))
        .collect();
    let held: Vec<Held<'_>> = spaces
        .iter()
        .zip(&leaves)
        .map(|(space, shards)| Held { space, shards })
        .collect();
    let proof = proofs::build(
        state.proof_params(),
        addr(node),
        window.period,
        &seed,
        &held,
        &mut read,
    )
    .ok()?;
    Some(tx(state, node, 10, TxBody::ProveStorage(proof)))
}

/// Signs every holder's receipt of `claim` with the test keys, for
/// repairer `repairer`.
pub fn sign_receipts(claim: &mut RepairClaim, repairer: u8) {
    for h in 0..claim.holders.len() {
        let c = claim.commitment(h).unwrap();
        let n = node_number(&c.node).unwrap();
        let message = repair_receipt_message(&genesis().hash(), &addr(repairer), &claim.deal, &c);
        claim.holders[h].receipt = Sig(key(n).sign(&message).to_bytes());
    }
}
