//! "Does DNS show them?": looks up every record a sending domain asks the operator to
//! publish (`domains::dns_records`) and says, per record, `found`, `missing`, `different`
//! (something else is published there) or `error` (the lookup failed or timed out).
//!
//! The resolver comes from `crate::dns`, set up as for every other lookup (the one
//! `[dns] servers` setting: the machine's resolver or exactly the named servers), and every
//! query is bounded by `[auth] timeout_secs`. A fresh resolver without a cache is built per
//! check, so an answer cached before the operator published a record never hides it. No
//! hickory type crosses this module's edge.

use std::time::Duration;

use crate::dns::{RData, TokioResolver};
use serde::Serialize;

use super::domains::{DnsRecord, SendingDomain};
use crate::dns::{self, ResolverChoice, ResolverError};

/// What DNS shows for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Published as asked (for DKIM: the same key; for SPF: a record with our mechanism;
    /// for the MX: one pointing at this server; for DMARC: one DMARC record).
    Found,
    /// Nothing of this kind at the name.
    Missing,
    /// Something of this kind is there, but not what we ask for.
    Different,
    /// The lookup failed (SERVFAIL, timeout, no server answered).
    Error,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Found => "found",
            RecordStatus::Missing => "missing",
            RecordStatus::Different => "different",
            RecordStatus::Error => "error",
        }
    }
}

/// One record to publish and what DNS shows for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordCheck {
    #[serde(flatten)]
    pub record: DnsRecord,
    pub status: RecordStatus,
    /// The records of this kind DNS answered at the name (TXT strings joined), as published.
    pub published: Vec<String>,
    /// Why the lookup failed, for `error`.
    pub error: Option<String>,
}

/// Looks records up with the `[dns] servers` resolver configuration.
#[derive(Debug, Clone)]
pub struct DnsCheck {
    resolver: ResolverChoice,
    timeout: Duration,
}

/// Which rule compares a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Dkim,
    Spf,
    Mx,
    Dmarc,
}

fn rule(record: &DnsRecord) -> Rule {
    if record.kind == "MX" {
        Rule::Mx
    } else if record.name.starts_with("_dmarc.") {
        Rule::Dmarc
    } else if record.name.contains("._domainkey.") {
        Rule::Dkim
    } else {
        Rule::Spf
    }
}

