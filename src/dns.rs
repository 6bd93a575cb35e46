//! The one DNS resolver set-up, for every lookup Postern makes: SPF, DKIM and DMARC of
//! inbound mail (`inbound::verify`, through mail-auth), the MX lookup of outbound delivery
//! (`outbound::mx`) and the sending-domain check (`outbound::dns_check`).
//!
//! One setting chooses the servers for all of them (`[dns] servers`, see `config`): the
//! machine's resolver configuration (`/etc/resolv.conf`) or exactly the named servers,
//! plain DNS over UDP then TCP, on any port (tests run a DNS server on loopback). Each
//! caller bounds its queries with its own timeout. mail-auth re-exports the same
//! hickory-resolver this module uses, so its parts fit both.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::system_conf::read_system_conf;

/// The resolver and the answer types its callers read (MX and TXT records, network errors):
/// hickory-resolver is named only here, so its version changes in one place.
pub use hickory_resolver::TokioResolver;
pub use hickory_resolver::net::NetError;
pub use hickory_resolver::proto::rr::{Name, RData};

/// Which DNS servers are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverChoice {
    /// The machine's resolver configuration (`/etc/resolv.conf`).
    System,
    /// Plain DNS (UDP, then TCP for long answers) to exactly these servers, on any port.
    Servers(Vec<SocketAddr>),
}

impl ResolverChoice {
    /// The config's form: `None` is the system resolver.
    pub fn from_config(servers: Option<&[SocketAddr]>) -> ResolverChoice {
        match servers {
            Some(servers) => ResolverChoice::Servers(servers.to_vec()),
            None => ResolverChoice::System,
        }
    }
}

/// Why no resolver could be built (at startup, or for one sending-domain check). Lookups
/// themselves fail through the caller's own error types.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read the system DNS configuration: {reason}")]
    SystemConfig { reason: String },
    #[error("no DNS servers given")]
    NoServers,
    #[error("cannot build the DNS resolver: {reason}")]
    Build { reason: String },
}

/// The resolver configuration `choice` asks for, each query bounded by `timeout`: the
/// machine's, or exactly the named servers (and then never the hosts file).
pub fn resolver_parts(
    choice: &ResolverChoice,
    timeout: Duration,
) -> Result<(ResolverConfig, ResolverOpts), ResolverError> {
    let (config, mut options) = match choice {
        ResolverChoice::System => read_system_conf().map_err(|e| ResolverError::SystemConfig {
            reason: e.to_string(),
        })?,
        ResolverChoice::Servers(addresses) => {
            if addresses.is_empty() {
                return Err(ResolverError::NoServers);
            }
            let servers = addresses.iter().map(name_server).collect();
            let mut options = ResolverOpts::default();
            // Only the named servers answer: /etc/hosts must not shadow their zone.
            options.use_hosts_file = ResolveHosts::Never;
            (ResolverConfig::from_parts(None, vec![], servers), options)
        }
    };
    options.timeout = timeout;
    Ok((config, options))
}

/// A tokio resolver from [`resolver_parts`]; `cache: false` for a check that must see
/// what is published now, not an answer cached before.
pub fn resolver(
    choice: &ResolverChoice,
    timeout: Duration,
    cache: bool,
) -> Result<TokioResolver, ResolverError> {
    let (config, mut options) = resolver_parts(choice, timeout)?;
    if !cache {
        options.cache_size = 0;
    }
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| ResolverError::Build {
            reason: e.to_string(),
        })
}

/// The TXT records at `name` (a fully qualified name), each record's strings joined; none for
/// NXDOMAIN or NODATA.
pub async fn txt_records(resolver: &TokioResolver, name: &str) -> Result<Vec<String>, NetError> {
    match resolver.txt_lookup(name).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(error) if error.is_no_records_found() => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// The servers the machine's resolver asks (`/etc/resolv.conf`): what `ResolverChoice::System`
/// and every lookup of a host name outside this module (`getaddrinfo`) reach.
pub fn system_servers() -> Result<Vec<SocketAddr>, ResolverError> {
    let (config, _) = read_system_conf().map_err(|e| ResolverError::SystemConfig {
        reason: e.to_string(),
    })?;
    let mut servers: Vec<SocketAddr> = Vec::new();
    for server in config.name_servers() {
        for connection in &server.connections {
            let address = SocketAddr::new(server.ip, connection.port);
            if !servers.contains(&address) {
                servers.push(address);
            }
        }
    }
    Ok(servers)
}

/// One named server, UDP and TCP on its own port.
/// Whether `name` is a domain name of letters, digits and hyphens: at least two labels of
/// 1–63 characters, none starting or ending with `-`, 253 characters at most (RFC 1035 §2.3.1;
/// no trailing dot, any case).
pub fn is_domain_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether host name `name` matches `pattern`: equal, or — for a `*.rest` pattern — one
/// non-empty label followed by `rest` (`*.example.com` matches `mx.example.com`, not
/// `a.b.example.com` nor `example.com`), the one-label wildcard of certificates (RFC 6125)
/// and MTA-STS `mx` lines (RFC 8461). Case and a trailing dot do not matter.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let pattern = pattern.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(first, others)| !first.is_empty() && others.eq_ignore_ascii_case(rest)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

fn name_server(address: &SocketAddr) -> NameServerConfig {
    let mut server = NameServerConfig::udp_and_tcp(address.ip());
    for connection in &mut server.connections {
        connection.port = address.port();
    }
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_letters_digits_and_inner_hyphens() {
        assert!(is_domain_name("mx-1.Example.com"));
        assert!(is_domain_name("x-1.example"));
        assert!(!is_domain_name(""));
        assert!(!is_domain_name("a b.com"));
        assert!(!is_domain_name("localhost"));
        assert!(!is_domain_name("-mx.example.com"));
        assert!(!is_domain_name("mx..example.com"));
        assert!(!is_domain_name("mx_1.example.com"));
        assert!(!is_domain_name(&format!("{}.com", "a".repeat(64))));
        assert!(!is_domain_name(&format!("{}com", "abc.".repeat(63))));
    }

    #[test]
    fn a_wildcard_matches_exactly_one_label() {
        assert!(name_matches("mx.example.com", "MX.Example.com."));
        assert!(name_matches("*.example.com", "mx.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(!name_matches("mx.example.com", "mx.example.org"));
    }

    #[test]
    fn named_servers_are_the_only_ones_asked() {
        let servers = vec!["127.0.0.1:5353".parse().unwrap()];
        let choice = ResolverChoice::from_config(Some(&servers));
        let (config, options) = resolver_parts(&choice, Duration::from_secs(3)).unwrap();
        assert_eq!(config.name_servers().len(), 1);
        assert!(
            config.name_servers()[0]
                .connections
                .iter()
                .all(|c| c.port == 5353)
        );
        assert_eq!(options.timeout, Duration::from_secs(3));
        assert_eq!(options.use_hosts_file, ResolveHosts::Never);
        assert!(matches!(
            resolver_parts(&ResolverChoice::Servers(vec![]), Duration::from_secs(1)),
            Err(ResolverError::NoServers)
        ));
        assert_eq!(ResolverChoice::from_config(None), ResolverChoice::System);
    }
}
