//! ACME certificates (RFC 8555) with rustls-acme: one order for `server.hostname` plus
//! `[tls] names`, renewed when a third of its validity is left, served without a restart.
//!
//! [`Acme::new`] builds the `AcmeState` (directory, `mailto:` contacts, a client trusting
//! the webpki roots plus `[tls] acme_ca_file`, TLS-ALPN-01 or HTTP-01); [`Acme::spawn`] starts
//! the task that drives it until shutdown: every event is logged and recorded in the store for
//! `/settings` (`issued`, `renewed`, `cached`, `failed` with the CA's error). The account key
//! and the certificate with its key live in the store, sealed like the other secrets
//! ([`SealedCache`]), never in rustls-acme's plaintext `DirCache`.
//!
//! The cache is also where a certificate reaches the listeners: one loaded at start or
//! stored after an order is deployed into [`Certificates`] (which serves its temporary
//! self-signed certificate until then); the TLS-ALPN-01 challenge config is attached to it
//! for the HTTPS listener, and [`Acme::http01_service`] answers
//! `/.well-known/acme-challenge/{token}` on the port-80 listener.

use std::sync::Arc;

use futures_util::StreamExt;
use rustls::sign::CertifiedKey;
use rustls_acme::caches::CompositeCache;
use rustls_acme::tower::TowerHttp01ChallengeService;
use rustls_acme::{
    AccountCache, AcmeConfig, AcmeState, CertCache, EventError, EventOk, OrderError, UseChallenge,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Certificates;
use crate::clock::Clock;
use crate::config::{AcmeChallenge, AcmeSettings};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AcmeSetupError {
    #[error("[tls] acme_ca_file: a certificate is not usable as a root: {0}")]
    Roots(rustls::Error),
}

/// An ACME order for the names of [`Certificates`], ready to run: [`Acme::spawn`] starts it.
pub struct Acme {
    state: AcmeState<StoreError>,
    follower: Follower,
    http01: TowerHttp01ChallengeService,
    challenge: AcmeChallenge,
}

impl Acme {
    /// The order for `certificates.names()`; each certificate it loads or is issued is
    /// deployed into `certificates`, whose HTTPS config gets the TLS-ALPN-01 challenge config
    /// now. Nothing is loaded or ordered before [`Acme::spawn`].
    pub fn new(
        settings: &AcmeSettings,
        certificates: Arc<Certificates>,
        store: Store,
        clock: Clock,
    ) -> Result<Acme, AcmeSetupError> {
        let client = super::client::verifying_config(&settings.extra_roots)
            .map_err(AcmeSetupError::Roots)?;
        let cache = SealedCache {
            store: store.clone(),
            certificates: certificates.clone(),
        };
        let state = AcmeConfig::new_with_client_config(certificates.names(), Arc::new(client))
            .directory(&settings.directory)
            .contact(settings.contact.iter().map(|c| format!("mailto:{c}")))
            .challenge_type(match settings.challenge {
                AcmeChallenge::TlsAlpn01 => UseChallenge::TlsAlpn01,
                AcmeChallenge::Http01 => UseChallenge::Http01,
            })
            .cache(CompositeCache::new(cache.clone(), cache))
            .state();
        certificates.attach_challenge(state.challenge_rustls_config());
        Ok(Acme {
            http01: state.http01_challenge_tower_service(),
            challenge: settings.challenge,
            state,
            follower: Follower {
                store,
                clock,
                certificates,
                deployed: false,
                stored_as: None,
            },
        })
    }

    /// With HTTP-01, what answers `GET /.well-known/acme-challenge/{token}` on the port-80
    /// listener during an order (404 else); `None` with TLS-ALPN-01.
    pub fn http01_service(&self) -> Option<TowerHttp01ChallengeService> {
        (self.challenge == AcmeChallenge::Http01).then(|| self.http01.clone())
    }

    /// Loads the cached certificate or orders one, then renews it, until `shutdown`; every
    /// event goes to the log and to the store's `certificate_events`.
    pub fn spawn(self, shutdown: &Shutdown) {
        shutdown.spawn(self.follower.run(self.state, shutdown.clone()));
    }
}

/// rustls-acme's cache format: the private key (PKCS#8 PEM), then the chain, leaf first.
fn certified_key(pem: &[u8]) -> Option<CertifiedKey> {
    let key = PrivateKeyDer::from_pem_slice(pem).ok()?;
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    super::certify(chain, key).ok()
}

/// rustls-acme's cache over the store: each value sealed in the statement that writes it.
#[derive(Clone)]
struct SealedCache {
    store: Store,
    certificates: Arc<Certificates>,
}

impl SealedCache {
    /// Serves the certificate in `pem` on every listener from now on.
    fn deploy(&self, pem: &[u8]) {
        match certified_key(pem) {
            Some(key) => self.certificates.deploy(key),
            None => tracing::warn!(
                "ACME: the certificate is not usable; still serving the previous one"
            ),
        }
    }
}

/// The cache row of a certificate or account: what it is for, without the contact
/// addresses or names in clear (a digest, like `DirCache`'s file names).
fn cache_name(kind: &str, parts: &[String], directory_url: &str) -> String {
    let digest = crate::secret::sha256_hex(&format!("{directory_url}\n{}", parts.join("\n")));
    format!("{kind} {digest}")
}

#[async_trait::async_trait]
impl CertCache for SealedCache {
    type EC = StoreError;

    async fn load_cert(
        &self,
        domains: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let name = cache_name("certificate", domains, directory_url);
        let pem = self.store.acme_cache(&name).await?;
        if let Some(pem) = &pem {
            self.deploy(pem);
        }
        Ok(pem)
    }

    async fn store_cert(
        &self,
        domains: &[String],
        directory_url: &str,
        cert: &[u8],
    ) -> Result<(), StoreError> {
        self.deploy(cert);
        let name = cache_name("certificate", domains, directory_url);
        self.store.store_acme_cache(&name, cert.to_vec()).await
    }
}

#[async_trait::async_trait]
impl AccountCache for SealedCache {
    type EA = StoreError;

    async fn load_account(
        &self,
        contact: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let name = cache_name("account", contact, directory_url);
        self.store.acme_cache(&name).await
    }

    async fn store_account(
        &self,
        contact: &[String],
        directory_url: &str,
        account: &[u8],
    ) -> Result<(), StoreError> {
        let name = cache_name("account", contact, directory_url);
        self.store.store_acme_cache(&name, account.to_vec()).await
    }
}

type Event = Result<EventOk, EventError<StoreError, StoreError>>;

/// Drives the `AcmeState` and says what happened: the log and `certificate_events`.
struct Follower {
    store: Store,
    clock: Clock,
    certificates: Arc<Certificates>,
    /// A certificate was served before: the next new one is a renewal.
    deployed: bool,
    /// The kind of the new certificate being stored (`issued` or `renewed`): recorded once
    /// the cache has it, with its expiry.
    stored_as: Option<&'static str>,
}

impl Follower {
    async fn run(mut self, mut state: AcmeState<StoreError>, shutdown: Shutdown) {
        let names = self.certificates.names();
        tracing::info!(?names, "ACME: loading the certificate or ordering one");
        loop {
            let event = tokio::select! {
                _ = shutdown.triggered() => return,
                event = state.next() => event,
            };
            match event {
                Some(event) => self.on(event).await,
                None => return,
            }
        }
    }

    async fn on(&mut self, event: Event) {
        match event {
            Ok(EventOk::DeployedCachedCert) => {
                self.deployed = true;
                self.record("cached", self.described()).await;
            }
            Ok(EventOk::DeployedNewCert) => {
                self.stored_as = Some(if self.deployed { "renewed" } else { "issued" });
                self.deployed = true;
            }
            Ok(EventOk::CertCacheStore) => {
                let kind = self.stored_as.take().unwrap_or("issued");
                self.record(kind, self.described()).await;
            }
            Ok(EventOk::AccountCacheStore) => tracing::info!("ACME: account key stored, sealed"),
            Err(EventError::CertCacheStore(error)) => {
                let kind = self.stored_as.take().unwrap_or("issued");
                self.record(kind, self.described()).await;
                let detail = format!(
                    "the new certificate is served but could not be stored ({error}); \
                     the next start orders another"
                );
                self.record("failed", detail).await;
            }
            Err(error) => self.record("failed", describe(&error)).await,
        }
    }

    /// `mail.example.com, example.com; expires 2027-03-01 12:00 UTC (89 days left); issuer …`.
    fn described(&self) -> String {
        let status = self.certificates.status();
        format!(
            "{}; expires {}; issuer {}",
            status.names.join(", "),
            status.expires_text(),
            status.issuer
        )
    }

    async fn record(&self, kind: &str, detail: String) {
        match kind {
            "failed" => {
                tracing::warn!(error = %detail, "ACME failed; orders are retried with a growing delay")
            }
            _ => tracing::info!(kind, certificate = %detail, "ACME: certificate {kind}"),
        }
        let at = self.clock.unix();
        if let Err(error) = self.store.record_certificate_event(at, kind, &detail).await {
            tracing::warn!(%error, "ACME: the certificate event could not be recorded");
        }
    }
}

/// An event error as the CA said it: the problem `detail` of a refused request or of a
/// failed challenge, rather than the debug dump of the ACME objects.
fn describe(error: &EventError<StoreError, StoreError>) -> String {
    match error {
        EventError::Order(OrderError::BadAuth(auth)) => {
            let problems: Vec<String> = auth
                .challenges
                .iter()
                .filter_map(|challenge| challenge.error.as_ref())
                .map(|problem| {
                    let kind = problem.typ.as_deref().unwrap_or("error");
                    let detail = problem.detail.as_deref().unwrap_or("no detail");
                    format!("{kind}: {detail}")
                })
                .collect();
            let rustls_acme::acme::Identifier::Dns(name) = &auth.identifier;
            format!(
                "the CA could not validate {name}: {}",
                match problems.is_empty() {
                    true => format!("authorization {:?}", auth.status),
                    false => problems.join("; "),
                }
            )
        }
        other => refusal(&other.to_string()).unwrap_or_else(|| other.to_string()),
    }
}

/// rustls-acme's "non 2xx http status: 400 \"{…problem…}\"" (its error type is private) as
/// "the CA answered 400: type: detail".
fn refusal(error: &str) -> Option<String> {
    let (_, rest) = error.split_once("non 2xx http status: ")?;
    let (status, quoted) = rest.split_once(' ')?;
    let body: String = serde_json::from_str(quoted).ok()?;
    Some(format!(
        "the CA answered {status}: {}",
        problem_detail(&body)
    ))
}

/// The `detail` (and `type`) of an RFC 7807 problem document, or the body as it is.
fn problem_detail(body: &str) -> String {
    let problem: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (field("type"), field("detail")) {
        (Some(kind), Some(detail)) => format!("{kind}: {detail}"),
        (None, Some(detail)) => detail,
        _ => body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_reads_as_its_type_and_detail() {
        let body = r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order :: Cannot issue for \"localhost\"","status":400}"#;
        assert_eq!(
            problem_detail(body),
            "urn:ietf:params:acme:error:rejectedIdentifier: Error creating new order :: Cannot issue for \"localhost\""
        );
        assert_eq!(problem_detail("gateway down\n"), "gateway down");
        let error =
            format!("order: acme error: http request error: non 2xx http status: 400 {body:?}");
        assert_eq!(
            refusal(&error).unwrap(),
            format!("the CA answered 400: {}", problem_detail(body))
        );
        assert_eq!(refusal("order: io error"), None);
    }

    #[test]
    fn cache_rows_name_no_address_and_differ_by_directory() {
        let contact = ["mailto:ops@example.com".to_string()];
        let a = cache_name("account", &contact, "https://a.test/dir");
        let b = cache_name("account", &contact, "https://b.test/dir");
        assert_ne!(a, b);
        assert!(a.starts_with("account ") && !a.contains("ops@"));
    }

    #[test]
    fn the_cached_pem_is_the_key_then_the_chain() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mail.example.test".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = format!("{}\n{}", key.serialize_pem(), cert.pem());
        let certified = certified_key(pem.as_bytes()).unwrap();
        assert_eq!(certified.cert, [cert.der().clone()]);
        // A key that is not the certificate's is refused, not served.
        let other = rcgen::KeyPair::generate().unwrap();
        let mismatched = format!("{}\n{}", other.serialize_pem(), cert.pem());
        assert!(certified_key(mismatched.as_bytes()).is_none());
        assert!(certified_key(cert.pem().as_bytes()).is_none());
    }
}
