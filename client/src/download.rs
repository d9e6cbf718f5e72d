//! The download pipeline: capability in, verified plaintext out, in order.
//!
//! ```text
//! manifest (best-ranked holders first) ─▶ per segment: k data shards from the hinted nodes
//!        (a shard repair moved: from the holder the chain names instead)
//!        slow for `slow_after`? fetch one more shard (parity) from another node
//!        failed / not found?    fetch another; ask every node `has` once if the hint ran dry
//!   ─▶ decode only if a data shard is missing ─▶ decrypt ─▶ writer, segment by segment
//! ```
//!
//! Every shard is verified against its id as it arrives (bao, in the
//! network client) and every block against its tag, so a lying node costs
//! time, never correctness. Up to `parallelism` segments are fetched at
//! once; plaintext is written strictly in order, so memory is bounded by
//! the window, not the file. A node that failed or was outrun is tried
//! last for the rest of the transfer, so a hung node costs one
//! `slow_after` per segment in the window, not one per segment.
//!
//! With a chain configured, the file's deal says where repair moved shards
//! ([`crate::file_deal`]); those holders replace the manifest's hint for
//! their (segment, column), so a repaired file is read from its new holders
//! directly, and every node is asked only when neither knows. A whole
//! download asks the chain once up front; a range read (many small ones
//! under a mount) only once a hinted holder failed it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::decoder::SegmentShards;
use cairn_protocol::range::ReadPlan;
use cairn_protocol::{Capability, ContentId, FileDecoder, Manifest};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::chain::ChainClient;
use crate::error::{summarize, Error};
use crate::file_deal::{self, MovedShards};
use crate::network::{is_not_found, reason, Network, NodeIndex};
use crate::progress::Progress;
use crate::upload::lock;

/// Largest manifest a client accepts from a node.
const MAX_MANIFEST_FETCH: u64 = cairn_protocol::params::MAX_SHARD_SIZE as u64;
/// Manifest holders asked at once.
const MANIFEST_FANOUT: usize = 3;

/// What a download did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GetReport {
    pub size_bytes: u64,
    /// Plaintext bytes written by this run (less than the size when resumed).
    pub bytes_written: u64,
    /// Where this run started writing (non-zero when resumed).
    pub resumed_at: u64,
    pub segments: u64,
    pub shards_fetched: u64,
    /// Data shards rebuilt from parity.
    pub shards_rebuilt: u64,
    /// Extra shard fetches started because a node was slow.
    pub hedged: u64,
    /// Fetches that failed (node down, refused, or bytes that did not verify).
    pub failed_fetches: u64,
    /// Shards the chain says repair moved to a node this client knows.
    pub moved_shards_known: u64,
    /// Shards fetched from the holder the chain named for them.
    pub fetched_from_new_holders: u64,
    /// Times no known holder was left and every node was asked `has`.
    pub asked_every_node: u64,
    /// Why the chain could not say where shards are, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_error: Option<String>,
    pub seconds: f64,
}

/// Where a file's shards are, as far as the client knows.
#[derive(Debug)]
pub(crate) struct Locator {
    network: Network,
    /// The placement hint: the node of each column.
    hint: Vec<Option<NodeIndex>>,
    /// The chain to ask where repair moved shards, if there is one.
    chain: Option<ChainClient>,
    /// Its answer, once asked: these holders override the hint.
    moved: tokio::sync::OnceCell<MovedShards>,
    /// Nodes that failed or were outrun: asked last.
    slow: Mutex<HashSet<NodeIndex>>,
    slow_after: Duration,
}

impl Locator {
    pub fn new(
        network: &Network,
        manifest: &Manifest,
        chain: Option<ChainClient>,
        slow_after: Duration,
    ) -> Self {
        let n = manifest.params().n();
        let hint = if manifest.placement().len() == n {
            manifest
                .placement()
                .iter()
                .map(|id| network.index_of(id))
                .collect()
        } else {
            vec![None; n]
        };
        Self {
            network: network.clone(),
            hint,
            chain,
            moved: tokio::sync::OnceCell::new(),
            slow: Mutex::new(HashSet::new()),
            slow_after,
        }
    }

    /// Where the chain says repair moved the file's shards (asked once).
    async fn moved(&self, manifest: &Manifest) -> &MovedShards {
        self.moved
            .get_or_init(|| file_deal::moved_shards(self.chain.as_ref(), &self.network, manifest))
            .await
    }

    /// The chain's answer if it was asked.
    fn moved_if_known(&self) -> Option<&MovedShards> {
        self.moved.get()
    }

