//! `postern sending-domain …`: the domains apps send from, their DKIM keys and DNS records.
//! `postern credential …`: the SMTP credentials apps send with (the send API's username
//! and bearer token, SMTP submission's AUTH), on the store of a config file or a data
//! directory. The token is printed once. `postern suppression …`: the suppression list.

use std::process::ExitCode;

use clap::Subcommand;

use super::accounts::{Target, runtime};
use crate::clock::Clock;
use crate::outbound::dkim::Algorithm;
use crate::outbound::{NewCredentialSpec, Outbound, OutboundMode};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub(super) enum CredentialCommand {
    /// Make a credential; its token (the SMTP password and the API's bearer token) is
    /// printed once.
    Add {
        #[command(flatten)]
        target: Target,
        /// The SMTP username (a-z, 0-9, '.', '_', '-'); it goes into the API path.
        username: String,
        /// A test credential: messages are validated and recorded, never delivered.
        #[arg(long)]
        test: bool,
        /// Only these senders: an address (alerts@example.com) or a domain (@example.com).
        /// Repeat for more. Default: any sender of a sending domain.
        #[arg(long = "sender", value_name = "PATTERN")]
        senders: Vec<String>,
        /// Where events (delivery, bounce, open, …) are POSTed in batches.
        #[arg(long, value_name = "URL")]
        events_url: Option<String>,
        /// Do not add the open-tracking pixel to HTML mail.
        #[arg(long)]
        no_track_opens: bool,
        /// Do not rewrite links in HTML mail for click tracking.
        #[arg(long)]
        no_track_clicks: bool,
    },
    /// List credentials (never the tokens).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a credential: its token stops working at once.
    Revoke {
        #[command(flatten)]
        target: Target,
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SendingDomainCommand {
    /// Add a domain to send from: makes its DKIM key and prints the DNS records to publish.
    Add {
        #[command(flatten)]
        target: Target,
        domain: String,
        /// DKIM key type: rsa (2048 bits, the default, understood everywhere) or ed25519.
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
        /// The envelope sender's domain, where bounces return (default: mta.<domain>).
        #[arg(long, value_name = "DOMAIN")]
        return_path: Option<String>,
    },
    /// List sending domains with their DNS records.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Remove a sending domain and its DKIM key.
    Remove {
        #[command(flatten)]
        target: Target,
        domain: String,
    },
}

/// The store of `target` as the outbound service, and `server.hostname` when a config file
/// was read.
fn open_with_hostname(target: &Target) -> Result<(Outbound, Option<String>), ExitCode> {
    let (data_dir, picked) =
        target.data_dir_and(|config| (config.outbound.expiry, config.hostname.clone()))?;
    let store = Store::open(&data_dir).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })?;
    let (expiry, hostname) = match picked {
        Some((expiry, hostname)) => (expiry, Some(hostname)),
        None => (std::time::Duration::from_secs(72 * 3600), None),
    };
    Ok((
        Outbound::new(store, Clock::system(), OutboundMode::Deliver, expiry),
        hostname,
    ))
}

fn print_domain(domain: &crate::outbound::domains::SendingDomain) {
    println!(
        "{}  (DKIM {} selector {}, return path {})",
        domain.domain, domain.dkim_algorithm, domain.dkim_selector, domain.return_path_domain
    );
    for record in &domain.dns_records {
        println!("  {:<3} {}", record.kind, record.name);
        println!("      {}", record.value);
        println!("      ({})", record.purpose);
    }
}

/// For `postern check`: every sending domain of the config's data directory with its DKIM
/// TXT record, read from the store. A data directory without a database (never started)
/// has none, and is left as it is.
pub(super) fn print_sending_domains(config: &crate::config::Config) -> Result<(), ExitCode> {
    if !config.data_dir.join("postern.db").exists() {
        println!(
            "Sending   none yet (no database in {})",
            config.data_dir.display()
        );
        return Ok(());
    }
    let store = Store::open(&config.data_dir).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })?;
    let outbound = Outbound::new(
        store,
        Clock::system(),
        OutboundMode::Deliver,
        config.outbound.expiry,
    );
    let domains = runtime()
        .block_on(outbound.sending_domains(&config.hostname))
        .map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        })?;
    if domains.is_empty() {
        println!("Sending   no sending domains (add one with `postern sending-domain add`)");
    }
    for domain in &domains {
        println!(
            "Sending   {} (return path {})",
            domain.domain, domain.return_path_domain
        );
        for record in domain
            .dns_records
            .iter()
            .filter(|r| r.name.contains("._domainkey."))
        {
            println!("  DKIM    {} TXT \"{}\"", record.name, record.value);
        }
    }
    Ok(())
}

