//! Reading files out of the tree: whole, by range, or to local paths.

use std::path::Path;

use cairn_protocol::namespace::{Entry, EntryKind, FileData, NsPath};
use futures::future::LocalBoxFuture;

use super::{Namespace, NsError};
use crate::GetOptions;

/// Largest file [`Namespace::read_all`] returns in memory.
pub const MAX_READ_ALL: u64 = crate::client::MAX_RANGE_LEN;

impl Namespace<'_> {
    /// Bytes `[offset, offset + len)` of a file (shorter at its end).
    pub async fn read_range(
        &self,
        entry: &Entry,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, NsError> {
        let EntryKind::File { size, data } = &entry.kind else {
            return Err(NsError::Root("read as a file"));
        };
        let offset = offset.min(*size);
        let len = len.min(size - offset);
        if len == 0 {
            return Ok(Vec::new());
        }
        match data {
            FileData::Inline(bytes) => Ok(bytes[offset as usize..(offset + len) as usize].to_vec()),
            FileData::Object(o) => Ok(self.client.get_range(&o.capability(), offset, len).await?),
            FileData::Packed { pack, offset: at } => Ok(self
                .client
                .get_range(&pack.capability(), at + offset, len)
                .await?),
        }
    }

    /// A whole file, in memory (at most [`MAX_READ_ALL`] bytes).
    pub async fn read_all(&self, entry: &Entry) -> Result<Vec<u8>, NsError> {
        let size = entry.size();
        if size > MAX_READ_ALL {
            return Err(NsError::TooLarge(size));
        }
        self.read_range(entry, 0, size).await
    }

    /// Writes what `path` holds to the local `out`: a file, a link, or a
    /// directory with everything in it. Returns the bytes written.
    pub async fn get_to_path(
        &mut self,
        path: &NsPath,
        out: &Path,
        force: bool,
    ) -> Result<u64, NsError> {
        let entry = self
            .stat(path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        self.write_out(path.clone(), entry, out.to_path_buf(), force)
            .await
    }

    fn write_out<'b>(
        &'b mut self,
        path: NsPath,
        entry: Entry,
        out: std::path::PathBuf,
        force: bool,
    ) -> LocalBoxFuture<'b, Result<u64, NsError>> {
        Box::pin(async move {
            match &entry.kind {
                EntryKind::Dir(_) => {
                    std::fs::create_dir_all(&out).map_err(NsError::io(what(&out)))?;
                    let names: Vec<(String, Entry)> = self
                        .list(&path)
                        .await?
                        .entries
                        .iter()
                        .map(|(n, e)| (n.clone(), e.clone()))
                        .collect();
                    let mut total = 0;
                    for (name, child) in names {
                        total += self
                            .write_out(path.join(&name)?, child, out.join(&name), force)
                            .await?;
                    }
                    set_times(&out, &entry)?;
                    Ok(total)
                }
                EntryKind::Symlink(target) => {
                    if force && out.symlink_metadata().is_ok() {
                        std::fs::remove_file(&out).map_err(NsError::io(what(&out)))?;
                    }
                    std::os::unix::fs::symlink(target, &out).map_err(NsError::io(what(&out)))?;
                    Ok(0)
                }
                EntryKind::File { size, data } => {
                    if out.exists() && !force {
                        return Err(NsError::Io {
                            context: format!("{} exists", out.display()),
                            source: std::io::Error::other("refusing to overwrite it (use --force)"),
                        });
                    }
                    match data {
                        FileData::Object(o) => {
                            let options = GetOptions {
                                progress: None,
                                overwrite: force,
                            };
                            self.client
                                .get_to_path(&o.capability(), &out, &options)
                                .await?;
                        }
                        _ => {
                            let bytes = self.read_all(&entry).await?;
                            std::fs::write(&out, bytes).map_err(NsError::io(what(&out)))?;
                        }
                    }
                    set_times(&out, &entry)?;
                    Ok(*size)
                }
            }
        })
    }
}

fn what(p: &Path) -> String {
    format!("cannot write {}", p.display())
}

/// Gives a local file the entry's permission bits and modification time.
fn set_times(out: &Path, entry: &Entry) -> Result<(), NsError> {
    use std::os::unix::fs::PermissionsExt;
    let what = || format!("cannot set the times of {}", out.display());
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(entry.mode))
        .map_err(NsError::io(what()))?;
    let secs = u64::try_from(entry.mtime.secs).unwrap_or(0);
    let time = std::time::UNIX_EPOCH + std::time::Duration::new(secs, entry.mtime.nanos);
    let file = std::fs::File::open(out).map_err(NsError::io(what()))?;
    file.set_modified(time).map_err(NsError::io(what()))?;
    Ok(())
}
