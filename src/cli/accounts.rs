//! `postern user …` and `postern key …`: accounts and API keys from the command line, on the
//! store of a config file (or a dev data directory). The first admin is made this way.
//! Works while the server runs (SQLite allows it); audit rows name the actor `cli`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::error::CliError;
use super::{DEFAULT_CONFIG, runtime};
use crate::accounts::{
    Accounts, Actor, MIN_PASSWORD_CHARS, NewPassword, PasswordParams, Policy, Role,
};
use crate::clock::Clock;
use crate::store::Store;

/// Which installation: its config file, or a data directory directly.
#[derive(Debug, Args)]
pub(super) struct Target {
    /// The config file; its `server.data_dir` holds the store the command works on.
    #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
    config: PathBuf,
    /// Use this data directory instead of the config's (e.g. `./postern-data` of `postern dev`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Target {
    /// The data directory, and the key file that seals its content (`None`: encryption
    /// off; with `--data-dir`, `<dir>/keyring` when it exists), without opening the store.
    pub(super) fn data_dir_and_key_file(&self) -> Result<(PathBuf, Option<PathBuf>), CliError> {
        match &self.data_dir {
            Some(dir) => {
                let key_file = dir.join("keyring");
                Ok((dir.clone(), key_file.exists().then_some(key_file)))
            }
            None => {
                let config = super::load(&self.config)?;
                let encryption = &config.encryption;
                let key_file = encryption.enabled.then(|| encryption.key_file.clone());
                Ok((config.data_dir, key_file))
            }
        }
    }

    /// The store, and `pick` of the config when a config file was read (not with
    /// `--data-dir`, where the keyring is `<dir>/keyring` when there is one, as in dev).
    pub(super) fn store_and<T>(
        &self,
        pick: impl FnOnce(&crate::config::Config) -> T,
    ) -> Result<(Store, Option<T>), CliError> {
        match &self.data_dir {
            Some(dir) => Ok((super::open_dir_store(dir)?, None)),
            None => {
                let config = super::load(&self.config)?;
                let picked = pick(&config);
                Ok((super::open_store(&config)?, Some(picked)))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum RoleArg {
    /// May do everything: read and change.
    Admin,
    /// May only read.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Add a user. Prints a one-time password, to be changed at first sign-in, unless
    /// --password-stdin gives one.
    Add {
        #[command(flatten)]
        target: Target,
        /// The user's email address; they sign in with it.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// What the user may do.
        #[arg(long, value_enum, default_value = "admin")]
        role: RoleArg,
        /// Read the password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user and end their sessions (never the last admin).
    Delete {
        #[command(flatten)]
        target: Target,
        /// The email address of the user to delete.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
    },
    /// Turn a user's two-factor authentication off (a lost phone) and end their sessions.
    ResetTotp {
        #[command(flatten)]
        target: Target,
        /// The email address of the user whose TOTP is turned off.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
    },
    /// Lift a sign-in throttle: forget the account's failed sign-ins from every address (and,
    /// with --ip, every failure from that address), so the right password works at once.
    Unlock {
        #[command(flatten)]
        target: Target,
        /// The email address whose failed sign-ins are forgotten (need not be a user's).
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// Also forget every failure from this client address (IPv6: its /64).
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::IpAddr>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Make an API key (for `Authorization: Bearer …`); it is printed once.
    Add {
        #[command(flatten)]
        target: Target,
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value = "viewer")]
        role: RoleArg,
    },
    /// List API keys (never the keys themselves).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke an API key.
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The key's id, as `postern key list` shows it.
        #[arg(long)]
        id: i64,
    },
}

/// The accounts service on `target`'s store, with the config's session and TOTP policy
/// (the defaults with `--data-dir`).
fn open(target: &Target) -> Result<Accounts, CliError> {
    let (store, policy) = target.store_and(|config| Policy {
        session_idle: config.web.session_idle,
        session_lifetime: config.web.session_lifetime,
        require_totp: config.web.require_totp,
        password: PasswordParams::PRODUCTION,
        totp_issuer: format!("Postern {}", config.hostname),
    })?;
    Ok(Accounts::new(
        store,
        Clock::system(),
        policy.unwrap_or_default(),
    ))
}

fn date(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]"
    ))
    .unwrap_or_default()
}

