//! `postern keyring …`: the keyring that seals mail and secrets at rest (`[encryption]`):
//! `init` writes one, `status` shows its keys and what each seals, `rotate` adds a key that
//! seals from then on, `reencrypt` seals every value with the current key, `retire` drops a
//! key nothing is sealed with any more. `init` and `dev` also write keyrings, and `check`
//! shows the keyring (`print_keyring`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::error::CliError;
use super::{DEFAULT_CONFIG, runtime};
use crate::config::{Config, EncryptionConfig};
use crate::crypto::{KeyId, Keyring};

/// Which installation: its config file names the key file and the data directory.
#[derive(Debug, Args)]
pub(super) struct Install {
    /// The config file; its [encryption] key_file is the keyring, its server.data_dir the store.
    #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(super) enum KeyringCommand {
    /// Write a new keyring (one key, mode 0600) at [encryption] key_file, if there is none.
    Init {
        #[command(flatten)]
        install: Install,
    },
    /// Show the keys, the one that seals, how many stored values each key seals and how
    /// many are still plaintext.
    Status {
        #[command(flatten)]
        install: Install,
    },
    /// Add a new key, which seals new values once postern serve is restarted; the old keys
    /// still open what they sealed. Then restart, and run `reencrypt`.
    Rotate {
        #[command(flatten)]
        install: Install,
    },
    /// Seal every stored value with the current key (plaintext from before encryption, or
    /// sealed with an older key), in batches. postern serve also does this every 10 minutes.
    Reencrypt {
        #[command(flatten)]
        install: Install,
    },
    /// Drop a key from the keyring; refused while any value is still sealed with it.
    Retire {
        #[command(flatten)]
        install: Install,
        /// The key id to drop (16 hex digits, as `status` shows them).
        key_id: KeyId,
    },
}

pub(super) fn keyring(command: KeyringCommand) -> anyhow::Result<()> {
    match command {
        KeyringCommand::Init { install } => init(&install.load()?),
        KeyringCommand::Status { install } => status(&install.load()?),
        KeyringCommand::Rotate { install } => rotate(&install.load()?),
        KeyringCommand::Reencrypt { install } => reencrypt(&install.load()?),
        KeyringCommand::Retire { install, key_id } => retire(&install.load()?, key_id),
    }
}

impl Install {
    fn load(&self) -> Result<Config, CliError> {
        let config = super::load(&self.config)?;
        if !config.encryption.enabled {
            return Err(CliError::usage(format!(
                "{}: [encryption] enabled = false; set it to true to seal mail and secrets",
                self.config.display()
            )));
        }
        Ok(config)
    }
}

/// Writes a new one-key keyring at `path` (0600) unless a file is there already.
pub(super) fn write_new(path: &Path) -> anyhow::Result<KeyId> {
    if path.exists() {
        bail!(
            "{} already exists; it is kept (a new keyring would make what it sealed unreadable)",
            path.display()
        );
    }
    let keyring = Keyring::generate();
    keyring
        .save(path, None)
        .with_context(|| format!("cannot write the keyring {}", path.display()))?;
    Ok(keyring.current())
}

fn init(config: &Config) -> anyhow::Result<()> {
    let path = &config.encryption.key_file;
    let id = write_new(path)?;
    println!("wrote {} (key {id}, mode 0600)", path.display());
    println!("warning:  {BACKUP_WARNING}");
    Ok(())
}

/// The warning `init` and `check` print.
pub(super) const BACKUP_WARNING: &str = "back up the key file separately from the database: \
    without it the sealed mail and secrets cannot be read, and with it beside the backups \
    they are not protected";

fn load_keyring(encryption: &EncryptionConfig) -> Result<Keyring, CliError> {
    crate::app::load_keyring(encryption)
        .map(|keyring| {
            let keyring = keyring.expect("encryption is on");
            std::sync::Arc::try_unwrap(keyring).expect("the only reference")
        })
        .map_err(|error| CliError::Keyring(error.into()))
}

fn status(config: &Config) -> anyhow::Result<()> {
    let keyring = load_keyring(&config.encryption)?;
    let store = super::open_store(config)?;
    let counts = runtime().block_on(store.seal_status())?;
    println!("Key file  {}", config.encryption.key_file.display());
    for id in keyring.ids() {
        let sealing = if id == keyring.current() {
            "  (seals new values)"
        } else {
            ""
        };
        let count = counts.by_key.get(&id.to_string()).copied().unwrap_or(0);
        println!("key {id}  {count} values{sealing}");
    }
    for (id, count) in &counts.by_key {
        if !keyring.ids().iter().any(|key| key.to_string() == *id) {
            println!("key {id}  {count} values  (NOT IN THE KEYRING: unreadable)");
        }
    }
    println!(
        "plaintext {} values (run `postern keyring reencrypt`)",
        counts.plaintext
    );
    Ok(())
}

/// Saves `keyring` back to the key file, wrapped with the passphrase it was unlocked with.
fn save(keyring: &Keyring, encryption: &EncryptionConfig) -> anyhow::Result<()> {
    let passphrase =
        crate::app::passphrase(encryption).map_err(|error| CliError::Keyring(error.into()))?;
    keyring
        .save(&encryption.key_file, passphrase.as_ref())
        .with_context(|| format!("cannot write {}", encryption.key_file.display()))
}

fn rotate(config: &Config) -> anyhow::Result<()> {
    let mut keyring = load_keyring(&config.encryption)?;
    let id = keyring.rotate();
    save(&keyring, &config.encryption)?;
    println!("added key {id}: it seals new values once postern serve is restarted");
    println!("next:     restart postern serve, then postern keyring reencrypt");
    Ok(())
}

fn reencrypt(config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config)?;
    let sealed = runtime().block_on(store.reencrypt())?;
    let key = store.sealing_key().expect("encryption is on");
    println!("sealed {sealed} values with key {key}");
    Ok(())
}

fn retire(config: &Config, id: KeyId) -> anyhow::Result<()> {
    let mut keyring = load_keyring(&config.encryption)?;
    let store = super::open_store(config)?;
    let counts = runtime().block_on(store.seal_status())?;
    if let Some(count) = counts
        .by_key
        .get(&id.to_string())
        .filter(|count| **count > 0)
    {
        bail!(
            "{count} stored values are still sealed with key {id}; run `postern keyring \
             reencrypt --config …` first (after a restart of postern serve if it rotated)"
        );
    }
    keyring.retire(id)?;
    save(&keyring, &config.encryption)?;
    println!(
        "retired key {id}; the keyring seals with {}",
        keyring.current()
    );
    Ok(())
}

/// For `postern check`: the key file, its keys, which one seals, and the backup warning.
pub(super) fn print_keyring(config: &Config) -> anyhow::Result<()> {
    if !config.encryption.enabled {
        println!(
            "Sealing   off ([encryption] enabled = false): mail and secrets stored in plaintext"
        );
        return Ok(());
    }
    let keyring = load_keyring(&config.encryption)?;
    let ids: Vec<String> = keyring.ids().iter().map(KeyId::to_string).collect();
    println!(
        "Sealing   on: key file {}  keys {}  (seals with {})",
        config.encryption.key_file.display(),
        ids.join(", "),
        keyring.current()
    );
    println!("warning:  {BACKUP_WARNING}");
    Ok(())
}
