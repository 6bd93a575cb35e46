//! The serde shape of the config file, its defaults, environment overrides and the one
//! validation pass that turns it into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dns::RawDnsSection;
use super::privacy::RawPrivacy;
use super::tls::{CertSource, LegacySmtpKeys, RawTls, TlsConfig};
use crate::crypto::Passphrase;
use crate::retention::{ContentRule, Retention};

use super::{
    AddressConfig, AddressOptions, AddressPattern, AuthSettings, Config, ConfigError,
    DeliveryConfig, DeliveryMode, DomainConfig, DomainPattern, EncryptionConfig, Format,
    MessageStoreFormat, OidcProvider, OutboundConfig, Redaction, RelayUrl, SmtpAbuseLimits,
    SmtpConfig, SubmissionConfig, TargetUrl, WebConfig,
};

/// The longest any `[retention]` setting may be: a hundred years.
const MAX_RETENTION_DAYS: u64 = 36_500;

const ENV_PREFIX: &str = "POSTERN_";
/// `POSTERN_*` variables that are not config overrides.
const ENV_NOT_CONFIG: &[&str] = &["POSTERN_LOG", "POSTERN_CONFIG", PASSPHRASE_ENV];
/// The passphrase of a wrapped key file, when not in `[encryption] passphrase_file`.
pub const PASSPHRASE_ENV: &str = "POSTERN_KEY_PASSPHRASE";
/// The key file when systemd's `LoadCredential=keyring:…` provides it.
const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";
/// The key file otherwise.
const DEFAULT_KEY_FILE: &str = "/etc/postern/keyring";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    server: RawServer,
    smtp: RawSmtp,
    tls: Option<RawTls>,
    web: RawWeb,
    delivery: RawDelivery,
    auth: RawAuth,
    outbound: RawOutbound,
    submission: RawSubmission,
    dns: RawDnsSection,
    retention: RawRetention,
    encryption: RawEncryption,
    /// What the environment says about the key file (not from the file).
    #[serde(skip)]
    pub(super) key_env: KeyEnv,
    privacy: RawPrivacy,
    #[serde(rename = "address")]
    addresses: Vec<AddressSpec>,
    #[serde(rename = "domain")]
    domains: Vec<DomainSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEncryption {
    enabled: bool,
    key_file: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
}

impl Default for RawEncryption {
    fn default() -> Self {
        RawEncryption {
            enabled: true,
            key_file: None,
            passphrase_file: None,
        }
    }
}

/// The environment's part in `[encryption]`: systemd's credentials directory and the
/// key file's passphrase.
#[derive(Debug, Default)]
pub(super) struct KeyEnv {
    pub(super) credentials_dir: Option<PathBuf>,
    pub(super) passphrase: Option<Passphrase>,
}

