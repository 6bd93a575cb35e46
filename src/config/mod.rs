//! Configuration: TOML (plus `POSTERN_SECTION__KEY` environment overrides) parsed once at
//! startup into typed, validated structs.
//!
//! Everything downstream receives a [`Config`] and never re-reads files or the environment.
//! Validation errors name the key, the bad value and what would be allowed; secrets (the
//! userinfo of target URLs) are masked by [`TargetUrl`]'s `Display` and `Debug`.

mod address;
mod ca_file;
mod delivery;
mod dns;
mod oidc;
mod privacy;
mod raw;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::retention::Retention;

pub use address::{AddressPattern, DomainPattern, Format, LocalPattern, TargetUrl};
pub use delivery::{HTTPS_REQUIRED, in_clear};
pub use dns::DnsConfig;
pub use oidc::{
    GITHUB_API_URL, GITHUB_URL, GOOGLE_ISSUER, OidcProvider, ProviderKind, Secret, is_loopback_host,
};
pub use privacy::{Field, PrivacyConfig, Redaction};
pub use raw::{AddressSpec, DomainSpec, EntryRules, validate_address, validate_domain};
pub use tls::{
    AcmeChallenge, AcmeSettings, CertSource, LETS_ENCRYPT, LETS_ENCRYPT_STAGING, TlsConfig, Written,
};

/// The commented example written by `postern init`; a test proves it parses.
pub const EXAMPLE: &str = include_str!("example.toml");

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name used in the SMTP greeting and EHLO reply.
    pub hostname: String,
    /// Where `postern.db` lives.
    pub data_dir: PathBuf,
    pub smtp: SmtpConfig,
    /// `[tls]`: the certificate every listener serves.
    pub tls: TlsConfig,
    pub web: WebConfig,
    pub delivery: DeliveryConfig,
    pub auth: AuthSettings,
    pub outbound: OutboundConfig,
    pub submission: SubmissionConfig,
    /// `[dns]`: the servers every DNS lookup asks.
    pub dns: DnsConfig,
    /// `[encryption]`: content and secrets sealed at rest.
    pub encryption: EncryptionConfig,
    pub addresses: Vec<AddressConfig>,
    pub domains: Vec<DomainConfig>,
    /// `[retention]`: how long each kind of data is kept (dev mode: the newest messages).
    pub retention: Retention,
    /// `[privacy]`: metadata fields never stored.
    pub privacy: PrivacyConfig,
    /// Dev mode: every recipient is accepted; raw messages are kept.
    pub dev: Option<DevConfig>,
}

/// `[encryption]`: the keyring that seals content and secrets in the store.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    pub enabled: bool,
    /// The keyring file (0600; `postern init` / `postern keyring init` write one).
    pub key_file: PathBuf,
    /// A file holding the passphrase of a wrapped key file.
    pub passphrase_file: Option<PathBuf>,
    /// The passphrase from `POSTERN_KEY_PASSPHRASE`, when set.
    pub passphrase: Option<crate::crypto::Passphrase>,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_errors: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Reply text after 552 when a message is over `max_message_size`.
    pub size_exceeded_message: String,
    /// How long open sessions get to finish after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    pub abuse: SmtpAbuseLimits,
}