impl DnsCheck {
    pub fn new(resolver: ResolverChoice, timeout: Duration) -> DnsCheck {
        DnsCheck { resolver, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every record of `domain`, in its order. Fails only when no resolver can be built
    /// (e.g. no readable `/etc/resolv.conf`); lookup failures are `RecordStatus::Error`.
    pub async fn verify(&self, domain: &SendingDomain) -> Result<Vec<RecordCheck>, ResolverError> {
        let resolver = dns::resolver(&self.resolver, self.timeout, false)?;
        let mut checks = Vec::with_capacity(domain.dns_records.len());
        for record in &domain.dns_records {
            let answer = match rule(record) {
                Rule::Mx => self.mx(&resolver, &record.name).await,
                _ => self.txt(&resolver, &record.name).await,
            };
            checks.push(match answer {
                Ok(published) => RecordCheck {
                    status: compare(rule(record), &record.value, &published),
                    published: relevant(rule(record), published),
                    record: record.clone(),
                    error: None,
                },
                Err(error) => RecordCheck {
                    record: record.clone(),
                    status: RecordStatus::Error,
                    published: Vec::new(),
                    error: Some(error),
                },
            });
        }
        Ok(checks)
    }

    /// The TXT records at `name`, each record's strings joined; none for NXDOMAIN/NODATA.
    async fn txt(&self, resolver: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
        tokio::time::timeout(self.timeout, dns::txt_records(resolver, &fqdn(name)))
            .await
            .map_err(|_| "no answer in time".to_string())?
            .map_err(|error| error.to_string())
    }

    /// The MX records at `name` as `preference exchange.`; none for NXDOMAIN/NODATA.
    async fn mx(&self, resolver: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
        let lookup = tokio::time::timeout(self.timeout, resolver.mx_lookup(fqdn(name)))
            .await
            .map_err(|_| "no answer in time".to_string())?;
        match lookup {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some(format!("{} {}", mx.preference, mx.exchange)),
                    _ => None,
                })
                .collect()),
            Err(error) if error.is_no_records_found() => Ok(Vec::new()),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// Absolute, so no search domain of the resolver configuration is tried.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// `k=v; k=v` tags, keys lower-cased, all whitespace removed from values (RFC 6376 §3.2).
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|tag| {
            let (key, value) = tag.split_once('=')?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            Some((key.trim().to_ascii_lowercase(), value))
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn host(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn is_spf(record: &str) -> bool {
    let lower = record.trim_start().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

fn is_dmarc(record: &str) -> bool {
    tags(record)
        .first()
        .is_some_and(|(k, v)| k == "v" && v.eq_ignore_ascii_case("DMARC1"))
}

/// The answers worth showing: at the return path the SPF record among other TXT records.
fn relevant(rule: Rule, published: Vec<String>) -> Vec<String> {
    match rule {
        Rule::Spf => published.into_iter().filter(|r| is_spf(r)).collect(),
        Rule::Dmarc => published.into_iter().filter(|r| is_dmarc(r)).collect(),
        Rule::Dkim | Rule::Mx => published,
    }
}

fn compare(rule: Rule, expected: &str, published: &[String]) -> RecordStatus {
    let status = |candidates: Vec<&String>, matches: &dyn Fn(&str) -> bool| {
        if candidates.is_empty() {
            RecordStatus::Missing
        } else if candidates.iter().any(|r| matches(r)) {
            RecordStatus::Found
        } else {
            RecordStatus::Different
        }
    };
    match rule {
        Rule::Dkim => {
            // The same key of the same type; other tags (t=, n=, h=) may differ.
            let want = tags(expected);
            let key_type = |t: &[(String, String)]| tag(t, "k").unwrap_or("rsa").to_string();
            status(published.iter().collect(), &|record| {
                let have = tags(record);
                tag(&have, "p").is_some()
                    && tag(&have, "p") == tag(&want, "p")
                    && key_type(&have) == key_type(&want)
            })
        }
        Rule::Spf => {
            // Our mechanism in the domain's one SPF record (others may be there too).
            let mechanism = expected
                .split_whitespace()
                .find(|term| term.starts_with("a:"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let spf: Vec<&String> = published.iter().filter(|r| is_spf(r)).collect();
            if spf.len() > 1 {
                // RFC 7208 §4.5: more than one SPF record is a permerror.
                return RecordStatus::Different;
            }
            status(spf, &|record| {
                record
                    .split_whitespace()
                    .any(|term| host(term.strip_prefix('+').unwrap_or(term)) == host(&mechanism))
            })
        }
        Rule::Mx => {
            let want = host(expected.split_whitespace().last().unwrap_or_default());
            status(published.iter().collect(), &|record| {
                host(record.split_whitespace().last().unwrap_or_default()) == want
            })
        }
        Rule::Dmarc => {
            // Any one DMARC record will do: the operator chooses the policy.
            let dmarc: Vec<&String> = published.iter().filter(|r| is_dmarc(r)).collect();
            if dmarc.len() > 1 {
                // RFC 7489 §6.6.3: several records count as none.
                return RecordStatus::Different;
            }
            status(dmarc, &|_| true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(records: &[&str]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn dkim_keys_compare_by_key_and_type() {
        let want = "v=DKIM1; k=ed25519; p=ABC+def/1=";
        for (published, status) in [
            (&[][..], RecordStatus::Missing),
            (
                &["v=DKIM1; k=ed25519; p=ABC+def/1="][..],
                RecordStatus::Found,
            ),
            (
                &["v=DKIM1;k=ed25519;t=s; p=ABC+d ef/1="][..],
                RecordStatus::Found,
            ),
            (
                &["v=DKIM1; k=rsa; p=ABC+def/1="][..],
                RecordStatus::Different,
            ),
            (
                &["v=DKIM1; k=ed25519; p=OTHER"][..],
                RecordStatus::Different,
            ),
            (&["v=DKIM1; k=ed25519; p="][..], RecordStatus::Different),
        ] {
            assert_eq!(
                compare(Rule::Dkim, want, &owned(published)),
                status,
                "{published:?}"
            );
        }
        // k= defaults to rsa on both sides.
        assert_eq!(
            compare(Rule::Dkim, "v=DKIM1; k=rsa; p=K", &owned(&["v=DKIM1; p=K"])),
            RecordStatus::Found
        );
    }

    #[test]
    fn spf_needs_our_mechanism_in_the_one_spf_record() {
        let want = "v=spf1 a:mx.postern.test ~all";
        for (published, status) in [
            (&["google-site-verification=x"][..], RecordStatus::Missing),
            (&["v=spf1 a:MX.postern.test. -all"][..], RecordStatus::Found),
            (
                &["v=spf1 ip4:192.0.2.1 +a:mx.postern.test ~all"][..],
                RecordStatus::Found,
            ),
            (
                &["v=spf1 include:other.test ~all"][..],
                RecordStatus::Different,
            ),
            (
                &["v=spf1 a:mx.postern.test ~all", "v=spf1 -all"][..],
                RecordStatus::Different,
            ),
            (&["v=spf10 a:mx.postern.test"][..], RecordStatus::Missing),
        ] {
            assert_eq!(
                compare(Rule::Spf, want, &owned(published)),
                status,
                "{published:?}"
            );
        }
    }

    #[test]
    fn mx_and_dmarc() {
        let mx = "10 mx.postern.test.";
        assert_eq!(compare(Rule::Mx, mx, &[]), RecordStatus::Missing);
        assert_eq!(
            compare(
                Rule::Mx,
                mx,
                &owned(&["20 other.test.", "5 MX.Postern.Test."])
            ),
            RecordStatus::Found
        );
        assert_eq!(
            compare(Rule::Mx, mx, &owned(&["10 other.test."])),
            RecordStatus::Different
        );
        let dmarc = "v=DMARC1; p=none";
        assert_eq!(
            compare(Rule::Dmarc, dmarc, &owned(&["v=DMARC1; p=reject"])),
            RecordStatus::Found
        );
        assert_eq!(
            compare(Rule::Dmarc, dmarc, &owned(&["something else"])),
            RecordStatus::Missing
        );
        assert_eq!(
            compare(
                Rule::Dmarc,
                dmarc,
                &owned(&["v=DMARC1; p=none", "v=DMARC1; p=reject"])
            ),
            RecordStatus::Different
        );
    }
}
