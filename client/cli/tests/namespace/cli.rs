//! `cairn` on paths: put a tree, list, read, change, share with another
//! account, restore on a fresh HOME from the phrase alone; and no name or
//! content on any node's disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cairn_client::config::ClientConfig;
use cairn_client::keys;
use cairn_protocol::keys::RecoveryPhrase;

use crate::common::*;

pub fn cairn(config: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CAIRN_CONFIG")
        .env("HOME", home)
        .output()
        .unwrap()
}

#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A second home: a config for the same devnet with its own key file.
pub fn other_home(net: &TestNet, name: &str) -> (PathBuf, PathBuf) {
    let home = net.dir.path().join(name);
    std::fs::create_dir_all(&home).unwrap();
    let mut config = net.config(2, 2);
    config.key_file = home.join("account.key");
    config.state_dir = home.join("state");
    let path = home.join("client.toml");
    config.write(&path).unwrap();
    (home, path)
}

pub fn same_tree(a: &Path, b: &Path) {
    let meta = std::fs::symlink_metadata(a).unwrap();
    if meta.file_type().is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap()
        );
    } else if meta.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(a), names(b), "{}", a.display());
        for n in names(a) {
            same_tree(&a.join(&n), &b.join(&n));
        }
    } else {
        assert_same(
            &std::fs::read(b).unwrap(),
            &std::fs::read(a).unwrap(),
            &a.display().to_string(),
        );
    }
}

/// Markers that must never appear on a node's disk.
pub const NAMES: [&str; 4] = [
    "secret-docs-7f3a",
    "tiny-7f3a.txt",
    "leaf-7f3a.txt",
    "名前-ü-7f3a.txt",
];
pub const TINY: &[u8] = b"tiny content 9c1e5 that is inline in its directory";

pub fn make_tree(root: &Path) -> (PathBuf, Vec<u8>) {
    let docs = root.join(NAMES[0]);
    std::fs::create_dir_all(docs.join("deep/a/b/c")).unwrap();
    std::fs::write(docs.join(NAMES[1]), TINY).unwrap();
    let mid = content(200_000, 1);
    std::fs::write(docs.join("mid.bin"), &mid).unwrap();
    std::fs::write(docs.join("big.bin"), content(1_300_000, 2)).unwrap();
    std::fs::write(docs.join("empty"), b"").unwrap();
    std::fs::write(docs.join(NAMES[3]), b"non-ascii name").unwrap();
    std::fs::write(docs.join("deep/a/b/c").join(NAMES[2]), b"leaf").unwrap();
    std::os::unix::fs::symlink(NAMES[1], docs.join("link")).unwrap();
    (docs, mid)
}

#[test]
fn paths_share_restore_and_nothing_readable_on_nodes() {
    let net = TestNet::start(5);
    let config = net.config_file(2, 2);
    let home = net.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let c = |args: &[&str]| cairn(&config, &home, args);
    let (docs, mid) = make_tree(&net.dir.path().join("src"));
    let d = format!("/{}", NAMES[0]);

    ok(c(&["put", docs.to_str().unwrap(), "/"]));
    assert_eq!(ok(c(&["ls", "/"])), format!("{}/\n", NAMES[0]));
    let long = ok(c(&["ls", "-l", &d]));
    assert!(
        long.contains("-rw-") && long.contains(" 1300000 "),
        "{long}"
    );
    assert!(long.contains(&format!("link -> {}", NAMES[1])), "{long}");
    assert!(long.contains(NAMES[3]), "{long}");
    assert!(ok(c(&["tree", "/"])).contains(NAMES[2]));
    let du: serde_json::Value = serde_json::from_str(&ok(c(&["--json", "du", &d]))).unwrap();
    assert_eq!(du["files"], 7);
    assert_eq!(du["bytes"], TINY.len() + 200_000 + 1_300_000 + 14 + 4);
    assert_eq!(
        ok(c(&["cat", &format!("{d}/{}", NAMES[1])])).as_bytes(),
        TINY
    );

    let out = net.dir.path().join("out");
    ok(c(&["get", &d, "-o", out.to_str().unwrap()]));
    same_tree(&docs, &out);

    // Change it: mkdir, mv, rm (a non-empty directory needs -r).
    ok(c(&["mkdir", "/new"]));
    ok(c(&["mv", &format!("{d}/mid.bin"), "/new"]));
    assert_eq!(ok(c(&["ls", "/new"])), "mid.bin\n");
    let refused = c(&["rm", &format!("{d}/deep")]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    ok(c(&["rm", "-r", &format!("{d}/deep")]));
    let listing = ok(c(&["ls", &d]));
    assert!(
        !listing.contains("deep") && !listing.contains("mid.bin"),
        "{listing}"
    );
    // Capability commands still work beside the paths.
    let file_cap = ok(c(&["share", &format!("{d}/big.bin")]));
    assert!(file_cap.starts_with("cairn:"));
    let big_back = net.dir.path().join("big.back");
    ok(c(&[
        "get",
        file_cap.trim(),
        "-o",
        big_back.to_str().unwrap(),
    ]));
    assert_same(
        &std::fs::read(&big_back).unwrap(),
        &std::fs::read(docs.join("big.bin")).unwrap(),
        "big by capability",
    );

    // Another account reads a shared directory, and only that.
    let dir_cap = ok(c(&["share", &d]));
    assert!(dir_cap.starts_with("cairn-dir:"), "{dir_cap}");
    let (friend_home, friend) = other_home(&net, "friend");
    keys::create(
        &friend_home.join("account.key"),
        &RecoveryPhrase::generate(),
        false,
    )
    .unwrap();
    let f = |args: &[&str]| cairn(&friend, &friend_home, args);
    let shared = ok(f(&["ls", dir_cap.trim()]));
    assert!(
        shared.contains(NAMES[1]) && !shared.contains("deep"),
        "{shared}"
    );
    let friend_out = net.dir.path().join("friend-out");
    ok(f(&[
        "get",
        dir_cap.trim(),
        "-o",
        friend_out.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(friend_out.join(NAMES[1])).unwrap(), TINY);
    assert_eq!(
        ok(f(&["ls", "/"])),
        "",
        "the friend's own namespace is empty"
    );

    // A fresh HOME and the phrase alone show everything committed.
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
    let r = |args: &[&str]| cairn(&restored, &new_home, args);
    assert_eq!(ok(r(&["ls", "/"])), format!("new/\n{}/\n", NAMES[0]));
    let mid_back = new_home.join("mid");
    ok(r(&[
        "get",
        "/new/mid.bin",
        "-o",
        mid_back.to_str().unwrap(),
    ]));
    assert_same(&std::fs::read(&mid_back).unwrap(), &mid, "restored mid");
    let _ = ClientConfig::load(&restored).unwrap();

    // No node's data directory holds a name or a plaintext byte string.
    let mut needles: Vec<Vec<u8>> = NAMES.iter().map(|n| n.as_bytes().to_vec()).collect();
    needles.push(TINY.to_vec());
    needles.push(mid[1000..1064].to_vec());
    needles.push(b"non-ascii name".to_vec());
    for i in 0..net.devnet.nodes().len() {
        for file in files_under(&net.devnet.node_dir(i)) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for needle in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} contains {:?}",
                    file.display(),
                    String::from_utf8_lossy(needle)
                );
            }
        }
    }
}
