//! Sending domains: the domains apps send from. Each has a DKIM key made by Postern and a
//! return-path domain (default `mta.<domain>`) whose MX points at Postern so bounces come
//! back; `dns_records` lists what the operator publishes (contract §6.10).

use serde::Serialize;

use super::Outbound;
use super::dkim::{self, Algorithm, DkimError};
use crate::secret;
use crate::store::{SendingDomainRow, StoreError};

/// A sending domain as shown: never the private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendingDomain {
    pub domain: String,
    pub return_path_domain: String,
    pub dkim_selector: String,
    pub dkim_algorithm: String,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    /// What to publish in DNS, for `server_hostname`.
    pub dns_records: Vec<DnsRecord>,
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    pub name: String,
    /// `TXT` or `MX`.
    pub kind: &'static str,
    pub value: String,
    /// What it is for, in a few words.
    pub purpose: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0:?} is not a domain name like example.com")]
    BadDomain(String),
    #[error("{0} is a sending domain already")]
    Exists(String),
    #[error(transparent)]
    Dkim(#[from] DkimError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The records for `row`: DKIM key, return-path MX and SPF, and a DMARC starting point.
/// `server_hostname` is this Postern's name (`server.hostname`): bounces go to it and mail
/// leaves from it.
pub fn dns_records(row: &SendingDomainRow, server_hostname: &str) -> Vec<DnsRecord> {
    vec![
        DnsRecord {
            name: dkim::record_name(row),
            kind: "TXT",
            value: dkim::txt_record(row),
            purpose: "DKIM: receivers verify Postern's signature with this key",
        },
        DnsRecord {
            name: row.return_path_domain.clone(),
            kind: "MX",
            value: format!("10 {server_hostname}."),
            purpose: "return path: bounces come back to Postern",
        },
        DnsRecord {
            name: row.return_path_domain.clone(),
            kind: "TXT",
            value: format!("v=spf1 a:{server_hostname} ~all"),
            purpose: "SPF for the envelope sender (bounces+…@return path)",
        },
        DnsRecord {
            name: format!("_dmarc.{}", row.domain),
            kind: "TXT",
            value: "v=DMARC1; p=none; aspf=r; adkim=r".into(),
            purpose: "DMARC (optional): start with p=none, tighten later",
        },
    ]
}

impl SendingDomain {
    fn from_row(row: &SendingDomainRow, server_hostname: &str) -> SendingDomain {
        SendingDomain {
            domain: row.domain.clone(),
            return_path_domain: row.return_path_domain.clone(),
            dkim_selector: row.dkim_selector.clone(),
            dkim_algorithm: row.dkim_algorithm.clone(),
            created_at: row.created_at,
            dns_records: dns_records(row, server_hostname),
        }
    }
}

impl Outbound {
    /// Adds a sending domain with a new DKIM key. `return_path` defaults to `mta.<domain>`.
    pub async fn add_sending_domain(
        &self,
        domain: &str,
        algorithm: Algorithm,
        return_path: Option<&str>,
        server_hostname: &str,
    ) -> Result<SendingDomain, DomainError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !crate::dns::is_domain_name(&domain) {
            return Err(DomainError::BadDomain(domain));
        }
        let return_path = match return_path {
            Some(name) => name.trim().trim_end_matches('.').to_ascii_lowercase(),
            None => format!("mta.{domain}"),
        };
        if !crate::dns::is_domain_name(&return_path) {
            return Err(DomainError::BadDomain(return_path));
        }
        // RSA key generation takes a moment; keep it off the async threads.
        let (private, public) = tokio::task::spawn_blocking(move || dkim::generate(algorithm))
            .await
            .map_err(StoreError::from)??;
        let selector = format!("pst{}", &secret::sha256_hex(&secret::new_token())[..8]);
        let row = SendingDomainRow {
            id: 0,
            domain: domain.clone(),
            return_path_domain: return_path,
            dkim_selector: selector,
            dkim_algorithm: algorithm.as_str().into(),
            dkim_private_key: private,
            dkim_public_key: public,
            created_at: self.clock.unix(),
        };
        let row = self
            .store
            .insert_sending_domain(row)
            .await?
            .ok_or(DomainError::Exists(domain))?;
        Ok(SendingDomain::from_row(&row, server_hostname))
    }

    pub async fn sending_domains(
        &self,
        server_hostname: &str,
    ) -> Result<Vec<SendingDomain>, StoreError> {
        Ok(self
            .store
            .sending_domains()
            .await?
            .iter()
            .map(|row| SendingDomain::from_row(row, server_hostname))
            .collect())
    }

    /// Removes a sending domain and its key; false when there was none. Mail already
    /// queued from it goes out unsigned.
    pub async fn remove_sending_domain(&self, domain: &str) -> Result<bool, StoreError> {
        self.store
            .delete_sending_domain(&domain.trim().to_ascii_lowercase())
            .await
    }
}
