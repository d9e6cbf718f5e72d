//! Cairn's coordinating chain: an existing BFT engine driving the
//! protocol's state machine.
//!
//! Goals: a handful of validators agree on an ordered list of blocks (about
//! one a second), each block's transactions are applied by
//! [`cairn_protocol::chain::ChainState`] on every validator, and every block
//! commits to the resulting state root so a diverging validator stops at
//! once. A validator that was down or is new catches up from its peers.
//!
//! The engine is commonware's: `simplex` consensus (votes, certificates,
//! view changes), `marshal` (finalized blocks in height order, at least
//! once, with backfill of missing ones), `broadcast::buffered` (block
//! dissemination), `resolver` (fetching what is missing) and `storage`
//! (journals and archives). Votes are threshold BLS signatures
//! (`bls12381_threshold::vrf`), whose per-view seed is each block's
//! beacon ([`threshold`], [`seeds`]). This crate supplies only the block format
//! ([`block`]), the application that builds and verifies blocks ([`app`]),
//! the boundary to the node's ledger and mempool ([`ledger`]), the framing
//! of the validators' transaction relay ([`relay`]) and the wiring
//! ([`engine`]). It is generic over commonware's runtime, so the
//! same code runs in the deterministic simulator (tests: crashes, loss,
//! partitions) and on tokio with real sockets.
//!
//! Non-goals: consensus itself (never home-made here), validator-set
//! changes (the set is fixed by genesis), and anything about shards.

pub mod app;
pub mod block;
pub mod engine;
pub mod ledger;
pub mod relay;
pub mod seeds;
pub mod threshold;

pub use app::ChainApp;
pub use block::{Block, BlockParts, BlockSeed};
pub use engine::{namespace, start, Channels, Config, EngineError, Timing};
pub use ledger::{Head, Ledger, LedgerError, MemoryLedger};
