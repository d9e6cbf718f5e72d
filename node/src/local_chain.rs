//! A validator set on one machine: devnets, tests and benches.
//!
//! The validators of a chain must know each other's consensus addresses
//! before any of them starts, so their ports are chosen up front. Ports
//! taken with "bind port 0, read it, close it" can be handed out again by
//! the kernel to the next process (or thread) that binds port 0, which then
//! steals the validator's port; [`reserve_ports`] therefore picks ports
//! below the kernel's ephemeral range, which port-0 binds never use.
//!
//! [`setup`] writes one genesis file naming the validators and gives each
//! validator's config a `[chain]` section with every validator as a peer.
//! It also deals the validators' threshold key as a **trusted dealer**
//! (`cairn_chain::threshold::deal`): the group key goes into the genesis,
//! each share into its validator's share file (mode 0600), and the secret
//! polynomial is dropped. Fine for a devnet, whose operator runs every
//! validator anyway; a real network runs a DKG instead (docs/chain.md).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use cairn_chain::threshold;
use cairn_protocol::chain::{Address, Genesis, GroupKey};

use rand::RngCore;

use crate::config::Config;
use crate::identity::{self, ChainKey};
use crate::validator;

/// The config file name inside a node's data directory.
pub const NODE_CONFIG: &str = "config.toml";

/// The genesis file [`setup`] writes into its directory.
pub const GENESIS_FILE: &str = "genesis.json";

/// Why a local chain could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalChainError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("no free port for a validator on 127.0.0.1 in {low}..{high}")]
    NoPort { low: u16, high: u16 },
}

fn file_error(path: &Path) -> impl Fn(String) -> LocalChainError + '_ {
    move |reason| LocalChainError::File {
        path: path.to_path_buf(),
        reason,
    }
}

/// What [`setup`] wrote.
#[derive(Debug, Clone)]
pub struct LocalChain {
    pub genesis_path: PathBuf,
    pub genesis: Genesis,
    /// Each validator's chain address and consensus address, in the order
    /// of the directories given to [`setup`].
    pub peers: Vec<(Address, SocketAddr)>,
}

/// The chain address of the node whose data directory is `dir` (its
/// identity key).
pub fn chain_address(dir: &Path) -> Result<Address, LocalChainError> {
    let path = dir.join(NODE_CONFIG);
    let config = Config::load(&path).map_err(|e| file_error(&path)(e.to_string()))?;
    let key_path = config.identity_path();
    let keypair = identity::load(&key_path).map_err(|e| file_error(&key_path)(e.to_string()))?;
    let key = ChainKey::from_keypair(&keypair).map_err(|e| file_error(&key_path)(e.to_string()))?;
    Ok(key.address())
}

