//! `cairn keys new|show|restore`: the account key file.
//!
//! The key file is the config's `key_file`, or `account.key` next to the
//! default config path when there is no config yet. A phrase is read from
//! stdin or a file, never from the command line (argv is visible in `ps`).

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_client::config::{self, ClientConfig};
use cairn_client::keys::{self, Account};
use cairn_protocol::keys::RecoveryPhrase;
use zeroize::Zeroizing;

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a new account: a 24-word recovery phrase, shown once.
    New {
        /// Replace an existing key file (its phrase is lost unless written down).
        #[arg(long)]
        force: bool,
    },
    /// Show the account address (and, with --phrase, the recovery phrase).
    Show {
        /// Also print the recovery phrase.
        #[arg(long)]
        phrase: bool,
    },
    /// Restore an account from its recovery phrase, read from stdin.
    Restore {
        /// Read the phrase from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        phrase_file: Option<PathBuf>,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
}

/// The key file to use: the config's, or `account.key` beside the default
/// config path when no config exists.
pub fn key_file_path(global: &Global) -> anyhow::Result<PathBuf> {
    match config::locate(global.config.as_deref(), None) {
        Ok(path) => Ok(ClientConfig::load(&path)?.key_file),
        Err(_) => {
            let default = config::default_path();
            let dir = default.parent().unwrap_or(Path::new("."));
            Ok(dir.join(keys::KEY_FILE))
        }
    }
}

pub fn run(command: KeysCommand, global: &Global) -> anyhow::Result<()> {
    let path = key_file_path(global)?;
    match command {
        KeysCommand::New { force } => {
            let account = keys::create(&path, &RecoveryPhrase::generate(), force)?;
            report(global, &path, &account, true, true)
        }
        KeysCommand::Show { phrase } => {
            let account = keys::load(&path)?;
            report(global, &path, &account, phrase, false)
        }
        KeysCommand::Restore { phrase_file, force } => {
            if !force && path.exists() {
                return Err(keys::KeyFileError::Exists { path }.into());
            }
            let text = read_phrase(phrase_file.as_deref())?;
            let phrase = RecoveryPhrase::parse(&text)
                .map_err(|e| anyhow::anyhow!("{e} (the phrase was not saved)"))?;
            let account = keys::create(&path, &phrase, force)?;
            report(global, &path, &account, false, false)
        }
    }
}

fn read_phrase(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    match file {
        Some(path) => {
            let bytes = Zeroizing::new(
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            );
            let s = std::str::from_utf8(&bytes)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
            text.push_str(s);
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Type or paste the recovery phrase, then press Enter:");
                stdin.lock().read_line(&mut text)?;
            } else {
                stdin.lock().take(64 * 1024).read_to_string(&mut text)?;
            }
        }
    }
    // Comment lines, as in a key file, are allowed.
    let words: Zeroizing<String> = Zeroizing::new(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(" "),
    );
    if words.trim().is_empty() {
        anyhow::bail!("no recovery phrase given (pipe it to stdin or pass --phrase-file)");
    }
    Ok(words)
}

fn report(
    global: &Global,
    path: &Path,
    account: &Account,
    show_phrase: bool,
    new: bool,
) -> anyhow::Result<()> {
    if global.json {
        let mut out = serde_json::json!({
            "address": account.address().to_string(),
            "key_file": path.display().to_string(),
        });
        if show_phrase {
            out["phrase"] = account.phrase().words().into();
        }
        println!("{out}");
        return Ok(());
    }
    if new {
        println!("Your recovery phrase (shown this once):");
        println!();
        println!("    {}", account.phrase().words());
        println!();
        println!("Write it down and keep it offline. Whoever has it controls the account");
        println!("and can read its files; without it, a lost key file cannot be replaced.");
        println!();
    } else if show_phrase {
        println!("recovery phrase: {}", account.phrase().words());
    }
    println!("address:  {}", account.address());
    println!("key file: {}", path.display());
    Ok(())
}
