//! Files with names: the account's encrypted directory tree.
//!
//! A [`Namespace`] reads the account's root pointer from the chain, opens
//! the commit it names with keys derived from the namespace key, and loads
//! directories as paths need them. Changes (put, mkdir, rm, mv) go into an
//! in-memory batch; [`Namespace::commit`] writes the changed directories
//! back, stores a new commit and publishes it with `SetNamespaceRoot` at
//! the next version, a compare-and-swap: a device that lost the race
//! re-reads the tree, replays its changes by the rules of
//! [`cairn_protocol::namespace::merge`] and tries again. One commit opens
//! one storage deal for everything it added. A namespace kept open follows
//! other devices' commits with [`Namespace::refresh`].
//!
//! Small files cost no deal of their own: below [`NsOptions::inline_max`]
//! they live inside their directory object; below
//! [`NsOptions::pack_file_max`] they are concatenated into pack objects
//! shared by the batch ([`Namespace::pack`]).
//!
//! | module | holds |
//! |---|---|
//! | [`tree`] | loaded directories, changed in memory, written back bottom-up |
//! | [`batch`] | the recorded changes and their replay after a lost race |
//! | [`publish`] | the commit: store, `SetNamespaceRoot`, retry, deal |
//! | [`objects`] | directory and commit objects on the network |
//! | [`pack`] | small files packed into shared objects |
//! | [`refresh`] | adopting a newer tree another device published |

pub mod batch;
pub mod error;
pub mod objects;
pub mod pack;
pub mod publish;
pub mod read;
pub mod refresh;
pub(crate) mod stored;
pub mod tree;

use cairn_protocol::namespace::{
    Commit, CommitKeys, DirCapability, DirRef, Directory, Entry, EntryKind, NsPath, ObjectRef,
    Timestamp,
};
use cairn_protocol::ContentId;

pub use error::NsError;
pub use publish::CommitReport;
pub use refresh::{chain_version, Head, Refresh};

use crate::chain::ChainClient;
use crate::Client;
use batch::Op;
use tree::Tree;

/// How files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsOptions {
    /// Files up to this size live inside their directory object.
    pub inline_max: u64,
    /// Files up to this size (and above `inline_max`) go into pack objects.
    pub pack_file_max: u64,
    /// A pack object is stored once it holds this much.
    pub pack_target: u64,
}

impl Default for NsOptions {
    fn default() -> Self {
        Self {
            inline_max: 4096,
            pack_file_max: 1 << 20,
            pack_target: 16 << 20,
        }
    }
}

/// Where the tree came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// The namespace version on chain (0: never committed).
    pub version: u64,
    /// The commit's content id.
    pub commit: Option<[u8; 32]>,
    /// The root directory's reference (`None`: empty tree).
    pub root: Option<DirRef>,
}

/// An account's tree, or a shared directory's (read-only).
#[derive(Debug)]
pub struct Namespace<'a> {
    pub(crate) client: &'a Client,
    pub(crate) keys: Option<CommitKeys>,
    pub(crate) base: Base,
    pub(crate) tree: Tree,
    pub(crate) log: Vec<batch::Recorded>,
    /// Objects stored for this batch so far (files, packs).
    pub(crate) stored: stored::Stored,
    /// Bytes of small files in the tree not yet in a pack object.
    pub(crate) unpacked: u64,
    pub(crate) options: NsOptions,
    /// Marks this writer's conflict copies.
    pub(crate) tag: String,
}

impl<'a> Namespace<'a> {
    /// The account's namespace as the chain has it now.
    pub async fn open(client: &'a Client) -> Result<Self, NsError> {
        let keys = CommitKeys::new(&client.account().namespace_key());
        let (base, tree) = read_head(client, &keys).await?;
        Ok(Self::new(client, Some(keys), base, tree))
    }

    /// A shared directory, read-only: no chain, no account needed.
    pub async fn open_shared(client: &'a Client, cap: &DirCapability) -> Result<Self, NsError> {
        let object = cap.object();
        let dir = objects::get_directory(client, &object).await?;
        let (files, bytes) = dir.summary();
        let base = Base {
            version: 0,
            commit: None,
            root: Some(DirRef {
                object,
                files,
                bytes,
            }),
        };
        Ok(Self::new(client, None, base, Tree::new(dir)))
    }

    fn new(client: &'a Client, keys: Option<CommitKeys>, base: Base, tree: Tree) -> Self {
        Self {
            client,
            keys,
            base,
            tree,
            log: Vec::new(),
            stored: stored::Stored::default(),
            unpacked: 0,
            options: NsOptions::default(),
            tag: format!("{:04x}", rand::random::<u16>()),
        }
    }

