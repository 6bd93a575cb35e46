//! DKIM for sending domains: key generation (RSA-2048 or Ed25519, made by Postern), the DNS
//! records an operator publishes, and signing (mail-auth) just before a message leaves.
//!
//! Keys are stored as PKCS#8 PEM in `sending_domains`; the public half as the base64 the
//! TXT record's `p=` carries — the SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw
//! 32-byte key for Ed25519 (RFC 8463 §4).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::store::SendingDomainRow;

/// The header fields signed when present (RFC 6376 §5.4.1's recommendations).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa2048,
    Ed25519,
}

impl Algorithm {
    /// The name stored in `sending_domains.dkim_algorithm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa2048 => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "rsa-sha256" | "rsa" => Some(Algorithm::Rsa2048),
            "ed25519-sha256" | "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// The TXT record's `k=`.
    fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa2048 => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot generate a DKIM key: {0}")]
    Generate(String),
    #[error("the stored DKIM key of {domain} cannot be read: {reason}")]
    BadKey { domain: String, reason: String },
    #[error("cannot sign for {domain}: {reason}")]
    Sign { domain: String, reason: String },
}

/// A new key pair: (PKCS#8 PEM private key, base64 public key for `p=`).
pub fn generate(algorithm: Algorithm) -> Result<(String, String), DkimError> {
    let generated = match algorithm {
        Algorithm::Rsa2048 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
        Algorithm::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
    }
    .map_err(|e| DkimError::Generate(e.to_string()))?;
    let public = match algorithm {
        Algorithm::Rsa2048 => generated.public_key_der(),
        // The SubjectPublicKeyInfo of an Ed25519 key ends with the 32 raw bytes.
        Algorithm::Ed25519 => {
            let spki = generated.public_key_der();
            spki[spki.len().saturating_sub(32)..].to_vec()
        }
    };
    Ok((generated.serialize_pem(), STANDARD.encode(public)))
}

/// The TXT record's value: `v=DKIM1; k=rsa; p=…`.
pub fn txt_record(domain: &SendingDomainRow) -> String {
    let key_type = Algorithm::from_name(&domain.dkim_algorithm)
        .unwrap_or(Algorithm::Rsa2048)
        .key_type();
    format!("v=DKIM1; k={key_type}; p={}", domain.dkim_public_key)
}

/// Where the TXT record goes: `<selector>._domainkey.<domain>`.
pub fn record_name(domain: &SendingDomainRow) -> String {
    format!("{}._domainkey.{}", domain.dkim_selector, domain.domain)
}

/// `message` with a `DKIM-Signature` header for `domain` in front.
pub fn sign(domain: &SendingDomainRow, message: &[u8]) -> Result<Vec<u8>, DkimError> {
    let bad_key = |reason: String| DkimError::BadKey {
        domain: domain.domain.clone(),
        reason,
    };
    let sign_error = |e: mail_auth::Error| DkimError::Sign {
        domain: domain.domain.clone(),
        reason: e.to_string(),
    };
    let der = PrivatePkcs8KeyDer::from_pem_slice(domain.dkim_private_key.as_bytes())
        .map_err(|e| bad_key(format!("not a PKCS#8 PEM key: {e}")))?;
    let header = match Algorithm::from_name(&domain.dkim_algorithm) {
        Some(Algorithm::Rsa2048) => {
            let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der))
                .map_err(|e| bad_key(e.to_string()))?;
            DkimSigner::from_key(key)
                .domain(domain.domain.clone())
                .selector(domain.dkim_selector.clone())
                .headers(SIGNED_HEADERS.iter().copied())
                .sign(message)
                .map_err(sign_error)?
                .to_header()
        }
        Some(Algorithm::Ed25519) => {
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
                .map_err(|e| bad_key(e.to_string()))?;
            DkimSigner::from_key(key)
                .domain(domain.domain.clone())
                .selector(domain.dkim_selector.clone())
                .headers(SIGNED_HEADERS.iter().copied())
                .sign(message)
                .map_err(sign_error)?
                .to_header()
        }
        None => {
            return Err(bad_key(format!(
                "unknown algorithm {}",
                domain.dkim_algorithm
            )));
        }
    };
    let mut signed = Vec::with_capacity(header.len() + message.len());
    signed.extend_from_slice(header.as_bytes());
    signed.extend_from_slice(message);
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(algorithm: Algorithm) -> SendingDomainRow {
        let (private, public) = generate(algorithm).unwrap();
        SendingDomainRow {
            id: 1,
            domain: "example.com".into(),
            return_path_domain: "mta.example.com".into(),
            dkim_selector: "s1".into(),
            dkim_algorithm: algorithm.as_str().into(),
            dkim_private_key: private,
            dkim_public_key: public,
            created_at: 0,
        }
    }

    #[test]
    fn generated_keys_sign_and_their_records_say_how_to_verify() {
        for algorithm in [Algorithm::Rsa2048, Algorithm::Ed25519] {
            let domain = domain(algorithm);
            let message =
                b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
            let signed = sign(&domain, message).unwrap();
            let text = String::from_utf8(signed).unwrap();
            assert!(text.starts_with("DKIM-Signature: v=1; a="), "{text}");
            assert!(text.contains("d=example.com") && text.contains("s=s1"));
            assert!(text.ends_with("\r\n\r\nbody\r\n"));
            let record = txt_record(&domain);
            assert!(record.starts_with(&format!("v=DKIM1; k={}; p=", algorithm.key_type())));
            assert_eq!(record_name(&domain), "s1._domainkey.example.com");
        }
        // RSA-2048: the SubjectPublicKeyInfo is 294 bytes; Ed25519: the raw 32.
        let rsa = domain(Algorithm::Rsa2048);
        assert_eq!(STANDARD.decode(&rsa.dkim_public_key).unwrap().len(), 294);
        let ed = domain(Algorithm::Ed25519);
        assert_eq!(STANDARD.decode(&ed.dkim_public_key).unwrap().len(), 32);
    }

    #[test]
    fn a_broken_key_is_an_error_not_a_panic() {
        let mut broken = domain(Algorithm::Ed25519);
        broken.dkim_private_key =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        assert!(matches!(
            sign(&broken, b"From: a@b.c\r\n\r\n"),
            Err(DkimError::BadKey { .. })
        ));
    }
}
