//! The storage-proof rules the simulator runs, from `cairn_protocol::proofs`:
//! the same sampling, per-period accounting (faulty, disqualified), pay and
//! stake functions the chain's state machine calls. One seam: the engine
//! reaches these rules only through this module.

pub use cairn_protocol::proofs::accounting::{
    period_share, required_stake, Health, PeriodOutcome, ProofRecord,
};
pub use cairn_protocol::proofs::challenge::sample_offset;
pub use cairn_protocol::proofs::{ProofParams, CHUNK_BYTES};
