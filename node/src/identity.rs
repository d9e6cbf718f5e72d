//! The node's ed25519 identity: its libp2p peer id, and later the key that
//! signs its chain transactions.
//!
//! Stored as the 32-byte secret seed in hex, in a file only its owner may
//! read (mode 0600). Like ssh, the node refuses to start with a key file that
//! others can read: a leaked key lets anyone impersonate the node and sign for
//! its stake.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use rand::RngCore;
use zeroize::Zeroizing;

type Seed = Zeroizing<[u8; 32]>;

/// Why the identity could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity key {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("identity key {path} is not 64 hex characters")]
    Malformed { path: PathBuf },
    #[error("identity key {path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
}

/// Generates a new key and writes it to `path` (mode 0600, never overwriting).
pub fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut seed: Seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut seed[..]);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                IdentityError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
    file.write_all(format!("{}\n", hex::encode(&seed[..])).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    keypair(seed, path)
}

/// Reads the key at `path`, refusing a file others can read.
pub fn load(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let malformed = || IdentityError::Malformed {
        path: path.to_path_buf(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
    let bytes = Zeroizing::new(bytes);
    let seed: Seed = Zeroizing::new(bytes[..].try_into().map_err(|_| malformed())?);
    keypair(seed, path)
}

fn keypair(mut seed: Seed, path: &Path) -> Result<Keypair, IdentityError> {
    Keypair::ed25519_from_bytes(&mut seed[..]).map_err(|_| IdentityError::Malformed {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let a = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        assert!(matches!(create(&path), Err(IdentityError::Exists { .. })));
    }

    #[test]
    fn open_or_garbled_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(IdentityError::TooOpen { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(load(&path), Err(IdentityError::Malformed { .. })));
    }
}
