//! Finding a recipient domain's MTA-STS policy (RFC 8461 §3, §5): the `_mta-sts.<domain>`
//! TXT record through the resolver the MX lookups use, then the policy file over HTTPS
//! (verified TLS: webpki roots plus `[outbound] extra_ca_file`; no redirects; a short
//! timeout; `mta-sts.<domain>` resolved through the same resolver), kept per domain with
//! its id until `max_age` passes or the TXT id changes: in memory, and in the store so that
//! a restart does not forget an `enforce` policy (§5).
//!
//! A failure never makes delivery stricter or looser than the last good policy: with a
//! cached policy that has not expired, it is used; with none, the domain is treated as
//! having no policy and the failure is logged. After a failed fetch a domain's policy host
//! is not asked again for [`FETCH_RETRY_SECS`], however many recipients wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tracing::{info, warn};

use super::{Mode, Policy, PolicyError, check_answer, parse, txt_id};
use crate::dns::TokioResolver;
use crate::store::{Store, StoredPolicy};

/// Bound on fetching one policy file, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds after a failed fetch before the same domain's policy host is asked again.
pub const FETCH_RETRY_SECS: i64 = 300;

/// A policy as fetched: the TXT id it was fetched for, and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub domain: String,
    pub id: String,
    pub policy: Policy,
    pub fetched_at: i64,
    /// The policy file as fetched (what the store keeps).
    pub text: String,
}

impl Known {
    /// Whether `max_age` has not passed at `now`.
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.fetched_at.saturating_add(self.policy.max_age as i64)
    }

    /// `MTA-STS policy of dest.test (enforce, id 2024…)`: how reasons name it.
    pub fn describe(&self) -> String {
        format!(
            "MTA-STS policy of {} ({}, id {})",
            self.domain, self.policy.mode, self.id
        )
    }
}

/// Why no policy could be read this time.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("DNS lookup of {name} failed: {reason}")]
    Dns { name: String, reason: String },
    #[error("{name}: {error}")]
    Txt { name: String, error: PolicyError },
    #[error("{name} has more than one v=STSv1 record")]
    ManyRecords { name: String },
    #[error("fetching {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} answered {status}, not 200")]
    Status { url: String, status: u16 },
    #[error("{url}: {error}")]
    Policy { url: String, error: PolicyError },
}

/// Looks policies up and keeps them in memory; shared by every delivery.
pub struct Discovery {
    resolver: TokioResolver,
    client: reqwest::Client,
    /// 443; tests serve policies on another port (`[outbound] mta_sts_port`).
    port: u16,
    known: Mutex<HashMap<String, Known>>,
    failed: Mutex<Failed>,
    store: Store,
}

/// When each domain's last fetch failed, so a broken policy host is not asked once per
/// recipient.
#[derive(Debug, Default)]
struct Failed {
    at: HashMap<String, i64>,
}

impl Failed {
    /// Whether `domain`'s policy may be fetched at `now`.
    fn may_fetch(&self, domain: &str, now: i64) -> bool {
        self.at
            .get(domain)
            .is_none_or(|at| now - at >= FETCH_RETRY_SECS || now < *at)
    }

    fn record(&mut self, domain: &str, now: i64, ok: bool) {
        match ok {
            true => self.at.remove(domain),
            false => self.at.insert(domain.to_string(), now),
        };
    }
}

