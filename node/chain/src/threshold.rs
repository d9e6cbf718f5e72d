//! The validators' threshold key: the group public key (in the genesis),
//! one share per validator, how a devnet deals them, and how seeds are
//! checked.
//!
//! Consensus signs with commonware's `bls12381_threshold::vrf` scheme
//! (BLS12-381, `MinSig`: 48-byte signatures): every vote carries a partial
//! signature over the vote and one over the view (the seed), and a quorum
//! (2f+1 of 3f+1) of partials recovers both. A recovered seed verifies
//! against the group public key alone.
//!
//! Where the shares come from decides whom the beacon trusts:
//!
//! * [`deal`] is a **trusted dealer**: one process draws the secret
//!   polynomial, hands out the shares and forgets it. Whoever runs it (and
//!   whoever reads its memory) could sign any seed, so it knows every
//!   beacon in advance. `cairn devnet up` and the tests deal this way: on a
//!   devnet the operator of all the validators is the dealer anyway.
//! * A **distributed key generation** (commonware's
//!   `bls12381::dkg::feldman_desmedt` or `golden`) is the production path:
//!   every validator deals a polynomial to the others and the group key is
//!   the sum, so no one ever holds the secret and a beacon needs a quorum
//!   of validators to collude. The genesis then takes the DKG's public
//!   output; nothing else here changes.

use std::num::NonZeroU32;

use cairn_protocol::chain::{GenesisHash, GroupKey};
use commonware_codec::{Encode, Read, ReadExt};
use commonware_consensus::{
    simplex::scheme::bls12381_threshold::vrf,
    types::{Epoch, Round, View},
};
use commonware_cryptography::{
    bls12381::{
        dkg::feldman_desmedt,
        primitives::{
            group::Share,
            sharing::{Mode, ModeVersion, Sharing},
            variant::{MinSig, Variant},
        },
    },
    ed25519::PublicKey,
};
use commonware_utils::{
    ordered::{Quorum, Set},
    Faults, N3f1, Participant,
};
use rand_core::SeedableRng;

/// The BLS12-381 variant: signatures (and seeds) in G1, 48 bytes.
pub type Bls = MinSig;
/// The consensus signing scheme.
pub type Scheme = vrf::Scheme<PublicKey, Bls>;
/// A view's seed: the round and its threshold signature.
pub type Seed = vrf::Seed<Bls>;
/// A seed signature (compressed G1).
pub type SeedSignature = <Bls as Variant>::Signature;
/// The public polynomial.
pub type Polynomial = Sharing<Bls>;

pub use commonware_cryptography::bls12381::primitives::group::Share as ValidatorShare;

/// Why a group key or a share cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("the genesis has no group_key: it was made before threshold consensus; make a new one (cairn devnet up does)")]
    MissingGroupKey,
    #[error("the genesis group_key does not decode: {0}")]
    GroupKey(String),
    #[error("the genesis group_key is for {total} validators with threshold {required}; the genesis names {validators} (threshold {quorum})")]
    GroupKeyShape {
        total: u32,
        required: u32,
        validators: usize,
        quorum: u32,
    },
    #[error("the share does not decode (expected hex of an index and a scalar)")]
    Share,
    #[error("the share is for validator index {share}, but this validator is index {mine} of the genesis validators")]
    ShareIndex { share: u32, mine: u32 },
    #[error("the share does not belong to the genesis group key (it is from another dealing)")]
    ShareMismatch,
    #[error("this validator's key is not among the genesis validators")]
    NotAValidator,
    #[error("cannot deal shares: {0}")]
    Deal(String),
}

/// The order the scheme indexes validators in: their keys, sorted.
pub fn participants(validators: &[PublicKey]) -> Set<PublicKey> {
    Set::from_iter_dedup(validators.iter().cloned())
}

/// A dealing: the group key for the genesis and each validator's share,
/// in the order of the validators given.
#[derive(Debug)]
pub struct Dealing {
    pub group_key: GroupKey,
    pub shares: Vec<ValidatorShare>,
}