impl KeyEnv {
    pub(super) fn from_env(env: &[(String, String)]) -> KeyEnv {
        let var = |name: &str| {
            env.iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.clone())
        };
        KeyEnv {
            credentials_dir: var(CREDENTIALS_ENV).map(PathBuf::from),
            passphrase: var(PASSPHRASE_ENV).map(Passphrase::from),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    hostname: String,
    data_dir: PathBuf,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            hostname: "localhost".into(),
            data_dir: "/var/lib/postern".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSmtp {
    listen: String,
    max_connections: u64,
    max_message_size: u64,
    max_recipients: u64,
    max_line_length: u64,
    max_errors: u64,
    command_timeout_secs: u64,
    data_timeout_secs: u64,
    size_exceeded_message: String,
    shutdown_grace_secs: u64,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: bool,
    // Abuse limits (issue 10 items 4 and 9).
    max_connections_per_ip: u64,
    session_deadline_secs: u64,
    min_data_rate: u64,
    min_data_rate_window_secs: u64,
    /// Default: 256 MiB, or max_message_size if that is larger.
    message_memory_budget: Option<u64>,
    /// Bytes; 0 turns spooling off.
    spool_threshold: u64,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            listen: "0.0.0.0:25".into(),
            max_connections: 1000,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 1000,
            max_errors: 10,
            // RFC 5321 §4.5.3.2.7: a server waits at least five minutes for the next command.
            command_timeout_secs: 300,
            // §4.5.3.2.5/6: three minutes per data block on the client side; the server waits longer.
            data_timeout_secs: 300,
            size_exceeded_message: "Message exceeds the maximum size for this address".into(),
            shutdown_grace_secs: 30,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            // Postfix's smtpd_client_connection_count_limit: a big sender's one address may
            // hold many sessions at once, a single client should not hold them all.
            max_connections_per_ip: 50,
            session_deadline_secs: 1800,
            min_data_rate: 256,
            min_data_rate_window_secs: 60,
            message_memory_budget: None,
            spool_threshold: crate::smtp::spool::DEFAULT_THRESHOLD as u64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
    listen: String,
    /// Default: on unless `listen` is on loopback.
    secure_cookies: Option<bool>,
    session_idle_secs: u64,
    session_lifetime_secs: u64,
    require_totp: bool,
    /// The URL browsers reach Postern at (for the sign-in providers' callback).
    public_url: Option<String>,
    oidc: Vec<super::oidc::OidcSpec>,
    // The listener's abuse limits (issue 10 item 4).
    header_read_timeout_secs: u64,
    max_connections_per_ip: u64,
    max_connections: u64,
    /// A plain-HTTP listener off loopback, trusting a TLS proxy in front (issue 12 §3).
    allow_plain_http: bool,
    /// Serve HTTPS on `listen`; default: whenever `[tls]` names a certificate source.
    https: Option<bool>,
    /// A plain-HTTP listener (port 80) that answers ACME HTTP-01 and redirects to HTTPS.
    http_listen: Option<String>,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            listen: "127.0.0.1:8025".into(),
            secure_cookies: None,
            // 30 minutes and 12 hours (OWASP's session guidance for a dashboard).
            session_idle_secs: 30 * 60,
            session_lifetime_secs: 12 * 3600,
            require_totp: false,
            public_url: None,
            oidc: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections_per_ip: 64,
            max_connections: 1024,
            allow_plain_http: false,
            https: None,
            http_listen: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDelivery {
    timeout_secs: u64,
    connect_timeout_secs: u64,
    follow_cross_origin_redirects: bool,
    require_https: bool,
    extra_ca_file: Option<PathBuf>,
    queue_expiry_hours: u64,
}

impl Default for RawDelivery {
    fn default() -> Self {
        RawDelivery {
            timeout_secs: 30,
            connect_timeout_secs: 10,
            follow_cross_origin_redirects: false,
            require_https: false,
            extra_ca_file: None,
            queue_expiry_hours: 72,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOutbound {
    expiry_hours: u64,
    deliver: bool,
    /// Deprecated alias of `[dns] servers` (`config::dns`).
    dns: Option<RawDns>,
    port: u64,
    mta_sts_port: u64,
    helo_name: Option<String>,
    max_connections: u64,
    max_per_domain: u64,
    require_tls: Vec<String>,
    timeout_secs: u64,
    relay: Option<String>,
    extra_ca_file: Option<PathBuf>,
    tracking_url: Option<String>,
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            expiry_hours: 72,
            deliver: true,
            dns: None,
            port: 25,
            mta_sts_port: 443,
            helo_name: None,
            max_connections: 64,
            max_per_domain: 4,
            require_tls: Vec::new(),
            timeout_secs: 60,
            relay: None,
            extra_ca_file: None,
            tracking_url: None,
        }
    }
}

/// `[submission]`: SMTP submission listeners; none by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSubmission {
    /// "IP:PORT" or a list of them (a single string is a list of one).
    listen: RawListen,
    /// Implicit-TLS listeners (RFC 8314, port 465), same shape.
    tls_listen: RawListen,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawListen {
    One(String),
    Many(Vec<String>),
}

impl Default for RawListen {
    fn default() -> Self {
        RawListen::Many(Vec::new())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    spf: bool,
    /// Deprecated alias of `[dns] servers` (`config::dns`).
    dns: Option<RawDns>,
    timeout_secs: u64,
}

/// "system", or a list of "IP:PORT" (a single string is a list of one).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDns {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetention {
    inbound_metadata_days: u64,
    outbound_metadata_days: u64,
    content_days: u64,
    audit_days: u64,
    tracking_days: u64,
}

impl Default for RawRetention {
    fn default() -> Self {
        let defaults = Retention::default();
        let ContentRule::Days(content_days) = defaults.content else {
            unreachable!("the default keeps content for days")
        };
        RawRetention {
            inbound_metadata_days: defaults.inbound_metadata_days.into(),
            outbound_metadata_days: defaults.outbound_metadata_days.into(),
            content_days: content_days.into(),
            audit_days: defaults.audit_days.into(),
            tracking_days: defaults.tracking_days.into(),
        }
    }
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            spf: true,
            dns: None,
            timeout_secs: 5,
        }
    }
}

/// An `[[address]]` entry as written, before validation: the config file's form, and the
/// body of the addresses API (which stores it as given). Target URLs may hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    pub address: String,
    pub target: Option<String>,
    pub format: Option<String>,
    pub timeout_secs: Option<u64>,
    pub max_message_size: Option<u64>,
    pub size_exceeded_message: Option<String>,
    #[serde(default)]
    pub size_as_number: bool,
    #[serde(default)]
    pub html_to_plain: bool,
    pub auth_callback: Option<String>,
    pub error_callback: Option<String>,
    #[serde(default)]
    pub dkim: bool,
    #[serde(default)]
    pub dmarc: bool,
    /// Metadata fields not stored for this address (`config::privacy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// `sync` (the default: the app's answer is the SMTP answer) or `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// The store (`postern store add`) attachments are put into before the POST, which then
    /// carries their URLs (contract §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_store: Option<String>,
    /// The store the whole message is put into; the POST carries `envelope.store_url`
    /// (contract §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_store: Option<String>,
    /// `raw` (the `.eml` as received, the default) or `json` (the JSON Normalized document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_store_format: Option<String>,
}

/// A `[[domain]]` entry as written, before validation (see [`AddressSpec`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    pub domain: String,
    pub auth_regex: Option<String>,
    pub target: Option<String>,
    pub format: Option<String>,
    /// Metadata fields not stored for mail to this domain (`config::privacy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// `sync` or `queued`: the catch-all's, and the default of the domain's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
}

