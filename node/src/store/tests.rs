//! The shard store's tests: puts, reads, verification, expiry, owners,
//! format upgrades and corruption on disk.

use super::*;
use cairn_protocol::shard::GROUP_BYTES;

/// A temporary directory on a real disk: `/var/tmp` (where `/tmp` may be
/// a tmpfs, which would not exercise direct I/O on a disk filesystem).
pub(super) fn disk_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cairn-store-test-")
        .tempdir_in("/var/tmp")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// A store in `dir` with direct I/O asked for or not; direct I/O is in use
/// when asked for unless the filesystem refuses it.
fn open_mode(dir: &Path, capacity: u64, direct_io: bool) -> ShardStore {
    let store = ShardStore::open_with(dir, capacity, &StoreOptions { direct_io }).unwrap();
    let works = direct::probe(&dir.join(SHARDS_DIR)).unwrap();
    assert_eq!(store.direct_io(), direct_io && works);
    store
}

fn shard(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn put_read_and_reopen() {
    let dir = disk_tempdir();
    let data = shard(100_000, 1);
    let id = ContentId::of(&data);
    {
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        assert!(!store.put(id, &data, PutOptions::default()).unwrap().existed);
        assert!(store.put(id, &data, PutOptions::default()).unwrap().existed);
        let (size, enc) = store.read_range(&id, 1000..50_000).unwrap();
        let got = cairn_protocol::shard::verify_range(id, size, 1000..50_000, &enc[..]).unwrap();
        assert_eq!(got, &data[1000..50_000]);
    }
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    let usage = store.usage();
    assert_eq!(usage.shards, 1);
    assert!(usage.used >= 100_000);
    assert!(store.verify(&id).unwrap());
}

#[test]
fn wrong_bytes_are_refused() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    let data = shard(5000, 2);
    let wrong = ContentId::of(b"something else");
    let e = store.put(wrong, &data, PutOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::HashMismatch { .. }));
    assert_eq!(store.usage().shards, 0);
    assert!(store.meta(&wrong).unwrap().is_none());
}

#[test]
fn capacity_is_enforced_and_nothing_is_lost() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 250_000).unwrap();
    let a = shard(100_000, 1);
    let b = shard(100_000, 2);
    let c = shard(100_000, 3);
    store
        .put(ContentId::of(&a), &a, PutOptions::default())
        .unwrap();
    store
        .put(ContentId::of(&b), &b, PutOptions::default())
        .unwrap();
    let e = store
        .put(ContentId::of(&c), &c, PutOptions::default())
        .unwrap_err();
    assert!(matches!(e, StoreError::CapacityFull { .. }), "{e}");
    assert!(store.verify(&ContentId::of(&a)).unwrap());
    assert!(store.verify(&ContentId::of(&b)).unwrap());
    assert!(store.remove(&ContentId::of(&a)).unwrap());
    store
        .put(ContentId::of(&c), &c, PutOptions::default())
        .unwrap();
}

#[test]
fn owners_release_and_expiry_collects() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    let data = shard(10_000, 4);
    let id = ContentId::of(&data);
    let (alice, bob) = (Address([1; 32]), Address([2; 32]));
    for owner in [alice, bob] {
        let o = PutOptions {
            owner: Some(owner),
            expires_at: Some(100),
        };
        store.put(id, &data, o).unwrap();
    }
    assert!(matches!(
        store.release(&id, &Address([3; 32])),
        Err(StoreError::NotOwner { .. })
    ));
    assert!(store.release(&id, &alice).unwrap());
    assert!(store.meta(&id).unwrap().is_some());
    assert_eq!(store.collect_expired(99, 10).unwrap(), 0);
    assert_eq!(store.collect_expired(100, 10).unwrap(), 1);
    assert!(store.meta(&id).unwrap().is_none());
    assert_eq!(store.usage().used, 0);
}

#[test]
fn a_seventeenth_owner_is_refused_and_the_first_can_still_let_go() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    let data = shard(10_000, 6);
    let id = ContentId::of(&data);
    let owner = |n: u8| PutOptions {
        owner: Some(Address([n; 32])),
        expires_at: None,
    };
    for n in 1..=MAX_OWNERS as u8 {
        store.put(id, &data, owner(n)).unwrap();
    }
    let e = store.put(id, &data, owner(99)).unwrap_err();
    assert!(matches!(e, StoreError::TooManyOwners { .. }), "{e}");
    assert!(e.to_string().contains("16 owners"), "{e}");
    // An owner already listed may store again.
    assert!(store.put(id, &data, owner(3)).unwrap().existed);
    let meta = store.meta(&id).unwrap().unwrap();
    assert_eq!(meta.owners.len(), MAX_OWNERS);
    assert!(!meta.owners.contains(&Address([99; 32])));
    // The first owner's release succeeds while strangers remain.
    assert!(store.release(&id, &Address([1; 32])).unwrap());
    let meta = store.meta(&id).unwrap().unwrap();
    assert!(!meta.owners.contains(&Address([1; 32])));
    assert!(matches!(
        store.release(&id, &Address([1; 32])),
        Err(StoreError::NotOwner { .. })
    ));
}

