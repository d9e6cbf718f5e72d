//! The working tree: directories loaded on demand, changed in memory, and
//! written back bottom-up as new directory objects at commit time.

use std::collections::BTreeMap;

use cairn_protocol::namespace::{
    DirRef, Directory, Entry, EntryKind, NsPath, ObjectRef, Timestamp,
};
use futures::future::LocalBoxFuture;

use super::stored::Stored;
use super::{objects, NsError};
use crate::Client;

/// One loaded directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirState {
    /// The entries. A subdirectory loaded into `children` has its entry's
    /// reference updated only when it is written back.
    pub dir: Directory,
    /// Loaded subdirectories, by name.
    pub children: BTreeMap<String, DirState>,
    /// Changed since loaded: must be written back.
    pub dirty: bool,
}

/// A placeholder reference for a directory made in memory and not yet
/// written (it is always in `children`, so never fetched).
fn unwritten() -> DirRef {
    DirRef {
        object: ObjectRef {
            manifest: [0; 32],
            key: [0; 32],
        },
        files: 0,
        bytes: 0,
    }
}

/// An empty directory entry with default permissions.
pub(crate) fn new_dir_entry(mode: u32) -> Entry {
    Entry {
        kind: EntryKind::Dir(unwritten()),
        mode,
        mtime: Timestamp::now(),
    }
}

/// A tree rooted at one commit's root directory (or empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    pub root: DirState,
}

impl Tree {
    pub fn new(root: Directory) -> Self {
        Self {
            root: DirState {
                dir: root,
                children: BTreeMap::new(),
                dirty: false,
            },
        }
    }

    /// The loaded directory at `names`, if every step is loaded.
    pub fn dir(&self, names: &[String]) -> Option<&DirState> {
        let mut cur = &self.root;
        for n in names {
            cur = cur.children.get(n)?;
        }
        Some(cur)
    }

    pub fn dir_mut(&mut self, names: &[String]) -> Option<&mut DirState> {
        let mut cur = &mut self.root;
        for n in names {
            cur = cur.children.get_mut(n)?;
        }
        Some(cur)
    }

    /// Loads every directory on the way to `names` (those that exist);
    /// returns how many steps exist as directories.
    pub async fn load(&mut self, client: &Client, names: &[String]) -> Result<usize, NsError> {
        for depth in 0..names.len() {
            let parent = self
                .dir(&names[..depth])
                .ok_or_else(|| NsError::NotFound(path_of(&names[..depth])))?;
            let name = &names[depth];
            if parent.children.contains_key(name) {
                continue;
            }
            let object = match parent.dir.entries.get(name).map(|e| &e.kind) {
                Some(EntryKind::Dir(r)) => r.object.clone(),
                _ => return Ok(depth),
            };
            let dir = objects::get_directory(client, &object).await?;
            let parent = self
                .dir_mut(&names[..depth])
                .ok_or_else(|| NsError::NotFound(path_of(&names[..depth])))?;
            parent.children.insert(
                name.clone(),
                DirState {
                    dir,
                    ..DirState::default()
                },
            );
        }
        Ok(names.len())
    }

    /// The entry at `path` (its parent must be loaded); `None` for the
    /// root, which has no entry.
    pub fn entry(&self, path: &NsPath) -> Option<&Entry> {
        let (name, parent) = path.names().split_last()?;
        self.dir(parent)?.dir.entries.get(name)
    }

    /// Sets `name` in the loaded directory `parent`; `child` is the loaded
    /// state of a directory entry, if any. Marks the way up dirty.
    pub fn set(
        &mut self,
        parent: &[String],
        name: &str,
        entry: Entry,
        child: Option<DirState>,
    ) -> Result<(), NsError> {
        let dir = self
            .dir_mut(parent)
            .ok_or_else(|| NsError::NotFound(path_of(parent)))?;
        dir.dir.entries.insert(name.to_string(), entry);
        match child {
            Some(c) => {
                dir.children.insert(name.to_string(), c);
            }
            None => {
                dir.children.remove(name);
            }
        }
        self.touch(parent);
        Ok(())
    }

    /// Removes `name` from the loaded directory `parent`: the entry and its
    /// loaded state, if any.
    pub fn take(&mut self, parent: &[String], name: &str) -> Option<(Entry, Option<DirState>)> {
        let dir = self.dir_mut(parent)?;
        let entry = dir.dir.entries.remove(name)?;
        let child = dir.children.remove(name);
        self.touch(parent);
        Some((entry, child))
    }

    /// Marks the directory at `names` and every one above it dirty, and
    /// sets the changed directory's time.
    fn touch(&mut self, names: &[String]) {
        let now = Timestamp::now();
        for depth in 0..=names.len() {
            if let Some(d) = self.dir_mut(&names[..depth]) {
                d.dirty = true;
            }
        }
        if let Some((name, parent)) = names.split_last() {
            if let Some(e) = self
                .dir_mut(parent)
                .and_then(|d| d.dir.entries.get_mut(name))
            {
                e.mtime = now;
            }
        }
    }

    /// Creates the directories on the way to `names` that do not exist
    /// (loading those that do). Fails if one is a file.
    pub async fn make_dirs(&mut self, client: &Client, names: &[String]) -> Result<(), NsError> {
        let exist = self.load(client, names).await?;
        for depth in exist..names.len() {
            let parent = &names[..depth];
            let name = &names[depth];
            if let Some(e) = self.dir(parent).and_then(|d| d.dir.entries.get(name)) {
                if !e.is_dir() {
                    return Err(NsError::NotADirectory(path_of(&names[..=depth])));
                }
            }
            self.set(
                parent,
                name,
                new_dir_entry(0o755),
                Some(DirState {
                    dirty: true,
                    ..DirState::default()
                }),
            )?;
        }
        Ok(())
    }

    /// Writes back every changed directory, deepest first. Returns the
    /// root's new reference (`None`: nothing changed) and where the new
    /// objects went.
    pub async fn flush(
        &mut self,
        client: &Client,
        stored: &mut Stored,
    ) -> Result<Option<DirRef>, NsError> {
        flush_dir(client, &mut self.root, stored).await
    }
}

fn flush_dir<'a>(
    client: &'a Client,
    state: &'a mut DirState,
    stored: &'a mut Stored,
) -> LocalBoxFuture<'a, Result<Option<DirRef>, NsError>> {
    Box::pin(async move {
        for (name, child) in state.children.iter_mut() {
            if let Some(r) = flush_dir(client, child, stored).await? {
                if let Some(e) = state.dir.entries.get_mut(name) {
                    e.kind = EntryKind::Dir(r);
                }
                state.dirty = true;
            }
        }
        if !state.dirty {
            return Ok(None);
        }
        let bytes = state.dir.encode()?;
        let report = objects::put_bytes(client, bytes).await?;
        stored.add(&report);
        state.dirty = false;
        let (files, bytes) = state.dir.summary();
        Ok(Some(DirRef {
            object: ObjectRef::from(&report.capability),
            files,
            bytes,
        }))
    })
}

/// The path of `names`.
pub(crate) fn path_of(names: &[String]) -> NsPath {
    let mut p = NsPath::root();
    for n in names {
        // Names in a tree were checked when they entered it.
        if let Ok(next) = p.join(n) {
            p = next;
        }
    }
    p
}