const DEFAULT_FORMAT: Format = Format::JsonNormalized;

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            quote(value),
            "expected IP:PORT, e.g. 0.0.0.0:25 or [::]:25",
        )
    })
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ))
    }
}

fn seconds(key: &str, value: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
    in_range(key, value, min, max).map(Duration::from_secs)
}

pub(super) fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `"system"` → `None`; `"IP:PORT"` or a non-empty list of them → those servers.
pub(super) fn dns_servers(key: &str, dns: RawDns) -> Result<Option<Vec<SocketAddr>>, ConfigError> {
    match dns {
        RawDns::One(text) if text == "system" => Ok(None),
        RawDns::One(text) => Ok(Some(vec![socket_addr(key, &text)?])),
        RawDns::Many(list) if list.is_empty() => Err(ConfigError::invalid(
            key,
            "[]",
            "\"system\" or a list of IP:PORT, e.g. [\"127.0.0.1:53\"]",
        )),
        RawDns::Many(list) => list
            .iter()
            .map(|text| socket_addr(key, text))
            .collect::<Result<_, _>>()
            .map(Some),
    }
}

/// `smtp://[user[:password]@]host[:port]` (port 587 by default); errors show it masked.
pub(super) fn relay_url(text: &str) -> Result<RelayUrl, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::invalid(
            "outbound.relay",
            TargetUrl::mask_str(text),
            format!("{why}; expected smtp://user:password@host:587"),
        )
    };
    let url = url::Url::parse(text).map_err(|_| invalid("not a URL"))?;
    if url.scheme() != "smtp" {
        return Err(invalid("the scheme must be smtp"));
    }
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| invalid("the user or password is not UTF-8"))
    };
    let username = match url.username() {
        "" => None,
        user => Some(decode(user)?),
    };
    let password = url.password().map(decode).transpose()?;
    if password.is_some() && username.is_none() {
        return Err(invalid("a password needs a user"));
    }
    Ok(RelayUrl {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: url.port().unwrap_or(587),
        username,
        password,
    })
}

fn quote(value: &str) -> String {
    format!("{value:?}")
}

impl RawSmtp {
    /// The `[smtp]` abuse limits: per-IP cap, session deadline, minimum data rate, memory.
    fn abuse_limits(&self) -> Result<SmtpAbuseLimits, ConfigError> {
        let max_size = in_range(
            "smtp.max_message_size",
            self.max_message_size,
            1024,
            1 << 30,
        )?;
        let budget = self
            .message_memory_budget
            .unwrap_or((256 << 20).max(max_size));
        Ok(SmtpAbuseLimits {
            max_connections_per_ip: in_range(
                "smtp.max_connections_per_ip",
                self.max_connections_per_ip,
                1,
                100_000,
            )? as usize,
            session_deadline: seconds(
                "smtp.session_deadline_secs",
                self.session_deadline_secs,
                1,
                86_400,
            )?,
            min_data_rate: in_range("smtp.min_data_rate", self.min_data_rate, 0, 1 << 30)?,
            min_data_rate_window: seconds(
                "smtp.min_data_rate_window_secs",
                self.min_data_rate_window_secs,
                1,
                3600,
            )?,
            // One message of the largest size must fit, or it could never be accepted.
            message_memory_budget: in_range(
                "smtp.message_memory_budget",
                budget,
                max_size,
                1 << 40,
            )? as usize,
            spool_threshold: match self.spool_threshold {
                0 => None,
                threshold => {
                    Some(in_range("smtp.spool_threshold", threshold, 64 * 1024, 1 << 30)? as usize)
                }
            },
        })
    }
}

// Validation, one `impl` per section in the order `validate` calls them. The first bad key
// is the one reported, so the order is part of the behaviour: keep it when adding a section.

impl RawConfig {
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let RawConfig {
            server,
            smtp,
            tls,
            web,
            delivery,
            mut auth,
            mut outbound,
            submission,
            dns,
            retention,
            encryption,
            key_env,
            privacy,
            addresses,
            domains,
        } = self;
        // The one DNS setting, from `[dns]` or its deprecated aliases (`config::dns`).
        let dns = super::dns::resolve(dns, auth.dns.take(), outbound.dns.take())?;
        let (hostname, data_dir) = server.validate()?;
        let tls = super::tls::validate(tls, smtp.legacy_tls())?;
        let smtp = smtp.validate()?;
        let submission = submission.validate(&smtp, &tls)?;
        let web = web.validate(&tls)?;
        let delivery = delivery.validate()?;
        let auth = auth.validate()?;
        let outbound = outbound.validate(&hostname)?;
        let retention = retention.validate()?;
        let rules = EntryRules {
            max_message_size: smtp.max_message_size,
            require_https: delivery.require_https,
        };
        let domains = validate_domains(domains, rules)?;
        let addresses = validate_addresses(addresses, &domains, rules)?;
        let encryption = encryption.validate(key_env)?;
        let privacy = privacy.validate()?;
        Ok(Config {
            hostname,
            data_dir,
            smtp,
            tls,
            web,
            delivery,
            auth,
            outbound,
            submission,
            dns,
            encryption,
            addresses,
            domains,
            retention,
            privacy,
            dev: None,
        })
    }
}

