//! `rm`: the owner asks every node holding a piece of a file to drop it.

use cairn_protocol::wire::ErrorKind;
use cairn_protocol::{Capability, Manifest};
use ed25519_dalek::SigningKey;
use futures::stream::{self, StreamExt};

use crate::error::{summarize, Error};
use crate::network::{reason, Network};
use crate::status::holders;

/// Deletes at once per client.
const DELETE_CONCURRENCY: usize = 32;

/// What `rm` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoveReport {
    pub manifest_id: String,
    /// Shard copies (manifest copies included) nodes dropped.
    pub deleted: usize,
    /// Nodes that did not answer the search: they may still hold shards
    /// until those expire.
    pub unreachable_nodes: usize,
}

pub(crate) async fn remove(
    network: &Network,
    cap: &Capability,
    manifest: &Manifest,
    owner: &SigningKey,
) -> Result<RemoveReport, Error> {
    let mut ids = manifest.shards().to_vec();
    ids.push(cap.manifest);
    let (held, answered) = holders(network, &ids).await;
    // Shards first, the manifest last: a failed rm can be run again.
    let (manifests, shards): (Vec<_>, Vec<_>) =
        held.into_iter().partition(|(_, id)| *id == cap.manifest);
    let mut deleted = 0;
    for batch in [shards, manifests] {
        let results: Vec<_> = stream::iter(batch)
            .map(|(node, id)| async move { (node, network.delete(node, id, owner).await) })
            .buffer_unordered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut reasons = Vec::new();
        for (node, result) in results {
            match result {
                Ok(_) => deleted += 1,
                Err(e) if matches!(e.refusal(), Some(w) if w.kind == ErrorKind::Unauthorized) => {
                    return Err(Error::NotOwner);
                }
                Err(e) => reasons.push(reason(network, node, &e)),
            }
        }
        if !reasons.is_empty() {
            return Err(Error::RemoveIncomplete {
                reasons: summarize(&reasons),
            });
        }
    }
    Ok(RemoveReport {
        manifest_id: cap.manifest.to_string(),
        deleted,
        unreachable_nodes: network.len() - answered,
    })
}
