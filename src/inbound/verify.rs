//! SPF, DKIM and DMARC verification of inbound mail (contract §5.1–5.3), on top of mail-auth.
//!
//! The [`Verifier`] only *reports*: every check returns one of the typed results of
//! [`super::format`] and nothing here rejects, delays or changes a message. A check that cannot
//! finish within [`AuthConfig::timeout`] reports `temperror`, never an error to the caller, and
//! nothing in this module panics on hostile input.
//!
//! Build one `Verifier` at startup and share it (`Arc<Verifier>`) across sessions: it owns the
//! DNS resolver and its answer cache, so SPF, which runs for every message, costs network round
//! trips only on a cache miss.
//!
//! This is the only module that imports mail-auth; no mail-auth type crosses its edge. The
//! resolver's configuration comes from `crate::dns`, like every other lookup's.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::dns::{Name, RData};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::dkim::Signature;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::{HasValidLabels, SpfParameters};
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, DnsError, MessageAuthenticator,
    Parameters, ResolverCache, SpfOutput, SpfResult, Txt,
};
use tokio::time::timeout;

use super::format::{Dkim, DkimSignature, Dmarc, DmarcDetails, Spf};
use crate::dns::{ResolverChoice, ResolverError, resolver_parts};

/// The `r` macro of SPF explanations (RFC 7208 §7.3): the checking host's name. Postern never
/// shows explanations, and the RFC names this value for a host that does not say.
const SPF_HOST_DOMAIN: &str = "unknown";

/// How the [`Verifier`] is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub resolver: ResolverChoice,
    /// Upper bound for one whole check (SPF with all its includes, all DKIM signatures of a
    /// message, or one DMARC evaluation). Also the timeout of a single DNS query.
    pub timeout: Duration,
}

/// SPF, DKIM and DMARC checks sharing one resolver and its cache.
pub struct Verifier {
    authenticator: MessageAuthenticator,
    timeout: Duration,
    resolver: ResolverChoice,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("resolver", &self.resolver)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds the resolver (`crate::dns`). Sends no query; needs no runtime.
    pub fn new(config: AuthConfig) -> Result<Verifier, ResolverError> {
        let (resolver_config, options) = resolver_parts(&config.resolver, config.timeout)?;
        let authenticator = MessageAuthenticator::new(resolver_config, options).map_err(|e| {
            ResolverError::Build {
                reason: e.to_string(),
            }
        })?;
        Ok(Verifier {
            authenticator,
            timeout: config.timeout,
            resolver: config.resolver,
        })
    }

    /// SPF for the client `ip` (contract §5.1): the MAIL FROM domain, or the HELO name for the
    /// null sender (`mail_from == ""`). `domain` in the answer is the domain checked, in lower
    /// case.
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> Spf {
        let identity = spf_identity(helo, mail_from);
        let result = timeout(self.timeout, self.check_spf(ip, helo, mail_from, identity))
            .await
            .unwrap_or(SpfResult::TempError);
        Spf {
            result: spf_result_name(result).to_string(),
            domain: identity.to_lowercase(),
        }
    }

    async fn check_spf(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        identity: &str,
    ) -> SpfResult {
        // RFC 7208 §4.3: no usable domain means no SPF record can apply.
        if !is_dns_domain(identity) {
            return SpfResult::None;
        }
        let fqdn = identity.to_fqdn();
        let record = match self.spf_record(&fqdn).await {
            Ok(record) => record,
            Err(result) => return result,
        };
        // mail-auth looks the top-level record up again; this one-entry cache hands it the
        // record chosen above instead.
        let chosen = ChosenRecord {
            name: fqdn.as_ref().into(),
            record: Txt::Spf(record),
        };
        let params = if mail_from.is_empty() {
            SpfParameters::verify_ehlo(ip, helo, SPF_HOST_DOMAIN)
        } else {
            SpfParameters::verify_mail_from(ip, helo, SPF_HOST_DOMAIN, mail_from)
        };
        self.authenticator
            .check_host(Parameters::new(params).with_txt_cache(&chosen))
            .await
            .result()
    }

