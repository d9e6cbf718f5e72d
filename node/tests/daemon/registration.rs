//! Storage nodes register themselves on the chain: four validator
//! processes (each registering through its own API) and one storage node
//! registering through validator 0's API end up as five node records with
//! the right peer ids, capacities and runtime addresses; the storage node
//! restarted on new ports updates its record (`UpdateNode`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_node::local_chain;

use crate::common::{init, wait_until, TestNode, BIN};

/// `cairn-node id --json`: (peer id, chain address).
fn identity(dir: &Path) -> (String, String) {
    let out = Command::new(BIN)
        .args(["id", "--json", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["peer_id"].as_str().unwrap().to_string(),
        v["chain_address"].as_str().unwrap().to_string(),
    )
}

/// The node's runtime listen addresses without their `/p2p/` suffix.
fn runtime_addresses(node: &TestNode) -> BTreeSet<String> {
    node.info
        .listen
        .iter()
        .map(|a| a.split("/p2p/").next().unwrap().to_string())
        .collect()
}

/// The node records on `validator`, by chain address.
fn records(validator: &TestNode) -> serde_json::Map<String, serde_json::Value> {
    let list: serde_json::Value =
        serde_json::from_str(&validator.http_get("/chain/nodes")).unwrap();
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["address"].as_str().unwrap().to_string(), n.clone()))
        .collect()
}

/// Whether `records` holds `node` with its peer id, capacity and current
/// addresses.
fn registered(
    records: &serde_json::Map<String, serde_json::Value>,
    node: &TestNode,
    (peer_id, address): &(String, String),
    capacity: u64,
) -> bool {
    let Some(r) = records.get(address) else {
        return false;
    };
    let addresses: BTreeSet<String> = r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    r["peer_id"].as_str() == Some(peer_id.as_str())
        && r["capacity"].as_u64() == Some(capacity)
        && addresses == runtime_addresses(node)
}

#[test]
fn validators_and_a_storage_node_register_and_a_restart_updates_the_record() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| init(root.path(), &format!("v{i}"), "64MiB", &[]))
        .collect();
    local_chain::setup(root.path(), &dirs, "reg-test", 300, |_| {}).unwrap();
    let validators: Vec<TestNode> = dirs.iter().map(|d| TestNode::start(d)).collect();

    let storage_dir = init(root.path(), "s", "48MiB", &[]);
    let api = validators[0].info.http.clone().unwrap();
    let config = storage_dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[chain]\napi = [\"http://{api}\"]\n"));
    std::fs::write(&config, text).unwrap();
    let mut storage = TestNode::start(&storage_dir);
    let ids: Vec<(String, String)> = dirs.iter().map(|d| identity(d)).collect();
    let storage_id = identity(&storage_dir);

    // Read from a validator other than the one the storage node talks to.
    wait_until(40, "five registered nodes", || {
        let r = records(&validators[1]);
        r.len() == 5
            && validators
                .iter()
                .zip(&ids)
                .all(|(v, id)| registered(&r, v, id, 64 << 20))
            && registered(&r, &storage, &storage_id, 48 << 20)
    });
    // A record on chain is seen by the node itself only once its wait for
    // the transaction (polling) returns.
    wait_until(10, "the nodes to report themselves registered", || {
        storage.status()["registration"] == "registered"
            && storage.metric("cairn_node_chain_registered") == 1.0
            && validators[2].status()["registration"] == "registered"
    });

    // Restarted on new port-0 ports: the record follows.
    let before = runtime_addresses(&storage);
    assert!(storage.terminate(), "the storage node did not stop cleanly");
    let storage = TestNode::start(&storage_dir);
    assert_ne!(runtime_addresses(&storage), before, "same ports again");
    wait_until(
        30,
        "the storage node's record to have its new addresses",
        || registered(&records(&validators[3]), &storage, &storage_id, 48 << 20),
    );
    assert_eq!(records(&validators[0]).len(), 5);
    let log = storage.log();
    assert!(log.contains("updating the node's chain record"), "{log}");
}
