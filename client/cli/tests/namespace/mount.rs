//! `cairn mount` as a real FUSE mount on a devnet: ordinary tools and
//! std::fs write into it, a random-operation run is checked against a
//! model file, fsync is durable before it returns, the tree is the same
//! after unmount and remount, a shared directory mounts read-only, a
//! SIGKILLed mount loses nothing fsync acknowledged, and a fresh HOME with
//! the phrase alone mounts what was committed.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::keys;
use cairn_protocol::keys::RecoveryPhrase;
use rand::{Rng, SeedableRng};

use crate::cli::{cairn, make_tree, ok, other_home, same_tree, NAMES, TINY};
use crate::common::*;

/// Whether `dir` is a mount point now.
fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir))
}

/// A running `cairn mount`.
pub(crate) struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
}

pub(crate) fn mount(
    config: &Path,
    home: &Path,
    dir: &Path,
    cache: &Path,
    extra: &[&str],
) -> Mounted {
    std::fs::create_dir_all(dir).unwrap();
    let log = cache.with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(config)
        .arg("mount")
        .arg(dir)
        .arg("--cache-dir")
        .arg(cache)
        .args(if extra.contains(&"--commit-interval") {
            &[][..]
        } else {
            &["--commit-interval", "1"][..]
        })
        .args(extra)
        .env_remove("CAIRN_CONFIG")
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut m = Mounted {
        child: Some(child),
        dir: dir.to_path_buf(),
        log,
    };
    let start = Instant::now();
    while !is_mounted(dir) {
        let exited = m.child.as_mut().unwrap().try_wait().unwrap();
        assert!(
            exited.is_none() && start.elapsed() < Duration::from_secs(60),
            "the mount did not come up ({exited:?}): {}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    m
}

impl Mounted {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: the mount unmounts, commits what is left and exits 0.
    pub(crate) fn unmount(mut self) {
        let mut child = self.child.take().unwrap();
        run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
        let status = child.wait().unwrap();
        assert!(status.success(), "mount exited {status}: {}", self.log());
        assert!(!is_mounted(&self.dir));
    }
}

impl Mounted {
    /// SIGKILL: nothing is flushed; the kernel's mount is left dead and
    /// lazily detached, as after a crash.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        run(Command::new("fusermount3").arg("-uz").arg(&self.dir));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .status();
        }
    }
}

#[track_caller]
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tree beside [`make_tree`]'s: many files of mixed sizes, some deep.
fn many_files(root: &Path, n: usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for i in 0..n {
        let dir = root
            .join(format!("d{}", i % 7))
            .join(format!("e{}", i % 3))
            .join(format!("f{}", i % 5));
        std::fs::create_dir_all(&dir).unwrap();
        let len = match i % 100 {
            0..=9 => 0,
            10..=79 => rng.gen_range(1..8192),
            80..=97 => rng.gen_range(8192..200_000),
            _ => rng.gen_range(1_100_000..1_600_000),
        };
        std::fs::write(dir.join(format!("f{i}-ä.bin")), content(len, i as u64)).unwrap();
    }
}

/// Thousands of writes at random offsets, truncates, appends, reopens and
/// reads on one file in the mount, compared with a model in memory.
fn random_operations(path: &Path, seed: u64, ops: usize) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut model: Vec<u8> = Vec::new();
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    };
    let mut f = open();
    for op in 0..ops {
        match rng.gen_range(0..100) {
            0..=44 => {
                let at = rng.gen_range(0..=model.len() + 4096);
                let len = rng.gen_range(1..20_000);
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                f.write_all_at(&bytes, at as u64).unwrap();
                if model.len() < at + len {
                    model.resize(at + len, 0);
                }
                model[at..at + len].copy_from_slice(&bytes);
            }
            45..=54 => {
                let len = rng.gen_range(0..=model.len() + 10_000);
                f.set_len(len as u64).unwrap();
                model.resize(len, 0);
            }
            55..=64 => {
                let bytes: Vec<u8> = (0..rng.gen_range(1..5000)).map(|_| rng.gen()).collect();
                f.seek(SeekFrom::End(0)).unwrap();
                f.write_all(&bytes).unwrap();
                model.extend_from_slice(&bytes);
            }
            65..=69 => {
                // Close (the file goes into the batch) and open again.
                drop(f);
                f = open();
            }
            _ => {
                let at = rng.gen_range(0..=model.len());
                let len = rng.gen_range(0..50_000).min(model.len() - at);
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, at as u64).unwrap();
                assert!(buf == model[at..at + len], "op {op}: read at {at}+{len}");
            }
        }
    }
    f.sync_all().unwrap();
    drop(f);
    assert_same(&std::fs::read(path).unwrap(), &model, "the model file");
    model
}

