//! The local tour of Cairn's data path.
//!
//! Each shard column goes to its own directory under `nodes/`, standing in
//! for a storage node. After the upload, `m` of those directories are deleted
//! (chosen at random, so data shards are lost as well as parity), and the
//! file is read back from the survivors through the manifest and the
//! capability alone. Every shard is checked against its id on the way in,
//! and the output is compared with the input byte for byte.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_protocol::encoder::{EncodeError, EncoderConfig};
use cairn_protocol::{
    Capability, CodingParams, ContentId, FileDecoder, FileKey, Manifest, ReadEncoder, SegmentShards,
};
use rand::seq::SliceRandom;
use rand::RngCore;

/// What to run.
#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    /// Bytes of generated plaintext.
    pub size: u64,
    /// Working directory; it must not exist yet or be empty.
    pub dir: PathBuf,
    pub params: CodingParams,
    /// Keep the working directory afterwards.
    pub keep: bool,
}

/// Which part of the tour a progress update is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Generate,
    Encode,
    Decode,
}

/// What happened, for people and for scripts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuickstartReport {
    pub size_bytes: u64,
    pub k: usize,
    pub n: usize,
    pub segments: u64,
    pub capability: String,
    pub manifest_id: String,
    pub nodes_lost: Vec<usize>,
    pub shards_rebuilt: usize,
    pub encode_mib_s: f64,
    pub decode_mib_s: f64,
    pub stored_bytes: u64,
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
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    #[error("decoding: {0}")]
    Decode(#[from] cairn_protocol::decoder::DecodeError),
    #[error("manifest: {0}")]
    Manifest(#[from] cairn_protocol::manifest::ManifestError),
    #[error("no surviving node holds the manifest")]
    ManifestLost,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> QuickstartError {
    let context = context.into();
    move |source| QuickstartError::Io { context, source }
}

fn node_dir(root: &Path, node: usize) -> PathBuf {
    root.join("nodes").join(format!("node-{node:03}"))
}

/// Runs the tour, calling `progress(stage, done, total)` as it goes.
pub fn run(
    opts: &QuickstartOptions,
    mut progress: impl FnMut(Stage, u64, u64),
) -> Result<QuickstartReport, QuickstartError> {
    if opts.dir.exists()
        && fs::read_dir(&opts.dir)
            .map_err(io("reading working directory"))?
            .next()
            .is_some()
    {
        return Err(QuickstartError::DirNotEmpty(opts.dir.clone()));
    }
    let n = opts.params.n();
    for node in 0..n {
        fs::create_dir_all(node_dir(&opts.dir, node)).map_err(io("creating node directories"))?;
    }
    let input = opts.dir.join("input.bin");
    let output = opts.dir.join("output.bin");
    let input_hash = generate(&input, opts.size, &mut progress)?;

    // Upload: encode and put shard j of every segment on node j.
    let key = FileKey::generate();
    let started = Instant::now();
    let file = File::open(&input).map_err(io("opening input"))?;
    let mut encoder = ReadEncoder::new(file, &key, EncoderConfig::new(opts.params))?;
    let mut stored_bytes = 0u64;
    while let Some(segment) = encoder.next_segment()? {
        for (j, (shard, id)) in segment.shards().zip(segment.ids()).enumerate() {
            fs::write(node_dir(&opts.dir, j).join(id.to_string()), shard)
                .map_err(io("writing a shard"))?;
            stored_bytes += shard.len() as u64;
        }
        progress(Stage::Encode, encoder.plaintext_len(), opts.size);
        encoder.recycle(segment);
    }
    let manifest = encoder.manifest()?;
    let (manifest_id, sealed) = manifest.seal(&key);
    for node in 0..n {
        fs::write(
            node_dir(&opts.dir, node).join(manifest_id.to_string()),
            &sealed,
        )
        .map_err(io("writing the manifest"))?;
    }
    let encode_secs = started.elapsed().as_secs_f64();
    let capability = Capability::new(manifest_id, key);

    // Lose as many nodes as the redundancy allows.
    let mut nodes: Vec<usize> = (0..n).collect();
    nodes.shuffle(&mut rand::thread_rng());
    let mut lost: Vec<usize> = nodes[..opts.params.m()].to_vec();
    lost.sort_unstable();
    for node in &lost {
        fs::remove_dir_all(node_dir(&opts.dir, *node)).map_err(io("removing a node directory"))?;
    }

    // Download with nothing but the capability and the survivors.
    let started = Instant::now();
    let text = capability.to_string();
    let capability: Capability = text
        .parse()
        .unwrap_or_else(|e| unreachable!("a capability we printed parses: {e}"));
    let manifest = read_manifest(&opts.dir, n, &capability)?;
    let mut decoder = FileDecoder::new(&manifest, &capability.key);
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(&output).map_err(io("creating output"))?,
    );
    let mut rebuilt = 0;
    for segment in 0..manifest.segment_count() {
        let mut shards = SegmentShards::new(&manifest, segment)?;
        let ids = manifest
            .segment_shards(segment)
            .unwrap_or_default()
            .to_vec();
        // Data shards first: with all of them no decoding is needed.
        for (j, id) in ids.iter().enumerate() {
            if shards.has_all_data() || (shards.is_decodable() && j >= opts.params.k()) {
                break;
            }
            if let Some(bytes) = read_shard(&opts.dir, j, id)? {
                // A damaged shard is refused by insert and simply not used.
                let _ = shards.insert(j, bytes);
            }
        }
        rebuilt += decoder.write_segment(shards, &mut out)?.rebuilt;
        progress(
            Stage::Decode,
            ((segment + 1) * manifest.layout().segment_len()).min(opts.size),
            opts.size,
        );
    }
    decoder.finish()?;
    out.flush().map_err(io("writing output"))?;
    drop(out);
    let decode_secs = started.elapsed().as_secs_f64();
    let identical = hash_file(&output)? == input_hash;

    let report = QuickstartReport {
        size_bytes: opts.size,
        k: opts.params.k(),
        n,
        segments: manifest.segment_count(),
        capability: text,
        manifest_id: manifest_id.to_string(),
        nodes_lost: lost,
        shards_rebuilt: rebuilt,
        encode_mib_s: mib_per_s(opts.size, encode_secs),
        decode_mib_s: mib_per_s(opts.size, decode_secs),
        stored_bytes,
        identical,
        peak_rss_mib: crate::rss::peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        dir: opts.keep.then(|| opts.dir.display().to_string()),
    };
    if !opts.keep {
        fs::remove_dir_all(&opts.dir).map_err(io("cleaning up"))?;
    }
    Ok(report)
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1048576.0 / secs.max(1e-9)
}

fn generate(
    path: &Path,
    size: u64,
    progress: &mut impl FnMut(Stage, u64, u64),
) -> Result<blake3::Hash, QuickstartError> {
    let mut file = BufWriter::new(File::create(path).map_err(io("creating input"))?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut rng = rand::thread_rng();
    let mut written = 0;
    while written < size {
        let len = (size - written).min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..len]);
        hasher.update(&buf[..len]);
        file.write_all(&buf[..len]).map_err(io("writing input"))?;
        written += len as u64;
        progress(Stage::Generate, written, size);
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

fn read_shard(
    root: &Path,
    node: usize,
    id: &ContentId,
) -> Result<Option<Vec<u8>>, QuickstartError> {
    match fs::read(node_dir(root, node).join(id.to_string())) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading a shard")(e)),
    }
}

fn read_manifest(
    root: &Path,
    nodes: usize,
    capability: &Capability,
) -> Result<Manifest, QuickstartError> {
    for node in 0..nodes {
        if let Some(bytes) = read_shard(root, node, &capability.manifest)? {
            if capability.manifest.matches(&bytes) {
                return Ok(Manifest::open(
                    &capability.manifest,
                    &bytes,
                    &capability.key,
                )?);
            }
        }
    }
    Err(QuickstartError::ManifestLost)
}

/// Fresh random bytes for callers that need a unique name.
pub fn random_suffix() -> String {
    let mut b = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tour_round_trips_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tour");
        let opts = QuickstartOptions {
            size: 3_000_000,
            dir: dir.clone(),
            params: CodingParams::new(4, 3).unwrap(),
            keep: false,
        };
        let mut stages = Vec::new();
        let report = run(&opts, |s, _, _| stages.push(s)).unwrap();
        assert!(report.identical);
        assert_eq!(report.nodes_lost.len(), 3);
        assert!(stages.contains(&Stage::Encode) && stages.contains(&Stage::Decode));
        assert!(!dir.exists());
        assert!(report.capability.parse::<Capability>().is_ok());
    }

    #[test]
    fn refuses_a_non_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), b"x").unwrap();
        let opts = QuickstartOptions {
            size: 1,
            dir: tmp.path().into(),
            params: CodingParams::default(),
            keep: true,
        };
        assert!(matches!(
            run(&opts, |_, _, _| {}),
            Err(QuickstartError::DirNotEmpty(_))
        ));
    }
}
