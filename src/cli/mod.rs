//! The command line: `postern dev | serve | check | ready | init | user | key | credential |
//! sending-domain | suppression | export | purge | backup | restore`. Only this module (with `main`) reads argv and the
//! environment; everything else receives a [`Config`].
//!
//! `run` executes one command and returns `anyhow::Result`; `error` is the one place that
//! turns a failure into the message printed and the exit code. `serve` runs the server (for
//! `serve` and `dev`), `check` validates a config and prints what it would run, `accounts`
//! holds the `user` and `key` commands, `outbound` the `credential`, `sending-domain` and
//! `suppression` commands, `data_requests` `export` and `purge`, `backup` `backup` and
//! `restore`, `ready` asks a running server's `/readyz`.

mod accounts;
mod backup;
mod check;
mod data_requests;
mod error;
mod keyring;
mod outbound;
mod ready;
mod serve;
mod signing;
mod stores;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, EXAMPLE};
use crate::store::Store;
use crate::telemetry::LogFormat;
use error::CliError;

const DEFAULT_CONFIG: &str = "/etc/postern/postern.toml";

/// Postern: receives mail for your domains over SMTP and POSTs it to your web app as
/// CloudMailin-compatible JSON. The app's HTTP status becomes the SMTP reply: 2xx → 250,
/// 4xx → 554, 5xx or no answer → 450 (the sender retries).
#[derive(Debug, Parser)]
#[command(name = "postern", version, propagate_version = true)]
#[command(
    after_help = concat!(
        "Quick start:  postern dev      (then follow the printed swaks line)\n",
        "Production:   postern init --output /etc/postern/postern.toml\n",
        "              postern check --config /etc/postern/postern.toml\n",
        "              postern user add --config /etc/postern/postern.toml --email you@example.com\n",
        "              postern serve --config /etc/postern/postern.toml\n",
        "Logging:      POSTERN_LOG=debug (or e.g. POSTERN_LOG=postern=debug,info);\n",
        "              POSTERN_LOG_FORMAT=json for one JSON object per line",
    )
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Zero-config local mode: accept mail for any address on 127.0.0.1:2525, keep it,
    /// and show it at http://127.0.0.1:8025/ (and /api/messages).
    Dev(serve::DevArgs),
    /// Run in production from a config file (see `postern init`).
    Serve {
        /// The config file; POSTERN_SECTION__KEY environment variables override it.
        #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file and print what it would run, then exit.
    Check {
        /// The config file to check; POSTERN_SECTION__KEY environment variables override it.
        #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running server whether it is ready (GET /readyz on its web listener, from
    /// this machine): exit 0 when it is, 1 naming what is not. For container HEALTHCHECKs.
    Ready(ready::ReadyArgs),
    /// Users who sign in to the dashboard: add, list, delete, reset-totp.
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// API keys for scripts: add, list, revoke.
    #[command(subcommand)]
    Key(accounts::KeyCommand),
    /// SMTP credentials apps send mail with (send API + SMTP submission): add, list, revoke.
    #[command(subcommand)]
    Credential(outbound::CredentialCommand),
    /// Domains apps send from (DKIM keys, DNS records): add, list, remove.
    #[command(subcommand)]
    SendingDomain(outbound::SendingDomainCommand),
    /// The suppression list (addresses no mail is sent to): list, add, remove.
    #[command(subcommand)]
    Suppression(outbound::SuppressionCommand),
    /// Webhook signing secrets (Standard Webhooks) of addresses and credentials: list,
    /// rotate, retire, remove.
    #[command(subcommand)]
    Signing(signing::SigningCommand),
    /// Attachment and message stores (an S3-compatible bucket, or the data directory):
    /// add, list, remove, test.
    #[command(subcommand)]
    Store(stores::StoreCommand),
    /// The keyring that seals mail and secrets at rest: init, status, rotate, reencrypt,
    /// retire.
    #[command(subcommand)]
    Keyring(keyring::KeyringCommand),
    /// Data-subject request: write everything about a person, a domain or a managed address
    /// to a tar archive (JSON Lines per table, the .eml content, a manifest).
    Export(data_requests::ExportArgs),
    /// Data-subject request: delete everything about a person, a domain or a managed
    /// address (try --dry-run first); the audit log records the request, not the address.
    Purge(data_requests::PurgeArgs),
    /// Copy the database to a file while `serve` runs (a consistent snapshot, mode 0600).
    /// The keyring is not in it: back up [encryption] key_file separately.
    Backup(backup::BackupArgs),
    /// Put a database written by `postern backup` back, with `serve` stopped; the one it
    /// replaces is kept as postern.db.before-restore.
    Restore(backup::RestoreArgs),
    /// Write a commented example config to start from, and a new keyring beside it.
    Init {
        /// Where to write it; `-` for standard output.
        #[arg(long, short, default_value = "postern.toml", value_name = "FILE")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// Parses argv, runs the command, and turns a failure into its message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = std::env::var("POSTERN_LOG").ok();
    let default = match cli.command {
        Command::Dev(_) | Command::Serve { .. } => "info",
        _ => "warn",
    };
    let format = match LogFormat::parse(std::env::var("POSTERN_LOG_FORMAT").ok().as_deref()) {
        Ok(format) => format,
        Err(unknown) => return error::report(&CliError::Usage(unknown.into()).into()),
    };
    crate::telemetry::init_as(log.as_deref(), default, format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => error::report(&failure),
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => serve::dev(args),
        Command::Serve { config } => serve::serve(&config),
        Command::Check { config } => check::check(&config),
        Command::Ready(args) => ready::ready(args),
        Command::Init { output, force } => init(&output, force),
        Command::User(command) => accounts::user(command),
        Command::Key(command) => accounts::key(command),
        Command::Credential(command) => outbound::credential(command),
        Command::SendingDomain(command) => outbound::sending_domain(command),
        Command::Suppression(command) => outbound::suppression(command),
        Command::Signing(command) => signing::signing(command),
        Command::Store(command) => stores::store(command),
        Command::Keyring(command) => keyring::keyring(command),
        Command::Export(args) => data_requests::export(args),
        Command::Purge(args) => data_requests::purge(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
    }
}

/// Reads and validates the config file, with the `POSTERN_*` overrides.
fn load(path: &Path) -> Result<Config, CliError> {
    Config::load(path, std::env::vars()).map_err(|source| CliError::Config {
        path: path.to_owned(),
        source,
    })
}

/// The store of `config`, created when it is new, sealing with its keyring.
fn open_store(config: &Config) -> Result<Store, CliError> {
    crate::app::open_store(config).map_err(CliError::Keyring)
}

/// The store in a data directory given directly (`--data-dir`): sealed with
/// `<data_dir>/keyring` when it exists (as `postern dev` does), else plaintext.
fn open_dir_store(data_dir: &Path) -> Result<Store, CliError> {
    if !data_dir.join("keyring").exists() {
        return Store::open(data_dir).map_err(CliError::Store);
    }
    // Dev's settings: the keyring in the data directory.
    let config = Config::dev(
        data_dir.to_owned(),
        ([127, 0, 0, 1], 0).into(),
        ([127, 0, 0, 1], 0).into(),
        None,
    );
    open_store(&config)
}

/// `path` from the root, so the config's `key_file` does not depend on where postern runs.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// A single-threaded runtime for the commands that call the async services once.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

fn init(output: &Path, force: bool) -> anyhow::Result<()> {
    if output == Path::new("-") {
        print!("{EXAMPLE}");
        return Ok(());
    }
    if output.exists() && !force {
        return Err(CliError::usage(format!(
            "{} already exists; pass --force to overwrite it",
            output.display()
        ))
        .into());
    }
    let key_file = output.with_file_name("keyring");
    let example = EXAMPLE.replace(
        "key_file = \"/etc/postern/keyring\"",
        &format!("key_file = {:?}", absolute(&key_file).display().to_string()),
    );
    std::fs::write(output, example)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("wrote {}", output.display());
    if key_file.exists() {
        println!("kept  {} (the existing keyring)", key_file.display());
    } else {
        let id = keyring::write_new(&key_file)?;
        println!("wrote {} (key {id}, mode 0600)", key_file.display());
    }
    println!("warning: {}", keyring::BACKUP_WARNING);
    println!("next: edit [server] and the [[address]] blocks, then");
    println!("      postern check --config {}", output.display());
    println!(
        "      postern user add --config {} --email you@example.com   (the first admin)",
        output.display()
    );
    println!("      postern serve --config {}", output.display());
    Ok(())
}
