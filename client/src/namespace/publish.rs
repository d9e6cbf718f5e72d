//! Committing a batch: write the changed directories back, store the
//! commit, publish it with `SetNamespaceRoot` at the next version, and on
//! a lost race re-read, replay and try again; then one storage deal for
//! everything the commit added.

use std::time::Duration;

use cairn_protocol::chain::TxBody;
use cairn_protocol::namespace::{Commit, DirRef, Timestamp};

use super::stored::Stored;
use super::{chain_of, objects, read_head, Base, Namespace, NsError};
use crate::chain::api::TxStatus;
use crate::chain::ChainError;
use crate::deal;

/// Publishing attempts before giving up on a busy namespace.
const MAX_ATTEMPTS: usize = 12;
/// How long a namespace transaction may take to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the chain is asked while waiting.
const POLL: Duration = Duration::from_millis(250);

/// What a commit did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitReport {
    /// The namespace version now on chain.
    pub version: u64,
    /// Changes in the batch.
    pub changes: usize,
    /// Times another device had committed first (and the batch was replayed).
    pub replays: usize,
    /// Objects the commit stored (shards and manifest or commit copies).
    pub objects_stored: usize,
    /// The deal opened for them, if any.
    pub deal: Option<String>,
    /// Why no deal was opened, if one was due; or, with `deal`, why the
    /// deal names no repair data.
    pub deal_error: Option<String>,
}

/// How one publishing attempt ended.
enum Published {
    Done,
    /// Another device published this version first.
    Lost,
}