/// The lowest port of the kernel's ephemeral range (Linux), if readable.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Where the next [`reserve_ports`] call of this process starts looking.
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// `n` distinct TCP ports free on 127.0.0.1, outside the ephemeral range so
/// no port-0 bind can take them before their validator starts. Calls in one
/// process never return the same port twice (until the range wraps); calls
/// in different processes start at different places.
pub fn reserve_ports(n: usize) -> Result<Vec<u16>, LocalChainError> {
    let low: u16 = 10_000;
    let high: u16 = match ephemeral_low() {
        Some(e) if e > low + 1_000 => e,
        _ => 32_768,
    };
    let span = u32::from(high - low);
    // Scatter processes by pid; a counter keeps one process's calls apart.
    let _ = NEXT_PORT.compare_exchange(
        0,
        1 + (std::process::id().wrapping_mul(2_654_435_761) % span),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut ports = Vec::with_capacity(n);
    let mut tried = 0u32;
    while ports.len() < n {
        if tried >= span {
            return Err(LocalChainError::NoPort { low, high });
        }
        tried += 1;
        let offset = NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span;
        let Ok(port) = u16::try_from(u32::from(low) + offset) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Writes `dir/genesis.json` for chain `chain_id` with the nodes in
/// `validators` (their data directories) as validators, `customize`
/// adjusting the genesis (allocations, parameters), deals the threshold
/// key (the group key into the genesis, each share to its validator's
/// [`Config::share_path`], replacing an older one), and sets each
/// validator's `[chain]` section: consensus on a reserved port of
/// 127.0.0.1, every validator a peer, blocks at least `block_interval_ms`
/// apart. Other sections of the configs are kept.
pub fn setup(
    dir: &Path,
    validators: &[PathBuf],
    chain_id: &str,
    block_interval_ms: u64,
    customize: impl FnOnce(&mut Genesis),
) -> Result<LocalChain, LocalChainError> {
    let addresses = validators
        .iter()
        .map(|d| chain_address(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut genesis = Genesis::devnet(chain_id, addresses.clone(), Vec::new());
    customize(&mut genesis);
    let genesis_path = dir.join(GENESIS_FILE);
    genesis.group_key = Some(group_key(&genesis_path, validators, &addresses)?);
    let text = serde_json::to_vec_pretty(&genesis)
        .map_err(|e| file_error(&genesis_path)(e.to_string()))?;
    write_atomically(&genesis_path, &text)?;
    let ports = reserve_ports(validators.len())?;
    let peers: Vec<(Address, SocketAddr)> = addresses
        .iter()
        .zip(&ports)
        .map(|(a, p)| (*a, SocketAddr::from((Ipv4Addr::LOCALHOST, *p))))
        .collect();
    let peer_list: Vec<toml::Value> = peers
        .iter()
        .map(|(a, s)| toml::Value::String(format!("{a}@{s}")))
        .collect();
    for (node_dir, (_, listen)) in validators.iter().zip(&peers) {
        let path = node_dir.join(NODE_CONFIG);
        let bad = file_error(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut chain = match table.remove("chain") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        chain.insert(
            "genesis".into(),
            toml::Value::String(genesis_path.display().to_string()),
        );
        chain.insert("validator".into(), toml::Value::Boolean(true));
        chain.insert("listen".into(), toml::Value::String(listen.to_string()));
        chain.insert("peers".into(), toml::Value::Array(peer_list.clone()));
        chain.insert(
            "block_interval_ms".into(),
            toml::Value::Integer(i64::try_from(block_interval_ms).unwrap_or(i64::MAX)),
        );
        table.insert("chain".into(), toml::Value::Table(chain));
        let body = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
        write_atomically(&path, body.as_bytes())?;
    }
    Ok(LocalChain {
        genesis_path,
        genesis,
        peers,
    })
}

/// The group key for validators `addresses` (their data directories
/// `dirs`): the one in the genesis at `genesis_path` if it is for the same
/// validators and every validator's share file holds its share of it (so
/// setting up the same devnet again keeps its chain), else a new dealing,
/// whose shares replace the old files.
fn group_key(
    genesis_path: &Path,
    dirs: &[PathBuf],
    addresses: &[Address],
) -> Result<GroupKey, LocalChainError> {
    let keys = addresses
        .iter()
        .map(validator::public_key)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(genesis_path)(e.to_string()))?;
    let mut share_paths = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let path = dir.join(NODE_CONFIG);
        let config = Config::load(&path).map_err(|e| file_error(&path)(e.to_string()))?;
        share_paths.push(config.share_path());
    }
    let existing = std::fs::read(genesis_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Genesis>(&bytes).ok())
        .filter(|old| old.validators == addresses)
        .and_then(|old| old.group_key);
    if let Some(key) = existing {
        let reusable = threshold::polynomial(Some(&key), keys.len())
            .ok()
            .is_some_and(|poly| {
                keys.iter().zip(&share_paths).all(|(me, path)| {
                    validator::load_share(path).ok().is_some_and(|share| {
                        threshold::check_share(&poly, &keys, me, &share).is_ok()
                    })
                })
            });
        if reusable {
            return Ok(key);
        }
    }
    let mut entropy = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut entropy[..]);
    let dealing =
        threshold::deal(*entropy, &keys).map_err(|e| file_error(genesis_path)(e.to_string()))?;
    for (path, share) in share_paths.iter().zip(&dealing.shares) {
        // A new genesis makes an older share useless.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(path)(e.to_string())),
        }
        validator::write_share(path, share).map_err(|e| file_error(path)(e.to_string()))?;
    }
    Ok(dealing.group_key)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LocalChainError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| file_error(path)(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_free_and_not_ephemeral() {
        let first = reserve_ports(20).unwrap();
        let second = reserve_ports(20).unwrap();
        let all: std::collections::HashSet<u16> = first.iter().chain(&second).copied().collect();
        assert_eq!(all.len(), 40);
        let high = ephemeral_low().unwrap_or(32_768);
        for port in all {
            assert!((10_000..high).contains(&port), "{port}");
        }
        // A port-0 bind never lands in the reserved range.
        for _ in 0..50 {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = l.local_addr().unwrap().port();
            assert!(!first.contains(&port) && !second.contains(&port));
        }
    }
}