    pub fn with_options(mut self, options: NsOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> NsOptions {
        self.options
    }

    pub fn client(&self) -> &Client {
        self.client
    }

    /// The namespace version the tree was read at (0: empty, never committed).
    pub fn version(&self) -> u64 {
        self.base.version
    }

    /// Whether changes are waiting for [`Self::commit`].
    pub fn has_changes(&self) -> bool {
        !self.log.is_empty()
    }

    /// The entry at `path`; the root is a directory entry of its own.
    pub async fn stat(&mut self, path: &NsPath) -> Result<Option<Entry>, NsError> {
        if path.is_root() {
            let (files, bytes) = self.tree.root.dir.summary();
            let object = self.base.root.as_ref().map(|r| r.object.clone());
            return Ok(Some(Entry {
                kind: EntryKind::Dir(DirRef {
                    object: object.unwrap_or(ObjectRef {
                        manifest: [0; 32],
                        key: [0; 32],
                    }),
                    files,
                    bytes,
                }),
                mode: 0o755,
                mtime: Timestamp::default(),
            }));
        }
        self.tree.load(self.client, path.names()).await?;
        Ok(self.tree.entry(path).cloned())
    }

    /// The entry at `path` if its directory is loaded already (no I/O).
    pub fn peek(&self, path: &NsPath) -> Option<Entry> {
        self.tree.entry(path).cloned()
    }

    /// The directory at `path`, loaded.
    pub async fn list(&mut self, path: &NsPath) -> Result<&Directory, NsError> {
        let depth = self.tree.load(self.client, path.names()).await?;
        if depth < path.names().len() {
            let upto = tree::path_of(&path.names()[..=depth]);
            return Err(match self.tree.entry(&upto) {
                Some(_) => NsError::NotADirectory(upto),
                None => NsError::NotFound(upto),
            });
        }
        self.tree
            .dir(path.names())
            .map(|d| &d.dir)
            .ok_or_else(|| NsError::NotFound(path.clone()))
    }

    /// A read-only capability for what `path` holds: a file's (a small file
    /// is stored as an object of its own first) or a directory's snapshot.
    pub async fn share(&mut self, path: &NsPath) -> Result<String, NsError> {
        if self.has_changes() {
            self.commit().await?;
        }
        let entry = self
            .stat(path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        match &entry.kind {
            EntryKind::Dir(_) if path.is_root() => match &self.base.root {
                Some(r) => Ok(DirCapability::from(&r.object).to_string()),
                None => {
                    // An empty tree: share an empty directory object.
                    let report =
                        objects::put_bytes(self.client, Directory::default().encode()?).await?;
                    Ok(DirCapability(report.capability).to_string())
                }
            },
            EntryKind::Dir(r) => Ok(DirCapability::from(&r.object).to_string()),
            EntryKind::File {
                data: cairn_protocol::namespace::FileData::Object(o),
                ..
            } => Ok(o.capability().to_string()),
            EntryKind::File { .. } => {
                let bytes = self.read_all(&entry).await?;
                let report = objects::put_bytes(self.client, bytes).await?;
                Ok(report.capability.to_string())
            }
            EntryKind::Symlink(_) => Err(NsError::Root("shared as a link")),
        }
    }

    /// Records a change and applies it to the tree.
    pub(crate) async fn record(&mut self, op: Op) -> Result<(), NsError> {
        if self.keys.is_none() {
            return Err(NsError::Root("changed through a read-only capability"));
        }
        let bases = self.apply(&op, None).await?;
        self.log.push(batch::Recorded { op, bases });
        Ok(())
    }
}

/// Reads the account's head: the chain's pointer, the commit, the root.
pub(crate) async fn read_head(client: &Client, keys: &CommitKeys) -> Result<(Base, Tree), NsError> {
    let chain = chain_of(client)?;
    let account = chain.account(&client.account().address()).await?;
    let Some(pointer) = account.namespace else {
        return Ok((
            Base {
                version: 0,
                commit: None,
                root: None,
            },
            Tree::default(),
        ));
    };
    let digest: [u8; 32] = hex::decode(&pointer.root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            NsError::Refused(format!(
                "the chain's namespace root {} is not 32 bytes",
                pointer.root
            ))
        })?;
    let id = ContentId::from_digest(digest);
    let sealed = objects::fetch_commit(client, id).await?;
    let commit = Commit::open(&id, &sealed, keys)?;
    if commit.version != pointer.version {
        return Err(NsError::VersionMismatch {
            stored: commit.version,
            published: pointer.version,
        });
    }
    let root = objects::get_directory(client, &commit.root.object).await?;
    Ok((
        Base {
            version: pointer.version,
            commit: Some(digest),
            root: Some(commit.root),
        },
        Tree::new(root),
    ))
}

pub(crate) fn chain_of(client: &Client) -> Result<&ChainClient, NsError> {
    client.chain().ok_or(NsError::NoChain)
}