impl RawEncryption {
    /// `[encryption]`: whether content and secrets are sealed, the key file (default: the
    /// systemd credential, else `/etc/postern/keyring`) and its passphrase.
    fn validate(self, env: KeyEnv) -> Result<EncryptionConfig, ConfigError> {
        let key_file = self.key_file.unwrap_or_else(|| match env.credentials_dir {
            Some(dir) => dir.join("keyring"),
            None => PathBuf::from(DEFAULT_KEY_FILE),
        });
        if key_file.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "encryption.key_file",
                "\"\"",
                "expected the path of the keyring (postern keyring init writes one)",
            ));
        }
        Ok(EncryptionConfig {
            enabled: self.enabled,
            key_file,
            passphrase_file: self.passphrase_file,
            passphrase: env.passphrase,
        })
    }
}

impl RawServer {
    /// `[server]`: the host name and the data directory.
    fn validate(self) -> Result<(String, PathBuf), ConfigError> {
        if !is_host_name(&self.hostname) {
            return Err(ConfigError::invalid(
                "server.hostname",
                quote(&self.hostname),
                "expected a host name such as mx.example.com",
            ));
        }
        Ok((self.hostname, self.data_dir))
    }
}

impl RawSmtp {
    /// `[smtp]`: the listener, its limits and its STARTTLS certificate.
    fn validate(self) -> Result<SmtpConfig, ConfigError> {
        let abuse = self.abuse_limits()?;
        Ok(SmtpConfig {
            abuse,
            listen: socket_addr("smtp.listen", &self.listen)?,
            max_connections: in_range("smtp.max_connections", self.max_connections, 1, 100_000)?
                as usize,
            max_message_size: in_range(
                "smtp.max_message_size",
                self.max_message_size,
                1024,
                1024 * 1024 * 1024,
            )? as usize,
            max_recipients: in_range("smtp.max_recipients", self.max_recipients, 1, 1000)? as usize,
            // RFC 5321 §4.5.3.1.6: 1000 octets including CRLF; allow some tolerance upwards.
            max_line_length: in_range("smtp.max_line_length", self.max_line_length, 1000, 65_536)?
                as usize,
            max_errors: in_range("smtp.max_errors", self.max_errors, 1, 1000)? as u32,
            command_timeout: seconds(
                "smtp.command_timeout_secs",
                self.command_timeout_secs,
                1,
                3600,
            )?,
            data_timeout: seconds("smtp.data_timeout_secs", self.data_timeout_secs, 1, 3600)?,
            size_exceeded_message: one_line(
                "smtp.size_exceeded_message",
                self.size_exceeded_message,
            )?,
            shutdown_grace: seconds(
                "smtp.shutdown_grace_secs",
                self.shutdown_grace_secs,
                0,
                3600,
            )?,
        })
    }

    /// The older certificate keys, which `[tls]` replaces.
    fn legacy_tls(&self) -> LegacySmtpKeys {
        LegacySmtpKeys {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            self_signed: self.tls_self_signed,
        }
    }
}

impl RawSubmission {
    /// `[submission]`: its STARTTLS and implicit-TLS listeners, which need a certificate
    /// and addresses of their own.
    fn validate(self, smtp: &SmtpConfig, tls: &TlsConfig) -> Result<SubmissionConfig, ConfigError> {
        let listen = listeners("submission.listen", self.listen)?;
        let tls_listen = listeners("submission.tls_listen", self.tls_listen)?;
        // AUTH is only accepted over TLS: a submission listener without a certificate
        // would refuse every client (design §4.5).
        if (!listen.is_empty() || !tls_listen.is_empty()) && tls.source == CertSource::Off {
            return Err(ConfigError::invalid(
                "tls.mode",
                "\"off\"",
                "submission listeners need a certificate: AUTH is accepted only over TLS",
            ));
        }
        // Port 0 (tests) is a fresh port each time.
        let all: Vec<SocketAddr> = listen.iter().chain(&tls_listen).copied().collect();
        for (i, addr) in all.iter().enumerate() {
            let taken = *addr == smtp.listen || all[..i].contains(addr);
            if taken && addr.port() != 0 {
                return Err(ConfigError::invalid(
                    "submission.listen",
                    addr,
                    "each listener needs its own address (and not smtp.listen's)",
                ));
            }
        }
        Ok(SubmissionConfig { listen, tls_listen })
    }
}

/// A listener key that takes one "IP:PORT" or a list of them.
fn listeners(key: &str, written: RawListen) -> Result<Vec<SocketAddr>, ConfigError> {
    let written = match written {
        RawListen::One(text) => vec![text],
        RawListen::Many(list) => list,
    };
    written.iter().map(|text| socket_addr(key, text)).collect()
}

