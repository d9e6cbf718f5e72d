//! Changes: recorded with what their paths held, applied to the tree, and
//! replayed on a newer tree after a lost compare-and-swap.

use cairn_protocol::namespace::directory::MODE_MASK;
use cairn_protocol::namespace::merge::{conflict_name, rebase_move};
use cairn_protocol::namespace::{rebase, Change, Entry, EntryKind, NsPath, Rebased, Timestamp};

use super::tree::{new_dir_entry, DirState};
use super::{Namespace, NsError};

/// One change to the tree.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Create or replace a file or link (parents are created).
    Put { path: NsPath, entry: Entry },
    /// Create a directory (parents are created).
    Mkdir { path: NsPath },
    /// Remove an entry (a directory with everything in it).
    Remove { path: NsPath },
    /// Move an entry.
    Move { from: NsPath, to: NsPath },
    /// Set an entry's permission bits and time (the last writer's win).
    Meta {
        path: NsPath,
        mode: u32,
        mtime: Timestamp,
    },
}

/// What the paths of a change held when it was first applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bases {
    pub at: Option<Entry>,
    pub to: Option<Entry>,
}

/// A change and its bases.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub op: Op,
    pub bases: Bases,
}

fn split(path: &NsPath) -> Result<(&[String], &str), NsError> {
    match path.names().split_last() {
        Some((name, parent)) => Ok((parent, name.as_str())),
        None => Err(NsError::Root("changed this way")),
    }
}

