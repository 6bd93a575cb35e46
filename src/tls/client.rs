//! TLS for the connections Postern opens itself to deliver mail (the outbound worker's
//! STARTTLS): the two rustls client configs, the handshake, and what it negotiated.
//!
//! `verified` checks the server's certificate chain against the webpki roots plus
//! `[outbound] extra_ca_file`, and its name; `opportunistic` takes any certificate (the
//! handshake's signature is still checked) — the one exception, STARTTLS to an MX without a
//! policy (RFC 7435), where the alternative is plain text.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The client side of outgoing TLS: one connector per kind of check, built once.
#[derive(Clone)]
pub struct ClientTls {
    verified: TlsConnector,
    /// The verified connector's config, for HTTPS clients (MTA-STS policy fetches).
    verified_config: Arc<ClientConfig>,
    opportunistic: TlsConnector,
}

/// What a handshake negotiated, as an attempt records it: `TLSv1.3 TLS13_AES_256_GCM_SHA384
/// verified` (or `unverified`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: &'static str,
    pub cipher: String,
    /// Whether the certificate chain and name were checked (and passed).
    pub verified: bool,
}

impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verified = if self.verified {
            "verified"
        } else {
            "unverified"
        };
        write!(f, "{} {} {verified}", self.version, self.cipher)
    }
}

/// Why a handshake failed, worded for the attempt's record.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("certificate not trusted ({0}); set [outbound] extra_ca_file for a private CA")]
    Untrusted(String),
    #[error("certificate not valid for {0}")]
    WrongName(String),
    #[error("certificate expired or not yet valid ({0})")]
    Expired(String),
    #[error("certificate rejected: {0}")]
    Certificate(String),
    #[error("{0:?} is not a name or address a certificate can be checked for")]
    BadName(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
}

/// A client config that verifies servers against the webpki roots and `extra_roots` (already
/// checked by the config): outbound STARTTLS and the ACME directory (`tls::acme`).
pub fn verifying_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots.add(root.clone())?;
    }
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl ClientTls {
    /// Connectors trusting the webpki roots and `extra_roots` (already checked by the config).
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Result<ClientTls, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verified = verifying_config(extra_roots)?;
        let verified = Arc::new(verified);
        let any_certificate = AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        let opportunistic = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(any_certificate))
            .with_no_client_auth();
        Ok(ClientTls {
            verified: TlsConnector::from(verified.clone()),
            verified_config: verified,
            opportunistic: TlsConnector::from(Arc::new(opportunistic)),
        })
    }

    /// A copy of the verified config (same roots, same checks), for an HTTPS client.
    pub fn verified_config(&self) -> ClientConfig {
        (*self.verified_config).clone()
    }

    /// The handshake over `stream` with the server `name` (a host name or an IP address);
    /// with `verify`, its certificate must chain to a trusted root and name `name`.
    pub async fn handshake<S>(
        &self,
        stream: S,
        name: &str,
        verify: bool,
    ) -> Result<(TlsStream<S>, Negotiated), HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let server = ServerName::try_from(name.to_string())
            .map_err(|_| HandshakeError::BadName(name.to_string()))?;
        let connector = match verify {
            true => &self.verified,
            false => &self.opportunistic,
        };
        let stream = connector
            .connect(server, stream)
            .await
            .map_err(|error| classify(error, name))?;
        let connection = stream.get_ref().1;
        let negotiated = Negotiated {
            version: super::protocol_name(connection.protocol_version()),
            cipher: connection
                .negotiated_cipher_suite()
                .map(|suite| format!("{:?}", suite.suite()))
                .unwrap_or_default(),
            verified: verify,
        };
        Ok((stream, negotiated))
    }
}

/// A certificate error in words (the rustls name in brackets, for searching).
fn classify(error: std::io::Error, name: &str) -> HandshakeError {
    let certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|inner| match inner {
            rustls::Error::InvalidCertificate(certificate) => Some(certificate.clone()),
            _ => None,
        });
    match certificate {
        None => HandshakeError::Handshake(error),
        Some(CertificateError::UnknownIssuer) => HandshakeError::Untrusted("UnknownIssuer".into()),
        Some(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => HandshakeError::WrongName(name.to_string()),
        Some(
            expired @ (CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. }),
        ) => HandshakeError::Expired(rustls::Error::InvalidCertificate(expired).to_string()),
        Some(other) => {
            HandshakeError::Certificate(rustls::Error::InvalidCertificate(other).to_string())
        }
    }
}

/// Takes any certificate chain; checks only that the server holds the key of the one it
/// sent (the handshake signature), which is what keeps the session encrypted to it.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
