//! Why a namespace operation failed.

use cairn_protocol::namespace::{NamespaceError, NsPath};

use crate::chain::ChainError;
use crate::deal::DealError;

/// Every failure of a namespace operation, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("{0}")]
    Client(#[from] crate::Error),
    #[error("{0}")]
    Format(#[from] NamespaceError),
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    #[error("storage deal: {0}")]
    Deal(#[from] DealError),
    #[error("the namespace needs a chain: the config lists no validators (`chain = [...]`)")]
    NoChain,
    #[error("{0}: no such file or directory")]
    NotFound(NsPath),
    #[error("{0}: not a directory")]
    NotADirectory(NsPath),
    #[error("{0}: is a directory")]
    IsADirectory(NsPath),
    #[error("{0}: already exists")]
    Exists(NsPath),
    #[error("{0}: directory not empty (use -r)")]
    NotEmpty(NsPath),
    #[error("{0}: cannot move a directory into itself")]
    IntoItself(NsPath),
    #[error("the root cannot be {0}")]
    Root(&'static str),
    #[error("directory object of {0} bytes is larger than a directory may be")]
    TooLarge(u64),
    #[error("the namespace's commit {0} is on no node that answered (asked {1})")]
    CommitNotFound(String, usize),
    #[error("the commit stored under version {stored} is published as version {published}: refusing a replayed commit")]
    VersionMismatch { stored: u64, published: u64 },
    #[error("the chain refused the namespace update: {0}")]
    Refused(String),
    #[error("a shared directory is a snapshot: it has no newer version to follow")]
    Shared,
    #[error("another device kept committing: gave up after {0} attempts (run the command again)")]
    Contended(usize),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl NsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
