//! `cairn chain status|faucet|transfer`, `cairn account` and `cairn deals`:
//! the commands that talk to the chain's validators.

use std::time::Duration;

use anyhow::Context;
use cairn_client::chain::ChainClient;
use cairn_client::keys;
use cairn_protocol::chain::{Address, TxBody};
use cairn_protocol::units::format_size;

use super::transfer::{load_config, runtime};
use super::Global;

/// How long one request to a validator may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Subcommand)]
pub enum ChainCommand {
    /// Height, epoch, validators and mempool of the chain.
    Status,
    /// The storage nodes registered on the chain (what clients place on).
    Nodes,
    /// Devnet only: mint AMOUNT to your account and wait for the block.
    Faucet { amount: u64 },
    /// Send AMOUNT to the account TO (64 hex digits) and wait for the block.
    Transfer {
        to: String,
        amount: u64,
        /// Fee to pay (burned); default: the chain's minimum.
        #[arg(long)]
        fee: Option<u64>,
        /// Longest wait for the block, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
}

fn client(global: &Global) -> anyhow::Result<ChainClient> {
    let config = load_config(global)?;
    Ok(ChainClient::new(&config.chain, REQUEST_TIMEOUT)?)
}

fn parse_address(text: &str) -> anyhow::Result<Address> {
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("'{text}' is not an account address (64 hex digits)"))
}

/// The user's own address, from the key file.
fn own_address(global: &Global) -> anyhow::Result<(Address, ed25519_dalek::SigningKey)> {
    let config = load_config(global)?;
    let account = keys::load(&config.key_file)?;
    Ok((account.address(), account.signing_key()))
}

pub fn run(command: ChainCommand, global: &Global) -> anyhow::Result<()> {
    let chain = client(global)?;
    let rt = runtime()?;
    match command {
        ChainCommand::Nodes => {
            let list = rt.block_on(chain.nodes())?;
            if global.json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            if list.nodes.is_empty() {
                println!("no storage node is registered");
            }
            for n in &list.nodes {
                println!(
                    "{}  {}  {} of {} used, stake {}, {} deal(s), {}",
                    n.peer_id.as_deref().unwrap_or(&n.peer_id_hex),
                    n.status,
                    format_size(n.used),
                    format_size(n.capacity),
                    n.stake,
                    n.active_deals,
                    n.addresses.join(" ")
                );
            }
            if list.total > list.nodes.len() {
                println!("({} more not shown)", list.total - list.nodes.len());
            }
            Ok(())
        }
        ChainCommand::Status => {
            let s = rt.block_on(chain.status())?;
            if global.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "chain       {} (genesis {})",
                    s.chain_id,
                    &s.genesis_hash.to_string()[..16]
                );
                println!(
                    "height      {}{}",
                    s.height,
                    s.latest_block_digest
                        .as_deref()
                        .map(|d| format!(" (block {})", &d[..16]))
                        .unwrap_or_default()
                );
                println!(
                    "period      {} (an epoch of {} blocks; {} samples per proof, {} blocks to answer)",
                    s.period, s.epoch_blocks, s.proof_samples, s.proof_window_blocks
                );
                match s.beacon_view {
                    Some(view) => println!("beacon      {} (seed of view {view})", s.beacon),
                    None => println!("beacon      {} (genesis)", s.beacon),
                }
                println!("state root  {}", s.state_root);
                println!("mempool     {} transaction(s)", s.mempool_txs);
                println!("validators  {}", s.validators.len());
                for v in &s.validators {
                    println!("  {v}");
                }
            }
            Ok(())
        }
        ChainCommand::Faucet { amount } => {
            let (address, key) = own_address(global)?;
            // The faucet pays no fee, so an empty account can use it.
            let tx = rt.block_on(chain.send(&key, TxBody::Faucet { amount }, 0))?;
            finish(global, &chain, &rt, &tx, Duration::from_secs(60), || {
                format!("minted {amount} to {address}")
            })
        }
        ChainCommand::Transfer {
            to,
            amount,
            fee,
            wait,
        } => {
            let to = parse_address(&to)?;
            let (_, key) = own_address(global)?;
            let fee = match fee {
                Some(f) => f,
                None => rt.block_on(chain.status())?.min_fee,
            };
            let tx = rt.block_on(chain.send(&key, TxBody::Transfer { to, amount }, fee))?;
            finish(global, &chain, &rt, &tx, Duration::from_secs(wait), || {
                format!("sent {amount} to {to} (fee {fee})")
            })
        }
    }
}

