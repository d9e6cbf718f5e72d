//! The namespace: an account's encrypted directory tree.
//!
//! A user's files get names through *directory objects*: each directory is
//! a list of (name, entry) pairs, encoded canonically ([`directory`]),
//! padded, and stored like any file (encrypted under a fresh file key,
//! erasure-coded). A parent names each child directory by the child's
//! capability, so whoever can read a directory can read everything under
//! it and nothing above it: a directory's capability is a read-only share
//! of its subtree ([`DirCapability`]).
//!
//! The tree's root is named by a *commit* ([`commit`]): a small record
//! sealed under keys derived from the account's namespace key
//! ([`crate::keys::MasterSecret::namespace_key`]). The chain's
//! `SetNamespaceRoot` points at the commit's content id with a version that
//! only goes up, so updating the tree is a compare-and-swap. A writer that
//! loses the race re-reads the new tree and replays its changes on it,
//! following the rules of [`merge`].
//!
//! Everything here is pure: bytes in, values or typed errors out. Nothing
//! in a directory or a commit is readable without its key, and hostile
//! bytes are refused with an error, never a panic, after a bounded amount
//! of work ([`directory::MAX_DIRECTORY_LEN`]).

pub mod commit;
pub mod dircap;
pub mod directory;
pub mod merge;
pub mod path;

pub use commit::{Commit, CommitKeys};
pub use dircap::DirCapability;
pub use directory::{DirRef, Directory, Entry, EntryKind, FileData, ObjectRef, Timestamp};
pub use merge::{rebase, Change, Rebased};
pub use path::NsPath;

/// Why namespace bytes or names were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error("directory object of {0} bytes exceeds the {max}-byte limit", max = directory::MAX_DIRECTORY_LEN)]
    TooLarge(usize),
    #[error("namespace object version {0} is not supported (this build reads version 1)")]
    Version(u8),
    #[error("malformed namespace object: {0}")]
    Malformed(String),
    #[error("invalid name {name:?}: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("invalid path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("commit bytes do not hash to the id the chain names")]
    IdMismatch,
    #[error("the namespace key does not open this commit (another account's, or a wrong key)")]
    WrongKey,
}