#[test]
fn mount_read_write_tools_remount_and_read_only_share() {
    let net = TestNet::start(5);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let c = |args: &[&str]| cairn(&config, &home, args);
    let work = net.dir.path();
    let src = work.join("src");
    make_tree(&src);
    many_files(&src.join("many"), 1000);
    let mnt = work.join("mnt");
    let cache = work.join("cache");

    let m = mount(&config, &home, &mnt, &cache, &[]);
    // Ordinary tools: cp -a in, rsync finds no difference.
    run(Command::new("cp").arg("-a").arg(&src).arg(mnt.join("tree")));
    same_tree(&src, &mnt.join("tree"));
    let rsync = Command::new("rsync")
        .args(["-a", "--checksum", "--dry-run", "--itemize-changes"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", mnt.join("tree").display()))
        .output()
        .unwrap();
    assert!(rsync.status.success(), "{rsync:?}");
    assert_eq!(
        String::from_utf8_lossy(&rsync.stdout),
        "",
        "rsync differences"
    );

    // std::fs: the POSIX calls an editor or a build makes.
    let notes = mnt.join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("draft.txt"), b"first").unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .open(notes.join("draft.txt"))
        .unwrap();
    f.write_all(b" second").unwrap();
    drop(f);
    std::fs::rename(notes.join("draft.txt"), notes.join("final.txt")).unwrap();
    std::fs::set_permissions(
        notes.join("final.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("final.txt", notes.join("latest")).unwrap();
    std::fs::create_dir(notes.join("gone")).unwrap();
    std::fs::remove_dir(notes.join("gone")).unwrap();
    std::fs::write(notes.join("tmp"), b"x").unwrap();
    std::fs::remove_file(notes.join("tmp")).unwrap();
    assert_eq!(
        std::fs::read(notes.join("latest")).unwrap(),
        b"first second"
    );
    let model = random_operations(&mnt.join("model.bin"), 42, 2000);

    // The status file shows the mount and its commits.
    let status: serde_json::Value = serde_json::from_str(&ok(c(&[
        "--json",
        "mount",
        "--status",
        "--cache-dir",
        cache.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(status["mountpoint"], mnt.to_str().unwrap());
    assert!(status["staged"].as_u64().unwrap() > 1000, "{status}");

    // fsync returns once the commit is in the network: another process
    // reads it while the mount still runs.
    let mut synced = File::create(mnt.join("synced.bin")).unwrap();
    let synced_bytes = content(700_000, 9);
    synced.write_all(&synced_bytes).unwrap();
    synced.sync_all().unwrap();
    drop(synced);
    let read_out = work.join("synced.out");
    ok(c(&["get", "/synced.bin", "-o", read_out.to_str().unwrap()]));
    assert_same(&std::fs::read(&read_out).unwrap(), &synced_bytes, "fsynced");

    // tar in (an archive written into the mount) and out (of the mount).
    run(Command::new("tar")
        .arg("-cf")
        .arg(mnt.join("src.tar"))
        .arg("-C")
        .arg(&src)
        .arg("."));
    let untar = work.join("untar-in");
    std::fs::create_dir(&untar).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(mnt.join("src.tar"))
        .arg("-C")
        .arg(&untar));
    same_tree(&src, &untar);
    let tar_out = work.join("out.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar_out)
        .arg("-C")
        .arg(mnt.join("tree"))
        .arg("."));
    let untar = work.join("untar-out");
    std::fs::create_dir(&untar).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar_out)
        .arg("-C")
        .arg(&untar));
    same_tree(&src, &untar);

    // git: init, commit, fsck inside the mount.
    let repo = mnt.join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args);
        cmd
    };
    run(&mut git(&["init", "-q"]));
    std::fs::write(repo.join("README"), b"hello\n").unwrap();
    run(&mut git(&["add", "README"]));
    run(&mut git(&["commit", "-q", "-m", "first"]));
    run(&mut git(&["fsck", "--strict"]));
    m.unmount();

    // Outside the mount, and mounted again: the same.
    let listing = ok(c(&["ls", "/"]));
    for name in [
        "model.bin",
        "notes/",
        "repo/",
        "src.tar",
        "synced.bin",
        "tree/",
    ] {
        assert!(listing.lines().any(|l| l == name), "{name} in {listing}");
    }
    let m = mount(&config, &home, &mnt, &cache, &[]);
    same_tree(&src, &mnt.join("tree"));
    assert_same(
        &std::fs::read(mnt.join("model.bin")).unwrap(),
        &model,
        "model",
    );
    assert_eq!(
        std::fs::read(notes.join("final.txt")).unwrap(),
        b"first second"
    );
    let mode = std::fs::metadata(notes.join("final.txt")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600);
    run(&mut git(&["fsck", "--strict"]));
    let head = git(&["log", "--format=%s"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout), "first\n");
    m.unmount();

    // A shared directory on another account: readable, never writable.
    let cap = ok(c(&["share", &format!("/tree/{}", NAMES[0])]));
    let (friend_home, friend) = other_home(&net, "friend");
    keys::create(
        &friend_home.join("account.key"),
        &RecoveryPhrase::generate(),
        false,
    )
    .unwrap();
    let shared = work.join("shared");
    let m = mount(
        &friend,
        &friend_home,
        &shared,
        &work.join("friend-cache"),
        &["--cap", cap.trim()],
    );
    assert_eq!(std::fs::read(shared.join(NAMES[1])).unwrap(), TINY);
    same_tree(&src.join(NAMES[0]), &shared);
    let refused = std::fs::write(shared.join("new.txt"), b"no");
    let code = refused.unwrap_err().raw_os_error();
    assert!(
        code == Some(libc::EROFS) || code == Some(libc::EACCES),
        "writing a share: {code:?}"
    );
    let refused = std::fs::remove_file(shared.join(NAMES[1])).unwrap_err();
    assert!(matches!(
        refused.raw_os_error(),
        Some(libc::EROFS) | Some(libc::EACCES)
    ));
    m.unmount();
}

#[test]
fn sigkill_keeps_what_fsync_acknowledged_and_nothing_half() {
    let net = TestNet::start(4);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = net.dir.path();
    let (mnt, cache) = (work.join("mnt"), work.join("cache"));
    // No background commits: only fsync and the crash records count.
    let slow = ["--commit-interval", "3600"];

    let m = mount(&config, &home, &mnt, &cache, &slow);
    let synced = content(300_000, 1);
    let mut f = File::create(mnt.join("synced.bin")).unwrap();
    f.write_all(&synced).unwrap();
    f.sync_all().unwrap();
    // Written and closed after the fsync: in the cache, not committed.
    let closed = content(2_000_000, 2);
    std::fs::write(mnt.join("closed.bin"), &closed).unwrap();
    let small = b"a small closed file".to_vec();
    std::fs::write(mnt.join("small.txt"), &small).unwrap();
    // Still open, half written, when the process dies.
    let mut open = File::create(mnt.join("open.bin")).unwrap();
    open.write_all(&content(100_000, 3)).unwrap();
    // The fsynced file rewritten, not synced again.
    std::fs::write(mnt.join("synced.bin"), b"newer").unwrap();
    m.kill();
    drop(open);

    let m = mount(&config, &home, &mnt, &cache, &slow);
    assert_same(
        &std::fs::read(mnt.join("closed.bin")).unwrap(),
        &closed,
        "closed",
    );
    assert_eq!(std::fs::read(mnt.join("small.txt")).unwrap(), small);
    let now = std::fs::read(mnt.join("synced.bin")).unwrap();
    assert!(
        now == synced || now == b"newer",
        "the fsynced file is whole: {} bytes",
        now.len()
    );
    // The open file is not there, or whole; never a part.
    match std::fs::read(mnt.join("open.bin")) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        Ok(b) => assert!(
            b.is_empty() || b == content(100_000, 3),
            "{} bytes",
            b.len()
        ),
    }
    m.unmount();
    // What the remount recovered is committed: a fresh HOME with the
    // phrase alone mounts it.
    let phrase = keys::load(&net.config(2, 2).key_file)
        .unwrap()
        .phrase()
        .words();
    let (new_home, restored) = other_home(&net, "restored");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["keys", "restore", "--config"])
        .arg(&restored)
        .env("HOME", &new_home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{phrase}\n").as_bytes())
        .unwrap();
    ok(child.wait_with_output().unwrap());
    let fresh = work.join("fresh-mnt");
    let m = mount(&restored, &new_home, &fresh, &new_home.join("cache"), &[]);
    assert_same(
        &std::fs::read(fresh.join("closed.bin")).unwrap(),
        &closed,
        "restored",
    );
    assert_eq!(std::fs::read(fresh.join("small.txt")).unwrap(), small);
    m.unmount();
}

/// Bytes of local disk the files in a mount's cache use.
fn cache_use(cache: &Path) -> u64 {
    std::fs::read_dir(cache.join("files"))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

#[test]
fn a_file_larger_than_the_cache_is_uploaded_while_written_within_the_bound() {
    let net = TestNet::start(4);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = net.dir.path();
    let (mnt, cache) = (work.join("mnt"), work.join("cache"));
    const MAX: u64 = 8 << 20;
    let m = mount(
        &config,
        &home,
        &mnt,
        &cache,
        &["--cache-max", "8MiB", "--commit-interval", "3600"],
    );
    // Five times the cache, written in order as `dd` does.
    let big = content(40 << 20, 11);
    let mut f = File::create(mnt.join("big.bin")).unwrap();
    let mut most = 0;
    for chunk in big.chunks(1 << 20) {
        f.write_all(chunk).unwrap();
        most = most.max(cache_use(&cache));
    }
    f.sync_all().unwrap();
    drop(f);
    // A write may land before room is made for the next one: one write
    // (1 MiB) and a page of rounding above the bound, never a file's worth.
    assert!(
        most <= MAX + (1 << 20) + 4096,
        "the cache held {most} bytes, bound {MAX}"
    );
    assert_same(
        &std::fs::read(mnt.join("big.bin")).unwrap(),
        &big,
        "read back through the mount",
    );
    // Rewritten in the middle while its upload runs (it fits the cache, so
    // nothing left the disk): the stream is dropped, the file is uploaded
    // at close from the cache, and it is correct after remount.
    let mut changed = big[..6 << 20].to_vec();
    changed[5 << 20..(5 << 20) + 7].copy_from_slice(b"changed");
    let mut f = File::create(mnt.join("again.bin")).unwrap();
    f.write_all(&big[..6 << 20]).unwrap();
    f.write_all_at(b"changed", 5 << 20).unwrap();
    drop(f);
    m.unmount();
    let m = mount(&config, &home, &mnt, &cache, &[]);
    assert_same(
        &std::fs::read(mnt.join("big.bin")).unwrap(),
        &big,
        "after remount",
    );
    assert_same(
        &std::fs::read(mnt.join("again.bin")).unwrap(),
        &changed,
        "rewritten after streaming",
    );
    m.unmount();
}

/// `len` bytes of `path` at `offset`, through a handle of its own (a new
/// open drops the kernel's cached pages, so the read reaches the mount).
fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

#[test]
fn bytes_that_left_the_cache_read_back_before_close_and_read_ahead_reads_true() {
    let net = TestNet::start(4);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = net.dir.path();
    let (mnt, cache) = (work.join("mnt"), work.join("cache"));
    let m = mount(
        &config,
        &home,
        &mnt,
        &cache,
        &[
            "--cache-max",
            "8MiB",
            "--commit-interval",
            "3600",
            "--read-ahead",
            "4MiB",
        ],
    );
    let big = content(36 << 20, 21);
    let path = mnt.join("open.bin");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(&big[..24 << 20]).unwrap();
    // Three times the cache written: the first bytes are only on the
    // nodes now, and read back while the file is still open.
    assert!(cache_use(&cache) <= (9 << 20) + 4096);
    assert_same(&read_at(&path, 0, 4096), &big[..4096], "the first page");
    assert_same(
        &read_at(&path, 5 << 20, 1 << 20),
        &big[5 << 20..6 << 20],
        "a MiB that left the cache",
    );
    assert_same(&read_at(&path, 0, 24 << 20), &big[..24 << 20], "all of it");
    // Written on: uploaded again from the start (what left the disk read
    // back from the nodes), and readable again, early and late bytes.
    f.write_all(&big[24 << 20..30 << 20]).unwrap();
    assert_same(
        &read_at(&path, 100, 1000),
        &big[100..1100],
        "early, written on",
    );
    assert_same(
        &read_at(&path, 20 << 20, 8 << 20),
        &big[20 << 20..28 << 20],
        "late, written on",
    );
    // fsync, then append: the same.
    f.sync_all().unwrap();
    assert_same(
        &read_at(&path, 1 << 20, 4096),
        &big[1 << 20..(1 << 20) + 4096],
        "after fsync",
    );
    f.write_all(&big[30 << 20..]).unwrap();
    drop(f);
    assert_same(&std::fs::read(&path).unwrap(), &big, "closed");

    // Read ahead: in order, then random seeks, then in order from the
    // middle, all byte for byte.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let check = |what: &str, rng: &mut rand::rngs::StdRng| {
        assert_same(&std::fs::read(&path).unwrap(), &big, what);
        let f = File::open(&path).unwrap();
        for _ in 0..40 {
            let at = rng.gen_range(0..big.len());
            let len = rng.gen_range(1..3 << 20).min(big.len() - at);
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, at as u64).unwrap();
            assert_same(&buf, &big[at..at + len], &format!("{what}: {len} at {at}"));
        }
        let mut tail = Vec::new();
        let mut g = File::open(&path).unwrap();
        g.seek(SeekFrom::Start(17 << 20)).unwrap();
        std::io::Read::read_to_end(&mut g, &mut tail).unwrap();
        assert_same(&tail, &big[17 << 20..], &format!("{what}: from the middle"));
    };
    check("committed", &mut rng);
    m.unmount();
    let m = mount(&config, &home, &mnt, &cache, &["--read-ahead", "4MiB"]);
    check("after remount", &mut rng);
    m.unmount();
}
