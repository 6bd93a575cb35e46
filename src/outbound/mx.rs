//! Where mail for a domain goes: its MX hosts by preference (RFC 5321 §5.1), the domain
//! itself when it has no MX (the implicit MX: its A/AAAA records), nowhere for a null MX
//! (RFC 7505, `MX 0 .`).
//!
//! The resolver is built by `crate::dns` from the one `[dns] servers` setting; tests point
//! it at a DNS server on loopback, never at the machine's resolver.

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::{NetError, RData, TokioResolver};

use crate::dns::{self, ResolverChoice, ResolverError};

/// One host to try, with its addresses in the resolver's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// The exchange name without the trailing dot (or the domain, for the implicit MX).
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// Why a domain has no host to deliver to. `is_permanent` decides bounce or retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxError {
    #[error("{0} does not accept mail (null MX, RFC 7505)")]
    NullMx(String),
    #[error("{0} does not exist (NXDOMAIN)")]
    NoSuchDomain(String),
    #[error("{0} has no MX and no address records")]
    NoHosts(String),
    #[error("DNS lookup for {domain} failed: {reason}")]
    Temporary { domain: String, reason: String },
}

impl MxError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, MxError::Temporary { .. })
    }
}

/// The MX resolver, with hickory's answer cache; cheap to clone.
#[derive(Clone)]
pub struct MxResolver {
    resolver: TokioResolver,
}

impl MxResolver {
    /// A resolver for `choice` (`crate::dns`), each query bounded by `timeout`.
    pub fn new(choice: &ResolverChoice, timeout: Duration) -> Result<Self, ResolverError> {
        Ok(MxResolver {
            resolver: dns::resolver(choice, timeout, true)?,
        })
    }

    /// The hosts to try for `domain`, best preference first; hosts without addresses are
    /// left out.
    pub async fn hosts(&self, domain: &str) -> Result<Vec<MxHost>, MxError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let temporary = |e: &NetError| MxError::Temporary {
            domain: domain.to_string(),
            reason: e.to_string(),
        };
        let mut exchanges: Vec<(u16, String)> = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(MxError::NoSuchDomain(domain.to_string())),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(temporary(&e)),
        };
        if exchanges.is_empty() {
            // RFC 5321 §5.1: no MX → the domain itself is the host.
            let addresses = self.addresses(&fqdn).await.map_err(|e| match e {
                Some(e) => temporary(&e),
                None => MxError::NoHosts(domain.to_string()),
            })?;
            return Ok(vec![MxHost {
                name: domain.trim_end_matches('.').to_string(),
                addresses,
            }]);
        }
        if exchanges
            .iter()
            .any(|(_, name)| name == "." || name.is_empty())
        {
            return Err(MxError::NullMx(domain.to_string()));
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        let mut hosts = Vec::with_capacity(exchanges.len());
        let mut last_error = None;
        for (_, name) in exchanges {
            match self.addresses(&name).await {
                Ok(addresses) => hosts.push(MxHost {
                    name: name.trim_end_matches('.').to_string(),
                    addresses,
                }),
                Err(Some(e)) => last_error = Some(temporary(&e)),
                Err(None) => {}
            }
        }
        match (hosts.is_empty(), last_error) {
            (false, _) => Ok(hosts),
            (true, Some(error)) => Err(error),
            (true, None) => Err(MxError::NoHosts(domain.to_string())),
        }
    }

    /// A and AAAA of `name`: `Err(None)` when it has none, `Err(Some)` when DNS failed.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Option<NetError>> {
        match self.resolver.lookup_ip(name).await {
            Ok(lookup) => {
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                if addresses.is_empty() {
                    Err(None)
                } else {
                    Ok(addresses)
                }
            }
            Err(e) if e.is_no_records_found() => Err(None),
            Err(e) => Err(Some(e)),
        }
    }
}
