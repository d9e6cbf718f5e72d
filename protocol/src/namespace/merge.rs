//! What a writer that lost the compare-and-swap race does with its changes.
//!
//! A writer records each change with what it saw at the path before
//! making it (the *base*). When another writer published first, it reads
//! the new tree and replays its changes on it one by one, each against
//! what the path holds *now* (the *current* entry). The rules never drop
//! another writer's update silently:
//!
//! * a **put** whose path still holds what the writer saw (or is still
//!   empty) replaces it; one whose path now holds something else, which
//!   the writer never saw, is kept *beside* it under a conflict name
//!   ([`conflict_name`]), as Dropbox keeps a "conflicted copy";
//! * a **mkdir** is done unless a directory is already there;
//! * a **remove** removes only what the writer saw: if the path changed
//!   since, the newer entry stays;
//! * a **move** moves what the source holds now (another writer's later
//!   edits move along) and then lands like a put.

use super::directory::{check_name, Entry, MAX_NAME_LEN};

/// A change to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Create or replace a file, a link or a directory with this entry.
    Put(&'a Entry),
    /// Create an empty directory.
    Mkdir,
    /// Remove the entry.
    Remove,
}

/// How to replay a change on the current tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebased {
    /// Do it as recorded.
    Apply,
    /// Nothing to do: already done, or it would drop an update this writer
    /// never saw.
    Skip,
    /// Do it under [`conflict_name`] instead, beside the other writer's entry.
    KeepBoth,
}

/// The rule for `change` at a path that held `base` when the change was
/// made and holds `current` now.
pub fn rebase(change: Change<'_>, base: Option<&Entry>, current: Option<&Entry>) -> Rebased {
    match change {
        Change::Put(ours) => {
            if current == Some(ours) {
                Rebased::Skip
            } else if current == base || current.is_none() {
                Rebased::Apply
            } else {
                Rebased::KeepBoth
            }
        }
        Change::Mkdir => match current {
            None => Rebased::Apply,
            Some(e) if e.is_dir() => Rebased::Skip,
            Some(_) => Rebased::KeepBoth,
        },
        Change::Remove => {
            if current.is_some() && current == base {
                Rebased::Apply
            } else {
                Rebased::Skip
            }
        }
    }
}

/// The source of a move: what to move now, if anything. A source that is
/// gone, or turned from a directory into a file (or back), is not moved.
pub fn rebase_move<'a>(base: Option<&Entry>, current: Option<&'a Entry>) -> Option<&'a Entry> {
    match (base, current) {
        (Some(b), Some(c)) if b.is_dir() == c.is_dir() => Some(c),
        _ => None,
    }
}

/// `name` with ` (conflict TAG)` before its extension, shortened to fit
/// [`MAX_NAME_LEN`]: `report.txt` → `report (conflict 3f2a).txt`.
pub fn conflict_name(name: &str, tag: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    let suffix = format!(" (conflict {tag})");
    let room = MAX_NAME_LEN.saturating_sub(suffix.len() + ext.len());
    let mut stem: String = stem.to_string();
    while stem.len() > room {
        stem.pop();
    }
    let out = format!("{stem}{suffix}{ext}");
    if check_name(&out).is_ok() {
        out
    } else {
        format!("conflict {tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::directory::{EntryKind, FileData, Timestamp};

    fn file(b: &[u8]) -> Entry {
        Entry {
            kind: EntryKind::File {
                size: b.len() as u64,
                data: FileData::Inline(b.to_vec()),
            },
            mode: 0o644,
            mtime: Timestamp::default(),
        }
    }

    fn dir() -> Entry {
        Entry {
            kind: EntryKind::Dir(crate::namespace::DirRef {
                object: crate::namespace::ObjectRef {
                    manifest: [1; 32],
                    key: [2; 32],
                },
                files: 0,
                bytes: 0,
            }),
            mode: 0o755,
            mtime: Timestamp::default(),
        }
    }

    #[test]
    fn no_update_is_dropped() {
        let (a, b, c) = (file(b"a"), file(b"b"), file(b"c"));
        // Put: unchanged path → apply; changed → keep both; same → skip.
        assert_eq!(rebase(Change::Put(&b), Some(&a), Some(&a)), Rebased::Apply);
        assert_eq!(rebase(Change::Put(&b), None, None), Rebased::Apply);
        assert_eq!(rebase(Change::Put(&b), Some(&a), None), Rebased::Apply);
        assert_eq!(
            rebase(Change::Put(&b), Some(&a), Some(&c)),
            Rebased::KeepBoth
        );
        assert_eq!(rebase(Change::Put(&b), None, Some(&c)), Rebased::KeepBoth);
        assert_eq!(rebase(Change::Put(&b), None, Some(&b)), Rebased::Skip);
        // Remove only what was seen.
        assert_eq!(rebase(Change::Remove, Some(&a), Some(&a)), Rebased::Apply);
        assert_eq!(rebase(Change::Remove, Some(&a), Some(&c)), Rebased::Skip);
        assert_eq!(rebase(Change::Remove, Some(&a), None), Rebased::Skip);
        // Mkdir.
        assert_eq!(rebase(Change::Mkdir, None, None), Rebased::Apply);
        assert_eq!(rebase(Change::Mkdir, None, Some(&dir())), Rebased::Skip);
        assert_eq!(rebase(Change::Mkdir, None, Some(&a)), Rebased::KeepBoth);
        // Move takes the current source.
        assert_eq!(rebase_move(Some(&a), Some(&c)), Some(&c));
        assert_eq!(rebase_move(Some(&a), None), None);
        assert_eq!(rebase_move(Some(&a), Some(&dir())), None);
    }

    #[test]
    fn conflict_names_keep_the_extension_and_fit() {
        assert_eq!(
            conflict_name("report.txt", "3f2a"),
            "report (conflict 3f2a).txt"
        );
        assert_eq!(conflict_name(".bashrc", "1"), ".bashrc (conflict 1)");
        assert_eq!(conflict_name("x", "1"), "x (conflict 1)");
        let long = format!("{}.tar.gz", "é".repeat(126));
        let out = conflict_name(&long, "ab");
        assert!(out.len() <= MAX_NAME_LEN && out.ends_with(" (conflict ab).gz"));
        check_name(&out).unwrap();
    }
}
