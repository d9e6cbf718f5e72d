//! The namespace's objects as they come from nodes, links and users:
//! directory objects (bytes from the network, after their file's
//! decryption), sealed commits (bytes a node returns for the id the chain
//! names), directory capabilities and paths (text), and the names a merge
//! makes beside other writers' entries. Structure-aware: plain bytes never
//! pass a commit's AEAD, a directory object is at least 4 KiB of which all
//! but the prefix is zeros, and plain text never holds a capability's id
//! and key.
//!
//! Checks besides "no panic": a directory encodes exactly when its entries
//! follow docs/format.md §14 (written out again in the harness), what
//! encodes decodes to itself, and any bytes that decode (built, bent, or
//! plain and zero-padded) are the canonical encoding of what they decode
//! to. Commits are sealed as §14 says by the harness and by the library
//! alike; bodies the fuzzer makes are sealed under a fixed key so the
//! parser is reached, and a body that opens re-seals to exactly its bytes;
//! a bent sealed commit is refused under its old id and under its own. A
//! capability or a path that parses prints to text that parses to it
//! again; a conflict name made from a valid name is a valid name.
#![no_main]

use arbitrary::Arbitrary;
use cairn_protocol::namespace::commit::SEALED_COMMIT_LEN;
use cairn_protocol::namespace::directory::check_name;
use cairn_protocol::namespace::merge::conflict_name;
use cairn_protocol::namespace::{
    Commit, CommitKeys, DirCapability, DirRef, Directory, NamespaceError, NsPath, ObjectRef,
    Timestamp,
};
use cairn_protocol::ContentId;
use cairn_protocol_fuzz::namespace::{
    follows_rules, object, open_commit_body, seal_commit_body, ArbEntry, COMMIT_BODY_LEN,
    NAMESPACE_KEY,
};
use libfuzzer_sys::fuzz_target;

