//! Namespace objects on the network: directories (stored as files) and
//! commits (small sealed records, replicated like manifest copies).

use std::sync::Arc;

use bytes::Bytes;
use cairn_protocol::namespace::directory::MAX_DIRECTORY_LEN;
use cairn_protocol::namespace::{Directory, ObjectRef};
use cairn_protocol::ContentId;
use futures::stream::{FuturesUnordered, StreamExt};

use super::NsError;
use crate::download::{self, DownloadPlan, Output};
use crate::network::NodeIndex;
use crate::progress::Silent;
use crate::upload::PlacedShard;
use crate::{Client, PutOptions, PutReport};

/// Nodes asked at once for a commit.
const FANOUT: usize = 3;

/// Uploads `bytes` as a file of its own (fresh key).
pub(crate) async fn put_bytes(client: &Client, bytes: Vec<u8>) -> Result<PutReport, NsError> {
    let len = bytes.len() as u64;
    Ok(client
        .put(
            std::io::Cursor::new(bytes),
            Some(len),
            &PutOptions::default(),
        )
        .await?)
}

/// Downloads a whole object of at most `max` bytes into memory.
pub(crate) async fn get_bytes(
    client: &Client,
    object: &ObjectRef,
    max: u64,
) -> Result<Vec<u8>, NsError> {
    let cap = object.capability();
    let slow_after = client.config().slow_after;
    let manifest = download::fetch_manifest(client.network(), &cap, slow_after).await?;
    if manifest.plaintext_len() > max {
        return Err(NsError::TooLarge(manifest.plaintext_len()));
    }
    let mut out = Vec::with_capacity(manifest.plaintext_len() as usize);
    let plan = DownloadPlan {
        resume_at: 0,
        parallelism: client.config().parallelism,
        slow_after,
        progress: Arc::new(Silent),
        // A namespace object's deal covers the whole commit: the chain
        // cannot be asked for it by the object's own repair root.
        chain: None,
    };
    download::download(
        client.network(),
        Arc::new(manifest),
        &cap,
        Output::Async(&mut out),
        plan,
    )
    .await?;
    Ok(out)
}

/// Fetches and parses a directory object.
pub(crate) async fn get_directory(
    client: &Client,
    object: &ObjectRef,
) -> Result<Directory, NsError> {
    let bytes = get_bytes(client, object, MAX_DIRECTORY_LEN as u64).await?;
    Ok(Directory::decode(&bytes)?)
}

/// Stores a sealed commit on the config's number of manifest copies, best
/// ranked nodes for its id first; returns where it went.
pub(crate) async fn store_commit(
    client: &Client,
    id: ContentId,
    sealed: Vec<u8>,
) -> Result<Vec<PlacedShard>, NsError> {
    let network = client.network();
    let copies = client
        .config()
        .manifest_copies_for(client.config().params, network.len());
    let size = sealed.len() as u64;
    let sealed = Bytes::from(sealed);
    let owner = &client.account().signing_key();
    let mut next = network.ranked(id.digest(), network.len()).into_iter();
    let store = |node: NodeIndex| {
        let sealed = sealed.clone();
        async move { (node, network.store(node, id, sealed, owner).await) }
    };
    let mut running: FuturesUnordered<_> = next.by_ref().take(copies).map(store).collect();
    let mut stored = Vec::new();
    let mut failed = 0usize;
    while let Some((node, result)) = running.next().await {
        match result {
            Ok(_) => stored.push(PlacedShard {
                node: network.nodes()[node].peer,
                id,
                size,
            }),
            Err(_) => {
                failed += 1;
                if let Some(spare) = next.next() {
                    running.push(store(spare));
                }
            }
        }
    }
    // As a manifest: enough copies that the tolerated node losses leave one.
    let need = copies.min(client.config().params.m() + 1).max(1);
    if stored.len() < need {
        return Err(crate::Error::ManifestUnstored {
            stored: stored.len(),
            need,
            reasons: format!("{failed} node(s) refused or did not answer"),
        }
        .into());
    }
    Ok(stored)
}

/// Fetches the sealed commit `id` from whichever node has it; the bytes
/// are checked against the id by the caller's [`Commit::open`].
///
/// [`Commit::open`]: cairn_protocol::namespace::Commit::open
pub(crate) async fn fetch_commit(client: &Client, id: ContentId) -> Result<Vec<u8>, NsError> {
    let network = client.network();
    let mut ranking = network.ranked(id.digest(), network.len());
    ranking.sort_by_key(|&n| network.preference(n));
    let mut next = ranking.into_iter();
    let limit = cairn_protocol::namespace::commit::SEALED_COMMIT_LEN as u64;
    let ask = |node: NodeIndex| async move {
        let sizes = network.has(node, &[id]).await.ok()?;
        match sizes.first().copied().flatten() {
            Some(size) if size == limit => {
                let bytes = network.fetch(node, id, size, 0..size).await.ok()?;
                id.matches(&bytes).then_some(bytes)
            }
            _ => None,
        }
    };
    let mut running: FuturesUnordered<_> = next.by_ref().take(FANOUT).map(ask).collect();
    let mut asked = running.len();
    while let Some(answer) = running.next().await {
        if let Some(bytes) = answer {
            return Ok(bytes);
        }
        if let Some(node) = next.next() {
            asked += 1;
            running.push(ask(node));
        }
    }
    Err(NsError::CommitNotFound(id.to_string(), asked))
}
