//! `cairn mount DIR`: the namespace as a read-write FUSE file system.
//!
//! Reads of files nobody is writing are range reads from the network.
//! A file opened for writing is copied into the write-back cache on local
//! disk ([`cache`]), written there, and put into the namespace batch when
//! its last handle closes (small files inline or packed, large ones
//! uploaded on their own, as `cairn put`; a file written from its start
//! in order is uploaded while it is written, [`stream`]). The batch is committed
//! (`Namespace::commit`) every
//! `commit_interval`, on `fsync`, and at unmount; `fsync` returns only
//! once the commit is published on the chain, so what it acknowledged is
//! durable in the network. Directory listings come from the tree loaded in
//! memory and change with it. SIGTERM and ctrl-c unmount and flush. A mount
//! that finds files a crashed one closed but had not committed puts them
//! back first. The cache is bounded by `cache_max` bytes of local disk:
//! a writer waits while streamed bytes leave it, and once closed files
//! waiting for a commit hold more, closing one more commits. Every
//! `poll_interval` the mount asks the chain whether another device of the
//! account committed, and adopts that tree when nothing is pending here
//! ([`poll`]).
//!
//! | module | holds |
//! |---|---|
//! | [`fs`] | the `fuser` file system: kernel requests onto [`state`] |
//! | [`state`] | the batch, inodes and cache, and what each request does to them |
//! | [`cache`] | the write-back cache on local disk and its crash records |
//! | [`inodes`] | inode numbers for paths |
//! | [`poll`] | following other devices' commits while mounted |
//! | [`readahead`] | range reads fetched ahead of a reader that reads in order |
//! | [`status`] | the status file `cairn mount status` reads |
//! | [`stream`] | a file uploaded while it is written |

pub mod cache;
pub mod fs;
pub mod inodes;
mod poll;
pub mod readahead;
pub(crate) mod state;
pub mod status;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cache::Cache;
use cairn_client::namespace::{Namespace, NsError};
use cairn_client::Client;
use cairn_protocol::namespace::{DirCapability, NsPath, Timestamp};
use inodes::Inodes;
use state::State;
use status::Status;

/// How a mount behaves.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// The write-back cache and the status file (one mount at a time).
    pub cache_dir: PathBuf,
    /// Closed files are committed at least this often.
    pub commit_interval: Duration,
    /// Bytes of closed, uncommitted files the cache may hold.
    pub cache_max: u64,
    /// Mount this shared directory, read-only, instead of the account's tree.
    pub share: Option<DirCapability>,
    /// Bytes of file contents fetched ahead of readers that read in order
    /// (held or in flight, over all files); 0: none.
    pub read_ahead: u64,
    /// How often to look for other devices' commits; zero: never (the
    /// tree is the one read at mount time, plus this mount's commits).
    pub poll_interval: Duration,
}

/// What a mount did, at unmount.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MountReport {
    pub version: u64,
    pub commits: u64,
    /// Files a crashed mount had left, recovered at start.
    pub recovered: usize,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_status(state: &mut State, cache_dir: &Path) {
    state.status.version = state.ns.version();
    state.status.pending_changes = usize::from(state.ns.has_changes());
    state.status.cached_files = state.cache.inodes().len();
    state.status.cached_bytes = state.cache.bytes();
    state.status.updated = u64::try_from(Timestamp::now().secs).unwrap_or(0);
    if let Err(e) = state.status.write(cache_dir) {
        tracing::warn!("cannot write the mount status: {e}");
    }
}

/// Puts back the files a crashed mount had closed but not committed, and
/// commits them. Returns how many.
async fn recover(
    state: &mut State,
    leftovers: &[(PathBuf, cache::Record)],
) -> Result<usize, NsError> {
    for (data, record) in leftovers {
        let path = NsPath::parse(&record.path)?;
        let mtime = Timestamp {
            secs: record.secs,
            nanos: record.nanos,
        };
        match &record.object {
            Some(object) => {
                let (cap, placement) = object.parse().ok_or_else(|| {
                    NsError::Refused(format!("a damaged cache record for {}", record.path))
                })?;
                state
                    .ns
                    .put_replayed(&path, &cap, object.size, &placement, record.mode, mtime)
                    .await?;
            }
            None => {
                state.ns.put_local(data, &path, record.mode, mtime).await?;
            }
        }
    }
    state.commit().await?;
    Ok(leftovers.len())
}

