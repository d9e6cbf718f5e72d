//! # cairn-sim: years of a Cairn network in seconds
//!
//! A discrete-event simulation of a storage network with a virtual clock of
//! proof periods. It drives the network's own rules: `cairn-protocol`'s
//! [`placement`](cairn_protocol::placement) for every upload and repair,
//! its [`repair`](cairn_protocol::repair) rule for when a segment needs
//! repair and when it is lost, and the storage-proof rules (sampling, the
//! per-period accounting that makes nodes faulty and disqualified, pay and
//! stake) through [`rules`]. Same scenario and seed, same report.
//!
//! What it models: independent disk failures (an annual failure rate),
//! churn (graceful leaves and vanishing nodes), outages of failure domains
//! and regions for a time or for good, dishonest nodes (dropping data and
//! answering anyway, answering late, declaring loss, regenerating challenged
//! chunks from sibling shards), and growth of nodes and data. What it does
//! not model: bandwidth limits (a repair takes a fixed time) and the prices
//! of a market; see `docs/simulation.md`.
//!
//! ```
//! use cairn_sim::{simulate, Scenario};
//!
//! let scenario = Scenario {
//!     nodes: 100,
//!     segments: 200,
//!     years: 0.05,
//!     ..Scenario::default()
//! };
//! let report = simulate(&scenario).unwrap();
//! assert_eq!(report.setup.segments, 200);
//! ```

pub mod chain_load;
pub mod engine;
pub mod plot;
pub mod report;
pub mod rules;
pub mod scenario;
pub mod sweep;
pub mod theory;
pub mod world;

pub use engine::{simulate, simulate_with, HOURS_PER_YEAR};
pub use report::Report;
pub use scenario::Scenario;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Config(String),
    #[error("plot: {0}")]
    Plot(String),
}
