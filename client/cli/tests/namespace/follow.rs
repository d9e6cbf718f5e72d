//! Following another device's commits without reopening: a `Namespace`
//! kept open adopts a newer tree when it has nothing pending and keeps its
//! pending changes when it has; a running mount shows another device's
//! put, rm and mv within a bounded wait, a handle opened before a remote
//! rm reads on, and pending local writes merge at the next fsync.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_client::namespace::{chain_version, Namespace, Refresh};
use cairn_client::Client;
use cairn_protocol::namespace::{NsPath, Timestamp};

use crate::cli::{cairn, ok};
use crate::common::*;
use crate::mount::mount;

fn p(s: &str) -> NsPath {
    NsPath::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_namespace_adopts_a_newer_tree_only_when_nothing_is_pending() {
    let net = TestNet::start(5);
    let a = Client::open(net.config(2, 2)).await.unwrap();
    let b = Client::open(net.config(2, 2)).await.unwrap();
    let now = Timestamp::now();

    let mut on_a = Namespace::open(&a).await.unwrap();
    assert_eq!(
        on_a.refresh().await.unwrap(),
        Refresh::Current { version: 0 },
        "nothing committed yet"
    );

    // Device b commits; a, idle, adopts it and reads the new file.
    let mut on_b = Namespace::open(&b).await.unwrap();
    let bytes = content(30_000, 3);
    on_b.put_bytes(&p("/b/new.bin"), bytes.clone(), 0o644, now)
        .await
        .unwrap();
    on_b.put_bytes(&p("/old.txt"), b"old".to_vec(), 0o644, now)
        .await
        .unwrap();
    assert_eq!(on_b.commit().await.unwrap().version, 1);
    assert_eq!(chain_version(&a).await.unwrap(), 1);
    assert_eq!(
        on_a.refresh().await.unwrap(),
        Refresh::Adopted { from: 0, to: 1 }
    );
    assert_eq!(on_a.version(), 1);
    let entry = on_a.stat(&p("/b/new.bin")).await.unwrap().unwrap();
    assert_same(&on_a.read_all(&entry).await.unwrap(), &bytes, "adopted");
    assert_eq!(
        on_a.refresh().await.unwrap(),
        Refresh::Current { version: 1 }
    );

    // a has a change pending while b removes a file: a keeps its tree and
    // its change; its commit replays the change on top of b's.
    on_a.put_bytes(&p("/a.txt"), b"from a".to_vec(), 0o644, now)
        .await
        .unwrap();
    on_b.remove(&p("/old.txt"), false).await.unwrap();
    assert_eq!(on_b.commit().await.unwrap().version, 2);
    assert_eq!(
        on_a.refresh().await.unwrap(),
        Refresh::Pending {
            version: 1,
            chain: 2
        }
    );
    assert!(on_a.has_changes());
    assert!(
        on_a.stat(&p("/old.txt")).await.unwrap().is_some(),
        "a pending namespace keeps the tree it recorded against"
    );
    let report = on_a.commit().await.unwrap();
    assert_eq!((report.version, report.replays), (3, 1), "{report:?}");
    assert!(on_a.stat(&p("/old.txt")).await.unwrap().is_none());
    assert!(on_a.stat(&p("/a.txt")).await.unwrap().is_some());
    assert_eq!(
        on_b.refresh().await.unwrap(),
        Refresh::Adopted { from: 2, to: 3 }
    );
    let entry = on_b.stat(&p("/a.txt")).await.unwrap().unwrap();
    assert_eq!(on_b.read_all(&entry).await.unwrap(), b"from a");
}

fn status(config: &Path, home: &Path, cache: &Path) -> serde_json::Value {
    let out = ok(cairn(
        config,
        home,
        &[
            "--json",
            "mount",
            "--status",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    ));
    serde_json::from_str(&out).unwrap()
}

/// Polls `done` until it holds or `limit` passes; returns how long it took.
#[track_caller]
fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn a_running_mount_shows_another_devices_put_rm_and_mv() {
    let net = TestNet::start(5);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The `cairn` CLI on the same account is the other device: a process
    // with its own `Namespace`, committing while the mount runs.
    let c = |args: &[&str]| cairn(&config, &home, args);
    let work = net.dir.path();
    let local = work.join("local");
    std::fs::create_dir_all(local.join("dir")).unwrap();
    // Larger than the kernel reads ahead of the first read below, so the
    // rest is read through the mount after the remote rm.
    let doomed = content(3_000_000, 1);
    std::fs::write(local.join("doomed.bin"), &doomed).unwrap();
    std::fs::write(local.join("dir").join("moveme.txt"), b"moving").unwrap();
    ok(c(&[
        "put",
        local.join("doomed.bin").to_str().unwrap(),
        local.join("dir").to_str().unwrap(),
        "/",
    ]));

    let mnt = work.join("mnt");
    let cache = work.join("cache");
    // No background commits: what this mount writes stays pending until
    // its fsync, so the second half sees a pending mount.
    let m = mount(
        &config,
        &home,
        &mnt,
        &cache,
        &["--poll-interval", "1", "--commit-interval", "3600"],
    );
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(), ["dir", "doomed.bin"]);
    assert_eq!(
        std::fs::read(mnt.join("dir").join("moveme.txt")).unwrap(),
        b"moving"
    );
    // Open before the other device removes it: this handle reads on.
    let held = File::open(mnt.join("doomed.bin")).unwrap();
    let mut first = vec![0u8; 1000];
    held.read_exact_at(&mut first, 0).unwrap();
    assert_eq!(first, doomed[..1000]);
    let before = status(&config, &home, &cache);
    assert_eq!(before["version"], 1, "{before}");

    // The other device: put a new file, rm one, mv another.
    let fresh = content(1_500_000, 2);
    std::fs::write(local.join("fresh.bin"), &fresh).unwrap();
    ok(c(&["put", local.join("fresh.bin").to_str().unwrap(), "/"]));
    ok(c(&["rm", "/doomed.bin"]));
    ok(c(&["mv", "/dir/moveme.txt", "/moved.txt"]));
    let shown = within(
        Duration::from_secs(30),
        "the other device's commits",
        || {
            names() == ["dir", "fresh.bin", "moved.txt"]
                && !mnt.join("doomed.bin").exists()
                && !mnt.join("dir").join("moveme.txt").exists()
        },
    );
    eprintln!("the mount showed the other device's last commit after {shown:?}");
    assert_same(
        &std::fs::read(mnt.join("fresh.bin")).unwrap(),
        &fresh,
        "put elsewhere",
    );
    assert_eq!(std::fs::read(mnt.join("moved.txt")).unwrap(), b"moving");
    assert_eq!(
        std::fs::read_dir(mnt.join("dir")).unwrap().count(),
        0,
        "the moved file left its directory"
    );
    let err = std::fs::metadata(mnt.join("doomed.bin")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    // The handle opened before the rm still reads the file it opened.
    let mut rest = vec![0u8; doomed.len() - 1000];
    held.read_exact_at(&mut rest, 1000).unwrap();
    assert_same(
        &rest,
        &doomed[1000..],
        "read through a handle after a remote rm",
    );
    assert_eq!(held.metadata().unwrap().len(), doomed.len() as u64);
    drop(held);
    // The status file is written right after the swap the kernel saw.
    within(Duration::from_secs(10), "the status after the swap", || {
        status(&config, &home, &cache)["version"] == 4
    });
    let after = status(&config, &home, &cache);
    assert_eq!(after["chain_version"], 4, "{after}");
    assert!(after["refreshes"].as_u64().unwrap() >= 1, "{after}");
    assert!(after["checked"].as_u64().unwrap() > 0, "{after}");

    // Pending local writes: the mount does not adopt the other device's
    // next commit, and its fsync merges both.
    std::fs::write(mnt.join("mine.txt"), b"written in the mount").unwrap();
    std::fs::write(local.join("theirs.txt"), b"written elsewhere").unwrap();
    ok(c(&["put", local.join("theirs.txt").to_str().unwrap(), "/"]));
    within(
        Duration::from_secs(30),
        "the mount looking at the chain",
        || {
            let s = status(&config, &home, &cache);
            s["chain_version"] == 5 && s["pending_changes"] == 1
        },
    );
    let s = status(&config, &home, &cache);
    assert_eq!(s["version"], 4, "a pending mount keeps its tree: {s}");
    assert!(!mnt.join("theirs.txt").exists());
    File::open(mnt.join("mine.txt"))
        .unwrap()
        .sync_all()
        .unwrap();
    assert_eq!(
        std::fs::read(mnt.join("theirs.txt")).unwrap(),
        b"written elsewhere"
    );
    assert_eq!(
        std::fs::read(mnt.join("mine.txt")).unwrap(),
        b"written in the mount"
    );
    // The status file is rewritten at the next poll.
    within(
        Duration::from_secs(30),
        "the status after the merge",
        || {
            let s = status(&config, &home, &cache);
            s["version"] == 6 && s["chain_version"] == 6 && s["pending_changes"] == 0
        },
    );
    m.unmount();
    assert_eq!(
        ok(c(&["ls", "/"])),
        "dir/\nfresh.bin\nmine.txt\nmoved.txt\ntheirs.txt\n"
    );
}
