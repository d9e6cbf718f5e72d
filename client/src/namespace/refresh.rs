//! Following the chain: another device of the account published a newer
//! tree, and a long-lived [`Namespace`] (a mount, a program embedding the
//! client) wants it without reopening.
//!
//! Reading the newer tree is split from adopting it, so a caller that
//! guards its `Namespace` with a lock does the network reads outside it:
//! [`chain_version`] asks the chain (one query), [`Head::read`] fetches the
//! commit and root directory (and [`Head::load`] the directories the
//! caller knows about), and [`Namespace::adopt`] swaps the tree in, with
//! no I/O. [`Namespace::refresh`] does the three in a row.
//!
//! Only a namespace with nothing pending adopts: a batch was recorded
//! against the tree it has, and its commit already re-reads the newer
//! tree and replays the batch on top of it when it finds the chain moved
//! ([`super::publish`]), so a pending batch is never dropped or
//! re-based here.

use cairn_protocol::namespace::{CommitKeys, Entry, NsPath};

use super::tree::Tree;
use super::{chain_of, read_head, Base, Namespace, NsError};
use crate::Client;

/// The namespace version the chain has for the client's account now
/// (0: never committed). One chain query; reads no tree.
pub async fn chain_version(client: &Client) -> Result<u64, NsError> {
    let account = chain_of(client)?
        .account(&client.account().address())
        .await?;
    Ok(account.namespace.map_or(0, |n| n.version))
}

/// The account's tree as the chain had it when read: its commit and root
/// directory, and whatever directories [`Head::load`] added.
#[derive(Debug)]
pub struct Head {
    base: Base,
    tree: Tree,
}

impl Head {
    /// Reads the account's head from the chain and the network.
    pub async fn read(client: &Client) -> Result<Self, NsError> {
        let keys = CommitKeys::new(&client.account().namespace_key());
        let (base, tree) = read_head(client, &keys).await?;
        Ok(Self { base, tree })
    }

    /// The namespace version this head was published at.
    pub fn version(&self) -> u64 {
        self.base.version
    }

    /// Loads the directories on the way to `path` (those that still exist),
    /// so that entries the caller had loaded can be looked at in the new
    /// tree with [`Namespace::peek`] right after adopting it.
    pub async fn load(&mut self, client: &Client, path: &NsPath) -> Result<(), NsError> {
        self.tree.load(client, path.names()).await.map(|_| ())
    }

    /// The entry at `path`, if its directory is loaded (no I/O).
    pub fn peek(&self, path: &NsPath) -> Option<&Entry> {
        self.tree.entry(path)
    }
}

/// What [`Namespace::adopt`] or [`Namespace::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The tree is as new as the chain's (or newer: a validator behind).
    Current { version: u64 },
    /// The tree is now the chain's newer one.
    Adopted { from: u64, to: u64 },
    /// The chain moved on but changes are pending: the tree stays, and the
    /// next commit replays the changes on top of the newer tree.
    Pending { version: u64, chain: u64 },
}

impl Namespace<'_> {
    /// Replaces the tree with `head` when `head` is newer and nothing is
    /// pending. No I/O: directories not loaded into `head` load on demand
    /// as before.
    pub fn adopt(&mut self, head: Head) -> Result<Refresh, NsError> {
        if self.keys.is_none() {
            return Err(NsError::Shared);
        }
        let version = self.base.version;
        if head.base.version <= version {
            return Ok(Refresh::Current { version });
        }
        if self.has_changes() {
            return Ok(Refresh::Pending {
                version,
                chain: head.base.version,
            });
        }
        // Nothing recorded means nothing stored for a batch either (the
        // last commit took both), and no small file waits for a pack.
        self.base = head.base;
        self.tree = head.tree;
        self.unpacked = 0;
        tracing::info!(
            from = version,
            to = self.base.version,
            "adopted a newer tree"
        );
        Ok(Refresh::Adopted {
            from: version,
            to: self.base.version,
        })
    }

    /// Asks the chain whether another device published a newer tree and,
    /// if so and nothing is pending here, reads and adopts it.
    pub async fn refresh(&mut self) -> Result<Refresh, NsError> {
        if self.keys.is_none() {
            return Err(NsError::Shared);
        }
        let version = self.base.version;
        let chain = chain_version(self.client).await?;
        if chain <= version {
            return Ok(Refresh::Current { version });
        }
        if self.has_changes() {
            return Ok(Refresh::Pending { version, chain });
        }
        let head = Head::read(self.client).await?;
        self.adopt(head)
    }
}
