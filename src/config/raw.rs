//! The serde shape of the config file, its defaults, environment overrides and the one
//! validation pass that turns it into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    AddressConfig, AddressPattern, Config, ConfigError, DeliveryConfig, Format, SmtpConfig,
    TargetUrl, TlsSource, WebConfig,
};

const ENV_PREFIX: &str = "POSTERN_";
/// `POSTERN_*` variables that are not config overrides.
const ENV_NOT_CONFIG: &[&str] = &["POSTERN_LOG", "POSTERN_CONFIG"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    server: RawServer,
    smtp: RawSmtp,
    web: RawWeb,
    delivery: RawDelivery,
    #[serde(rename = "address")]
    addresses: Vec<RawAddress>,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeb {
    listen: String,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            listen: "127.0.0.1:8025".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDelivery {
    timeout_secs: u64,
    connect_timeout_secs: u64,
}

impl Default for RawDelivery {
    fn default() -> Self {
        RawDelivery {
            timeout_secs: 30,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddress {
    address: String,
    target: String,
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "json+n".into()
}

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

fn quote(value: &str) -> String {
    format!("{value:?}")
}

impl RawConfig {
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let RawConfig {
            server,
            smtp,
            web,
            delivery,
            addresses,
        } = self;

        if server.hostname.is_empty()
            || !server
                .hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(ConfigError::invalid(
                "server.hostname",
                quote(&server.hostname),
                "expected a host name such as mx.example.com",
            ));
        }

        let tls = match (smtp.tls_cert, smtp.tls_key, smtp.tls_self_signed) {
            (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
            (None, None, true) => TlsSource::SelfSigned,
            (None, None, false) => TlsSource::Off,
            (Some(_), Some(_), true) => {
                return Err(ConfigError::invalid(
                    "smtp.tls_self_signed",
                    "true",
                    "set either tls_cert + tls_key or tls_self_signed, not both",
                ));
            }
            (Some(cert), None, _) => {
                return Err(ConfigError::invalid(
                    "smtp.tls_key",
                    "(missing)",
                    format!("tls_cert = {cert:?} needs tls_key too"),
                ));
            }
            (None, Some(key), _) => {
                return Err(ConfigError::invalid(
                    "smtp.tls_cert",
                    "(missing)",
                    format!("tls_key = {key:?} needs tls_cert too"),
                ));
            }
        };

        let smtp = SmtpConfig {
            listen: socket_addr("smtp.listen", &smtp.listen)?,
            max_connections: in_range("smtp.max_connections", smtp.max_connections, 1, 100_000)?
                as usize,
            max_message_size: in_range(
                "smtp.max_message_size",
                smtp.max_message_size,
                1024,
                1024 * 1024 * 1024,
            )? as usize,
            max_recipients: in_range("smtp.max_recipients", smtp.max_recipients, 1, 1000)? as usize,
            // RFC 5321 §4.5.3.1.6: 1000 octets including CRLF; allow some tolerance upwards.
            max_line_length: in_range("smtp.max_line_length", smtp.max_line_length, 1000, 65_536)?
                as usize,
            max_errors: in_range("smtp.max_errors", smtp.max_errors, 1, 1000)? as u32,
            command_timeout: Duration::from_secs(in_range(
                "smtp.command_timeout_secs",
                smtp.command_timeout_secs,
                1,
                3600,
            )?),
            data_timeout: Duration::from_secs(in_range(
                "smtp.data_timeout_secs",
                smtp.data_timeout_secs,
                1,
                3600,
            )?),
            size_exceeded_message: one_line(
                "smtp.size_exceeded_message",
                smtp.size_exceeded_message,
            )?,
            tls,
            shutdown_grace: Duration::from_secs(in_range(
                "smtp.shutdown_grace_secs",
                smtp.shutdown_grace_secs,
                0,
                3600,
            )?),
        };

        let web = WebConfig {
            listen: socket_addr("web.listen", &web.listen)?,
        };

        let delivery = DeliveryConfig {
            timeout: Duration::from_secs(in_range(
                "delivery.timeout_secs",
                delivery.timeout_secs,
                1,
                600,
            )?),
            connect_timeout: Duration::from_secs(in_range(
                "delivery.connect_timeout_secs",
                delivery.connect_timeout_secs,
                1,
                600,
            )?),
        };

        let addresses = addresses
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let key = |field: &str| format!("address[{i}].{field}");
                Ok(AddressConfig {
                    pattern: AddressPattern::parse(&a.address).map_err(|allowed| {
                        ConfigError::invalid(key("address"), quote(&a.address), allowed)
                    })?,
                    target: TargetUrl::parse(&a.target).map_err(|allowed| {
                        // The raw value may hold a password: show the masked form only.
                        ConfigError::invalid(key("target"), TargetUrl::mask_str(&a.target), allowed)
                    })?,
                    format: Format::parse(&a.format).map_err(|allowed| {
                        ConfigError::invalid(key("format"), quote(&a.format), allowed)
                    })?,
                })
            })
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

        Ok(Config {
            hostname: server.hostname,
            data_dir: server.data_dir,
            smtp,
            web,
            delivery,
            addresses,
            dev: None,
        })
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
        let [section, key] = keys.as_slice() else {
            return Err(ConfigError::Env {
                var,
                message: "expected POSTERN_SECTION__KEY, e.g. POSTERN_SMTP__LISTEN".into(),
            });
        };
        if section == "address" {
            return Err(ConfigError::Env {
                var,
                message: "addresses can only be set in the config file".into(),
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
