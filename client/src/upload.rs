//! The upload pipeline: plaintext in, shards on distinct nodes, a manifest
//! stored with more copies than any shard, a capability out.
//!
//! ```text
//! reader ─▶ encoder thread ─▶ segments (≤ parallelism in flight) ─▶ n shard stores each
//!                                                                   │ slow? race a spare node
//!                                                                   │ failed? re-place on a spare
//!                                                                   ▼
//!                                      journal line per acknowledged shard ─▶ manifest copies
//! ```
//!
//! Placement is by column: shard `j` of every segment goes to the node that
//! ranks `j`-th for the upload's random seed (rendezvous hashing), so a file
//! touches `n` nodes and the manifest names them in its placement hint. A
//! node that fails or is slow loses its column to the best spare node for
//! the rest of the upload; shards it already holds stay where they are
//! (readers find them with `has` queries when the hint is stale).
//!
//! Memory: the encoder thread holds one segment, one more waits in the
//! channel, and `parallelism` are being stored; each is `n · S` bytes.
//!
//! The report says where every shard and manifest copy went
//! ([`PutReport::placement`]): a storage deal ([`crate::deal`]) commits each
//! of those nodes to what it holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cairn_protocol::encoder::{EncodedSegment, EncoderConfig};
use cairn_protocol::{Capability, CodingParams, ContentId, FileKey, Manifest, ReadEncoder};
use ed25519_dalek::SigningKey;
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::error::{summarize, Error};
use crate::journal::Journal;
use crate::network::{reason, Network, NodeIndex};
use crate::progress::Progress;

/// Stores of one shard tried before its segment fails.
const MAX_ATTEMPTS_PER_SHARD: usize = 4;

/// What an upload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutReport {
    #[serde(serialize_with = "as_text")]
    pub capability: Capability,
    pub size_bytes: u64,
    pub k: usize,
    pub n: usize,
    pub segments: u64,
    /// Shards sent and acknowledged in this run.
    pub shards_stored: u64,
    /// Shards an earlier, interrupted run had stored (not sent again).
    pub shards_resumed: u64,
    /// Shard bytes sent in this run.
    pub bytes_sent: u64,
    /// Shards raced on a spare node because their node was slow.
    pub hedged: u64,
    /// Shards moved to a spare node because their node failed.
    pub replaced: u64,
    /// Nodes holding the manifest.
    pub manifest_copies: usize,
    pub seconds: f64,
    /// Where each shard of the file, and each copy of its manifest, is
    /// stored (for a resumed upload, where the earlier run stored it): one
    /// entry per stored object and node. Left out of the JSON report: it
    /// is as long as the file has shards.
    #[serde(skip)]
    pub placement: Vec<PlacedShard>,
    /// Every segment's shards `(id, size)` in index order: what the deal's
    /// public repair data lists ([`crate::repair_data`]). Left out of the
    /// JSON report like `placement`.
    #[serde(skip)]
    pub segment_shards: Vec<Vec<(ContentId, u64)>>,
}

/// A stored object (a shard or a manifest copy) and the node that
/// acknowledged it: what a storage deal asks that node to commit to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlacedShard {
    pub node: PeerId,
    pub id: ContentId,
    pub size: u64,
}

fn as_text<S: serde::Serializer>(c: &Capability, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
}

/// Everything an upload needs besides its bytes.
pub(crate) struct UploadPlan {
    pub key: FileKey,
    pub config: EncoderConfig,
    pub placement_seed: [u8; 32],
    /// Signs every store: the nodes charge the shards to this account
    /// until a deal pays for them.
    pub owner: SigningKey,
    pub parallelism: usize,
    pub slow_after: std::time::Duration,
    pub manifest_copies: usize,
    pub total: u64,
}

/// The column → node map and the nodes this upload stopped trusting.
#[derive(Debug)]
struct Placement {
    ranking: Vec<NodeIndex>,
    columns: Vec<NodeIndex>,
    bad: HashSet<NodeIndex>,
}

impl Placement {
    fn new(ranking: Vec<NodeIndex>, n: usize) -> Self {
        let columns = ranking[..n].to_vec();
        Self {
            ranking,
            columns,
            bad: HashSet::new(),
        }
    }

