//! `cairn bench`: upload and download throughput and the client's peak
//! memory against a devnet of real nodes started for the purpose.
//!
//! Defaults follow Tahoe-LAFS (10 nodes, k = 3, n = 10) so numbers can be
//! compared with it. The upload reads a pseudo-random stream generated and
//! hashed on the fly (ChaCha8, a few percent of one core), so a 10 GiB run
//! needs no 10 GiB input file; the download streams into a BLAKE3 hasher
//! checked against the upload's, so a fast wrong answer cannot pass, and
//! writes nothing to disk.
//!
//! CPU is counted for the whole system, this process and every node's
//! (`/proc/<pid>/stat`), and set beside an estimate of the least the data
//! path could cost on this machine ([`minimum`], priced by [`calibrate`]).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::CodingParams;
use tokio::io::AsyncWrite;

use crate::cpu;
use crate::devnet::{Devnet, DevnetOptions};
use crate::quickstart::QuickstartError;
use cairn_client::progress::Progress;
use cairn_client::{Client, GetOptions, PutOptions};

pub mod calibrate;
pub mod minimum;

use minimum::KernelCosts;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub nodes: usize,
    pub params: CodingParams,
    /// File sizes, one run each.
    pub sizes: Vec<u64>,
    /// Working directory for the devnet and the generated files.
    pub dir: PathBuf,
    /// Segments in flight (the client config's `parallelism`).
    pub parallelism: usize,
    /// The nodes' `[store] direct_io` (`None`: their default, on).
    pub direct_io: Option<bool>,
}

/// One run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRun {
    pub size_bytes: u64,
    pub upload_mib_s: f64,
    pub download_mib_s: f64,
    /// Peak resident memory of this process during the run (the larger of
    /// the two below).
    pub client_peak_rss_mib: Option<f64>,
    pub upload_peak_rss_mib: Option<f64>,
    pub download_peak_rss_mib: Option<f64>,
    pub upload_seconds: f64,
    pub download_seconds: f64,
    /// CPU seconds (user + system) per GiB of file over the upload, for the
    /// whole system: this process and every node process. `None` where
    /// `/proc` cannot be read.
    pub upload_cpu_s_per_gib: Option<f64>,
    pub download_cpu_s_per_gib: Option<f64>,
    /// The same for this process (the client) alone.
    pub upload_client_cpu_s_per_gib: Option<f64>,
    pub download_client_cpu_s_per_gib: Option<f64>,
    /// The estimate of the least the whole system must spend per GiB of
    /// file ([`minimum::minimum`]); `None` if the calibration failed.
    pub upload_min_cpu_s_per_gib: Option<f64>,
    pub download_min_cpu_s_per_gib: Option<f64>,
    /// What the bench itself adds to the client's CPU per GiB (generating
    /// and hashing the input, hashing the output): counted in the two
    /// sums above, no part of the minimum.
    pub upload_harness_cpu_s_per_gib: Option<f64>,
    pub download_harness_cpu_s_per_gib: Option<f64>,
    /// The single-thread kernel prices the minimum is built from.
    pub min_cpu_kernels_s_per_gib: Option<KernelCosts>,
}