impl Namespace<'_> {
    /// Applies `op`. First time (`recorded` is `None`): checks it as a
    /// command would and returns what its paths held. Replayed: follows
    /// the merge rules against what the paths hold now.
    pub(crate) async fn apply(
        &mut self,
        op: &Op,
        recorded: Option<&Bases>,
    ) -> Result<Bases, NsError> {
        let client = self.client;
        match op {
            Op::Put { path, entry } => {
                let (parent, name) = split(path)?;
                self.tree.make_dirs(client, parent).await?;
                let current = self.tree.entry(path).cloned();
                let rule = match recorded {
                    None => {
                        if current.as_ref().is_some_and(Entry::is_dir) {
                            return Err(NsError::IsADirectory(path.clone()));
                        }
                        Rebased::Apply
                    }
                    Some(b) => rebase(Change::Put(entry), b.at.as_ref(), current.as_ref()),
                };
                self.land(parent, name, entry.clone(), None, rule)?;
                Ok(Bases {
                    at: current,
                    to: None,
                })
            }
            Op::Mkdir { path } => {
                let (parent, name) = split(path)?;
                self.tree.make_dirs(client, parent).await?;
                let current = self.tree.entry(path).cloned();
                let rule = match recorded {
                    None if current.is_some() => return Err(NsError::Exists(path.clone())),
                    None => Rebased::Apply,
                    Some(_) => rebase(Change::Mkdir, None, current.as_ref()),
                };
                let fresh = DirState {
                    dirty: true,
                    ..DirState::default()
                };
                self.land(parent, name, new_dir_entry(0o755), Some(fresh), rule)?;
                Ok(Bases {
                    at: current,
                    to: None,
                })
            }
            Op::Remove { path } => {
                let (parent, name) = split(path)?;
                self.tree.load(client, parent).await?;
                let current = self.tree.entry(path).cloned();
                let rule = match recorded {
                    None if current.is_none() => return Err(NsError::NotFound(path.clone())),
                    None => Rebased::Apply,
                    Some(b) => rebase(Change::Remove, b.at.as_ref(), current.as_ref()),
                };
                if rule == Rebased::Apply {
                    self.tree.take(parent, name);
                }
                Ok(Bases {
                    at: current,
                    to: None,
                })
            }
            Op::Move { from, to } => {
                let (from_parent, from_name) = split(from)?;
                let (to_parent, to_name) = split(to)?;
                if to.starts_with(from) {
                    return Err(NsError::IntoItself(from.clone()));
                }
                self.tree.load(client, from_parent).await?;
                let current_from = self.tree.entry(from).cloned();
                self.tree.make_dirs(client, to_parent).await?;
                let current_to = self.tree.entry(to).cloned();
                let rule = match recorded {
                    None => {
                        if current_from.is_none() {
                            return Err(NsError::NotFound(from.clone()));
                        }
                        if current_to.as_ref().is_some_and(Entry::is_dir) {
                            return Err(NsError::Exists(to.clone()));
                        }
                        Rebased::Apply
                    }
                    Some(b) => match rebase_move(b.at.as_ref(), current_from.as_ref()) {
                        None => Rebased::Skip,
                        Some(src) => {
                            let rule = rebase(Change::Put(src), b.to.as_ref(), current_to.as_ref());
                            // A directory never replaces what is there.
                            match (rule, &current_to) {
                                (Rebased::Apply, Some(t)) if t.is_dir() || src.is_dir() => {
                                    Rebased::KeepBoth
                                }
                                (r, _) => r,
                            }
                        }
                    },
                };
                if rule != Rebased::Skip {
                    if let Some((entry, child)) = self.tree.take(from_parent, from_name) {
                        self.land(to_parent, to_name, entry, child, rule)?;
                    }
                }
                Ok(Bases {
                    at: current_from,
                    to: current_to,
                })
            }
            Op::Meta { path, mode, mtime } => {
                let (parent, name) = split(path)?;
                self.tree.load(client, parent).await?;
                let current = self.tree.entry(path).cloned();
                match (&current, recorded) {
                    (None, None) => return Err(NsError::NotFound(path.clone())),
                    // Removed meanwhile: nothing to set.
                    (None, Some(_)) => {}
                    (Some(e), _) => {
                        let mut e = e.clone();
                        e.mode = mode & MODE_MASK;
                        e.mtime = *mtime;
                        let child = self
                            .tree
                            .dir_mut(parent)
                            .and_then(|d| d.children.remove(name));
                        self.tree.set(parent, name, e, child)?;
                    }
                }
                Ok(Bases {
                    at: current,
                    to: None,
                })
            }
        }
    }

    /// Sets `name` (or its conflict name) in `parent` per `rule`.
    fn land(
        &mut self,
        parent: &[String],
        name: &str,
        entry: Entry,
        child: Option<DirState>,
        rule: Rebased,
    ) -> Result<(), NsError> {
        match rule {
            Rebased::Skip => Ok(()),
            Rebased::Apply => self.tree.set(parent, name, entry, child),
            Rebased::KeepBoth => {
                let mut alt = conflict_name(name, &self.tag);
                let mut n = 2;
                while self
                    .tree
                    .dir(parent)
                    .is_some_and(|d| d.dir.entries.contains_key(&alt))
                {
                    alt = conflict_name(name, &format!("{}-{n}", self.tag));
                    n += 1;
                }
                self.tree.set(parent, &alt, entry, child)
            }
        }
    }

    /// Replays every recorded change on the current tree.
    pub(crate) async fn replay(&mut self) -> Result<(), NsError> {
        // Replaying records nothing new: the log stays as it is.
        for r in self.log.clone() {
            self.apply(&r.op, Some(&r.bases)).await?;
        }
        Ok(())
    }

    /// Creates a directory; with `parents`, an existing one is fine and
    /// missing parents are made.
    pub async fn mkdir(&mut self, path: &NsPath, parents: bool) -> Result<(), NsError> {
        if path.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(NsError::Exists(path.clone()))
            };
        }
        let existing = self.stat(path).await?;
        match existing {
            Some(e) if e.is_dir() && parents => Ok(()),
            Some(_) => Err(NsError::Exists(path.clone())),
            None => {
                if !parents {
                    let parent = path.parent().unwrap_or_default();
                    match self.stat(&parent).await? {
                        Some(e) if e.is_dir() => {}
                        Some(_) => return Err(NsError::NotADirectory(parent)),
                        None => return Err(NsError::NotFound(parent)),
                    }
                }
                self.record(Op::Mkdir { path: path.clone() }).await
            }
        }
    }

    /// Removes a file or link; a directory only if empty or `recursive`.
    pub async fn remove(&mut self, path: &NsPath, recursive: bool) -> Result<(), NsError> {
        let entry = self
            .stat(path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        if path.is_root() {
            return Err(NsError::Root("removed"));
        }
        if entry.is_dir() && !recursive && !self.list(path).await?.entries.is_empty() {
            return Err(NsError::NotEmpty(path.clone()));
        }
        self.record(Op::Remove { path: path.clone() }).await
    }

    /// Moves `from` to `to`; onto an existing directory, into it (as `mv`).
    pub async fn rename(&mut self, from: &NsPath, to: &NsPath) -> Result<NsPath, NsError> {
        if from.is_root() {
            return Err(NsError::Root("moved"));
        }
        let mut to = to.clone();
        if let Some(e) = self.stat(&to).await? {
            if e.is_dir() && &to != from {
                let name = from.name().unwrap_or_default();
                to = to.join(name)?;
            }
        }
        if &to == from {
            return Ok(to);
        }
        self.record(Op::Move {
            from: from.clone(),
            to: to.clone(),
        })
        .await?;
        Ok(to)
    }

    /// Moves `from` to exactly `to` (POSIX `rename`: an existing file at
    /// `to` is replaced, an existing empty directory too).
    pub async fn rename_exact(&mut self, from: &NsPath, to: &NsPath) -> Result<(), NsError> {
        if from.is_root() || to.is_root() {
            return Err(NsError::Root("moved"));
        }
        if from == to {
            return Ok(());
        }
        let src = self
            .stat(from)
            .await?
            .ok_or_else(|| NsError::NotFound(from.clone()))?;
        if let Some(dst) = self.stat(to).await? {
            match (src.is_dir(), dst.is_dir()) {
                (true, true) => self.remove(to, false).await?,
                (false, true) => return Err(NsError::IsADirectory(to.clone())),
                (true, false) => return Err(NsError::NotADirectory(to.clone())),
                (false, false) => {}
            }
        }
        self.record(Op::Move {
            from: from.clone(),
            to: to.clone(),
        })
        .await
    }

    /// Sets the permission bits and modification time of `path`.
    pub async fn set_meta(
        &mut self,
        path: &NsPath,
        mode: u32,
        mtime: Timestamp,
    ) -> Result<(), NsError> {
        if path.is_root() {
            return Err(NsError::Root("changed this way"));
        }
        self.record(Op::Meta {
            path: path.clone(),
            mode,
            mtime,
        })
        .await
    }

    /// Creates or replaces the file or link at `path` with `entry`.
    pub async fn put_entry(&mut self, path: &NsPath, entry: Entry) -> Result<(), NsError> {
        if matches!(entry.kind, EntryKind::Dir(_)) {
            return Err(NsError::IsADirectory(path.clone()));
        }
        self.record(Op::Put {
            path: path.clone(),
            entry,
        })
        .await
    }
}
