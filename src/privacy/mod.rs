//! Where data goes (issue 11): every destination this instance sends data to, generated from
//! the live configuration and the entries managed at runtime (addresses, domains, credentials),
//! with what each is sent and whether the channel is encrypted (`destinations`); and what is
//! stored, for how long and whether encrypted (`stored`). `/privacy`, `GET /api/privacy` and
//! `postern check` show the same [`PrivacyReport`]; secrets never appear in it (target URLs
//! are masked by `TargetUrl`, the relay's password by `RelayUrl`).

mod destinations;
mod stored;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{AddressSpec, Config, DomainSpec};
use crate::store::{CredentialRow, Store, StoreError};

pub use destinations::destinations;
pub use stored::stored;

/// Everything this instance sends away and keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrivacyReport {
    pub destinations: Vec<Destination>,
    pub stored: Vec<Stored>,
    /// What holds for every destination (redirects, what never leaves).
    pub notes: Vec<String>,
}

/// One place data is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub kind: Kind,
    /// The setting or entry behind it: `config [[address]] a@example.com`, `credential app`.
    pub source: String,
    /// The destination as shown, secrets masked.
    pub to: String,
    /// The host connected to, when it is one fixed host (not "each recipient's MX").
    pub host: Option<String>,
    pub port: Option<u16>,
    pub sends: Sends,
    /// What exactly goes there, in words.
    pub detail: String,
    pub encryption: Encryption,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Target,
    AuthCallback,
    ErrorCallback,
    DevForward,
    EventsWebhook,
    Relay,
    Mx,
    Dns,
    Oidc,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Target => "target",
            Kind::AuthCallback => "authorization callback",
            Kind::ErrorCallback => "error callback",
            Kind::DevForward => "dev-mode forward",
            Kind::EventsWebhook => "events webhook",
            Kind::Relay => "relay (smarthost)",
            Kind::Mx => "MX delivery",
            Kind::Dns => "DNS server",
            Kind::Oidc => "sign-in provider",
        }
    }
}

/// The kind of data a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sends {
    /// Whole messages: headers, bodies, attachments.
    FullMessage,
    /// Envelope data (sender, recipient, client IP), no content.
    Metadata,
    /// Delivery events of sent mail.
    Events,
    /// The names looked up.
    DnsQueries,
    /// The sign-in exchange (code, client secret; the answer names the user).
    SignIn,
}

impl Sends {
    pub fn describe(self) -> &'static str {
        match self {
            Sends::FullMessage => "full message",
            Sends::Metadata => "metadata",
            Sends::Events => "events",
            Sends::DnsQueries => "DNS queries",
            Sends::SignIn => "sign-in",
        }
    }
}

/// Whether the channel is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// https, or TLS that is required.
    Yes,
    /// http, or plain DNS.
    No,
    /// SMTP STARTTLS when the server offers it, plain text otherwise.
    WhenOffered,
}

impl Encryption {
    pub fn describe(self) -> &'static str {
        match self {
            Encryption::Yes => "yes",
            Encryption::No => "no",
            Encryption::WhenOffered => "when offered (STARTTLS)",
        }
    }
}

/// One kind of data kept in the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub what: String,
    /// For how long, in words.
    pub kept: String,
    pub encrypted: bool,
}

/// What is managed at runtime, as the store holds it (the config is the rest).
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    pub addresses: Vec<AddressSpec>,
    pub domains: Vec<DomainSpec>,
    pub credentials: Vec<CredentialRow>,
}

impl Runtime {
    pub async fn load(store: &Store) -> Result<Runtime, StoreError> {
        Ok(Runtime {
            addresses: specs(store.managed_entries().await?),
            domains: specs(store.managed_entries().await?),
            credentials: store.credentials().await?,
        })
    }
}

fn specs<S>(entries: Vec<(i64, S)>) -> Vec<S> {
    entries.into_iter().map(|(_, spec)| spec).collect()
}

/// The report of `config` and `runtime`; `system_dns` are the servers of `/etc/resolv.conf`
/// (or why they could not be read).
pub fn report(
    config: &Config,
    runtime: &Runtime,
    system_dns: Result<Vec<SocketAddr>, String>,
) -> PrivacyReport {
    let mut notes = vec![
        "A target or callback may answer with a redirect (at most 3): the same POST then goes \
         to the URL it names."
            .to_string(),
        "Open and click tracking are requests to this instance: nothing leaves for them."
            .to_string(),
        "No ACME: TLS certificates come from files or are self-signed, nothing is fetched."
            .to_string(),
    ];
    let system_dns = system_dns.unwrap_or_else(|reason| {
        notes.push(format!(
            "The system resolver's servers are unknown: {reason}"
        ));
        Vec::new()
    });
    PrivacyReport {
        destinations: destinations(config, runtime, &system_dns),
        stored: stored(config),
        notes,
    }
}

/// The report as of now: the config, the store's entries, `/etc/resolv.conf`.
pub async fn build(config: &Config, store: &Store) -> Result<PrivacyReport, StoreError> {
    let runtime = Runtime::load(store).await?;
    let system_dns = crate::dns::system_servers().map_err(|e| e.to_string());
    Ok(report(config, &runtime, system_dns))
}

/// The report for the web layer: the config it started with and its store.
#[derive(Clone)]
pub struct Privacy {
    config: Arc<Config>,
    store: Store,
}

impl Privacy {
    pub fn new(config: Config, store: Store) -> Privacy {
        Privacy {
            config: Arc::new(config),
            store,
        }
    }

    pub async fn report(&self) -> Result<PrivacyReport, StoreError> {
        build(&self.config, &self.store).await
    }
}
