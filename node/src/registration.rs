//! A storage node registers itself on the chain when it starts.
//!
//! Goals:
//!
//! * a node with a `[chain]` section (and `register = true`, the default)
//!   ends up with a current node record on the chain, without anyone
//!   running a command: its account is its identity key ([`ChainKey`]),
//!   the record holds its libp2p peer id (`PeerId::to_bytes`), the
//!   addresses it listens on (configured `network.external` ones first, no
//!   `/p2p/` suffix: clients add the peer id), its configured capacity and
//!   a stake (configured, or what the chain asks to cover the capacity:
//!   `min_stake` plus `stake_per_gib` per GiB), topped up with `AddStake`
//!   when the capacity grows;
//! * a node that restarts on other ports (port 0), or with another
//!   capacity, brings its record up to date with `UpdateNode`, and one
//!   whose listen addresses change while it runs does the same;
//! * on a devnet (a chain with a faucet) a fresh account pays for its stake
//!   and fee from the faucet; elsewhere the node says which account needs
//!   how much, and tries again;
//! * failures (no validator answers, a refused transaction, no funds) are
//!   logged and retried with backoff (1 s doubling to 30 s), never fatal:
//!   the node serves shards whatever the chain does;
//! * progress is visible: `registration` in `/status`
//!   ([`RegistrationState`]) and the gauge `cairn_node_chain_registered`.
//!
//! Non-goals: deregistering (an operator's decision: the stake comes back
//! only without active deals), lowering the stake, NAT discovery (addresses are the
//! listen and configured external ones), and more than
//! [`MAX_ADDRESSES`] addresses (the rest are left out).
//!
//! Validators register too, through their own HTTP API, unless
//! `register = false`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cairn_protocol::chain::{GenesisHash, TxBody, MAX_ADDRESSES, MAX_ADDRESS_LEN};
use cairn_protocol::proofs::accounting::required_stake;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use crate::http::StatusSource;
use crate::identity::ChainKey;
use crate::metrics::Metrics;
use cairn_client::chain::ChainClient;

/// First pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// One HTTP request to a validator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a submitted transaction may take to be committed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for every configured listener to report an address
/// once the first one has.
const SETTLE: Duration = Duration::from_secs(3);
/// How often a registered node compares its addresses with the record.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Where the node's registration stands, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Registration is off (no `[chain]` section, or `register = false`).
    Off,
    /// Waiting for listen addresses or for the chain.
    Pending,
    /// The chain's record has this node's current addresses and capacity.
    Registered,
    /// The last attempt failed (it is retried); the reason.
    Failed(String),
}

impl fmt::Display for RegistrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Pending => f.write_str("pending"),
            Self::Registered => f.write_str("registered"),
            Self::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

impl serde::Serialize for RegistrationState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the registration task needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Validators' HTTP APIs (`http://host:port`).
    pub api: Vec<String>,
    pub capacity: u64,
    /// `None`: what covers `capacity` on this chain.
    pub stake: Option<u64>,
    /// `network.external`: announced first.
    pub external: Vec<Multiaddr>,
    /// `network.listen` as configured: the task waits (up to [`SETTLE`])
    /// until each has reported an address.
    pub listen: Vec<Multiaddr>,
}

/// The addresses to register: `external` first, then `listen` (sorted, so
/// the same set gives the same list), without `/p2p/` suffixes or
/// duplicates, at most [`MAX_ADDRESSES`] of at most [`MAX_ADDRESS_LEN`]
/// bytes.
pub fn record_addresses(external: &[Multiaddr], listen: &[Multiaddr]) -> Vec<String> {
    let strip = |a: &Multiaddr| -> String {
        a.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect::<Multiaddr>()
            .to_string()
    };
    let mut listen: Vec<String> = listen.iter().map(strip).collect();
    listen.sort();
    let mut out: Vec<String> = Vec::new();
    for a in external.iter().map(strip).chain(listen) {
        if !a.is_empty() && a.len() <= MAX_ADDRESS_LEN && !out.contains(&a) {
            out.push(a);
        }
    }
    out.truncate(MAX_ADDRESSES);
    out
}

/// The kind of socket an address listens on, to tell whether a configured
/// listener has reported an address yet.
fn transport(a: &Multiaddr) -> (bool, bool, bool) {
    let mut ip4 = false;
    let mut tcp = false;
    let mut quic = false;
    for p in a.iter() {
        match p {
            Protocol::Ip4(_) => ip4 = true,
            Protocol::Tcp(_) => tcp = true,
            Protocol::QuicV1 => quic = true,
            _ => {}
        }
    }
    (ip4, tcp, quic)
}