impl Namespace<'_> {
    /// Commits the batch (a no-op when nothing changed).
    pub async fn commit(&mut self) -> Result<CommitReport, NsError> {
        let keys = self
            .keys
            .clone()
            .ok_or(NsError::Root("changed through a read-only capability"))?;
        if self.log.is_empty() {
            return Ok(CommitReport {
                version: self.base.version,
                changes: 0,
                replays: 0,
                objects_stored: 0,
                deal: None,
                deal_error: None,
            });
        }
        let client = self.client;
        let mut replays = 0;
        loop {
            self.pack().await?;
            let mut stored = Stored::default();
            let root = match self.tree.flush(client, &mut stored).await? {
                Some(r) => r,
                None => match &self.base.root {
                    Some(r) => r.clone(),
                    // Changes that cancelled out on an empty tree.
                    None => {
                        self.tree.root.dirty = true;
                        continue;
                    }
                },
            };
            let version = self.base.version + 1;
            let commit = Commit {
                version,
                root: root.clone(),
                previous: self.base.commit,
                time: Timestamp::now(),
            };
            let (id, sealed) = commit.seal(&keys);
            stored.add_copies(objects::store_commit(client, id, sealed).await?);
            match self.publish(*id.digest(), version).await? {
                Published::Done => {
                    let changes = self.log.len();
                    self.log.clear();
                    self.base = Base {
                        version,
                        commit: Some(*id.digest()),
                        root: Some(root),
                    };
                    let mut all = std::mem::take(&mut self.stored);
                    all.extend(stored);
                    let (deal, deal_error) = self.open_deal(&all).await;
                    return Ok(CommitReport {
                        version,
                        changes,
                        replays,
                        objects_stored: all.placement.len(),
                        deal,
                        deal_error,
                    });
                }
                Published::Lost => {
                    replays += 1;
                    if replays >= MAX_ATTEMPTS {
                        return Err(NsError::Contended(replays));
                    }
                    tracing::info!(version, "another device committed first: replaying");
                    let (base, tree) = read_head(client, &keys).await?;
                    self.base = base;
                    self.tree = tree;
                    self.replay().await?;
                    // The replay may have changed nothing (all skipped):
                    // still publish, so the batch is accounted for.
                    self.tree.root.dirty = true;
                }
            }
        }
    }

    /// Sends `SetNamespaceRoot(root, version)` until it is committed or
    /// the chain has moved past `version - 1`.
    ///
    /// A stale `SetNamespaceRoot` never applies, and a validator keeps it
    /// (and every later nonce of the account behind it) until it ages out.
    /// So it is sent only when the account has nothing pending, at the
    /// account's own nonce: if another device's transaction takes that
    /// nonce first, this one is dropped with it, not left stuck.
    async fn publish(&self, root: [u8; 32], version: u64) -> Result<Published, NsError> {
        let chain = chain_of(self.client)?;
        let key = self.client.account().signing_key();
        let address = self.client.account().address();
        let root_hex = hex::encode(root);
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Two devices of one account pick the same nonce: back off
                // by a random amount so they stop colliding.
                let ms = 100 + rand::random::<u64>() % (300 * attempt as u64);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let quiet_by = tokio::time::Instant::now() + COMMIT_TIMEOUT;
            let account = loop {
                let account = chain.account(&address).await?;
                let on_chain = account.namespace.as_ref().map_or(0, |n| n.version);
                if on_chain >= version {
                    return Ok(Published::Lost);
                }
                if account.next_nonce == account.nonce || tokio::time::Instant::now() >= quiet_by {
                    break account;
                }
                // Another transaction of this account is pending (maybe
                // the other device's commit): wait for it first.
                tokio::time::sleep(POLL).await;
            };
            let fee = chain.status().await?.min_fee;
            let body = TxBody::SetNamespaceRoot { root, version };
            let tx = match chain.send(&key, body, fee).await {
                Ok(tx) => tx,
                Err(ChainError::Refused { reason, .. }) => {
                    last = reason;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let id = tx.id();
            let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
            loop {
                if let Some(view) = chain.tx(&id).await? {
                    if view.status == TxStatus::Committed {
                        if view.ok == Some(true) {
                            return Ok(Published::Done);
                        }
                        last = view.error.unwrap_or_else(|| "no reason given".into());
                        tracing::debug!(reason = %last, "namespace update refused");
                        break;
                    }
                }
                // Another device's transaction took the nonce or the version.
                let now = chain.account(&address).await?;
                match now.namespace {
                    Some(n) if n.version >= version && n.root == root_hex => {
                        return Ok(Published::Done)
                    }
                    Some(n) if n.version >= version => return Ok(Published::Lost),
                    _ if now.nonce > account.nonce && now.next_nonce == now.nonce => {
                        // The nonce went to another transaction and nothing
                        // is pending: ours is gone; send again.
                        last = "another transaction of this account took the nonce".into();
                        break;
                    }
                    _ => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ChainError::Timeout {
                        id: hex::encode(id),
                        secs: COMMIT_TIMEOUT.as_secs(),
                    }
                    .into());
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Err(NsError::Refused(last))
    }

    /// One deal for everything `stored` holds, if the config opens deals,
    /// with repair data over every file object's segments.
    async fn open_deal(&self, stored: &Stored) -> (Option<String>, Option<String>) {
        let placement = &stored.placement;
        let client = self.client;
        let (Some(chain), true) = (client.chain(), client.config().open_deals) else {
            return (None, None);
        };
        if placement.is_empty() {
            return (None, None);
        }
        let key = client.account().signing_key();
        let segments = stored.segments();
        let mut last = String::new();
        for attempt in 0..4u64 {
            if attempt > 0 {
                let ms = 200 + rand::random::<u64>() % (500 * attempt);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            // One deal covers every object of the commit; its repair data
            // lists their segments one object after another (docs/format.md
            // §13), so strangers repair them as they do a single file.
            match deal::open(
                client.network(),
                chain,
                &key,
                placement,
                segments.as_ref().map(|s| deal::Segments {
                    k: s.k,
                    m: s.m,
                    shards: &s.shards,
                }),
                &client.config().deal,
            )
            .await
            {
                Ok(d) => return (Some(d.id), None),
                Err(e) => {
                    // Open already: another attempt would open a second deal.
                    if let deal::DealError::RepairUnpublished { deal, .. } = &e {
                        return (Some(deal.clone()), Some(e.to_string()));
                    }
                    last = e.to_string();
                }
            }
        }
        (None, Some(last))
    }

    /// The root's reference as last committed or read.
    pub fn root_ref(&self) -> Option<&DirRef> {
        self.base.root.as_ref()
    }
}
