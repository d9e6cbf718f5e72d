//! `cairn put|get|cat|stat|rm|nodes`: the commands that talk to nodes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_cli::bar::Bar;
use cairn_client::config::{self, ClientConfig, CONFIG_FILE};
use cairn_client::{Client, GetOptions, PutOptions};
use cairn_protocol::units::format_size;
use cairn_protocol::{Capability, CodingParams};
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;

use super::Global;

/// Loads the config the global options point at.
pub fn load_config(global: &Global) -> anyhow::Result<ClientConfig> {
    let devnet = config::data_home().join("devnet").join(CONFIG_FILE);
    let path = config::locate(global.config.as_deref(), Some(&devnet))?;
    Ok(ClientConfig::load(&path)?)
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn parse_capability(text: &str) -> anyhow::Result<Capability> {
    text.trim().parse().map_err(|e| {
        anyhow::anyhow!("invalid capability: {e} (expected cairn:<manifest id>#<key>)")
    })
}

fn bar(hidden: bool, prefix: &str) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let style = ProgressStyle::with_template(
        "{prefix:>8} [{bar:36}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

fn spinner(hidden: bool, message: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Why this command used the config's nodes instead of a configured
/// chain's registry; `main` reports it.
static NODE_FALLBACK: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Notes when a configured chain's registry could not be used.
fn note_node_source(client: &Client) {
    if let cairn_client::registry::NodeSource::Config(Some(why)) = client.node_source() {
        let _ = NODE_FALLBACK.set(why.clone());
    }
}

/// Why the last command used the config's nodes, if a chain was configured
/// and its registry could not be used.
pub fn node_fallback() -> Option<&'static str> {
    NODE_FALLBACK.get().map(String::as_str)
}

/// What storing with `fitted` instead of the configured code means.
fn scaled_down(configured: CodingParams, fitted: CodingParams) -> String {
    let (k, m, n) = (fitted.k(), fitted.m(), fitted.n());
    let less = if fitted.expansion() + 1e-9 < configured.expansion() {
        format!(
            ", less than the {:.1}× asked for: the network is too small to keep both",
            configured.expansion()
        )
    } else {
        String::new()
    };
    format!(
        "{n} storage nodes, fewer than the {} that {} data + {} parity shards need: \
         storing each segment as {k} data + {m} parity shards, one per node, so any {k} \
         nodes rebuild it and {m} may be lost; it takes {:.1}× the file's size{less}",
        configured.n(),
        configured.k(),
        configured.m(),
        fitted.expansion(),
    )
}

/// Runs `work`, or stops on ctrl-c with `interrupted` as the error.
async fn interruptible<T>(
    work: impl std::future::Future<Output = Result<T, cairn_client::Error>>,
    interrupted: &str,
) -> anyhow::Result<T> {
    tokio::select! {
        r = work => Ok(r?),
        _ = tokio::signal::ctrl_c() => bail!("interrupted; {interrupted}"),
    }
}

pub fn put(
    global: &Global,
    files: &[PathBuf],
    data_shards: Option<u16>,
    parity_shards: Option<u16>,
    no_deal: bool,
) -> anyhow::Result<()> {
    let config = load_config(global)?;
    let explicit = match (data_shards, parity_shards) {
        (None, None) => None,
        (k, m) => Some(
            CodingParams::new(
                k.unwrap_or(config.params.k() as u16),
                m.unwrap_or(config.params.m() as u16),
            )
            .context("invalid --data-shards/--parity-shards")?,
        ),
    };
    for f in files {
        if !f.is_file() {
            bail!("cannot upload {}: not a readable file", f.display());
        }
    }
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        note_node_source(&client);
        let params = client.coding_params(explicit)?;
        if explicit.is_none() && params != client.config().params && !global.json {
            eprintln!("note: {}", scaled_down(client.config().params, params));
        }
        let deals = client.chain().is_some() && client.config().open_deals && !no_deal;
        let mut reports = Vec::new();
        for file in files {
            let bar = bar(global.json, "put");
            let options = PutOptions {
                params: explicit,
                progress: Some(Arc::new(Bar(bar.clone()))),
            };
            let report = interruptible(
                client.put_path(file, &options),
                "run the same `cairn put` again to resume",
            )
            .await
            .with_context(|| format!("put {}", file.display()))?;
            bar.finish_and_clear();
            if !global.json {
                println!("{}", report.capability);
                eprintln!(
                    "  {} in {:.1} s ({:.0} MiB/s): {} segment(s), k={} n={}, {} shards sent{}{}{}",
                    format_size(report.size_bytes),
                    report.seconds,
                    report.size_bytes as f64 / 1048576.0 / report.seconds.max(1e-9),
                    report.segments,
                    report.k,
                    report.n,
                    report.shards_stored,
                    if report.shards_resumed > 0 {
                        format!(
                            ", {} already stored by an earlier run",
                            report.shards_resumed
                        )
                    } else {
                        String::new()
                    },
                    if report.replaced > 0 {
                        format!(", {} re-placed after node failures", report.replaced)
                    } else {
                        String::new()
                    },
                    if report.hedged > 0 {
                        format!(", {} raced past slow nodes", report.hedged)
                    } else {
                        String::new()
                    },
                );
            }
            let mut value = serde_json::to_value(&report)?;
            value["path"] = serde_json::Value::String(file.display().to_string());
            if deals {
                let spinner = spinner(global.json, "opening a storage deal");
                let deal = client.open_deal(&report, &client.config().deal).await;
                spinner.finish_and_clear();
                let deal = deal.with_context(|| {
                    format!(
                        "{} is stored (its capability is {}), but no deal was opened; store it again to retry",
                        file.display(),
                        report.capability
                    )
                })?;
                if !global.json {
                    eprintln!(
                        "  deal {} opened at height {}: {} nodes, {} epochs ({}..{}), escrow {}",
                        deal.id,
                        deal.height,
                        deal.nodes,
                        deal.end_epoch - deal.start_epoch,
                        deal.start_epoch,
                        deal.end_epoch,
                        deal.escrow
                    );
                    if deal.moved_off > 0 {
                        eprintln!(
                            "  {} shards were rebuilt onto other nodes first: the nodes holding them gave no receipt",
                            deal.moved_off
                        );
                    }
                }
                value["deal"] = serde_json::to_value(&deal)?;
            }
            reports.push(value);
        }
        if global.json {
            println!("{}", serde_json::json!({ "files": reports }));
        }
        Ok(())
    })
}