/// Runs the benchmark; `bar(label)` gives progress for each transfer.
pub async fn run(
    opts: &BenchOptions,
    bar: impl Fn(&str) -> Arc<dyn Progress>,
) -> Result<Vec<BenchRun>, QuickstartError> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| QuickstartError::Io { context, source }
    };
    std::fs::create_dir_all(&opts.dir).map_err(io("creating the bench directory"))?;
    let largest = opts.sizes.iter().copied().max().unwrap_or(0);
    let devnet = Devnet::up(
        &opts.dir.join("devnet"),
        &DevnetOptions {
            nodes: opts.nodes,
            capacity: (largest * 2).max(1 << 30),
            validators: 0, // no consensus traffic in the measurements
            direct_io: opts.direct_io,
            ..DevnetOptions::default()
        },
    )?
    .owned();
    let mut config = devnet.client_config();
    config.state_dir = opts.dir.join("state");
    config.parallelism = opts.parallelism;
    // Once per bench, before the client's threads start (each kernel is
    // timed by its thread's clock, but they would still share the caches).
    let encoder = EncoderConfig::new(opts.params).with_segment_target(config.segment_size);
    let calibration = match calibrate::measure(&opts.dir, encoder) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("cannot estimate the minimum CPU: {e}");
            None
        }
    };
    let least = calibration.map(|(k, _)| minimum::minimum(&k, opts.params));
    let pids: Vec<u32> = devnet.nodes().iter().map(|n| n.pid).collect();
    let client = Client::connect(config)?;
    let mut runs = Vec::new();
    for &size in &opts.sizes {
        let (reader, input_hash) = Generator::new(size);
        crate::rss::reset_peak();
        let started = Instant::now();
        let cpu_before = CpuSample::now(&pids);
        let put = client
            .put(
                reader,
                Some(size),
                &PutOptions {
                    params: Some(opts.params),
                    progress: Some(bar("upload")),
                },
            )
            .await?;
        let upload = started.elapsed().as_secs_f64();
        let upload_cpu = cpu_before.spent(&pids);
        let upload_peak = peak_mib();
        let want = *lock(&input_hash);
        crate::rss::reset_peak();
        let mut sink = HashSink::default();
        let started = Instant::now();
        let cpu_before = CpuSample::now(&pids);
        client
            .get(
                &put.capability,
                &mut sink,
                &GetOptions {
                    progress: Some(bar("download")),
                    overwrite: false,
                },
            )
            .await?;
        let download = started.elapsed().as_secs_f64();
        let download_cpu = cpu_before.spent(&pids);
        let download_peak = peak_mib();
        if Some(sink.hasher.finalize()) != want || sink.len != size {
            return Err(QuickstartError::Io {
                context: "benchmark".into(),
                source: std::io::Error::other("the file read back differs from the file stored"),
            });
        }
        let mib = size as f64 / 1048576.0;
        let per_gib = |s: Option<f64>| s.map(|s| s * (1u64 << 30) as f64 / size as f64);
        let harness = calibration.map(|(_, h)| h);
        runs.push(BenchRun {
            size_bytes: size,
            upload_mib_s: mib / upload.max(1e-9),
            download_mib_s: mib / download.max(1e-9),
            client_peak_rss_mib: match (upload_peak, download_peak) {
                (Some(u), Some(d)) => Some(u.max(d)),
                (u, d) => u.or(d),
            },
            upload_peak_rss_mib: upload_peak,
            download_peak_rss_mib: download_peak,
            upload_seconds: upload,
            download_seconds: download,
            upload_cpu_s_per_gib: per_gib(upload_cpu.whole),
            download_cpu_s_per_gib: per_gib(download_cpu.whole),
            upload_client_cpu_s_per_gib: per_gib(upload_cpu.client),
            download_client_cpu_s_per_gib: per_gib(download_cpu.client),
            upload_min_cpu_s_per_gib: least.map(|(u, _)| u),
            download_min_cpu_s_per_gib: least.map(|(_, d)| d),
            upload_harness_cpu_s_per_gib: harness.map(|h| h.generate),
            download_harness_cpu_s_per_gib: harness.map(|h| h.check),
            min_cpu_kernels_s_per_gib: calibration.map(|(k, _)| k),
        });
        // Free the nodes' space for the next run.
        client.rm(&put.capability).await?;
    }
    drop(devnet);
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(runs)
}

/// CPU seconds so far of this process and of the nodes together.
struct CpuSample {
    client: Option<f64>,
    nodes: Option<f64>,
}

/// CPU seconds spent since a [`CpuSample`].
struct CpuSpent {
    client: Option<f64>,
    /// Client and nodes; `None` if any reading failed (a node that exited
    /// took its count with it, so a partial sum would be too low).
    whole: Option<f64>,
}

impl CpuSample {
    fn now(pids: &[u32]) -> Self {
        Self {
            client: cpu::self_seconds(),
            nodes: pids.iter().map(|&pid| cpu::process_seconds(pid)).sum(),
        }
    }

    fn spent(&self, pids: &[u32]) -> CpuSpent {
        let now = Self::now(pids);
        let client = now.client.zip(self.client).map(|(b, a)| b - a);
        let nodes = now.nodes.zip(self.nodes).map(|(b, a)| b - a);
        CpuSpent {
            client,
            whole: client.zip(nodes).map(|(c, n)| c + n),
        }
    }
}

fn peak_mib() -> Option<f64> {
    crate::rss::peak_rss_bytes().map(|b| b as f64 / 1048576.0)
}

/// A pseudo-random stream of `size` bytes whose BLAKE3 hash is published
/// when it ends.
struct Generator {
    rng: rand_chacha::ChaCha8Rng,
    left: u64,
    hasher: blake3::Hasher,
    done: Arc<std::sync::Mutex<Option<blake3::Hash>>>,
}

impl Generator {
    fn new(size: u64) -> (Self, Arc<std::sync::Mutex<Option<blake3::Hash>>>) {
        use rand::SeedableRng;
        let done = Arc::new(std::sync::Mutex::new(None));
        let g = Self {
            rng: rand_chacha::ChaCha8Rng::from_entropy(),
            left: size,
            hasher: blake3::Hasher::new(),
            done: done.clone(),
        };
        if size == 0 {
            *lock(&done) = Some(g.hasher.finalize());
        }
        (g, done)
    }
}

impl tokio::io::AsyncRead for Generator {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        use rand::RngCore;
        let n = (buf.remaining() as u64).min(self.left) as usize;
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        let out = buf.initialize_unfilled_to(n);
        this.rng.fill_bytes(out);
        this.hasher.update(out);
        buf.advance(n);
        this.left -= n as u64;
        if this.left == 0 {
            *lock(&this.done) = Some(this.hasher.finalize());
        }
        Poll::Ready(Ok(()))
    }
}

/// An `AsyncWrite` that only hashes.
#[derive(Default)]
struct HashSink {
    hasher: blake3::Hasher,
    len: u64,
}

impl AsyncWrite for HashSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
