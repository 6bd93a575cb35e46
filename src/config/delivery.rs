//! `[delivery]`'s rules on where a POST may go (issue 12 §5): `require_https` (no plain
//! `http://` target, callback or events URL off loopback) and `extra_ca_file` (roots trusted
//! in addition to the system's, for a target with a private CA; verification stays on).

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use super::ConfigError;
use super::oidc::is_loopback_host;

/// Whether a POST to `url` would travel unencrypted off this machine: `http://` to a host
/// other than `localhost` or a loopback address.
pub fn in_clear(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback_host(url)
}

/// What is wrong with a plain `http://` URL when `[delivery] require_https = true`.
pub const HTTPS_REQUIRED: &str = "plain http:// is refused because [delivery] require_https = true: \
     use an https:// URL (http:// is allowed only to localhost and loopback addresses)";

/// The certificates of `delivery.extra_ca_file`; an unreadable file or one without a
/// `CERTIFICATE` block is an error naming the file.
pub(super) fn extra_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let invalid = |reason: String| {
        ConfigError::invalid(
            "delivery.extra_ca_file",
            format!("{:?}", path.display().to_string()),
            reason,
        )
    };
    let roots = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("cannot read it ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not valid PEM ({e})")))?;
    if roots.is_empty() {
        return Err(invalid(
            "no CERTIFICATE block in it: expected the PEM root certificate(s) of the targets' CA"
                .into(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_off_loopback_is_in_clear() {
        for clear in ["http://app.example.com/in", "http://10.0.0.5:8080/"] {
            assert!(in_clear(&Url::parse(clear).unwrap()), "{clear}");
        }
        for safe in [
            "https://app.example.com/in",
            "http://127.0.0.1:3000/in",
            "http://127.8.9.10/",
            "http://[::1]:3000/",
            "http://LocalHost/in",
        ] {
            assert!(!in_clear(&Url::parse(safe).unwrap()), "{safe}");
        }
    }

    #[test]
    fn an_extra_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = extra_roots(&missing).unwrap_err().to_string();
        assert!(error.starts_with("delivery.extra_ca_file = "), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = extra_roots(&empty).unwrap_err().to_string();
        assert!(error.contains("no CERTIFICATE block"), "{error}");
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        assert_eq!(extra_roots(&ca).unwrap().len(), 1);
    }
}