/// The registration task; the daemon spawns it when registration is on and
/// ends it with `stop` (set when the node starts shutting down).
#[derive(Debug)]
pub struct Registrar {
    settings: Settings,
    client: ChainClient,
    key: Arc<ChainKey>,
    peer_id: PeerId,
    source: Arc<StatusSource>,
    metrics: Arc<Metrics>,
}

/// What one attempt achieved.
enum Step {
    /// The record is current.
    Done,
    /// A transaction was committed; look again at once.
    Again,
}

impl Registrar {
    /// A registrar talking to `settings.api`.
    pub fn new(
        settings: Settings,
        key: Arc<ChainKey>,
        peer_id: PeerId,
        source: Arc<StatusSource>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client = ChainClient::new(&settings.api, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            client,
            key,
            peer_id,
            source,
            metrics,
        })
    }

    fn set_state(&self, state: RegistrationState) {
        self.metrics
            .chain_registered
            .set(i64::from(state == RegistrationState::Registered));
        if let Ok(mut s) = self.source.registration.write() {
            *s = state;
        }
    }

    fn current_listen(&self) -> Vec<Multiaddr> {
        self.source
            .listen
            .read()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The addresses to register now; empty while the node listens nowhere.
    fn addresses(&self) -> Vec<String> {
        let listen = self.current_listen();
        if listen.is_empty() {
            return Vec::new();
        }
        record_addresses(&self.settings.external, &listen)
    }

    /// Runs until `stop` is set (or its sender is gone).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        self.set_state(RegistrationState::Pending);
        // Completes once `stop` is set, or at once if it already is (or its
        // sender is gone).
        let stopped = || {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        // Wait for the listeners, then a little for the rest of them.
        let mut first_seen: Option<tokio::time::Instant> = None;
        loop {
            let listen = self.current_listen();
            let all = self
                .settings
                .listen
                .iter()
                .all(|c| listen.iter().any(|a| transport(a) == transport(c)));
            if !listen.is_empty() {
                let since = *first_seen.get_or_insert_with(tokio::time::Instant::now);
                if all || since.elapsed() >= SETTLE {
                    break;
                }
            }
            tokio::select! {
                () = stopped() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let address = self.key.address();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let addresses = self.addresses();
            let result = if addresses.is_empty() {
                Err("the node listens on no address".to_string())
            } else {
                tokio::select! {
                    () = stopped() => return,
                    r = self.step(&addresses) => r,
                }
            };
            match result {
                Ok(Step::Again) => {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                Ok(Step::Done) => {
                    if self
                        .source
                        .registration
                        .read()
                        .map_or(true, |s| *s != RegistrationState::Registered)
                    {
                        tracing::info!(account = %address, ?addresses, capacity = self.settings.capacity, "registered on the chain");
                    }
                    self.set_state(RegistrationState::Registered);
                    backoff = FIRST_BACKOFF;
                    // Registered: look again only when the addresses change.
                    loop {
                        tokio::select! {
                            () = stopped() => return,
                            () = tokio::time::sleep(WATCH_INTERVAL) => {}
                        }
                        let now = self.addresses();
                        if !now.is_empty() && now != addresses {
                            tracing::info!(
                                ?now,
                                "listen addresses changed; updating the chain record"
                            );
                            self.set_state(RegistrationState::Pending);
                            break;
                        }
                    }
                }
                Err(reason) => {
                    tracing::warn!(account = %address, %reason, retry_in_secs = backoff.as_secs(), "chain registration failed");
                    self.set_state(RegistrationState::Failed(reason));
                    tokio::select! {
                        () = stopped() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One look at the chain, and at most one transaction.
    async fn step(&self, addresses: &[String]) -> Result<Step, String> {
        let me = self.key.address();
        let status = self
            .client
            .status()
            .await
            .map_err(|e| format!("chain status: {e}"))?;
        let account = self
            .client
            .account(&me)
            .await
            .map_err(|e| format!("account {me}: {e}"))?;
        let capacity = self.settings.capacity;
        let fee = status.min_fee;
        // The stake covers the whole capacity: the chain refuses deals the
        // stake does not cover (`stake_per_gib`).
        let covering = required_stake(status.stake_per_gib, status.min_stake, capacity)
            .ok_or_else(|| format!("the stake for {capacity} bytes overflows"))?;
        let stake = self.settings.stake.unwrap_or(covering);
        let (body, what, need) = match &account.node {
            Some(node)
                if node.stake < covering
                    && self.settings.stake.is_none()
                    && node.status != "disqualified" =>
            {
                let amount = covering - node.stake;
                tracing::info!(
                    stake = node.stake,
                    amount,
                    "adding stake to cover the capacity"
                );
                let need = amount
                    .checked_add(fee)
                    .ok_or_else(|| format!("stake {amount} plus fee {fee} overflows"))?;
                (TxBody::AddStake { amount }, "AddStake", need)
            }
            Some(node) if node.addresses == addresses && node.capacity == capacity => {
                return Ok(Step::Done)
            }
            Some(node) => {
                tracing::info!(old = ?node.addresses, new = ?addresses, old_capacity = node.capacity, capacity, "updating the node's chain record");
                let body = TxBody::UpdateNode {
                    addresses: addresses.to_vec(),
                    capacity,
                };
                (body, "UpdateNode", fee)
            }
            None => {
                let need = stake
                    .checked_add(fee)
                    .ok_or_else(|| format!("stake {stake} plus fee {fee} overflows"))?;
                let body = TxBody::RegisterNode {
                    peer_id: self.peer_id.to_bytes(),
                    addresses: addresses.to_vec(),
                    capacity,
                    stake,
                };
                (body, "RegisterNode", need)
            }
        };
        if account.balance < need {
            let missing = need - account.balance;
            let Some(max) = status.faucet_max else {
                return Err(format!(
                    "account {me} needs {missing} more for {what} (it costs {need}, the balance is {}) and the chain has no faucet: send it funds",
                    account.balance
                ));
            };
            let amount = missing.min(max);
            tracing::info!(account = %me, amount, "asking the chain's faucet for the stake and fee");
            self.commit(
                &status.genesis_hash,
                account.next_nonce,
                0,
                TxBody::Faucet { amount },
                "Faucet",
            )
            .await?;
            return Ok(Step::Again);
        }
        if what == "RegisterNode" {
            tracing::info!(account = %me, ?addresses, capacity, stake, "registering on the chain");
        }
        self.commit(&status.genesis_hash, account.next_nonce, fee, body, what)
            .await?;
        Ok(Step::Again)
    }

    /// Signs, submits and waits for the block; `Err` unless it applied.
    async fn commit(
        &self,
        genesis: &GenesisHash,
        nonce: u64,
        fee: u64,
        body: TxBody,
        what: &str,
    ) -> Result<(), String> {
        let tx = self.key.sign_tx(genesis, nonce, fee, body);
        let id = self
            .client
            .submit(&tx)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let view = self
            .client
            .wait_for_tx(&id, COMMIT_TIMEOUT)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if view.ok != Some(true) {
            return Err(format!(
                "{what} refused by the chain: {}",
                view.error.unwrap_or_else(|| "no reason given".into())
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_external_first_sorted_stripped_and_bounded() {
        let peer = PeerId::random();
        let m = |s: &str| s.parse::<Multiaddr>().unwrap();
        let listen = vec![
            m("/ip4/127.0.0.1/udp/5/quic-v1"),
            m(&format!("/ip4/127.0.0.1/tcp/6/p2p/{peer}")),
            m("/ip4/127.0.0.1/tcp/6"),
        ];
        let external = vec![m("/ip4/1.2.3.4/tcp/7")];
        assert_eq!(
            record_addresses(&external, &listen),
            vec![
                "/ip4/1.2.3.4/tcp/7",
                "/ip4/127.0.0.1/tcp/6",
                "/ip4/127.0.0.1/udp/5/quic-v1"
            ]
        );
        let many: Vec<Multiaddr> = (0..20)
            .map(|p| m(&format!("/ip4/10.0.0.1/tcp/{p}")))
            .collect();
        assert_eq!(record_addresses(&[], &many).len(), MAX_ADDRESSES);
        assert!(record_addresses(&[], &[]).is_empty());
    }

    #[test]
    fn states_render_as_status_shows_them() {
        assert_eq!(RegistrationState::Off.to_string(), "off");
        assert_eq!(
            serde_json::to_value(RegistrationState::Failed("no funds".into())).unwrap(),
            serde_json::json!("failed: no funds")
        );
        assert_eq!(
            serde_json::to_value(RegistrationState::Registered).unwrap(),
            serde_json::json!("registered")
        );
    }
}
