//! Storage proofs against a fixed committed space (node 4's part of one
//! deal, in its first window): an honest proof verifies; honest proofs bent
//! in up to eight places, proofs made of arbitrary fields and proofs decoded
//! from arbitrary bytes are checked without a panic, and any that verifies
//! answers only the samples the space asks for.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use cairn_protocol::chain::merkle::Sibling;
use cairn_protocol::chain::Address;
use cairn_protocol::proofs::{self, Answer, ProofParams, Sample, Space, StorageProof};
use cairn_protocol::ContentId;
use cairn_protocol_fuzz::{addr, bend_proof, proof_now, read_shard, start, ProofBend, NODES};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    params: ProofParams,
    seed: [u8; 32],
    spaces: Vec<Space>,
    honest: StorageProof,
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let node = NODES[0];
    let mut state = start(true);
    while state
        .window_seed(&addr(node))
        .is_none_or(|(w, _)| w.period == 0)
    {
        let height = state.height() + 1;
        let beacon = *blake3::hash(&height.to_le_bytes()).as_bytes();
        assert!(state.apply_block(height, beacon, &[]).is_ok());
    }
    let (window, seed) = state
        .window_seed(&addr(node))
        .unwrap_or_else(|| unreachable!());
    let spaces = state.committed_spaces(&addr(node), window.period, window.open);
    let honest = proof_now(&state, node, read_shard).unwrap_or_else(|| unreachable!());
    Fixed {
        params: *state.proof_params(),
        seed,
        spaces,
        honest,
    }
});

#[derive(Debug, Arbitrary)]
struct RawSample {
    leaf: u32,
    shard: [u8; 32],
    size: u64,
    leaf_path: Vec<([u8; 32], u64)>,
    chunk: Option<(Vec<u8>, Vec<[u8; 32]>)>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Bent(Vec<ProofBend>),
    Raw {
        node: [u8; 32],
        period: u64,
        samples: Vec<RawSample>,
    },
    Bytes(Vec<u8>),
}

fn raw(node: [u8; 32], period: u64, samples: Vec<RawSample>) -> StorageProof {
    let samples = samples
        .into_iter()
        .map(|s| Sample {
            leaf: s.leaf,
            shard: ContentId::from_digest(s.shard),
            size: s.size,
            leaf_path: s
                .leaf_path
                .into_iter()
                .map(|(hash, bytes)| Sibling { hash, bytes })
                .collect(),
            answer: match s.chunk {
                Some((data, path)) => Answer::Chunk { data, path },
                None => Answer::Lost,
            },
        })
        .collect();
    StorageProof {
        node: Address(node),
        period,
        samples,
    }
}

fuzz_target!(|input: Input| {
    let f = &*FIXED;
    let proof = match input {
        Input::Bent(bends) => {
            let mut proof = f.honest.clone();
            let untouched = bends.is_empty();
            for b in bends.into_iter().take(8) {
                bend_proof(&mut proof, b);
            }
            if untouched {
                let verified = proofs::verify(&f.params, &proof, &f.seed, &f.spaces);
                assert_eq!(verified, Ok(vec![]), "the honest proof verifies");
            }
            proof
        }
        Input::Raw {
            node,
            period,
            samples,
        } => raw(node, period, samples),
        Input::Bytes(bytes) => match postcard::from_bytes::<StorageProof>(&bytes) {
            Ok(p) => p,
            Err(_) => return,
        },
    };
    if let Ok(lost) = proofs::verify(&f.params, &proof, &f.seed, &f.spaces) {
        assert_eq!(proof.samples.len(), f.params.samples as usize);
        assert!(lost.iter().all(|l| l.commitment < f.spaces.len()));
    }
});
