//! Four validators in commonware's deterministic runtime and simulated
//! network: they decide blocks, apply transactions, survive a crash and a
//! restart, stop with two down, resume when one returns, and never fork.
//!
//! The runtime is deterministic (one seed, simulated time), so a failure
//! here replays exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_chain::{
    engine::{Channels, Timing},
    threshold, Block, ChainApp, Head, Ledger, LedgerError, MemoryLedger,
};
use cairn_protocol::chain::{
    Address, Allocation, ChainState, Genesis, GenesisHash, SignedTx, Transaction, TxBody,
};
use commonware_cryptography::{ed25519::PrivateKey, Signer};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{deterministic, Clock, Handle, Quota, Runner, Spawner, Supervisor as _};
use commonware_utils::{probability, NZUsize, NZU32};

type Key = commonware_cryptography::ed25519::PublicKey;
type Ctx = deterministic::Context;

const VALIDATORS: u64 = 4;

/// What the test keeps of a committed block.
#[derive(Debug, Clone)]
struct Committed {
    view: u64,
    digest: [u8; 32],
    seed: Option<cairn_chain::BlockSeed>,
    beacon: [u8; 32],
}

/// A ledger the test can read while the validator runs, and which outlives
/// a crash of it (as a RocksDB directory would).
#[derive(Clone)]
struct SharedLedger {
    ledger: Arc<Mutex<MemoryLedger>>,
    committed: Arc<Mutex<Vec<Committed>>>,
    /// Propose the pending transactions in reverse order (a proposer
    /// choosing another order and another set).
    reverse: bool,
}

