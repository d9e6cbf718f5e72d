//! Repair test helpers: a deal whose repair data is on the chain, blocks
//! with the proofs of chosen nodes, and claims built by the protocol's own
//! rules.
#![allow(dead_code, clippy::unwrap_used)]

use cairn_protocol::chain::{
    merkle, ChainState, DealId, LostLeaf, Rejection, RepairClaim, SignedTx, TxBody,
};
use cairn_protocol::proofs::accounting::Health as NodeHealth;
use cairn_protocol::repair::{
    assess, choose_holders, columns, placement_seed, prepare, RepairData, RepairPolicy,
};
use cairn_protocol::{CodingParams, ContentId};

use super::chain::*;

/// Two segments (of 2048- and 1000-byte shards), k = 2, m = 1: shard `j`
/// of segment `g` is leaf `g` of node `NODES[j]`'s commitment.
pub const SIZES: [usize; 2] = [2048, 1000];
pub const NODES: [u8; 3] = [10, 11, 12];
pub const K: u16 = 2;
/// 1200 a period over 9144 bytes: 400 for each node's 3048.
pub const PRICE: u64 = 1200;
pub const SHARE: u64 = 400;

pub fn read_all(id: &ContentId) -> Option<Vec<u8>> {
    read_shard(&NODES, &SIZES, id)
}

pub fn policy() -> RepairPolicy {
    RepairPolicy::default_for(CodingParams::new(2, 1).unwrap())
}

pub struct Net {
    pub s: ChainState,
    pub deal: DealId,
    pub data: RepairData,
}

/// Nodes 10..=13 and user 1's deal over `NODES` for periods 1..12, with its
/// repair data named on the chain.
pub fn repairable() -> Net {
    let mut s = fresh();
    let nonce = s.account(&addr(1)).nonce;
    let terms = deal_terms_sized(&s, 1, &NODES, PRICE, (1, 12), &SIZES);
    s.apply_tx(&tx(&s, 1, 10, TxBody::OpenDeal(terms))).unwrap();
    let deal = DealId::new(&addr(1), nonce);
    let data = test_repair_data(&s.deal(&deal).unwrap(), K, &SIZES).unwrap();
    let set = TxBody::SetRepairData {
        deal,
        repair: data.reference(),
    };
    s.apply_tx(&tx(&s, 1, 10, set)).unwrap();
    Net { s, deal, data }
}

/// Applies the next block with the proofs of `provers` whose windows are
/// open and `extra` after them; returns the results of `extra`.
pub fn step(
    s: &mut ChainState,
    provers: &[u8],
    extra: Vec<SignedTx>,
) -> Vec<Result<(), Rejection>> {
    let height = s.height() + 1;
    let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
    let mut txs: Vec<SignedTx> = provers
        .iter()
        .filter_map(|&n| {
            let (w, _) = s.window_seed(&addr(n))?;
            let proven = s.node(&addr(n))?.proven.map(|p| p.0) == Some(w.period);
            (!proven && w.accepts(height))
                .then(|| proof_any(s, n, K, &SIZES, read_all))
                .flatten()
        })
        .collect();
    let proofs = txs.len();
    txs.extend(extra);
    let out = s.apply_block(height, beacon, &txs).unwrap();
    for r in &out.results[..proofs] {
        assert_eq!(r, &Ok(()), "a proof was refused at height {height}");
    }
    assert_eq!(s.held(), s.expected_supply());
    out.results[proofs..].to_vec()
}

pub fn run_until(s: &mut ChainState, height: u64, provers: &[u8]) {
    while s.height() < height {
        step(s, provers, vec![]);
    }
}

/// Runs until node 12, which never proves, is disqualified (periods 1–3
/// missed: block 20).
pub fn lose_node_12(net: &mut Net) {
    run_until(&mut net.s, 20, &[10, 11]);
    assert_eq!(
        net.s.node(&addr(12)).unwrap().health(),
        NodeHealth::Disqualified
    );
}

