//! The FUSE file system: kernel requests onto [`State`].
//!
//! Every request takes the one state lock and runs to its end on the
//! runtime (`Handle::block_on`); the session has one thread, so requests
//! are served in the order the kernel sends them.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_client::namespace::NsError;
use cairn_protocol::namespace::{Entry, EntryKind, NamespaceError, NsPath, Timestamp};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use super::state::State;

/// How long the kernel may trust an answer. Another device's commits
/// reach the tree through [`super::poll`], which also tells the kernel to
/// drop what it cached of the names that changed, so this bounds only how
/// stale an attribute of this mount's own making can be.
const TTL: Duration = Duration::from_secs(1);

/// The mounted file system.
pub struct CairnFs {
    state: Arc<Mutex<State>>,
    rt: Handle,
    uid: u32,
    gid: u32,
}

impl std::fmt::Debug for CairnFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CairnFs")
    }
}

/// The errno for a namespace error; what has no POSIX name is EIO, logged.
pub(crate) fn errno(e: &NsError) -> i32 {
    match e {
        NsError::NotFound(_) => libc::ENOENT,
        NsError::NotADirectory(_) => libc::ENOTDIR,
        NsError::IsADirectory(_) => libc::EISDIR,
        NsError::Exists(_) => libc::EEXIST,
        NsError::NotEmpty(_) => libc::ENOTEMPTY,
        NsError::IntoItself(_) => libc::EINVAL,
        NsError::Root(_) => libc::EPERM,
        NsError::Format(NamespaceError::Name { .. }) => libc::ENAMETOOLONG,
        NsError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        _ => {
            tracing::warn!("mount: {e}");
            libc::EIO
        }
    }
}

fn to_system(t: Timestamp) -> SystemTime {
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::new(t.secs.unsigned_abs(), t.nanos)
    } else {
        UNIX_EPOCH - Duration::new(t.secs.unsigned_abs(), 0) + Duration::new(0, t.nanos)
    }
}

fn from_system(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        },
        Err(e) => Timestamp {
            secs: -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        },
    }
}

fn time_of(t: TimeOrNow) -> Timestamp {
    match t {
        TimeOrNow::Now => Timestamp::now(),
        TimeOrNow::SpecificTime(s) => from_system(s),
    }
}

fn err(e: i32) -> Errno {
    Errno::from_i32(e)
}

/// The user the files appear to belong to: whoever runs the mount (the
/// namespace keeps no owners).
fn process_owner() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or((0, 0), |m| (m.uid(), m.gid()))
}

/// The child path `name` of inode `parent`.
fn child(st: &State, parent: INodeNo, name: &OsStr) -> Result<NsPath, i32> {
    let dir = st.inodes.path(parent.0).ok_or(libc::ENOENT)?;
    let name = name.to_str().ok_or(libc::EINVAL)?;
    dir.join(name).map_err(|_| libc::EINVAL)
}

