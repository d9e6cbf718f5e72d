//! Four `cairn-node --validator` processes on 127.0.0.1: they decide
//! blocks, commit a transaction, keep deciding with one SIGKILLed, catch it
//! up when it returns, stop with two down and resume when one returns, with
//! every validator holding the same block at every height.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_node::local_chain;
use cairn_protocol::chain::{Address, Allocation, Genesis, Transaction, TxBody};
use ed25519_dalek::SigningKey;

use crate::common::{init, TestNode};

fn user() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// Initializes four validators sharing one genesis file.
fn validators(root: &Path) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| init(root, &format!("v{i}"), "64MiB", &[]))
        .collect();
    local_chain::setup(root, &dirs, "proc-test", 300, |g| {
        g.allocations.push(Allocation {
            address: Address::of(&user().verifying_key()),
            amount: 1_000_000,
        })
    })
    .unwrap();
    dirs
}

fn height(node: &TestNode) -> u64 {
    let status: serde_json::Value = serde_json::from_str(&node.http_get("/chain/status")).unwrap();
    status["height"].as_u64().unwrap()
}

fn block_digest(node: &TestNode, h: u64) -> String {
    let block: serde_json::Value =
        serde_json::from_str(&node.http_get(&format!("/chain/block/{h}"))).unwrap();
    block["digest"].as_str().unwrap().to_string()
}

