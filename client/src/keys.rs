//! The account key file: a 24-word BIP-39 recovery phrase, mode 0600.
//!
//! The phrase is the only secret a user must keep: every account key and
//! the namespace key derive from it ([`cairn_protocol::keys`]). The file
//! holds a comment line and the words:
//!
//! ```text
//! # Cairn account recovery phrase. Whoever has these words controls the account ...
//! abandon ability able ... (24 words)
//! ```
//!
//! It is written atomically (a private temporary file, synced, then linked
//! or renamed into place), never readable by anyone but its owner, and
//! [`load`] refuses a file that group or others can read. Errors name the
//! file and the fix, and never echo what the file holds.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cairn_protocol::chain::Address;
use cairn_protocol::keys::{MasterSecret, RecoveryPhrase};
use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Default name of the key file next to a client config.
pub const KEY_FILE: &str = "account.key";

const HEADER: &str = "# Cairn account recovery phrase. Whoever has these words controls the \
account and can read its files: keep this file private (chmod 600) and a copy offline.";

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("no account key at {path}: run `cairn keys new` (or `cairn keys restore`)")]
    NotFound { path: PathBuf },
    #[error("{path} exists already; refusing to overwrite it (pass --force to replace it; the old phrase is lost unless written down)")]
    Exists { path: PathBuf },
    #[error(
        "{path} is accessible by group or others (mode {mode:03o}); fix it with `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} does not hold a valid recovery phrase: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> KeyFileError + 'a {
    move |source| KeyFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A user's account: the recovery phrase and what derives from it.
#[derive(Clone)]
pub struct Account {
    phrase: RecoveryPhrase,
    master: MasterSecret,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl Account {
    /// A new account with a fresh phrase from the OS random source.
    pub fn generate() -> Self {
        Self::from_phrase(RecoveryPhrase::generate())
    }

    /// The account a phrase stands for.
    pub fn from_phrase(phrase: RecoveryPhrase) -> Self {
        let master = phrase.master();
        Self { phrase, master }
    }

    /// The recovery phrase (secret: show it only when asked).
    pub fn phrase(&self) -> &RecoveryPhrase {
        &self.phrase
    }

    /// The ed25519 key that signs the account's chain transactions.
    pub fn signing_key(&self) -> SigningKey {
        self.master.account_key()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key().verifying_key()
    }

    /// The account's address on the chain (its public key, hex).
    pub fn address(&self) -> Address {
        Address::of(&self.verifying_key())
    }

    /// The key that encrypts the user's namespace.
    pub fn namespace_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.master.namespace_key())
    }
}

/// Parses key file text: `#` comment lines and blank lines are skipped, the
/// rest are the words.
pub fn parse(text: &str) -> Result<Account, cairn_protocol::keys::KeyError> {
    let words = Zeroizing::new(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join(" "),
    );
    RecoveryPhrase::parse(&words).map(Account::from_phrase)
}

/// Writes `phrase` to `path` (mode 0600, parent directories created 0700),
/// atomically. Refuses to replace an existing file unless `overwrite`.
pub fn create(
    path: &Path,
    phrase: &RecoveryPhrase,
    overwrite: bool,
) -> Result<Account, KeyFileError> {
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(KeyFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(io("create the directory", &parent))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| KEY_FILE.into());
    let tmp = parent.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_then_place(&tmp, path, phrase, overwrite);
    let _ = std::fs::remove_file(&tmp);
    result?;
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(Account::from_phrase(phrase.clone()))
}

