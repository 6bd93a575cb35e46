//! TLS server side: the only module that builds rustls server configs.
//!
//! [`Certificates`] is the one certificate source every listener serves — SMTP STARTTLS on
//! the MX and submission listeners, implicit TLS on port 465 and HTTPS — through one
//! resolver, so a reloaded file or a renewed ACME certificate reaches them all without a
//! restart. `[tls]` (`config::tls`) chooses the source: PEM files (read again when they
//! change or on SIGHUP), a self-signed certificate (rcgen), or ACME (`acme`), which serves
//! a temporary self-signed certificate until the CA has issued one.
//! `client`: the configs of the connections Postern opens itself (outbound STARTTLS).

use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::config::{CertSource, TlsConfig};
use crate::shutdown::Shutdown;

pub mod acme;
pub mod client;

/// How often certificate files are checked for a change.
const FILE_POLL: Duration = Duration::from_secs(5);
/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS certificate and key do not fit together ({0}): is key_file the key of cert_file?")]
    Mismatch(rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(rcgen::Error),
}

/// The certificate every listener serves, and the rustls configs built on it.
#[derive(Debug)]
pub struct Certificates {
    source: CertSource,
    names: Vec<String>,
    resolver: Arc<Resolver>,
    smtp: Arc<ServerConfig>,
    https: Arc<ServerConfig>,
    /// The TLS-ALPN-01 challenge config, once ACME runs.
    challenge: OnceLock<Arc<ServerConfig>>,
}

impl Certificates {
    /// The certificates of `tls` for `hostname`, or `None` when TLS is off.
    pub fn new(tls: &TlsConfig, hostname: &str) -> Result<Option<Arc<Certificates>>, TlsError> {
        let names = tls.all_names(hostname);
        let (current, temporary) = match &tls.source {
            CertSource::Off => return Ok(None),
            CertSource::Files { cert, key } => (load_files(cert, key)?, false),
            CertSource::SelfSigned => (self_signed(&names)?, false),
            // Until the CA has issued one: STARTTLS stays on, browsers see why they warn.
            CertSource::Acme(_) => (self_signed(&names)?, true),
        };
        let resolver = Arc::new(Resolver {
            served: RwLock::new(Served {
                key: Arc::new(current),
                temporary,
            }),
        });
        let smtp = config_with(resolver.clone(), Vec::new());
        let https = config_with(resolver.clone(), vec![b"http/1.1".to_vec()]);
        Ok(Some(Arc::new(Certificates {
            source: tls.source.clone(),
            names,
            resolver,
            smtp,
            https,
            challenge: OnceLock::new(),
        })))
    }

    /// The config of SMTP STARTTLS and implicit-TLS listeners.
    pub fn smtp_config(&self) -> Arc<ServerConfig> {
        self.smtp.clone()
    }

    /// The config of an HTTPS handshake: ACME's challenge config when `hello` asks for
    /// TLS-ALPN-01 and ACME runs, else the HTTPS config (HTTP/1.1).
    pub fn https_config(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        let challenge = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        match (challenge, self.challenge.get()) {
            (true, Some(config)) => config.clone(),
            _ => self.https.clone(),
        }
    }

    /// ACME's TLS-ALPN-01 challenge config, for handshakes that ask for `acme-tls/1`.
    pub fn attach_challenge(&self, challenge: Arc<ServerConfig>) {
        let _ = self.challenge.set(challenge);
    }

    /// Serves `key` from now on on every listener: a certificate ACME issued, renewed or
    /// found in its cache. Open connections keep the one they started with.
    pub fn deploy(&self, key: CertifiedKey) {
        *self.resolver.served.write().expect("lock poisoned") = Served {
            key: Arc::new(key),
            temporary: false,
        };
    }

    /// The source as `[tls] mode` names it.
    pub fn source(&self) -> &CertSource {
        &self.source
    }

    /// The names the configured certificate is for (`server.hostname` and `[tls] names`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// What the listeners serve right now.
    pub fn status(&self) -> CertificateStatus {
        let served = self.resolver.served.read().expect("lock poisoned").clone();
        CertificateStatus::of(&served.key, served.temporary)
    }

