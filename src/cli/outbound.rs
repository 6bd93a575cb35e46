//! `postern credential …`: the SMTP credentials apps send with (the send API's username
//! and bearer token, SMTP submission's AUTH); the token is printed once.
//! `postern sending-domain …`: the domains apps send from, their DKIM keys and DNS records.
//! `postern suppression …`: the suppression list. All work on the store of a config file
//! or a data directory; `print_sending_domains` is `postern check`'s part.

use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;

use super::accounts::Target;
use super::error::CliError;
use super::runtime;
use crate::clock::Clock;
use crate::config::Config;
use crate::outbound::dkim::Algorithm;
use crate::outbound::domains::SendingDomain;
use crate::outbound::{NewCredentialSpec, Outbound, OutboundMode};

/// `outbound.expiry_hours`' default, for a data directory given without a config.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(72 * 3600);

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
        /// Where events (delivery, bounce, open, …) are POSTed in batches. Must be
        /// https:// (or on loopback) when the config sets [delivery] require_https.
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
        /// The credential's SMTP username.
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SendingDomainCommand {
    /// Add a domain to send from: makes its DKIM key and prints the DNS records to publish.
    Add {
        #[command(flatten)]
        target: Target,
        /// The domain apps send from, e.g. example.com.
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
        /// The sending domain to remove.
        domain: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SuppressionCommand {
    /// List suppressed addresses (hard bounces, complaints and manual entries), newest first.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Suppress an address: later mail to it is not attempted (`suppressed` event).
    Add {
        #[command(flatten)]
        target: Target,
        /// The recipient address to stop sending to.
        address: String,
        /// Why it is suppressed (shown in the list).
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Take an address off the list: mail to it is attempted again.
    Remove {
        #[command(flatten)]
        target: Target,
        /// The address to send to again.
        address: String,
    },
}

/// The outbound service on `target`'s store (with the config file's `require_https`), and
/// `server.hostname` when a config file was read.
fn open(target: &Target) -> Result<(Outbound, Option<String>), CliError> {
    let (store, picked) = target.store_and(|config| {
        let expiry = config.outbound.expiry;
        (
            expiry,
            config.hostname.clone(),
            config.delivery.require_https,
        )
    })?;
    let (expiry, hostname, require_https) = match picked {
        Some((expiry, hostname, require_https)) => (expiry, Some(hostname), require_https),
        None => (DEFAULT_EXPIRY, None, false),
    };
    let outbound = Outbound::new(store, Clock::system(), OutboundMode::Deliver, expiry)
        .with_require_https(require_https);
    Ok((outbound, hostname))
}

pub(super) fn credential(command: CredentialCommand) -> anyhow::Result<()> {
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
                let spec = NewCredentialSpec {
                    username,
                    test,
                    allowed_senders: senders,
                    events_url,
                    track_opens: Some(!no_track_opens),
                    track_clicks: Some(!no_track_clicks),
                };
                add_credential(&open(&target)?.0, spec).await
            }
            CredentialCommand::List { target } => list_credentials(&open(&target)?.0).await,
            CredentialCommand::Revoke { target, username } => {
                if !open(&target)?.0.revoke_credential(&username).await? {
                    bail!("no live credential called {username}");
                }
                println!("revoked credential {username}");
                Ok(())
            }
        }
    })
}

async fn add_credential(outbound: &Outbound, spec: NewCredentialSpec) -> anyhow::Result<()> {
    let (credential, token) = outbound.create_credential(spec).await?;
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
    Ok(())
}

async fn list_credentials(outbound: &Outbound) -> anyhow::Result<()> {
    let credentials = outbound.credentials().await?;
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
    Ok(())
}

pub(super) fn sending_domain(command: SendingDomainCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        let (outbound, hostname) = open(command.target())?;
        // The return-path records name the MX host; without a config it is a placeholder.
        let hostname = hostname.unwrap_or_else(|| "<server.hostname>".into());
        match command {
            SendingDomainCommand::Add {
                domain,
                algorithm,
                return_path,
                ..
            } => {
                let algorithm = Algorithm::from_name(&algorithm).unwrap_or(Algorithm::Rsa2048);
                let domain = outbound
                    .add_sending_domain(&domain, algorithm, return_path.as_deref(), &hostname)
                    .await?;
                println!("added sending domain; publish these DNS records:");
                print_domain(&domain);
            }
            SendingDomainCommand::List { .. } => {
                let domains = outbound.sending_domains(&hostname).await?;
                if domains.is_empty() {
                    println!(
                        "no sending domains; add one with `postern sending-domain add example.com`"
                    );
                }
                domains.iter().for_each(print_domain);
            }
            SendingDomainCommand::Remove { domain, .. } => {
                if !outbound.remove_sending_domain(&domain).await? {
                    bail!("{domain} is not a sending domain");
                }
                println!("removed sending domain {domain}");
            }
        }
        Ok(())
    })
}

impl SendingDomainCommand {
    fn target(&self) -> &Target {
        match self {
            SendingDomainCommand::Add { target, .. }
            | SendingDomainCommand::List { target }
            | SendingDomainCommand::Remove { target, .. } => target,
        }
    }
}

fn print_domain(domain: &SendingDomain) {
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
pub(super) fn print_sending_domains(config: &Config) -> anyhow::Result<()> {
    if !config.data_dir.join("postern.db").exists() {
        println!(
            "Sending   none yet (no database in {})",
            config.data_dir.display()
        );
        return Ok(());
    }
    let store = super::open_store(config)?;
    let outbound = Outbound::new(
        store,
        Clock::system(),
        OutboundMode::Deliver,
        config.outbound.expiry,
    );
    let domains = runtime().block_on(outbound.sending_domains(&config.hostname))?;
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

pub(super) fn suppression(command: SuppressionCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        let (outbound, _) = open(command.target())?;
        match command {
            SuppressionCommand::List { .. } => list_suppressions(&outbound).await?,
            SuppressionCommand::Add {
                address, reason, ..
            } => match outbound.suppress(&address, Some(&reason)).await? {
                (address, true) => println!("suppressed {address}"),
                (address, false) => println!("{address} was suppressed already"),
            },
            SuppressionCommand::Remove { address, .. } => {
                if !outbound.unsuppress(&address).await? {
                    bail!("{address} is not on the suppression list");
                }
                println!("removed {address} from the suppression list");
            }
        }
        Ok(())
    })
}

impl SuppressionCommand {
    fn target(&self) -> &Target {
        match self {
            SuppressionCommand::List { target }
            | SuppressionCommand::Add { target, .. }
            | SuppressionCommand::Remove { target, .. } => target,
        }
    }
}

async fn list_suppressions(outbound: &Outbound) -> anyhow::Result<()> {
    let rows = outbound.suppressions().await?;
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
    Ok(())
}
