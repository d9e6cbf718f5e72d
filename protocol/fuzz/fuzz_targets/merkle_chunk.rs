//! The two inclusion proofs a storage proof is made of, with arbitrary
//! inputs: a shard's path to a commitment root (`chain::merkle::verify`) and
//! a chunk's path to a shard id (`proofs::chunk::verify`). Arbitrary inputs
//! and true paths then bent: never a panic, and a true path always verifies.
#![no_main]

use arbitrary::Arbitrary;
use cairn_protocol::chain::merkle::{self, Committed, Sibling};
use cairn_protocol::proofs::chunk;
use cairn_protocol::ContentId;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input {
    Merkle {
        root: [u8; 32],
        count: u64,
        bytes: u64,
        id: [u8; 32],
        size: u64,
        index: u64,
        path: Vec<([u8; 32], u64)>,
    },
    /// A tree of 1 to 256 leaves of the given sizes; leaf `index`'s true
    /// path, then one sibling's byte count replaced.
    MerkleTrue {
        sizes: Vec<u32>,
        index: u8,
        bend: Option<(u8, u64)>,
    },
    Chunk {
        id: [u8; 32],
        size: u64,
        index: u64,
        data: Vec<u8>,
        path: Vec<[u8; 32]>,
    },
    /// A shard of `size` bytes (at most 64 KiB), chunk `index`'s true path,
    /// then one hash replaced.
    ChunkTrue {
        size: u16,
        index: u8,
        bend: Option<(u8, [u8; 32])>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::Merkle {
        root,
        count,
        bytes,
        id,
        size,
        index,
        path,
    } => {
        let tree = Committed { root, count, bytes };
        let path: Vec<Sibling> = path
            .into_iter()
            .map(|(hash, bytes)| Sibling { hash, bytes })
            .collect();
        let _ = merkle::verify(&tree, &ContentId::from_digest(id), size, index, &path);
    }
    Input::MerkleTrue { sizes, index, bend } => {
        let shards: Vec<(ContentId, u64)> = sizes
            .iter()
            .take(256)
            .enumerate()
            .map(|(i, &s)| (ContentId::of(&(i as u32).to_le_bytes()), u64::from(s)))
            .collect();
        let Some(root) = merkle::root(&shards) else {
            return;
        };
        let tree = Committed {
            root,
            count: shards.len() as u64,
            bytes: shards.iter().map(|s| s.1).sum(),
        };
        let at = usize::from(index) % shards.len();
        let mut path = merkle::prove(&shards, at).unwrap_or_else(|| unreachable!());
        let (id, size) = shards[at];
        let start: u64 = shards[..at].iter().map(|s| s.1).sum();
        match bend {
            None => assert_eq!(
                merkle::verify(&tree, &id, size, at as u64, &path),
                Some(start),
                "a true path verifies at its offset"
            ),
            Some((level, bytes)) => {
                if let Some(p) = cairn_protocol_fuzz::pick(&mut path, level) {
                    p.bytes = bytes;
                }
                let _ = merkle::verify(&tree, &id, size, at as u64, &path);
            }
        }
    }
    Input::Chunk {
        id,
        size,
        index,
        data,
        path,
    } => {
        let _ = chunk::verify(&ContentId::from_digest(id), size, index, &data, &path);
    }
    Input::ChunkTrue { size, index, bend } => {
        let shard: Vec<u8> = (0..usize::from(size)).map(|i| (i * 7 + 3) as u8).collect();
        let id = ContentId::of(&shard);
        let count = chunk::chunk_count(u64::from(size)).max(1);
        let index = u64::from(index) % count;
        let Some(mut path) = chunk::prove(&shard, index) else {
            return;
        };
        let range = chunk::chunk_range(u64::from(size), index).unwrap_or(0..0);
        let data = &shard[range.start as usize..range.end as usize];
        match bend {
            None => assert!(
                chunk::verify(&id, u64::from(size), index, data, &path).is_some(),
                "a true chunk path verifies"
            ),
            Some((level, hash)) => {
                if let Some(p) = cairn_protocol_fuzz::pick(&mut path, level) {
                    *p = hash;
                }
                let _ = chunk::verify(&id, u64::from(size), index, data, &path);
            }
        }
    }
});
