//! [`Client`]: put, get, stat and rm files on a Cairn network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::{Capability, CodingParams, FileKey};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::chain::{ChainClient, ChainError};
use crate::config::ClientConfig;
use crate::deal::{self, DealOptions, OpenedDeal};
use crate::download::{self, DownloadPlan, GetReport, Output};
use crate::error::Error;
use crate::journal::{Header, Journal, UploadIdentity};
use crate::keys::{self, Account};
use crate::network::Network;
use crate::progress::{Progress, Silent};
use crate::registry::{self, NodeSource};
use crate::remove::{self, RemoveReport};
use crate::status::{self, FileStatus};
use crate::upload::{self, PutReport, UploadPlan};

/// Largest range [`Client::get_range`] returns in one piece.
pub const MAX_RANGE_LEN: u64 = 256 * 1024 * 1024;

/// Suffix of a download in progress next to its destination.
pub const PARTIAL_SUFFIX: &str = ".cairn-part";

const FILE_KEY_CONTEXT: &str = "cairn 2026-11 v1 upload file key from account key and nonce";

/// Options of one upload.
#[derive(Clone, Default)]
pub struct PutOptions {
    /// Exact redundancy (refused if the network is too small); `None`: the
    /// config's, scaled down to the nodes available.
    pub params: Option<CodingParams>,
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOptions")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Options of one download.
#[derive(Clone, Default)]
pub struct GetOptions {
    pub progress: Option<Arc<dyn Progress>>,
    /// For [`Client::get_to_path`]: replace an existing destination.
    pub overwrite: bool,
}

impl std::fmt::Debug for GetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetOptions")
            .field("overwrite", &self.overwrite)
            .finish_non_exhaustive()
    }
}

/// A connection to a Cairn network.
///
/// ```no_run
/// use cairn_client::{Client, ClientConfig, GetOptions, PutOptions};
/// # async fn demo() -> Result<(), cairn_client::Error> {
/// let config = ClientConfig::load("client.toml".as_ref())?;
/// let client = Client::connect(config)?;
/// let put = client.put_path("photo.jpg".as_ref(), &PutOptions::default()).await?;
/// println!("stored; read it back with {}", put.capability);
/// let mut bytes = Vec::new();
/// client.get(&put.capability, &mut bytes, &GetOptions::default()).await?;
/// let middle = client.get_range(&put.capability, 1000, 10).await?;
/// assert_eq!(&middle[..], &bytes[1000..1010]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    network: Network,
    account: Account,
    chain: Option<ChainClient>,
    node_source: NodeSource,
}

