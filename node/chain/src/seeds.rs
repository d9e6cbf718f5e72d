//! The seeds of recent views, as consensus certifies them, and the check
//! a block's seed must pass.
//!
//! A proposer needs the seed of its parent's view; that view has a
//! notarization, and every notarization (and finalization) of the
//! threshold-VRF scheme carries the view's recovered seed. [`SeedReporter`]
//! sits between consensus and marshal on the reporter path and keeps those
//! seeds ([`Seeds`]); on a restart consensus replays its journal through
//! the same path, so the seeds come back too.
//!
//! A verifier needs nothing but the block, its parent and the group key:
//! [`check`] implements the rule of `cairn_protocol::chain::beacon`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_protocol::chain::beacon;
use commonware_actor::Feedback;
use commonware_consensus::{
    simplex::{scheme::bls12381_threshold::vrf::Seedable, types::Activity},
    Reporter, Viewable,
};
use commonware_cryptography::blake3::Digest;

use crate::block::{Block, BlockSeed};
use crate::threshold::{verify_seed, Scheme, SeedSignature};

/// Seeds kept at most; older views are dropped first. Far more than the
/// views between the committed head and the tip of any live chain.
const MAX_SEEDS: usize = 4096;

/// Recent views' seeds, shared by the reporter and the application.
#[derive(Clone, Debug, Default)]
pub struct Seeds {
    inner: Arc<Mutex<BTreeMap<u64, SeedSignature>>>,
}

impl Seeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SeedSignature>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a certified view's seed (consensus verified it).
    pub fn insert(&self, view: u64, signature: SeedSignature) {
        let mut seeds = self.lock();
        seeds.insert(view, signature);
        while seeds.len() > MAX_SEEDS {
            seeds.pop_first();
        }
    }

    /// The seed of `view`, if certified here.
    pub fn get(&self, view: u64) -> Option<BlockSeed> {
        self.lock().get(&view).map(|signature| BlockSeed {
            view,
            signature: *signature,
        })
    }

    /// Forgets views below `view` (no block can build on them any more).
    pub fn prune_below(&self, view: u64) {
        let mut seeds = self.lock();
        *seeds = seeds.split_off(&view);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Consensus's reporter: records every certified view's seed, then hands
/// the activity on unchanged.
#[derive(Clone, Debug)]
pub struct SeedReporter<R> {
    seeds: Seeds,
    inner: R,
}

impl<R> SeedReporter<R> {
    pub fn new(seeds: Seeds, inner: R) -> Self {
        Self { seeds, inner }
    }
}

impl<R> Reporter for SeedReporter<R>
where
    R: Reporter<Activity = Activity<Scheme, Digest>>,
{
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        // Reported certificates are verified, so their seeds decode.
        match &activity {
            Activity::Notarization(n) | Activity::Certification(n) => {
                self.seeds.insert(n.view().get(), n.seed().signature);
            }
            Activity::Finalization(f) => self.seeds.insert(f.view().get(), f.seed().signature),
            _ => {}
        }
        self.inner.report(activity)
    }
}

/// Why a block's seed is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("the block says view {block}, consensus proposed it in view {context}")]
    View { block: u64, context: u64 },
    #[error("the parent says view {parent}, consensus built on view {context}")]
    ParentView { parent: u64, context: u64 },
    #[error("a block on genesis carries no seed")]
    Unexpected,
    #[error("the block carries no seed (expected view {0}'s)")]
    Missing(u64),
    #[error("the block carries view {got}'s seed, the rule asks for view {expected}'s")]
    WrongView { got: u64, expected: u64 },
    #[error("view {0}'s seed does not verify against the genesis group key")]
    Invalid(u64),
}

