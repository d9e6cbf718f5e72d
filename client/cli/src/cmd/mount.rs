//! `cairn mount DIR` (read-write, the account's tree), `cairn mount --cap
//! CAP DIR` (read-only, a shared directory) and `cairn mount --status`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_cli::mount::status::Status;
use cairn_cli::mount::{self, MountOptions};
use cairn_client::{Client, ClientConfig};
use cairn_protocol::namespace::DirCapability;

use super::transfer::{load_config, runtime};
use super::Global;

/// What `cairn mount` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct MountArgs {
    /// The empty directory to mount on.
    #[arg(required_unless_present = "status")]
    pub dir: Option<PathBuf>,
    /// Mount this shared directory capability (cairn-dir:…), read-only.
    #[arg(long, value_name = "CAP")]
    pub cap: Option<String>,
    /// The write-back cache (default: `mount/` in the client's state
    /// directory; a crashed mount's files are put back from here).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Commit closed files at least this often (seconds).
    #[arg(long, default_value_t = 5)]
    pub commit_interval: u64,
    /// Bytes of closed, uncommitted files the cache may hold before
    /// closing a file commits (e.g. 1GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size_arg)]
    pub cache_max: u64,
    /// Bytes of file contents fetched ahead of programs that read files in
    /// order, over all open files (memory the mount may use for it; 0: none).
    #[arg(long, default_value = "32MiB", value_parser = parse_size_arg)]
    pub read_ahead: u64,
    /// Look for other devices' commits this often (seconds) and show them
    /// while mounted, once nothing of this mount's own is pending (0: never;
    /// the tree stays as read at mount time plus this mount's commits).
    #[arg(long, default_value_t = 30)]
    pub poll_interval: u64,
    /// Print the status of the mount using the cache (queue, commits) and exit.
    #[arg(long)]
    pub status: bool,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    cairn_protocol::units::parse_size(s).map_err(|e| e.to_string())
}

/// The cache directory: the account's own, or one per shared directory.
fn cache_dir(config: &ClientConfig, args: &MountArgs) -> PathBuf {
    if let Some(dir) = &args.cache_dir {
        return dir.clone();
    }
    match &args.cap {
        Some(cap) => {
            let id = blake3::hash(cap.trim().as_bytes()).to_hex();
            config.state_dir.join("mount-shared").join(&id[..16])
        }
        None => config.state_dir.join("mount"),
    }
}

fn print_status(global: &Global, dir: &Path) -> anyhow::Result<()> {
    let status = Status::read(dir)
        .with_context(|| format!("no mount status in {} (is a mount running?)", dir.display()))?;
    if global.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!(
        "mountpoint:      {} (pid {})",
        status.mountpoint, status.pid
    );
    println!(
        "version:         {} ({} commits)",
        status.version, status.commits
    );
    if status.checked > 0 {
        println!(
            "chain:           version {} (looked {}s ago, {} newer trees adopted)",
            status.chain_version,
            cairn_protocol::namespace::Timestamp::now()
                .secs
                .saturating_sub(i64::try_from(status.checked).unwrap_or(0)),
            status.refreshes
        );
    }
    println!("files staged:    {}", status.staged);
    println!("pending changes: {}", status.pending_changes);
    println!(
        "cache:           {} files, {}",
        status.cached_files,
        cairn_protocol::units::format_size(status.cached_bytes)
    );
    if let Some(e) = status.last_error {
        println!("last error:      {e}");
    }
    Ok(())
}

pub fn run(global: &Global, args: &MountArgs) -> anyhow::Result<()> {
    let config = load_config(global)?;
    let cache = cache_dir(&config, args);
    if args.status {
        return print_status(global, &cache);
    }
    let Some(dir) = &args.dir else {
        bail!("name the directory to mount on");
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let share = match &args.cap {
        Some(text) => Some(
            text.trim()
                .parse::<DirCapability>()
                .map_err(|e| anyhow::anyhow!("invalid directory capability: {e}"))?,
        ),
        None => None,
    };
    let rt = runtime()?;
    let client = rt.block_on(Client::open(config))?;
    let options = MountOptions {
        cache_dir: cache,
        commit_interval: Duration::from_secs(args.commit_interval.max(1)),
        cache_max: args.cache_max,
        share,
        read_ahead: args.read_ahead,
        poll_interval: Duration::from_secs(args.poll_interval),
    };
    if !global.json {
        eprintln!(
            "mounted on {}{}; unmount with ctrl-c, SIGTERM or `fusermount3 -u {}`",
            dir.display(),
            if options.share.is_some() {
                " (read-only)"
            } else {
                ""
            },
            dir.display()
        );
    }
    let report = mount::run(client, dir, options, &rt)?;
    if global.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "unmounted: namespace version {}, {} commits{}",
            report.version,
            report.commits,
            if report.recovered > 0 {
                format!(
                    ", {} files recovered from a crashed mount",
                    report.recovered
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
