//! Which nodes get a segment's shards.
//!
//! Rendezvous (highest-random-weight) hashing: every candidate node gets the
//! score `BLAKE3(seed ‖ node id)` and the highest scores win. Anyone with the
//! same candidate list and seed computes the same placement, adding or
//! removing one node moves only the shards that node wins or held, and no
//! coordinator is needed.
//!
//! Spread: shards are kept apart by failure domain (an operator, a subnet, a
//! region — whatever the caller groups by). No domain gets more than
//! `⌈n / domains⌉` shards of one segment, so losing a whole domain costs at
//! most that many, which is what correlated failures need.

use std::collections::HashMap;

/// A node that may receive shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Stable node identity (for example its peer id bytes).
    pub id: &'a [u8],
    /// Failure domain; nodes sharing it may fail together.
    pub domain: u64,
}

/// Why no placement was possible.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("need {need} distinct nodes, only {have} available")]
    NotEnoughNodes { need: usize, have: usize },
}

fn score(seed: &[u8; 32], id: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(seed);
    h.update(id);
    *h.finalize().as_bytes()
}

/// Picks `n` distinct candidates for the object with placement `seed`,
/// spread over failure domains. Returns indices into `candidates`, in
/// shard order (shard `j` goes to the `j`-th index). Duplicate ids count once.
pub fn place(
    seed: &[u8; 32],
    candidates: &[Candidate<'_>],
    n: usize,
) -> Result<Vec<usize>, PlacementError> {
    let mut ranked: Vec<([u8; 32], usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (score(seed, c.id), i))
        .collect();
    // Highest score first; ties (equal ids) broken by index for determinism.
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.dedup_by(|a, b| a.0 == b.0);
    if ranked.len() < n {
        return Err(PlacementError::NotEnoughNodes {
            need: n,
            have: ranked.len(),
        });
    }
    let domains = {
        let mut d: Vec<u64> = ranked.iter().map(|(_, i)| candidates[*i].domain).collect();
        d.sort_unstable();
        d.dedup();
        d.len()
    };
    let cap = n.div_ceil(domains.max(1));
    let mut per_domain: HashMap<u64, usize> = HashMap::new();
    let mut chosen = Vec::with_capacity(n);
    for (_, i) in &ranked {
        if chosen.len() == n {
            break;
        }
        let used = per_domain.entry(candidates[*i].domain).or_default();
        if *used < cap {
            *used += 1;
            chosen.push(*i);
        }
    }
    // The cap always admits n nodes: domains·cap ≥ n and every domain has a
    // node; but a domain may have fewer nodes than cap, so fill any gap
    // from the remaining ranking.
    if chosen.len() < n {
        for (_, i) in &ranked {
            if chosen.len() == n {
                break;
            }
            if !chosen.contains(i) {
                chosen.push(*i);
            }
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(count: usize, domains: u64) -> Vec<(Vec<u8>, u64)> {
        (0..count)
            .map(|i| ((i as u32).to_le_bytes().to_vec(), i as u64 % domains))
            .collect()
    }

    fn candidates(v: &[(Vec<u8>, u64)]) -> Vec<Candidate<'_>> {
        v.iter()
            .map(|(id, d)| Candidate { id, domain: *d })
            .collect()
    }

    #[test]
    fn deterministic_distinct_and_spread() {
        let v = nodes(100, 10);
        let c = candidates(&v);
        let a = place(&[1; 32], &c, 30).unwrap();
        assert_eq!(a, place(&[1; 32], &c, 30).unwrap());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 30);
        let mut per = [0usize; 10];
        for i in &a {
            per[c[*i].domain as usize] += 1;
        }
        assert!(per.iter().all(|&x| x == 3), "{per:?}");
        assert_ne!(a, place(&[2; 32], &c, 30).unwrap());
    }

    #[test]
    fn removing_a_node_moves_little() {
        let v = nodes(200, 200);
        let c = candidates(&v);
        let before = place(&[3; 32], &c, 20).unwrap();
        let gone = before[5];
        let fewer: Vec<Candidate<'_>> = c
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != gone)
            .map(|(_, x)| x.clone())
            .collect();
        let after: Vec<&[u8]> = place(&[3; 32], &fewer, 20)
            .unwrap()
            .into_iter()
            .map(|i| fewer[i].id)
            .collect();
        let kept = before.iter().filter(|i| after.contains(&c[**i].id)).count();
        assert_eq!(kept, 19);
    }

    #[test]
    fn uneven_domains_still_fill_and_too_few_nodes_fail() {
        // One big domain and two single-node domains.
        let mut v = nodes(10, 1);
        v.push((b"x".to_vec(), 7));
        v.push((b"y".to_vec(), 8));
        let c = candidates(&v);
        assert_eq!(place(&[0; 32], &c, 12).unwrap().len(), 12);
        assert_eq!(
            place(&[0; 32], &c, 13),
            Err(PlacementError::NotEnoughNodes { need: 13, have: 12 })
        );
    }
}