#[test]
fn ids_are_walked_in_pieces() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    for s in 0..10 {
        let d = shard(1000, s);
        store
            .put(ContentId::of(&d), &d, PutOptions::default())
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let batch = store.ids_after(after.as_ref(), 3).unwrap();
        if batch.is_empty() {
            break;
        }
        after = Some(batch.last().unwrap().0);
        seen.extend(batch.into_iter().map(|(id, _)| id));
    }
    assert_eq!(seen.len(), 10);
}

#[test]
fn ranges_read_only_their_chunk_groups_and_verify() {
    ranges_verify(true);
}

#[test]
fn ranges_verify_with_buffered_io() {
    ranges_verify(false);
}

fn ranges_verify(direct_io: bool) {
    let dir = disk_tempdir();
    let store = open_mode(dir.path(), 1 << 30, direct_io);
    let g = GROUP_BYTES;
    for size in [
        1u64,
        1000,
        1024,
        5000,
        g - 1,
        g,
        g + 1,
        3 * g + 7,
        100_000,
        1 << 20,
    ] {
        let data = shard(size as usize, size as u8);
        let id = ContentId::of(&data);
        store.put(id, &data, PutOptions::default()).unwrap();
        let mut ranges = vec![
            0..size,
            0..1,
            size - 1..size,
            size / 2..size,
            0..0,
            size..size,
        ];
        for start in [0, 1, g - 1, g, g + 1, 2 * g + 5, size / 3] {
            for len in [0, 1, 1023, 1024, g - 1, g, g + 3, 3 * g] {
                if start + len <= size {
                    ranges.push(start..start + len);
                }
            }
        }
        for range in ranges {
            let (got_size, enc) = store.read_range(&id, range.clone()).unwrap();
            assert_eq!(got_size, size);
            let got = cairn_protocol::shard::verify_range(id, size, range.clone(), &enc[..])
                .unwrap_or_else(|e| panic!("size {size} range {range:?}: {e}"));
            assert_eq!(got, &data[range.start as usize..range.end as usize]);
        }
        assert!(matches!(
            store.read_range(&id, 0..size + 1),
            Err(StoreError::Range(_))
        ));
    }
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

#[test]
fn rot_is_found_where_it_is_read_and_quarantined() {
    rot_is_quarantined(true);
}

#[test]
fn rot_is_found_with_buffered_io_too() {
    rot_is_quarantined(false);
}

fn rot_is_quarantined(direct_io: bool) {
    let dir = disk_tempdir();
    let store = open_mode(dir.path(), 1 << 30, direct_io);
    let data = shard(300_000, 9);
    let id = ContentId::of(&data);
    store.put(id, &data, PutOptions::default()).unwrap();
    let path = store.shard_path(&id);
    assert!(path.starts_with(dir.path().join("shards")));
    flip(&path, 200_000);
    // A range away from the rot reads only its own groups: served.
    store.read_range(&id, 0..50_000).unwrap();
    // The range over it is refused and the shard quarantined.
    let e = store.read_range(&id, 190_000..210_000).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(store.meta(&id).unwrap().is_none());
    assert!(!path.exists());
    assert_eq!(
        store.usage(),
        Usage {
            capacity: 1 << 30,
            used: 0,
            shards: 0
        }
    );
    // A repair stores it again.
    store.put(id, &data, PutOptions::default()).unwrap();
    assert!(store.verify(&id).unwrap());
    // The scrubber's whole-shard check finds rot anywhere.
    flip(&path, 299_999);
    assert!(matches!(store.verify(&id), Err(StoreError::Corrupt { .. })));
    assert!(!path.exists());
    assert!(!store.verify(&id).unwrap());
    // A truncated file is corrupt too, not an I/O error.
    store.put(id, &data, PutOptions::default()).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    assert!(matches!(
        store.read_range(&id, 0..10),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.meta(&id).unwrap().is_none());
}

#[test]
fn remove_deletes_metadata_and_file() {
    let dir = disk_tempdir();
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    let data = shard(50_000, 5);
    let id = ContentId::of(&data);
    store.put(id, &data, PutOptions::default()).unwrap();
    let path = store.shard_path(&id);
    assert_eq!(fs::read(&path).unwrap(), data);
    assert!(store.remove(&id).unwrap());
    assert!(!path.exists());
    assert!(!store.remove(&id).unwrap());
    assert!(matches!(
        store.read_range(&id, 0..10),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn open_deletes_orphans_and_drops_lost_shards() {
    let dir = disk_tempdir();
    let (kept, lost, orphan) = (shard(20_000, 1), shard(30_000, 2), shard(40_000, 3));
    let ids = [&kept, &lost, &orphan].map(|d| ContentId::of(d));
    let (lost_path, orphan_path, tmp_path);
    {
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        for d in [&kept, &lost] {
            let o = PutOptions {
                expires_at: Some(500),
                owner: None,
            };
            store.put(ContentId::of(d), d, o).unwrap();
        }
        lost_path = store.shard_path(&ids[1]);
        orphan_path = store.shard_path(&ids[2]);
        tmp_path = orphan_path.with_extension("tmp");
        // A crash between the rename and the commit; one before the rename.
        fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
        fs::write(&orphan_path, &orphan).unwrap();
        fs::write(&tmp_path, &orphan[..100]).unwrap();
        fs::remove_file(&lost_path).unwrap();
        store.flush().unwrap();
    }
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(
        store.open_report(),
        OpenReport {
            orphans: 1,
            lost: 1,
            temporaries: 1
        }
    );
    assert!(!orphan_path.exists() && !tmp_path.exists());
    assert!(store.meta(&ids[1]).unwrap().is_none());
    assert!(store.meta(&ids[2]).unwrap().is_none());
    let usage = store.usage();
    assert_eq!(usage.shards, 1);
    assert_eq!(
        usage.used,
        store.meta(&ids[0]).unwrap().unwrap().footprint()
    );
    assert!(store.verify(&ids[0]).unwrap());
    // The lost shard's expiry entry went with it.
    assert_eq!(store.collect_expired(1000, 10).unwrap(), 1);
    drop(store);
    let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(store.open_report(), OpenReport::default());
    assert_eq!(store.usage().shards, 0);
}

/// Turns a format-3 store into the format-2 layout it came from:
/// each shard file one level deeper, under `ab/cd/`.
fn make_format_2(path: &Path, leave_in_place: usize) {
    let shards = path.join(SHARDS_DIR);
    let mut files: Vec<PathBuf> = read_dir_paths(&shards)
        .unwrap()
        .into_iter()
        .flat_map(|l1| read_dir_paths(&l1).unwrap())
        .collect();
    files.sort();
    for file in files.into_iter().skip(leave_in_place) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let l2 = file.parent().unwrap().join(&name[2..4]);
        fs::create_dir_all(&l2).unwrap();
        fs::rename(&file, l2.join(&name)).unwrap();
    }
    fs::write(path.join(FORMAT_FILE), format!("{FORMAT_2}\n")).unwrap();
}

#[test]
fn a_format_2_store_is_converted_and_keeps_every_shard() {
    let dir = disk_tempdir();
    let data: Vec<Vec<u8>> = (0..40).map(|i| shard(5_000 + i * 7, i as u8)).collect();
    {
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        for d in &data {
            store
                .put(ContentId::of(d), d, PutOptions::default())
                .unwrap();
        }
        store.flush().unwrap();
    }
    // A whole format-2 store; then one whose conversion stopped after
    // moving the first 15 files (the marker still says 2), with a
    // temporary file left by an interrupted put.
    for leave_in_place in [0, 15] {
        make_format_2(dir.path(), leave_in_place);
        let id0 = ContentId::of(&data[0]);
        let l1 = dir
            .path()
            .join(SHARDS_DIR)
            .join(hex::encode(&id0.digest()[..1]));
        let tmp = l1.join(format!("{}{TMP_SUFFIX}", hex::encode([7u8; 32])));
        fs::write(&tmp, b"half").unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap(),
            format!("{FORMAT}\n")
        );
        assert_eq!(
            store.open_report(),
            OpenReport {
                orphans: 0,
                lost: 0,
                temporaries: 1
            }
        );
        assert_eq!(store.usage().shards, data.len() as u64);
        for d in &data {
            let id = ContentId::of(d);
            assert!(store.shard_path(&id).is_file());
            assert!(store.verify(&id).unwrap());
        }
        // No second-level directory is left.
        for l1 in read_dir_paths(&dir.path().join(SHARDS_DIR)).unwrap() {
            assert!(read_dir_paths(&l1).unwrap().iter().all(|p| p.is_file()));
        }
    }
}

#[test]
fn a_store_of_another_format_is_refused() {
    // The old layout: RocksDB directly in the store directory.
    let old = disk_tempdir();
    {
        let mut o = Options::default();
        o.create_if_missing(true);
        Db::open(&o, old.path()).unwrap();
    }
    let e = ShardStore::open(old.path(), 1 << 30).unwrap_err();
    assert!(matches!(e, StoreError::Format { .. }), "{e}");
    assert!(e.to_string().contains("old format"), "{e}");
    // A marker of another version.
    let other = disk_tempdir();
    fs::write(other.path().join(FORMAT_FILE), "cairn-node store 4\n").unwrap();
    let e = ShardStore::open(other.path(), 1 << 30).unwrap_err();
    assert!(e.to_string().contains("cairn-node store 4"), "{e}");
    // Something else entirely.
    let stray = disk_tempdir();
    fs::write(stray.path().join("notes.txt"), "hi").unwrap();
    assert!(matches!(
        ShardStore::open(stray.path(), 1 << 30),
        Err(StoreError::Format { .. })
    ));
    // A missing directory is created, and reopens.
    let fresh = disk_tempdir();
    let path = fresh.path().join("a/store");
    drop(ShardStore::open(&path, 1 << 30).unwrap());
    ShardStore::open(&path, 1 << 30).unwrap();
    assert_eq!(
        fs::read_to_string(path.join(FORMAT_FILE)).unwrap(),
        format!("{FORMAT}\n")
    );
}

/// Sizes around the alignment of direct transfers and of its buffer.
const ODD_SIZES: [usize; 9] = [
    0,
    1,
    4095,
    4096,
    4097,
    direct::BUFFER_BYTES - 1,
    direct::BUFFER_BYTES,
    direct::BUFFER_BYTES + 3,
    3 * direct::BUFFER_BYTES + 4097,
];

fn odd_sizes_round_trip(direct_io: bool) {
    let dir = disk_tempdir();
    let store = open_mode(dir.path(), 1 << 30, direct_io);
    for (i, &size) in ODD_SIZES.iter().enumerate() {
        let data = shard(size, i as u8 + 40);
        let id = ContentId::of(&data);
        store.put(id, &data, PutOptions::default()).unwrap();
        // The padding of the last block is cut off again.
        let path = store.shard_path(&id);
        assert_eq!(fs::metadata(&path).unwrap().len(), size as u64, "{size}");
        assert_eq!(fs::read(&path).unwrap(), data, "{size}");
        let size = size as u64;
        for range in [
            0..size,
            0..size.min(1),
            size / 2..size,
            size.saturating_sub(4097)..size,
        ] {
            let (got_size, enc) = store.read_range(&id, range.clone()).unwrap();
            assert_eq!(got_size, size);
            let got = cairn_protocol::shard::verify_range(id, size, range.clone(), &enc[..])
                .unwrap_or_else(|e| panic!("size {size} range {range:?}: {e}"));
            assert_eq!(got, &data[range.start as usize..range.end as usize]);
        }
        assert!(store.verify(&id).unwrap(), "{size}");
        assert_eq!(store.read_all(&id).unwrap(), Some(data));
    }
    // Written one way, read the other: the files are the same files.
    drop(store);
    let store = open_mode(dir.path(), 1 << 30, !direct_io);
    for (i, &size) in ODD_SIZES.iter().enumerate() {
        let id = ContentId::of(&shard(size, i as u8 + 40));
        assert!(store.verify(&id).unwrap(), "{size}");
    }
}

#[test]
fn odd_sizes_round_trip_with_direct_io() {
    odd_sizes_round_trip(true);
}

#[test]
fn odd_sizes_round_trip_with_buffered_io() {
    odd_sizes_round_trip(false);
}

#[test]
fn direct_io_is_used_on_a_disk_and_can_be_turned_off() {
    let dir = disk_tempdir();
    let works = direct::probe(dir.path()).unwrap();
    assert_eq!(
        ShardStore::open(dir.path(), 1 << 20).unwrap().direct_io(),
        works
    );
    let off = StoreOptions { direct_io: false };
    assert!(!ShardStore::open_with(dir.path(), 1 << 20, &off)
        .unwrap()
        .direct_io());
    // The probe leaves nothing behind for the store to trip over.
    assert!(!dir.path().join("direct-io.probe").exists());
    assert!(!dir.path().join(SHARDS_DIR).join("direct-io.probe").exists());
}
