//! `postern signing …`: the webhook signing secrets of addresses and credentials
//! (`webhook::signing`). A new secret is printed once; a running server picks up a change at
//! its next POST.

use anyhow::bail;
use clap::{Args, Subcommand};

use super::accounts::Target;
use super::runtime;
use crate::clock::{Clock, utc_minutes};
use crate::config::AddressPattern;
use crate::store::Store;
use crate::webhook::signing::ROTATION_OVERLAP;
use crate::webhook::{Owner, Signing};

#[derive(Debug, Subcommand)]
pub(super) enum SigningCommand {
    /// List the addresses and credentials whose POSTs are signed (never the secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Make a new secret and print it once. The one it replaces keeps signing beside it
    /// for 24 hours, so the app can switch without refusing a request.
    Rotate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        owner: OwnerArgs,
    },
    /// Stop signing with the replaced secret now, before its 24 hours are over.
    Retire {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        owner: OwnerArgs,
    },
    /// Stop signing these POSTs (apps that verify signatures will refuse them).
    Remove {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        owner: OwnerArgs,
    },
}

/// Whose POSTs: exactly one of an address pattern or a credential.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct OwnerArgs {
    /// An address pattern as configured or managed, e.g. `support@example.com` or
    /// `*@example.com` (a `[[domain]]`'s catch-all): its messages and callbacks.
    #[arg(long, value_name = "PATTERN")]
    address: Option<String>,
    /// An SMTP credential's username: its events webhook.
    #[arg(long, value_name = "USERNAME")]
    credential: Option<String>,
}

/// The owner named, if it can own a secret here.
async fn owner(store: &Store, args: OwnerArgs) -> anyhow::Result<Owner> {
    match (args.address, args.credential) {
        (Some(address), None) => {
            let pattern = AddressPattern::parse(address.trim())
                .map_err(|why| anyhow::anyhow!("--address {address}: {why}"))?;
            Ok(Owner::Address(pattern.to_string()))
        }
        (None, Some(username)) => {
            let live = store
                .credentials()
                .await?
                .into_iter()
                .any(|c| c.username == username && c.revoked_at.is_none());
            if !live {
                bail!("no live credential called {username} (postern credential list)");
            }
            Ok(Owner::Credential(username))
        }
        _ => unreachable!("clap requires exactly one"),
    }
}

pub(super) fn signing(command: SigningCommand) -> anyhow::Result<()> {
    runtime().block_on(async move {
        match command {
            SigningCommand::List { target } => {
                let signing = Signing::new(target.store_and(|_| ())?.0, Clock::system());
                let owners = signing.all().await?;
                if owners.is_empty() {
                    println!("no POSTs are signed (postern signing rotate --address … makes a secret)");
                }
                for (owner, status) in owners {
                    let overlap = match status.previous_until {
                        Some(until) => {
                            format!("; the replaced secret signs until {}", utc_minutes(until))
                        }
                        None => String::new(),
                    };
                    println!(
                        "{owner}: signed since {}{overlap}",
                        utc_minutes(status.created_at)
                    );
                }
                Ok(())
            }
            SigningCommand::Rotate { target, owner: args } => {
                let store = target.store_and(|_| ())?.0;
                let owner = owner(&store, args).await?;
                let rotated = Signing::new(store, Clock::system()).rotate(&owner).await?;
                println!("{}", rotated.secret);
                println!("The POSTs for the {owner} are signed with this secret (Standard Webhooks).");
                println!("It is shown only now.");
                if let Some(until) = rotated.previous_until {
                    println!(
                        "The secret it replaces signs beside it until {} ({} h); `postern signing retire` ends that sooner.",
                        utc_minutes(until),
                        ROTATION_OVERLAP.as_secs() / 3600
                    );
                }
                Ok(())
            }
            SigningCommand::Retire { target, owner: args } => {
                let store = target.store_and(|_| ())?.0;
                let owner = owner(&store, args).await?;
                if !Signing::new(store, Clock::system()).retire_previous(&owner).await? {
                    bail!("no replaced secret signs for the {owner}");
                }
                println!("the replaced secret of the {owner} no longer signs");
                Ok(())
            }
            SigningCommand::Remove { target, owner: args } => {
                let store = target.store_and(|_| ())?.0;
                let owner = owner(&store, args).await?;
                if !Signing::new(store, Clock::system()).remove(&owner).await? {
                    bail!("the POSTs for the {owner} are not signed");
                }
                println!("the POSTs for the {owner} are no longer signed");
                Ok(())
            }
        }
    })
}
