//! A small fixed chain the fuzz targets start from: a cast of keys, a genesis
//! with short periods, registered storage nodes and one open deal whose
//! shards the harness can read, so that honest proofs can be built and then
//! bent. [`namespace`] holds what the `namespace` target builds directories
//! and commits from.

pub mod namespace;

use arbitrary::Arbitrary;
use cairn_protocol::chain::merkle::Sibling;
use cairn_protocol::chain::{
    merkle, peer_id_of, receipt_message, repair_receipt_message, Address, Allocation, ChainState,
    Commitment, DealId, DealTerms, Genesis, RepairClaim, Sig, SignedTx, Transaction, TxBody,
};
use cairn_protocol::proofs::{self, Answer, Held, StorageProof};
use cairn_protocol::repair::{self, RepairData, RepairPolicy};
use cairn_protocol::{CodingParams, ContentId};
use ed25519_dalek::{Signer, SigningKey};

pub const CHAIN: &str = "cairn-fuzz";
/// Keys `0..USERS` hold funds; `NODES` are storage nodes (funded too).
pub const USERS: u8 = 4;
pub const NODES: [u8; 3] = [4, 5, 6];
/// Every key the harness signs with (the last one has no funds).
pub const KEYS: u8 = 8;
/// The shard sizes every node holds in every deal.
pub const SIZES: [usize; 3] = [3000, 1024, 700];

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i.wrapping_add(1); 32])
}

pub fn addr(i: u8) -> Address {
    Address::of(&key(i).verifying_key())
}

pub fn genesis() -> Genesis {
    let mut allocations: Vec<Allocation> = (0..KEYS - 1)
        .map(|i| Allocation {
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
        proof_samples: 4,
        ..Genesis::devnet(CHAIN, vec![addr(KEYS)], allocations)
    }
}

/// Signs `body` from `signer` with its current nonce.
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

/// Shard `j` of node `node`: `size` deterministic bytes.
pub fn shard_data(node: u8, j: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31) ^ node ^ ((j as u8) << 3) ^ ((i >> 10) as u8))
        .collect()
}

/// The leaf list node `node` keeps for every deal.
pub fn held_shards(node: u8) -> Vec<(ContentId, u64)> {
    SIZES
        .iter()
        .enumerate()
        .map(|(j, &size)| {
            let data = shard_data(node, j, size);
            (ContentId::of(&data), size as u64)
        })
        .collect()
}

/// The bytes of shard `id` of any node, if the harness made it.
pub fn read_shard(id: &ContentId) -> Option<Vec<u8>> {
    NODES.iter().find_map(|&n| {
        SIZES.iter().enumerate().find_map(|(j, &size)| {
            let data = shard_data(n, j, size);
            (ContentId::of(&data) == *id).then_some(data)
        })
    })
}

/// Deal terms over `nodes` (each holding [`SIZES`]), receipts signed by
/// each node for `owner`'s current nonce.
pub fn deal_terms(
    state: &ChainState,
    owner: u8,
    nodes: &[u8],
    price: u64,
    epochs: (u64, u64),
) -> DealTerms {
    let mut terms = DealTerms {
        size: 0,
        price_per_epoch: price,
        start_epoch: epochs.0,
        end_epoch: epochs.1,
        commitments: vec![],
    };
    for &n in nodes {
        let shards = held_shards(n);
        let bytes: u64 = shards.iter().map(|s| s.1).sum();
        terms.commitments.push(Commitment {
            node: addr(n),
            root: merkle::root(&shards).unwrap_or_default(),
            shards: shards.len() as u32,
            bytes,
            receipt: Sig([0; 64]),
        });
        terms.size += bytes;
    }
    let nonce = state.account(&addr(owner)).nonce;
    let receipts: Vec<Sig> = terms
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
    for (c, r) in terms.commitments.iter_mut().zip(receipts) {
        c.receipt = r;
    }
    terms
}

/// Node `node`'s honest proof for its open window, or `None` when it has no
/// window or nothing to prove; `read` may drop shards.
pub fn proof_now(
    state: &ChainState,
    node: u8,
    read: impl FnMut(&ContentId) -> Option<Vec<u8>>,
) -> Option<StorageProof> {
    let (window, seed) = state.window_seed(&addr(node))?;
    let spaces = state.committed_spaces(&addr(node), window.period, window.open);
    let shards = held_shards(node);
    let held: Vec<Held<'_>> = spaces
        .iter()
        .map(|space| Held {
            space,
            shards: &shards,
        })
        .collect();
    proofs::build(
        state.proof_params(),
        addr(node),
        window.period,
        &seed,
        &held,
        read,
    )
    .ok()
}

/// A genesis state with [`NODES`] registered and, if `with_deal`, a deal of
/// user 0 over them for epochs 1..20, at height 0.
pub fn start(with_deal: bool) -> ChainState {
    let mut state = match ChainState::from_genesis(&genesis()) {
        Ok(s) => s,
        Err(e) => panic!("the fuzz genesis is valid: {e}"),
    };
    for &n in &NODES {
        let body = TxBody::RegisterNode {
            peer_id: peer_id_of(&addr(n)),
            addresses: vec![format!("/ip4/127.0.0.1/udp/{}/quic-v1", 4000 + n as u16)],
            capacity: 1 << 30,
            stake: 5_000,
        };
        let t = tx(&state, n, 10, body);
        assert_eq!(state.apply_tx(&t), Ok(()), "registering node {n}");
    }
    if with_deal {
        let terms = deal_terms(&state, 0, &NODES, 30, (1, 20));
        let t = tx(&state, 0, 10, TxBody::OpenDeal(terms));
        assert_eq!(state.apply_tx(&t), Ok(()), "opening the deal");
    }
    state
}