    /// The one SPF record of `fqdn` (RFC 7208 §4.5), or the result that ends the check.
    ///
    /// mail-auth alone uses the first TXT record that parses as SPF, so two SPF records would
    /// give an answer that depends on DNS order instead of `permerror`, and a broken SPF record
    /// next to an unrelated TXT record would give `none`.
    async fn spf_record(&self, fqdn: &str) -> Result<Arc<mail_auth::spf::Spf>, SpfResult> {
        let Ok(name) = Name::from_str_relaxed(fqdn) else {
            return Err(SpfResult::None);
        };
        let lookup = match self.authenticator.resolver().txt_lookup(name).await {
            Ok(lookup) => lookup,
            Err(e) => {
                return Err(match mail_auth::Error::from(e) {
                    mail_auth::Error::Dns(DnsError::RecordNotFound(_)) => SpfResult::None,
                    _ => SpfResult::TempError,
                });
            }
        };
        let mut records = lookup
            .answers()
            .iter()
            .filter_map(|answer| match &answer.data {
                RData::TXT(txt) => Some(txt.txt_data.concat()),
                _ => None,
            })
            .filter(|text| is_spf_record(text));
        match (records.next(), records.next()) {
            (None, _) => Err(SpfResult::None),
            (Some(_), Some(_)) => Err(SpfResult::PermError),
            // §4.6: a record that claims to be SPF but does not parse is a permanent error.
            (Some(text), None) => mail_auth::spf::Spf::parse(&text)
                .map(Arc::new)
                .map_err(|_| SpfResult::PermError),
        }
    }

    /// DKIM for every `DKIM-Signature` of `raw` (contract §5.2), one entry each in header order.
    ///
    /// A message without any signature gets `success: true` and one `neutral` entry with empty
    /// domain and selector: the contract names `neutral` the result for "no signature", and an
    /// entry is the only place a result can appear. A message whose header section cannot be
    /// read gets `success: false` and the same entry ("the check could not run").
    ///
    /// `raw` may include or omit Postern's own `Received:` field; it is never signed.
    pub async fn dkim(&self, raw: &[u8]) -> Dkim {
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Dkim {
                success: false,
                result: vec![no_signature()],
            };
        };
        // Malformed signatures never reach mail-auth's verifier (it reports only some of them,
        // and without the header they came from), so they are read here.
        let mut entries: Vec<(usize, DkimSignature)> = message
            .errors
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case(b"DKIM-Signature"))
            .map(|header| {
                let entry = DkimSignature {
                    result: "neutral".to_string(),
                    domain: tag_value(header.value, "d"),
                    selector: tag_value(header.value, "s"),
                };
                (offset_in(raw, header.value), entry)
            })
            .collect();
        if !message.dkim_headers.is_empty() {
            match timeout(self.timeout, self.authenticator.verify_dkim(&message)).await {
                Ok(outputs) => {
                    for output in &outputs {
                        // Outputs without a signature repeat the malformed headers read above.
                        let Some(signature) = output.signature() else {
                            continue;
                        };
                        let position = message
                            .dkim_headers
                            .iter()
                            .find(|header| std::ptr::eq(&header.header, signature))
                            .map_or(usize::MAX, |header| offset_in(raw, header.value));
                        let entry = DkimSignature {
                            result: dkim_result_name(output.result()).to_string(),
                            domain: signature.d.clone(),
                            selector: signature.s.clone(),
                        };
                        entries.push((position, entry));
                    }
                }
                Err(_elapsed) => {
                    for header in &message.dkim_headers {
                        let entry = DkimSignature {
                            result: "temperror".to_string(),
                            domain: header.header.d.clone(),
                            selector: header.header.s.clone(),
                        };
                        entries.push((offset_in(raw, header.value), entry));
                    }
                }
            }
        }
        if entries.is_empty() {
            return Dkim {
                success: true,
                result: vec![no_signature()],
            };
        }
        entries.sort_by_key(|(position, _)| *position);
        Dkim {
            success: true,
            result: entries.into_iter().map(|(_, entry)| entry).collect(),
        }
    }

    /// DMARC for the From-header domain of `raw` (contract §5.3), from the SPF and DKIM results
    /// already computed for the message, so no signature is verified twice. Run
    /// [`Verifier::dkim`] first even when the address does not show DKIM: DMARC needs it.
    ///
    /// SPF alignment uses `spf.domain`, the MAIL FROM domain or, for the null sender, the HELO
    /// name (RFC 7489 §3.1.2). Only the header section of `raw` is read.
    pub async fn dmarc(&self, raw: &[u8], spf: &Spf, dkim: &Dkim) -> Dmarc {
        let Some(message) = AuthenticatedMessage::parse(header_section(raw)) else {
            return Dmarc {
                success: false,
                result: "none".to_string(),
                details: dmarc_details("", "none", spf, "none", "none", dkim),
            };
        };
        // DMARC reads only d= and the verdict of each signature; rebuilding mail-auth's
        // outputs from them is what saves verifying the signatures again.
        let signatures: Vec<(bool, Signature)> = dkim
            .result
            .iter()
            .filter_map(|entry| {
                let pass = match entry.result.as_str() {
                    "pass" => true,
                    "temperror" => false,
                    _ => return None,
                };
                let signature = Signature {
                    d: entry.domain.clone(),
                    s: entry.selector.clone(),
                    ..Signature::default()
                };
                (!entry.domain.is_empty()).then_some((pass, signature))
            })
            .collect();
        let dkim_outputs: Vec<DkimOutput<'_>> = signatures
            .iter()
            .map(|(pass, signature)| {
                let output = if *pass {
                    DkimOutput::pass()
                } else {
                    DkimOutput::temp_err(mail_auth::Error::Dns(DnsError::Resolver(
                        "DKIM key lookup failed".to_string(),
                    )))
                };
                output.with_signature(signature)
            })
            .collect();
        let spf_output = SpfOutput::new(spf.domain.clone())
            .with_result(SpfResult::try_from(spf.result.as_str()).unwrap_or(SpfResult::None));
        let params = DmarcParameters::new(&message, &dkim_outputs, &spf.domain, &spf_output);

        let Ok(output) = timeout(self.timeout, self.authenticator.verify_dmarc(params)).await
        else {
            let domain = from_domain(&message);
            return Dmarc {
                success: true,
                result: "temperror".to_string(),
                details: dmarc_details(&domain, "none", spf, "temperror", "temperror", dkim),
            };
        };
        // mail-auth says `none` for a mechanism that did not pass before alignment; once a
        // record applies, DMARC's own verdict for it is `fail` (RFC 7489 §6.6.2, and the
        // aggregate report's `policy_evaluated`), so only a message without a record keeps
        // `none`.
        let has_record = output.dmarc_record().is_some();
        let evaluated = |result: &DmarcResult| match result {
            DmarcResult::None if has_record => "fail",
            other => dmarc_result_name(other),
        };
        let policy = match output.policy() {
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
            Policy::None | Policy::Unspecified => "none",
        };
        Dmarc {
            success: true,
            result: dmarc_result_name(&output.result()).to_string(),
            details: dmarc_details(
                output.domain(),
                policy,
                spf,
                evaluated(output.spf_result()),
                evaluated(output.dkim_result()),
                dkim,
            ),
        }
    }
}

