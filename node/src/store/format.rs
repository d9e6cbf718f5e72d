//! The store's format marker: which layout a directory holds, creating
//! the marker in a new store, refusing layouts this node cannot read, and
//! converting format 2 in place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{
    io_error, read_dir_paths, sync_dir, StoreError, FORMAT, FORMAT_2, FORMAT_FILE, TMP_SUFFIX,
};

/// What [`check_format`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// A store of this format, or a new one just marked so.
    Current,
    /// A format-2 store, to be converted by [`convert_from_format_2`].
    Format2,
}

/// Accepts a store of this format or of format 2, creates one in an empty
/// or missing directory, and refuses anything else with a reason an
/// operator can act on.
pub(super) fn check_format(path: &Path) -> Result<Found, StoreError> {
    let refuse = |reason: String| StoreError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let marker = path.join(FORMAT_FILE);
    match fs::read_to_string(&marker) {
        Ok(text) if text.trim_end() == FORMAT => return Ok(Found::Current),
        Ok(text) if text.trim_end() == FORMAT_2 => return Ok(Found::Format2),
        Ok(text) => {
            return Err(refuse(format!(
                "is in format {:?}, but this cairn-node reads only {FORMAT:?}",
                text.trim_end()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&marker)(e)),
    }
    if path.join("CURRENT").exists() {
        return Err(refuse(format!(
            "is a store of the old format (shard bytes inside RocksDB, no {FORMAT_FILE} file); \
             this cairn-node keeps shards as files ({FORMAT:?}) and does not convert: \
             move the directory away and start with an empty store"
        )));
    }
    match fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(refuse(format!(
                    "is not empty but has no {FORMAT_FILE} file; refusing to guess what it holds"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(io_error(path))?;
        }
        Err(e) => return Err(io_error(path)(e)),
    }
    // The marker goes first, so a directory with anything else in it was
    // made by a cairn-node that wrote one.
    write_format(path)?;
    Ok(Found::Current)
}

/// Marks the store at `path` as [`FORMAT`], atomically and durably.
fn write_format(path: &Path) -> Result<(), StoreError> {
    let marker = path.join(FORMAT_FILE);
    let tmp = path.join(format!("{FORMAT_FILE}{TMP_SUFFIX}"));
    (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{FORMAT}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &marker)
    })()
    .map_err(io_error(&marker))?;
    sync_dir(path)
}

/// Moves a format-2 store's shard files from `ab/cd/` up into `ab/`, then
/// marks the store as format 3. Each move is a rename within one file
/// system, so a file is always in exactly one place; a crash part way
/// leaves the old marker, and the next open finishes the job. Temporary
/// files are left for `reconcile` to delete.
pub(super) fn convert_from_format_2(path: &Path, shards_dir: &Path) -> Result<(), StoreError> {
    let mut moved = 0u64;
    for l1 in read_dir_paths(shards_dir)? {
        if !l1.is_dir() {
            continue;
        }
        let subdirs: Vec<PathBuf> = read_dir_paths(&l1)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if subdirs.is_empty() {
            continue;
        }
        for l2 in &subdirs {
            for file in read_dir_paths(l2)? {
                let Some(name) = file.file_name() else {
                    continue;
                };
                let to = l1.join(name);
                fs::rename(&file, &to).map_err(io_error(&file))?;
                moved += 1;
            }
        }
        // The new entries must be durable before the old directories
        // vanish: one sync for all of `l1`'s, not one per subdirectory.
        sync_dir(&l1)?;
        for l2 in &subdirs {
            fs::remove_dir(l2).map_err(io_error(l2))?;
        }
        sync_dir(&l1)?;
    }
    write_format(path)?;
    tracing::info!(
        store = %path.display(),
        files = moved,
        "converted the shard store from format 2 (ab/cd/) to format 3 (ab/)"
    );
    Ok(())
}