#[derive(Debug, Arbitrary)]
/// One change to an honest proof: a field of a sample (picked modulo the
/// sample count) or of the proof.
pub enum ProofBend {
    Period(u64),
    Node(u8),
    Leaf(u8, u32),
    Size(u8, u64),
    Data(u8, u16, u8),
    Path(u8, u8, [u8; 32]),
    LeafPath(u8, u8, u64),
    Lost(u8),
    Truncate(u8),
}

/// Element `i` (modulo the length) of `items`.
pub fn pick<T>(items: &mut [T], i: u8) -> Option<&mut T> {
    let n = items.len().max(1);
    items.get_mut(i as usize % n)
}

/// Applies `bend` to `p`.
pub fn bend_proof(p: &mut StorageProof, bend: ProofBend) {
    match bend {
        ProofBend::Period(v) => p.period = v,
        ProofBend::Node(k) => p.node = addr(k % KEYS),
        ProofBend::Leaf(i, v) => pick(&mut p.samples, i).into_iter().for_each(|s| s.leaf = v),
        ProofBend::Size(i, v) => pick(&mut p.samples, i).into_iter().for_each(|s| s.size = v),
        ProofBend::Data(i, at, x) => {
            if let Some(Answer::Chunk { data, .. }) = pick(&mut p.samples, i).map(|s| &mut s.answer)
            {
                let len = data.len().max(1);
                if let Some(b) = data.get_mut(at as usize % len) {
                    *b ^= x.max(1);
                }
            }
        }
        ProofBend::Path(i, at, h) => {
            if let Some(Answer::Chunk { path, .. }) = pick(&mut p.samples, i).map(|s| &mut s.answer)
            {
                let len = path.len();
                match path.get_mut(at as usize % len.max(1)) {
                    Some(p) => *p = h,
                    None => path.push(h),
                }
            }
        }
        ProofBend::LeafPath(i, at, bytes) => {
            if let Some(s) = pick(&mut p.samples, i) {
                let len = s.leaf_path.len();
                match s.leaf_path.get_mut(at as usize % len.max(1)) {
                    Some(p) => p.bytes = bytes,
                    None => s.leaf_path.push(Sibling {
                        hash: [0; 32],
                        bytes,
                    }),
                }
            }
        }
        ProofBend::Lost(i) => pick(&mut p.samples, i)
            .into_iter()
            .for_each(|s| s.answer = Answer::Lost),
        ProofBend::Truncate(k) => p.samples.truncate(k as usize),
    }
}

/// The harness's node number behind an address.
pub fn key_of(a: &Address) -> Option<u8> {
    (0..=KEYS).find(|&i| addr(i) == *a)
}

/// The public repair data of a harness deal: segment `g` is leaf `g` of
/// every commitment (each node holds [`SIZES`]), shard `j` on commitment
/// `j`, one data shard and the rest parity. `None` for a deal of one node.
pub fn repair_data(deal: &cairn_protocol::chain::Deal) -> Option<RepairData> {
    let opened = deal
        .repair
        .as_ref()
        .map_or(deal.commitments.len(), |r| r.data.commitments as usize);
    let nodes: Vec<u8> = deal
        .commitments
        .get(..opened)?
        .iter()
        .map(|c| key_of(&c.node))
        .collect::<Option<_>>()?;
    let n = u16::try_from(nodes.len()).ok()?;
    let commitments: Vec<Vec<(ContentId, u64)>> = nodes.iter().map(|&i| held_shards(i)).collect();
    let segments: Vec<Vec<(ContentId, u64)>> = (0..SIZES.len())
        .map(|g| commitments.iter().map(|c| c[g]).collect())
        .collect();
    RepairData::build(1, n.checked_sub(1)?, commitments, &segments).ok()
}

/// A claim for what is lost in `deal` (or shard 0 of segment 0 if nothing
/// is), onto harness keys from `holder` on, receipts signed for `repairer`.
pub fn repair_claim(
    state: &ChainState,
    deal: &DealId,
    repairer: u8,
    holder: u8,
) -> Option<RepairClaim> {
    let data = repair_data(&state.deal(deal)?)?;
    let policy = RepairPolicy::new(CodingParams::new(data.k, data.m).ok()?, data.n() - 1);
    let statuses = repair::assess(state, deal, &data, &policy).ok()?;
    let mut cols = repair::columns(&statuses, 1);
    if cols.is_empty() {
        cols = vec![vec![(0, 0)]];
    }
    let holders: Vec<Address> = (0..cols.len() as u8)
        .map(|c| addr(holder.wrapping_add(c) % KEYS))
        .collect();
    let mut claim = repair::prepare(state, deal, &data, &cols, &holders).ok()?;
    for h in 0..claim.holders.len() {
        let c = claim.commitment(h)?;
        let message = repair_receipt_message(&state.genesis_hash(), &addr(repairer), deal, &c);
        claim.holders[h].receipt = Sig(key(key_of(&c.node)?).sign(&message).to_bytes());
    }
    Some(claim)
}