/// The one-entry TXT cache that hands mail-auth the SPF record [`Verifier::spf_record`] chose.
struct ChosenRecord {
    name: Box<str>,
    record: Txt,
}

impl ResolverCache<Box<str>, Txt> for ChosenRecord {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        (std::borrow::Borrow::<Q>::borrow(&self.name) == name).then(|| self.record.clone())
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

/// The identity SPF checks (contract §5.1): the MAIL FROM domain, or the HELO name for the null
/// sender and for a MAIL FROM without a domain (as mail-auth does).
fn spf_identity<'a>(helo: &'a str, mail_from: &'a str) -> &'a str {
    mail_from
        .rsplit_once('@')
        .map_or(helo, |(_, domain)| domain)
}

/// A name SPF can look up: not empty, not an address literal, at least two labels.
fn is_dns_domain(domain: &str) -> bool {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    !bare.is_empty()
        && bare.len() <= 253
        && !bare.starts_with('[')
        && bare.parse::<IpAddr>().is_err()
        && bare.has_valid_labels()
}

/// RFC 7208 §4.5: an SPF record starts with `v=spf1` followed by a space or its end.
fn is_spf_record(text: &[u8]) -> bool {
    text.get(..6)
        .is_some_and(|version| version.eq_ignore_ascii_case(b"v=spf1"))
        && text.get(6).is_none_or(|&next| next == b' ')
}

/// The contract's name for an SPF result (contract §5.1).
fn spf_result_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// The contract's name for a DKIM result (contract §5.2).
fn dkim_result_name(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        // mail-auth files a changed body under neutral, but the signature was checked and the
        // message no longer matches it: RFC 6376 §6.1.3 calls that PERMFAIL, RFC 8601 `fail`.
        DkimResult::Neutral(mail_auth::Error::Dkim(
            mail_auth::dkim::DkimError::FailedBodyHashMatch,
        )) => "fail",
        DkimResult::Fail(_) => "fail",
        DkimResult::Neutral(_) | DkimResult::None => "neutral",
        DkimResult::TempError(_) => "temperror",
        DkimResult::PermError(_) => "permerror",
    }
}

