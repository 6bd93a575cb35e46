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

use crate::config::{AddressSpec, Config, DeliveryConfig, DomainSpec};
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
    MtaSts,
    Dns,
    Oidc,
    AcmeCa,
    /// An S3-compatible store of attachments or whole messages (`objects`).
    ObjectStore,
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
            Kind::MtaSts => "MTA-STS policy host",
            Kind::Dns => "DNS server",
            Kind::Oidc => "sign-in provider",
            Kind::AcmeCa => "certificate authority (ACME)",
            Kind::ObjectStore => "object store (S3)",
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
    /// A request for a published policy: the domain's name, nothing of the mail.
    PolicyRequest,
    /// Certificate orders: the names to certify and the contact addresses.
    CertificateOrder,
}

impl Sends {
    pub fn describe(self) -> &'static str {
        match self {
            Sends::FullMessage => "full message",
            Sends::Metadata => "metadata",
            Sends::Events => "events",
            Sends::DnsQueries => "DNS queries",
            Sends::SignIn => "sign-in",
            Sends::PolicyRequest => "policy request",
            Sends::CertificateOrder => "certificate orders",
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
    /// Attachment and message stores (`/stores`), without their secrets.
    pub object_stores: Vec<crate::store::ObjectStoreRow>,
}

impl Runtime {
    pub async fn load(store: &Store) -> Result<Runtime, StoreError> {
        Ok(Runtime {
            addresses: specs(store.managed_entries().await?),
            domains: specs(store.managed_entries().await?),
            credentials: store.credentials().await?,
            object_stores: store.object_stores().await?,
        })
    }
}

fn specs<S>(entries: Vec<(i64, S)>) -> Vec<S> {
    entries.into_iter().map(|(_, spec)| spec).collect()
}

/// Where a redirect may take a POST (`[delivery] follow_cross_origin_redirects`).
fn redirect_note(delivery: &DeliveryConfig) -> String {
    let followed = match delivery.follow_cross_origin_redirects {
        false => {
            "only within the same origin (scheme, host, port) or from http to https on \
                  the same host; a redirect anywhere else is refused"
        }
        true => {
            "to the URL it names, on any host (follow_cross_origin_redirects), but never \
                 from https to http"
        }
    };
    format!(
        "A target, callback or events webhook may answer with a redirect (at most 3): the same \
         POST then goes {followed}."
    )
}

/// Whether certificates are fetched: only with `[tls] mode = "acme"`.
fn acme_note(config: &Config) -> String {
    match config.tls.source {
        crate::config::CertSource::Acme(_) => "ACME: the certificate authority gets the names to \
            certify and the contact addresses, and publishes the names in Certificate \
            Transparency logs; the account and certificate keys stay here, sealed."
            .to_string(),
        _ => "No ACME: TLS certificates come from files or are self-signed, nothing is fetched."
            .to_string(),
    }
}

/// The report of `config` and `runtime`; `system_dns` are the servers of `/etc/resolv.conf`
/// (or why they could not be read).
pub fn report(
    config: &Config,
    runtime: &Runtime,
    system_dns: Result<Vec<SocketAddr>, String>,
) -> PrivacyReport {
    let mut notes = vec![
        redirect_note(&config.delivery),
        "Open and click tracking are requests to this instance: nothing leaves for them."
            .to_string(),
        acme_note(config),
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[outbound]
relay = "smtp://me:s3cret@relay.example.net:587"
[dns]
servers = ["127.0.0.1:5353"]
[[address]]
address = "in@example.com"
target = "https://user:s3cret@app.example.com/in"
auth_callback = "http://127.0.0.1:9/auth"
"#;

    fn runtime() -> Runtime {
        Runtime {
            addresses: vec![AddressSpec {
                address: "api@example.com".into(),
                target: Some("http://u:s3cret@10.0.0.1:8080/hook".into()),
                format: None,
                timeout_secs: None,
                max_message_size: None,
                size_exceeded_message: None,
                size_as_number: false,
                html_to_plain: false,
                auth_callback: None,
                error_callback: None,
                dkim: true,
                dmarc: false,
                redact: vec![],
                delivery: None,
                attachment_store: None,
                message_store: None,
                message_store_format: None,
            }],
            domains: vec![],
            credentials: vec![],
            object_stores: vec![],
        }
    }

    #[test]
    fn every_destination_is_listed_masked_with_its_channel() {
        let config = Config::from_toml(CONFIG, Vec::new()).unwrap();
        let system = Ok(vec!["192.0.2.53:53".parse().unwrap()]);
        let report = report(&config, &runtime(), system);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        let find = |kind: Kind, to: &str| {
            report
                .destinations
                .iter()
                .find(|d| d.kind == kind && d.to.contains(to))
                .unwrap_or_else(|| panic!("{kind:?} {to} in {json}"))
        };
        let target = find(Kind::Target, "app.example.com");
        assert_eq!(target.to, "https://***@app.example.com/in");
        assert_eq!(
            (target.encryption, target.port),
            (Encryption::Yes, Some(443))
        );
        let auth = find(Kind::AuthCallback, "127.0.0.1:9");
        assert_eq!(
            (auth.encryption, auth.sends),
            (Encryption::No, Sends::Metadata)
        );
        assert_eq!(
            find(Kind::Target, "10.0.0.1").source,
            "managed address api@example.com"
        );
        let relay = find(Kind::Relay, "relay.example.net");
        assert_eq!(relay.encryption, Encryption::Yes);
        assert!(!report.destinations.iter().any(|d| d.kind == Kind::Mx));
        let dns = find(Kind::Dns, "127.0.0.1:5353");
        assert!(dns.detail.contains("DKIM"), "{}", dns.detail);
        // Named hosts are looked up through the system resolver, whatever [dns] says.
        assert_eq!(
            find(Kind::Dns, "192.0.2.53:53").source,
            "the system resolver (/etc/resolv.conf)"
        );
        // Content and secrets are sealed ([encryption] is on by default), metadata is not.
        let encrypted = |what: &str| {
            let row = report.stored.iter().find(|s| s.what.starts_with(what));
            row.unwrap_or_else(|| panic!("no stored row {what}"))
                .encrypted
        };
        assert!(encrypted("Sent messages' content"));
        assert!(encrypted("Users"));
        assert!(!encrypted("Received messages' metadata"));
        assert!(!encrypted("The audit log"));
    }

    #[test]
    fn acme_lists_the_certificate_authority_and_its_sealed_keys() {
        let toml = "[server]\nhostname = \"mail.example.com\"\n[tls]\nmode = \"acme\"\n\
                    contact = [\"postmaster@example.com\"]\n";
        let config = Config::from_toml(toml, Vec::new()).unwrap();
        let acme = report(&config, &runtime(), Ok(vec![]));
        let ca = acme.destinations.iter().find(|d| d.kind == Kind::AcmeCa);
        let ca = ca.unwrap_or_else(|| panic!("no CA in {:?}", acme.destinations));
        assert_eq!(ca.host.as_deref(), Some("acme-v02.api.letsencrypt.org"));
        assert_eq!(
            (ca.port, ca.encryption, ca.sends),
            (Some(443), Encryption::Yes, Sends::CertificateOrder)
        );
        assert!(acme.notes.iter().any(|n| n.starts_with("ACME:")));
        let keys = acme.stored.iter().find(|s| s.what.starts_with("The ACME"));
        assert!(keys.unwrap().encrypted);

        let files = Config::from_toml(CONFIG, Vec::new()).unwrap();
        let report = report(&files, &runtime(), Ok(vec![]));
        assert!(!report.destinations.iter().any(|d| d.kind == Kind::AcmeCa));
        assert!(!report.stored.iter().any(|s| s.what.starts_with("The ACME")));
    }

    #[test]
    fn dev_mode_sends_only_to_its_forward() {
        let dev = |forward: Option<&str>| {
            let forward = forward.map(|url| crate::config::TargetUrl::parse(url).unwrap());
            let config = Config::dev(
                "d".into(),
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
                forward,
            );
            report(&config, &runtime(), Ok(vec![]))
        };
        let kinds = |r: &PrivacyReport| r.destinations.iter().map(|d| d.kind).collect::<Vec<_>>();
        assert_eq!(kinds(&dev(None)), Vec::<Kind>::new());
        assert_eq!(
            kinds(&dev(Some("http://127.0.0.1:3000/in"))),
            [Kind::DevForward]
        );
    }
}