/// Deals shares as a trusted dealer (see the module docs for what that
/// means for trust), from 32 bytes of entropy the caller draws.
pub fn deal(entropy: [u8; 32], validators: &[PublicKey]) -> Result<Dealing, ThresholdError> {
    let players = participants(validators);
    if players.len() != validators.len() {
        return Err(ThresholdError::Deal("a validator appears twice".into()));
    }
    let rng = rand_chacha::ChaCha20Rng::from_seed(entropy);
    let (output, shares) =
        feldman_desmedt::deal::<Bls, PublicKey, N3f1>(rng, Mode::NonZeroCounter, players)
            .map_err(|e| ThresholdError::Deal(format!("{e:?}")))?;
    let shares = validators
        .iter()
        .map(|v| {
            shares
                .get_value(v)
                .cloned()
                .ok_or_else(|| ThresholdError::Deal("a validator got no share".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dealing {
        group_key: GroupKey(output.public().encode().to_vec()),
        shares,
    })
}

/// The public polynomial of the genesis, checked against its validator
/// count and the consensus threshold (so the engine's own checks, which
/// panic, never see a mismatched one).
pub fn polynomial(
    group_key: Option<&GroupKey>,
    validators: usize,
) -> Result<Polynomial, ThresholdError> {
    let key = group_key.ok_or(ThresholdError::MissingGroupKey)?;
    let max = u32::try_from(validators)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| ThresholdError::GroupKey("no validators".into()))?;
    let mut bytes = commonware_codec::Copying(key.0.as_slice());
    let sharing = Polynomial::read_cfg(&mut bytes, &(max, ModeVersion::v0()))
        .map_err(|e| ThresholdError::GroupKey(e.to_string()))?;
    if !bytes.0.is_empty() {
        return Err(ThresholdError::GroupKey("trailing bytes".into()));
    }
    let quorum = N3f1::quorum(validators);
    if sharing.total().get() as usize != validators || sharing.required() != quorum {
        return Err(ThresholdError::GroupKeyShape {
            total: sharing.total().get(),
            required: sharing.required(),
            validators,
            quorum,
        });
    }
    Ok(sharing)
}

/// A share as stored in a validator's share file: hex, one line.
pub fn encode_share(share: &ValidatorShare) -> zeroize::Zeroizing<String> {
    let bytes = zeroize::Zeroizing::new(share.encode().to_vec());
    zeroize::Zeroizing::new(format!("{}\n", hex::encode(&bytes[..])))
}

/// Reads what [`encode_share`] wrote.
pub fn decode_share(text: &str) -> Result<ValidatorShare, ThresholdError> {
    let bytes =
        zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| ThresholdError::Share)?);
    let mut rest = commonware_codec::Copying(&bytes[..]);
    let share = Share::read(&mut rest).map_err(|_| ThresholdError::Share)?;
    if !rest.0.is_empty() {
        return Err(ThresholdError::Share);
    }
    Ok(share)
}

/// Checks that `share` is `me`'s share of `polynomial`: its index is
/// `me`'s place among the validators and its public key is the
/// polynomial's evaluation there.
pub fn check_share(
    polynomial: &Polynomial,
    validators: &[PublicKey],
    me: &PublicKey,
    share: &ValidatorShare,
) -> Result<(), ThresholdError> {
    let mine = participants(validators)
        .index(me)
        .ok_or(ThresholdError::NotAValidator)?;
    if share.index != mine {
        return Err(ThresholdError::ShareIndex {
            share: share.index.get(),
            mine: mine.get(),
        });
    }
    match polynomial.partial_public(share.index) {
        Ok(public) if public == share.public::<Bls>() => Ok(()),
        _ => Err(ThresholdError::ShareMismatch),
    }
}

/// The round of a view (the consensus epoch stays 0, see [`crate::engine`]).
pub fn round(view: u64) -> Round {
    Round::new(Epoch::zero(), View::new(view))
}

/// Whether `signature` is the seed of `view` under the group key
/// `verifier` holds.
pub fn verify_seed(verifier: &Scheme, view: u64, signature: &SeedSignature) -> bool {
    Seed::new(round(view), *signature).verify(verifier)
}

/// The scheme that checks recovered certificates and seeds against the
/// group public key alone (a light verifier's view).
/// `genesis` names the chain whose [`crate::namespace`] the seeds are in.
pub fn seed_verifier(polynomial: &Polynomial, genesis: &GenesisHash) -> Scheme {
    Scheme::certificate_verifier(&crate::namespace(genesis), *polynomial.public())
}

/// The participant index type, re-exported for callers that build shares.
pub type Index = Participant;

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{ed25519::PrivateKey, Signer};

    fn keys(n: u64) -> Vec<PublicKey> {
        (0..n)
            .map(|i| PrivateKey::from_seed(i).public_key())
            .collect()
    }

    #[test]
    fn dealt_shares_match_their_validator_and_no_other() {
        let validators = keys(4);
        let dealing = deal([3; 32], &validators).unwrap();
        let poly = polynomial(Some(&dealing.group_key), 4).unwrap();
        for (v, share) in validators.iter().zip(&dealing.shares) {
            check_share(&poly, &validators, v, share).unwrap();
            let back = decode_share(&encode_share(share)).unwrap();
            assert_eq!(&back, share);
        }
        // Validator 0 with validator 1's share: wrong index.
        assert!(matches!(
            check_share(&poly, &validators, &validators[0], &dealing.shares[1]),
            Err(ThresholdError::ShareIndex { .. })
        ));
        // The right index from another dealing: not this group key.
        let other = deal([4; 32], &validators).unwrap();
        assert_eq!(
            check_share(&poly, &validators, &validators[2], &other.shares[2]),
            Err(ThresholdError::ShareMismatch)
        );
        assert_eq!(
            check_share(&poly, &validators, &keys(5)[4], &dealing.shares[0]),
            Err(ThresholdError::NotAValidator)
        );
    }

    #[test]
    fn a_group_key_for_another_committee_or_garbage_is_refused() {
        let dealing = deal([3; 32], &keys(4)).unwrap();
        assert_eq!(
            polynomial(None, 4).unwrap_err(),
            ThresholdError::MissingGroupKey
        );
        assert!(matches!(
            polynomial(Some(&dealing.group_key), 7),
            Err(ThresholdError::GroupKeyShape { .. })
        ));
        assert!(matches!(
            polynomial(Some(&dealing.group_key), 3),
            Err(ThresholdError::GroupKey(_))
        ));
        let mut long = dealing.group_key.clone();
        long.0.push(0);
        assert!(polynomial(Some(&long), 4).is_err());
        assert!(polynomial(Some(&GroupKey(vec![0; 10])), 4).is_err());
        assert!(decode_share("zz").is_err());
        assert!(decode_share("00").is_err());
    }
}
