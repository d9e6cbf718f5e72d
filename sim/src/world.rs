//! The simulated network's state, as flat arrays.
//!
//! Nodes and files are indices (`u32` slots); every per-node and per-file
//! fact is one `Vec` indexed by them (struct of arrays), so the hot loops
//! touch only what they need and nothing is allocated per event. A file's
//! shard positions are `n` consecutive entries of [`Files::holders`]: the
//! slot of the node holding it, [`EMPTY`] when the chain knows the shard is
//! gone, with the [`DROPPED`] bit when the node has lost the bytes but the
//! chain does not know yet.
//!
//! Three counters per file follow every change, so loss and repair are
//! decided without rescanning: `intact` (the bytes exist somewhere),
//! `available` (intact on a node that is up) and `counted` (what the chain
//! believes healthy: held by an active node). Loss is `intact < k`; repair
//! is driven by `counted`, as on the real network.

use cairn_protocol::chain::Address;

use crate::rules::{Health, ProofRecord};

/// A position the chain knows is empty.
pub const EMPTY: u32 = u32::MAX;
/// The holder lost the bytes, and the chain does not know yet.
pub const DROPPED: u32 = 1 << 31;

/// Whether a node can be reached and has its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Up,
    /// In an outage: data intact, unreachable.
    Down,
    /// Vanished or failed for good: data gone, still registered.
    Gone,
}

/// How a node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Drops data and keeps answering challenges.
    Dropper,
    /// Often answers after the deadline.
    Late,
    /// Drops data and declares the loss.
    Declarer,
    /// Drops data and rebuilds challenged chunks from sibling shards.
    Regenerator,
}

/// Per-node arrays.
#[derive(Debug, Default)]
pub struct Nodes {
    /// Identity generation: a replaced node is a new node in the same slot.
    pub gen: Vec<u64>,
    pub address: Vec<Address>,
    pub domain: Vec<u32>,
    pub presence: Vec<Presence>,
    pub behaviour: Vec<Behaviour>,
    pub record: Vec<ProofRecord>,
    /// Files the node holds a position of; may hold stale entries (a
    /// position moved away) while the node is not active, see `stale`.
    pub holdings: Vec<Vec<u32>>,
    pub stale: Vec<bool>,
    /// Positions it holds (EMPTY excluded).
    pub held: Vec<u32>,
    /// It has lost bytes it will declare at the next period.
    pub to_declare: Vec<bool>,
    pub earned: Vec<u64>,
    /// The most the node has staked (the stake rule over its peak bytes).
    pub stake: Vec<u64>,
    /// What the chain has not noticed yet, and since when (virtual hours).
    pub undetected: Vec<Option<(f64, Kind)>>,
}

/// Things the chain must notice, each with its own detection path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Dropped bytes, kept answering: caught by a failed sample.
    Dropper,
    /// Answers late: caught when it turns faulty.
    Late,
    /// Dropped bytes and declared it: known at the next period.
    Declarer,
    /// A disk died and the operator declared it.
    DiskFailure,
    /// Left without a word (churn, or an outage for good): caught when faulty.
    Vanished,
    /// Dropped bytes and rebuilds challenged chunks from k siblings: caught
    /// only when fewer than k siblings can be reached.
    Regenerator,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Dropper,
        Kind::Late,
        Kind::Declarer,
        Kind::DiskFailure,
        Kind::Vanished,
        Kind::Regenerator,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Dropper => "drops data, keeps answering",
            Kind::Late => "answers late",
            Kind::Declarer => "drops data, declares it",
            Kind::DiskFailure => "disk failure (declared)",
            Kind::Vanished => "vanished",
            Kind::Regenerator => "drops data, regenerates it",
        }
    }
}

/// Per-file arrays.
#[derive(Debug)]
pub struct Files {
    pub n: usize,
    pub k: usize,
    pub holders: Vec<u32>,
    pub intact: Vec<u16>,
    pub available: Vec<u16>,
    pub counted: Vec<u16>,
    pub lost: Vec<bool>,
    pub repair_pending: Vec<bool>,
    /// Placements made for it so far (varies the placement seed).
    pub round: Vec<u32>,
}