/// Limits that keep one client from taking every SMTP slot or all memory; they apply to
/// the MX and the submission listeners alike.
#[derive(Debug, Clone)]
pub struct SmtpAbuseLimits {
    /// Sessions one client (an IPv4 address or an IPv6 /64) may hold per listener.
    pub max_connections_per_ip: usize,
    /// How long one session may last in all.
    pub session_deadline: Duration,
    /// Bytes per second message content must average over each window; 0 turns it off.
    pub min_data_rate: u64,
    pub min_data_rate_window: Duration,
    /// Bytes of message content all sessions together may buffer (one budget).
    pub message_memory_budget: usize,
    /// Content past this many bytes goes to an encrypted spool file in
    /// `<data_dir>/spool` while it arrives; `None` keeps every message in memory.
    pub spool_threshold: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Mark cookies `Secure` (sent over HTTPS only). Default: on unless `listen` is on
    /// loopback; there is no HTTPS listener yet, so on means a TLS proxy in front.
    pub secure_cookies: bool,
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// A session is over this long after sign-in, however busy.
    pub session_lifetime: Duration,
    /// Every user must enrol TOTP before using the dashboard or the API.
    pub require_totp: bool,
    /// The URL browsers reach Postern at; `None`: the browser's Host, on loopback only.
    pub public_url: Option<url::Url>,
    /// `[[web.oidc]]`: sign-in with Google, GitHub or an OpenID Connect issuer.
    pub oidc: Vec<OidcProvider>,
    /// How long a client has to send a request's headers (also between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Open web connections from one client address (IPv6: its /64).
    pub max_connections_per_ip: usize,
    /// Open web connections in all.
    pub max_connections: usize,
    /// The listener may be off loopback on plain HTTP, and API tokens are taken over it from
    /// any peer: a TLS proxy in front terminates HTTPS (`web.allow_plain_http`).
    pub allow_plain_http: bool,
    /// `listen` serves HTTPS with `[tls]`'s certificate.
    pub https: bool,
    /// A plain-HTTP listener (port 80): ACME HTTP-01, and a redirect to HTTPS for the rest.
    pub http_listen: Option<SocketAddr>,
}

impl WebConfig {
    /// Off loopback without `public_url` or HTTPS (whose certificate names them) the listener
    /// cannot know the names it is reached by, so it answers any `Host` (no DNS-rebinding guard): the warning `serve` logs and
    /// `postern check` prints.
    pub fn any_host_warning(&self) -> Option<String> {
        // Over HTTPS the names are the certificate's (`[tls]`): those are the ones served.
        let names_known = self.public_url.is_some() || self.https;
        (!self.listen.ip().is_loopback() && !names_known).then(|| {
            format!(
                "web.listen {} is not on loopback and web.public_url is not set: the web \
                 listener answers any Host header (no DNS-rebinding guard); set web.public_url \
                 to the URL browsers reach Postern at",
                self.listen
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Total time allowed for one POST, redirects included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Follow a redirect to another origin (never from `https` to `http`).
    pub follow_cross_origin_redirects: bool,
    /// Refuse plain `http://` targets, callbacks and events URLs off loopback.
    pub require_https: bool,
    /// `extra_ca_file`, and the roots read from it at startup (trusted besides the system's).
    pub extra_ca_file: Option<PathBuf>,
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// How long a `queued` address's message is retried before it is `failed`.
    pub queue_expiry: Duration,
}

/// `[outbound]`: the queue and the delivery of mail sent through Postern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// How long a recipient is retried before `expired` (`retries_exhausted`).
    pub expiry: Duration,
    /// Whether the delivery worker runs (`serve` only); off, mail waits in the queue.
    pub deliver: bool,
    /// The port of the recipients' MX hosts (25; tests use another).
    pub port: u16,
    /// The HTTPS port of MTA-STS policy hosts (443; tests use another).
    pub mta_sts_port: u16,
    /// The name sent in EHLO (default: `server.hostname`).
    pub helo_name: String,
    /// Open SMTP connections at most, over all destinations.
    pub max_connections: usize,
    /// Open SMTP connections at most to one recipient domain.
    pub max_per_domain: usize,
    /// Recipient domains whose MX must offer STARTTLS (otherwise: deferred).
    pub require_tls: Vec<String>,
    /// Bound on connecting and on each SMTP command (DATA included).
    pub timeout: Duration,
    /// Send everything through this smarthost instead of the recipients' MX hosts.
    pub relay: Option<RelayUrl>,
    /// `extra_ca_file`, and the roots read from it at startup: trusted besides the webpki
    /// roots when verifying the relay's and `require_tls` MX hosts' certificates.
    pub extra_ca_file: Option<PathBuf>,
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The public base URL of the open/click tracking routes (`/t/o/…`, `/t/c/…`), no
    /// trailing `/`. `None`: derived from the web listener (fine for dev, not for mail that
    /// leaves the machine; `postern check` warns).
    pub tracking_url: Option<String>,
}

/// `[outbound] relay = "smtp://user:pass@host:587"`: a smarthost (STARTTLS, then AUTH when
/// a user is given). `Display` and `Debug` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayUrl {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "smtp://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}")?;
            if self.password.is_some() {
                write!(f, ":****")?;
            }
            write!(f, "@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl RelayUrl {
    /// `smtp://[user[:password]@]host[:port]` (587 by default); errors show it masked.
    pub fn parse(text: &str) -> Result<RelayUrl, ConfigError> {
        raw::relay_url(text)
    }

    /// Whether the host names this machine (`localhost` or a loopback address), without a
    /// DNS lookup.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayUrl({self})")
    }
}

impl Config {
    /// The tracking base URL: `outbound.tracking_url`, else the web listener's (`https://`
    /// when it serves HTTPS; the hostname in place of an unspecified address such as
    /// `0.0.0.0`, and always with HTTPS, whose certificate names the hostname; no port for
    /// HTTPS on 443).
    pub fn tracking_url(&self, web: SocketAddr) -> String {
        let scheme = if self.web.https { "https" } else { "http" };
        match &self.outbound.tracking_url {
            Some(url) => url.clone(),
            None if self.web.https && web.port() == 443 => format!("https://{}", self.hostname),
            None if web.ip().is_unspecified() || self.web.https => {
                format!("{scheme}://{}:{}", self.hostname, web.port())
            }
            None => format!("http://{web}"),
        }
    }
}

/// `[submission]`: where mail apps submit over SMTP (contract §6.5). The listeners use the
/// `[smtp]` certificate and limits (at most 20 recipients and 10 MB, contract §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmissionConfig {
    /// Empty: no submission listener. Port 587 (and 2525) by convention.
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS (RFC 8314): the handshake before the greeting. Port 465 by convention.
    pub tls_listen: Vec<SocketAddr>,
}

/// `[auth]`: SPF for every message, and how long a check may take (the DNS servers are
/// `[dns]`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Check SPF for every message (`envelope.spf`); off, the result is `none`.
    pub spf: bool,
    /// Bound on each check; past it the result is `temperror`.
    pub timeout: Duration,
}