fn write_then_place(
    tmp: &Path,
    path: &Path,
    phrase: &RecoveryPhrase,
    overwrite: bool,
) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io("create", tmp))?;
    let text = Zeroizing::new(format!("{HEADER}\n{}\n", phrase.words()));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", tmp))?;
    drop(file);
    if overwrite {
        std::fs::rename(tmp, path).map_err(io("write", path))
    } else {
        // A hard link fails if the name exists: no race with another writer.
        std::fs::hard_link(tmp, path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyFileError::Io {
                    action: "write",
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
    }
}

/// Reads the account from a key file, refusing one that group or others
/// can access.
pub fn load(path: &Path) -> Result<Account, KeyFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyFileError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io("read", path)(e)),
    };
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > 64 * 1024 {
        return Err(KeyFileError::Malformed {
            path: path.to_path_buf(),
            reason: format!("the file is {} bytes, far too long", meta.len()),
        });
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(io("read", path))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::Malformed {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    parse(text).map_err(|e| KeyFileError::Malformed {
        path: path.to_path_buf(),
        reason: match e {
            cairn_protocol::keys::KeyError::Phrase(reason) => reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn create_then_load_round_trips_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("new/dir/account.key");
        let phrase = RecoveryPhrase::generate();
        let made = create(&path, &phrase, false).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Cairn account recovery phrase"));
        assert!(text.contains(&phrase.words()));
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.address(), made.address());
        assert_eq!(loaded.phrase(), &phrase);
        assert_eq!(
            loaded.signing_key().to_bytes(),
            phrase.master().account_key().to_bytes()
        );
        assert_eq!(loaded.address().0, loaded.verifying_key().to_bytes());
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("account.key")]);
    }

    #[test]
    fn create_refuses_to_overwrite_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("account.key");
        let first = RecoveryPhrase::generate();
        create(&path, &first, false).unwrap();
        let second = RecoveryPhrase::generate();
        let err = create(&path, &second, false).unwrap_err();
        assert!(matches!(err, KeyFileError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        assert_eq!(load(&path).unwrap().phrase(), &first);
        create(&path, &second, true).unwrap();
        assert_eq!(load(&path).unwrap().phrase(), &second);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn load_refuses_group_or_world_readable_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("account.key");
        create(&path, &RecoveryPhrase::generate(), false).unwrap();
        for bad in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = load(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::Permissions { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        load(&path).unwrap();
    }

    #[test]
    fn load_of_a_missing_file_says_how_to_make_one() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load(&tmp.path().join("nope.key")).unwrap_err();
        assert!(matches!(err, KeyFileError::NotFound { .. }));
        assert!(err.to_string().contains("cairn keys new"), "{err}");
    }

    #[test]
    fn malformed_files_get_one_line_without_their_content() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("account.key");
        let words = RecoveryPhrase::from_entropy(&[7u8; 32]).words();
        let mut list: Vec<&str> = words.split(' ').collect();
        list.swap(0, 23);
        let cases = [
            "# only a comment\n".to_string(),
            format!("{}\n", list.join(" ")),
            "correct horse battery staple\n".to_string(),
            "zzzsecretzzz ".repeat(24),
        ];
        for text in cases {
            std::fs::write(&path, &text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = load(&path).unwrap_err().to_string();
            assert!(
                err.contains("does not hold a valid recovery phrase"),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
            assert!(
                !err.contains("zzzsecretzzz") && !err.contains("horse"),
                "{err}"
            );
            assert!(!err.contains(list[1]), "{err}");
        }
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn comments_blank_lines_and_case_are_tolerated() {
        let phrase = RecoveryPhrase::from_entropy(&[1u8; 32]);
        let words = phrase.words().to_uppercase();
        let words: Vec<&str> = words.split(' ').collect();
        let (a, b) = (words[..12].join(" "), words[12..].join("\t"));
        let text = format!("# hello\n\n  {a}\n{b}  \n# bye\n");
        assert_eq!(parse(&text).unwrap().phrase(), &phrase);
    }

    #[test]
    fn debug_never_prints_secrets() {
        let account = Account::from_phrase(RecoveryPhrase::from_entropy(&[3u8; 32]));
        let shown = format!("{account:?}");
        let first = account.phrase().words();
        let first = first.split(' ').next().unwrap();
        assert!(!shown.contains(first), "{shown}");
        assert!(!shown.contains(&hex::encode(account.signing_key().to_bytes())));
        assert!(shown.contains(&account.address().to_string()));
    }
}