impl RawWeb {
    /// `[web]`: the dashboard's listener (HTTPS with a certificate source), its sessions and
    /// its sign-in providers.
    fn validate(self, tls: &TlsConfig) -> Result<WebConfig, ConfigError> {
        let listen = socket_addr("web.listen", &self.listen)?;
        let https = self.https.unwrap_or(tls.https_by_default());
        if https && tls.source == CertSource::Off {
            return Err(ConfigError::invalid(
                "web.https",
                "true",
                "HTTPS needs a certificate: set [tls] mode = \"acme\", \"files\" or \"self-signed\"",
            ));
        }
        if !https {
            plain_http(listen, self.allow_plain_http)?;
        }
        let http_listen = self
            .http_listen
            .as_deref()
            .map(|text| socket_addr("web.http_listen", text))
            .transpose()?;
        if http_listen.is_some() && !https {
            return Err(ConfigError::invalid(
                "web.http_listen",
                format!("{:?}", self.http_listen.unwrap_or_default()),
                "the port-80 listener only redirects to HTTPS and answers ACME: it needs \
                 web.listen to serve HTTPS ([tls])",
            ));
        }
        if let CertSource::Acme(acme) = &tls.source
            && acme.challenge == super::tls::AcmeChallenge::Http01
            && http_listen.is_none()
        {
            return Err(ConfigError::invalid(
                "tls.challenge",
                "\"http-01\"",
                "HTTP-01 is answered on port 80: set [web] http_listen = \"0.0.0.0:80\" \
                 (or use challenge = \"tls-alpn-01\" on the HTTPS listener)",
            ));
        }
        let (session_idle, session_lifetime) = self.sessions()?;
        let limits = self.listener_limits()?;
        let public_url = self
            .public_url
            .as_deref()
            .map(super::oidc::public_url)
            .transpose()?;
        let oidc = validate_oidc(self.oidc)?;
        // The providers send the browser back to a URL they were told in advance: on loopback
        // it can follow the browser's (loopback) Host; anywhere else it must be configured.
        if !oidc.is_empty() && public_url.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "web.public_url",
                "(missing)",
                "[[web.oidc]] needs the URL browsers reach Postern at, e.g. https://postern.example.com",
            ));
        }
        Ok(WebConfig {
            listen,
            // A loopback listener is reached over plain HTTP (an SSH tunnel) or through a
            // proxy on the same host; anything else should be HTTPS by the time a browser
            // sees it.
            secure_cookies: self
                .secure_cookies
                .unwrap_or(https || !listen.ip().is_loopback()),
            https,
            http_listen,
            session_idle,
            session_lifetime,
            require_totp: self.require_totp,
            public_url,
            oidc,
            header_read_timeout: limits.0,
            max_connections_per_ip: limits.1,
            max_connections: limits.2,
            allow_plain_http: self.allow_plain_http,
        })
    }

    /// The idle and the total session limits; idle cannot be the longer.
    fn sessions(&self) -> Result<(Duration, Duration), ConfigError> {
        let idle = seconds("web.session_idle_secs", self.session_idle_secs, 60, 86_400)?;
        let lifetime = seconds(
            "web.session_lifetime_secs",
            self.session_lifetime_secs,
            300,
            30 * 86_400,
        )?;
        if idle > lifetime {
            return Err(ConfigError::invalid(
                "web.session_idle_secs",
                self.session_idle_secs,
                format!(
                    "must not exceed web.session_lifetime_secs ({})",
                    self.session_lifetime_secs
                ),
            ));
        }
        Ok((idle, lifetime))
    }

    /// The listener's limits: header deadline, connections per client address and in all.
    fn listener_limits(&self) -> Result<(Duration, usize, usize), ConfigError> {
        let header_read_timeout = seconds(
            "web.header_read_timeout_secs",
            self.header_read_timeout_secs,
            1,
            600,
        )?;
        let total = in_range("web.max_connections", self.max_connections, 1, 1_000_000)?;
        let per_ip = in_range(
            "web.max_connections_per_ip",
            self.max_connections_per_ip,
            1,
            1_000_000,
        )?;
        // A per-address cap above the total would never apply; say so rather than ignore it.
        if per_ip > total {
            return Err(ConfigError::invalid(
                "web.max_connections_per_ip",
                per_ip,
                format!("must not exceed web.max_connections ({total})"),
            ));
        }
        Ok((header_read_timeout, per_ip as usize, total as usize))
    }
}

/// The web listener serves plain HTTP: off loopback only behind a TLS proxy, which
/// `web.allow_plain_http` vouches for.
fn plain_http(listen: SocketAddr, allow_plain_http: bool) -> Result<(), ConfigError> {
    if listen.ip().is_loopback() || allow_plain_http {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "web.listen",
        listen,
        "serves plain HTTP to the network, so passwords and API tokens would cross it in \
         clear: put it on loopback behind a TLS proxy, or set [web] allow_plain_http = true \
         if a TLS proxy in front of it terminates HTTPS",
    ))
}

/// `[[web.oidc]]`: each entry, and names that differ (they are part of the URLs).
fn validate_oidc(specs: Vec<super::oidc::OidcSpec>) -> Result<Vec<OidcProvider>, ConfigError> {
    let oidc = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| super::oidc::validate(i, spec))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    for (i, provider) in oidc.iter().enumerate() {
        if let Some(j) = oidc[..i].iter().position(|p| p.name == provider.name) {
            return Err(ConfigError::invalid(
                format!("web.oidc[{i}].name"),
                quote(&provider.name),
                format!("already configured as web.oidc[{j}]; names must differ"),
            ));
        }
    }
    Ok(oidc)
}

