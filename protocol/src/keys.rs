//! Account keys from a recovery phrase.
//!
//! A 24-word BIP-39 phrase is the only thing a user must keep. The phrase
//! gives the standard BIP-39 seed (PBKDF2-HMAC-SHA512, empty passphrase);
//! BLAKE3 `derive_key` turns the seed into a 32-byte master secret, and the
//! master secret, again through `derive_key` with distinct contexts, into:
//!
//! * the account key, an ed25519 signing key for chain transactions;
//! * the namespace key, which encrypts the user's directory tree.
//!
//! Each context string names this project, a date and a purpose, as BLAKE3's
//! documentation asks, so no two derivations can collide.

use bip39::{Language, Mnemonic};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

const MASTER_CONTEXT: &str = "cairn 2026-11 v1 master secret from bip39 seed";
const ACCOUNT_CONTEXT: &str = "cairn 2026-11 v1 account ed25519 key";
const NAMESPACE_CONTEXT: &str = "cairn 2026-11 v1 namespace key";
/// Words in a new phrase (256 bits of entropy).
pub const PHRASE_WORDS: usize = 24;

/// Why a phrase was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid recovery phrase: {0}")]
    Phrase(String),
}

/// A BIP-39 recovery phrase.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryPhrase(Mnemonic);

impl std::fmt::Debug for RecoveryPhrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryPhrase(<secret>)")
    }
}

impl RecoveryPhrase {
    /// A new 24-word phrase from the operating system's random source.
    pub fn generate() -> Self {
        let mut entropy = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        let phrase = Self::from_entropy(&entropy);
        entropy.zeroize();
        phrase
    }

    /// The phrase for given entropy (16 to 32 bytes, a multiple of 4).
    pub fn from_entropy(entropy: &[u8]) -> Self {
        let mnemonic = Mnemonic::from_entropy_in(Language::English, entropy)
            .unwrap_or_else(|e| unreachable!("callers pass 32 bytes of entropy: {e}"));
        Self(mnemonic)
    }

    /// Parses a phrase: English words, checksum verified, any whitespace and case.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let normalized = text
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        Mnemonic::parse_in_normalized(Language::English, &normalized)
            .map(Self)
            .map_err(|e| KeyError::Phrase(e.to_string()))
    }

    /// The phrase, words separated by single spaces.
    pub fn words(&self) -> String {
        self.0.to_string()
    }

    /// The master secret this phrase stands for.
    pub fn master(&self) -> MasterSecret {
        let mut seed = self.0.to_seed_normalized("");
        let master = MasterSecret(blake3::derive_key(MASTER_CONTEXT, &seed));
        seed.zeroize();
        master
    }
}

/// The root of all of a user's keys.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MasterSecret([u8; 32]);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(<secret>)")
    }
}

impl MasterSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The ed25519 key that signs the account's chain transactions.
    pub fn account_key(&self) -> SigningKey {
        let mut seed = blake3::derive_key(ACCOUNT_CONTEXT, &self.0);
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        key
    }

    /// The symmetric key that encrypts the user's namespace.
    pub fn namespace_key(&self) -> [u8; 32] {
        blake3::derive_key(NAMESPACE_CONTEXT, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_round_trip_and_derivations_differ() {
        let p = RecoveryPhrase::generate();
        assert_eq!(p.words().split(' ').count(), PHRASE_WORDS);
        let again = RecoveryPhrase::parse(&format!("  {}\n", p.words().to_uppercase())).unwrap();
        assert_eq!(again.master(), p.master());
        let m = p.master();
        assert_ne!(m.account_key().to_bytes(), m.namespace_key());
        assert_ne!(&m.namespace_key(), m.as_bytes());
    }

    #[test]
    fn bad_phrases_are_refused() {
        let p = RecoveryPhrase::from_entropy(&[0u8; 32]);
        let words: Vec<String> = p.words().split(' ').map(String::from).collect();
        let mut swapped = words.clone();
        swapped.swap(0, 23);
        assert!(
            RecoveryPhrase::parse(&swapped.join(" ")).is_err(),
            "checksum"
        );
        assert!(
            RecoveryPhrase::parse(&words[..23].join(" ")).is_err(),
            "length"
        );
        assert!(
            RecoveryPhrase::parse("notaword ".repeat(24).trim()).is_err(),
            "vocabulary"
        );
        assert!(RecoveryPhrase::parse("").is_err());
    }
}