/// One `[[address]]`: where mail for a pattern goes, and how.
#[derive(Debug, Clone)]
pub struct AddressConfig {
    pub pattern: AddressPattern,
    pub target: TargetUrl,
    pub format: Format,
    pub options: AddressOptions,
}

/// The optional per-address settings; each overrides a server-wide default.
#[derive(Debug, Clone, Default)]
pub struct AddressOptions {
    /// Overrides `delivery.timeout_secs` for this address.
    pub timeout: Option<Duration>,
    /// A lower size limit than `smtp.max_message_size` for this address.
    pub max_message_size: Option<usize>,
    /// The 552 text for this address.
    pub size_exceeded_message: Option<String>,
    /// Attachment `size` as a JSON number instead of a string (contract §1.5).
    pub size_as_number: bool,
    /// A `plain` made from the HTML when the mail has no text part (contract §1.4).
    pub html_to_plain: bool,
    /// POSTed at RCPT time; 2xx accepts, 4xx → 550, else 450 (contract §7.1).
    pub auth_callback: Option<TargetUrl>,
    /// POSTed after every non-2xx target answer (contract §7.2).
    pub error_callback: Option<TargetUrl>,
    /// Verify DKIM signatures and send `envelope.dkim` (contract §5.2).
    pub dkim: bool,
    /// Evaluate DMARC and send `envelope.dmarc` (contract §5.3).
    pub dmarc: bool,
    /// Metadata fields not stored for this address (its own and its `[[domain]]`'s), on top
    /// of `privacy.redact`.
    pub redact: Redaction,
    /// Whether the SMTP answer waits for the app (`sync`) or mail is kept and POSTed by the
    /// inbound queue (`queued`); unset, the `[[domain]]`'s.
    pub delivery: DeliveryMode,
    /// The store attachments are put into before the POST (contract §3.1, `objects`).
    pub attachment_store: Option<String>,
    /// The store the whole message is put into (contract §3.2).
    pub message_store: Option<String>,
    /// What goes into `message_store`.
    pub message_store_format: MessageStoreFormat,
}

