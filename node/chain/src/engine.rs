//! Wiring: simplex consensus, marshal (ordered delivery and backfill of
//! finalized blocks), a buffered broadcast of blocks, and [`ChainApp`].
//!
//! Five p2p channels carry the engine's traffic; [`Channels`] names them so
//! a network (simulated in tests, authenticated TCP in a validator) can
//! register them once.
//!
//! The consensus "epoch" of commonware (a validator-set generation) stays 0
//! for the chain's whole life here: Cairn's epochs are a state-machine
//! notion (payments, beacons), and the validator set is fixed by genesis.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use cairn_protocol::chain::GenesisHash;
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{
        self,
        core::Actor as Marshal,
        resolver::p2p as marshal_resolver,
        standard::{Inline, Standard},
        Start,
    },
    simplex::{
        self, elector::RoundRobin, types::Finalization, Engine as Simplex, Floor, ForwardPolicy,
        SkipBudget, SkipPolicy,
    },
    types::{Epoch, FixedEpocher, ViewDelta},
};
use commonware_cryptography::{
    blake3::Digest, certificate::ConstantProvider, ed25519::PublicKey, Digested, Digestible,
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU64};
use rand_core::CryptoRng;

use crate::app::ChainApp;
use crate::block::Block;
use crate::seeds::SeedReporter;
use crate::threshold::{self, Polynomial, Scheme, ThresholdError, ValidatorShare};

/// The domain of every consensus signature (votes, certificates, seeds)
/// and of the validators' p2p handshake: Cairn's, and one chain's alone,
/// derived from its genesis hash, so votes of another chain, or of an
/// earlier launch under the same chain id, mean nothing here.
pub fn namespace(genesis: &GenesisHash) -> Vec<u8> {
    let mut out = b"cairn-chain-v2:".to_vec();
    out.extend_from_slice(&genesis.0);
    out
}

/// The p2p channel ids the engine uses.
#[derive(Debug, Clone, Copy)]
pub struct Channels;

impl Channels {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const CONSENSUS_BACKFILL: u64 = 2;
    pub const BLOCK_BACKFILL: u64 = 3;
    pub const BLOCKS: u64 = 4;
    pub const ALL: [u64; 5] = [0, 1, 2, 3, 4];
}

/// Timing of consensus. Defaults aim at a block about every second on a
/// LAN devnet.
#[derive(Debug, Clone)]
pub struct Timing {
    pub leader_timeout: Duration,
    pub certification_timeout: Duration,
    pub timeout_retry: Duration,
    pub fetch_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            leader_timeout: Duration::from_secs(2),
            certification_timeout: Duration::from_secs(3),
            timeout_retry: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(2),
        }
    }
}

/// One validator's engine configuration.
pub struct Config<B, P> {
    /// This validator's identity (its p2p and chain key).
    pub me: PublicKey,
    /// The chain's genesis hash: consensus signs in its [`namespace`].
    pub genesis: GenesisHash,
    /// Every validator's key, genesis order.
    pub validators: Vec<PublicKey>,
    /// The genesis group key's polynomial ([`threshold::polynomial`]).
    pub polynomial: Polynomial,
    /// This validator's share of it: consensus votes are partial
    /// threshold signatures made with it.
    pub share: ValidatorShare,
    /// Prefix of every storage partition this engine writes.
    pub partition: String,
    pub timing: Timing,
    pub blocker: B,
    /// The peer set the broadcast and backfill talk to.
    pub peers: P,
}

impl<B, P> std::fmt::Debug for Config<B, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("validators", &self.validators.len())
            .field("partition", &self.partition)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("this validator's key is not among the genesis validators")]
    NotAValidator,
    #[error("validator share: {0}")]
    Share(#[from] ThresholdError),
    #[error("storage: {0}")]
    Storage(String),
}

/// A pair of p2p endpoints for one channel.
pub type Channel<S, R> = (S, R);

const ITEMS_PER_SECTION: NonZeroU64 = NZU64!(4_096);
const WRITE_BUFFER: NonZeroUsize = NZUsize!(1 << 20);
const REPLAY_BUFFER: NonZeroUsize = NZUsize!(4 << 20);
const MAILBOX: NonZeroUsize = NZUsize!(1024);

fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 1 << 12,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 1 << 12,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_key_write_buffer: WRITE_BUFFER,
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_write_buffer: WRITE_BUFFER,
        freezer_value_target_size: 1 << 26,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        ordinal_write_buffer: WRITE_BUFFER,
        items_per_section: ITEMS_PER_SECTION,
        codec_config,
        replay_buffer: REPLAY_BUFFER,
    }
}

