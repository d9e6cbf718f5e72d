//! The `cairn` command line against a devnet: round trip, and one-line
//! errors with a non-zero exit for every kind of bad input.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

fn cairn(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CAIRN_CONFIG")
        .output()
        .unwrap()
}

#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn put_get_cat_stat_rm_and_every_kind_of_bad_input() {
    let net = TestNet::start(4);
    let config = net.config_file(2, 2);
    let (path, bytes) = net.file("cli.bin", 300_000, 21);

    let out = cairn(&config, &["--json", "put", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cap = json["files"][0]["capability"].as_str().unwrap().to_string();

    let dest = net.dir.path().join("back.bin");
    let out = cairn(&config, &["get", &cap, "-o", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&std::fs::read(&dest).unwrap(), &bytes, "cli get");
    // an existing output is not overwritten without --force
    let out = cairn(&config, &["get", &cap, "-o", dest.to_str().unwrap()]);
    fails_with(&out, "exists");

    let out = cairn(
        &config,
        &["cat", &cap, "--offset", "1000", "--length", "50"],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes[1000..1050]);

    let out = cairn(&config, &["--json", "stat", &cap]);
    let stat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stat["health"], "healthy");
    assert_eq!(stat["size_bytes"], 300_000);

    // malformed capability
    fails_with(
        &cairn(&config, &["get", "cairn:nonsense", "-o", "x"]),
        "invalid capability",
    );
    fails_with(&cairn(&config, &["stat", "hello"]), "invalid capability");
    // wrong key: the right manifest id with another key
    let (id, key) = cap.split_once('#').unwrap();
    let mut wrong = key.chars().collect::<Vec<_>>();
    wrong[5] = if wrong[5] == 'a' { 'b' } else { 'a' };
    let wrong = format!("{id}#{}", wrong.into_iter().collect::<String>());
    fails_with(&cairn(&config, &["stat", &wrong]), "wrong key");
    // a capability for a file nobody stores
    let other = format!(
        "cairn:{}#{key}",
        cairn_protocol::ContentId::of(b"a manifest nobody stored")
    );
    fails_with(
        &cairn(&config, &["stat", &other]),
        "no reachable node holds manifest",
    );
    // missing file
    fails_with(
        &cairn(&config, &["put", "/nonexistent/file"]),
        "/nonexistent/file",
    );
    // bad config
    let bad = net.dir.path().join("bad.toml");
    std::fs::write(&bad, "nodes = [\"/ip4/1.2.3.4/tcp/1\"]\n").unwrap();
    fails_with(&cairn(&bad, &["nodes"]), "nodes[0]");

    let out = cairn(&config, &["--json", "rm", &cap]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails_with(
        &cairn(&config, &["stat", &cap]),
        "no reachable node holds manifest",
    );
}

#[test]
fn an_unreachable_network_is_a_clear_error() {
    let net = TestNet::start(2);
    let config = net.config_file(1, 1);
    let (path, _) = net.file("x", 1000, 1);
    let mut devnet = net.devnet;
    devnet.kill(0).unwrap();
    devnet.kill(1).unwrap();
    let out = cairn(&config, &["put", path.to_str().unwrap()]);
    fails_with(&out, "run the same `cairn put` again");
    let out = cairn(&config, &["nodes"]);
    fails_with(&out, "no node is reachable");
    drop(net.dir);
}

#[test]
fn a_five_node_network_stores_with_the_strongest_code_it_allows() {
    let net = TestNet::start(5);
    // The default 10 + 20, which needs 30 nodes.
    let config = net.config_file(10, 20);
    let (path, bytes) = net.file("small-net.bin", 300_000, 5);

    let out = cairn(&config, &["put", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let note = "note: 5 storage nodes, fewer than the 30 that 10 data + 20 parity shards need: \
                storing each segment as 2 data + 3 parity shards";
    assert_eq!(err.matches(note).count(), 1, "said once: {err}");
    assert!(err.contains("2.5× the file's size"), "{err}");
    assert!(err.contains("k=2 n=5"), "{err}");
    let cap = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let dest = net.dir.path().join("small-net.back");
    let out = cairn(&config, &["get", &cap, "-o", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&std::fs::read(&dest).unwrap(), &bytes, "read back");

    // Explicit shard counts are taken as given: refused, the reason said once.
    let out = cairn(
        &config,
        &[
            "put",
            "--data-shards",
            "4",
            "--parity-shards",
            "4",
            path.to_str().unwrap(),
        ],
    );
    fails_with(
        &out,
        "5 storage nodes are too few for the 4 data + 4 parity shards",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("too few").count(), 1, "said once: {err}");
}