/// What full-message storage stores (contract §3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageStoreFormat {
    /// The message as received, `.eml`.
    #[default]
    Raw,
    /// The JSON Normalized document, `.json`.
    Json,
}

impl MessageStoreFormat {
    pub fn parse(text: &str) -> Option<MessageStoreFormat> {
        match text {
            "raw" => Some(MessageStoreFormat::Raw),
            "json" => Some(MessageStoreFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStoreFormat::Raw => "raw",
            MessageStoreFormat::Json => "json",
        }
    }
}

/// Whether `name` may name an attachment or message store: 1 to 64 of `a-z`, `0-9`, `-`,
/// `_`, starting with a letter or digit (it appears in URLs, commands and config files).
pub fn valid_store_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The patterns of the `addresses` that put attachments or messages into the store `name`.
pub fn addresses_using_store(addresses: &[AddressConfig], name: &str) -> Vec<String> {
    addresses
        .iter()
        .filter(|a| {
            let options = &a.options;
            options.attachment_store.as_deref() == Some(name)
                || options.message_store.as_deref() == Some(name)
        })
        .map(|a| a.pattern.to_string())
        .collect()
}

/// How mail for an address reaches its app (README "Delivery modes").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// The POST happens during the SMTP transaction; the app's answer is the SMTP answer.
    #[default]
    Sync,
    /// The message is committed and answered 250 at once; the inbound queue POSTs it,
    /// retrying until `[delivery] queue_expiry_hours`.
    Queued,
}

impl DeliveryMode {
    pub fn parse(text: &str) -> Option<DeliveryMode> {
        match text {
            "sync" => Some(DeliveryMode::Sync),
            "queued" => Some(DeliveryMode::Queued),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Sync => "sync",
            DeliveryMode::Queued => "queued",
        }
    }
}

/// One `[[domain]]`: rules for every address at a domain (contract §4.3).
#[derive(Debug, Clone)]
pub struct DomainConfig {
    pub domain: DomainPattern,
    /// Recipients at this domain must match (the whole address, case-insensitive).
    pub auth_regex: Option<regex::Regex>,
    /// Makes the domain a catch-all to this target, and is the default target of its
    /// `[[address]]` entries.
    pub target: Option<TargetUrl>,
    pub format: Option<Format>,
    /// Metadata fields not stored for mail to this domain, on top of `privacy.redact`.
    pub redact: Redaction,
    /// The catch-all's delivery mode, and the default of the domain's `[[address]]` entries.
    pub delivery: Option<DeliveryMode>,
}

#[derive(Debug, Clone)]
pub struct DevConfig {
    /// POST every message here (with the status mapping) instead of only capturing it.
    pub forward: Option<TargetUrl>,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key} = {value}: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
}

impl ConfigError {
    fn invalid(
        key: impl Into<String>,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

impl Config {
    /// Reads `path`, applies the `POSTERN_*` environment overrides from `env`, validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, env).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text with environment overrides; `Syntax` errors carry an empty path.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let key_env = raw::KeyEnv::from_env(&env);
        raw::apply_env_overrides(&mut tree, env)?;
        let mut raw: raw::RawConfig =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e| ConfigError::Syntax {
                    path: PathBuf::new(),
                    message: e.to_string(),
                })?;
        raw.key_env = key_env;
        raw.validate()
    }