/// The contract's name for a DMARC result (contract §5.3).
fn dmarc_result_name(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn dmarc_details(
    domain: &str,
    policy: &str,
    spf: &Spf,
    dmarc_spf_result: &str,
    dmarc_dkim_result: &str,
    dkim: &Dkim,
) -> DmarcDetails {
    DmarcDetails {
        domain: domain.to_string(),
        policy: policy.to_string(),
        spf_result: spf.result.clone(),
        dmarc_spf_result: dmarc_spf_result.to_string(),
        dmarc_dkim_result: dmarc_dkim_result.to_string(),
        dkim_results: dkim.result.clone(),
    }
}

/// The entry for a message without any DKIM signature.
fn no_signature() -> DkimSignature {
    DkimSignature {
        result: "neutral".to_string(),
        domain: String::new(),
        selector: String::new(),
    }
}

/// The From-header domain, lower case; empty without one.
fn from_domain(message: &AuthenticatedMessage<'_>) -> String {
    message
        .from
        .iter()
        .find_map(|address| address.rsplit_once('@'))
        .map(|(_, domain)| domain.to_lowercase())
        .unwrap_or_default()
}

/// The header section of `raw`, up to and including the empty line. Without an empty line
/// the whole message is headers.
fn header_section(raw: &[u8]) -> &[u8] {
    let mut line_start = 0;
    while let Some(newline) = raw[line_start..].iter().position(|&b| b == b'\n') {
        let line = &raw[line_start..line_start + newline];
        let end = line_start + newline + 1;
        if line.is_empty() || line == b"\r" {
            return &raw[..end];
        }
        line_start = end;
    }
    raw
}

/// Where `part`, a slice borrowed from `raw`, starts in it.
fn offset_in(raw: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize)
}

/// The value of `tag` in a DKIM tag list (RFC 6376 §3.2: names are case-sensitive, folding
/// white space inside values is not part of them). Empty when absent.
fn tag_value(list: &[u8], tag: &str) -> String {
    String::from_utf8_lossy(list)
        .split(';')
        .filter_map(|spec| spec.split_once('='))
        .find(|(name, _)| name.trim() == tag)
        .map(|(_, value)| value.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_identity_is_mail_from_domain_or_helo() {
        assert_eq!(
            spf_identity("mx.helo.test", "a@Example.TEST"),
            "Example.TEST"
        );
        assert_eq!(spf_identity("mx.helo.test", ""), "mx.helo.test");
        assert_eq!(spf_identity("mx.helo.test", "postmaster"), "mx.helo.test");
        assert_eq!(spf_identity("h", "a\"@\"b@c.test"), "c.test");
    }

    #[test]
    fn only_dns_names_are_checked() {
        for good in ["example.test", "mx.example.test.", "xn--bcher-kva.test"] {
            assert!(is_dns_domain(good), "{good}");
        }
        for bad in ["", "localhost", "[192.0.2.1]", "192.0.2.1", "::1", "."] {
            assert!(!is_dns_domain(bad), "{bad}");
        }
        assert!(!is_dns_domain(&format!("{}.test", "a".repeat(64))));
    }

    #[test]
    fn spf_records_are_recognised_by_their_version() {
        assert!(is_spf_record(b"v=spf1"));
        assert!(is_spf_record(b"V=SPF1 -all"));
        assert!(!is_spf_record(b"v=spf10 -all"));
        assert!(!is_spf_record(b"v=spf"));
        assert!(!is_spf_record(b"google-site-verification=x"));
    }

    #[test]
    fn header_section_ends_at_the_empty_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody\n\nmore"), b"A: 1\n\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b""), b"");
    }

    #[test]
    fn tag_values_ignore_folding_and_other_tags() {
        let list = b" v=1; a=rsa-sha256; d=exa\r\n\tmple.test; s = sel ;bh=x; b=y";
        assert_eq!(tag_value(list, "d"), "example.test");
        assert_eq!(tag_value(list, "s"), "sel");
        assert_eq!(tag_value(list, "D"), "");
        assert_eq!(tag_value(b"garbage", "d"), "");
    }

    #[test]
    fn result_names_are_the_specs() {
        let dns = || mail_auth::Error::Dns(DnsError::Resolver(String::new()));
        assert_eq!(spf_result_name(SpfResult::SoftFail), "softfail");
        assert_eq!(spf_result_name(SpfResult::TempError), "temperror");
        assert_eq!(dkim_result_name(&DkimResult::Pass), "pass");
        assert_eq!(dkim_result_name(&DkimResult::TempError(dns())), "temperror");
        assert_eq!(dkim_result_name(&DkimResult::PermError(dns())), "permerror");
        assert_eq!(
            dkim_result_name(&DkimResult::Neutral(mail_auth::Error::Dkim(
                mail_auth::dkim::DkimError::FailedBodyHashMatch
            ))),
            "fail"
        );
        assert_eq!(
            dkim_result_name(&DkimResult::Neutral(mail_auth::Error::Dkim(
                mail_auth::dkim::DkimError::SignatureExpired
            ))),
            "neutral"
        );
        assert_eq!(
            dmarc_result_name(&DmarcResult::PermError(dns())),
            "permerror"
        );
        assert_eq!(dmarc_result_name(&DmarcResult::None), "none");
    }

    #[test]
    fn building_needs_servers() {
        let config = AuthConfig {
            resolver: ResolverChoice::Servers(vec![]),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            Verifier::new(config),
            Err(ResolverError::NoServers)
        ));
    }
}