    /// The node for shard `j` of a segment whose shards already sit on `taken`.
    fn target(&mut self, j: usize, taken: &mut HashSet<NodeIndex>) -> Option<NodeIndex> {
        let c = self.columns[j];
        if !self.bad.contains(&c) && taken.insert(c) {
            return Some(c);
        }
        self.spare(taken)
    }

    /// The best node that holds no column, is trusted, and holds nothing of
    /// this segment.
    fn spare(&mut self, taken: &mut HashSet<NodeIndex>) -> Option<NodeIndex> {
        let node =
            self.ranking.iter().copied().find(|n| {
                !self.bad.contains(n) && !self.columns.contains(n) && !taken.contains(n)
            })?;
        taken.insert(node);
        Some(node)
    }

    /// Shard `j` landed on `node`: if its column's node failed or was
    /// outrun, the column moves there.
    fn settle(&mut self, j: usize, node: NodeIndex, replaced_node: Option<NodeIndex>) {
        if let Some(old) = replaced_node {
            if self.columns[j] == old && !self.columns.contains(&node) {
                self.columns[j] = node;
            }
        }
    }
}

/// State shared by the segment tasks.
struct Shared {
    network: Network,
    owner: SigningKey,
    slow_after: std::time::Duration,
    placement: Mutex<Placement>,
    journal: Option<Mutex<Journal>>,
    /// (segment, shard) → node, from an earlier run.
    resumed: HashMap<(u64, u16), NodeIndex>,
    /// (segment, shard) → the node that acknowledged it, this run or an
    /// earlier one: the file's placement once the upload completes.
    locations: Mutex<HashMap<(u64, u16), NodeIndex>>,
    progress: Arc<dyn Progress>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    stored: u64,
    resumed: u64,
    bytes: u64,
    hedged: u64,
    replaced: u64,
}

/// A shard of a shared segment, as `Bytes` without a copy.
struct ShardView {
    segment: Arc<EncodedSegment>,
    j: usize,
}

impl AsRef<[u8]> for ShardView {
    fn as_ref(&self) -> &[u8] {
        self.segment.shard(self.j)
    }
}

