//! TLS server configuration: the only module that builds rustls configs.
//!
//! The STARTTLS certificate comes from PEM files or, in dev mode, from a self-signed
//! certificate generated at start (rcgen). ACME will plug in here as another source.
//! `client`: the configs of the connections Postern opens itself (outbound STARTTLS).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;

pub mod client;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(rcgen::Error),
}

/// The server config for STARTTLS, or `None` when TLS is off.
pub fn server_config(
    source: &TlsSource,
    hostname: &str,
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (chain, key) = match source {
        TlsSource::Off => return Ok(None),
        TlsSource::Files { cert, key } => (load_chain(cert)?, load_key(key)?),
        TlsSource::SelfSigned => self_signed(hostname)?,
    };
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Mismatch)?;
    Ok(Some(Arc::new(config)))
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

fn self_signed(
    hostname: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certified = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::try_from(certified.key_pair.serialize_der())
        .expect("rcgen serialises PKCS#8");
    Ok((vec![certified.cert.der().clone()], key))
}

/// The protocol name as CloudMailin reports it in `envelope.tls_cipher`, e.g. `TLSv1.3`.
pub fn protocol_name(version: Option<rustls::ProtocolVersion>) -> &'static str {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}
