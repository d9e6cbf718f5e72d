//! The threshold key's bytes from outside a validator: the share file an
//! operator installs (`threshold::decode_share`, what `cairn validator`
//! loads at start), the group key a genesis file carries
//! (`threshold::polynomial`, checked against the genesis's validator
//! count), the check of a share against it (`threshold::check_share`), and
//! a peer's block's seed checked against its parent (`seeds::check`).
//! Structure-aware: real shares, the real group key and honest seeds are
//! bent or swapped, since bytes alone rarely make a scalar, a G2
//! polynomial or a G1 signature.
//!
//! Checks besides "no panic": a share that decodes is the canonical hex of
//! its encoding and round-trips through `encode_share`; a group key that
//! decodes is exactly its polynomial's encoding and has the shape the
//! genesis asks for; a validator's share checks against a group key
//! exactly when the key is the one it was dealt under; a seed passes
//! exactly when it is the honest seed of the parent's view (or there is
//! none, on genesis) and the views agree with consensus's.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use cairn_chain::threshold::{
    check_share, decode_share, encode_share, polynomial, SeedSignature, ThresholdError,
};
use cairn_chain::{seeds, Block, BlockParts, BlockSeed};
use cairn_chain_fuzz::{bend, validators, Bend, COMMITTEE, SEED_VIEWS};
use cairn_protocol::chain::{beacon, GroupKey};
use commonware_codec::{Copying, DecodeExt, Encode};
use commonware_consensus::types::Height;
use commonware_cryptography::blake3::Digest;
use commonware_cryptography::ed25519::PublicKey;
use commonware_utils::{Faults, N3f1};
use libfuzzer_sys::fuzz_target;

/// Most validators a fuzzed genesis names.
const MAX_VALIDATORS: usize = 16;
static KEYS: LazyLock<Vec<PublicKey>> = LazyLock::new(|| validators(MAX_VALIDATORS as u64));

