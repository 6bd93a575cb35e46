//! `postern store …`: the attachment and message stores (`objects`). `add` writes a test
//! object first and keeps nothing when that fails; the secret access key is read from
//! standard input (never a flag: other users see a process's arguments) and never shown
//! again. A running server uses a change at its next message. Each change is audited.

use std::io::BufRead;

use anyhow::bail;
use clap::Subcommand;

use super::accounts::Target;
use super::runtime;
use crate::accounts::{Accounts, Actor, AuditAction};
use crate::clock::Clock;
use crate::objects::{Objects, StoreSpec};

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Add a store: an S3-compatible bucket (--kind s3; the secret access key on standard
    /// input) or the data directory (--kind local). A test object is written first.
    Add {
        #[command(flatten)]
        target: Target,
        /// What addresses call it (`attachment_store = "<name>"`).
        #[arg(long)]
        name: String,
        /// `s3` or `local`.
        #[arg(long, value_name = "KIND")]
        kind: String,
        /// S3: the service's URL (https://; http:// only on loopback). Unset: AWS.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// S3: the bucket (3 to 63 lower-case letters, digits, `-` or `.`).
        #[arg(long)]
        bucket: Option<String>,
        /// S3: where objects go in the bucket, e.g. `mail/in`.
        #[arg(long)]
        prefix: Option<String>,
        /// S3: default us-east-1.
        #[arg(long)]
        region: Option<String>,
        /// S3: a canned ACL for each object (`x-amz-acl`), e.g. `public-read`.
        #[arg(long)]
        acl: Option<String>,
        /// S3: the access key id; the secret access key is read from standard input.
        #[arg(long, value_name = "ID")]
        access_key_id: Option<String>,
        /// Local: how many days a signed link is valid (default 7).
        #[arg(long, value_name = "DAYS")]
        expiry_days: Option<u64>,
    },
    /// List the stores (never the secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Remove a store (refused while an address names it). What is in it stays there.
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        name: String,
    },
    /// Write the test object to a store again.
    Test {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        name: String,
    },
}

/// The stores of the target's data directory, the accounts (for the audit), and the config
/// file's addresses that name a store.
fn open(target: &Target) -> anyhow::Result<(Objects, Accounts, Vec<crate::config::AddressConfig>)> {
    let (data_dir, _) = target.data_dir_and_key_file()?;
    let (store, picked) = target.store_and(|config| {
        (
            config.tracking_url(config.web.listen),
            config.addresses.clone(),
        )
    })?;
    let (public_url, addresses) =
        picked.unwrap_or_else(|| ("http://127.0.0.1".to_string(), Vec::new()));
    let accounts = Accounts::new(store.clone(), Clock::system(), Default::default());
    let objects = Objects::new(store, &data_dir, &public_url, Clock::system());
    Ok((objects, accounts, addresses))
}

/// The first line of standard input.
fn secret_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        bail!(
            "give the secret access key on standard input, e.g. `postern store add … < secret-file`"
        );
    }
    Ok(secret)
}

pub(super) fn store(command: StoreCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        match command {
            StoreCommand::Add {
                target,
                name,
                kind,
                endpoint,
                bucket,
                prefix,
                region,
                acl,
                access_key_id,
                expiry_days,
            } => {
                let secret_access_key = match kind.as_str() {
                    "s3" => Some(secret_from_stdin()?),
                    _ => None,
                };
                let spec = StoreSpec {
                    name,
                    kind,
                    endpoint,
                    bucket,
                    prefix,
                    region,
                    acl,
                    access_key_id,
                    secret_access_key,
                    expiry_days,
                    csrf_token: None,
                };
                let (objects, accounts, _) = open(&target)?;
                let added = objects.add(&spec).await?;
                let subject = format!("store {}", added.name);
                let detail = format!("{} store", added.kind);
                (accounts)
                    .audit(
                        &Actor::Cli,
                        AuditAction::StoreAdded,
                        Some(&subject),
                        None,
                        Some(&detail),
                    )
                    .await?;
                println!("store {} added (the test object was written)", added.name);
                Ok(())
            }
            StoreCommand::List { target } => {
                let (objects, _, _) = open(&target)?;
                let stores = objects.list().await?;
                if stores.is_empty() {
                    println!("no stores (postern store add --name … --kind s3|local)");
                }
                for store in stores {
                    let place = match store.kind.as_str() {
                        "local" => format!(
                            "the data directory, links valid {} days",
                            store.expiry_days.unwrap_or_default()
                        ),
                        _ => format!(
                            "{} bucket {}{} ({}), key {}{}",
                            store.endpoint.as_deref().unwrap_or("AWS S3"),
                            store.bucket.as_deref().unwrap_or_default(),
                            store
                                .prefix
                                .map(|p| format!(" prefix {p}"))
                                .unwrap_or_default(),
                            store.region.as_deref().unwrap_or_default(),
                            store.access_key_id.as_deref().unwrap_or_default(),
                            store.acl.map(|a| format!(", ACL {a}")).unwrap_or_default(),
                        ),
                    };
                    println!("{}: {} — {place}", store.name, store.kind);
                }
                Ok(())
            }
            StoreCommand::Remove { target, name } => {
                let (objects, accounts, addresses) = open(&target)?;
                let configured = crate::config::addresses_using_store(&addresses, &name);
                if !objects.remove(&name, configured).await? {
                    bail!("no store is named {name:?} (postern store list)");
                }
                let subject = format!("store {name}");
                (accounts)
                    .audit(
                        &Actor::Cli,
                        AuditAction::StoreRemoved,
                        Some(&subject),
                        None,
                        Some("removed"),
                    )
                    .await?;
                println!("store {name} removed; what is in it stays there");
                Ok(())
            }
            StoreCommand::Test { target, name } => {
                let (objects, _, _) = open(&target)?;
                let place = objects.test(&name).await?;
                println!("store {name}: the test object was written ({place})");
                Ok(())
            }
        }
    })
}