/// Starts one validator: restores its journals and archives, then runs
/// consensus, marshal and broadcast until the context stops.
#[allow(clippy::too_many_arguments)]
pub async fn start<E, B, P, S, R>(
    context: E,
    config: Config<B, P>,
    app: ChainApp,
    votes: Channel<S, R>,
    certificates: Channel<S, R>,
    consensus_backfill: Channel<S, R>,
    block_backfill: Channel<S, R>,
    blocks: Channel<S, R>,
) -> Result<Vec<Handle<()>>, EngineError>
where
    E: Spawner + Metrics + Clock + Storage + CryptoRng,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let me = config.me.clone();
    if !config.validators.contains(&me) {
        return Err(EngineError::NotAValidator);
    }
    // Checked first: the scheme's own checks panic.
    threshold::check_share(&config.polynomial, &config.validators, &me, &config.share)?;
    let participants = threshold::participants(&config.validators);
    let namespace = namespace(&config.genesis);
    let scheme = Scheme::signer(&namespace, participants, config.polynomial, config.share)
        .ok_or(ThresholdError::ShareMismatch)?;
    let prefix = config.partition.clone();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(4096));
    let epocher = FixedEpocher::new(NZU64!(u64::MAX));

    let genesis = app.genesis_block();
    let genesis_digest = genesis.digest();

    let finalizations = immutable::Archive::<_, Digest, Finalization<Scheme, Digest>>::init(
        context.child("finalizations"),
        archive_config(
            &prefix,
            "finalizations",
            &page_cache,
            // A threshold certificate (one recovered signature pair) decodes
            // without a config (`certificate_codec_config()` is `()`).
            (),
        ),
    )
    .await
    .map_err(|e| EngineError::Storage(e.to_string()))?;
    let finalized_blocks = immutable::Archive::init(
        context.child("blocks"),
        archive_config(&prefix, "blocks", &page_cache, ()),
    )
    .await
    .map_err(|e| EngineError::Storage(e.to_string()))?;

    let (marshal, marshal_mailbox, _floor) = Marshal::<_, Standard<Block>, _, _, _, _, _>::init(
        context.child("marshal"),
        finalizations,
        finalized_blocks,
        marshal::Config {
            provider: ConstantProvider::new(scheme.clone()),
            epocher: epocher.clone(),
            start: Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size: MAILBOX,
            view_retention: ViewDelta::new(1024),
            prunable_items_per_section: ITEMS_PER_SECTION,
            page_cache: page_cache.clone(),
            replay_buffer: REPLAY_BUFFER,
            key_write_buffer: WRITE_BUFFER,
            value_write_buffer: WRITE_BUFFER,
            block_codec_config: (),
            max_repair: NZUsize!(32),
            max_pending_acks: NZUsize!(16),
            strategy: Sequential,
        },
    )
    .await;

    let (backfill_handler, backfill) = marshal_resolver::init(
        context.child("block_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: config.peers.clone(),
            blocker: config.blocker.clone(),
            mailbox_size: MAILBOX,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(200),
            priority_requests: false,
            priority_responses: false,
        },
        block_backfill,
    );

    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me,
            mailbox_size: MAILBOX,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: config.peers,
            strategy: Sequential,
        },
    );

    let inline = Inline::new(
        context.child("application"),
        app.clone(),
        marshal_mailbox,
        epocher,
    );
    let reporter = SeedReporter::new(app.seeds(), inline.clone());
    let timing = &config.timing;
    let consensus = Simplex::new(
        context.child("consensus"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<commonware_cryptography::Sha256>::default(),
            blocker: config.blocker,
            automaton: inline.clone(),
            relay: inline,
            reporter,
            track_historical_votes: false,
            strategy: Sequential,
            partition: format!("{prefix}-consensus"),
            mailbox_size: MAILBOX,
            epoch: Epoch::zero(),
            floor: Floor::Genesis(genesis_digest),
            replay_buffer: REPLAY_BUFFER,
            write_buffer: WRITE_BUFFER,
            page_cache,
            leader_timeout: timing.leader_timeout,
            certification_timeout: timing.certification_timeout,
            timeout_retry: timing.timeout_retry,
            view_retention: ViewDelta::new(256),
            skip: SkipPolicy::Enabled {
                timeout: timing.leader_timeout * 5,
                budget: SkipBudget::Participants,
            },
            fetch_timeout: commonware_utils::NonZeroDuration::new(timing.fetch_timeout)
                .unwrap_or(NZDuration!(Duration::from_secs(1))),
            fetch_retry_delay: Duration::from_millis(200),
            forward: ForwardPolicy::Disabled,
        },
    );

    let broadcast_handle = broadcast.start(blocks);
    let marshal_handle = marshal.start(app, buffer, (backfill_handler, backfill));
    let consensus_handle = consensus.start(votes, certificates, consensus_backfill);
    Ok(vec![broadcast_handle, marshal_handle, consensus_handle])
}