impl RawDelivery {
    /// `[delivery]`: the bounds on each webhook POST, where it may go, the roots it trusts.
    fn validate(self) -> Result<DeliveryConfig, ConfigError> {
        let extra_roots = match &self.extra_ca_file {
            Some(path) => super::ca_file::extra_roots("delivery.extra_ca_file", path)?,
            None => Vec::new(),
        };
        Ok(DeliveryConfig {
            queue_expiry: Duration::from_secs(
                3600 * in_range(
                    "delivery.queue_expiry_hours",
                    self.queue_expiry_hours,
                    1,
                    720,
                )?,
            ),
            follow_cross_origin_redirects: self.follow_cross_origin_redirects,
            require_https: self.require_https,
            extra_ca_file: self.extra_ca_file,
            extra_roots,
            timeout: seconds("delivery.timeout_secs", self.timeout_secs, 1, 600)?,
            connect_timeout: seconds(
                "delivery.connect_timeout_secs",
                self.connect_timeout_secs,
                1,
                600,
            )?,
        })
    }
}

impl RawAuth {
    /// `[auth]`: SPF and its bound (the DNS servers are `[dns]`'s).
    fn validate(self) -> Result<AuthSettings, ConfigError> {
        Ok(AuthSettings {
            spf: self.spf,
            timeout: seconds("auth.timeout_secs", self.timeout_secs, 1, 60)?,
        })
    }
}

impl RawRetention {
    /// `[retention]`: days, each from 1 to 100 years.
    fn validate(self) -> Result<Retention, ConfigError> {
        let days = |key: &str, value: u64| -> Result<u32, ConfigError> {
            let value = in_range(&format!("retention.{key}"), value, 1, MAX_RETENTION_DAYS)?;
            Ok(u32::try_from(value).expect("at most 36500"))
        };
        Ok(Retention {
            inbound_metadata_days: days("inbound_metadata_days", self.inbound_metadata_days)?,
            outbound_metadata_days: days("outbound_metadata_days", self.outbound_metadata_days)?,
            content: ContentRule::Days(days("content_days", self.content_days)?),
            audit_days: days("audit_days", self.audit_days)?,
            tracking_days: days("tracking_days", self.tracking_days)?,
        })
    }
}

impl RawOutbound {
    /// `[outbound]`: the queue and MX delivery; EHLO defaults to `hostname`.
    fn validate(self, hostname: &str) -> Result<OutboundConfig, ConfigError> {
        let tracking_url = self.tracking_url.map(tracking_base).transpose()?;
        Ok(OutboundConfig {
            expiry: Duration::from_secs(
                3600 * in_range("outbound.expiry_hours", self.expiry_hours, 1, 24 * 30)?,
            ),
            deliver: self.deliver,
            port: in_range("outbound.port", self.port, 1, 65_535)? as u16,
            mta_sts_port: in_range("outbound.mta_sts_port", self.mta_sts_port, 1, 65_535)? as u16,
            helo_name: helo_name(self.helo_name, hostname)?,
            max_connections: in_range("outbound.max_connections", self.max_connections, 1, 10_000)?
                as usize,
            max_per_domain: in_range("outbound.max_per_domain", self.max_per_domain, 1, 1000)?
                as usize,
            require_tls: require_tls(&self.require_tls)?,
            timeout: seconds("outbound.timeout_secs", self.timeout_secs, 1, 3600)?,
            relay: self.relay.as_deref().map(relay_url).transpose()?,
            extra_roots: match &self.extra_ca_file {
                Some(path) => super::ca_file::extra_roots("outbound.extra_ca_file", path)?,
                None => Vec::new(),
            },
            extra_ca_file: self.extra_ca_file,
            tracking_url,
        })
    }
}

