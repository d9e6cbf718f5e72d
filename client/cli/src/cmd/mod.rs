//! The `cairn` subcommands, one file per group.

use std::path::PathBuf;

pub mod chain;
pub mod devnet;
pub mod fs;
pub mod keys;
pub mod mount;
pub mod transfer;

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Client config file (default: $CAIRN_CONFIG, ~/.config/cairn/client.toml,
    /// or the running devnet's).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}
