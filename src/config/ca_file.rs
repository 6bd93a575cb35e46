//! `extra_ca_file` settings (`[delivery]`, `[outbound]`): a PEM file of CA certificates
//! trusted besides the usual roots, read and checked once at startup.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::ConfigError;

/// The certificates of the file `key` names, each usable as a root; an unreadable file, one
/// without a `CERTIFICATE` block or a certificate that cannot be a root is an error naming
/// the file.
pub(super) fn extra_roots(
    key: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let invalid = |reason: String| {
        ConfigError::invalid(key, format!("{:?}", path.display().to_string()), reason)
    };
    let roots = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("cannot read it ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not valid PEM ({e})")))?;
    if roots.is_empty() {
        return Err(invalid(
            "no CERTIFICATE block in it: expected the PEM root certificate(s) of the CA to trust"
                .into(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, root) in roots.iter().enumerate() {
        store
            .add(root.clone())
            .map_err(|e| invalid(format!("certificate {} cannot be a root ({e})", i + 1)))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_file_must_hold_a_usable_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let key = "outbound.extra_ca_file";
        let missing = dir.path().join("missing.pem");
        let error = extra_roots(key, &missing).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{key} = {:?}: cannot read it (I/O error: No such file or directory (os error 2))",
                missing.display().to_string()
            )
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = extra_roots(key, &empty).unwrap_err().to_string();
        assert!(error.contains("no CERTIFICATE block"), "{error}");
        let not_x509 = dir.path().join("not-x509.pem");
        std::fs::write(
            &not_x509,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = extra_roots(key, &not_x509).unwrap_err().to_string();
        assert!(error.contains("certificate 1 cannot be a root"), "{error}");
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        assert_eq!(extra_roots(key, &ca).unwrap(), [cert.cert.der().clone()]);
    }
}