/// Checks `block`'s seed: it is the seed of `parent`'s view
/// (`beacon::seed_view`), and it verifies against the group key of
/// `verifier`. `view` and `parent_view` are where consensus proposed the
/// block and what it built on; the block and its parent must say the same.
pub fn check(
    verifier: &Scheme,
    block: &Block,
    parent: &Block,
    view: u64,
    parent_view: u64,
) -> Result<(), SeedError> {
    if block.view != view {
        return Err(SeedError::View {
            block: block.view,
            context: view,
        });
    }
    if parent.view != parent_view {
        return Err(SeedError::ParentView {
            parent: parent.view,
            context: parent_view,
        });
    }
    match (
        beacon::seed_view(parent.height.get(), parent.view),
        &block.seed,
    ) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(SeedError::Unexpected),
        (Some(expected), None) => Err(SeedError::Missing(expected)),
        (Some(expected), Some(seed)) if seed.view != expected => Err(SeedError::WrongView {
            got: seed.view,
            expected,
        }),
        (Some(_), Some(seed)) => {
            if verify_seed(verifier, seed.view, &seed.signature) {
                Ok(())
            } else {
                Err(SeedError::Invalid(seed.view))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockParts;
    use crate::threshold::{self, round, Bls};
    use cairn_protocol::chain::GenesisHash;
    use commonware_codec::Encode;
    use commonware_consensus::types::Height;
    use commonware_cryptography::{
        bls12381::primitives::ops::threshold as ops, ed25519::PrivateKey, Signer,
    };
    use commonware_parallel::Sequential;

    struct Fixture {
        verifier: Scheme,
        polynomial: threshold::Polynomial,
        shares: Vec<threshold::ValidatorShare>,
    }

    const GENESIS: GenesisHash = GenesisHash([6; 32]);

    fn fixture(entropy: u8) -> Fixture {
        let validators: Vec<_> = (0..4)
            .map(|i| PrivateKey::from_seed(i).public_key())
            .collect();
        let dealing = threshold::deal([entropy; 32], &validators).unwrap();
        let polynomial = threshold::polynomial(Some(&dealing.group_key), 4).unwrap();
        Fixture {
            verifier: threshold::seed_verifier(&polynomial, &GENESIS),
            polynomial,
            shares: dealing.shares,
        }
    }

    /// The seed of `view` as consensus recovers it: a quorum (3 of 4) of
    /// partial signatures over the round, in the seed namespace.
    fn seed(f: &Fixture, view: u64) -> SeedSignature {
        let namespace = commonware_utils::union(&crate::namespace(&GENESIS), b"_SEED");
        let message = round(view).encode();
        let partials: Vec<_> = f.shares[..3]
            .iter()
            .map(|s| ops::sign_message::<Bls>(s, &namespace, &message))
            .collect();
        ops::recover::<Bls, _>(&f.polynomial, &partials, &Sequential).unwrap()
    }

    fn block(height: u64, view: u64, seed: Option<BlockSeed>) -> Block {
        Block::new(BlockParts {
            parent: Digest([height as u8; 32]),
            height: Height::new(height),
            view,
            timestamp_ms: 1000 + height,
            seed,
            state_root: [0; 32],
            txs: Vec::new(),
        })
    }

    #[test]
    fn the_parents_seed_verifies_and_anything_else_is_refused() {
        let f = fixture(1);
        let parent = block(5, 8, None);
        let good = BlockSeed {
            view: 8,
            signature: seed(&f, 8),
        };
        assert!(threshold::verify_seed(&f.verifier, 8, &good.signature));
        check(&f.verifier, &block(6, 9, Some(good)), &parent, 9, 8).unwrap();

        // Another view's (valid) seed: the proposer may not pick one.
        let other = BlockSeed {
            view: 7,
            signature: seed(&f, 7),
        };
        assert_eq!(
            check(&f.verifier, &block(6, 9, Some(other)), &parent, 9, 8),
            Err(SeedError::WrongView {
                got: 7,
                expected: 8
            })
        );
        // View 7's signature claimed as view 8's.
        let relabelled = BlockSeed {
            view: 8,
            signature: other.signature,
        };
        assert_eq!(
            check(&f.verifier, &block(6, 9, Some(relabelled)), &parent, 9, 8),
            Err(SeedError::Invalid(8))
        );
        // A seed of view 8 under another group key (another dealing).
        let foreign = BlockSeed {
            view: 8,
            signature: seed(&fixture(2), 8),
        };
        assert_eq!(
            check(&f.verifier, &block(6, 9, Some(foreign)), &parent, 9, 8),
            Err(SeedError::Invalid(8))
        );
        // A single validator's partial signature is not the seed.
        let namespace = commonware_utils::union(&crate::namespace(&GENESIS), b"_SEED");
        let partial = ops::sign_message::<Bls>(&f.shares[0], &namespace, &round(8).encode());
        let partial = BlockSeed {
            view: 8,
            signature: partial.value,
        };
        assert_eq!(
            check(&f.verifier, &block(6, 9, Some(partial)), &parent, 9, 8),
            Err(SeedError::Invalid(8))
        );
        // No seed at all, or a block that lies about views.
        assert_eq!(
            check(&f.verifier, &block(6, 9, None), &parent, 9, 8),
            Err(SeedError::Missing(8))
        );
        assert!(matches!(
            check(&f.verifier, &block(6, 10, Some(good)), &parent, 9, 8),
            Err(SeedError::View { .. })
        ));
        assert!(matches!(
            check(
                &f.verifier,
                &block(6, 9, Some(good)),
                &block(5, 7, None),
                9,
                8
            ),
            Err(SeedError::ParentView { .. })
        ));
    }

    #[test]
    fn the_block_on_genesis_carries_no_seed() {
        let f = fixture(1);
        let genesis = Block::genesis([0; 32]);
        check(&f.verifier, &block(1, 1, None), &genesis, 1, 0).unwrap();
        let some = BlockSeed {
            view: 0,
            signature: seed(&f, 0),
        };
        assert_eq!(
            check(&f.verifier, &block(1, 1, Some(some)), &genesis, 1, 0),
            Err(SeedError::Unexpected)
        );
    }

    #[test]
    fn seeds_are_bounded_and_pruned_by_view() {
        let f = fixture(1);
        let seeds = Seeds::default();
        let sig = seed(&f, 1);
        for view in 0..(MAX_SEEDS as u64 + 10) {
            seeds.insert(view, sig);
        }
        assert_eq!(seeds.len(), MAX_SEEDS);
        assert!(seeds.get(5).is_none());
        assert!(seeds.get(MAX_SEEDS as u64 + 9).is_some());
        seeds.prune_below(MAX_SEEDS as u64);
        assert_eq!(seeds.len(), 10);
        assert!(seeds.get(MAX_SEEDS as u64 - 1).is_none());
    }
}
