//! `cairn bench --json` end to end, small: a real devnet, one run, and the
//! throughput and CPU fields it reports.
//!
//! Needs the `cairn-node` binary next to the `cairn` binary
//! (`cargo build -p cairn-node`) or in `$CAIRN_NODE_BIN`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

fn field(json: &serde_json::Value, name: &str) -> f64 {
    let v = json[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is missing or not a number: {json}"));
    assert!(v.is_finite() && v > 0.0, "{name} = {v}");
    v
}

#[test]
fn bench_reports_cpu_per_gib_beside_the_minimum() {
    cairn_cli::devnet::find_node_bin(None)
        .expect("build cairn-node first: cargo build -p cairn-node");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--json", "bench", "--nodes", "4", "-k", "2", "-n", "4"])
        .args(["--size", "8MiB", "--dir"])
        .arg(tmp.path().join("bench"))
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "cairn bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json["size_bytes"], 8 << 20);
    assert_eq!((json["k"].as_u64(), json["n"].as_u64()), (Some(2), Some(4)));
    field(&json, "upload_mib_s");
    field(&json, "download_mib_s");

    for way in ["upload", "download"] {
        let whole = field(&json, &format!("{way}_cpu_s_per_gib"));
        let client = field(&json, &format!("{way}_client_cpu_s_per_gib"));
        // Present and positive; whether the system spends more than this
        // estimate is a timing (the calibration runs once, on a busy
        // machine), so it is reported by the bench, not checked here.
        field(&json, &format!("{way}_min_cpu_s_per_gib"));
        field(&json, &format!("{way}_harness_cpu_s_per_gib"));
        assert!(
            whole >= client,
            "{way}: whole system {whole} < client {client}"
        );
    }
    let kernels = &json["min_cpu_kernels_s_per_gib"];
    for kernel in [
        "encode",
        "tls_seal",
        "tls_open",
        "tree_hash",
        "disk_write",
        "disk_read",
        "decrypt",
    ] {
        field(kernels, kernel);
    }
    // The same fields are in the list of runs.
    assert_eq!(
        json["runs"][0]["upload_min_cpu_s_per_gib"],
        json["upload_min_cpu_s_per_gib"]
    );
}
