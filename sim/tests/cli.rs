//! The `cairn-sim` binary: flags, scenario files, plots, sweeps.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-sim"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("cairn-sim runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn the_old_flags_still_work() {
    let out = sim(&[
        "--nodes",
        "120",
        "--domains",
        "12",
        "--segments",
        "300",
        "--data-shards",
        "4",
        "--parity-shards",
        "4",
        "--repair-threshold",
        "6",
        "--years",
        "0.02",
        "--afr",
        "0.5",
        "--domain-failures",
        "2",
        "--epoch-hours",
        "2",
        "--repair-hours",
        "3",
        "--shard-bytes",
        "4096",
        "--seed",
        "9",
        "--json",
    ]);
    let r = json(&out);
    assert_eq!(r["setup"]["nodes"], 120);
    assert_eq!(r["setup"]["segments"], 300);
    assert_eq!(r["setup"]["repair_threshold"], 6);
    assert_eq!(r["setup"]["period_hours"], 2.0);
    assert_eq!(r["setup"]["seed"], 9);
    let table = sim(&["--nodes", "120", "--segments", "300", "--years", "0.01"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("durability") && text.contains("repair threshold"),
        "{text}"
    );
}

#[test]
fn a_scenario_file_with_flags_over_it_and_plots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "nodes = 150\nsegments = 400\nyears = 0.02\n[dishonest]\ndroppers = 0.1\n",
    )
    .expect("write scenario");
    let plots = dir.path().join("plots");
    let out = sim(&[
        "--scenario",
        file.to_str().expect("utf-8 path"),
        "--segments",
        "500",
        "--json",
        "--plot",
        plots.to_str().expect("utf-8 path"),
    ]);
    let r = json(&out);
    assert_eq!(r["setup"]["nodes"], 150);
    assert_eq!(r["setup"]["segments"], 500, "the flag wins over the file");
    assert_eq!(r["detection"][0]["kind"], "dropper");
    assert_eq!(r["detection"][0]["cases"], 15);
    for name in ["losses", "repair", "health"] {
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg"))).expect("plot written");
        assert!(svg.starts_with("<svg") && svg.contains("day"), "{name}");
    }
}

#[test]
fn a_sweep_draws_the_trade_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = sim(&[
        "--nodes",
        "100",
        "--segments",
        "300",
        "--years",
        "0.02",
        "--data-shards",
        "4",
        "--parity-shards",
        "4",
        "--sweep",
        "threshold=5,7",
        "--runs",
        "2",
        "--json",
        "--plot",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let points = json(&out);
    let points = points.as_array().expect("a list of points");
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["repair_threshold"], 5);
    assert_eq!(points[1]["repair_threshold"], 7);
    assert_eq!(points[1]["runs"], 2);
    let svg = std::fs::read_to_string(dir.path().join("tradeoff.svg")).expect("plot written");
    assert!(svg.contains("threshold 7"));
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "nodes = 10\n").expect("write scenario");
    for (args, needle) in [
        (
            vec!["--scenario", file.to_str().expect("utf-8 path")],
            "distinct shards",
        ),
        (vec!["--scenario", "/nonexistent/s.toml"], "reading"),
        (vec!["--sweep", "speed=1"], "sweep"),
        (vec!["--afr", "2"], "afr"),
    ] {
        let out = sim(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
