//! The command line: init, bad configs, help.

use std::process::Command;

use crate::common::{edit_config, init, BIN};

fn run_config(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "5GiB", &[]);
    let mode = std::fs::metadata(dir.join("identity.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let id = Command::new(BIN)
        .args(["id", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert!(id.status.success());
    assert!(String::from_utf8_lossy(&id.stdout).starts_with("12D3KooW"));
}

#[test]
fn a_bad_config_fails_with_one_line_naming_the_field() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        ("capacity = \"5GiB\"", "capacity = \"five\"", "capacity"),
        ("/udp/0/quic-v1", "/udp/0/quic-v9", "network.listen[0]"),
        (
            "listen = \"127.0.0.1:0\"",
            "listen = \"nowhere\"",
            "http.listen",
        ),
        ("rate = \"64MiB\"", "rate = 5", "rate"),
        ("[limits]", "[limits]\nbogus = 1", "bogus"),
    ];
    for (i, (from, to, field)) in cases.iter().enumerate() {
        let dir = init(root.path(), &format!("n{i}"), "5GiB", &[]);
        edit_config(&dir, from, to);
        let (ok, stderr) = run_config(&dir);
        assert!(!ok, "{field}: node started with a bad config");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{field}: {stderr}");
        assert!(lines[0].contains(field), "{field}: {stderr}");
    }
    let (ok, stderr) = run_config(&root.path().join("missing"));
    assert!(!ok && stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn an_identity_key_readable_by_others_stops_the_node() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "n", "5GiB", &[]);
    std::fs::set_permissions(
        dir.join("identity.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, stderr) = run_config(&dir);
    assert!(!ok);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn help_is_honest() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["init", "run", "id"] {
        assert!(text.contains(cmd), "{text}");
    }
}
