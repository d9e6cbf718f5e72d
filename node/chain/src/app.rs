//! The application consensus drives: builds blocks, verifies them, and
//! commits finalized ones to the ledger.
//!
//! Simplex proposes and votes on blocks whose parent is only notarized, so
//! a validator must know the state after blocks that are not final yet. It
//! keeps those post-states in memory, keyed by digest, from the blocks it
//! built or verified; a block whose ancestors it never saw (it was down, or
//! is catching up) is handled by walking the ancestry back to a known state
//! and replaying forward. States at or below the committed head are pruned.
//!
//! Every block carries the seed of its parent's view (see
//! `cairn_protocol::chain::beacon`): a proposer takes it from the seeds
//! consensus certified ([`Seeds`]), a verifier checks it against the
//! genesis group key ([`seeds::check`]) and refuses the block otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cairn_protocol::chain::{beacon, ChainState};
use commonware_actor::Feedback;
use commonware_consensus::{
    marshal::{ancestry::Ancestry, Update},
    simplex::types::Context,
    Heightable, Reporter,
};
use commonware_cryptography::{blake3::Digest, ed25519::PublicKey, Digested, Digestible};
use commonware_runtime::{Clock, Metrics, Spawner};
use commonware_utils::{Acknowledgement, SystemTimeExt};
use futures::StreamExt;

use crate::block::{seed_beacon, Block, BlockParts, BlockSeed, MAX_BLOCK_TXS, MAX_BLOCK_TX_BYTES};
use crate::ledger::{apply, Head, Ledger};
use crate::seeds::{self, Seeds};
use crate::threshold::Scheme;

/// How far a block's time may run ahead of a verifier's clock.
const CLOCK_SKEW_MS: u64 = 5_000;

/// How long a proposer waits for its parent's seed to be reported (it is
/// normally there before consensus asks for the proposal).
const SEED_WAIT: Duration = Duration::from_secs(2);

/// Most unknown blocks a proposal or verification replays above the
/// nearest known state. A validator further behind (catching up after a
/// restart) neither builds nor votes until marshal has delivered the
/// finalized blocks it lacks, instead of holding a long ancestry and its
/// states in memory: its catch-up memory is bounded.
const MAX_REPLAY: usize = 256;

struct Shared {
    ledger: Box<dyn Ledger>,
    genesis_root: [u8; 32],
    block_interval: Duration,
    head: Head,
    /// Post-states of blocks above the head that this validator built or
    /// verified: digest → (height, state).
    states: HashMap<[u8; 32], (u64, Arc<ChainState>)>,
    /// Set when a finalized block did not reproduce its state root: this
    /// validator's state machine diverged, so it stops committing.
    halted: bool,
}

/// The application: cheap to clone, all clones share one ledger.
#[derive(Clone)]
pub struct ChainApp {
    shared: Arc<Mutex<Shared>>,
    seeds: Seeds,
    /// Checks seeds against the genesis group key.
    verifier: Arc<Scheme>,
}

impl std::fmt::Debug for ChainApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainApp").finish_non_exhaustive()
    }
}