pub(super) fn user(command: UserCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        match command {
            UserCommand::Add {
                target,
                email,
                role,
                password_stdin,
            } => {
                // Standard input first: a wrong pipe is reported before the config is read.
                let password = match password_stdin {
                    true => password_from_stdin()?,
                    false => NewPassword::Generate,
                };
                add_user(&open(&target)?, &email, role.into(), password).await
            }
            UserCommand::List { target } => list_users(&open(&target)?).await,
            UserCommand::Delete { target, email } => {
                open(&target)?.delete_user(&email, &Actor::Cli).await?;
                println!("deleted {}", email.trim().to_lowercase());
                Ok(())
            }
            UserCommand::ResetTotp { target, email } => {
                open(&target)?.reset_totp(&email, &Actor::Cli).await?;
                println!(
                    "two-factor authentication is off for {}; their sessions are ended",
                    email.trim().to_lowercase()
                );
                Ok(())
            }
            UserCommand::Unlock { target, email, ip } => {
                let cleared = open(&target)?.unlock(&Actor::Cli, &email, ip).await?;
                println!(
                    "{cleared} failed sign-ins forgotten for {}; the right password works now",
                    email.trim().to_lowercase()
                );
                Ok(())
            }
        }
    })
}

/// `--password-stdin`: the first line of standard input, which must not be empty.
fn password_from_stdin() -> Result<NewPassword, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")
        .map_err(CliError::Usage)?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(CliError::usage(format!(
            "no password on standard input (at least {MIN_PASSWORD_CHARS} characters)"
        )));
    }
    Ok(NewPassword::Given(line.to_string()))
}

async fn add_user(
    accounts: &Accounts,
    email: &str,
    role: Role,
    password: NewPassword,
) -> anyhow::Result<()> {
    let (user, generated) = accounts
        .create_user(email, role, password, &Actor::Cli)
        .await?;
    println!("created {} {}", user.role.as_str(), user.email);
    if let Some(password) = generated {
        println!("one-time password: {password}");
        println!(
            "It is shown only now; {} chooses a new one at first sign-in.",
            user.email
        );
    }
    Ok(())
}

async fn list_users(accounts: &Accounts) -> anyhow::Result<()> {
    let users = accounts.users().await?;
    if users.is_empty() {
        println!("no users; add one with `postern user add --email you@example.com`");
        return Ok(());
    }
    println!(
        "{:<40} {:<7} {:<5} {:<17} last sign-in",
        "email", "role", "totp", "created"
    );
    for user in users {
        println!(
            "{:<40} {:<7} {:<5} {:<17} {}",
            user.email,
            user.role.as_str(),
            if user.totp_enabled { "on" } else { "off" },
            date(user.created_at),
            user.last_sign_in_at
                .map(date)
                .unwrap_or_else(|| "never".into())
        );
    }
    Ok(())
}

pub(super) fn key(command: KeyCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        match command {
            KeyCommand::Add { target, name, role } => {
                let accounts = open(&target)?;
                let (key, secret) = accounts
                    .create_api_key(&name, role.into(), &Actor::Cli)
                    .await?;
                println!(
                    "created {} key {} (id {})",
                    key.role.as_str(),
                    key.name,
                    key.id
                );
                println!("{secret}");
                println!("It is shown only now. Send it as: Authorization: Bearer <key>");
                Ok(())
            }
            KeyCommand::List { target } => list_keys(&open(&target)?).await,
            KeyCommand::Revoke { target, id } => {
                if !open(&target)?.revoke_api_key(id, &Actor::Cli).await? {
                    bail!("no live key with id {id}");
                }
                println!("revoked key {id}");
                Ok(())
            }
        }
    })
}

async fn list_keys(accounts: &Accounts) -> anyhow::Result<()> {
    let keys = accounts.api_keys().await?;
    println!(
        "{:<5} {:<24} {:<7} {:<13} {:<17} state",
        "id", "name", "role", "key", "created"
    );
    for key in keys {
        let state = match (key.revoked_at, key.last_used_at) {
            (Some(at), _) => format!("revoked {}", date(at)),
            (None, Some(at)) => format!("last used {}", date(at)),
            (None, None) => "never used".into(),
        };
        println!(
            "{:<5} {:<24} {:<7} {:<13} {:<17} {state}",
            key.id,
            key.name,
            key.role.as_str(),
            format!("{}…", key.prefix),
            date(key.created_at),
        );
    }
    Ok(())
}