impl SharedLedger {
    fn new(genesis: &Genesis) -> Self {
        Self {
            ledger: Arc::new(Mutex::new(MemoryLedger::new(genesis).unwrap())),
            committed: Arc::default(),
            reverse: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryLedger> {
        self.ledger.lock().unwrap()
    }
}

impl Ledger for SharedLedger {
    fn head(&self) -> Head {
        self.lock().head()
    }
    fn commit(&mut self, block: &Block) -> Result<Head, LedgerError> {
        let before = self.lock().head().height;
        let head = self.lock().commit(block)?;
        if head.height > before {
            self.committed.lock().unwrap().push(Committed {
                view: block.view,
                digest: block.id(),
                seed: block.seed,
                beacon: block.beacon(&head.state.genesis_hash()),
            });
        }
        Ok(head)
    }
    fn pending(&mut self, state: &ChainState, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut txs = self.lock().pending(state, max_txs, max_bytes);
        if self.reverse {
            txs.reverse();
        }
        txs
    }
}

fn user_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

/// The dealer's shares, one per validator in `validators`' order (a fixed
/// dealing, so every run of a test deals the same).
fn dealing(validators: &[Key]) -> threshold::Dealing {
    threshold::deal([7; 32], validators).unwrap()
}

fn genesis(validators: &[Key]) -> Genesis {
    let user = Address::of(&user_key().verifying_key());
    let mut genesis = Genesis::devnet(
        "sim",
        validators
            .iter()
            .map(|k| {
                let mut a = [0u8; 32];
                a.copy_from_slice(k.as_ref());
                Address(a)
            })
            .collect(),
        (0..=8u8)
            .map(|i| Allocation {
                address: if i == 0 {
                    user
                } else {
                    Address::of(&sender_key(i).verifying_key())
                },
                amount: 1_000_000,
            })
            .collect(),
    );
    genesis.allocations.sort_by_key(|a| a.address);
    genesis.group_key = Some(dealing(validators).group_key);
    genesis
}

/// The genesis hash of the chain validator `v` runs.
fn chain(v: &Validator) -> GenesisHash {
    v.ledger.lock().head().state.genesis_hash()
}

fn sender_key(i: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[100 + i; 32])
}

/// A transfer of 1 from sender `i` (1..=8), its first transaction.
fn sender_transfer(genesis: GenesisHash, i: u8) -> SignedTx {
    let key = sender_key(i);
    Transaction {
        genesis,
        signer: Address::of(&key.verifying_key()),
        nonce: 0,
        fee: 1,
        body: TxBody::Transfer {
            to: Address([9; 32]),
            amount: 1,
        },
    }
    .sign(&key)
}

fn transfer(genesis: GenesisHash, nonce: u64, amount: u64) -> SignedTx {
    let key = user_key();
    Transaction {
        genesis,
        signer: Address::of(&key.verifying_key()),
        nonce,
        fee: 1,
        body: TxBody::Transfer {
            to: Address([9; 32]),
            amount,
        },
    }
    .sign(&key)
}

struct Validator {
    key: PrivateKey,
    ledger: SharedLedger,
    handle: Option<Handle<()>>,
    restarts: u32,
    block_interval: Duration,
}

impl Validator {
    fn height(&self) -> u64 {
        self.ledger.lock().head().height
    }
}

fn timing() -> Timing {
    Timing {
        leader_timeout: Duration::from_secs(1),
        certification_timeout: Duration::from_secs(2),
        timeout_retry: Duration::from_secs(2),
        fetch_timeout: Duration::from_secs(1),
    }
}

/// Starts (or restarts) validator `i` as one supervised task: aborting it
/// aborts everything the engine spawned, as a SIGKILL would.
async fn launch(context: &Ctx, oracle: &Oracle<Key, Ctx>, v: &mut Validator, all: &[Key]) {
    let me = v.key.public_key();
    let control = oracle.control(me.clone());
    let quota = Quota::per_second(NZU32!(4096));
    let mut channels = Vec::new();
    for id in Channels::ALL {
        channels.push(control.register(id, quota).await.unwrap());
    }
    let genesis = genesis(all);
    let genesis_root = ChainState::from_genesis(&genesis).unwrap().root();
    let polynomial = threshold::polynomial(genesis.group_key.as_ref(), all.len()).unwrap();
    let index = all.iter().position(|k| *k == me).unwrap();
    let verifier = threshold::seed_verifier(&polynomial, &genesis.hash());
    let config = cairn_chain::Config {
        me: me.clone(),
        genesis: genesis.hash(),
        validators: all.to_vec(),
        polynomial,
        share: dealing(all).shares[index].clone(),
        partition: format!("validator-{me}"),
        timing: timing(),
        blocker: control.clone(),
        peers: oracle.manager(),
    };
    let ledger = v.ledger.clone();
    let interval = v.block_interval;
    let label = format!("v{}-{}", &me.to_string()[..8], v.restarts);
    v.restarts += 1;
    let handle = context
        .child("validator")
        .with_attribute("instance", label)
        .spawn(move |context| async move {
            let app = ChainApp::new(Box::new(ledger), genesis_root, interval, verifier);
            let mut channels = channels.into_iter();
            let mut next = || channels.next().unwrap();
            let handles =
                cairn_chain::start(context, config, app, next(), next(), next(), next(), next())
                    .await
                    .unwrap();
            futures::future::join_all(handles).await;
        });
    v.handle = Some(handle);
}

fn crash(v: &mut Validator) {
    if let Some(h) = v.handle.take() {
        h.abort();
    }
}

async fn wait_for(context: &Ctx, what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if done() {
            return;
        }
        context.sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out (simulated {secs} s) waiting for {what}");
}

/// Every pair of validators agrees on every height both have committed.
fn assert_no_fork(validators: &[Validator]) {
    let chains: Vec<Vec<[u8; 32]>> = validators
        .iter()
        .map(|v| v.ledger.lock().digests().to_vec())
        .collect();
    for a in &chains {
        for b in &chains {
            let n = a.len().min(b.len());
            assert_eq!(a[..n], b[..n], "two validators committed different blocks");
        }
    }
}

async fn link_all(oracle: &Oracle<Key, Ctx>, keys: &[Key], link: &Link) {
    for a in keys {
        for b in keys {
            if a != b {
                // Replacing an existing link is fine; a missing one is added.
                let _ = oracle.remove_link(a.clone(), b.clone()).await;
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .unwrap();
            }
        }
    }
}

async fn network(context: &Ctx, keys: &[Key], link: Link) -> Oracle<Key, Ctx> {
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: 8 << 20,
            max_peers_per_set: NZUsize!(keys.len()),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        keys.to_vec(),
    )
    .await;
    network.start();
    link_all(&oracle, keys, &link).await;
    oracle
}

fn lan() -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: probability!(1.0),
    }
}

fn validators(keys: &[PrivateKey], all: &[Key]) -> Vec<Validator> {
    keys.iter()
        .map(|key| Validator {
            key: key.clone(),
            ledger: SharedLedger::new(&genesis(all)),
            handle: None,
            restarts: 0,
            block_interval: Duration::from_millis(500),
        })
        .collect()
}