    /// The zero-config local mode: loopback listeners, data in `data_dir`, every
    /// recipient accepted, a self-signed STARTTLS certificate.
    pub fn dev(
        data_dir: PathBuf,
        smtp: SocketAddr,
        web: SocketAddr,
        forward: Option<TargetUrl>,
    ) -> Config {
        let mut config = raw::RawConfig::default()
            .validate()
            .expect("the built-in defaults are valid");
        config.hostname = "localhost".into();
        config.data_dir = data_dir;
        config.smtp.listen = smtp;
        config.tls = TlsConfig::unconfigured();
        config.smtp.shutdown_grace = Duration::from_secs(5);
        config.web.listen = web;
        // Dev mode is plain HTTP; `Secure` cookies would never come back.
        config.web.secure_cookies = false;
        // Local test mail comes from loopback: SPF has nothing to say, and dev mode makes
        // no DNS queries.
        config.auth.spf = false;
        // Dev keeps its keyring beside its data (`postern dev` creates it); the text of the
        // mail it keeps is searchable (the index is not sealed, and need not be here).
        config.encryption.key_file = config.data_dir.join("keyring");
        config.privacy.index_bodies = true;
        config.dev = Some(DevConfig { forward });
        // Like a local capture tool: the newest messages, not the last days' content.
        config.retention = config.retention.for_dev();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(toml: &str) -> Result<WebConfig, ConfigError> {
        Config::from_toml(toml, Vec::new()).map(|config| config.web)
    }

    /// A plain-HTTP listener off loopback, behind a TLS proxy.
    const PROXIED: &str = "[web]\nlisten = \"0.0.0.0:8025\"\nallow_plain_http = true\n";

    #[test]
    fn plain_http_off_loopback_needs_allow_plain_http() {
        for listen in ["0.0.0.0:8025", "192.0.2.2:8025", "[::]:8025"] {
            let error = web(&format!("[web]\nlisten = \"{listen}\"\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!(
                    "web.listen = {listen}: serves plain HTTP to the network, so passwords and \
                     API tokens would cross it in clear: put it on loopback behind a TLS \
                     proxy, or set [web] allow_plain_http = true if a TLS proxy in front of \
                     it terminates HTTPS"
                )
            );
        }
        assert!(!web("").unwrap().allow_plain_http, "off by default");
        assert!(web("[web]\nlisten = \"[::1]:8025\"\n").is_ok(), "loopback");
        assert!(web(PROXIED).unwrap().allow_plain_http);
    }

    #[test]
    fn web_defaults_and_secure_cookies_follow_the_listener() {
        let loopback = web("").unwrap();
        assert!(!loopback.secure_cookies);
        assert!(!loopback.require_totp);
        assert_eq!(loopback.session_idle, Duration::from_secs(30 * 60));
        assert_eq!(loopback.session_lifetime, Duration::from_secs(12 * 60 * 60));
        assert!(web(PROXIED).unwrap().secure_cookies);
        assert!(
            !web(&format!("{PROXIED}secure_cookies = false\n"))
                .unwrap()
                .secure_cookies
        );
        assert!(
            web("[web]\nsecure_cookies = true\n")
                .unwrap()
                .secure_cookies
        );
        let dev = Config::dev(
            "d".into(),
            "127.0.0.1:0".parse().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
            None,
        );
        assert!(!dev.web.secure_cookies, "dev mode is plain HTTP");
    }

    fn outbound(toml: &str) -> Result<OutboundConfig, ConfigError> {
        Config::from_toml(toml, Vec::new()).map(|config| config.outbound)
    }

    #[test]
    fn outbound_defaults_and_checks() {
        let defaults = outbound("[server]\nhostname = \"mx.example.com\"\n").unwrap();
        assert!(defaults.deliver);
        assert_eq!((defaults.port, defaults.mta_sts_port), (25, 443));
        assert_eq!(defaults.helo_name, "mx.example.com");
        assert_eq!((defaults.max_connections, defaults.max_per_domain), (64, 4));
        assert_eq!(defaults.expiry, Duration::from_secs(72 * 3600));
        assert_eq!(defaults.relay, None);

        let set = outbound(
            "[outbound]\ndns = [\"127.0.0.1:5353\"]\nrequire_tls = [\"Example.NET.\"]\n\
             relay = \"smtp://me%40x:p%40ss@relay.example.net\"\n",
        )
        .unwrap();
        assert_eq!(set.require_tls, ["example.net"]);
        let relay = set.relay.unwrap();
        assert_eq!(relay.username.as_deref(), Some("me@x"));
        assert_eq!(relay.password.as_deref(), Some("p@ss"));
        assert_eq!(
            (relay.host.as_str(), relay.port),
            ("relay.example.net", 587)
        );
        assert_eq!(relay.to_string(), "smtp://me@x:****@relay.example.net:587");
        assert!(!format!("{relay:?}").contains("p@ss"));

        for (toml, key) in [
            ("[outbound]\ndns = []\n", "outbound.dns"),
            ("[outbound]\nport = 0\n", "outbound.port"),
            (
                "[outbound]\nmta_sts_port = 65536\n",
                "outbound.mta_sts_port",
            ),
            (
                "[outbound]\nmax_per_domain = 0\n",
                "outbound.max_per_domain",
            ),
            (
                "[outbound]\nrequire_tls = [\"not a domain\"]\n",
                "outbound.require_tls[0]",
            ),
            ("[outbound]\nhelo_name = \"a b\"\n", "outbound.helo_name"),
            (
                "[outbound]\nrelay = \"http://u:s3cret@h\"\n",
                "outbound.relay",
            ),
        ] {
            let error = outbound(toml).unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn tracking_url_is_checked_or_derived_from_the_web_listener() {
        let config = |toml: &str| Config::from_toml(toml, Vec::new());
        let listen: SocketAddr = "127.0.0.1:8025".parse().unwrap();
        let derived = config("").unwrap();
        assert_eq!(derived.outbound.tracking_url, None);
        assert_eq!(derived.tracking_url(listen), "http://127.0.0.1:8025");
        let any = config("[server]\nhostname = \"mx.example.com\"\n").unwrap();
        assert_eq!(
            any.tracking_url("0.0.0.0:80".parse().unwrap()),
            "http://mx.example.com:80"
        );
        let set = config("[outbound]\ntracking_url = \"https://track.example.com/\"\n").unwrap();
        assert_eq!(set.tracking_url(listen), "https://track.example.com");
        for bad in [
            "track.example.com",
            "ftp://x.example",
            "https://u:p@x.example",
            "https://x.example/?a=1",
        ] {
            let error = config(&format!("[outbound]\ntracking_url = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("outbound.tracking_url = "), "{error}");
        }
    }

    #[test]
    fn submission_listeners_are_a_list_or_one_address() {
        let listen =
            |toml: &str| Config::from_toml(toml, Vec::new()).map(|config| config.submission.listen);
        assert_eq!(listen("").unwrap(), Vec::<SocketAddr>::new());
        let tls = "[smtp]\ntls_self_signed = true\n";
        assert_eq!(
            listen(&format!("{tls}[submission]\nlisten = \"127.0.0.1:587\"\n")).unwrap(),
            ["127.0.0.1:587".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            listen(&format!(
                "{tls}[submission]\nlisten = [\"[::]:587\", \"0.0.0.0:2525\"]\n"
            ))
            .unwrap()
            .len(),
            2
        );
        let error = listen(&format!("{tls}[submission]\nlisten = [\"587\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("submission.listen = \"587\": expected IP:PORT"),
            "{error}"
        );
    }

    #[test]
    fn sections_are_checked_in_a_fixed_order_and_the_first_bad_key_is_reported() {
        // `validate` runs one section after the other; an operator fixing errors one at a
        // time sees them in the same order every time.
        let error = |toml: &str| Config::from_toml(toml, Vec::new()).unwrap_err().to_string();
        let bad = [
            "[server]\nhostname = \"a b\"\n",
            "[smtp]\nmax_recipients = 0\n",
            "[web]\nsession_idle_secs = 5\n",
            "[delivery]\ntimeout_secs = 0\n",
            "[auth]\ntimeout_secs = 0\n",
            "[outbound]\nport = 0\n",
            "[retention]\naudit_days = 0\n",
            "[[domain]]\ndomain = \"\"\n",
        ];
        let keys = [
            "server.hostname",
            "smtp.max_recipients",
            "web.session_idle_secs",
            "delivery.timeout_secs",
            "auth.timeout_secs",
            "outbound.port",
            "retention.audit_days",
            "domain[0].domain",
        ];
        for first in 0..bad.len() {
            let toml = bad[first..].concat();
            let reported = error(&toml);
            assert!(reported.starts_with(keys[first]), "{toml}\n→ {reported}");
        }
    }

    #[test]
    fn session_limits_are_checked() {
        let error = web("[web]\nsession_idle_secs = 7200\nsession_lifetime_secs = 3600\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("web.session_idle_secs = 7200: must not exceed"),
            "{error}"
        );
        let error = web("[web]\nsession_idle_secs = 5\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be between 60 and 86400"), "{error}");
    }

    #[test]
    fn web_listener_limits_have_defaults_and_are_checked() {
        let defaults = web("").unwrap();
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(
            (defaults.max_connections_per_ip, defaults.max_connections),
            (64, 1024)
        );
        let set = web("[web]\nheader_read_timeout_secs = 1\nmax_connections_per_ip = 2\nmax_connections = 3\n")
            .unwrap();
        assert_eq!(set.header_read_timeout, Duration::from_secs(1));
        assert_eq!((set.max_connections_per_ip, set.max_connections), (2, 3));
        for (toml, expected) in [
            (
                "header_read_timeout_secs = 0",
                "web.header_read_timeout_secs = 0: must be between 1 and 600",
            ),
            (
                "max_connections = 0",
                "web.max_connections = 0: must be between 1",
            ),
            (
                "max_connections_per_ip = 0",
                "web.max_connections_per_ip = 0: must be between 1",
            ),
            (
                "max_connections = 10\nmax_connections_per_ip = 11",
                "web.max_connections_per_ip = 11: must not exceed web.max_connections (10)",
            ),
        ] {
            let error = web(&format!("[web]\n{toml}\n")).unwrap_err().to_string();
            assert!(error.contains(expected), "{toml}: {error}");
        }
    }

    #[test]
    fn off_loopback_without_public_url_any_host_is_answered_with_a_warning() {
        assert_eq!(web("").unwrap().any_host_warning(), None);
        let open = web(PROXIED).unwrap();
        let warning = open.any_host_warning().unwrap();
        assert!(warning.contains("answers any Host"), "{warning}");
        let named = web(&format!(
            "{PROXIED}public_url = \"https://p.example.com\"\n"
        ));
        assert_eq!(named.unwrap().any_host_warning(), None);
    }

    #[test]
    fn retention_has_defaults_and_each_key_is_checked() {
        use crate::retention::{ContentRule, Retention};
        let retention = |toml: &str| Config::from_toml(toml, Vec::new()).map(|c| c.retention);
        assert_eq!(retention("").unwrap(), Retention::default());
        assert_eq!(Retention::default().content, ContentRule::Days(7));
        let set = retention(concat!(
            "[retention]\ninbound_metadata_days = 1\noutbound_metadata_days = 36500\n",
            "content_days = 2\naudit_days = 3\ntracking_days = 4\n"
        ))
        .unwrap();
        let expected = Retention {
            inbound_metadata_days: 1,
            outbound_metadata_days: 36_500,
            content: ContentRule::Days(2),
            audit_days: 3,
            tracking_days: 4,
        };
        assert_eq!(set, expected);
        for key in [
            "inbound_metadata_days",
            "outbound_metadata_days",
            "content_days",
            "audit_days",
            "tracking_days",
        ] {
            for bad in [0, 36_501] {
                let error = retention(&format!("[retention]\n{key} = {bad}\n"))
                    .unwrap_err()
                    .to_string();
                let expected = format!("retention.{key} = {bad}: must be between 1 and 36500");
                assert_eq!(error, expected);
            }
        }
        let env = [(
            "POSTERN_RETENTION__CONTENT_DAYS".to_string(),
            "3".to_string(),
        )];
        let from_env = Config::from_toml("", env).unwrap().retention;
        assert_eq!(from_env.content, ContentRule::Days(3));
        let dev = Config::dev(
            "d".into(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            None,
        );
        assert_eq!(dev.retention.content, ContentRule::Newest(1_000));
    }
}