    /// Where shard `j` of segment `s` should be, best first: the holders
    /// the chain names if repair moved it (the hinted node lost it, and is
    /// tried last), else the hinted node.
    fn candidates(&self, s: u64, j: usize) -> (Vec<NodeIndex>, Option<NodeIndex>) {
        let moved = self
            .moved_if_known()
            .map(|m| m.holders(s, j))
            .unwrap_or_default();
        if moved.is_empty() {
            (self.hint[j].into_iter().collect(), None)
        } else {
            (moved.to_vec(), self.hint[j].filter(|h| !moved.contains(h)))
        }
    }

    fn is_slow(&self, node: NodeIndex) -> bool {
        lock(&self.slow).contains(&node)
    }

    fn mark_slow(&self, node: NodeIndex) {
        lock(&self.slow).insert(node);
    }

    /// Asks every node which of `ids` it holds (slow nodes get
    /// `slow_after`, then count as holding nothing).
    pub async fn scan(&self, ids: &[ContentId]) -> HashMap<ContentId, Vec<NodeIndex>> {
        let mut asks: FuturesUnordered<_> = (0..self.network.len())
            .map(|node| async move {
                let wait = if self.is_slow(node) {
                    self.slow_after
                } else {
                    self.slow_after * 4
                };
                let answer = tokio::time::timeout(wait, self.network.has(node, ids)).await;
                (node, answer)
            })
            .collect();
        let mut found: HashMap<ContentId, Vec<NodeIndex>> = HashMap::new();
        while let Some((node, answer)) = asks.next().await {
            match answer {
                Ok(Ok(sizes)) => {
                    for (id, size) in ids.iter().zip(sizes) {
                        if size.is_some() {
                            found.entry(*id).or_default().push(node);
                        }
                    }
                }
                _ => self.mark_slow(node),
            }
        }
        found
    }
}

/// Fetches and opens the manifest named by `cap`.
pub(crate) async fn fetch_manifest(
    network: &Network,
    cap: &Capability,
    slow_after: Duration,
) -> Result<Manifest, Error> {
    let id = cap.manifest;
    let mut ranking = network.ranked(id.digest(), network.len());
    ranking.sort_by_key(|&n| network.preference(n));
    let mut next = ranking.into_iter();
    let ask = |node: NodeIndex| async move {
        let sizes = network.has(node, &[id]).await?;
        match sizes.first().copied().flatten() {
            Some(size) if size <= MAX_MANIFEST_FETCH => {
                network.fetch(node, id, size, 0..size).await.map(Some)
            }
            _ => Ok(None),
        }
    };
    let mut running = FuturesUnordered::new();
    for node in next.by_ref().take(MANIFEST_FANOUT) {
        running.push(ask(node));
    }
    let mut asked = running.len();
    loop {
        // A holder silent for `slow_after` gets a rival, as shard fetches do.
        let answer = tokio::select! {
            answer = running.next() => match answer {
                Some(answer) => Some(answer),
                None => break,
            },
            () = tokio::time::sleep(slow_after) => None,
        };
        if let Some(Ok(Some(bytes))) = answer {
            // Bytes verified against the id: a failure to open is the key's.
            return Ok(Manifest::open(&id, &bytes, &cap.key)?);
        }
        if let Some(node) = next.next() {
            asked += 1;
            running.push(ask(node));
        }
    }
    Err(Error::ManifestNotFound {
        id,
        asked,
        nodes: network.len(),
    })
}

/// Fetch statistics of one segment.
#[derive(Debug, Default, Clone, Copy)]
struct SegmentStats {
    fetched: u64,
    hedged: u64,
    failed: u64,
    from_new_holders: u64,
    scans: u64,
}