#[test]
fn four_validators_decide_survive_crashes_and_never_fork() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(7)
            .with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|context| async move {
        let keys: Vec<PrivateKey> = (0..VALIDATORS).map(PrivateKey::from_seed).collect();
        let all: Vec<Key> = keys.iter().map(|k| k.public_key()).collect();
        let oracle = network(&context, &all, lan()).await;
        let mut vs = validators(&keys, &all);
        for v in vs.iter_mut() {
            launch(&context, &oracle, v, &all).await;
        }

        // All four decide blocks.
        wait_for(&context, "height 10 everywhere", 120, || {
            vs.iter().all(|v| v.height() >= 10)
        })
        .await;

        // Transactions submitted to one validator end up in everyone's state.
        for nonce in 0..20 {
            let genesis = chain(&vs[1]);
            vs[1]
                .ledger
                .lock()
                .submit(transfer(genesis, nonce, 100 + nonce));
        }
        let target = Address([9; 32]);
        let expected: u64 = (0..20).map(|n| 100 + n).sum();
        wait_for(&context, "transfers committed everywhere", 120, || {
            vs.iter()
                .all(|v| v.ledger.lock().head().state.account(&target).balance == expected)
        })
        .await;

        // One down: the other three keep deciding.
        crash(&mut vs[3]);
        let h = vs[0].height();
        wait_for(&context, "progress with one validator down", 120, || {
            vs[..3].iter().all(|v| v.height() >= h + 10)
        })
        .await;

        // It comes back and catches up.
        let mut v3 = vs.remove(3);
        launch(&context, &oracle, &mut v3, &all).await;
        vs.push(v3);
        let h = vs[0].height();
        wait_for(&context, "restarted validator catches up", 300, || {
            vs[3].height() >= h
        })
        .await;

        // Two down: no quorum, no new blocks.
        crash(&mut vs[2]);
        crash(&mut vs[3]);
        context.sleep(Duration::from_secs(5)).await;
        let stalled: Vec<u64> = vs.iter().map(Validator::height).collect();
        context.sleep(Duration::from_secs(30)).await;
        let later: Vec<u64> = vs.iter().map(Validator::height).collect();
        assert_eq!(stalled, later, "decided blocks without a quorum");

        // One returns: quorum again, progress resumes, and a transaction
        // submitted meanwhile is committed.
        let genesis = chain(&vs[0]);
        vs[0].ledger.lock().submit(transfer(genesis, 20, 1));
        let mut v2 = vs.remove(2);
        launch(&context, &oracle, &mut v2, &all).await;
        vs.insert(2, v2);
        let h = later[0];
        wait_for(&context, "progress after quorum returns", 300, || {
            vs[..3].iter().all(|v| v.height() >= h + 5)
        })
        .await;
        wait_for(&context, "late transfer committed", 120, || {
            vs[..3]
                .iter()
                .all(|v| v.ledger.lock().head().state.account(&target).balance == expected + 1)
        })
        .await;

        // Every block commits to its post-state root, so equal blocks at
        // every height mean equal states.
        assert_no_fork(&vs);
        assert_seeded(&vs[..3], &all);
    });
}

#[test]
fn lossy_links_and_a_healed_partition_neither_stop_nor_fork_the_chain() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(11)
            .with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|context| async move {
        let keys: Vec<PrivateKey> = (0..VALIDATORS).map(PrivateKey::from_seed).collect();
        let all: Vec<Key> = keys.iter().map(|k| k.public_key()).collect();
        // One message in five lost, and slow, jittery links.
        let lossy = Link {
            latency: Duration::from_millis(80),
            jitter: Duration::from_millis(40),
            success_rate: probability!(0.8),
        };
        let oracle = network(&context, &all, lossy.clone()).await;
        let mut vs = validators(&keys, &all);
        for v in vs.iter_mut() {
            launch(&context, &oracle, v, &all).await;
        }
        for nonce in 0..10 {
            let genesis = chain(&vs[0]);
            vs[0].ledger.lock().submit(transfer(genesis, nonce, 1));
        }
        wait_for(&context, "height 10 over lossy links", 300, || {
            vs.iter().all(|v| v.height() >= 10)
        })
        .await;

        // Split 2 | 2: neither half has a quorum.
        for a in &all[..2] {
            for b in &all[2..] {
                oracle.remove_link(a.clone(), b.clone()).await.unwrap();
                oracle.remove_link(b.clone(), a.clone()).await.unwrap();
            }
        }
        context.sleep(Duration::from_secs(5)).await;
        let split: Vec<u64> = vs.iter().map(Validator::height).collect();
        context.sleep(Duration::from_secs(30)).await;
        let later: Vec<u64> = vs.iter().map(Validator::height).collect();
        assert_eq!(split, later, "a minority decided blocks");

        // Heal: all four continue from where they stopped.
        link_all(&oracle, &all, &lossy).await;
        let top = *later.iter().max().unwrap();
        wait_for(&context, "progress after the partition heals", 300, || {
            vs.iter().all(|v| v.height() >= top + 5)
        })
        .await;
        let target = Address([9; 32]);
        wait_for(&context, "transfers committed everywhere", 120, || {
            vs.iter()
                .all(|v| v.ledger.lock().head().state.account(&target).balance == 10)
        })
        .await;
        assert_no_fork(&vs);
        assert_seeded(&vs, &all);
    });
}