impl Discovery {
    /// `tls` is the verified client config (webpki roots and the extra CA); `resolver` the
    /// one MX lookups use.
    pub fn new(
        resolver: TokioResolver,
        tls: rustls::ClientConfig,
        port: u16,
        store: Store,
    ) -> Discovery {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(ThroughResolver(resolver.clone())))
            .https_only(true)
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("the HTTP client configuration is valid");
        Discovery {
            resolver,
            client,
            port,
            known: Mutex::new(HashMap::new()),
            failed: Mutex::new(Failed::default()),
            store,
        }
    }

    /// The policy to apply to `domain` at `now` (`None`: no policy, or mode `none`).
    pub async fn policy(&self, domain: &str, now: i64) -> Option<Known> {
        self.in_force(domain, now)
            .await
            .filter(|known| known.policy.mode != Mode::None)
    }

    /// The policy in force for `domain` at `now`, mode `none` included: the kept one while
    /// the TXT id is the same (or gone) and `max_age` has not passed, else a new fetch.
    async fn in_force(&self, domain: &str, now: i64) -> Option<Known> {
        let cached = self
            .cached(domain)
            .await
            .filter(|known| known.is_fresh(now));
        let id = match self.current_id(domain).await {
            Ok(None) => return cached,
            Ok(Some(id)) if cached.as_ref().is_some_and(|known| known.id == id) => return cached,
            Ok(Some(_)) if !self.failed().may_fetch(domain, now) => return cached,
            Ok(Some(id)) => id,
            Err(error) => return unavailable(domain, &error, cached),
        };
        let fetched = self.fetch(domain, &id).await;
        self.failed().record(domain, now, fetched.is_ok());
        let (policy, text) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => return unavailable(domain, &error, cached),
        };
        let known = Known {
            domain: domain.to_string(),
            id,
            policy,
            fetched_at: now,
            text,
        };
        info!(domain, id = %known.id, mode = %known.policy.mode, mx = ?known.policy.mx,
            max_age = known.policy.max_age, "MTA-STS policy fetched");
        self.remember(known.clone()).await;
        Some(known)
    }

    /// The policy last fetched for `domain`: from memory, else from the store (after a
    /// restart), fresh or not.
    async fn cached(&self, domain: &str) -> Option<Known> {
        if let Some(known) = self.in_memory(domain) {
            return Some(known);
        }
        let stored = match self.store.mta_sts_policy(domain).await {
            Ok(stored) => stored?,
            Err(error) => {
                warn!(domain, %error, "cannot read the kept MTA-STS policy");
                return None;
            }
        };
        let policy = parse(stored.policy.as_bytes()).ok()?;
        let known = Known {
            domain: stored.domain,
            id: stored.id,
            policy,
            fetched_at: stored.fetched_at,
            text: stored.policy,
        };
        self.in_memory_insert(known.clone());
        Some(known)
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, Failed> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_memory(&self, domain: &str) -> Option<Known> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(domain).cloned()
    }

    fn in_memory_insert(&self, policy: Known) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(policy.domain.clone(), policy);
    }

    /// Keeps a fetched policy in memory and in the store.
    async fn remember(&self, known: Known) {
        let stored = StoredPolicy {
            domain: known.domain.clone(),
            id: known.id.clone(),
            policy: known.text.clone(),
            fetched_at: known.fetched_at,
        };
        self.in_memory_insert(known);
        if let Err(error) = self.store.save_mta_sts_policy(stored).await {
            warn!(%error, "cannot keep the MTA-STS policy in the store; it is kept in memory");
        }
    }

    /// The id of the domain's one `v=STSv1` TXT record; `None` when it has none.
    async fn current_id(&self, domain: &str) -> Result<Option<String>, DiscoveryError> {
        let name = format!("_mta-sts.{domain}.");
        let records = crate::dns::txt_records(&self.resolver, &name)
            .await
            .map_err(|error| DiscoveryError::Dns {
                name: name.clone(),
                reason: error.to_string(),
            })?;
        let records: Vec<&String> = records
            .iter()
            .filter(|text| text.starts_with("v=STSv1"))
            .collect();
        match records.as_slice() {
            [] => Ok(None),
            [record] => txt_id(record)
                .map(Some)
                .map_err(|error| DiscoveryError::Txt { name, error }),
            _ => Err(DiscoveryError::ManyRecords { name }),
        }
    }

    /// Fetches and parses `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    async fn fetch(&self, domain: &str, id: &str) -> Result<(Policy, String), DiscoveryError> {
        let url = match self.port {
            443 => format!("https://mta-sts.{domain}/.well-known/mta-sts.txt"),
            port => format!("https://mta-sts.{domain}:{port}/.well-known/mta-sts.txt"),
        };
        let failed = |reason: String| DiscoveryError::Fetch {
            url: url.clone(),
            reason,
        };
        tracing::debug!(domain, id, %url, "fetching the MTA-STS policy");
        let mut response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(describe(&e)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(DiscoveryError::Status { url, status });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let policy_error = |error| DiscoveryError::Policy {
            url: url.clone(),
            error,
        };
        check_answer(content_type.as_deref(), response.content_length()).map_err(policy_error)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(describe(&e)))? {
            if body.len() + chunk.len() > super::MAX_POLICY_BYTES {
                return Err(policy_error(PolicyError::TooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        let policy = parse(&body).map_err(policy_error)?;
        // parse accepted it as UTF-8.
        Ok((policy, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// When no policy could be read: the kept one if it has not expired (logged either way).
fn unavailable(domain: &str, error: &DiscoveryError, cached: Option<Known>) -> Option<Known> {
    match &cached {
        Some(known) => warn!(domain, %error, policy = %known.describe(),
            "MTA-STS policy not refreshed; the kept one still applies"),
        None => warn!(domain, %error,
            "MTA-STS policy unavailable; delivering as if the domain had none (RFC 8461 §5)"),
    }
    cached
}

/// A reqwest error with its causes (the TLS reason is two levels down).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Host names of policy fetches resolved by the MX lookups' resolver, never the system's.
struct ThroughResolver(TokioResolver);

impl Resolve for ThroughResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.0.clone();
        let host = format!("{}.", name.as_str().trim_end_matches('.'));
        Box::pin(async move {
            let lookup = resolver.lookup_ip(host.as_str()).await?;
            let addresses: Vec<SocketAddr> =
                lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fetch_is_not_tried_again_for_five_minutes() {
        let mut failed = Failed::default();
        assert!(failed.may_fetch("dest.test", 1_000));
        failed.record("dest.test", 1_000, false);
        assert!(!failed.may_fetch("dest.test", 1_000 + FETCH_RETRY_SECS - 1));
        assert!(failed.may_fetch("other.test", 1_001));
        assert!(failed.may_fetch("dest.test", 1_000 + FETCH_RETRY_SECS));
        failed.record("dest.test", 2_000, true);
        assert!(failed.may_fetch("dest.test", 2_001));
    }

    #[test]
    fn a_kept_policy_is_fresh_until_max_age_has_passed() {
        let known = Known {
            domain: "dest.test".into(),
            id: "20240101".into(),
            policy: parse(b"version: STSv1\nmode: enforce\nmx: mx.dest.test\nmax_age: 600\n")
                .unwrap(),
            fetched_at: 1_000,
            text: String::new(),
        };
        assert!(known.is_fresh(1_000) && known.is_fresh(1_599));
        assert!(!known.is_fresh(1_600));
        assert_eq!(
            known.describe(),
            "MTA-STS policy of dest.test (enforce, id 20240101)"
        );
    }
}