/// What a position contributes to a file's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub intact: bool,
    pub available: bool,
    pub counted: bool,
}

impl Nodes {
    pub fn len(&self) -> usize {
        self.gen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gen.is_empty()
    }

    /// Adds a node in a new slot.
    pub fn push(&mut self, gen: u64, domain: u32, presence: Presence, behaviour: Behaviour) -> u32 {
        let slot = self.gen.len() as u32;
        self.gen.push(gen);
        self.address.push(address_of(gen));
        self.domain.push(domain);
        self.presence.push(presence);
        self.behaviour.push(behaviour);
        self.record.push(ProofRecord::default());
        self.holdings.push(Vec::new());
        self.stale.push(false);
        self.held.push(0);
        self.to_declare.push(false);
        self.earned.push(0);
        self.stake.push(0);
        self.undetected.push(None);
        slot
    }

    /// A newcomer takes `slot` (which must hold nothing any more).
    pub fn replace(&mut self, slot: u32, gen: u64, presence: Presence) {
        let s = slot as usize;
        self.gen[s] = gen;
        self.address[s] = address_of(gen);
        self.presence[s] = presence;
        self.behaviour[s] = Behaviour::Honest;
        self.record[s] = ProofRecord::default();
        self.holdings[s].clear();
        self.stale[s] = false;
        self.held[s] = 0;
        self.to_declare[s] = false;
        self.earned[s] = 0;
        self.stake[s] = 0;
        self.undetected[s] = None;
    }

    /// May receive new shards: reachable and active.
    pub fn eligible(&self, slot: usize) -> bool {
        self.presence[slot] == Presence::Up && self.record[slot].health == Health::Active
    }
}

/// A node's chain address, derived from its identity generation.
pub fn address_of(gen: u64) -> Address {
    let mut h = blake3::Hasher::new_derive_key("cairn-sim node address");
    h.update(&gen.to_le_bytes());
    Address(*h.finalize().as_bytes())
}

impl Files {
    pub fn new(k: usize, n: usize) -> Self {
        Self {
            n,
            k,
            holders: Vec::new(),
            intact: Vec::new(),
            available: Vec::new(),
            counted: Vec::new(),
            lost: Vec::new(),
            repair_pending: Vec::new(),
            round: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.lost.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lost.is_empty()
    }

    /// A new file with every position empty.
    pub fn push(&mut self) -> u32 {
        let id = self.lost.len() as u32;
        self.holders.extend(std::iter::repeat_n(EMPTY, self.n));
        self.intact.push(0);
        self.available.push(0);
        self.counted.push(0);
        self.lost.push(false);
        self.repair_pending.push(false);
        self.round.push(0);
        id
    }

    /// The positions of file `f`.
    pub fn positions(&self, f: u32) -> std::ops::Range<usize> {
        let start = f as usize * self.n;
        start..start + self.n
    }

    /// The position of `f` that `slot` holds, if it still holds one.
    pub fn position_of(&self, f: u32, slot: u32) -> Option<usize> {
        self.positions(f)
            .find(|&i| self.holders[i] != EMPTY && self.holders[i] & !DROPPED == slot)
    }
}

/// The flags of a holder entry, given the nodes' state.
pub fn flags(nodes: &Nodes, holder: u32) -> Flags {
    if holder == EMPTY {
        return Flags::default();
    }
    let slot = (holder & !DROPPED) as usize;
    let has_bytes = holder & DROPPED == 0 && nodes.presence[slot] != Presence::Gone;
    Flags {
        intact: has_bytes,
        available: has_bytes && nodes.presence[slot] == Presence::Up,
        counted: nodes.record[slot].health == Health::Active,
    }
}

/// Removes a position's contribution from its file's counters.
pub fn subtract(files: &mut Files, f: usize, fl: Flags) {
    files.intact[f] -= u16::from(fl.intact);
    files.available[f] -= u16::from(fl.available);
    files.counted[f] -= u16::from(fl.counted);
}

/// Adds a position's contribution to its file's counters.
pub fn add(files: &mut Files, f: usize, fl: Flags) {
    files.intact[f] += u16::from(fl.intact);
    files.available[f] += u16::from(fl.available);
    files.counted[f] += u16::from(fl.counted);
}
