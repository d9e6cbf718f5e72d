//! `cairn ls|put|get|cat|mkdir|mv|rm|tree|du|share` on paths of the
//! account's namespace (a path starts with `/`), and `ls|get` on shared
//! directory capabilities (`cairn-dir:`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_client::namespace::{Namespace, NsError};
use cairn_client::Client;
use cairn_protocol::namespace::dircap::is_dir_capability;
use cairn_protocol::namespace::{DirCapability, Entry, EntryKind, NsPath};
use cairn_protocol::units::format_size;
use indicatif::{ProgressBar, ProgressStyle};

use super::transfer::{load_config, runtime};
use super::Global;

/// Whether a command argument names a namespace path (or a shared
/// directory) rather than a file capability.
pub fn is_namespace_arg(text: &str) -> bool {
    text.starts_with('/') || is_dir_capability(text)
}

fn parse_path(text: &str) -> anyhow::Result<NsPath> {
    Ok(NsPath::parse(text)?)
}

/// Runs `f` on the account's namespace (or, for a `cairn-dir:` argument,
/// on the shared directory, read-only) with a connected client.
fn with_namespace<T>(
    global: &Global,
    target: &str,
    f: impl for<'a> AsyncFnOnce(&mut Namespace<'a>, NsPath) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = load_config(global)?;
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        let (mut ns, path) = if is_dir_capability(target) {
            let cap: DirCapability = target
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid directory capability: {e}"))?;
            (Namespace::open_shared(&client, &cap).await?, NsPath::root())
        } else {
            (Namespace::open(&client).await?, parse_path(target)?)
        };
        f(&mut ns, path).await
    })
}

fn mode_text(entry: &Entry) -> String {
    let kind = match entry.kind {
        EntryKind::Dir(_) => 'd',
        EntryKind::Symlink(_) => 'l',
        EntryKind::File { .. } => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (entry.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn time_text(entry: &Entry) -> String {
    // UTC, to the second; no time zone database needed.
    let secs = entry.mtime.secs;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil-date algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn line(name: &str, entry: &Entry, long: bool) -> String {
    let shown = match &entry.kind {
        EntryKind::Dir(_) => format!("{name}/"),
        EntryKind::Symlink(t) if long => format!("{name} -> {t}"),
        _ => name.to_string(),
    };
    if !long {
        return shown;
    }
    format!(
        "{} {:>10} {} {shown}",
        mode_text(entry),
        entry.size(),
        time_text(entry)
    )
}

fn entry_json(name: &str, entry: &Entry) -> serde_json::Value {
    let kind = match &entry.kind {
        EntryKind::Dir(_) => "dir",
        EntryKind::Symlink(_) => "symlink",
        EntryKind::File { .. } => "file",
    };
    let mut v = serde_json::json!({
        "name": name,
        "kind": kind,
        "size": entry.size(),
        "mode": format!("{:o}", entry.mode),
        "mtime": entry.mtime.secs,
    });
    if let EntryKind::Symlink(t) = &entry.kind {
        v["target"] = t.clone().into();
    }
    v
}

pub fn ls(global: &Global, target: &str, long: bool) -> anyhow::Result<()> {
    let json = global.json;
    with_namespace(global, target, async move |ns, path| {
        let entry = ns
            .stat(&path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        let entries: Vec<(String, Entry)> = if entry.is_dir() {
            ns.list(&path)
                .await?
                .entries
                .iter()
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect()
        } else {
            vec![(path.name().unwrap_or("/").to_string(), entry)]
        };
        if json {
            let list: Vec<_> = entries.iter().map(|(n, e)| entry_json(n, e)).collect();
            println!(
                "{}",
                serde_json::json!({ "path": path.to_string(), "entries": list })
            );
        } else {
            for (n, e) in &entries {
                println!("{}", line(n, e, long));
            }
        }
        Ok(())
    })
}

/// Every local file, link and directory under `local` with its namespace
/// path under `dest`, directories before their contents.
fn walk(local: &Path, dest: &NsPath, out: &mut Vec<(PathBuf, NsPath, bool)>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(local)
        .with_context(|| format!("cannot read {}", local.display()))?;
    if meta.is_dir() {
        out.push((local.to_path_buf(), dest.clone(), true));
        let mut children: Vec<_> = std::fs::read_dir(local)
            .with_context(|| format!("cannot read {}", local.display()))?
            .collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name();
            let name = name
                .to_str()
                .with_context(|| format!("{}: names must be UTF-8", child.path().display()))?;
            walk(&child.path(), &dest.join(name)?, out)?;
        }
    } else {
        out.push((local.to_path_buf(), dest.clone(), false));
    }
    Ok(())
}

/// `cairn put FILE… /dir/`: files, links and directories (recursively)
/// into the namespace directory, as one commit.
pub fn put(global: &Global, files: &[PathBuf], dest: &str) -> anyhow::Result<()> {
    let dest = parse_path(dest)?;
    let mut items = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: no UTF-8 file name", f.display()))?;
        walk(f, &dest.join(name)?, &mut items)?;
    }
    let json = global.json;
    with_namespace(global, "/", async move |ns, _| {
        ns.mkdir(&dest, true).await?;
        let bar = files_bar(json, items.len() as u64);
        let mut bytes = 0;
        for (local, path, is_dir) in &items {
            bar.set_message(path.to_string());
            if *is_dir {
                ns.mkdir(path, true).await?;
            } else {
                bytes += ns
                    .put_file(local, path)
                    .await
                    .with_context(|| format!("put {}", local.display()))?;
            }
            bar.inc(1);
        }
        bar.set_message("committing");
        let report = ns.commit().await?;
        bar.finish_and_clear();
        print_commit(
            json,
            &report,
            &format!("{} item(s), {}", items.len(), format_size(bytes)),
        )
    })
}

fn files_bar(hidden: bool, total: u64) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:36}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix("put");
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_commit(
    json: bool,
    report: &cairn_client::namespace::CommitReport,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    if report.changes == 0 {
        eprintln!("nothing changed (namespace version {})", report.version);
        return Ok(());
    }
    eprintln!(
        "committed {what} as namespace version {}{}{}",
        report.version,
        if report.replays > 0 {
            format!(
                " (another device committed first {} time(s); changes replayed on its tree)",
                report.replays
            )
        } else {
            String::new()
        },
        match &report.deal {
            Some(id) => format!("; deal {id} opened"),
            None => String::new(),
        }
    );
    match (&report.deal, &report.deal_error) {
        (None, Some(e)) => {
            eprintln!("warning: the commit is published, but no storage deal was opened: {e}")
        }
        (Some(_), Some(e)) => eprintln!("warning: {e}; its objects are not repaired by others"),
        _ => {}
    }
    Ok(())
}

pub fn get(global: &Global, target: &str, out: &Path, force: bool) -> anyhow::Result<()> {
    let out = out.to_path_buf();
    let json = global.json;
    with_namespace(global, target, async move |ns, path| {
        let bytes = ns.get_to_path(&path, &out, force).await?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "path": path.to_string(), "bytes": bytes })
            );
        } else {
            eprintln!("wrote {} to {}", format_size(bytes), out.display());
        }
        Ok(())
    })
}

