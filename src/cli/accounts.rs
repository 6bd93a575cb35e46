//! `postern user …` and `postern key …`: accounts and API keys from the command line, on the
//! store of a config file (or a dev data directory). The first admin is made this way.
//! Works while the server runs (SQLite allows it); audit rows name the actor `cli`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::DEFAULT_CONFIG;
use crate::accounts::{
    AccountError, Accounts, Actor, MIN_PASSWORD_CHARS, NewPassword, PasswordParams, Policy, Role,
};
use crate::clock::Clock;
use crate::store::Store;

/// Which installation: its config file, or a data directory directly.
#[derive(Debug, Args)]
pub(super) struct Target {
    /// The config file; its `server.data_dir` holds the accounts.
    #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
    config: PathBuf,
    /// Use this data directory instead of the config's (e.g. `./postern-data` of `postern dev`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Target {
    /// The data directory, and `pick` of the config when a config file was read (not with
    /// `--data-dir`). Prints the config's error and gives exit code 2 when it is invalid.
    pub(super) fn data_dir_and<T>(
        &self,
        pick: impl FnOnce(&crate::config::Config) -> T,
    ) -> Result<(PathBuf, Option<T>), ExitCode> {
        match &self.data_dir {
            Some(dir) => Ok((dir.clone(), None)),
            None => {
                let config = super::load(&self.config)?;
                let picked = pick(&config);
                Ok((config.data_dir, Some(picked)))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum RoleArg {
    /// Everything.
    Admin,
    /// Read-only.
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
        #[arg(long, value_name = "ADDRESS")]
        email: String,
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
        #[arg(long, value_name = "ADDRESS")]
        email: String,
    },
    /// Turn a user's two-factor authentication off (a lost phone) and end their sessions.
    ResetTotp {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_name = "ADDRESS")]
        email: String,
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
        #[arg(long)]
        id: i64,
    },
}

/// Opens the store and the accounts service on it, or says why not (exit 2).
fn open(target: &Target) -> Result<Accounts, ExitCode> {
    let (data_dir, policy) = match &target.data_dir {
        Some(dir) => (dir.clone(), Policy::default()),
        None => {
            let config = super::load(&target.config)?;
            let policy = Policy {
                session_idle: config.web.session_idle,
                session_lifetime: config.web.session_lifetime,
                require_totp: config.web.require_totp,
                password: PasswordParams::PRODUCTION,
                totp_issuer: format!("Postern {}", config.hostname),
            };
            (config.data_dir, policy)
        }
    };
    let store = Store::open(&data_dir).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })?;
    Ok(Accounts::new(store, Clock::system(), policy))
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

fn failed(error: AccountError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn date(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]"
    ))
    .unwrap_or_default()
}

pub(super) fn user(command: UserCommand) -> ExitCode {
    runtime().block_on(async move {
        match command {
            UserCommand::Add {
                target,
                email,
                role,
                password_stdin,
            } => {
                let password = if password_stdin {
                    let mut line = String::new();
                    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
                        eprintln!("error: cannot read the password from standard input: {error}");
                        return ExitCode::from(2);
                    }
                    let line = line.trim_end_matches(['\r', '\n']).to_string();
                    if line.is_empty() {
                        eprintln!(
                            "error: no password on standard input (at least {MIN_PASSWORD_CHARS} characters)"
                        );
                        return ExitCode::from(2);
                    }
                    NewPassword::Given(line)
                } else {
                    NewPassword::Generate
                };
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts
                    .create_user(&email, role.into(), password, &Actor::Cli)
                    .await
                {
                    Ok((user, generated)) => {
                        println!("created {} {}", user.role.as_str(), user.email);
                        if let Some(password) = generated {
                            println!("one-time password: {password}");
                            println!(
                                "It is shown only now; {} chooses a new one at first sign-in.",
                                user.email
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error),
                }
            }
            UserCommand::List { target } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts.users().await {
                    Ok(users) if users.is_empty() => {
                        println!("no users; add one with `postern user add --email you@example.com`");
                        ExitCode::SUCCESS
                    }
                    Ok(users) => {
                        println!("{:<40} {:<7} {:<5} {:<17} last sign-in", "email", "role", "totp", "created");
                        for user in users {
                            println!(
                                "{:<40} {:<7} {:<5} {:<17} {}",
                                user.email,
                                user.role.as_str(),
                                if user.totp_enabled { "on" } else { "off" },
                                date(user.created_at),
                                user.last_sign_in_at.map(date).unwrap_or_else(|| "never".into())
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error),
                }
            }
            UserCommand::Delete { target, email } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts.delete_user(&email, &Actor::Cli).await {
                    Ok(()) => {
                        println!("deleted {}", email.trim().to_lowercase());
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error),
                }
            }
            UserCommand::ResetTotp { target, email } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts.reset_totp(&email, &Actor::Cli).await {
                    Ok(()) => {
                        println!(
                            "two-factor authentication is off for {}; their sessions are ended",
                            email.trim().to_lowercase()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error),
                }
            }
        }
    })
}

pub(super) fn key(command: KeyCommand) -> ExitCode {
    runtime().block_on(async move {
        match command {
            KeyCommand::Add { target, name, role } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts
                    .create_api_key(&name, role.into(), &Actor::Cli)
                    .await
                {
                    Ok((key, secret)) => {
                        println!(
                            "created {} key {} (id {})",
                            key.role.as_str(),
                            key.name,
                            key.id
                        );
                        println!("{secret}");
                        println!("It is shown only now. Send it as: Authorization: Bearer <key>");
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error),
                }
            }
            KeyCommand::List { target } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts.api_keys().await {
                    Ok(keys) => {
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
                        ExitCode::SUCCESS
                    }
                    Err(error) => failed(error.into()),
                }
            }
            KeyCommand::Revoke { target, id } => {
                let accounts = match open(&target) {
                    Ok(accounts) => accounts,
                    Err(code) => return code,
                };
                match accounts.revoke_api_key(id, &Actor::Cli).await {
                    Ok(true) => {
                        println!("revoked key {id}");
                        ExitCode::SUCCESS
                    }
                    Ok(false) => {
                        eprintln!("error: no live key with id {id}");
                        ExitCode::FAILURE
                    }
                    Err(error) => failed(error.into()),
                }
            }
        }
    })
}