/// Gathers at least `k` verified shards of segment `s`, data shards first.
async fn fetch_segment(
    locator: &Locator,
    manifest: &Manifest,
    s: u64,
) -> Result<(SegmentShards, SegmentStats), Error> {
    let mut set = SegmentShards::new(manifest, s)?;
    let ids = manifest.segment_shards(s).unwrap_or_default().to_vec();
    let size = set.shard_size() as u64;
    let k = manifest.params().k();
    let network = &locator.network;
    let moved = locator.moved(manifest).await;
    // Candidates: the known holder of every column (the chain's for a
    // repaired shard, else the hint's), data columns first; nodes that
    // misbehaved earlier, and hinted nodes repair moved the shard away
    // from, go to the back.
    let mut queue: VecDeque<(usize, NodeIndex)> = VecDeque::new();
    let mut later = Vec::new();
    let mut last = Vec::new();
    for j in 0..ids.len() {
        let (nodes, old) = locator.candidates(s, j);
        for node in nodes {
            if locator.is_slow(node) {
                later.push((j, node));
            } else {
                queue.push_back((j, node));
            }
        }
        last.extend(old.map(|node| (j, node)));
    }
    queue.extend(later);
    queue.extend(last);
    let mut tried: HashSet<(usize, NodeIndex)> = HashSet::new();
    let mut in_flight: HashSet<usize> = HashSet::new();
    let mut stats = SegmentStats::default();
    let mut reasons = Vec::new();
    let mut scanned = false;
    let fetch = |j: usize, node: NodeIndex| {
        let id = ids[j];
        async move { (j, node, network.fetch(node, id, size, 0..size).await) }
    };
    let mut running = FuturesUnordered::new();
    // Pushed back whenever anything arrives; when it fires, every fetch
    // still running is stuck.
    let stall = tokio::time::sleep(locator.slow_after);
    tokio::pin!(stall);
    loop {
        // Keep enough fetches going to finish, preferring shards not yet
        // held or in flight.
        while set.good() + running.len() < k {
            let Some((j, node)) = pop_candidate(locator, &mut queue, &set, &in_flight, &tried)
            else {
                break;
            };
            tried.insert((j, node));
            in_flight.insert(j);
            running.push(fetch(j, node));
        }
        if running.is_empty() {
            if !scanned {
                scanned = true;
                stats.scans += 1;
                let found = locator.scan(&ids).await;
                for (j, id) in ids.iter().enumerate() {
                    for &node in found.get(id).map(Vec::as_slice).unwrap_or_default() {
                        if !tried.contains(&(j, node)) {
                            queue.push_back((j, node));
                        }
                    }
                }
                continue;
            }
            return Err(Error::SegmentUnavailable {
                segment: s,
                have: set.good(),
                need: k,
                reasons: summarize(&reasons),
            });
        }
        tokio::select! {
            Some((j, node, result)) = running.next() => {
                stall.as_mut().reset(tokio::time::Instant::now() + locator.slow_after);
                in_flight.remove(&j);
                match result {
                    // The network client verified the whole shard against
                    // its id as a bao stream: no second hash.
                    Ok(bytes) => match set.insert_verified(j, bytes) {
                        Ok(()) => {
                            stats.fetched += 1;
                            if moved.holders(s, j).contains(&node) {
                                stats.from_new_holders += 1;
                            }
                            if set.is_decodable() {
                                return Ok((set, stats));
                            }
                        }
                        Err(e) => {
                            stats.failed += 1;
                            reasons.push(e.to_string());
                            locator.mark_slow(node);
                        }
                    },
                    Err(e) => {
                        stats.failed += 1;
                        if !is_not_found(&e) {
                            locator.mark_slow(node);
                        }
                        tracing::debug!(segment = s, shard = j, error = %e, "shard fetch failed");
                        reasons.push(reason(network, node, &e));
                    }
                }
            }
            () = &mut stall => {
                // Nothing arrived for `slow_after`: the nodes still busy are
                // slow (asked last from now on), and each of their fetches
                // gets a rival from another node.
                mark_outstanding_slow(locator, &tried, &in_flight);
                for _ in 0..running.len() {
                    let Some((j, node)) = pop_candidate(locator, &mut queue, &set, &in_flight, &tried)
                    else {
                        break;
                    };
                    stats.hedged += 1;
                    tried.insert((j, node));
                    in_flight.insert(j);
                    running.push(fetch(j, node));
                }
                stall.as_mut().reset(tokio::time::Instant::now() + locator.slow_after);
            }
        }
    }
}

/// Nodes with fetches still in flight at a hedge tick are slow.
fn mark_outstanding_slow(
    locator: &Locator,
    tried: &HashSet<(usize, NodeIndex)>,
    in_flight: &HashSet<usize>,
) {
    for &(j, node) in tried {
        if in_flight.contains(&j) {
            locator.mark_slow(node);
        }
    }
}