pub(super) fn sending_domain(command: SendingDomainCommand) -> ExitCode {
    runtime().block_on(async move {
        let target = match &command {
            SendingDomainCommand::Add { target, .. }
            | SendingDomainCommand::List { target }
            | SendingDomainCommand::Remove { target, .. } => target,
        };
        let (outbound, hostname) = match open_with_hostname(target) {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let hostname = hostname.unwrap_or_else(|| "<server.hostname>".into());
        match command {
            SendingDomainCommand::Add {
                domain,
                algorithm,
                return_path,
                ..
            } => {
                let algorithm = Algorithm::from_name(&algorithm).unwrap_or(Algorithm::Rsa2048);
                match outbound
                    .add_sending_domain(&domain, algorithm, return_path.as_deref(), &hostname)
                    .await
                {
                    Ok(domain) => {
                        println!("added sending domain; publish these DNS records:");
                        print_domain(&domain);
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                }
            }
            SendingDomainCommand::List { .. } => match outbound.sending_domains(&hostname).await {
                Ok(domains) if domains.is_empty() => {
                    println!(
                        "no sending domains; add one with `postern sending-domain add example.com`"
                    );
                    ExitCode::SUCCESS
                }
                Ok(domains) => {
                    domains.iter().for_each(print_domain);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            },
            SendingDomainCommand::Remove { domain, .. } => {
                match outbound.remove_sending_domain(&domain).await {
                    Ok(true) => {
                        println!("removed sending domain {domain}");
                        ExitCode::SUCCESS
                    }
                    Ok(false) => {
                        eprintln!("error: {domain} is not a sending domain");
                        ExitCode::FAILURE
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}

#[derive(Debug, Subcommand)]
pub(super) enum SuppressionCommand {
    /// List suppressed addresses (hard bounces and manual entries), newest first.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Suppress an address: later mail to it is not attempted (`suppressed` event).
    Add {
        #[command(flatten)]
        target: Target,
        address: String,
        /// Why (shown in the list).
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Take an address off the list: mail to it is attempted again.
    Remove {
        #[command(flatten)]
        target: Target,
        address: String,
    },
}

pub(super) fn suppression(command: SuppressionCommand) -> ExitCode {
    runtime().block_on(async move {
        let target = match &command {
            SuppressionCommand::List { target }
            | SuppressionCommand::Add { target, .. }
            | SuppressionCommand::Remove { target, .. } => target,
        };
        let outbound = match open(target) {
            Ok(outbound) => outbound,
            Err(code) => return code,
        };
        let result = match &command {
            SuppressionCommand::List { .. } => outbound
                .suppressions()
                .await
                .map(|rows| {
                    println!("{:<40} {:<20} {:<10} message", "address", "reason", "since");
                    for row in rows {
                        let since = Clock::system().unix() - row.created_at;
                        println!(
                            "{:<40} {:<20} {:<10} {}",
                            row.address,
                            row.reason,
                            format!("{}d ago", since.max(0) / 86_400),
                            row.message_id.as_deref().unwrap_or("-")
                        );
                    }
                })
                .map_err(|e| e.to_string()),
            SuppressionCommand::Add {
                address, reason, ..
            } => match outbound.suppress(address, Some(reason)).await {
                Ok((address, true)) => {
                    println!("suppressed {address}");
                    Ok(())
                }
                Ok((address, false)) => {
                    println!("{address} was suppressed already");
                    Ok(())
                }
                Err(error) => Err(error.to_string()),
            },
            SuppressionCommand::Remove { address, .. } => {
                match outbound.unsuppress(address).await {
                    Ok(true) => {
                        println!("removed {address} from the suppression list");
                        Ok(())
                    }
                    Ok(false) => Err(format!("{address} is not on the suppression list")),
                    Err(error) => Err(error.to_string()),
                }
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn open(target: &Target) -> Result<Outbound, ExitCode> {
    let (data_dir, expiry) = target.data_dir_and(|config| config.outbound.expiry)?;
    let store = Store::open(&data_dir).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })?;
    Ok(Outbound::new(
        store,
        Clock::system(),
        OutboundMode::Deliver,
        expiry.unwrap_or(std::time::Duration::from_secs(72 * 3600)),
    ))
}

pub(super) fn credential(command: CredentialCommand) -> ExitCode {
    runtime().block_on(async move {
        match command {
            CredentialCommand::Add {
                target,
                username,
                test,
                senders,
                events_url,
                no_track_opens,
                no_track_clicks,
            } => {
                let outbound = match open(&target) {
                    Ok(outbound) => outbound,
                    Err(code) => return code,
                };
                let spec = NewCredentialSpec {
                    username,
                    test,
                    allowed_senders: senders,
                    events_url,
                    track_opens: Some(!no_track_opens),
                    track_clicks: Some(!no_track_clicks),
                };
                match outbound.create_credential(spec).await {
                    Ok((credential, token)) => {
                        println!(
                            "created {} credential {}",
                            credential.mode.as_str(),
                            credential.username
                        );
                        println!("{token}");
                        println!("It is shown only now. Use it as the SMTP password, or as");
                        println!(
                            "  Authorization: Bearer <token>  on POST /api/v0.1/{}/messages",
                            credential.username
                        );
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                }
            }
            CredentialCommand::List { target } => {
                let outbound = match open(&target) {
                    Ok(outbound) => outbound,
                    Err(code) => return code,
                };
                match outbound.credentials().await {
                    Ok(credentials) => {
                        println!(
                            "{:<24} {:<5} {:<10} {:<30} state",
                            "username", "mode", "token", "senders"
                        );
                        for c in credentials {
                            let senders = match c.allowed_senders.is_empty() {
                                true => "any".to_string(),
                                false => c.allowed_senders.join(","),
                            };
                            let state = match (c.revoked_at, c.last_used_at) {
                                (Some(_), _) => "revoked",
                                (None, Some(_)) => "in use",
                                (None, None) => "never used",
                            };
                            println!(
                                "{:<24} {:<5} {:<10} {:<30} {state}",
                                c.username,
                                c.mode.as_str(),
                                format!("{}…", c.prefix),
                                senders
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                }
            }
            CredentialCommand::Revoke { target, username } => {
                let outbound = match open(&target) {
                    Ok(outbound) => outbound,
                    Err(code) => return code,
                };
                match outbound.revoke_credential(&username).await {
                    Ok(true) => {
                        println!("revoked credential {username}");
                        ExitCode::SUCCESS
                    }
                    Ok(false) => {
                        eprintln!("error: no live credential called {username}");
                        ExitCode::FAILURE
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}