/// A change to an encoded directory, at a place within its used prefix
/// (or just past it) unless it says otherwise.
#[derive(Debug, Arbitrary)]
enum Bend {
    Flip { at: u32, bit: u8 },
    Set { at: u32, byte: u8 },
    Insert { at: u32, bytes: Vec<u8> },
    Remove { at: u32, len: u8 },
    Truncate(u32),
    Append(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Entries from fields, encoded and decoded, then the encoding bent.
    Directory {
        entries: Vec<ArbEntry>,
        bends: Vec<Bend>,
    },
    /// Plain bytes, as given and zero-padded to a directory object's length.
    DirectoryBytes(Vec<u8>),
    /// A commit from fields, sealed and opened, then one byte bent.
    Commit {
        version: u64,
        object: u8,
        files: u64,
        bytes: u64,
        previous: Option<[u8; 32]>,
        secs: i64,
        nanos: u32,
        bend: (u16, u8),
    },
    /// A plaintext body, padded or cut to 256 bytes and sealed under the
    /// fixed key: the parser is reached.
    CommitBody(Vec<u8>),
    /// Bytes a node returns for a commit, under their own id.
    SealedCommit(Vec<u8>),
    DirCapability(String),
    /// A directory capability printed from an object, then its text bent
    /// (plain text never holds a valid id and key).
    DirCapabilityOf {
        manifest: [u8; 32],
        key: [u8; 32],
        bends: Vec<Bend>,
    },
    Path(String),
    /// A name from a directory and the client's tag (4 hex digits, then
    /// `-n` on further conflicts).
    Conflict {
        name: String,
        tag: u16,
        n: Option<u8>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::Directory { entries, bends } => directory(&entries, &bends),
    Input::DirectoryBytes(bytes) => {
        decodes_canonically(&bytes);
        let mut padded = bytes;
        padded.resize(padded.len().next_power_of_two().max(4096), 0);
        decodes_canonically(&padded);
    }
    Input::Commit {
        version,
        object: o,
        files,
        bytes,
        previous,
        secs,
        nanos,
        bend,
    } => commit(
        Commit {
            version,
            root: DirRef {
                object: object(o),
                files,
                bytes,
            },
            previous,
            time: Timestamp { secs, nanos },
        },
        bend,
    ),
    Input::CommitBody(mut body) => {
        body.resize(COMMIT_BODY_LEN, 0);
        let sealed = seal_commit_body(&body);
        match opens_canonically(&sealed) {
            Ok(_) => {}
            Err(NamespaceError::Version(v)) => assert_eq!(v, body[0]),
            Err(NamespaceError::Malformed(_)) => {}
            Err(e) => panic!("a commit sealed under its key refused with {e:?}"),
        }
    }
    Input::SealedCommit(bytes) => {
        let _ = opens_canonically(&bytes);
    }
    Input::DirCapability(text) => {
        dir_capability(&text);
    }
    Input::DirCapabilityOf {
        manifest,
        key,
        bends,
    } => {
        let cap = DirCapability::from(&ObjectRef { manifest, key });
        let text = cap.to_string();
        assert_eq!(dir_capability(&text).as_ref(), Some(&cap));
        let mut bent = text.into_bytes();
        let len = bent.len();
        apply(&mut bent, &bends, len + 1);
        if let Ok(text) = String::from_utf8(bent) {
            dir_capability(&text);
        }
    }
    Input::Path(text) => {
        if let Ok(path) = NsPath::parse(&text) {
            for name in path.names() {
                check_name(name).expect("a parsed path holds valid names");
            }
            let printed = path.to_string();
            assert!(printed.len() <= text.len().max(1));
            assert_eq!(NsPath::parse(&printed).as_ref(), Ok(&path));
            if let (Some(parent), Some(name)) = (path.parent(), path.name()) {
                assert_eq!(parent.join(name).as_ref(), Ok(&path));
                assert!(path.starts_with(&parent));
            }
        }
    }
    Input::Conflict { name, tag, n } => {
        let mut tag = format!("{tag:04x}");
        if let Some(n) = n {
            tag = format!("{tag}-{n}");
        }
        let out = conflict_name(&name, &tag);
        if check_name(&name).is_ok() {
            check_name(&out).expect("a conflict name is a valid name");
            assert!(out.contains(&tag));
        }
    }
});

fn directory(entries: &[ArbEntry], bends: &[Bend]) {
    let dir = Directory {
        entries: entries.iter().map(ArbEntry::build).collect(),
    };
    let lawful = dir.entries.iter().all(|(n, e)| follows_rules(n, e));
    let _ = dir.summary();
    let bytes = match dir.encode() {
        Ok(bytes) => bytes,
        Err(e) => {
            assert!(!lawful, "a directory within the rules refused: {e}");
            return;
        }
    };
    assert!(lawful, "a directory outside the rules encoded");
    assert!(bytes.len().is_power_of_two() && bytes.len() >= 4096);
    assert_eq!(Directory::decode(&bytes).as_ref(), Ok(&dir));
    if bends.is_empty() {
        return;
    }
    // The postcard prefix ends at the last non-zero byte (or a little
    // later, if the encoding ends in zeros): bend there, not in the padding.
    let used = bytes.iter().rposition(|b| *b != 0).map_or(1, |i| i + 1);
    let mut bent = bytes.clone();
    apply(&mut bent, bends, used + 8);
    let decoded = decodes_canonically(&bent);
    if bent == bytes {
        assert_eq!(decoded.as_ref(), Some(&dir));
    }
}

/// Applies up to four bends to `bytes`, at places below `span` (and
/// within the bytes).
fn apply(bytes: &mut Vec<u8>, bends: &[Bend], span: usize) {
    for bend in bends.iter().take(4) {
        let at = |at: u32| (at as usize % span.max(1)).min(bytes.len());
        let last = |at: u32| (at as usize % span.max(1)).min(bytes.len().saturating_sub(1));
        match bend {
            Bend::Flip { at: i, bit } => {
                let i = last(*i);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Bend::Set { at: i, byte } => {
                let i = last(*i);
                if let Some(b) = bytes.get_mut(i) {
                    *b = *byte;
                }
            }
            Bend::Insert { at: i, bytes: more } => {
                let i = at(*i);
                bytes.splice(i..i, more.iter().copied());
            }
            Bend::Remove { at: i, len } => {
                let i = at(*i);
                let end = (i + *len as usize).min(bytes.len());
                bytes.drain(i..end);
            }
            Bend::Truncate(len) => bytes.truncate(*len as usize % (bytes.len() + 1)),
            Bend::Append(more) => bytes.extend_from_slice(more),
        }
    }
}

/// Decodes `bytes`; what decodes must be exactly its own encoding.
fn decodes_canonically(bytes: &[u8]) -> Option<Directory> {
    let dir = Directory::decode(bytes).ok()?;
    let again = dir.encode().expect("a decoded directory encodes");
    assert!(
        again == bytes,
        "a directory decoded from non-canonical bytes"
    );
    let _ = dir.summary();
    Some(dir)
}

/// Parses a directory capability; what parses prints to text that parses
/// to it again.
fn dir_capability(text: &str) -> Option<DirCapability> {
    let cap = text.parse::<DirCapability>().ok()?;
    assert!(cairn_protocol::namespace::dircap::is_dir_capability(text));
    let printed = cap.to_string();
    assert_eq!(printed.parse::<DirCapability>().as_ref(), Ok(&cap));
    assert_eq!(DirCapability::from(&cap.object()), cap);
    Some(cap)
}

/// Opens `sealed` under its own id and the fixed key; what opens must
/// re-seal to exactly these bytes.
fn opens_canonically(sealed: &[u8]) -> Result<Commit, NamespaceError> {
    let keys = CommitKeys::new(&NAMESPACE_KEY);
    let id = ContentId::of(sealed);
    let commit = Commit::open(&id, sealed, &keys)?;
    assert!(
        commit.seal(&keys) == (id, sealed.to_vec()),
        "a commit opened from bytes its writer would not have sealed"
    );
    Ok(commit)
}

fn commit(commit: Commit, (at, xor): (u16, u8)) {
    let keys = CommitKeys::new(&NAMESPACE_KEY);
    let (id, sealed) = commit.seal(&keys);
    assert_eq!(sealed.len(), SEALED_COMMIT_LEN);
    // The harness's reading of docs/format.md §14 seals the same bytes.
    let body = open_commit_body(&sealed).expect("the harness opens the library's seal");
    assert_eq!(body.len(), COMMIT_BODY_LEN);
    assert!(
        seal_commit_body(&body) == sealed,
        "§14 and the library disagree"
    );
    assert_eq!(Commit::open(&id, &sealed, &keys).as_ref(), Ok(&commit));
    let mut other = NAMESPACE_KEY;
    other[0] ^= 1;
    assert_eq!(
        Commit::open(&id, &sealed, &CommitKeys::new(&other)),
        Err(NamespaceError::WrongKey)
    );
    if xor == 0 {
        return;
    }
    let mut bent = sealed;
    bent[at as usize % SEALED_COMMIT_LEN] ^= xor;
    assert_eq!(
        Commit::open(&id, &bent, &keys),
        Err(NamespaceError::IdMismatch)
    );
    assert_eq!(
        Commit::open(&ContentId::of(&bent), &bent, &keys),
        Err(NamespaceError::WrongKey)
    );
}