pub fn cat(global: &Global, target: &str, offset: u64, length: Option<u64>) -> anyhow::Result<()> {
    use std::io::Write;
    with_namespace(global, target, async move |ns, path| {
        let entry = ns
            .stat(&path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        if entry.is_dir() {
            bail!("{path}: is a directory");
        }
        let len = length.unwrap_or(u64::MAX);
        let mut stdout = std::io::stdout().lock();
        // In pieces, so a large file never sits in memory whole.
        let end = offset.saturating_add(len).min(entry.size());
        let mut at = offset;
        while at < end {
            let piece = (end - at).min(16 << 20);
            let bytes = ns.read_range(&entry, at, piece).await?;
            stdout.write_all(&bytes)?;
            at += piece;
        }
        stdout.flush()?;
        Ok(())
    })
}

pub fn mkdir(global: &Global, paths: &[String], parents: bool) -> anyhow::Result<()> {
    let json = global.json;
    with_namespace(global, "/", async move |ns, _| {
        for p in paths {
            ns.mkdir(&parse_path(p)?, parents).await?;
        }
        let report = ns.commit().await?;
        print_commit(json, &report, &format!("{} directory(ies)", paths.len()))
    })
}

pub fn mv(global: &Global, from: &str, to: &str) -> anyhow::Result<()> {
    let (from, to) = (parse_path(from)?, parse_path(to)?);
    let json = global.json;
    with_namespace(global, "/", async move |ns, _| {
        let landed = ns.rename(&from, &to).await?;
        let report = ns.commit().await?;
        print_commit(json, &report, &format!("{from} → {landed}"))
    })
}

pub fn rm(global: &Global, paths: &[String], recursive: bool) -> anyhow::Result<()> {
    let json = global.json;
    with_namespace(global, "/", async move |ns, _| {
        for p in paths {
            ns.remove(&parse_path(p)?, recursive).await?;
        }
        let report = ns.commit().await?;
        print_commit(
            json,
            &report,
            &format!("removal of {} path(s)", paths.len()),
        )
    })
}

pub fn tree(global: &Global, target: &str) -> anyhow::Result<()> {
    with_namespace(global, target, async move |ns, path| {
        println!("{path}");
        print_subtree(ns, &path, "").await
    })
}

async fn print_subtree(ns: &mut Namespace<'_>, dir: &NsPath, indent: &str) -> anyhow::Result<()> {
    let entries: Vec<(String, Entry)> = ns
        .list(dir)
        .await?
        .entries
        .iter()
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    let count = entries.len();
    for (i, (name, e)) in entries.into_iter().enumerate() {
        let last = i + 1 == count;
        println!(
            "{indent}{}{}",
            if last { "└── " } else { "├── " },
            line(&name, &e, false)
        );
        if e.is_dir() {
            let more = format!("{indent}{}", if last { "    " } else { "│   " });
            Box::pin(print_subtree(ns, &dir.join(&name)?, &more)).await?;
        }
    }
    Ok(())
}

pub fn du(global: &Global, target: &str) -> anyhow::Result<()> {
    let json = global.json;
    with_namespace(global, target, async move |ns, path| {
        let entry = ns
            .stat(&path)
            .await?
            .ok_or_else(|| NsError::NotFound(path.clone()))?;
        let (files, bytes) = entry.summary();
        if json {
            println!(
                "{}",
                serde_json::json!({ "path": path.to_string(), "files": files, "bytes": bytes })
            );
        } else {
            println!("{:>10}  {files:>8} file(s)  {path}", format_size(bytes));
        }
        Ok(())
    })
}

pub fn share(global: &Global, target: &str) -> anyhow::Result<()> {
    with_namespace(global, target, async move |ns, path| {
        println!("{}", ns.share(&path).await?);
        Ok(())
    })
}