/// Waits for the transaction's block and reports it.
fn finish(
    global: &Global,
    chain: &ChainClient,
    rt: &tokio::runtime::Runtime,
    tx: &cairn_protocol::chain::SignedTx,
    wait: Duration,
    done: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let id = tx.id();
    if !global.json {
        eprintln!("submitted {}; waiting for a block…", hex::encode(id));
    }
    let view = rt.block_on(chain.wait_for_tx(&id, wait))?;
    if global.json {
        println!("{}", serde_json::to_string(&view)?);
    }
    if view.ok != Some(true) {
        anyhow::bail!(
            "transaction {} was refused in block {}: {}",
            hex::encode(id),
            view.height.unwrap_or_default(),
            view.error.as_deref().unwrap_or("no reason given")
        );
    }
    if !global.json {
        println!("{} in block {}", done(), view.height.unwrap_or_default());
    }
    Ok(())
}

/// `cairn account [ADDRESS]`.
pub fn account(global: &Global, address: Option<&str>) -> anyhow::Result<()> {
    let chain = client(global)?;
    let address = match address {
        Some(a) => parse_address(a)?,
        None => {
            own_address(global)
                .context("no ADDRESS given and no account key to take it from")?
                .0
        }
    };
    let a = runtime()?.block_on(chain.account(&address))?;
    if global.json {
        println!("{}", serde_json::to_string(&a)?);
        return Ok(());
    }
    println!("address   {}", a.address);
    println!("balance   {}", a.balance);
    println!(
        "nonce     {}{}",
        a.nonce,
        if a.next_nonce > a.nonce {
            format!(" ({} pending)", a.next_nonce - a.nonce)
        } else {
            String::new()
        }
    );
    if let Some(n) = &a.node {
        println!(
            "node      {} stake, {} of {} bytes committed in {} deal(s), earned {}",
            n.stake, n.used, n.capacity, n.active_deals, n.earned
        );
    }
    if let Some(ns) = &a.namespace {
        println!("namespace {} (version {})", ns.root, ns.version);
    }
    Ok(())
}

/// A deal's repairs: what moved where, the claims waiting for their
/// bounty, and the counts of paid and failed ones.
fn print_repair(r: &cairn_client::chain::api::DealRepairView) {
    let node = |n: &Option<cairn_protocol::chain::Address>| {
        n.map_or_else(|| "an unknown node".to_string(), |a| a.to_string())
    };
    println!(
        "  repair     {} shard(s) moved; {} pending, {} done (paid {}), {} failed",
        r.moved.len(),
        r.pending,
        r.done,
        r.paid,
        r.failed
    );
    for p in &r.pending_claims {
        let sampled = p.holders.iter().filter(|h| h.sampled).count();
        println!(
            "    pending  by {} at height {}: bounty {}, {}/{} new holder(s) proven",
            p.repairer,
            p.claimed_at,
            p.bounty,
            sampled,
            p.holders.len()
        );
    }
    for m in r.moved.iter().take(20) {
        println!(
            "    moved    segment {} shard {} to {}",
            m.segment,
            m.index,
            node(&m.node)
        );
    }
    if r.moved.len() > 20 {
        println!("    ({} more moved)", r.moved.len() - 20);
    }
}

/// `cairn deals [--owner ADDRESS]`: without --owner, the user's own.
pub fn deals(global: &Global, owner: Option<&str>, all: bool) -> anyhow::Result<()> {
    let chain = client(global)?;
    let owner = match (owner, all) {
        (_, true) => None,
        (Some(o), false) => Some(parse_address(o)?),
        (None, false) => Some(
            own_address(global)
                .context("no --owner given and no account key to take it from (or pass --all)")?
                .0,
        ),
    };
    let list = runtime()?.block_on(chain.deals(owner.as_ref()))?;
    if global.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    if list.deals.is_empty() {
        println!("no open deals");
    }
    for d in &list.deals {
        println!(
            "{}  {} bytes on {} node(s), epochs {}..{}, {} per epoch, escrow {} ({} withheld)",
            d.id,
            d.size,
            d.commitments.len(),
            d.start_epoch,
            d.end_epoch,
            d.price_per_epoch,
            d.escrow,
            d.withheld
        );
        for c in &d.commitments {
            let lost = if c.lost_shards > 0 {
                format!(", {} shard(s) lost", c.lost_shards)
            } else {
                String::new()
            };
            println!(
                "  {}  {:<12} {} proven, {} missed, paid {}{lost}",
                c.node, c.status, c.proofs_accepted, c.proofs_missed, c.paid
            );
        }
        if let Some(r) = &d.repair {
            print_repair(r);
        }
    }
    if list.total > list.deals.len() {
        println!("({} more not shown)", list.total - list.deals.len());
    }
    Ok(())
}
