//! Two devices of one account commit at once: both sets of changes end up
//! in the tree; a file both changed is kept twice, never overwritten.

use cairn_client::namespace::Namespace;
use cairn_client::Client;
use cairn_protocol::namespace::{EntryKind, NsPath, Timestamp};

use crate::common::*;

fn p(s: &str) -> NsPath {
    NsPath::parse(s).unwrap()
}

async fn read(ns: &mut Namespace<'_>, path: &str) -> Vec<u8> {
    let entry = ns
        .stat(&p(path))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is missing"));
    ns.read_all(&entry).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_commit_at_once_and_lose_no_update() {
    let net = TestNet::start(5);
    let a = Client::open(net.config(2, 2)).await.unwrap();
    let b = Client::open(net.config(2, 2)).await.unwrap();
    let now = Timestamp::now();

    let mut first = Namespace::open(&a).await.unwrap();
    assert_eq!(first.version(), 0, "a fresh account has an empty namespace");
    first
        .put_bytes(&p("/shared.txt"), b"v0".to_vec(), 0o644, now)
        .await
        .unwrap();
    first
        .put_bytes(&p("/gone.txt"), b"old".to_vec(), 0o644, now)
        .await
        .unwrap();
    let report = first.commit().await.unwrap();
    assert_eq!(report.version, 1);
    assert!(report.deal.is_some(), "{report:?}");
    assert_eq!(report.deal_error, None, "{report:?}");
    // The commit's deal names repair data over its objects' segments (the
    // directory's, since both files are inline), so strangers can repair it.
    let deal = a
        .chain()
        .unwrap()
        .deal(report.deal.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let repair = deal
        .repair
        .unwrap_or_else(|| panic!("a namespace deal without repair data"));
    assert_eq!((repair.k, repair.m), (2, 2));
    assert!(repair.segments >= 1, "{repair:?}");

    // Both devices start from version 1 and change the same file.
    let mut on_a = Namespace::open(&a).await.unwrap();
    let mut on_b = Namespace::open(&b).await.unwrap();
    assert_eq!((on_a.version(), on_b.version()), (1, 1));
    on_a.put_bytes(&p("/a/one.txt"), b"from a".to_vec(), 0o644, now)
        .await
        .unwrap();
    on_a.put_bytes(&p("/shared.txt"), b"A".to_vec(), 0o644, now)
        .await
        .unwrap();
    // Larger than inline: goes into a pack object.
    let packed = content(20_000, 5);
    on_b.put_bytes(&p("/b/two.bin"), packed.clone(), 0o600, now)
        .await
        .unwrap();
    on_b.put_bytes(&p("/shared.txt"), b"B".to_vec(), 0o644, now)
        .await
        .unwrap();
    on_b.remove(&p("/gone.txt"), false).await.unwrap();

    let (ra, rb) = tokio::join!(on_a.commit(), on_b.commit());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.replays + rb.replays >= 1,
        "one of them lost the race: {ra:?} {rb:?}"
    );
    assert_eq!(ra.version.max(rb.version), 3);

    let mut after = Namespace::open(&a).await.unwrap();
    assert_eq!(after.version(), 3);
    assert_eq!(read(&mut after, "/a/one.txt").await, b"from a");
    assert_same(&read(&mut after, "/b/two.bin").await, &packed, "packed");
    assert!(after.stat(&p("/gone.txt")).await.unwrap().is_none());
    let root = after.list(&NsPath::root()).await.unwrap().clone();
    let shared: Vec<_> = root
        .entries
        .iter()
        .filter(|(n, _)| n.starts_with("shared"))
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    assert_eq!(shared.len(), 2, "both versions kept: {shared:?}");
    let mut contents = Vec::new();
    for (name, e) in &shared {
        assert!(matches!(e.kind, EntryKind::File { .. }));
        assert!(name == "shared.txt" || name.starts_with("shared (conflict "));
        contents.push(after.read_all(e).await.unwrap());
    }
    contents.sort();
    assert_eq!(contents, vec![b"A".to_vec(), b"B".to_vec()]);
}