/// `outbound.tracking_url`: an http(s) base URL recipients' mail programs can fetch, stored
/// without its trailing `/`.
fn tracking_base(text: String) -> Result<String, ConfigError> {
    let usable = url::Url::parse(&text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.username().is_empty()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if !usable {
        return Err(ConfigError::invalid(
            "outbound.tracking_url",
            quote(&text),
            "must be an http:// or https:// URL without credentials, query or \
             fragment, e.g. \"https://track.example.com\"",
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// `outbound.helo_name`, or `server.hostname` when unset.
fn helo_name(name: Option<String>, hostname: &str) -> Result<String, ConfigError> {
    match name {
        None => Ok(hostname.to_string()),
        Some(name) if is_host_name(&name) => Ok(name),
        Some(name) => Err(ConfigError::invalid(
            "outbound.helo_name",
            quote(&name),
            "expected a host name such as mx.example.com",
        )),
    }
}

/// `outbound.require_tls`: recipient domains, lower-cased, without a trailing dot.
fn require_tls(domains: &[String]) -> Result<Vec<String>, ConfigError> {
    domains
        .iter()
        .enumerate()
        .map(|(i, domain)| {
            let lower = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if is_host_name(&lower) && lower.contains('.') {
                Ok(lower)
            } else {
                Err(ConfigError::invalid(
                    format!("outbound.require_tls[{i}]"),
                    quote(domain),
                    "expected a recipient domain such as example.com",
                ))
            }
        })
        .collect()
}

/// `[[domain]]`: each entry, each domain once.
fn validate_domains(
    specs: Vec<DomainSpec>,
    rules: EntryRules,
) -> Result<Vec<DomainConfig>, ConfigError> {
    let domains = specs
        .into_iter()
        .enumerate()
        .map(|(i, d)| validate_domain(&format!("domain[{i}]"), d, rules))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    for (i, d) in domains.iter().enumerate() {
        if let Some(j) = domains[..i].iter().position(|e| e.domain == d.domain) {
            return Err(ConfigError::invalid(
                format!("domain[{i}].domain"),
                quote(&d.domain.to_string()),
                format!("already configured as domain[{j}]; each domain may appear once"),
            ));
        }
    }
    Ok(domains)
}

/// `[[address]]`: each entry (unset settings from its `[[domain]]`), each address once.
fn validate_addresses(
    specs: Vec<AddressSpec>,
    domains: &[DomainConfig],
    rules: EntryRules,
) -> Result<Vec<AddressConfig>, ConfigError> {
    let addresses = specs
        .into_iter()
        .enumerate()
        .map(|(i, a)| validate_address(&format!("address[{i}]"), a, domains, rules))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    for (i, a) in addresses.iter().enumerate() {
        if let Some(j) = addresses[..i].iter().position(|b| b.pattern == a.pattern) {
            return Err(ConfigError::invalid(
                format!("address[{i}].address"),
                quote(&a.pattern.to_string()),
                format!("already configured as address[{j}]; each address may appear once"),
            ));
        }
    }
    Ok(addresses)
}

/// What the validation of a `[[address]]` or `[[domain]]` needs from the rest of the config
/// (the config file and the addresses and domains API apply the same).
#[derive(Debug, Clone, Copy)]
pub struct EntryRules {
    /// `smtp.max_message_size`: an address's own limit may only be lower.
    pub max_message_size: usize,
    /// `delivery.require_https`: no plain `http://` target or callback off loopback.
    pub require_https: bool,
}

impl EntryRules {
    pub fn of(config: &Config) -> EntryRules {
        EntryRules {
            max_message_size: config.smtp.max_message_size,
            require_https: config.delivery.require_https,
        }
    }
}

fn parse_target(key: &str, text: &str, rules: EntryRules) -> Result<TargetUrl, ConfigError> {
    // The raw value may hold a password: errors show the masked form only.
    let target = TargetUrl::parse(text)
        .map_err(|allowed| ConfigError::invalid(key, TargetUrl::mask_str(text), allowed))?;
    if rules.require_https && super::in_clear(target.expose()) {
        return Err(ConfigError::invalid(
            key,
            TargetUrl::mask_str(text),
            super::HTTPS_REQUIRED,
        ));
    }
    Ok(target)
}

fn parse_format(key: &str, text: &str) -> Result<Format, ConfigError> {
    Format::parse(text).map_err(|allowed| ConfigError::invalid(key, quote(text), allowed))
}

/// Validates one `[[domain]]`; errors name `{entry}.{field}`. The config file and the
/// domains API both come through here.
pub fn validate_domain(
    entry: &str,
    raw: DomainSpec,
    rules: EntryRules,
) -> Result<DomainConfig, ConfigError> {
    let key = |field: &str| format!("{entry}.{field}");
    let domain = DomainPattern::parse(&raw.domain)
        .map_err(|allowed| ConfigError::invalid(key("domain"), quote(&raw.domain), allowed))?;
    let auth_regex = raw
        .auth_regex
        .map(|pattern| {
            // Anchored and case-insensitive: it must describe the whole address (contract §4.3).
            regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    ConfigError::invalid(
                        key("auth_regex"),
                        quote(&pattern),
                        format!("not a valid regular expression: {e}"),
                    )
                })
        })
        .transpose()?;
    Ok(DomainConfig {
        domain,
        auth_regex,
        target: raw
            .target
            .map(|t| parse_target(&key("target"), &t, rules))
            .transpose()?,
        format: raw
            .format
            .map(|f| parse_format(&key("format"), &f))
            .transpose()?,
        redact: Redaction::parse(&key("redact"), &raw.redact)?,
        delivery: raw
            .delivery
            .map(|d| parse_delivery(&key("delivery"), &d))
            .transpose()?,
    })
}

fn parse_delivery(key: &str, text: &str) -> Result<DeliveryMode, ConfigError> {
    DeliveryMode::parse(text).ok_or_else(|| {
        ConfigError::invalid(key, quote(text), "expected sync (the default) or queued")
    })
}

/// Validates one `[[address]]`; an unset target or format comes from the entry of its
/// domain in `domains`; errors name `{entry}.{field}`. The config file and the addresses API
/// both come through here.
pub fn validate_address(
    entry: &str,
    raw: AddressSpec,
    domains: &[DomainConfig],
    rules: EntryRules,
) -> Result<AddressConfig, ConfigError> {
    let key = |field: &str| format!("{entry}.{field}");
    let pattern = AddressPattern::parse(&raw.address)
        .map_err(|allowed| ConfigError::invalid(key("address"), quote(&raw.address), allowed))?;
    // Unset target and format come from the [[domain]] of the same domain.
    let domain = domains.iter().find(|d| d.domain == pattern.domain);
    let target = match (&raw.target, domain.and_then(|d| d.target.as_ref())) {
        (Some(text), _) => parse_target(&key("target"), text, rules)?,
        (None, Some(inherited)) => inherited.clone(),
        (None, None) => {
            return Err(ConfigError::invalid(
                key("target"),
                "(missing)",
                format!(
                    "set a target URL, or a target in a [[domain]] for {}",
                    pattern.domain
                ),
            ));
        }
    };
    let format = match (&raw.format, domain.and_then(|d| d.format)) {
        (Some(text), _) => parse_format(&key("format"), text)?,
        (None, Some(inherited)) => inherited,
        (None, None) => DEFAULT_FORMAT,
    };
    let delivery = match (&raw.delivery, domain.and_then(|d| d.delivery)) {
        (Some(text), _) => parse_delivery(&key("delivery"), text)?,
        (None, Some(inherited)) => inherited,
        (None, None) => DeliveryMode::Sync,
    };
    let mut options = address_options(key, raw, rules)?;
    options.delivery = delivery;
    if let Some(domain) = domain {
        options.redact = options.redact.union(&domain.redact);
    }
    Ok(AddressConfig {
        pattern,
        target,
        format,
        options,
    })
}

/// The optional settings of one `[[address]]`; `key` names a field of the entry.
fn address_options(
    key: impl Fn(&str) -> String,
    raw: AddressSpec,
    rules: EntryRules,
) -> Result<AddressOptions, ConfigError> {
    let global_max_size = rules.max_message_size;
    Ok(AddressOptions {
        timeout: raw
            .timeout_secs
            .map(|secs| seconds(&key("timeout_secs"), secs, 1, 600))
            .transpose()?,
        max_message_size: raw
            .max_message_size
            .map(|size| in_range(&key("max_message_size"), size, 1024, global_max_size as u64))
            .transpose()?
            .map(|size| size as usize),
        size_exceeded_message: raw
            .size_exceeded_message
            .map(|text| one_line(&key("size_exceeded_message"), text))
            .transpose()?,
        size_as_number: raw.size_as_number,
        html_to_plain: raw.html_to_plain,
        auth_callback: raw
            .auth_callback
            .map(|t| parse_target(&key("auth_callback"), &t, rules))
            .transpose()?,
        error_callback: raw
            .error_callback
            .map(|t| parse_target(&key("error_callback"), &t, rules))
            .transpose()?,
        dkim: raw.dkim,
        dmarc: raw.dmarc,
        redact: Redaction::parse(&key("redact"), &raw.redact)?,
        delivery: DeliveryMode::Sync,
        attachment_store: raw
            .attachment_store
            .map(|name| store_name(&key("attachment_store"), name))
            .transpose()?,
        message_store_format: match (&raw.message_store, raw.message_store_format) {
            (_, None) => MessageStoreFormat::Raw,
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("message_store_format"),
                    "(set)",
                    "needs message_store: the store the message goes to",
                ));
            }
            (Some(_), Some(text)) => MessageStoreFormat::parse(&text).ok_or_else(|| {
                ConfigError::invalid(
                    key("message_store_format"),
                    quote(&text),
                    "expected \"raw\" (the .eml as received) or \"json\" (JSON Normalized)",
                )
            })?,
        },
        message_store: raw
            .message_store
            .map(|name| store_name(&key("message_store"), name))
            .transpose()?,
    })
}

