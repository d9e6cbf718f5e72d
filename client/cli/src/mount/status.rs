//! What the mount reports: `DIR/status.json` in its cache directory, read
//! by `cairn mount status`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use cairn_client::namespace::CommitReport;

/// The mount's progress and queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub mountpoint: String,
    pub pid: u32,
    /// Namespace version of the tree the mount has: read at mount time,
    /// its own last commit, or another device's it adopted.
    pub version: u64,
    pub commits: u64,
    /// The namespace version the chain had when the mount last looked.
    #[serde(default)]
    pub chain_version: u64,
    /// Unix seconds of that look (0: never; polling is off, or the mount
    /// had something pending every time).
    #[serde(default)]
    pub checked: u64,
    /// Times the mount adopted another device's newer tree.
    #[serde(default)]
    pub refreshes: u64,
    /// Files put into batches so far.
    pub staged: u64,
    /// Changes waiting for the next commit.
    pub pending_changes: usize,
    /// Files in the write-back cache (open, or waiting for a commit).
    pub cached_files: usize,
    pub cached_bytes: u64,
    pub last_error: Option<String>,
    /// Unix seconds of this report.
    pub updated: u64,
}

impl Status {
    pub(crate) fn committed(&mut self, report: &CommitReport) {
        self.version = report.version;
        self.commits += 1;
        self.last_error = report.deal_error.clone();
    }

    /// Writes the status file (atomically).
    pub fn write(&self, cache_dir: &Path) -> std::io::Result<()> {
        let tmp = cache_dir.join("status.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, cache_dir.join("status.json"))
    }

    pub fn read(cache_dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(cache_dir.join("status.json"))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}