/// Uploads everything `reader` yields.
pub(crate) async fn upload(
    network: &Network,
    reader: Box<dyn std::io::Read + Send>,
    plan: UploadPlan,
    journal: Option<Journal>,
    progress: Arc<dyn Progress>,
) -> Result<PutReport, Error> {
    let started = Instant::now();
    let params = plan.config.params;
    let n = params.n();
    params.check_fits(network.len())?;
    progress.start(plan.total);

    let resumed: HashMap<(u64, u16), NodeIndex> = journal
        .as_ref()
        .map(|j| {
            j.done()
                .iter()
                .filter_map(|(&(s, shard), peer)| {
                    let peer: libp2p::PeerId = peer.parse().ok()?;
                    Some(((s, shard), network.index_of(&peer.to_bytes())?))
                })
                .collect()
        })
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        network: network.clone(),
        owner: plan.owner.clone(),
        slow_after: plan.slow_after,
        placement: Mutex::new(Placement::new(network.ranked(&plan.placement_seed, n), n)),
        journal: journal.map(Mutex::new),
        locations: Mutex::new(resumed.clone()),
        resumed,
        progress: progress.clone(),
        counters: Mutex::new(Counters::default()),
    });

    // The encoder runs on its own thread. It takes a permit before it
    // starts a segment and the permit goes when the segment is stored, so
    // at most `parallelism + 1` segments exist at once (one being encoded).
    // Stored segments come back for their buffers to be reused, which
    // spares the allocator megabytes of churn per segment.
    let permits = Arc::new(tokio::sync::Semaphore::new(plan.parallelism + 1));
    let (tx, mut rx) = mpsc::channel::<(Arc<EncodedSegment>, u64, OwnedSemaphorePermit)>(1);
    let (give_back, returned) = std::sync::mpsc::channel::<EncodedSegment>();
    let key = plan.key.clone();
    let config = plan.config;
    let encoder_permits = permits.clone();
    let encoder = tokio::task::spawn_blocking(move || -> Result<Manifest, Error> {
        let mut encoder = ReadEncoder::new(reader, &key, config)?;
        let mut position = 0;
        loop {
            let runtime = tokio::runtime::Handle::current();
            let Ok(permit) = runtime.block_on(encoder_permits.clone().acquire_owned()) else {
                return Err(Error::Cancelled);
            };
            if let Ok(segment) = returned.try_recv() {
                encoder.recycle(segment);
            }
            let Some(segment) = encoder.next_segment()? else {
                break;
            };
            let plain = encoder.plaintext_len() - position;
            position = encoder.plaintext_len();
            if tx
                .blocking_send((Arc::new(segment), plain, permit))
                .is_err()
            {
                return Err(Error::Cancelled);
            }
        }
        Ok(encoder.manifest()?)
    });

    let mut tasks: JoinSet<Result<(), Error>> = JoinSet::new();
    let mut failure: Option<Error> = None;
    while let Some((segment, plain, permit)) = rx.recv().await {
        while tasks.len() >= plan.parallelism {
            if let Some(Err(e)) = join(tasks.join_next().await) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_some() {
            break;
        }
        let shared = shared.clone();
        let give_back = give_back.clone();
        tasks.spawn(async move {
            upload_segment(&shared, segment.clone()).await?;
            shared.progress.advance(plain);
            // Every store is answered, so the network holds no view of the
            // segment any more (a raced store still in flight may; then the
            // buffers are simply dropped).
            if let Ok(segment) = Arc::try_unwrap(segment) {
                let _ = give_back.send(segment);
            }
            drop(permit);
            Ok(())
        });
    }
    while failure.is_none() && !tasks.is_empty() {
        if let Some(Err(e)) = join(tasks.join_next().await) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        drop(rx);
        permits.close();
        tasks.shutdown().await;
        if let Some(j) = &shared.journal {
            let _ = lock(j).sync();
        }
        return Err(e);
    }
    let manifest = encoder.await.map_err(|e| Error::Io {
        context: "the encoder thread stopped".into(),
        source: std::io::Error::other(e.to_string()),
    })??;

    // The placement hint: the node that holds each column now.
    let columns = lock(&shared.placement).columns.clone();
    let hint = columns.iter().map(|&i| network.id(i).to_vec()).collect();
    let manifest = manifest.with_placement(hint)?;
    let (manifest_id, sealed) = manifest.seal(&plan.key);
    let minimum = plan.manifest_copies.min(params.m() + 1).max(1);
    let sealed_len = sealed.len() as u64;
    let copies = store_manifest(
        network,
        manifest_id,
        Bytes::from(sealed),
        plan.manifest_copies,
        minimum,
        &plan.owner,
    )
    .await?;
    let mut placement = shard_placement(network, &manifest, &lock(&shared.locations))?;
    let segment_shards = cairn_protocol::repair::data::manifest_segments(&manifest);
    placement.extend(copies.iter().map(|&i| PlacedShard {
        node: network.nodes()[i].peer,
        id: manifest_id,
        size: sealed_len,
    }));

    if let Some(j) = &shared.journal {
        lock(j).sync()?;
    }
    let counters = *lock(&shared.counters);
    Ok(PutReport {
        capability: Capability::new(manifest_id, plan.key),
        size_bytes: manifest.plaintext_len(),
        k: params.k(),
        n,
        segments: manifest.segment_count(),
        shards_stored: counters.stored,
        shards_resumed: counters.resumed,
        bytes_sent: counters.bytes,
        hedged: counters.hedged,
        replaced: counters.replaced,
        manifest_copies: copies.len(),
        seconds: started.elapsed().as_secs_f64(),
        placement,
        segment_shards,
    })
}

/// Every shard of `manifest` with the node `locations` says holds it.
fn shard_placement(
    network: &Network,
    manifest: &Manifest,
    locations: &HashMap<(u64, u16), NodeIndex>,
) -> Result<Vec<PlacedShard>, Error> {
    let mut out = Vec::with_capacity(manifest.shards().len());
    for s in 0..manifest.segment_count() {
        // The manifest was just built from these segments: both exist.
        let (Some(geometry), Some(ids)) =
            (manifest.layout().segment(s), manifest.segment_shards(s))
        else {
            return Err(Error::Cancelled);
        };
        for (j, id) in ids.iter().enumerate() {
            // Every shard of every segment was acknowledged, or the upload
            // would have failed before its manifest was built.
            let Some(&node) = locations.get(&(s, j as u16)) else {
                return Err(Error::UploadIncomplete {
                    segment: s,
                    placed: j,
                    need: ids.len(),
                    reasons: format!("no node recorded for shard {j}"),
                });
            };
            out.push(PlacedShard {
                node: network.nodes()[node].peer,
                id: *id,
                size: geometry.shard_size as u64,
            });
        }
    }
    Ok(out)
}