fn wait(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// POSTs `bytes` to /chain/tx; returns the status line.
/// The status line of the answer to `bytes` posted as a transaction.
fn post_raw(node: &TestNode, bytes: &[u8]) -> String {
    post_answer(node, bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The whole answer (status line, headers, body).
fn post_answer(node: &TestNode, bytes: &[u8]) -> String {
    let addr = node.info.http.as_ref().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /chain/tx HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    )
    .unwrap();
    // The server may answer (and close) before reading an oversized body.
    let _ = s.write_all(bytes);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn post_tx(node: &TestNode, bytes: &[u8]) {
    let status = post_raw(node, bytes);
    assert!(status.contains(" 202"), "{status}");
}

#[test]
fn four_validator_processes_decide_survive_kills_and_agree() {
    let root = tempfile::tempdir().unwrap();
    let dirs = validators(root.path());
    let mut nodes: Vec<Option<TestNode>> = dirs.iter().map(|d| Some(TestNode::start(d))).collect();
    let live =
        |nodes: &[Option<TestNode>]| -> Vec<u64> { nodes.iter().flatten().map(height).collect() };

    wait("height 5 on all four", 60, || {
        live(&nodes).iter().all(|h| *h >= 5)
    });

    // The same chain relaunched (same chain id, same validators, a fresh
    // genesis from a new dealing) has another genesis hash; a transaction
    // signed for it is refused here, as wrong_chain.
    let genesis: Genesis =
        serde_json::from_str(&std::fs::read_to_string(root.path().join("genesis.json")).unwrap())
            .unwrap();
    let served: serde_json::Value =
        serde_json::from_str(&nodes[0].as_ref().unwrap().http_get("/chain/status")).unwrap();
    assert_eq!(served["genesis_hash"], genesis.hash().to_string());
    let relaunch = tempfile::tempdir().unwrap();
    let relaunched: Genesis = {
        let again = validators(relaunch.path());
        assert_eq!(again.len(), 4);
        serde_json::from_str(
            &std::fs::read_to_string(relaunch.path().join("genesis.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(relaunched.chain_id, genesis.chain_id);
    assert_ne!(relaunched.hash(), genesis.hash());
    let key = user();
    let foreign = Transaction {
        genesis: relaunched.hash(),
        signer: Address::of(&key.verifying_key()),
        nonce: 0,
        fee: 1,
        body: TxBody::Faucet { amount: 777 },
    }
    .sign(&key);
    let answer = post_answer(nodes[0].as_ref().unwrap(), &foreign.encode());
    assert!(
        answer.contains(" 400") && answer.contains("wrong_chain"),
        "{answer}"
    );

    // A faucet transaction submitted to one validator is committed by all.
    let tx = Transaction {
        genesis: genesis.hash(),
        signer: Address::of(&key.verifying_key()),
        nonce: 0,
        fee: 1,
        body: TxBody::Faucet { amount: 777 },
    }
    .sign(&key);
    post_tx(nodes[0].as_ref().unwrap(), &tx.encode());
    let account = format!("/chain/account/{}", Address::of(&key.verifying_key()));
    wait("the faucet transaction on all four", 60, || {
        nodes.iter().flatten().all(|n| {
            let v: serde_json::Value = serde_json::from_str(&n.http_get(&account)).unwrap();
            v["balance"].as_u64() == Some(1_000_000 + 777 - 1)
        })
    });

    // Hostile submissions: random bytes, truncated and bit-flipped
    // transactions, an oversized body. Each is refused with a 4xx and the
    // validator keeps deciding.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good = tx.encode();
    for i in 0..120 {
        let bytes: Vec<u8> = match i % 4 {
            0 => (0..next() % 400).map(|_| next() as u8).collect(),
            1 => good[..(next() as usize % good.len())].to_vec(),
            2 => {
                let mut b = good.clone();
                let at = next() as usize % b.len();
                b[at] ^= 1 << (next() % 8);
                b
            }
            _ => vec![0xff; 70 * 1024],
        };
        let status = post_raw(nodes[0].as_ref().unwrap(), &bytes);
        assert!(
            status.contains(" 400") || status.contains(" 413") || status.contains(" 202"),
            "unexpected answer to hostile bytes: {status}"
        );
    }
    let h = live(&nodes)[0];
    wait("progress after hostile submissions", 60, || {
        live(&nodes).iter().all(|x| *x >= h + 3)
    });

    // One SIGKILLed: the other three keep deciding.
    nodes[3].as_mut().unwrap().kill();
    nodes[3] = None;
    let h = live(&nodes)[0];
    wait("progress with one validator down", 60, || {
        live(&nodes).iter().all(|x| *x >= h + 5)
    });

    // It restarts and catches up.
    nodes[3] = Some(TestNode::start(&dirs[3]));
    let h = live(&nodes)[0];
    wait("the restarted validator catching up", 90, || {
        height(nodes[3].as_ref().unwrap()) >= h
    });

    // Two down: no quorum, no progress.
    for i in [2, 3] {
        nodes[i].as_mut().unwrap().kill();
        nodes[i] = None;
    }
    std::thread::sleep(Duration::from_secs(3));
    let stalled = live(&nodes);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(live(&nodes), stalled, "blocks decided without a quorum");

    // One returns: progress resumes.
    nodes[2] = Some(TestNode::start(&dirs[2]));
    let top = *stalled.iter().max().unwrap();
    wait("progress once a quorum is back", 90, || {
        live(&nodes).iter().all(|x| *x >= top + 3)
    });

    // No fork: every live validator has the same block at every height up
    // to the lowest head.
    let low = *live(&nodes).iter().min().unwrap();
    for h in 1..=low {
        let digests: Vec<String> = nodes.iter().flatten().map(|n| block_digest(n, h)).collect();
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "validators disagree at height {h}: {digests:?}"
        );
    }
    for n in nodes.iter_mut().flatten() {
        n.kill();
    }
}

/// A validator whose consensus port is taken refuses to start, saying so,
/// instead of serving shards with consensus silently dead.
#[test]
fn a_validator_whose_port_is_taken_does_not_start() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "v", "64MiB", &[]);
    let chain =
        local_chain::setup(root.path(), std::slice::from_ref(&dir), "busy", 300, |_| {}).unwrap();
    let _squatter = std::net::TcpListener::bind(chain.peers[0].1).unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chain.listen {}", chain.peers[0].1)),
        "{stderr}"
    );
}

/// A validator whose threshold share is missing or readable by others
/// refuses to start, naming the file and what to do.
#[test]
fn a_validator_without_its_share_does_not_start() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "v", "64MiB", &[]);
    local_chain::setup(
        root.path(),
        std::slice::from_ref(&dir),
        "noshare",
        300,
        |_| {},
    )
    .unwrap();
    let share = dir.join("validator.share");
    let run = || {
        let out = std::process::Command::new(crate::common::BIN)
            .args(["run", "--config"])
            .arg(dir.join("config.toml"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o640)).unwrap();
    let stderr = run();
    assert!(
        stderr.contains("validator.share") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::remove_file(&share).unwrap();
    let stderr = run();
    assert!(
        stderr.contains("validator.share") && stderr.contains("missing"),
        "{stderr}"
    );
}
