//! ACME certificates (RFC 8555) with rustls-acme: one order for `server.hostname` plus
//! `[tls] names`, renewed when a third of its validity is left, served without a restart.
//!
//! [`Acme::start`] builds the `AcmeState` (directory, `mailto:` contacts, a client trusting
//! the webpki roots plus `[tls] acme_ca_file`, TLS-ALPN-01 or HTTP-01) and spawns the task
//! that drives it until shutdown: every event is logged and recorded in the store for
//! `/settings` (`issued`, `renewed`, `cached`, `failed` with the CA's error). The account key
//! and the certificate with its key live in the store, sealed like the other secrets
//! ([`SealedCache`]), never in rustls-acme's plaintext `DirCache`.
//!
//! The listeners get [`Acme::resolver`] (no certificate until the first order succeeds: the
//! caller keeps a fallback), [`Acme::challenge_config`] for TLS-ALPN-01 handshakes on the
//! HTTPS listener, and [`Acme::http01_service`] for `/.well-known/acme-challenge/{token}` on
//! the port-80 listener.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls_acme::caches::CompositeCache;
use rustls_acme::tower::TowerHttp01ChallengeService;
use rustls_acme::{
    AccountCache, AcmeConfig, AcmeState, CertCache, EventError, EventOk, OrderError,
    UseChallenge,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;

use crate::clock::Clock;
use crate::config::{AcmeChallenge, AcmeSettings};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// Let's Encrypt's directories, for `directory = "letsencrypt"` / `"letsencrypt-staging"`.
pub const LETS_ENCRYPT: &str = rustls_acme::acme::LETS_ENCRYPT_PRODUCTION_DIRECTORY;
pub const LETS_ENCRYPT_STAGING: &str = rustls_acme::acme::LETS_ENCRYPT_STAGING_DIRECTORY;

#[derive(Debug, thiserror::Error)]
pub enum AcmeSetupError {
    #[error("[tls] acme_ca_file: a certificate is not usable as a root: {0}")]
    Roots(rustls::Error),
    #[error("[tls] mode = \"acme\" needs at least one name: set server.hostname")]
    NoNames,
}

/// The ACME side of the certificate source, shared by every listener.
#[derive(Clone)]
pub struct Acme {
    /// The directory URL orders go to.
    pub directory: String,
    /// The names ordered (`server.hostname` plus `[tls] names`).
    pub names: Vec<String>,
    pub challenge_type: AcmeChallenge,
    resolver: Arc<rustls_acme::ResolvesServerCertAcme>,
    challenge: Arc<ServerConfig>,
    http01: TowerHttp01ChallengeService,
    status: CertificateStatus,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.directory)
            .field("names", &self.names)
            .field("challenge_type", &self.challenge_type)
            .field("current", &self.status.current())
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// Starts ordering (or loads the cached certificate) for `names`; the task runs until
    /// `shutdown`. Events go to the log and to the store's `certificate_events`.
    pub fn start(
        settings: &AcmeSettings,
        names: Vec<String>,
        store: Store,
        clock: Clock,
        shutdown: &Shutdown,
    ) -> Result<Acme, AcmeSetupError> {
        if names.is_empty() {
            return Err(AcmeSetupError::NoNames);
        }
        let client = super::client::verifying_config(&settings.extra_roots)
            .map_err(AcmeSetupError::Roots)?;
        let status = CertificateStatus::default();
        let cache = SealedCache {
            store: store.clone(),
            status: status.clone(),
        };
        let state = AcmeConfig::new_with_client_config(&names, Arc::new(client))
            .directory(directory_url(&settings.directory))
            .contact(settings.contact.iter().map(|c| format!("mailto:{c}")))
            .challenge_type(match settings.challenge {
                AcmeChallenge::TlsAlpn01 => UseChallenge::TlsAlpn01,
                AcmeChallenge::Http01 => UseChallenge::Http01,
            })
            .cache(CompositeCache::new(cache.clone(), cache))
            .state();
        let acme = Acme {
            directory: directory_url(&settings.directory).to_string(),
            names: names.clone(),
            challenge_type: settings.challenge,
            resolver: state.resolver(),
            challenge: state.challenge_rustls_config(),
            http01: state.http01_challenge_tower_service(),
            status,
        };
        let follower = Follower {
            store,
            clock,
            names,
            status: acme.status.clone(),
            deployed: false,
            stored_as: None,
        };
        shutdown.spawn(follower.run(state, shutdown.clone()));
        Ok(acme)
    }

    /// The CA's certificate once there is one; `None` before (the caller falls back).
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.resolver.clone()
    }

    /// The server config for a TLS-ALPN-01 handshake (`rustls_acme::is_tls_alpn_challenge`).
    pub fn challenge_config(&self) -> Arc<ServerConfig> {
        self.challenge.clone()
    }

    /// Answers `GET /.well-known/acme-challenge/{token}` during an HTTP-01 order (404 else).
    pub fn http01_service(&self) -> TowerHttp01ChallengeService {
        self.http01.clone()
    }

    /// The certificate served now, for `/settings`.
    pub fn status(&self) -> CertificateStatus {
        self.status.clone()
    }
}