/// The next candidate: a shard neither held nor being fetched, else any
/// untried (shard, node) pair.
fn pop_candidate(
    locator: &Locator,
    queue: &mut VecDeque<(usize, NodeIndex)>,
    set: &SegmentShards,
    in_flight: &HashSet<usize>,
    tried: &HashSet<(usize, NodeIndex)>,
) -> Option<(usize, NodeIndex)> {
    let held = |j: usize| set.missing().all(|m| m != j);
    // Best first: a node known to answer over an unknown one over a slow
    // or unreachable one; data shards (earlier in the queue) on ties.
    let rank = |n: NodeIndex| {
        if locator.is_slow(n) {
            3
        } else {
            locator.network.preference(n)
        }
    };
    let best = |fresh_only: bool| {
        queue
            .iter()
            .enumerate()
            .filter(|(_, &(j, n))| {
                let busy = fresh_only && in_flight.contains(&j);
                !(held(j) || tried.contains(&(j, n)) || busy)
            })
            .min_by_key(|(i, &(_, n))| (rank(n), *i))
            .map(|(i, _)| i)
    };
    let i = best(true).or_else(|| best(false))?;
    queue.remove(i)
}

/// How to run one download.
pub(crate) struct DownloadPlan {
    /// Plaintext offset to start at (rounded down to a block).
    pub resume_at: u64,
    /// Segments fetched at once.
    pub parallelism: usize,
    /// Silence after which one more shard is fetched.
    pub slow_after: Duration,
    pub progress: Arc<dyn Progress>,
    /// The chain to ask where repair moved shards.
    pub chain: Option<ChainClient>,
}

/// Where plaintext goes.
pub(crate) enum Output<'a> {
    /// Any async writer: each segment is decoded into a buffer, then written.
    Async(&'a mut (dyn AsyncWrite + Unpin + Send)),
    /// A file: decoded straight into it on the decoding thread.
    File(std::io::BufWriter<std::fs::File>),
}

