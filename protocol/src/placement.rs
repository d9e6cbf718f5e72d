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
//!
//! Weight: a node takes part with [`tickets`] in proportion to the stake it
//! locked, and its score is the best of its tickets' scores, so it wins a
//! place with probability proportional to its tickets (weighted rendezvous
//! hashing in integers, the same on every machine). Registering nodes is
//! cheap and stake is not: an operator who splits its stake over a thousand
//! nodes at the lowest stake gets the share of shards its stake buys, not a
//! thousand shares, so a flood of cheap registrations cannot crowd out the
//! nodes that locked more (as Filecoin weights by power, not by miner
//! count). Tickets are capped at [`MAX_TICKETS`], which bounds the hashing
//! per placement and keeps one large node from taking every segment.

use std::collections::HashMap;

/// A node that may receive shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Stable node identity (for example its peer id bytes).
    pub id: &'a [u8],
    /// Failure domain; nodes sharing it may fail together.
    pub domain: u64,
    /// Weight, from [`tickets`]; 0 counts as 1.
    pub tickets: u32,
}

/// Most tickets one node holds: a node with this many times the stake unit
/// (or more) wins 64 times as often as one at the unit.
pub const MAX_TICKETS: u32 = 64;

/// A node's tickets for its `stake`, where `unit` is the stake one ticket
/// stands for (callers use the smallest stake a node may register with, so
/// every registered node holds at least one): `stake / unit`, within
/// `1..=`[`MAX_TICKETS`].
pub fn tickets(stake: u64, unit: u64) -> u32 {
    let t = stake / unit.max(1);
    u32::try_from(t).unwrap_or(u32::MAX).clamp(1, MAX_TICKETS)
}

/// Why no placement was possible.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("need {need} distinct nodes, only {have} available")]
    NotEnoughNodes { need: usize, have: usize },
}

/// The best score among a candidate's tickets. Ticket 0 hashes the id
/// alone, so nodes of one ticket place as they did before weights.
fn score(seed: &[u8; 32], c: &Candidate<'_>) -> [u8; 32] {
    let one = |ticket: u32| {
        let mut h = blake3::Hasher::new_keyed(seed);
        h.update(c.id);
        if ticket > 0 {
            h.update(&ticket.to_le_bytes());
        }
        *h.finalize().as_bytes()
    };
    (1..c.tickets.clamp(1, MAX_TICKETS))
        .map(one)
        .fold(one(0), |best, s| best.max(s))
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
        .map(|(i, c)| (score(seed, c), i))
        .collect();
    // Highest score first; ties (equal ids) broken by index for determinism.
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    // Equal ids count once, whatever tickets each copy claims.
    let mut seen = std::collections::HashSet::new();
    ranked.retain(|(_, i)| seen.insert(candidates[*i].id));
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
            .map(|(id, d)| Candidate {
                id,
                domain: *d,
                tickets: 1,
            })
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

    /// Shards of `segments` placements of `n` that go to candidates for
    /// which `pick` holds.
    fn share(
        c: &[Candidate<'_>],
        n: usize,
        segments: u32,
        pick: impl Fn(&Candidate<'_>) -> bool,
    ) -> f64 {
        let mut won = 0usize;
        for s in 0..segments {
            let seed = *blake3::hash(&s.to_le_bytes()).as_bytes();
            won += place(&seed, c, n)
                .unwrap()
                .iter()
                .filter(|&&i| pick(&c[i]))
                .count();
        }
        won as f64 / (segments as usize * n) as f64
    }

    #[test]
    fn tickets_follow_stake_within_bounds() {
        assert_eq!(tickets(0, 100), 1);
        assert_eq!(tickets(99, 100), 1);
        assert_eq!(tickets(250, 100), 2);
        assert_eq!(tickets(u64::MAX, 1), MAX_TICKETS);
        assert_eq!(tickets(5, 0), 5);
    }

    #[test]
    fn a_node_wins_in_proportion_to_its_tickets() {
        // 40 nodes of one ticket and 10 of four: the heavy ones hold half
        // of all tickets, so about half of single placements.
        let ids: Vec<[u8; 4]> = (0..50u32).map(|i| i.to_le_bytes()).collect();
        let c: Vec<Candidate<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                id,
                domain: i as u64,
                tickets: if i < 10 { 4 } else { 1 },
            })
            .collect();
        let heavy = share(&c, 1, 4000, |x| x.tickets == 4);
        assert!((0.45..0.55).contains(&heavy), "heavy nodes won {heavy}");
        // Unweighted, they would win a fifth.
        let flat: Vec<Candidate<'_>> = c
            .iter()
            .map(|x| Candidate {
                tickets: 1,
                ..x.clone()
            })
            .collect();
        let heavy_flat = share(&flat, 1, 4000, |x| x.id[0] < 10 && x.id[1..] == [0, 0, 0]);
        assert!((0.15..0.25).contains(&heavy_flat), "{heavy_flat}");
    }

    #[test]
    fn a_cheap_flood_of_nodes_gets_only_its_stakes_share() {
        // Ten honest nodes each locked 50 units; an attacker registered 100
        // nodes at one unit each, every one in its own subnet: a sixth of
        // the stake, and ten times as many nodes.
        let ids: Vec<[u8; 4]> = (0..110u32).map(|i| i.to_le_bytes()).collect();
        let c: Vec<Candidate<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                id,
                domain: i as u64,
                tickets: tickets(if i < 10 { 50 } else { 1 }, 1),
            })
            .collect();
        let attacker = share(&c, 10, 300, |x| x.tickets == 1);
        assert!(attacker < 0.30, "the flood took {attacker} of all shards");
        let flat: Vec<Candidate<'_>> = c
            .iter()
            .map(|x| Candidate {
                tickets: 1,
                ..x.clone()
            })
            .collect();
        let unweighted = share(&flat, 10, 300, |x| {
            u32::from_le_bytes(x.id.try_into().unwrap()) >= 10
        });
        assert!(unweighted > 0.8, "{unweighted}");
    }

    #[test]
    fn one_ticket_places_as_an_unweighted_score_and_duplicates_count_once() {
        let v = nodes(30, 30);
        let c = candidates(&v);
        let a = place(&[9; 32], &c, 10).unwrap();
        // A duplicate id with more tickets does not take a second place.
        let mut d = c.clone();
        d.push(Candidate {
            tickets: 64,
            ..c[0].clone()
        });
        let b = place(&[9; 32], &d, 30).unwrap();
        let ids: std::collections::HashSet<&[u8]> = b.iter().map(|&i| d[i].id).collect();
        assert_eq!(ids.len(), 30);
        // One ticket scores BLAKE3(seed; id) alone, as placement did
        // before weights: the first place is the best such score.
        let old = |i: usize| *blake3::keyed_hash(&[9; 32], c[i].id).as_bytes();
        let best = (0..c.len()).max_by_key(|&i| old(i)).unwrap();
        assert_eq!(a[0], best);
    }
}