/// Every committed block carries the seed of its parent's view, which
/// verifies against the genesis group key, and hands the state machine the
/// beacon of that seed.
fn assert_seeded(validators: &[Validator], all: &[Key]) {
    let genesis = genesis(all);
    let polynomial = threshold::polynomial(genesis.group_key.as_ref(), all.len()).unwrap();
    let verifier = threshold::seed_verifier(&polynomial, &genesis.hash());
    for v in validators {
        let committed = v.ledger.committed.lock().unwrap();
        assert!(committed.len() >= 5);
        assert!(
            committed[0].seed.is_none(),
            "the block on genesis has no seed"
        );
        for pair in committed.windows(2) {
            let seed = pair[1].seed.expect("a seed above height 1");
            assert_eq!(seed.view, pair[0].view, "the seed is the parent's view's");
            assert!(threshold::verify_seed(
                &verifier,
                seed.view,
                &seed.signature
            ));
            assert_eq!(
                pair[1].beacon,
                cairn_protocol::chain::beacon::beacon_from_seed(&seed.signature_bytes())
            );
        }
    }
}

/// One run of four validators committing eight senders' transfers; with
/// `meddle`, every proposer orders its transactions the other way round
/// and validator 0 paces its blocks differently (other timestamps). Returns
/// validator 1's committed blocks.
fn run_for_beacons(meddle: bool) -> Vec<Committed> {
    let runner = deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(5)
            .with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|context| async move {
        let keys: Vec<PrivateKey> = (0..VALIDATORS).map(PrivateKey::from_seed).collect();
        let all: Vec<Key> = keys.iter().map(|k| k.public_key()).collect();
        let oracle = network(&context, &all, lan()).await;
        let mut vs = validators(&keys, &all);
        if meddle {
            for v in vs.iter_mut() {
                v.ledger.reverse = true;
            }
            vs[0].block_interval = Duration::from_millis(730);
        }
        for v in vs.iter() {
            for i in 1..=8 {
                let genesis = chain(v);
                v.ledger.lock().submit(sender_transfer(genesis, i));
            }
        }
        for v in vs.iter_mut() {
            launch(&context, &oracle, v, &all).await;
        }
        wait_for(&context, "height 20 everywhere", 300, || {
            vs.iter().all(|v| v.height() >= 20)
        })
        .await;
        let target = Address([9; 32]);
        assert_eq!(vs[1].ledger.lock().head().state.account(&target).balance, 8);
        assert_no_fork(&vs);
        assert_seeded(&vs, &all);
        let committed = vs[1].ledger.committed.lock().unwrap().clone();
        committed
    })
}

#[test]
fn a_proposer_changing_transactions_order_or_time_does_not_change_the_beacon() {
    let honest = run_for_beacons(false);
    let meddled = run_for_beacons(true);
    // The beacon of a block is the seed of its parent's view: both runs
    // agree on the beacon drawn from every view both certified, although
    // the blocks of those views differ (other transactions, order, times).
    let by_view = |chain: &[Committed]| -> std::collections::BTreeMap<u64, ([u8; 32], [u8; 32])> {
        chain
            .windows(2)
            .map(|p| (p[0].view, (p[0].digest, p[1].beacon)))
            .collect()
    };
    let (a, b) = (by_view(&honest), by_view(&meddled));
    let mut compared = 0;
    for (view, (digest_a, beacon_a)) in &a {
        if let Some((digest_b, beacon_b)) = b.get(view) {
            assert_eq!(beacon_a, beacon_b, "view {view}'s seed gave two beacons");
            if digest_a != digest_b {
                compared += 1;
            }
        }
    }
    assert!(
        compared >= 10,
        "only {compared} views with different blocks and a common beacon"
    );
    // The chains themselves differ: the proposers' choices changed blocks.
    assert_ne!(
        honest.iter().map(|c| c.digest).collect::<Vec<_>>(),
        meddled.iter().map(|c| c.digest).collect::<Vec<_>>()
    );
}