    /// Reads the certificate files again and serves them if they changed; `Ok(false)` when
    /// they did not or the source is not files. On an error the old certificate stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let CertSource::Files { cert, key } = &self.source else {
            return Ok(false);
        };
        let fresh = load_files(cert, key)?;
        let mut served = self.resolver.served.write().expect("lock poisoned");
        if served.key.cert == fresh.cert {
            return Ok(false);
        }
        served.key = Arc::new(fresh);
        drop(served);
        let status = self.status();
        info!(
            cert = %cert.display(),
            names = ?status.names,
            expires = %status.expires_text(),
            "TLS certificate reloaded: new connections get it, open ones keep theirs"
        );
        Ok(true)
    }

    /// Reloads certificate files when they change (checked every few seconds), until
    /// shutdown. Returns at once for the other sources. (SIGHUP: `app` calls [`reload`].)
    ///
    /// [`reload`]: Certificates::reload
    pub async fn watch_files(self: Arc<Self>, shutdown: Shutdown) {
        let CertSource::Files { cert, key } = self.source.clone() else {
            return;
        };
        let mut seen = stamps(&cert, &key);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FILE_POLL) => {}
                _ = shutdown.triggered() => return,
            }
            let now = stamps(&cert, &key);
            if now != seen {
                seen = now;
                self.reload_or_keep();
            }
        }
    }

    /// [`reload`](Certificates::reload), logging an error and keeping the old certificate;
    /// for the other sources, says there is nothing to read again.
    pub fn reload_or_keep(&self) {
        if self.source.cert_file().is_none() {
            info!(
                mode = self.source.mode(),
                "no certificate files to read again"
            );
            return;
        }
        info!("reading the TLS certificate files again");
        if let Err(error) = self.reload() {
            // Often a renewal half written (new cert, old key): the next check retries.
            warn!(%error, "TLS certificate not reloaded; still serving the previous one");
        }
    }
}

/// What a listener serves: names, expiry, issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// The subject alternative names (DNS names and IP addresses).
    pub names: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub not_after: Option<i64>,
    pub issuer: String,
    pub self_signed: bool,
    /// A stand-in served until ACME has issued a certificate.
    pub temporary: bool,
}

impl CertificateStatus {
    fn of(key: &CertifiedKey, temporary: bool) -> CertificateStatus {
        let leaf = key.cert.first().map(|der| der.as_ref()).unwrap_or_default();
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return CertificateStatus {
                names: Vec::new(),
                not_after: None,
                issuer: "(unreadable certificate)".into(),
                self_signed: false,
                temporary,
            };
        };
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        CertificateStatus {
            names,
            not_after: Some(cert.validity().not_after.timestamp()),
            issuer: cert.issuer().to_string(),
            self_signed: cert.issuer() == cert.subject(),
            temporary,
        }
    }

    /// Whole days until expiry at `now` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> Option<i64> {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64;
        Some((self.not_after? - now).div_euclid(86_400))
    }

    /// Expiry as `2027-03-01 12:00 UTC (87 days left)`.
    pub fn expires_text(&self) -> String {
        let Some(not_after) = self.not_after else {
            return "unknown".into();
        };
        let date = crate::clock::utc_minutes(not_after);
        match self.days_left(SystemTime::now()) {
            Some(days) if days < 0 => format!("{date} (expired)"),
            Some(days) => format!("{date} ({days} days left)"),
            None => date,
        }
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// The one resolver behind every listener: the current certificate (files, self-signed,
/// ACME's, or ACME's temporary stand-in). SNI is not needed: SMTP clients often send none,
/// and one certificate covers every name.
#[derive(Debug)]
struct Resolver {
    served: RwLock<Served>,
}

/// The certificate served now, and whether it is ACME's stand-in: changed together.
#[derive(Debug, Clone)]
struct Served {
    key: Arc<CertifiedKey>,
    temporary: bool,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served.read().expect("lock poisoned").key.clone())
    }
}

fn config_with(resolver: Arc<Resolver>, alpn: Vec<Vec<u8>>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// The files' modification times and sizes: a change means a reload is due.
fn stamps(cert: &Path, key: &Path) -> [Option<(SystemTime, u64)>; 2] {
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [stamp(cert), stamp(key)]
}

fn load_files(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    certify(load_chain(cert)?, load_key(key)?).map_err(TlsError::Mismatch)
}

/// A chain (leaf first) and its private key as rustls serves them, once the key is known
/// to be the leaf's: files, self-signed and ACME certificates alike.
pub fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    CertifiedKey::from_der(chain, key, &rustls::crypto::aws_lc_rs::default_provider())
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if chain.is_empty() {
        return Err(error("no CERTIFICATE block found".into()));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn self_signed(names: &[String]) -> Result<CertifiedKey, TlsError> {
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::try_from(certified.key_pair.serialize_der())
        .expect("rcgen serialises PKCS#8");
    certify(vec![certified.cert.der().clone()], key).map_err(TlsError::Mismatch)
}

/// The protocol name as CloudMailin reports it in `envelope.tls_cipher`, e.g. `TLSv1.3`.
pub fn protocol_name(version: Option<rustls::ProtocolVersion>) -> &'static str {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}
