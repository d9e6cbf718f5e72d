//! The chain's signature rule: Ed25519 verified under ZIP-215.
//!
//! Every validator must accept exactly the same signatures, or one block
//! splits the chain. Ed25519 implementations disagree on edge cases (small
//! order components, non-canonical point encodings), and a *batch* check
//! under the usual rules may accept a set that single checks refuse, or
//! refuse it only for some random coefficients. ZIP-215 (Zcash) fixes one
//! precise rule for which batch and single verification agree in every case,
//! so Cairn verifies every chain signature (transactions and deal receipts)
//! with `ed25519-consensus`, which implements it, and checks a block's
//! transaction signatures in one batch ([`check_all`]). Signing stays plain
//! Ed25519 (any RFC 8032 signer's signatures verify under ZIP-215).
//!
//! A batch costs about half of the single checks it replaces; when it fails,
//! each item is checked on its own to name the bad ones, so a block stuffed
//! with bad signatures costs its author the block, not the validators more
//! than twice the work.

use ed25519_consensus::{batch, Signature, VerificationKey, VerificationKeyBytes};

use super::rejection::Rejection;
use super::tx::{Address, Sig};

/// Checks one signature by `signer` over `message`.
pub fn verify(signer: &Address, message: &[u8], sig: &Sig) -> Result<(), Rejection> {
    let key = key_of(signer)?;
    key.verify(&Signature::from(sig.0), message)
        .map_err(|_| Rejection::BadSignature)
}

/// The verification key of an address, or why it is none.
fn key_of(signer: &Address) -> Result<VerificationKey, Rejection> {
    VerificationKey::try_from(signer.0)
        .map_err(|_| Rejection::Malformed("address is not an ed25519 key".into()))
}

/// Checks many signatures at once: `Ok` for each that verifies, the
/// rejection [`verify`] would give for each that does not. The answer is the
/// same, item by item, as checking each alone.
pub fn check_all<'a, I>(items: I) -> Vec<Result<(), Rejection>>
where
    I: IntoIterator<Item = (&'a Address, &'a [u8], &'a Sig)>,
{
    let items: Vec<_> = items.into_iter().collect();
    // Keys that do not decode cannot join a batch; they fail alone.
    let mut results: Vec<Result<(), Rejection>> = items
        .iter()
        .map(|(signer, _, _)| key_of(signer).map(|_| ()))
        .collect();
    let mut verifier = batch::Verifier::new();
    let mut queued = 0usize;
    for ((signer, message, sig), r) in items.iter().zip(&results) {
        if r.is_ok() {
            verifier.queue((
                VerificationKeyBytes::from(signer.0),
                Signature::from(sig.0),
                *message,
            ));
            queued += 1;
        }
    }
    if queued == 0 || verifier.verify(rand::thread_rng()).is_ok() {
        return results;
    }
    for ((signer, message, sig), r) in items.iter().zip(results.iter_mut()) {
        if r.is_ok() {
            *r = verify(signer, message, sig);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(i: u8, message: &[u8]) -> (Address, Vec<u8>, Sig) {
        let key = SigningKey::from_bytes(&[i; 32]);
        let sig = Sig(key.sign(message).to_bytes());
        (Address::of(&key.verifying_key()), message.to_vec(), sig)
    }

    #[test]
    fn dalek_signatures_verify_and_tampering_is_refused() {
        let (a, m, s) = signed(1, b"hello");
        assert_eq!(verify(&a, &m, &s), Ok(()));
        assert_eq!(verify(&a, b"hellO", &s), Err(Rejection::BadSignature));
        let mut bad = s.clone();
        bad.0[3] ^= 1;
        assert_eq!(verify(&a, &m, &bad), Err(Rejection::BadSignature));
        let (other, _, _) = signed(2, b"");
        assert_eq!(verify(&other, &m, &s), Err(Rejection::BadSignature));
    }

    #[test]
    fn a_batch_names_exactly_the_items_a_single_check_refuses() {
        let mut items: Vec<_> = (0..20u8).map(|i| signed(i, &[i; 40])).collect();
        // A wrong message, a flipped signature byte, a key that is no point.
        items[3].1[0] ^= 1;
        items[11].2 .0[40] ^= 1;
        let no_point = (0u8..=255)
            .map(|b| Address([b; 32]))
            .find(|a| VerificationKey::try_from(a.0).is_err())
            .unwrap();
        items[17].0 = no_point;
        let refs = items.iter().map(|(a, m, s)| (a, m.as_slice(), s));
        let batch = check_all(refs);
        for (i, ((a, m, s), r)) in items.iter().zip(&batch).enumerate() {
            assert_eq!(*r, verify(a, m, s), "item {i}");
            assert_eq!(r.is_ok(), ![3, 11, 17].contains(&i), "item {i}");
        }
        let all_good: Vec<_> = (0..5u8).map(|i| signed(i, b"x")).collect();
        assert!(
            check_all(all_good.iter().map(|(a, m, s)| (a, m.as_slice(), s)))
                .iter()
                .all(Result::is_ok)
        );
        assert!(check_all(std::iter::empty()).is_empty());
    }
}