#[derive(Debug, Arbitrary)]
enum SeedChoice {
    /// The honest seed of one of the committee's first views.
    Honest(u8),
    /// Whatever 48 bytes decode to, if anything.
    Bytes([u8; 48]),
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// A share file's text as it is.
    ShareText(String),
    /// Hex of bytes, as `encode_share` writes it, perhaps upper-case and
    /// among spaces.
    ShareHex {
        bytes: Vec<u8>,
        upper: bool,
        spaces: u8,
    },
    /// One of the committee's shares, its encoding bent.
    RealShare { which: u8, bends: Vec<Bend> },
    /// A genesis's group key for `1 + validators % 16` validators.
    GroupKey { bytes: Vec<u8>, validators: u8 },
    /// The committee's group key, bent, for `1 + validators % 8`
    /// validators, and validator `share`'s share checked against it.
    RealGroupKey {
        bends: Vec<Bend>,
        validators: u8,
        share: u8,
    },
    /// A block on a parent, and the views consensus says they are in
    /// (the blocks' own, unless given).
    Seed {
        parent_height: u64,
        parent_view: u64,
        view: u64,
        context: Option<(u64, u64)>,
        seed: Option<(u64, SeedChoice)>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::ShareText(text) => {
        share_text(&text);
    }
    Input::ShareHex {
        bytes,
        upper,
        spaces,
    } => {
        let mut text = hex(&bytes);
        if upper {
            text = text.to_ascii_uppercase();
        }
        let pad = " ".repeat(spaces as usize % 4);
        share_text(&format!("{pad}{text}{pad}\n"));
    }
    Input::RealShare { which, bends } => {
        let share = &COMMITTEE.dealing.shares[which as usize % 4];
        let mut bytes = share.encode().to_vec();
        let honest = bytes.clone();
        bend(&mut bytes, &bends);
        let decoded = share_text(&hex(&bytes));
        if bytes == honest {
            assert_eq!(decoded.as_ref(), Some(share));
        }
    }
    Input::GroupKey { bytes, validators } => {
        let n = 1 + validators as usize % MAX_VALIDATORS;
        if let Ok(poly) = polynomial_checked(&bytes, n) {
            // Whatever shares are checked against it never panic.
            let keys = &KEYS[..n];
            let _ = check_share(&poly, keys, &keys[0], &COMMITTEE.dealing.shares[0]);
        }
    }
    Input::RealGroupKey {
        bends,
        validators,
        share,
    } => {
        let mut bytes = COMMITTEE.dealing.group_key.0.clone();
        bend(&mut bytes, &bends);
        let n = 1 + validators as usize % 8;
        let Ok(poly) = polynomial_checked(&bytes, n) else {
            return;
        };
        let s = share as usize % 4;
        let ours = poly.encode() == COMMITTEE.polynomial.encode();
        let checked = check_share(
            &poly,
            &COMMITTEE.validators,
            &COMMITTEE.validators[s],
            &COMMITTEE.dealing.shares[s],
        );
        assert_eq!(
            checked.is_ok(),
            ours,
            "a share checked against a group key it was not dealt under, or failed its own: {checked:?}"
        );
    }
    Input::Seed {
        parent_height,
        parent_view,
        view,
        context,
        seed,
    } => seed_check(parent_height, parent_view, view, context, seed),
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a share file's text; what decodes is the canonical hex of its
/// encoding, up to case and surrounding space.
fn share_text(text: &str) -> Option<cairn_chain::threshold::ValidatorShare> {
    let share = match decode_share(text) {
        Ok(share) => share,
        Err(e) => {
            assert_eq!(e, ThresholdError::Share);
            return None;
        }
    };
    let written = encode_share(&share);
    assert_eq!(written.trim(), text.trim().to_ascii_lowercase());
    assert_eq!(decode_share(&written).as_ref(), Ok(&share));
    Some(share)
}

/// Decodes a group key for `n` validators; what decodes is exactly its
/// polynomial's encoding, for `n` validators at the consensus threshold.
fn polynomial_checked(
    bytes: &[u8],
    n: usize,
) -> Result<cairn_chain::threshold::Polynomial, ThresholdError> {
    let poly = polynomial(Some(&GroupKey(bytes.to_vec())), n)?;
    assert!(
        poly.encode().as_ref() == bytes,
        "a group key decoded from bytes it does not encode to"
    );
    assert_eq!(poly.total().get() as usize, n);
    assert_eq!(poly.required(), N3f1::quorum(n));
    Ok(poly)
}

fn block(height: u64, view: u64, seed: Option<BlockSeed>) -> Block {
    Block::new(BlockParts {
        parent: Digest([0; 32]),
        height: Height::new(height),
        view,
        timestamp_ms: height,
        seed,
        state_root: [0; 32],
        txs: Vec::new(),
    })
}

fn seed_check(
    parent_height: u64,
    parent_view: u64,
    view: u64,
    context: Option<(u64, u64)>,
    seed: Option<(u64, SeedChoice)>,
) {
    let seeds = &COMMITTEE.seeds;
    let seed = match seed {
        None => None,
        Some((seed_view, SeedChoice::Honest(i))) => Some(BlockSeed {
            view: seed_view,
            signature: seeds[i as usize % seeds.len()],
        }),
        Some((seed_view, SeedChoice::Bytes(bytes))) => {
            match SeedSignature::decode(Copying(&bytes[..])) {
                Ok(signature) => Some(BlockSeed {
                    view: seed_view,
                    signature,
                }),
                Err(_) => return,
            }
        }
    };
    let parent = block(parent_height, parent_view, None);
    let child = block(parent_height.saturating_add(1), view, seed);
    let (context_view, context_parent) = context.unwrap_or((view, parent_view));
    let result = seeds::check(
        &COMMITTEE.verifier,
        &child,
        &parent,
        context_view,
        context_parent,
    );
    // Whether the rule of cairn_protocol::chain::beacon holds, from the
    // honest seeds rather than from a signature check.
    let views_agree = context_view == view && context_parent == parent_view;
    let honest = match (beacon::seed_view(parent_height, parent_view), seed) {
        (None, None) => true,
        (Some(expected), Some(s)) => {
            s.view == expected && expected < SEED_VIEWS && s.signature == seeds[expected as usize]
        }
        _ => false,
    };
    assert_eq!(
        result.is_ok(),
        views_agree && honest,
        "seed check {result:?} for a block at view {view} on height {parent_height} view {parent_view}"
    );
}