impl CairnFs {
    pub(crate) fn new(state: Arc<Mutex<State>>, rt: Handle) -> Self {
        let (uid, gid) = process_owner();
        Self {
            state,
            rt,
            uid,
            gid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attr(&self, st: &State, ino: u64, entry: &Entry) -> FileAttr {
        let (kind, size, perm) = match &entry.kind {
            EntryKind::Dir(_) => (FileType::Directory, 0, entry.mode),
            EntryKind::Symlink(t) => (FileType::Symlink, t.len() as u64, 0o777),
            EntryKind::File { size, .. } => (
                FileType::RegularFile,
                st.cache.len(ino).unwrap_or(*size),
                entry.mode,
            ),
        };
        let t = to_system(st.mtime(ino, entry));
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm: (perm & 0o7777) as u16,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 128 * 1024,
            flags: 0,
        }
    }

    /// Answers an entry request for `path` once `make` succeeded.
    fn reply_entry(&self, st: &mut State, path: &NsPath, entry: Entry, reply: ReplyEntry) {
        let ino = st.inodes.ino(path);
        reply.entry(&TTL, &self.attr(st, ino, &entry), Generation(0));
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let mut st = self.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(err(e)),
        };
        match self.rt.block_on(st.remove(&path, dir)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }
}

impl Filesystem for CairnFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Fewer, larger requests: 1 MiB writes into the cache and 1 MiB
        // kernel read-ahead (the kernel keeps its own limits if lower).
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(err(e)),
        };
        match self.rt.block_on(st.ns.stat(&path)) {
            Ok(Some(entry)) => self.reply_entry(&mut st, &path, entry, reply),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(err(errno(&e))),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut st = self.lock();
        let Some(path) = st.inodes.path(ino.0).cloned() else {
            // Replaced or removed by another device while open: the
            // handle still reads what it opened.
            return match st.pinned.get(&ino.0) {
                Some(entry) => reply.attr(&TTL, &self.attr(&st, ino.0, entry)),
                None => reply.error(Errno::ENOENT),
            };
        };
        match self.rt.block_on(st.ns.stat(&path)) {
            Ok(Some(entry)) => reply.attr(&TTL, &self.attr(&st, ino.0, &entry)),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(err(errno(&e))),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The namespace keeps one time per entry: the modification time
        // (an atime-only change is accepted and not stored).
        let mut st = self.lock();
        match self
            .rt
            .block_on(st.setattr(ino.0, mode, size, mtime.map(time_of)))
        {
            Ok(entry) => reply.attr(&TTL, &self.attr(&st, ino.0, &entry)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let mut st = self.lock();
        let Some(path) = st.inodes.path(ino.0).cloned() else {
            return reply.error(Errno::ENOENT);
        };
        match self.rt.block_on(st.ns.stat(&path)) {
            Ok(Some(Entry {
                kind: EntryKind::Symlink(t),
                ..
            })) => reply.data(t.as_bytes()),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(err(errno(&e))),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(err(e)),
        };
        match self.rt.block_on(st.mkdir(&path, mode & !umask & 0o7777)) {
            Ok(entry) => self.reply_entry(&mut st, &path, entry, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, false, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, true, reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let mut st = self.lock();
        let path = match child(&st, parent, link_name) {
            Ok(p) => p,
            Err(e) => return reply.error(err(e)),
        };
        let Some(target) = target.to_str() else {
            return reply.error(Errno::EINVAL);
        };
        let entry = Entry {
            kind: EntryKind::Symlink(target.to_string()),
            mode: 0o777,
            mtime: Timestamp::now(),
        };
        match self.rt.block_on(st.create_entry(&path, entry.clone())) {
            Ok(()) => self.reply_entry(&mut st, &path, entry, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // RENAME_EXCHANGE / RENAME_NOREPLACE: callers fall back to plain rename.
            return reply.error(Errno::EINVAL);
        }
        let mut st = self.lock();
        let (from, to) = match (child(&st, parent, name), child(&st, newparent, newname)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(err(e)),
        };
        match self.rt.block_on(st.rename(&from, &to)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.lock();
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match self.rt.block_on(st.open(ino.0, write, truncate)) {
            Ok(()) => reply.opened(FileHandle(ino.0), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.lock();
        match self.rt.block_on(st.read(ino.0, offset, size)) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.lock();
        match st.write(ino.0, offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) acknowledges nothing durable; release and fsync do the work.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        match self.rt.block_on(st.release(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        match self.rt.block_on(st.fsync(Some(ino.0))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        match self.rt.block_on(st.fsync(None)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.lock();
        let Some(path) = st.inodes.path(ino.0).cloned() else {
            return reply.error(Errno::ENOENT);
        };
        let names: Vec<(String, FileType)> = match self.rt.block_on(st.ns.list(&path)) {
            Ok(dir) => dir
                .entries
                .iter()
                .map(|(n, e)| {
                    let kind = match e.kind {
                        EntryKind::Dir(_) => FileType::Directory,
                        EntryKind::Symlink(_) => FileType::Symlink,
                        EntryKind::File { .. } => FileType::RegularFile,
                    };
                    (n.clone(), kind)
                })
                .collect(),
            Err(e) => return reply.error(err(errno(&e))),
        };
        let parent_ino = path.parent().map_or(ino.0, |p| st.inodes.ino(&p));
        let mut all = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (parent_ino, FileType::Directory, "..".to_string()),
        ];
        for (name, kind) in names {
            let Ok(p) = path.join(&name) else { continue };
            all.push((st.inodes.ino(&p), kind, name));
        }
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child_ino, kind, name)) in all.into_iter().enumerate().skip(skip) {
            if reply.add(INodeNo(child_ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The network's free space is not one number; say "plenty" so
        // tools that check before copying go on.
        let blocks = 1u64 << 40;
        reply.statfs(blocks, blocks, blocks, 1 << 32, 1 << 32, 4096, 255, 4096);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.lock();
        let path = match child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(err(e)),
        };
        let ino = st.inodes.ino(&path);
        match self
            .rt
            .block_on(st.create_file(ino, &path, mode & !umask & 0o7777))
        {
            Ok(entry) => reply.created(
                &TTL,
                &self.attr(&st, ino, &entry),
                Generation(0),
                FileHandle(ino),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(err(e)),
        }
    }
}