fn join(
    joined: Option<Result<Result<(), Error>, tokio::task::JoinError>>,
) -> Option<Result<(), Error>> {
    match joined? {
        Ok(r) => Some(r),
        Err(e) if e.is_cancelled() => Some(Err(Error::Cancelled)),
        Err(e) => Some(Err(Error::Io {
            context: "a segment upload task failed".into(),
            source: std::io::Error::other(e.to_string()),
        })),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn upload_segment(shared: &Shared, segment: Arc<EncodedSegment>) -> Result<(), Error> {
    let s = segment.index();
    let n = segment.shard_count();
    let taken = Mutex::new(HashSet::new());
    let mut pending = Vec::new();
    for j in 0..n {
        match shared.resumed.get(&(s, j as u16)) {
            Some(&node) => {
                lock(&taken).insert(node);
                lock(&shared.counters).resumed += 1;
            }
            None => pending.push(j),
        }
    }
    let mut stores: FuturesUnordered<_> = pending
        .into_iter()
        .map(|j| store_shard(shared, &segment, j, &taken))
        .collect();
    let mut placed = n - stores.len();
    let mut reasons = Vec::new();
    while let Some(result) = stores.next().await {
        match result {
            Ok(()) => placed += 1,
            Err(r) => reasons.extend(r),
        }
    }
    if placed < n {
        return Err(Error::UploadIncomplete {
            segment: s,
            placed,
            need: n,
            reasons: summarize(&reasons),
        });
    }
    if let Some(j) = &shared.journal {
        lock(j).sync()?;
    }
    Ok(())
}

/// Stores shard `j` of `segment` on one node, racing a spare when its node
/// is slow and moving to a spare when its node fails.
async fn store_shard(
    shared: &Shared,
    segment: &Arc<EncodedSegment>,
    j: usize,
    taken: &Mutex<HashSet<NodeIndex>>,
) -> Result<(), Vec<String>> {
    let id = segment.ids()[j];
    let data = Bytes::from_owner(ShardView {
        segment: segment.clone(),
        j,
    });
    let first = {
        let mut p = lock(&shared.placement);
        p.target(j, &mut lock(taken))
    };
    let Some(first) = first else {
        return Err(vec!["no spare node left".into()]);
    };
    let attempt = |node: NodeIndex| {
        let data = data.clone();
        async move {
            let r = shared.network.store(node, id, data, &shared.owner).await;
            (node, r)
        }
    };
    let mut running = FuturesUnordered::new();
    running.push(attempt(first));
    let mut attempts = 1;
    let mut reasons = Vec::new();
    let mut hedged = false;
    let slow = tokio::time::sleep(shared.slow_after);
    tokio::pin!(slow);
    // The node whose column a success replaces, if any.
    let mut displaced: Option<NodeIndex> = None;
    loop {
        tokio::select! {
            next = running.next() => {
                let Some((node, result)) = next else {
                    return Err(reasons);
                };
                match result {
                    Ok(_existed) => {
                        lock(&shared.placement).settle(j, node, displaced.filter(|&d| d != node));
                        record(shared, segment.index(), j, node, id, segment.shard_size() as u64)?;
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::debug!(segment = segment.index(), shard = j, error = %e, "shard store failed");
                        reasons.push(reason(&shared.network, node, &e));
                        {
                            let mut p = lock(&shared.placement);
                            p.bad.insert(node);
                        }
                        if displaced.is_none() {
                            displaced = Some(node);
                        }
                        if attempts < MAX_ATTEMPTS_PER_SHARD {
                            let spare = {
                                let mut p = lock(&shared.placement);
                                p.spare(&mut lock(taken))
                            };
                            if let Some(spare) = spare {
                                attempts += 1;
                                lock(&shared.counters).replaced += 1;
                                running.push(attempt(spare));
                            }
                        }
                        if running.is_empty() {
                            return Err(reasons);
                        }
                    }
                }
            }
            () = &mut slow, if !hedged => {
                hedged = true;
                let spare = {
                    let mut p = lock(&shared.placement);
                    p.spare(&mut lock(taken))
                };
                if let Some(spare) = spare {
                    tracing::debug!(segment = segment.index(), shard = j, "slow store raced on a spare node");
                    attempts += 1;
                    displaced = displaced.or(Some(first));
                    lock(&shared.counters).hedged += 1;
                    running.push(attempt(spare));
                }
            }
        }
    }
}

fn record(
    shared: &Shared,
    segment: u64,
    j: usize,
    node: NodeIndex,
    _id: ContentId,
    size: u64,
) -> Result<(), Vec<String>> {
    {
        let mut c = lock(&shared.counters);
        c.stored += 1;
        c.bytes += size;
    }
    lock(&shared.locations).insert((segment, j as u16), node);
    if let Some(journal) = &shared.journal {
        let peer = shared.network.nodes()[node].peer.to_string();
        lock(journal)
            .record(segment, j as u16, &peer)
            .map_err(|e| vec![e.to_string()])?;
    }
    Ok(())
}

/// Stores the sealed manifest on up to `copies` nodes, best ranked for its
/// id first; fails below `minimum`. Returns the nodes that hold it.
async fn store_manifest(
    network: &Network,
    id: ContentId,
    sealed: Bytes,
    copies: usize,
    minimum: usize,
    owner: &SigningKey,
) -> Result<Vec<NodeIndex>, Error> {
    let ranking = network.ranked(id.digest(), network.len());
    let mut next = ranking.into_iter();
    let store = |node: NodeIndex| {
        let sealed = sealed.clone();
        async move { (node, network.store(node, id, sealed, owner).await) }
    };
    let mut running: FuturesUnordered<_> = next.by_ref().take(copies).map(store).collect();
    let mut stored = Vec::new();
    let mut reasons = Vec::new();
    while let Some((node, result)) = running.next().await {
        match result {
            Ok(_) => stored.push(node),
            Err(e) => {
                reasons.push(reason(network, node, &e));
                if let Some(spare) = next.next() {
                    running.push(store(spare));
                }
            }
        }
    }
    if stored.len() < minimum {
        return Err(Error::ManifestUnstored {
            stored: stored.len(),
            need: minimum,
            reasons: summarize(&reasons),
        });
    }
    Ok(stored)
}

/// The coding parameters to use on a network of `nodes`: `explicit` as
/// given (refused if it does not fit), otherwise the config's scaled down.
pub(crate) fn params_for(
    configured: CodingParams,
    explicit: Option<CodingParams>,
    nodes: usize,
) -> Result<CodingParams, Error> {
    match explicit {
        Some(p) => {
            p.check_fits(nodes)?;
            Ok(p)
        }
        None => Ok(configured.fit_to(nodes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_moves_a_failed_column_to_a_spare_and_keeps_nodes_distinct() {
        let mut p = Placement::new(vec![5, 4, 3, 2, 1, 0], 3);
        let mut taken = HashSet::new();
        assert_eq!(p.target(0, &mut taken), Some(5));
        assert_eq!(p.target(1, &mut taken), Some(4));
        // node 3 fails for shard 2: a spare that holds no column
        p.bad.insert(3);
        let spare = p.spare(&mut taken).unwrap();
        assert_eq!(spare, 2);
        p.settle(2, spare, Some(3));
        assert_eq!(p.columns, vec![5, 4, 2]);
        // the next segment uses the new column and never the bad node
        let mut taken = HashSet::new();
        let got: Vec<_> = (0..3).map(|j| p.target(j, &mut taken).unwrap()).collect();
        assert_eq!(got, vec![5, 4, 2]);
        // a segment that already holds a shard on node 4 (resumed) gets a
        // spare for column 1 instead of a second shard on node 4
        let mut taken = HashSet::from([4]);
        assert_eq!(p.target(1, &mut taken), Some(1));
        assert_eq!(p.target(2, &mut taken), Some(2));
        assert_eq!(p.spare(&mut taken), Some(0));
        assert_eq!(p.spare(&mut taken), None);
    }
}
