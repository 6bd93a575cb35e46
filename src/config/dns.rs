//! `[dns] servers`: the one setting for the DNS servers every lookup asks (SPF, DKIM and
//! DMARC of inbound mail, MX lookups of outbound delivery, the sending-domain check).
//!
//! `[auth] dns` and `[outbound] dns`, which once chose the servers of one side each, are
//! deprecated aliases: when `[dns] servers` is absent they apply to every lookup; values
//! that disagree (with each other or with `[dns] servers`) are a config error naming the
//! keys, since no one answer would honour both. `postern check` warns for each alias used.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;
use super::raw::{RawDns, dns_servers};

/// `[dns]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDnsSection {
    /// "system", or a list of "IP:PORT" (a single string is a list of one).
    servers: Option<RawDns>,
}

/// The DNS servers every lookup asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsConfig {
    /// `None`: the system resolver (`/etc/resolv.conf`); otherwise these servers only.
    pub servers: Option<Vec<SocketAddr>>,
    /// The deprecated keys this config used (`auth.dns`, `outbound.dns`).
    pub deprecated: Vec<&'static str>,
}

/// The key that replaces the deprecated ones.
pub const DNS_KEY: &str = "dns.servers";

impl DnsConfig {
    /// One line per deprecated key used, for `postern check`.
    pub fn warnings(&self) -> Vec<String> {
        self.deprecated
            .iter()
            .map(|key| {
                let (section, name) = key.split_once('.').unwrap_or(("", key));
                format!("[{section}] {name} is deprecated; use [dns] servers instead")
            })
            .collect()
    }
}

/// `[dns] servers`, or else the deprecated `[auth] dns` / `[outbound] dns`.
pub(super) fn resolve(
    section: RawDnsSection,
    auth: Option<RawDns>,
    outbound: Option<RawDns>,
) -> Result<DnsConfig, ConfigError> {
    let mut set: Vec<(&'static str, Option<Vec<SocketAddr>>)> = Vec::new();
    for (key, raw) in [
        (DNS_KEY, section.servers),
        ("auth.dns", auth),
        ("outbound.dns", outbound),
    ] {
        if let Some(raw) = raw {
            set.push((key, dns_servers(key, raw)?));
        }
    }
    if let Some((first, servers)) = set.first()
        && let Some((other, _)) = set.iter().find(|(_, s)| s != servers)
    {
        return Err(ConfigError::invalid(
            format!("{first} and {other}"),
            "different servers",
            format!("set only {DNS_KEY} ({first} and {other} are the same setting)"),
        ));
    }
    Ok(DnsConfig {
        deprecated: set
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| *key != DNS_KEY)
            .collect(),
        servers: set.into_iter().next().and_then(|(_, servers)| servers),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn dns(toml: &str) -> Result<super::DnsConfig, ConfigError> {
        Config::from_toml(toml, Vec::new()).map(|config| config.dns)
    }

    #[test]
    fn the_system_resolver_unless_servers_are_named() {
        let default = dns("").unwrap();
        assert_eq!(default.servers, None);
        assert!(default.deprecated.is_empty() && default.warnings().is_empty());
        let named = dns("[dns]\nservers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n").unwrap();
        assert_eq!(
            named.servers,
            Some(vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ])
        );
        assert_eq!(dns("[dns]\nservers = \"system\"\n").unwrap().servers, None);
        let one = dns("[dns]\nservers = \"127.0.0.1:53\"\n").unwrap();
        assert_eq!(one.servers, Some(vec!["127.0.0.1:53".parse().unwrap()]));
    }

    #[test]
    fn the_old_keys_apply_everywhere_with_a_warning() {
        for (toml, key) in [
            ("[auth]\ndns = [\"127.0.0.1:5353\"]\n", "auth.dns"),
            ("[outbound]\ndns = \"127.0.0.1:5353\"\n", "outbound.dns"),
        ] {
            let config = dns(toml).unwrap();
            assert_eq!(
                config.servers,
                Some(vec!["127.0.0.1:5353".parse().unwrap()])
            );
            assert_eq!(config.deprecated, [key]);
            let warning = &config.warnings()[0];
            assert!(
                warning.contains(&format!("[{}] dns is deprecated", &key[..key.len() - 4]))
                    && warning.contains("[dns] servers"),
                "{warning}"
            );
        }
        // Agreeing values are fine, each still warned about.
        let both = dns(
            "[dns]\nservers = \"system\"\n[auth]\ndns = \"system\"\n[outbound]\ndns = \"system\"\n",
        )
        .unwrap();
        assert_eq!(both.servers, None);
        assert_eq!(both.deprecated, ["auth.dns", "outbound.dns"]);
    }

    #[test]
    fn disagreeing_keys_are_an_error_naming_them() {
        for (toml, keys) in [
            (
                "[auth]\ndns = \"127.0.0.1:53\"\n[outbound]\ndns = \"system\"\n",
                "auth.dns and outbound.dns",
            ),
            (
                "[dns]\nservers = \"127.0.0.1:53\"\n[outbound]\ndns = \"127.0.0.2:53\"\n",
                "dns.servers and outbound.dns",
            ),
            (
                "[dns]\nservers = \"system\"\n[auth]\ndns = [\"127.0.0.1:53\"]\n",
                "dns.servers and auth.dns",
            ),
        ] {
            let error = dns(toml).unwrap_err().to_string();
            assert!(
                error.starts_with(keys) && error.contains("set only dns.servers"),
                "{error}"
            );
        }
        let error = dns("[dns]\nservers = []\n").unwrap_err().to_string();
        assert!(error.starts_with("dns.servers = []"), "{error}");
        let error = dns("[dns]\nservers = \"nameserver\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("dns.servers"), "{error}");
    }
}
