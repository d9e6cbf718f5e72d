//! A WAN-like measurement (ignored: it prints numbers, asserts only that
//! the file comes back). Every host's link is limited to 200 Mbit/s each
//! way; the relay adds 20 ms each way (40 ms RTT) and drops 1 % of
//! datagrams each way. Run with
//! `cargo test -p cairn-cli --release --test netns -- --ignored --nocapture wan`;
//! `CAIRN_WAN_MIB` sets the file size (default 64), `CAIRN_WAN_LOSS_PCT`
//! the loss each way (default 1), `CAIRN_WAN_BULK=0` moves shards over
//! libp2p's QUIC instead of the bulk transport (TLS on TCP; the relay
//! delays TCP but cannot drop its segments, so loss reaches only QUIC).

use std::time::{Duration, Instant};

use crate::net::{assert_same, json_of, Net, NetOptions};

const MBIT: u32 = 200;

#[test]
#[ignore = "a measurement: prints throughput over a 200 Mbit/s, 40 ms, 1 % loss network"]
fn wan_like_upload_and_download() {
    let Some(net) = Net::start(NetOptions {
        nodes: 6,
        validators: 4,
        rate_mbit: Some(MBIT),
        bulk: std::env::var("CAIRN_WAN_BULK").map_or(true, |v| v != "0"),
    }) else {
        return;
    };
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    let mib = env("CAIRN_WAN_MIB").unwrap_or(64.0) as usize;
    let loss_pct = env("CAIRN_WAN_LOSS_PCT").unwrap_or(1.0);
    net.relay
        .impairment
        .set(Duration::from_millis(20), loss_pct / 100.0);
    let (k, m) = (3u16, 3u16);
    let config = net.client_config(k, m);
    let (path, bytes) = net.file("wan.bin", mib << 20, 31);
    let started = Instant::now();
    let put = json_of(&net.cairn(&config, &["put", path.to_str().unwrap(), "--json"]));
    let up = started.elapsed().as_secs_f64();
    let cap = put["files"][0]["capability"].as_str().unwrap().to_string();
    let out = net.dir.path().join("wan.out");
    let started = Instant::now();
    let get = net.cairn(&config, &["get", &cap, "-o", out.to_str().unwrap()]);
    let down = started.elapsed().as_secs_f64();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_same(&std::fs::read(&out).unwrap(), &bytes, "downloaded file");

    // The client's link carries n/k times the file up, and k/k of it down.
    let link = f64::from(MBIT) * 1e6 / 8.0 / f64::from(1u32 << 20);
    let expansion = f64::from(k + m) / f64::from(k);
    let (up_rate, down_rate) = (mib as f64 / up, mib as f64 / down);
    println!(
        "wan: {mib} MiB, k={k} n={}, links {MBIT} Mbit/s ({link:.1} MiB/s), RTT 40 ms, loss {loss_pct} %/direction",
        k + m
    );
    println!(
        "wan: upload {up:.1} s = {up_rate:.1} MiB/s of file ({:.0} % of the client's uplink after {expansion:.1}x coding)",
        100.0 * up_rate * expansion / link
    );
    println!(
        "wan: {:.1} MiB through the relay, {:.1} MiB of it TCP (the bulk transport's shards travel there, QUIC's in datagrams)",
        net.relay.impairment.relayed() as f64 / f64::from(1u32 << 20),
        net.relay.impairment.relayed_tcp() as f64 / f64::from(1u32 << 20),
    );
    println!(
        "wan: download {down:.1} s = {down_rate:.1} MiB/s ({:.0} % of the client's downlink)",
        100.0 * down_rate / link
    );
}
