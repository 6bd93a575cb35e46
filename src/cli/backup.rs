//! `postern backup --output FILE` and `postern restore --input FILE`: the database copied
//! with SQLite's online backup API while `serve` runs (`store::backup`), and put back while
//! it does not (`store::restore`, under the data directory's serve lock). The keyring is
//! never in a backup; both commands say so, loudly.

use std::path::{Path, PathBuf};

use clap::Args;

use super::accounts::Target;
use super::error::CliError;
use super::runtime;
use crate::store::{BEFORE_RESTORE, Copied, CopyError};

#[derive(Debug, Args)]
pub(super) struct BackupArgs {
    #[command(flatten)]
    target: Target,
    /// Where to write the copy of the database (created 0600; an existing file is refused).
    /// Safe while `postern serve` runs: the copy is one consistent snapshot.
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct RestoreArgs {
    #[command(flatten)]
    target: Target,
    /// A database written by `postern backup`. Stop `postern serve` first; the database it
    /// replaces is kept as `postern.db.before-restore` in the data directory.
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
}

pub(super) fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let (data_dir, key_file) = args.target.data_dir_and_key_file()?;
    let copied = crate::store::backup(&data_dir, &args.output).map_err(usage)?;
    println!("wrote {} (mode 0600)", describe(&copied));
    match key_file {
        Some(key_file) => print_keyring_reminder(&key_file),
        None => println!(
            "note: encryption is off, so this copy holds mail and secrets in plaintext: keep it private"
        ),
    }
    Ok(())
}

pub(super) fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let (data_dir, key_file) = args.target.data_dir_and_key_file()?;
    // A fresh data directory is made (private) first: the lock file lives in it.
    crate::datadir::ensure(&data_dir).map_err(|e| usage(e.into()))?;
    let lock = crate::datadir::lock_serving(&data_dir).map_err(|e| usage(e.into()))?;
    let copied = crate::store::restore(&data_dir, &args.input).map_err(usage)?;
    println!("restored {}", describe(&copied));
    let kept = data_dir.join(BEFORE_RESTORE);
    if kept.exists() {
        println!("kept     {} (the database it replaced)", kept.display());
    }
    // Opening migrates an older copy, still under the lock.
    let (store, _) = args.target.store_and(|_| ())?;
    let status = runtime().block_on(store.seal_status())?;
    drop(lock);
    let ids = store.opening_keys();
    let unreadable: Vec<_> = (status.by_key.keys())
        .filter(|id| !ids.iter().any(|known| known.to_string() == **id))
        .collect();
    if let Some(key_file) = key_file {
        println!("keyring  {}", key_file.display());
    }
    if !unreadable.is_empty() {
        let keys = unreadable.iter().map(|id| id.as_str()).collect::<Vec<_>>();
        println!(
            "WARNING: values sealed with key(s) {} are not readable with this keyring: \
             put the key file that was backed up with this database at [encryption] key_file",
            keys.join(", ")
        );
    }
    Ok(())
}

/// `FILE (12 MB, schema 8: 120 inbound and 4 outbound messages)`.
fn describe(copied: &Copied) -> String {
    format!(
        "{} ({} bytes, schema {}: {} inbound and {} outbound messages)",
        copied.path.display(),
        copied.bytes,
        copied.schema_version,
        copied.inbound_messages,
        copied.outbound_messages
    )
}

fn print_keyring_reminder(key_file: &Path) {
    println!();
    println!("!!! THE KEYRING IS NOT IN THIS BACKUP !!!");
    println!(
        "    Mail and secrets in it are sealed with {}. Back that file up too, kept apart",
        key_file.display()
    );
    println!("    from the database backups: without it nobody can read the sealed content,");
    println!("    and beside the backups it protects nothing.");
}

/// A refused or failed copy: the operator's input to fix (exit 2).
fn usage(error: CopyError) -> CliError {
    CliError::Usage(error.into())
}