pub fn get(global: &Global, cap: &str, out: &Path, force: bool) -> anyhow::Result<()> {
    let cap = parse_capability(cap)?;
    let config = load_config(global)?;
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        note_node_source(&client);
        let bar = bar(global.json, "get");
        let options = GetOptions {
            progress: Some(Arc::new(Bar(bar.clone()))),
            overwrite: force,
        };
        let report = interruptible(
            client.get_to_path(&cap, out, &options),
            "run the same `cairn get` again to resume",
        )
        .await?;
        bar.finish_and_clear();
        if global.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            eprintln!(
                "wrote {} to {} in {:.1} s ({:.0} MiB/s){}{}",
                format_size(report.size_bytes),
                out.display(),
                report.seconds,
                report.bytes_written as f64 / 1048576.0 / report.seconds.max(1e-9),
                if report.resumed_at > 0 {
                    format!(", resumed at {}", format_size(report.resumed_at))
                } else {
                    String::new()
                },
                if report.shards_rebuilt > 0 {
                    format!(
                        ", {} data shard(s) rebuilt from parity",
                        report.shards_rebuilt
                    )
                } else {
                    String::new()
                },
            );
        }
        Ok(())
    })
}

pub fn cat(global: &Global, cap: &str, offset: u64, length: Option<u64>) -> anyhow::Result<()> {
    let cap = parse_capability(cap)?;
    let config = load_config(global)?;
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        note_node_source(&client);
        let mut stdout = tokio::io::stdout();
        if offset == 0 && length.is_none() {
            client
                .get(&cap, &mut stdout, &GetOptions::default())
                .await?;
        } else {
            let len = match length {
                Some(l) => l,
                None => {
                    let size = client.stat(&cap).await?.size_bytes;
                    size.saturating_sub(offset)
                }
            };
            let bytes = client.get_range(&cap, offset, len).await?;
            stdout.write_all(&bytes).await?;
        }
        stdout.flush().await?;
        Ok(())
    })
}

pub fn stat(global: &Global, cap: &str) -> anyhow::Result<()> {
    let cap = parse_capability(cap)?;
    let config = load_config(global)?;
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        note_node_source(&client);
        let status = client.stat(&cap).await?;
        if global.json {
            println!("{}", serde_json::to_string(&status)?);
            return Ok(());
        }
        println!("manifest   {}", status.manifest_id);
        println!("size       {}", format_size(status.size_bytes));
        println!(
            "coding     k={} n={} (any {} of {} shards rebuild a segment), shards of {}",
            status.k,
            status.n,
            status.k,
            status.n,
            format_size(status.shard_size as u64)
        );
        println!(
            "health     {}: the weakest of {} segment(s) has {}/{} shards",
            status.health,
            status.segments.len(),
            status.min_available,
            status.n
        );
        println!("manifest   {} copies", status.manifest_copies);
        println!(
            "nodes      {}/{} answered",
            status.nodes_answered, status.nodes_asked
        );
        match (&status.deal, &status.chain_error) {
            (Some(deal), _) => println!(
                "chain      deal {deal}; {} shard(s) repaired onto new holders",
                status.repaired_shards
            ),
            (None, Some(e)) => println!("chain      no view: {e}"),
            (None, None) => {}
        }
        let weak: Vec<_> = status
            .segments
            .iter()
            .filter(|s| {
                s.available < status.n
                    || s.chain
                        .as_ref()
                        .is_some_and(|c| c.healthy < status.n || c.repaired > 0)
            })
            .take(10)
            .collect();
        for s in weak {
            let chain = s.chain.as_ref().map_or(String::new(), |c| {
                let moved: Vec<String> = c
                    .shards
                    .iter()
                    .filter(|x| x.repaired)
                    .map(|x| {
                        let node = x.node.map_or("?".to_string(), |a| a.to_string());
                        format!("{}→{}", x.index, &node[..node.len().min(12)])
                    })
                    .collect();
                format!(
                    "; chain: {} on active, {} on faulty, {} lost nodes ({}){}",
                    c.healthy,
                    c.unhealthy,
                    c.lost,
                    c.verdict,
                    if moved.is_empty() {
                        String::new()
                    } else {
                        format!(", repaired {}", moved.join(" "))
                    }
                )
            });
            println!(
                "  segment {:>6}: {}/{} shards{chain}",
                s.index, s.available, status.n
            );
        }
        Ok(())
    })
}

