//! The guided tour: a real network on this machine, a file stored on it,
//! nodes destroyed, the file read back.
//!
//! `cairn quickstart` starts a devnet of real `cairn-node` processes,
//! uploads a generated file through the same pipeline as `cairn put`, kills
//! (SIGKILL) as many nodes as the redundancy allows (chosen at random, so
//! data shards are lost as well as parity), downloads the file with nothing
//! but its capability, and compares it with the original byte for byte.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::RngCore;

use crate::devnet::{Devnet, DevnetError, DevnetOptions};
use cairn_client::error::Error;
use cairn_client::progress::Progress;
use cairn_client::{Client, GetOptions, PutOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    /// Bytes of generated plaintext.
    pub size: u64,
    /// Working directory; it must not exist yet or be empty.
    pub dir: PathBuf,
    /// Storage nodes to start.
    pub nodes: usize,
    /// Exact redundancy; `None`: the default, scaled to the nodes.
    pub params: Option<cairn_protocol::CodingParams>,
    /// Keep the working directory (and its node data) afterwards.
    pub keep: bool,
}

/// Which part of the tour a progress bar is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Generate,
    Upload,
    Download,
}

/// What happened, for people and for scripts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuickstartReport {
    pub size_bytes: u64,
    pub nodes: usize,
    pub k: usize,
    pub n: usize,
    pub segments: u64,
    pub capability: String,
    /// Devnet indices of the nodes killed.
    pub nodes_killed: Vec<usize>,
    pub shards_rebuilt: u64,
    pub upload_mib_s: f64,
    pub download_mib_s: f64,
    pub identical: bool,
    pub peak_rss_mib: Option<f64>,
    pub dir: Option<String>,
}

/// Why the tour stopped.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    #[error("working directory {0} exists and is not empty; pick another with --dir")]
    DirNotEmpty(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("starting the devnet: {0}")]
    Devnet(#[from] DevnetError),
    #[error(transparent)]
    Client(#[from] Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> QuickstartError {
    let context = context.into();
    move |source| QuickstartError::Io { context, source }
}

/// Runs the tour; `bar(stage)` gives the progress report of each stage.
pub async fn run(
    opts: &QuickstartOptions,
    bar: impl Fn(Stage) -> Arc<dyn Progress>,
) -> Result<QuickstartReport, QuickstartError> {
    if opts.dir.exists()
        && std::fs::read_dir(&opts.dir)
            .map_err(io("reading working directory"))?
            .next()
            .is_some()
    {
        return Err(QuickstartError::DirNotEmpty(opts.dir.clone()));
    }
    std::fs::create_dir_all(&opts.dir).map_err(io("creating working directory"))?;
    let input = opts.dir.join("input.bin");
    let output = opts.dir.join("output.bin");
    let input_hash = {
        let progress = bar(Stage::Generate);
        let (path, size) = (input.clone(), opts.size);
        tokio::task::spawn_blocking(move || generate(&path, size, progress.as_ref()))
            .await
            .map_err(|e| QuickstartError::Io {
                context: "generating the file".into(),
                source: std::io::Error::other(e.to_string()),
            })??
    };

    let mut devnet = Devnet::up(
        &opts.dir.join("devnet"),
        &DevnetOptions {
            nodes: opts.nodes,
            capacity: (opts.size * 4).max(1 << 30),
            ..DevnetOptions::default()
        },
    )?
    .owned();
    let mut config = devnet.client_config();
    config.state_dir = opts.dir.join("state");
    let client = Client::connect(config)?;

    let put = client
        .put_path(
            &input,
            &PutOptions {
                params: opts.params,
                progress: Some(bar(Stage::Upload)),
            },
        )
        .await?;

    // Kill as many nodes as the redundancy allows, at random.
    let mut nodes: Vec<usize> = (0..opts.nodes).collect();
    nodes.shuffle(&mut rand::thread_rng());
    let mut killed: Vec<usize> = nodes[..put.n - put.k].to_vec();
    killed.sort_unstable();
    for &i in &killed {
        devnet.kill(i)?;
    }

    // Read back with nothing but the capability.
    let text = put.capability.to_string();
    let capability: cairn_protocol::Capability = text
        .parse()
        .unwrap_or_else(|e| unreachable!("a capability we printed parses: {e}"));
    let reader = Client::connect(client.config().clone())?;
    let got = reader
        .get_to_path(
            &capability,
            &output,
            &GetOptions {
                progress: Some(bar(Stage::Download)),
                overwrite: true,
            },
        )
        .await?;
    let identical = {
        let path = output.clone();
        tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| QuickstartError::Io {
                context: "reading the output".into(),
                source: std::io::Error::other(e.to_string()),
            })??
            == input_hash
    };

    let report = QuickstartReport {
        size_bytes: opts.size,
        nodes: opts.nodes,
        k: put.k,
        n: put.n,
        segments: put.segments,
        capability: text,
        nodes_killed: killed,
        shards_rebuilt: got.shards_rebuilt,
        upload_mib_s: mib_per_s(opts.size, put.seconds),
        download_mib_s: mib_per_s(opts.size, got.seconds),
        identical,
        peak_rss_mib: crate::rss::peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        dir: opts.keep.then(|| opts.dir.display().to_string()),
    };
    if opts.keep {
        // Leave the survivors running for a look around.
        devnet.set_owned(false);
    } else {
        drop(devnet);
        std::fs::remove_dir_all(&opts.dir).map_err(io("cleaning up"))?;
    }
    Ok(report)
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1048576.0 / secs.max(1e-9)
}

fn generate(
    path: &Path,
    size: u64,
    progress: &dyn Progress,
) -> Result<blake3::Hash, QuickstartError> {
    let mut file = BufWriter::new(File::create(path).map_err(io("creating input"))?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut rng = rand::thread_rng();
    let mut written = 0;
    progress.start(size);
    while written < size {
        let len = (size - written).min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..len]);
        hasher.update(&buf[..len]);
        file.write_all(&buf[..len]).map_err(io("writing input"))?;
        written += len as u64;
        progress.advance(len as u64);
    }
    file.flush().map_err(io("writing input"))?;
    Ok(hasher.finalize())
}

fn hash_file(path: &Path) -> Result<blake3::Hash, QuickstartError> {
    let mut file = File::open(path).map_err(io("reading output"))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io("reading output"))?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// Fresh random bytes for callers that need a unique name.
pub fn random_suffix() -> String {
    let mut b = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
