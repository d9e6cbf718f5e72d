//! What the nodes store is ciphertext: no plaintext, name or key bytes.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_hold_no_plaintext_name_or_key() {
    let net = TestNet::start(4);
    let client = net.client(2, 2);
    // Plaintext with a recognisable phrase repeated (so any block of it
    // would show), in a file with a recognisable name.
    let marker = b"CAIRN-PLAINTEXT-MARKER-7f3a";
    let mut bytes = Vec::new();
    while bytes.len() < 1_500_000 {
        bytes.extend_from_slice(marker);
        bytes.extend_from_slice(&content(97, bytes.len() as u64));
    }
    let name = "secret-filename-b81c.txt";
    let path = net.dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    let report = put(&client, &path).await;
    let got = get(&client, &report.capability).await;
    assert_same(&got, &bytes, "round trip");

    let key = *report.capability.key.as_bytes();
    let text = report.capability.to_string();
    let key_text = text.split('#').nth(1).unwrap().to_string();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("plaintext marker", marker.to_vec()),
        ("file name", name.as_bytes().to_vec()),
        ("file key bytes", key.to_vec()),
        ("file key text", key_text.into_bytes()),
        ("plaintext block", bytes[200_000..200_064].to_vec()),
    ];
    let mut scanned = 0u64;
    for i in 0..net.devnet.nodes().len() {
        for file in files_under(&net.devnet.node_dir(i)) {
            let data = std::fs::read(&file).unwrap();
            scanned += data.len() as u64;
            for (what, needle) in &needles {
                assert!(
                    !contains(&data, needle),
                    "{what} found in {}",
                    file.display()
                );
            }
        }
    }
    // The nodes really hold the (expanded) file.
    assert!(
        scanned > 2 * bytes.len() as u64,
        "scanned only {scanned} bytes"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