/// The claim the protocol's own rules make: what is lost, in columns, to
/// `holders`, receipts signed, from `repairer`.
pub fn claim_from(net: &Net, repairer: u8, holders: &[u8]) -> RepairClaim {
    let statuses = assess(&net.s, &net.deal, &net.data, &policy()).unwrap();
    let cols = columns(&statuses, usize::from(K));
    let holders: Vec<_> = holders.iter().map(|&n| addr(n)).collect();
    let mut claim = prepare(&net.s, &net.deal, &net.data, &cols, &holders).unwrap();
    sign_receipts(&mut claim, repairer);
    claim
}

pub fn claim_tx(s: &ChainState, repairer: u8, claim: RepairClaim) -> SignedTx {
    tx(s, repairer, 10, TxBody::ClaimRepair(claim))
}

pub fn claim_from_columns(
    net: &Net,
    repairer: u8,
    cols: &[Vec<(u32, u16)>],
    holders: &[u8],
) -> RepairClaim {
    let holders: Vec<_> = holders.iter().map(|&n| addr(n)).collect();
    let mut claim = prepare(&net.s, &net.deal, &net.data, cols, &holders).unwrap();
    sign_receipts(&mut claim, repairer);
    claim
}

/// Registers node 14 (funded by the faucet).
pub fn join_node_14(s: &mut ChainState) {
    s.apply_tx(&tx(s, 14, 0, TxBody::Faucet { amount: 50_000 }))
        .unwrap();
    register(s, 14);
}

/// A claim of `repairer` on the current state: by the rules, or bent.
fn some_claim(net: &Net, repairer: u8, x: u8) -> Option<SignedTx> {
    let statuses = assess(&net.s, &net.deal, &net.data, &policy()).ok()?;
    let mut cols = columns(&statuses, usize::from(K));
    if cols.is_empty() {
        cols = vec![vec![(u32::from(x) % 2, u16::from(x) % 3)]];
    }
    let bytes: Vec<u64> = cols
        .iter()
        .map(|c| 3048.min(2048 * c.len() as u64))
        .collect();
    let seed = placement_seed(&net.deal, usize::from(x));
    let holders = choose_holders(&net.s, &net.deal, &seed, &bytes, |_, _| 0)
        .unwrap_or_else(|_| vec![addr(13 + x % 2); cols.len()]);
    let mut claim = prepare(&net.s, &net.deal, &net.data, &cols, &holders).ok()?;
    if x % 5 == 0 {
        claim.shards[0].id = ContentId::of(&[x]);
    }
    sign_receipts(&mut claim, repairer);
    if x % 7 == 0 {
        claim.holders[0].receipt.0[0] ^= 1;
    }
    Some(tx(&net.s, repairer, 10, TxBody::ClaimRepair(claim)))
}

/// One step of a random repair history over `net`, chosen by `kind`
/// (0..5) and `x`: a block in which the nodes of mask `x` prove; a
/// stranger's claim, by the rules or with one field bent; a node declaring
/// one of its leaves lost; empty blocks, or (rarely) the owner closing the
/// deal. Returns whether a claim was accepted (its fee was paid).
pub fn history_step(net: &mut Net, kind: u8, x: u8) -> bool {
    match kind {
        0 | 1 => {
            let provers: Vec<u8> = (10..=14).filter(|n| x & (1 << (n - 10)) != 0).collect();
            step(&mut net.s, &provers, vec![]);
        }
        2 => {
            if let Some(t) = some_claim(net, 2 + x % 2, x) {
                return step(&mut net.s, &[], vec![t]) == vec![Ok(())];
            }
        }
        3 => {
            let node = NODES[usize::from(x) % 3];
            let shards = held_shards(node, &SIZES);
            let leaf = usize::from(x / 3) % 2;
            let body = TxBody::DeclareLost(vec![LostLeaf {
                deal: net.deal,
                leaf: leaf as u32,
                shard: shards[leaf].0,
                size: shards[leaf].1,
                path: merkle::prove(&shards, leaf).unwrap(),
            }]);
            let _ = net.s.apply_tx(&tx(&net.s, node, 10, body));
        }
        _ if x < 240 => {
            let to = net.s.height() + 1 + u64::from(x % 6);
            run_until(&mut net.s, to, &[]);
        }
        _ => {
            let body = TxBody::CloseDeal { deal: net.deal };
            let _ = net.s.apply_tx(&tx(&net.s, 1, 10, body));
        }
    }
    false
}