/// A `Write` that counts what passes.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the plaintext from byte `plan.resume_at` (block-aligned by the
/// decoder) to `output`; gives the file back if it was one.
pub(crate) async fn download(
    network: &Network,
    manifest: Arc<Manifest>,
    cap: &Capability,
    output: Output<'_>,
    plan: DownloadPlan,
) -> Result<(GetReport, Option<std::fs::File>), Error> {
    let DownloadPlan {
        resume_at,
        parallelism,
        slow_after,
        progress,
        chain,
    } = plan;
    let started = Instant::now();
    let (mut decoder, from) = FileDecoder::resume_at(&manifest, &cap.key, resume_at);
    let size = manifest.plaintext_len();
    progress.start(size);
    progress.advance(from);
    let locator = Arc::new(Locator::new(network, &manifest, chain, slow_after));
    let moved = locator.moved(&manifest).await;
    let mut report = GetReport {
        size_bytes: size,
        resumed_at: from,
        segments: manifest.segment_count(),
        moved_shards_known: moved.known() as u64,
        chain_error: moved.error.clone(),
        ..GetReport::default()
    };
    let first = decoder.next_segment();
    let count = manifest.segment_count();
    let mut segments = futures::stream::iter(first..count)
        .map(|s| {
            let locator = locator.clone();
            let manifest = manifest.clone();
            tokio::spawn(async move { fetch_segment(&locator, &manifest, s).await })
        })
        .buffered(parallelism.max(1));
    let (mut writer, mut sink) = match output {
        Output::Async(w) => (
            Some(w),
            Counting {
                inner: Sink::Buffer(Vec::new()),
                written: 0,
            },
        ),
        Output::File(f) => (
            None,
            Counting {
                inner: Sink::File(f),
                written: 0,
            },
        ),
    };
    let thread_failed = |e: tokio::task::JoinError| Error::Io {
        context: "the decoder thread failed".into(),
        source: std::io::Error::other(e.to_string()),
    };
    while let Some(joined) = segments.next().await {
        let (set, stats) = joined.map_err(|e| Error::Io {
            context: "a segment fetch task failed".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        report.shards_fetched += stats.fetched;
        report.hedged += stats.hedged;
        report.failed_fetches += stats.failed;
        report.fetched_from_new_holders += stats.from_new_holders;
        report.asked_every_node += stats.scans;
        let before = sink.written;
        let (d, b, decoded) = tokio::task::spawn_blocking(move || {
            if let Sink::Buffer(buf) = &mut sink.inner {
                buf.clear();
            }
            let r = decoder.write_segment(set, &mut sink);
            (decoder, sink, r)
        })
        .await
        .map_err(thread_failed)?;
        decoder = d;
        sink = b;
        report.shards_rebuilt += decoded?.rebuilt as u64;
        if let (Some(w), Sink::Buffer(buf)) = (writer.as_mut(), &sink.inner) {
            w.write_all(buf)
                .await
                .map_err(Error::io("writing the output"))?;
        }
        progress.advance(sink.written - before);
    }
    decoder.finish()?;
    report.bytes_written = sink.written;
    let file = match sink.inner {
        Sink::File(f) => Some(
            f.into_inner()
                .map_err(|e| Error::io("writing the output")(e.into_error()))?,
        ),
        Sink::Buffer(_) => {
            if let Some(w) = writer {
                w.flush().await.map_err(Error::io("writing the output"))?;
            }
            None
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, file))
}

/// The decoding thread's output.
enum Sink {
    Buffer(Vec<u8>),
    File(std::io::BufWriter<std::fs::File>),
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Buffer(v) => std::io::Write::write(v, buf),
            Self::File(f) => std::io::Write::write(f, buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Buffer(_) => Ok(()),
            Self::File(f) => f.flush(),
        }
    }
}

/// Reads plaintext bytes `range`, fetching only the shard ranges that hold
/// it (a whole segment only when a needed data shard cannot be read).
pub(crate) async fn read_range(
    network: &Network,
    manifest: &Manifest,
    cap: &Capability,
    range: Range<u64>,
    chain: Option<ChainClient>,
    slow_after: Duration,
) -> Result<Vec<u8>, Error> {
    let plan = ReadPlan::new(manifest, range)?;
    let locator = Locator::new(network, manifest, chain, slow_after);
    let locator = &locator;
    // Owned pieces: a closure over `&ShardPiece` would make the future
    // impossible to prove `Send` (a mount spawns range reads on tasks).
    let fetched = futures::stream::iter(plan.pieces().to_vec())
        .map(|piece| async move { read_piece(locator, manifest, &piece).await })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    let mut ciphertext = Vec::with_capacity(plan.ciphertext_len() as usize);
    for bytes in fetched {
        ciphertext.extend_from_slice(&bytes?);
    }
    Ok(plan.open(&cap.key, &ciphertext)?)
}

async fn read_piece(
    locator: &Locator,
    manifest: &Manifest,
    piece: &cairn_protocol::range::ShardPiece,
) -> Result<Vec<u8>, Error> {
    let network = &locator.network;
    let size = piece.shard_size as u64;
    // Popped from the back: the best candidate last. The hint first; the
    // chain only once it failed; every node only once both did.
    let mut nodes: Vec<NodeIndex> = locator.hint[piece.shard].into_iter().collect();
    let mut tried: Vec<NodeIndex> = Vec::new();
    let mut asked_chain = false;
    let mut scanned = false;
    loop {
        while let Some(node) = nodes.pop() {
            if tried.contains(&node) {
                continue;
            }
            tried.push(node);
            let fetch = network.fetch(node, piece.id, size, piece.range.clone());
            if let Ok(Ok(bytes)) = tokio::time::timeout(locator.slow_after * 2, fetch).await {
                return Ok(bytes);
            }
            locator.mark_slow(node);
        }
        if !asked_chain {
            asked_chain = true;
            locator.moved(manifest).await;
            let (best, _) = locator.candidates(piece.segment, piece.shard);
            nodes = best.into_iter().rev().collect();
            continue;
        }
        if scanned {
            break;
        }
        scanned = true;
        nodes = locator
            .scan(&[piece.id])
            .await
            .remove(&piece.id)
            .unwrap_or_default();
        nodes.retain(|n| !tried.contains(n));
    }
    // The data shard is nowhere to be read: rebuild its segment.
    let (set, _) = fetch_segment(locator, manifest, piece.segment).await?;
    let data = rebuild_data_shard(manifest, set, piece.segment, piece.shard)?;
    Ok(data[piece.range.start as usize..piece.range.end as usize].to_vec())
}

/// Data shard `j` of a decodable segment, rebuilding it if needed.
fn rebuild_data_shard(
    manifest: &Manifest,
    set: SegmentShards,
    segment: u64,
    j: usize,
) -> Result<Vec<u8>, Error> {
    let coder = cairn_protocol::erasure::ErasureCoder::new(manifest.params());
    let size = set.shard_size();
    let mut slots = set.into_slots();
    if slots[j].is_none() {
        coder
            .reconstruct_data(&mut slots, size)
            .map_err(|source| cairn_protocol::decoder::DecodeError::Erasure { segment, source })?;
    }
    slots[j]
        .take()
        .ok_or_else(|| Error::from(cairn_protocol::decoder::DecodeError::Incomplete { missing: 1 }))
}