/// How long the registry lookup of [`Client::open`] may take.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Loads the account key named by the config and starts the network
    /// task with the config's nodes. Must run inside a tokio runtime.
    pub fn connect(config: ClientConfig) -> Result<Self, Error> {
        Self::with_nodes(config, NodeSource::Config(None))
    }

    /// Like [`Self::connect`], but with a chain configured the nodes come
    /// from the chain's registry ([`crate::registry`]); the config's
    /// `nodes` are used when no validator answers or nothing is registered
    /// ([`Self::node_source`] says which, and why).
    pub async fn open(mut config: ClientConfig) -> Result<Self, Error> {
        let source = registry::resolve_nodes(&mut config, REGISTRY_TIMEOUT).await;
        Self::with_nodes(config, source)
    }

    fn with_nodes(config: ClientConfig, node_source: NodeSource) -> Result<Self, Error> {
        let account = keys::load(&config.key_file)?;
        let network = Network::start(&config)?;
        network.probe();
        let chain = if config.chain.is_empty() {
            None
        } else {
            Some(ChainClient::new(&config.chain, config.request_timeout)?)
        };
        Ok(Self {
            config,
            network,
            account,
            chain,
            node_source,
        })
    }

    /// Where the node list came from.
    pub fn node_source(&self) -> &NodeSource {
        &self.node_source
    }

    /// The chain, if the config names one.
    pub fn chain(&self) -> Option<&ChainClient> {
        self.chain.as_ref()
    }

    /// Opens a storage deal for what `report`'s upload stored, owned by
    /// this account and paid from its balance (see [`deal::open`]). Needs a
    /// chain in the config, and every node that holds a shard of the file
    /// registered on it.
    pub async fn open_deal(
        &self,
        report: &PutReport,
        options: &DealOptions,
    ) -> Result<OpenedDeal, Error> {
        let chain = self.chain.as_ref().ok_or(ChainError::NotConfigured)?;
        Ok(deal::open(
            &self.network,
            chain,
            &self.account.signing_key(),
            &report.placement,
            Some(deal::Segments {
                k: report.k as u16,
                m: (report.n - report.k) as u16,
                shards: &report.segment_shards,
            }),
            options,
        )
        .await?)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The code a put would use: `explicit` as given (refused if this
    /// network has too few nodes for it), otherwise the config's fitted to
    /// the nodes there are ([`CodingParams::fit_to`]).
    pub fn coding_params(&self, explicit: Option<CodingParams>) -> Result<CodingParams, Error> {
        upload::params_for(self.config.params, explicit, self.network.len())
    }

    fn plan(&self, key: FileKey, params: CodingParams, seed: [u8; 32], total: u64) -> UploadPlan {
        UploadPlan {
            key,
            config: EncoderConfig::new(params).with_segment_target(self.config.segment_size),
            placement_seed: seed,
            owner: self.account.signing_key(),
            parallelism: self.config.parallelism,
            slow_after: self.config.slow_after,
            manifest_copies: self.config.manifest_copies_for(params, self.network.len()),
            total,
        }
    }

    /// Uploads a file. Interrupted, it leaves a journal under the config's
    /// `state_dir`; the same call later sends only what is missing.
    pub async fn put_path(&self, path: &Path, options: &PutOptions) -> Result<PutReport, Error> {
        let params = self.coding_params(options.params)?;
        let file = std::fs::File::open(path)
            .map_err(Error::io(format!("cannot read {}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(Error::io(format!("cannot read {}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::Io {
                context: format!("cannot upload {}", path.display()),
                source: std::io::Error::other("not a regular file"),
            });
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity = UploadIdentity {
            path: canonical.display().to_string(),
            size: meta.len(),
            modified_ns,
            k: params.k() as u16,
            m: params.m() as u16,
            segment_size: self.config.segment_size,
        };
        let journal = Journal::open_or_create(&self.config.state_dir, &identity, || Header {
            version: 1,
            identity: identity.clone(),
            nonce: hex::encode(random32()),
            placement_seed: hex::encode(random32()),
        })?;
        let bad = |what: &str| Error::Journal {
            path: journal.path().to_path_buf(),
            reason: format!("bad {what}"),
        };
        let nonce = decode32(&journal.header.nonce).ok_or_else(|| bad("nonce"))?;
        let seed = decode32(&journal.header.placement_seed).ok_or_else(|| bad("seed"))?;
        let key = self.file_key(&nonce);
        let plan = self.plan(key, params, seed, meta.len());
        let progress = options.progress.clone().unwrap_or_else(|| Arc::new(Silent));
        let report = upload::upload(
            &self.network,
            Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            plan,
            Some(journal),
            progress,
        )
        .await?;
        // The journal is only removed once the manifest is stored.
        let path = Journal::path_for(&self.config.state_dir, &identity);
        std::fs::remove_file(&path).map_err(|e| Error::Journal {
            path,
            reason: e.to_string(),
        })?;
        Ok(report)
    }

    /// Uploads everything `reader` yields (not resumable: a reader cannot
    /// be read twice). `size_hint` only feeds the progress report.
    pub async fn put<R>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        options: &PutOptions,
    ) -> Result<PutReport, Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let params = self.coding_params(options.params)?;
        let reader = tokio_util::io::SyncIoBridge::new(reader);
        let plan = self.plan(
            FileKey::generate(),
            params,
            random32(),
            size_hint.unwrap_or(0),
        );
        let progress = options.progress.clone().unwrap_or_else(|| Arc::new(Silent));
        upload::upload(&self.network, Box::new(reader), plan, None, progress).await
    }

    /// Uploads everything a blocking `reader` yields (not resumable). It is
    /// read on a thread of its own, so it may block until more bytes exist:
    /// the mount streams a file still being written this way. `size_hint`
    /// only feeds the progress report.
    pub async fn put_reader(
        &self,
        reader: Box<dyn std::io::Read + Send>,
        size_hint: u64,
        options: &PutOptions,
    ) -> Result<PutReport, Error> {
        let params = self.coding_params(options.params)?;
        let plan = self.plan(FileKey::generate(), params, random32(), size_hint);
        let progress = options.progress.clone().unwrap_or_else(|| Arc::new(Silent));
        upload::upload(&self.network, reader, plan, None, progress).await
    }

    /// Writes the whole file to `writer`, verified, in order.
    pub async fn get<W: AsyncWrite + Unpin + Send>(
        &self,
        cap: &Capability,
        writer: &mut W,
        options: &GetOptions,
    ) -> Result<GetReport, Error> {
        let manifest =
            Arc::new(download::fetch_manifest(&self.network, cap, self.config.slow_after).await?);
        let (report, _) = download::download(
            &self.network,
            manifest,
            cap,
            Output::Async(writer),
            self.download_plan(0, options),
        )
        .await?;
        Ok(report)
    }

    /// Downloads to `path` through `path.cairn-part`; an interrupted
    /// download of the same capability resumes where the part file ends.
    pub async fn get_to_path(
        &self,
        cap: &Capability,
        path: &Path,
        options: &GetOptions,
    ) -> Result<GetReport, Error> {
        if path.exists() && !options.overwrite {
            return Err(Error::Io {
                context: format!("{} exists", path.display()),
                source: std::io::Error::other("refusing to overwrite it (use --force)"),
            });
        }
        let manifest =
            Arc::new(download::fetch_manifest(&self.network, cap, self.config.slow_after).await?);
        let part = partial_path(path);
        let marker = part.with_extension("cairn-part.json");
        let marker_text = serde_json::json!({ "manifest": cap.manifest.to_string() }).to_string();
        let resumable = std::fs::read_to_string(&marker).ok().as_deref() == Some(&marker_text);
        let have = if resumable {
            std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        let (_, from) = cairn_protocol::FileDecoder::resume_at(
            &manifest,
            &cap.key,
            have.min(manifest.plaintext_len()),
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .map_err(Error::io(format!("cannot write {}", part.display())))?;
        // Keep only whole verified blocks; they were written by us, for
        // this very manifest (the marker says so).
        file.set_len(from)
            .map_err(Error::io(format!("cannot write {}", part.display())))?;
        std::fs::write(&marker, &marker_text)
            .map_err(Error::io(format!("cannot write {}", marker.display())))?;
        let mut file = file;
        {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(from))
                .map_err(Error::io("seeking the partial download"))?;
        }
        let (report, file) = download::download(
            &self.network,
            manifest,
            cap,
            Output::File(std::io::BufWriter::with_capacity(1 << 20, file)),
            self.download_plan(from, options),
        )
        .await?;
        if let Some(file) = file {
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(|e| Error::io("writing the output")(std::io::Error::other(e)))?
                .map_err(Error::io("writing the output"))?;
        }
        std::fs::rename(&part, path).map_err(Error::io(format!(
            "moving {} to {}",
            part.display(),
            path.display()
        )))?;
        let _ = std::fs::remove_file(&marker);
        Ok(report)
    }

    /// Reads `len` bytes from `offset`, fetching only the shard ranges that
    /// hold them.
    pub async fn get_range(
        &self,
        cap: &Capability,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        if len > MAX_RANGE_LEN {
            return Err(Error::RangeTooLarge {
                offset,
                len,
                max: MAX_RANGE_LEN,
            });
        }
        let manifest = download::fetch_manifest(&self.network, cap, self.config.slow_after).await?;
        let end = offset.checked_add(len).ok_or(Error::RangeTooLarge {
            offset,
            len,
            max: MAX_RANGE_LEN,
        })?;
        download::read_range(
            &self.network,
            &manifest,
            cap,
            offset..end,
            self.chain.clone(),
            self.config.slow_after,
        )
        .await
    }

    /// Size, redundancy, how many shards of each segment the network still
    /// holds, and with a chain, each segment as the chain sees it.
    pub async fn stat(&self, cap: &Capability) -> Result<FileStatus, Error> {
        let manifest = download::fetch_manifest(&self.network, cap, self.config.slow_after).await?;
        Ok(status::stat(&self.network, self.chain.as_ref(), cap, &manifest).await)
    }

    /// Asks every node to drop the file's shards and manifest copies.
    pub async fn rm(&self, cap: &Capability) -> Result<RemoveReport, Error> {
        let manifest = download::fetch_manifest(&self.network, cap, self.config.slow_after).await?;
        remove::remove(&self.network, cap, &manifest, &self.account.signing_key()).await
    }

    fn download_plan(&self, resume_at: u64, options: &GetOptions) -> DownloadPlan {
        DownloadPlan {
            resume_at,
            parallelism: self.config.parallelism,
            slow_after: self.config.slow_after,
            progress: options.progress.clone().unwrap_or_else(|| Arc::new(Silent)),
            chain: self.chain.clone(),
        }
    }

    /// A file key only this account can derive again (for resuming).
    fn file_key(&self, nonce: &[u8; 32]) -> FileKey {
        let mut material = zeroize::Zeroizing::new([0u8; 64]);
        material[..32].copy_from_slice(&self.account.signing_key().to_bytes());
        material[32..].copy_from_slice(nonce);
        FileKey::from_bytes(blake3::derive_key(FILE_KEY_CONTEXT, &material[..]))
    }
}

/// Where a download to `path` is kept until it completes.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(PARTIAL_SUFFIX);
    path.with_file_name(name)
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn decode32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}
