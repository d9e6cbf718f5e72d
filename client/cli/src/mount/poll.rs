//! Following other devices: every `--poll-interval` the mount asks the
//! chain for the account's namespace version, and when another device
//! published a newer tree and this mount has nothing pending
//! ([`State::idle`]), it adopts that tree (`Namespace::adopt`).
//!
//! The network reads (the chain's version, the new commit and the
//! directories the kernel knows names in) happen outside the state lock,
//! so file system requests go on meanwhile; the swap itself is done under
//! the lock with no I/O, and only if the mount is still idle at the
//! version it read from (a commit of its own in between wins; the next
//! round looks again). A mount with something pending does not adopt:
//! its next commit re-reads the newer tree and replays its batch on top
//! (`Namespace::commit`), which is the same tree plus its changes.
//!
//! What the swap does to what the kernel and the mount remember, for
//! every path that has an inode:
//!
//! * still there, same kind, a directory: keeps its inode (a shell's
//!   working directory stays valid); the kernel drops its attributes;
//! * a file or link whose entry changed, a path whose kind changed, or a
//!   path that vanished: the path loses its inode and the kernel drops
//!   the name, so the next lookup gets a fresh inode (no page cache or
//!   attributes of the old contents carry over) or `ENOENT`. A handle
//!   open on the old inode reads on from the entry it had ([`State::pinned`]),
//!   as a local file replaced by `rename` or unlinked while open does, and
//!   as rclone's handles read the object they opened;
//! * unchanged: nothing.
//!
//! Invalidations go to the kernel after the lock is released: the kernel
//! may wait on a request in the same directory, which waits for the lock.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::namespace::{chain_version, Head, NsError, Refresh};
use cairn_protocol::namespace::{Entry, EntryKind, NsPath, Timestamp};
use fuser::{INodeNo, Notifier};
use tokio::runtime::Handle;

use super::inodes::ROOT;
use super::state::State;
use super::{lock, write_status};

/// What the kernel is told to forget after a swap.
enum Forget {
    /// The name `name` in directory `parent`.
    Entry(u64, String),
    /// The attributes of `ino`.
    Attrs(u64),
}

/// Runs the poll on a thread of its own until `stop` is set.
pub(crate) fn spawn(
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    rt: Handle,
    interval: Duration,
    cache_dir: PathBuf,
    notifier: Notifier,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < interval {
                continue;
            }
            waited = Duration::ZERO;
            match poll_once(&state, &rt) {
                Ok(forget) => tell_kernel(&notifier, forget),
                Err(e) => {
                    tracing::warn!("looking for newer commits: {e}");
                    lock(&state).status.last_error = Some(e.to_string());
                }
            }
            write_status(&mut lock(&state), &cache_dir);
        }
    })
}

fn now() -> u64 {
    u64::try_from(Timestamp::now().secs).unwrap_or(0)
}

/// One look at the chain; adopts a newer tree if the mount is idle.
/// Returns what the kernel must forget.
fn poll_once(state: &Mutex<State>, rt: &Handle) -> Result<Vec<Forget>, NsError> {
    let (client, version) = {
        let st = lock(state);
        (st.client, st.ns.version())
    };
    // Asked even with something pending, so the status shows how far
    // behind the chain the mount is.
    let chain = rt.block_on(chain_version(client))?;
    let known = {
        let mut st = lock(state);
        st.status.checked = now();
        st.status.chain_version = chain;
        if chain <= version || !st.idle() {
            return Ok(Vec::new());
        }
        st.inodes.all()
    };
    // The directories holding every name the kernel knows, loaded now so
    // the swap can tell what changed without I/O under the lock.
    let parents: BTreeSet<NsPath> = known.iter().filter_map(|(_, p)| p.parent()).collect();
    let head = rt.block_on(async {
        let mut head = Head::read(client).await?;
        for dir in &parents {
            head.load(client, dir).await?;
        }
        Ok::<_, NsError>(head)
    })?;

    let mut st = lock(state);
    if !st.idle() || st.ns.version() != version {
        // A change or a commit of this mount's own came in meanwhile.
        return Ok(Vec::new());
    }
    // Paths looked up since `known` was taken are in the list too; those
    // whose directory `head` has not loaded count as unchanged (they load
    // from the new tree on their next request).
    let inodes = st.inodes.all();
    let changes: Vec<(u64, NsPath, Option<Entry>, Option<Entry>)> = inodes
        .into_iter()
        .filter(|(ino, _)| *ino != ROOT)
        .filter_map(|(ino, path)| {
            let parent = path.parent()?;
            if !parents.contains(&parent) {
                return None;
            }
            let old = st.ns.peek(&path);
            let new = head.peek(&path).cloned();
            (old != new).then_some((ino, path, old, new))
        })
        .collect();
    let to = match st.ns.adopt(head)? {
        Refresh::Adopted { to, .. } => to,
        Refresh::Current { .. } | Refresh::Pending { .. } => return Ok(Vec::new()),
    };
    st.status.refreshes += 1;
    let mut forget = vec![Forget::Attrs(ROOT)];
    for (ino, path, old, new) in changes {
        let (Some(parent), Some(name)) = (path.parent(), path.names().last()) else {
            continue;
        };
        let parent_ino = st.inodes.find(&parent);
        let stays_dir = matches!(
            (&old, &new),
            (
                Some(Entry {
                    kind: EntryKind::Dir(_),
                    ..
                }),
                Some(Entry {
                    kind: EntryKind::Dir(_),
                    ..
                })
            )
        );
        if stays_dir {
            forget.push(Forget::Attrs(ino));
            continue;
        }
        // Replaced or gone: the old inode leaves the path.
        if st.ahead.is_open(ino) {
            if let Some(old) = old {
                st.pinned.insert(ino, old);
            }
        }
        st.ahead.forget(ino);
        st.inodes.remove(&path);
        if let Some(parent_ino) = parent_ino {
            forget.push(Forget::Entry(parent_ino, name.clone()));
        }
    }
    tracing::info!(
        from = version,
        to,
        forgotten = forget.len(),
        "adopted another device's commit"
    );
    Ok(forget)
}

/// Tells the kernel to drop names and attributes. A name the kernel never
/// cached answers `ENOENT`, which is fine.
fn tell_kernel(notifier: &Notifier, forget: Vec<Forget>) {
    for f in forget {
        let done = match &f {
            Forget::Entry(parent, name) => notifier.inval_entry(INodeNo(*parent), OsStr::new(name)),
            Forget::Attrs(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
        };
        if let Err(e) = done {
            tracing::debug!("kernel invalidation: {e}");
        }
    }
}