/// The directory URL for the `[tls] acme_directory` setting (a URL or a Let's Encrypt alias).
pub fn directory_url(directory: &str) -> &str {
    match directory {
        "letsencrypt" => LETS_ENCRYPT,
        "letsencrypt-staging" => LETS_ENCRYPT_STAGING,
        url => url,
    }
}

/// The certificate the CA issued, as the listeners serve it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The DNS names it covers.
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_after: i64,
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial: String,
}

/// The current certificate, shared between the cache that sees it and the pages that show it.
#[derive(Debug, Clone, Default)]
pub struct CertificateStatus(Arc<Mutex<Option<Issued>>>);

impl CertificateStatus {
    /// `None` until the first certificate exists (listeners use the fallback).
    pub fn current(&self) -> Option<Issued> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, pem: &[u8]) {
        let issued = issued(pem);
        if issued.is_none() {
            tracing::warn!("the ACME certificate could not be read for its expiry");
        }
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = issued;
    }
}

/// Names, expiry and serial of the first certificate in `pem` (rustls-acme's cache format:
/// the private key, then the chain).
fn issued(pem: &[u8]) -> Option<Issued> {
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Issued {
        names,
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.tbs_certificate.raw_serial_as_string(),
    })
}

/// rustls-acme's cache over the store: each value sealed in the statement that writes it.
#[derive(Clone)]
struct SealedCache {
    store: Store,
    status: CertificateStatus,
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
            self.status.set(pem);
        }
        Ok(pem)
    }

    async fn store_cert(
        &self,
        domains: &[String],
        directory_url: &str,
        cert: &[u8],
    ) -> Result<(), StoreError> {
        self.status.set(cert);
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
    names: Vec<String>,
    status: CertificateStatus,
    /// A certificate was served before: the next new one is a renewal.
    deployed: bool,
    /// The kind of the new certificate being stored (`issued` or `renewed`): recorded once
    /// the cache has it, with its expiry.
    stored_as: Option<&'static str>,
}

impl Follower {
    async fn run(mut self, mut state: AcmeState<StoreError>, shutdown: Shutdown) {
        tracing::info!(names = ?self.names, "ACME: loading the certificate or ordering one");
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

    /// `mail.example.com, example.com; expires 2026-03-01T00:00:00Z; serial 0a:…`.
    fn described(&self) -> String {
        match self.status.current() {
            Some(issued) => format!(
                "{}; expires {}; serial {}",
                issued.names.join(", "),
                crate::clock::from_unix(issued.not_after)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                issued.serial
            ),
            None => self.names.join(", "),
        }
    }

    async fn record(&self, kind: &str, detail: String) {
        match kind {
            "failed" => tracing::warn!(error = %detail, "ACME: no certificate this time, retrying with backoff"),
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
            format!(
                "the CA could not validate {:?}: {}",
                auth.identifier,
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
    Some(format!("the CA answered {status}: {}", problem_detail(&body)))
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
    fn lets_encrypt_aliases_and_urls() {
        assert_eq!(directory_url("letsencrypt"), LETS_ENCRYPT);
        assert_eq!(directory_url("letsencrypt-staging"), LETS_ENCRYPT_STAGING);
        assert_eq!(
            directory_url("https://localhost:14000/dir"),
            "https://localhost:14000/dir"
        );
    }

    #[test]
    fn a_problem_document_reads_as_its_type_and_detail() {
        let body = r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order :: Cannot issue for \"localhost\"","status":400}"#;
        assert_eq!(
            problem_detail(body),
            "urn:ietf:params:acme:error:rejectedIdentifier: Error creating new order :: Cannot issue for \"localhost\""
        );
        assert_eq!(problem_detail("gateway down\n"), "gateway down");
        let error = format!("order: acme error: http request error: non 2xx http status: 400 {body:?}");
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
    fn the_certificate_pem_gives_names_expiry_and_serial() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.example.test".into(), "example.test".into()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        let cert = params.self_signed(&key).unwrap();
        // rustls-acme's format: the key first, then the chain.
        let pem = format!("{}\n{}", key.serialize_pem(), cert.pem());
        let issued = issued(pem.as_bytes()).unwrap();
        assert_eq!(issued.names, ["mail.example.test", "example.test"]);
        assert_eq!(issued.not_after, 1_925_078_400);
        assert_eq!(issued.serial, "0a:bc");
    }
}