pub fn rm(global: &Global, cap: &str) -> anyhow::Result<()> {
    let cap = parse_capability(cap)?;
    let config = load_config(global)?;
    runtime()?.block_on(async {
        let client = Client::open(config).await?;
        note_node_source(&client);
        let report = client.rm(&cap).await?;
        if global.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "removed {} shard copies of {}{}",
                report.deleted,
                report.manifest_id,
                if report.unreachable_nodes > 0 {
                    format!(
                        "; {} node(s) did not answer and may keep theirs until they expire",
                        report.unreachable_nodes
                    )
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    })
}

#[derive(Debug, serde::Serialize)]
struct NodeLine {
    peer: String,
    address: String,
    reachable: bool,
    latency_ms: Option<f64>,
    version: Option<String>,
    used_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    shards: Option<u64>,
    error: Option<String>,
}

pub fn nodes(global: &Global) -> anyhow::Result<()> {
    let mut config = load_config(global)?;
    runtime()?.block_on(async {
        let source =
            cairn_client::registry::resolve_nodes(&mut config, Duration::from_secs(10)).await;
        if let cairn_client::registry::NodeSource::Config(Some(why)) = source {
            let _ = NODE_FALLBACK.set(why);
        }
        let network = cairn_client::network::Network::start(&config)?;
        let mut asks: FuturesUnordered<_> = (0..network.len())
            .map(|i| {
                let network = &network;
                async move {
                    let started = Instant::now();
                    let r = tokio::time::timeout(Duration::from_secs(10), network.info(i)).await;
                    (i, started.elapsed(), r)
                }
            })
            .collect();
        let mut lines = Vec::new();
        while let Some((i, took, r)) = asks.next().await {
            let node = &network.nodes()[i];
            let mut line = NodeLine {
                peer: node.peer.to_string(),
                address: node.to_string(),
                reachable: false,
                latency_ms: None,
                version: None,
                used_bytes: None,
                capacity_bytes: None,
                shards: None,
                error: None,
            };
            match r {
                Ok(Ok(info)) => {
                    line.reachable = true;
                    line.latency_ms = Some(took.as_secs_f64() * 1000.0);
                    line.version = Some(info.version);
                    line.used_bytes = Some(info.used);
                    line.capacity_bytes = Some(info.capacity);
                    line.shards = Some(info.shards);
                }
                Ok(Err(e)) => line.error = Some(e.to_string()),
                Err(_) => line.error = Some("no answer within 10 s".into()),
            }
            lines.push((i, line));
        }
        lines.sort_by_key(|(i, _)| *i);
        let reachable = lines.iter().filter(|(_, l)| l.reachable).count();
        if global.json {
            let nodes: Vec<_> = lines.into_iter().map(|(_, l)| l).collect();
            println!(
                "{}",
                serde_json::json!({ "reachable": reachable, "nodes": nodes })
            );
        } else {
            for (_, l) in &lines {
                match (&l.error, l.used_bytes, l.capacity_bytes) {
                    (None, Some(used), Some(cap)) => println!(
                        "up    {}  {:>6.1} ms  {} / {}  {} shards",
                        l.address,
                        l.latency_ms.unwrap_or_default(),
                        format_size(used),
                        format_size(cap),
                        l.shards.unwrap_or_default()
                    ),
                    (e, _, _) => println!("DOWN  {}  {}", l.address, e.as_deref().unwrap_or("")),
                }
            }
            println!("{reachable}/{} nodes reachable", lines.len());
        }
        if reachable == 0 {
            bail!("no node is reachable: is the network up? (`cairn devnet status`)");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_down_code_says_what_it_keeps() {
        let asked = CodingParams::default();
        let five = scaled_down(asked, asked.fit_to(5).unwrap());
        assert_eq!(
            five,
            "5 storage nodes, fewer than the 30 that 10 data + 20 parity shards need: \
             storing each segment as 2 data + 3 parity shards, one per node, so any 2 nodes \
             rebuild it and 3 may be lost; it takes 2.5× the file's size, less than the 3.0× \
             asked for: the network is too small to keep both"
        );
        let ten = scaled_down(asked, asked.fit_to(10).unwrap());
        assert!(ten.ends_with("it takes 3.3× the file's size"), "{ten}");
    }
}