impl ChainApp {
    /// `genesis_root` is the root of the genesis state (every validator
    /// derives the same genesis block from it); a proposer waits until
    /// `block_interval` has passed since the parent's time; `verifier`
    /// holds the genesis group key
    /// ([`crate::threshold::seed_verifier`]).
    pub fn new(
        ledger: Box<dyn Ledger>,
        genesis_root: [u8; 32],
        block_interval: Duration,
        verifier: Scheme,
    ) -> Self {
        let head = ledger.head();
        Self {
            seeds: Seeds::default(),
            verifier: Arc::new(verifier),
            shared: Arc::new(Mutex::new(Shared {
                ledger,
                genesis_root,
                block_interval,
                head,
                states: HashMap::new(),
                halted: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The block at height 0.
    pub fn genesis_block(&self) -> Block {
        Block::genesis(self.lock().genesis_root)
    }

    /// The committed head.
    pub fn head(&self) -> Head {
        self.lock().head.clone()
    }

    /// The seeds consensus reports (the engine wires its reporter here).
    pub fn seeds(&self) -> Seeds {
        self.seeds.clone()
    }

    /// The seed of `view`, waiting up to [`SEED_WAIT`] for its report.
    async fn seed_of<E: Clock>(&self, runtime: &E, view: u64) -> Option<BlockSeed> {
        let deadline = runtime.current() + SEED_WAIT;
        loop {
            if let Some(seed) = self.seeds.get(view) {
                return Some(seed);
            }
            if runtime.current() >= deadline {
                tracing::warn!(view, "no seed for the parent's view: not proposing");
                return None;
            }
            runtime.sleep(Duration::from_millis(5)).await;
        }
    }

    fn known(&self, digest: &Digest) -> Option<(u64, Arc<ChainState>)> {
        let shared = self.lock();
        if shared.head.digest == digest.0 {
            return Some((shared.head.height, shared.head.state.clone()));
        }
        shared.states.get(&digest.0).cloned()
    }

    fn remember(&self, block: &Block, state: Arc<ChainState>) {
        let mut shared = self.lock();
        if block.height.get() > shared.head.height {
            shared
                .states
                .insert(block.id(), (block.height.get(), state));
        }
    }

    /// The state after `tip`, replaying from the nearest known ancestor.
    /// `None` if the ancestry leaves the committed chain (a fork below
    /// finality), is more than [`MAX_REPLAY`] unknown blocks long, or a
    /// replayed block does not reproduce its root.
    async fn state_after(
        &self,
        tip: Digested<Block>,
        ancestry: &mut impl Ancestry<Block>,
    ) -> Option<Arc<ChainState>> {
        let mut unknown = vec![tip];
        let mut base = loop {
            let top = unknown.last()?;
            if let Some((_, state)) = self.known(&top.digest()) {
                unknown.pop();
                break state;
            }
            let head_height = self.lock().head.height;
            if top.height().get() <= head_height {
                return None;
            }
            if unknown.len() > MAX_REPLAY {
                tracing::debug!(
                    head_height,
                    tip = unknown[0].height().get(),
                    "too far behind to replay: waiting for finalized blocks"
                );
                return None;
            }
            unknown.push(ancestry.next().await?);
        };
        while let Some(block) = unknown.pop() {
            let state = Arc::new(apply(&base, block.inner()).ok()?);
            self.remember(block.inner(), state.clone());
            base = state;
        }
        Some(base)
    }

    fn commit(&self, block: &Block) -> bool {
        let mut shared = self.lock();
        if shared.halted {
            return false;
        }
        // Marshal delivers the genesis block too; every ledger starts from
        // its state already.
        if block.height.get() == 0 {
            return block.id() == Block::genesis(shared.genesis_root).id();
        }
        match shared.ledger.commit(block) {
            Ok(head) if head.state_root == block.state_root || head.height > block.height.get() => {
                let height = head.height;
                shared.head = head;
                shared.states.retain(|_, (h, _)| *h > height);
                // Every later block builds on this one or above it.
                self.seeds.prune_below(block.view);
                true
            }
            Ok(_) => {
                shared.halted = true;
                tracing::error!(
                    height = block.height.get(),
                    "finalized block's state root differs from this validator's: halting"
                );
                false
            }
            Err(e) => {
                shared.halted = true;
                tracing::error!(height = block.height.get(), error = %e, "cannot commit finalized block: halting");
                false
            }
        }
    }
}

fn now_ms<E: Clock>(context: &E) -> u64 {
    context.current().epoch_millis()
}

impl<E> commonware_consensus::Application<E> for ChainApp
where
    E: Spawner + Metrics + Clock,
{
    type SigningScheme = Scheme;
    type Context = Context<Digest, PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, context): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
        _input: (),
    ) -> Option<Digested<Self::Block>> {
        // A validator whose state diverged builds on nothing.
        if self.lock().halted {
            return None;
        }
        let parent = ancestry.next().await?;
        let parent_digest = parent.digest();
        let parent_view = context.parent.0.get();
        if parent.inner().view != parent_view {
            tracing::warn!(
                parent_view,
                recorded = parent.inner().view,
                "parent block records another view: not proposing"
            );
            return None;
        }
        // The beacon is fixed by the parent's view before anything below
        // is chosen (see cairn_protocol::chain::beacon).
        let seed = match beacon::seed_view(parent.height().get(), parent_view) {
            None => None,
            Some(view) => Some(self.seed_of(&runtime, view).await?),
        };
        let height = parent.height().next();
        let parent_time = parent.inner().timestamp_ms;
        // Pace the chain: an idle network still makes a block about every
        // interval rather than as fast as votes travel.
        let interval = self.lock().block_interval.as_millis() as u64;
        let due = parent_time.saturating_add(interval);
        let now = now_ms(&runtime);
        if now < due && parent.height().get() > 0 {
            runtime.sleep(Duration::from_millis(due - now)).await;
        }
        let state = self.state_after(parent, &mut ancestry).await?;
        let txs = self
            .lock()
            .ledger
            .pending(&state, MAX_BLOCK_TXS, MAX_BLOCK_TX_BYTES);
        let mut next = (*state).clone();
        let beacon = seed_beacon(seed.as_ref(), &state.genesis_hash());
        let outcome = next.apply_block(height.get(), beacon, &txs).ok()?;
        let timestamp_ms = now_ms(&runtime).max(parent_time + 1);
        let block = Block::new(BlockParts {
            parent: parent_digest,
            height,
            view: context.round.view().get(),
            timestamp_ms,
            seed,
            state_root: outcome.state_root,
            txs,
        });
        self.remember(&block, Arc::new(next));
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (runtime, context): (E, Self::Context),
        mut ancestry: impl Ancestry<Self::Block>,
    ) -> bool {
        // Nor does it vote for blocks it can no longer check.
        if self.lock().halted {
            return false;
        }
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        if block.inner().timestamp_ms <= parent.inner().timestamp_ms
            || block.inner().timestamp_ms > now_ms(&runtime) + CLOCK_SKEW_MS
        {
            return false;
        }
        if let Err(e) = seeds::check(
            &self.verifier,
            block.inner(),
            parent.inner(),
            context.round.view().get(),
            context.parent.0.get(),
        ) {
            tracing::warn!(height = block.height().get(), error = %e, "refusing block: bad seed");
            return false;
        }
        if self.known(&block.digest()).is_some() {
            return true;
        }
        let Some(state) = self.state_after(parent, &mut ancestry).await else {
            return false;
        };
        match apply(&state, block.inner()) {
            Ok(next) => {
                self.remember(block.inner(), Arc::new(next));
                true
            }
            Err(e) => {
                tracing::warn!(height = block.height().get(), error = %e, "refusing block");
                false
            }
        }
    }
}

impl Reporter for ChainApp {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        if let Update::Block(block, ack) = activity {
            // Without an acknowledgement marshal stops delivering: that is
            // the halt a diverged validator wants.
            if self.commit(block.inner()) {
                tracing::debug!(height = block.height().get(), "committed block");
                ack.acknowledge();
            }
        }
        Feedback::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockParts;
    use crate::ledger::MemoryLedger;
    use cairn_protocol::chain::{Address, Genesis};
    use commonware_consensus::types::Height;
    use commonware_cryptography::{ed25519::PrivateKey, Signer};

    fn app() -> ChainApp {
        let me = PrivateKey::from_seed(0).public_key();
        let dealing = crate::threshold::deal([1; 32], std::slice::from_ref(&me)).unwrap();
        let polynomial = crate::threshold::polynomial(Some(&dealing.group_key), 1).unwrap();
        let mut address = [0u8; 32];
        address.copy_from_slice(me.as_ref());
        let genesis = Genesis::devnet("app-test", vec![Address(address)], vec![]);
        let ledger = MemoryLedger::new(&genesis).unwrap();
        let root = ledger.head().state_root;
        ChainApp::new(
            Box::new(ledger),
            root,
            Duration::from_millis(1),
            crate::threshold::seed_verifier(&polynomial, &genesis.hash()),
        )
    }

    /// A chain's blocks below a tip, newest first, as marshal streams them.
    #[derive(Clone)]
    struct Blocks(Vec<Digested<Block>>);

    impl futures::Stream for Blocks {
        type Item = Digested<Block>;

        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.pop())
        }
    }

    impl Ancestry<Block> for Blocks {
        fn peek(&self) -> Option<&Digested<Block>> {
            self.0.last()
        }
    }

    /// The app's genesis block and `n` empty blocks on it, each with its
    /// true root.
    fn chain(app: &ChainApp, n: u64) -> Vec<Digested<Block>> {
        let head = app.head();
        let mut state = (*head.state).clone();
        let genesis = app.genesis_block();
        let mut parent = genesis.digest();
        let first = Digested::precomputed(genesis, parent);
        std::iter::once(first)
            .chain((1..=n).map(|h| {
                let beacon = beacon::genesis_beacon(&state.genesis_hash());
                let root = state.apply_block(h, beacon, &[]).unwrap().state_root;
                let block = Block::new(BlockParts {
                    parent,
                    height: Height::new(h),
                    view: h,
                    timestamp_ms: h,
                    seed: None,
                    state_root: root,
                    txs: Vec::new(),
                });
                parent = block.digest();
                Digested::precomputed(block, parent)
            }))
            .collect()
    }

    #[test]
    fn replay_above_the_head_is_bounded() {
        let app = app();
        // blocks[h] is at height h.
        let blocks = chain(&app, MAX_REPLAY as u64 + 1);
        // MAX_REPLAY unknown blocks: replayed to the tip's state.
        let tip = blocks[MAX_REPLAY].clone();
        let mut below = Blocks(blocks[..MAX_REPLAY].to_vec());
        let state = futures::executor::block_on(app.state_after(tip, &mut below)).unwrap();
        assert_eq!(state.height(), MAX_REPLAY as u64);
        // One more (on a fresh app that knows none of them): refused
        // before anything is replayed or kept.
        let app = super::tests::app();
        let tip = blocks[MAX_REPLAY + 1].clone();
        let mut below = Blocks(blocks[..MAX_REPLAY + 1].to_vec());
        assert!(futures::executor::block_on(app.state_after(tip, &mut below)).is_none());
        assert!(app.lock().states.is_empty());
    }

    #[test]
    fn a_halted_app_neither_proposes_nor_votes() {
        use commonware_consensus::types::{Epoch, Round, View};
        use commonware_consensus::Application;
        use commonware_runtime::{deterministic, Runner, Supervisor as _};
        deterministic::Runner::default().start(|runtime| async move {
            let mut app = app();
            let blocks = chain(&app, 1);
            let context = |view: u64| Context {
                round: Round::new(Epoch::zero(), View::new(view)),
                leader: PrivateKey::from_seed(0).public_key(),
                parent: (View::new(view - 1), blocks[view as usize - 1].digest()),
            };
            let on_genesis = || Blocks(vec![blocks[0].clone()]);
            let with_parent = || Blocks(vec![blocks[0].clone(), blocks[1].clone()]);
            // Before: it builds on genesis and votes for block 1.
            let proposed = app
                .propose((runtime.child("app"), context(1)), on_genesis(), ())
                .await;
            assert!(proposed.is_some());
            assert!(
                app.verify((runtime.child("app"), context(1)), with_parent())
                    .await
            );
            // A finalized block whose root disagrees halts it.
            let mut wrong = blocks[1].inner().clone();
            wrong.state_root[0] ^= 1;
            assert!(!app.commit(&Block::new(BlockParts {
                parent: wrong.parent,
                height: wrong.height,
                view: wrong.view,
                timestamp_ms: wrong.timestamp_ms,
                seed: wrong.seed,
                state_root: wrong.state_root,
                txs: Vec::new(),
            })));
            // After: neither, even for the block it checked before.
            let proposed = app
                .propose((runtime.child("app"), context(1)), on_genesis(), ())
                .await;
            assert!(proposed.is_none());
            assert!(
                !app.verify((runtime.child("app"), context(1)), with_parent())
                    .await
            );
        });
    }

    #[test]
    fn a_finalized_block_whose_root_disagrees_commits_nothing_and_halts() {
        let app = app();
        let head = app.head();
        let block = |state_root| {
            Block::new(BlockParts {
                parent: Digest(head.digest),
                height: Height::new(1),
                view: 1,
                timestamp_ms: 1,
                seed: None,
                state_root,
                txs: Vec::new(),
            })
        };
        let mut next = (*head.state).clone();
        let root = next
            .apply_block(1, beacon::genesis_beacon(&next.genesis_hash()), &[])
            .unwrap()
            .state_root;
        let mut wrong = root;
        wrong[0] ^= 1;
        assert!(!app.commit(&block(wrong)));
        assert_eq!(app.head().height, 0);
        assert_eq!(app.head().state_root, head.state_root);
        // Halted: not even the right block commits now.
        assert!(!app.commit(&block(root)));
        assert_eq!(app.head().height, 0);
    }
}
