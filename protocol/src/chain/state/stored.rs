//! The state as a store keeps it: one [`StateHeader`] (every field but the
//! maps) and one record per map entry, so a block writes only the entries
//! it changed ([`ChainState::take_changes`]) and a store rebuilds the state
//! from its records ([`ChainState::from_stored`]).
//!
//! Keys and values are in their canonical (postcard) encodings; which
//! bytes a store puts around them is the store's business.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Account, ChainState, CommittedMap, Deal, DealId, NamespaceRoot, NodeRecord, Params};
use crate::chain::genesis::GenesisHash;
use crate::chain::tx::Address;

/// Every field of the state but its maps: what the state root hashes
/// before the maps' roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHeader {
    chain_id: String,
    genesis: GenesisHash,
    params: Params,
    validators: Vec<Address>,
    height: u64,
    epoch: u64,
    beacon: [u8; 32],
    beacons: BTreeMap<u64, [u8; 32]>,
    repair_pool: u64,
    genesis_supply: u64,
    minted: u64,
    burned: u64,
}

impl StateHeader {
    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

/// A map of the state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateMap {
    Accounts,
    Nodes,
    Deals,
    Namespaces,
}

impl StateMap {
    pub const ALL: [StateMap; 4] = [
        StateMap::Accounts,
        StateMap::Nodes,
        StateMap::Deals,
        StateMap::Namespaces,
    ];

    /// A byte naming the map (a store's key prefix).
    pub fn tag(self) -> u8 {
        match self {
            StateMap::Accounts => b'a',
            StateMap::Nodes => b'n',
            StateMap::Deals => b'd',
            StateMap::Namespaces => b's',
        }
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.tag() == tag)
    }
}

/// One entry of a map: its key's and value's encodings; no value: the
/// entry was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub map: StateMap,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value)
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"))
}

fn entries_of<K, V>(map: StateMap, changes: Vec<(K, Option<V>)>) -> impl Iterator<Item = StateEntry>
where
    K: Serialize,
    V: Serialize,
{
    changes.into_iter().map(move |(k, v)| StateEntry {
        map,
        key: encode(&k),
        value: v.as_ref().map(encode),
    })
}

fn all_of<K, V>(map: StateMap, m: &CommittedMap<K, V>) -> impl Iterator<Item = StateEntry> + '_
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    m.iter().map(move |(k, v)| StateEntry {
        map,
        key: encode(k),
        value: Some(encode(v)),
    })
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("{what}: {e}"))
}

impl ChainState {
    /// Every field but the maps.
    pub fn header(&self) -> StateHeader {
        StateHeader {
            chain_id: self.chain_id.clone(),
            genesis: self.genesis,
            params: self.params.clone(),
            validators: self.validators.clone(),
            height: self.height,
            epoch: self.epoch,
            beacon: self.beacon,
            beacons: self.beacons.clone(),
            repair_pool: self.repair_pool,
            genesis_supply: self.genesis_supply,
            minted: self.minted,
            burned: self.burned,
        }
    }

    /// The entries changed since the last call (or since the state was
    /// built or loaded), each with its value now.
    pub fn take_changes(&mut self) -> Vec<StateEntry> {
        let mut out: Vec<StateEntry> = Vec::new();
        out.extend(entries_of(StateMap::Accounts, self.accounts.take_changes()));
        out.extend(entries_of(StateMap::Nodes, self.nodes.take_changes()));
        out.extend(entries_of(StateMap::Deals, self.deals.take_changes()));
        out.extend(entries_of(
            StateMap::Namespaces,
            self.namespaces.take_changes(),
        ));
        out
    }

    /// Every entry (what a new store writes).
    pub fn entries(&self) -> impl Iterator<Item = StateEntry> + '_ {
        all_of(StateMap::Accounts, &self.accounts)
            .chain(all_of(StateMap::Nodes, &self.nodes))
            .chain(all_of(StateMap::Deals, &self.deals))
            .chain(all_of(StateMap::Namespaces, &self.namespaces))
    }

    /// The state from its header and every entry (map, key, value), in any
    /// order; an entry that does not decode is an error.
    pub fn from_stored<'a>(
        header: StateHeader,
        entries: impl IntoIterator<Item = (StateMap, &'a [u8], &'a [u8])>,
    ) -> Result<Self, String> {
        let mut accounts: Vec<(Address, Account)> = Vec::new();
        let mut nodes: Vec<(Address, NodeRecord)> = Vec::new();
        let mut deals: Vec<(DealId, Deal)> = Vec::new();
        let mut namespaces: Vec<(Address, NamespaceRoot)> = Vec::new();
        for (map, key, value) in entries {
            match map {
                StateMap::Accounts => {
                    accounts.push((decode("account address", key)?, decode("account", value)?))
                }
                StateMap::Nodes => {
                    nodes.push((decode("node address", key)?, decode("node", value)?))
                }
                StateMap::Deals => deals.push((decode("deal id", key)?, decode("deal", value)?)),
                StateMap::Namespaces => namespaces.push((
                    decode("namespace address", key)?,
                    decode("namespace", value)?,
                )),
            }
        }
        let h = header;
        let mut state = Self {
            chain_id: h.chain_id,
            genesis: h.genesis,
            params: h.params,
            validators: h.validators,
            height: h.height,
            epoch: h.epoch,
            beacon: h.beacon,
            beacons: h.beacons,
            accounts: accounts.into_iter().collect(),
            nodes: nodes.into_iter().collect(),
            deals: deals.into_iter().collect(),
            derived: Default::default(),
            namespaces: namespaces.into_iter().collect(),
            repair_pool: h.repair_pool,
            genesis_supply: h.genesis_supply,
            minted: h.minted,
            burned: h.burned,
        };
        state.derived = state.derive();
        Ok(state)
    }
}