/// The name of an attachment or message store: what `postern store add` accepts.
fn store_name(key: &str, name: String) -> Result<String, ConfigError> {
    match super::valid_store_name(&name) {
        true => Ok(name),
        false => Err(ConfigError::invalid(
            key,
            quote(&name),
            "a store name is 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
        )),
    }
}

fn one_line(key: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() || value.len() > 200 || value.chars().any(|c| c.is_control()) {
        Err(ConfigError::invalid(
            key,
            quote(&value),
            "must be one line of 1 to 200 characters",
        ))
    } else {
        Ok(value)
    }
}

/// Applies `POSTERN_SECTION__KEY=value` variables onto the parsed TOML tree. Values are read
/// as TOML where they parse (numbers, booleans) and as strings otherwise.
pub(super) fn apply_env_overrides(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(path) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_CONFIG.contains(&var.as_str()) {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.len() >= 2 && keys[0] == "web" && keys[1] == "oidc" {
            return Err(ConfigError::Env {
                var,
                message: "[[web.oidc]] can only be set in the config file; \
                          keep its secret out of it with client_secret_file"
                    .into(),
            });
        }
        let [section, key] = keys.as_slice() else {
            return Err(ConfigError::Env {
                var,
                message: "expected POSTERN_SECTION__KEY, e.g. POSTERN_SMTP__LISTEN".into(),
            });
        };
        if section == "address" || section == "domain" {
            return Err(ConfigError::Env {
                var,
                message: "addresses and domains can only be set in the config file".into(),
            });
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let table = tree
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(table) = table.as_table_mut() else {
            return Err(ConfigError::Env {
                var,
                message: format!("[{section}] is not a section"),
            });
        };
        table.insert(key.clone(), parsed);
    }
    Ok(())
}
