//! Partitions, latency and loss between hosts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::net::{
    assert_same, block_on, finish, json_of, wait_for, Net, NetOptions, COMMAND_LIMIT,
};

fn height(net: &Net, i: usize) -> Option<u64> {
    block_on(net.chain(i).status()).ok().map(|s| s.height)
}

#[test]
fn a_partitioned_validator_stops_deciding_and_catches_up_without_a_fork() {
    let Some(net) = Net::start(NetOptions {
        nodes: 4,
        validators: 4,
        rate_mbit: None,
        bulk: true,
    }) else {
        return;
    };
    net.relay.impairment.set(Duration::from_millis(5), 0.0);
    let majority = [0, 1, 2];
    let minority = 3;
    wait_for(Duration::from_secs(90), "every validator decides", || {
        (0..4)
            .all(|i| height(&net, i).is_some_and(|h| h >= 3))
            .then_some(())
    });

    net.lab.partition(minority);
    // Certificates already on their way when the link went down may still
    // land; after that the minority can decide nothing (3 of 4 must vote).
    std::thread::sleep(Duration::from_secs(3));
    let cut = height(&net, minority).expect("the minority's API answers from inside its host");
    let goal = cut + 5;
    wait_for(Duration::from_secs(90), "the majority decides on", || {
        majority
            .iter()
            .all(|&i| height(&net, i).is_some_and(|h| h >= goal))
            .then_some(())
    });
    eprintln!("partitioned at height {cut}; the majority reached {goal}");
    assert_eq!(
        height(&net, minority),
        Some(cut),
        "the partitioned validator decided blocks on its own"
    );

    net.lab.heal(minority);
    let tip = majority
        .iter()
        .filter_map(|&i| height(&net, i))
        .max()
        .unwrap();
    wait_for(
        Duration::from_secs(120),
        "the healed validator catches up",
        || {
            height(&net, minority)
                .is_some_and(|h| h >= tip)
                .then_some(())
        },
    );

    // One chain: every validator has the same block at every height.
    let mut digests: BTreeMap<u64, String> = BTreeMap::new();
    for i in 0..4 {
        let chain = net.chain(i);
        for h in 1..=tip {
            let block = block_on(chain.block(h))
                .unwrap_or_else(|e| panic!("validator {i} block {h}: {e}"))
                .unwrap_or_else(|| panic!("validator {i} has no block {h}"));
            let known = digests.entry(h).or_insert_with(|| block.digest.clone());
            assert_eq!(*known, block.digest, "validator {i} forked at height {h}");
        }
    }
    assert_eq!(digests.len() as u64, tip);
    eprintln!("healed: 4 validators agree on blocks 1..={tip}");
}

#[test]
fn upload_and_download_across_latency_and_loss_are_exact() {
    // Shards over QUIC (the relay passes neither the bulk port nor
    // libp2p's TCP): datagrams are what the relay can lose.
    let Some(net) = Net::start(NetOptions {
        nodes: 5,
        validators: 4,
        rate_mbit: None,
        bulk: false,
    }) else {
        return;
    };
    // 25 ms each way through the relay: 50 ms RTT; 1 % of datagrams lost
    // each way.
    net.relay.impairment.set(Duration::from_millis(25), 0.01);
    let config = net.client_config(3, 2);
    let (path, bytes) = net.file("lossy.bin", 8 << 20, 21);
    let put = json_of(&net.cairn(&config, &["put", path.to_str().unwrap(), "--json"]));
    let cap = put["files"][0]["capability"]
        .as_str()
        .unwrap_or_else(|| panic!("no capability: {put}"))
        .to_string();
    // The shards went through the relay (n/k = 5/3 times the file).
    let relayed = net.relay.impairment.relayed();
    assert!(
        relayed > bytes.len() as u64 * 5 / 3,
        "only {relayed} bytes went through the relay"
    );
    assert!(net.relay.impairment.dropped() > 0, "no datagram was lost");
    let out = net.dir.path().join("lossy.out");
    let get = net.cairn(&config, &["get", &cap, "-o", out.to_str().unwrap()]);
    assert!(
        get.status.success(),
        "get: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_same(&std::fs::read(&out).unwrap(), &bytes, "downloaded file");
}

#[test]
fn a_storage_node_partitioned_during_an_upload_is_replaced() {
    // n = 5 on 7 nodes: two spares. Validators are nodes 0..4; the victim
    // is a storage-only node, so the chain keeps all its validators.
    // Shards go over the bulk transport (TLS on TCP), as they do outside
    // tests; 100 Mbit/s links keep the upload running for seconds, so the
    // cut lands in the middle of it.
    let Some(net) = Net::start(NetOptions {
        nodes: 7,
        validators: 4,
        rate_mbit: Some(100),
        bulk: true,
    }) else {
        return;
    };
    let config = net.client_config(3, 2);
    let (path, bytes) = net.file("big.bin", 24_000_000, 22);
    // With a deal: a deal needs a receipt from every node holding a
    // shard, and the cut-off node holds those it took before the cut, so
    // the client must rebuild those elsewhere before the deal can open.
    let mut child = net.spawn_cairn(&config, &["put", path.to_str().unwrap(), "--json"]);
    // Once the upload is under way, cut off the storage-only node that
    // holds most of it.
    let storage_only: Vec<usize> = (4..7).collect();
    let victim = wait_for(
        Duration::from_secs(120),
        "the upload reaches a node",
        || {
            storage_only
                .iter()
                .map(|&i| (bytes_stored(&net.devnet.node_dir(i).join("store")), i))
                .max()
                .filter(|(held, _)| *held > 1_000_000)
                .map(|(_, i)| i)
        },
    );
    net.lab.partition(victim);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the upload ended before the partition: it tests nothing"
    );
    let out = finish(child, COMMAND_LIMIT);
    let report = json_of(&out);
    // The shards went over TCP: the bulk transport, not QUIC.
    let tcp = net.relay.impairment.relayed_tcp();
    assert!(
        tcp > bytes.len() as u64,
        "only {tcp} TCP bytes went through the relay: the upload did not use the bulk transport"
    );
    let file = &report["files"][0];
    let moved = file["replaced"].as_u64().unwrap_or(0) + file["hedged"].as_u64().unwrap_or(0);
    assert!(moved > 0, "no shard left the partitioned node: {file}");
    let deal = &file["deal"];
    assert!(
        deal["moved_off"].as_u64().unwrap_or(0) > 0,
        "the deal opened without rebuilding the cut-off node's shards: {deal}"
    );
    let victim_peer: libp2p::PeerId = net.devnet.nodes()[victim].peer_id.parse().unwrap();
    let victim_address = cairn_client::net::peer_address(&victim_peer).unwrap();
    let id = deal["id"].as_str().unwrap().to_string();
    let chain = net.chain(0);
    let on_chain = block_on(chain.deal(&id))
        .unwrap()
        .expect("the deal is open");
    assert!(
        on_chain
            .commitments
            .iter()
            .all(|c| c.node != victim_address),
        "the cut-off node is in the deal"
    );
    let cap = file["capability"].as_str().unwrap().to_string();
    let back = net.dir.path().join("big.out");
    let get = net.cairn(&config, &["get", &cap, "-o", back.to_str().unwrap()]);
    assert!(
        get.status.success(),
        "get without the partitioned node: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_same(
        &std::fs::read(&back).unwrap(),
        &bytes,
        "file after re-placement",
    );
}

/// Bytes in the files under `dir`.
fn bytes_stored(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
