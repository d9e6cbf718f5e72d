//! What can go wrong in a transfer, each with what to do about it.

use std::path::PathBuf;

use crate::net::client::ClientError;
use cairn_protocol::decoder::DecodeError;
use cairn_protocol::encoder::EncodeError;
use cairn_protocol::manifest::ManifestError;
use cairn_protocol::params::ParamsError;
use cairn_protocol::range::RangeError;
use cairn_protocol::ContentId;

use crate::chain::ChainError;
use crate::config::ConfigError;
use crate::deal::DealError;
use crate::keys::KeyFileError;

/// A client failure. The message is one line and says what to try.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("the config lists no storage nodes: add some under `nodes`, or run `cairn devnet up`")]
    NoNodes,
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    #[error("decoding: {0}")]
    Decode(#[from] DecodeError),
    #[error("range: {0}")]
    Range(#[from] RangeError),
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("no reachable node holds manifest {id} (asked {asked} of {nodes} nodes): the capability is wrong, the file was removed, or its nodes are down")]
    ManifestNotFound {
        id: ContentId,
        asked: usize,
        nodes: usize,
    },
    #[error("segment {segment}: only {have} of the {need} shards needed could be read ({reasons}); the file cannot be read until more of its nodes are back")]
    SegmentUnavailable {
        segment: u64,
        have: usize,
        need: usize,
        reasons: String,
    },
    #[error("segment {segment}: only {placed} of {need} shards could be stored ({reasons}); run the same `cairn put` again to resume where it stopped")]
    UploadIncomplete {
        segment: u64,
        placed: usize,
        need: usize,
        reasons: String,
    },
    #[error("the manifest could be stored on only {stored} of the {need} nodes asked ({reasons}); run the same `cairn put` again to resume")]
    ManifestUnstored {
        stored: usize,
        need: usize,
        reasons: String,
    },
    #[error("range {offset}+{len} is larger than {max} bytes: use `get` to stream it")]
    RangeTooLarge { offset: u64, len: u64, max: u64 },
    #[error("upload journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    #[error("partial download {path}: {reason}")]
    Partial { path: PathBuf, reason: String },
    #[error("network: {0}")]
    Network(Box<ClientError>),
    #[error("this account does not own the file's shards: only the key that stored a file can remove it")]
    NotOwner,
    #[error("some nodes did not remove their shards ({reasons}); run `cairn rm` again")]
    RemoveIncomplete { reasons: String },
    #[error("cancelled")]
    Cancelled,
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    #[error("storage deal: {0}")]
    Deal(#[from] DealError),
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        Self::Network(Box::new(e))
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// The reasons of several failures, summarized for one line.
pub(crate) fn summarize(reasons: &[String]) -> String {
    if reasons.is_empty() {
        return "no node was available".into();
    }
    let mut unique: Vec<&String> = Vec::new();
    for r in reasons {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    let shown: Vec<&str> = unique.iter().take(3).map(|s| s.as_str()).collect();
    let more = unique.len().saturating_sub(3);
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}