/// Mounts the namespace at `mountpoint` until unmounted (SIGTERM, ctrl-c,
/// or `fusermount3 -u`), then commits what is left. Blocks; must not run
/// inside the runtime `rt` belongs to.
pub fn run(
    client: Client,
    mountpoint: &Path,
    options: MountOptions,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<MountReport> {
    // The file system lives as long as the process.
    let client: &'static Client = Box::leak(Box::new(client));
    let read_only = options.share.is_some();
    let ns = match &options.share {
        Some(cap) => rt.block_on(Namespace::open_shared(client, cap))?,
        None => rt.block_on(Namespace::open(client))?,
    };
    let cache = Cache::open(&options.cache_dir)
        .with_context(|| format!("cannot use the cache {}", options.cache_dir.display()))?;
    let leftovers = if read_only {
        Vec::new()
    } else {
        cache
            .leftovers()
            .context("cannot read the write-back cache")?
    };
    let mut state = State {
        ns,
        client,
        rt: rt.handle().clone(),
        inodes: Inodes::default(),
        cache,
        read_only,
        cache_max: options.cache_max,
        status: Status {
            mountpoint: mountpoint.display().to_string(),
            pid: std::process::id(),
            ..Status::default()
        },
        times: Default::default(),
        ahead: readahead::ReadAhead::new(options.read_ahead, rt.handle().clone()),
        pinned: Default::default(),
    };
    state.status.version = state.ns.version();
    let recovered = if leftovers.is_empty() {
        0
    } else {
        let n = rt
            .block_on(recover(&mut state, &leftovers))
            .context("putting back the files a crashed mount left")?;
        for (data, _) in &leftovers {
            let _ = std::fs::remove_file(data.with_extension("json"));
            let _ = std::fs::remove_file(data);
        }
        tracing::info!(recovered = n, "recovered files a crashed mount had closed");
        n
    };
    write_status(&mut state, &options.cache_dir);
    let state = Arc::new(Mutex::new(state));

    let fs = fs::CairnFs::new(state.clone(), rt.handle().clone());
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("cairn".into()),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if read_only {
        config.mount_options.push(fuser::MountOption::RO);
    }
    let mut session = fuser::Session::new(fs, mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();
    let notifier = session.notifier();

    // SIGTERM or ctrl-c: unmount, which ends `session.run()` below.
    rt.spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("no SIGTERM handler: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        if let Err(e) = unmounter.unmount() {
            tracing::warn!("unmount: {e}");
        }
    });

    // Background commits of closed files.
    let stop = Arc::new(AtomicBool::new(false));
    let committer = {
        let (state, stop, rt) = (state.clone(), stop.clone(), rt.handle().clone());
        let (interval, cache_dir) = (options.commit_interval, options.cache_dir.clone());
        std::thread::spawn(move || {
            let tick = Duration::from_millis(200);
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                waited += tick;
                if waited < interval {
                    continue;
                }
                waited = Duration::ZERO;
                let mut st = lock(&state);
                if let Err(e) = rt.block_on(st.commit()) {
                    tracing::warn!("background commit: {e}");
                }
                write_status(&mut st, &cache_dir);
            }
        })
    };

    // Other devices' commits (a shared directory is a snapshot: none).
    let poller = (!read_only && !options.poll_interval.is_zero()).then(|| {
        poll::spawn(
            state.clone(),
            stop.clone(),
            rt.handle().clone(),
            options.poll_interval,
            options.cache_dir.clone(),
            notifier,
        )
    });

    let ran = session.run();
    stop.store(true, Ordering::Relaxed);
    let _ = committer.join();
    if let Some(poller) = poller {
        let _ = poller.join();
    }
    ran.context("the FUSE session failed")?;

    let mut st = lock(&state);
    rt.block_on(async {
        st.stage_all().await.map_err(|errno| {
            anyhow::anyhow!(
                "putting the cached files into the tree at unmount: {}",
                std::io::Error::from_raw_os_error(errno)
            )
        })?;
        st.commit().await?;
        anyhow::Ok(())
    })?;
    write_status(&mut st, &options.cache_dir);
    Ok(MountReport {
        version: st.status.version,
        commits: st.status.commits,
        recovered,
    })
}
