//! `[tls]`: where every listener's certificate comes from — ACME, PEM files or a self-signed
//! certificate — and the names it covers. The older `[smtp] tls_cert`/`tls_key`/
//! `tls_self_signed` keys still work and mean the same source for SMTP only.
//!
//! With no `[tls]` at all, SMTP still offers STARTTLS with a self-signed certificate
//! (encryption wherever possible; `postern check` warns) and the web listener stays plain HTTP.

use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::ConfigError;

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "letsencrypt-staging"`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The validated `[tls]` section.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub source: CertSource,
    /// Names the certificate covers besides `server.hostname` (ACME and self-signed).
    pub names: Vec<String>,
    /// What the config file said: `postern check` warns about nothing, and only a `[tls]`
    /// section turns HTTPS on by default.
    pub written: Written,
}

/// Where the certificate source was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nowhere: the self-signed default for SMTP.
    Nothing,
    /// The older `[smtp]` keys: SMTP STARTTLS only, as before `[tls]`.
    SmtpKeys,
    /// A `[tls]` section: every listener, HTTPS included.
    Section,
}

impl TlsConfig {
    /// The default with no `[tls]`: STARTTLS with a self-signed certificate.
    pub fn unconfigured() -> TlsConfig {
        TlsConfig {
            source: CertSource::SelfSigned,
            names: Vec::new(),
            written: Written::Nothing,
        }
    }

    /// Whether a certificate source was written at all (`postern check` warns when not).
    pub fn is_configured(&self) -> bool {
        self.written != Written::Nothing
    }

    /// Whether `web.listen` serves HTTPS when `[web] https` does not say.
    pub fn https_by_default(&self) -> bool {
        self.written == Written::Section && self.source != CertSource::Off
    }

    /// Every name to certify: `hostname` first, then `[tls] names`, without repeats.
    pub fn all_names(&self, hostname: &str) -> Vec<String> {
        let mut names = vec![hostname.to_ascii_lowercase()];
        for name in &self.names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Whether the certificate is one a browser trusts without a click-through (ACME or
    /// files): only then does HTTPS send `Strict-Transport-Security`.
    pub fn is_ca_issued(&self) -> bool {
        matches!(self.source, CertSource::Acme(_) | CertSource::Files { .. })
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// No certificate: STARTTLS is not offered, and there is no HTTPS.
    Off,
    /// Generated at start for the names (dev mode; the default with no `[tls]`).
    SelfSigned,
    /// PEM files on disk, read again when they change or on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// Issued and renewed by an ACME CA.
    Acme(AcmeSettings),
}

impl CertSource {
    /// The certificate file of a `files` source.
    pub fn cert_file(&self) -> Option<&std::path::Path> {
        match self {
            CertSource::Files { cert, .. } => Some(cert),
            _ => None,
        }
    }

    /// The word `[tls] mode` takes for this source.
    pub fn mode(&self) -> &'static str {
        match self {
            CertSource::Off => "off",
            CertSource::SelfSigned => "self-signed",
            CertSource::Files { .. } => "files",
            CertSource::Acme(_) => "acme",
        }
    }
}

/// `[tls] mode = "acme"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The CA's RFC 8555 directory URL.
    pub directory: String,
    /// Contact e-mail addresses given to the CA (without `mailto:`).
    pub contact: Vec<String>,
    /// Roots trusted besides the public ones when talking to the CA (`acme_ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub challenge: AcmeChallenge,
}

/// How the CA checks that Postern answers for the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// TLS-ALPN-01 on the HTTPS listener (port 443 as the CA sees it).
    TlsAlpn01,
    /// HTTP-01 on the port-80 listener (`[web] http_listen`).
    Http01,
}

impl AcmeChallenge {
    /// Where the CA checks, for people: `postern check` and `/settings`.
    pub fn describe(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "TLS-ALPN-01 on the HTTPS listener",
            AcmeChallenge::Http01 => "HTTP-01 on the port-80 listener (web.http_listen)",
        }
    }
}

/// The serde shape of `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    mode: String,
    #[serde(default)]
    names: Vec<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    contact: Vec<String>,
    directory: Option<String>,
    acme_ca_file: Option<PathBuf>,
    challenge: Option<String>,
}

/// The older `[smtp]` keys.
pub(super) struct LegacySmtpKeys {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: bool,
}

impl LegacySmtpKeys {
    fn written(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.self_signed
    }
}

/// `[tls]`, or the older `[smtp]` keys, or the default.
pub(super) fn validate(
    raw: Option<RawTls>,
    legacy: LegacySmtpKeys,
) -> Result<TlsConfig, ConfigError> {
    match raw {
        Some(_) if legacy.written() => Err(ConfigError::invalid(
            "smtp.tls_cert",
            "(set)",
            "[tls] replaces smtp.tls_cert, smtp.tls_key and smtp.tls_self_signed: keep only [tls]",
        )),
        Some(raw) => raw.validate(),
        None if legacy.written() => legacy_source(legacy),
        None => Ok(TlsConfig::unconfigured()),
    }
}

fn legacy_source(legacy: LegacySmtpKeys) -> Result<TlsConfig, ConfigError> {
    let source = match (legacy.cert, legacy.key, legacy.self_signed) {
        (Some(cert), Some(key), false) => CertSource::Files { cert, key },
        (None, None, true) => CertSource::SelfSigned,
        (Some(_), Some(_), true) => {
            return Err(ConfigError::invalid(
                "smtp.tls_self_signed",
                "true",
                "set either tls_cert + tls_key or tls_self_signed, not both",
            ));
        }
        (Some(cert), None, _) => {
            return Err(ConfigError::invalid(
                "smtp.tls_key",
                "(missing)",
                format!("tls_cert = {cert:?} needs tls_key too"),
            ));
        }
        (None, Some(key), _) => {
            return Err(ConfigError::invalid(
                "smtp.tls_cert",
                "(missing)",
                format!("tls_key = {key:?} needs tls_cert too"),
            ));
        }
        (None, None, false) => unreachable!("legacy keys were written"),
    };
    Ok(TlsConfig {
        source,
        names: Vec::new(),
        written: Written::SmtpKeys,
    })
}

impl RawTls {
    fn validate(self) -> Result<TlsConfig, ConfigError> {
        let names = self.names()?;
        let source = match self.mode.as_str() {
            "off" => CertSource::Off,
            "self-signed" => CertSource::SelfSigned,
            "files" => self.files()?,
            "acme" => CertSource::Acme(self.acme()?),
            other => {
                return Err(ConfigError::invalid(
                    "tls.mode",
                    format!("{other:?}"),
                    "expected \"acme\", \"files\", \"self-signed\" or \"off\"",
                ));
            }
        };
        self.only_for_acme(&source)?;
        Ok(TlsConfig {
            source,
            names,
            written: Written::Section,
        })
    }

    fn names(&self) -> Result<Vec<String>, ConfigError> {
        let mut names = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !super::raw::is_host_name(&name) || !name.contains('.') {
                return Err(ConfigError::invalid(
                    format!("tls.names[{i}]"),
                    format!("{name:?}"),
                    "expected a fully qualified host name such as mail.example.com (no wildcards: \
                     ACME here validates each name)",
                ));
            }
            names.push(name);
        }
        Ok(names)
    }

    fn files(&self) -> Result<CertSource, ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Ok(CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, _) => Err(ConfigError::invalid(
                "tls.cert_file",
                "(missing)",
                "mode = \"files\" needs cert_file (PEM chain, leaf first) and key_file",
            )),
            (_, None) => Err(ConfigError::invalid(
                "tls.key_file",
                "(missing)",
                "mode = \"files\" needs key_file (PEM private key) besides cert_file",
            )),
        }
    }

    fn acme(&self) -> Result<AcmeSettings, ConfigError> {
        let directory = match self.directory.as_deref() {
            None | Some("letsencrypt") => LETS_ENCRYPT.to_string(),
            Some("letsencrypt-staging") => LETS_ENCRYPT_STAGING.to_string(),
            Some(url) if url.starts_with("https://") && url.len() > "https://".len() => {
                url.to_string()
            }
            Some(other) => {
                return Err(ConfigError::invalid(
                    "tls.directory",
                    format!("{other:?}"),
                    "expected \"letsencrypt\", \"letsencrypt-staging\" or the https:// URL of \
                     an RFC 8555 directory",
                ));
            }
        };
        if self.contact.is_empty() {
            return Err(ConfigError::invalid(
                "tls.contact",
                "(missing)",
                "mode = \"acme\" needs a contact address, e.g. contact = [\"postmaster@example.com\"]: \
                 the CA writes there about expiring or revoked certificates",
            ));
        }
        let mut contact = Vec::new();
        for (i, address) in self.contact.iter().enumerate() {
            let address = address.strip_prefix("mailto:").unwrap_or(address);
            if !crate::mail::address::valid_address(address) {
                return Err(ConfigError::invalid(
                    format!("tls.contact[{i}]"),
                    format!("{address:?}"),
                    "expected an e-mail address such as postmaster@example.com",
                ));
            }
            contact.push(address.to_string());
        }
        let extra_roots = match &self.acme_ca_file {
            Some(path) => super::ca_file::extra_roots("tls.acme_ca_file", path)?,
            None => Vec::new(),
        };
        let challenge = match self.challenge.as_deref() {
            None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
            Some("http-01") => AcmeChallenge::Http01,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "tls.challenge",
                    format!("{other:?}"),
                    "expected \"tls-alpn-01\" (on the HTTPS listener) or \"http-01\" (on [web] http_listen)",
                ));
            }
        };
        Ok(AcmeSettings {
            directory,
            contact,
            extra_roots,
            challenge,
        })
    }

    /// ACME's keys elsewhere, and file keys outside `files`, are mistakes worth naming.
    fn only_for_acme(&self, source: &CertSource) -> Result<(), ConfigError> {
        let acme = matches!(source, CertSource::Acme(_));
        let files = matches!(source, CertSource::Files { .. });
        let stray = [
            ("tls.contact", !acme && !self.contact.is_empty()),
            ("tls.directory", !acme && self.directory.is_some()),
            ("tls.acme_ca_file", !acme && self.acme_ca_file.is_some()),
            ("tls.challenge", !acme && self.challenge.is_some()),
            ("tls.cert_file", !files && self.cert_file.is_some()),
            ("tls.key_file", !files && self.key_file.is_some()),
        ];
        match stray.into_iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::invalid(
                key,
                "(set)",
                format!("has no effect with mode = {:?}", source.mode()),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Vec::new()).map_err(|e| e.to_string())
    }

    const ACME: &str = "[server]\nhostname = \"mx.example.org\"\n\
        [tls]\nmode = \"acme\"\ncontact = [\"mailto:ops@example.org\"]\nnames = [\"Mail.Example.org.\"]\n";

    #[test]
    fn acme_defaults_to_lets_encrypt_production_and_tls_alpn_on_https() {
        let config = parse(ACME).unwrap();
        let CertSource::Acme(acme) = &config.tls.source else {
            panic!("{:?}", config.tls.source)
        };
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.contact, ["ops@example.org"]);
        assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(
            config.tls.all_names(&config.hostname),
            ["mx.example.org", "mail.example.org"]
        );
        assert!(config.web.https && config.web.secure_cookies);
        let staging = parse(&format!("{ACME}directory = \"letsencrypt-staging\"\n")).unwrap();
        let CertSource::Acme(acme) = staging.tls.source else {
            panic!()
        };
        assert_eq!(acme.directory, LETS_ENCRYPT_STAGING);
    }

    #[test]
    fn mistakes_are_named_with_the_fix() {
        for (text, says) in [
            ("[tls]\nmode = \"acme\"\n", "tls.contact = (missing)"),
            ("[tls]\nmode = \"magic\"\n", "tls.mode = \"magic\""),
            ("[tls]\nmode = \"files\"\n", "tls.cert_file = (missing)"),
            (
                "[tls]\nmode = \"files\"\ncert_file = \"/c.pem\"\n",
                "tls.key_file = (missing)",
            ),
            (
                "[tls]\nmode = \"self-signed\"\ncontact = [\"a@b.org\"]\n",
                "tls.contact = (set): has no effect with mode = \"self-signed\"",
            ),
            (
                "[tls]\nmode = \"acme\"\ncontact = [\"a@b.org\"]\ndirectory = \"http://ca.test/dir\"\n",
                "tls.directory = \"http://ca.test/dir\"",
            ),
            (
                "[tls]\nmode = \"acme\"\ncontact = [\"not an address\"]\n",
                "tls.contact[0]",
            ),
            (
                "[tls]\nmode = \"self-signed\"\nnames = [\"*.example.org\"]\n",
                "tls.names[0]",
            ),
            (
                "[tls]\nmode = \"acme\"\ncontact = [\"a@b.org\"]\nchallenge = \"http-01\"\n",
                "set [web] http_listen",
            ),
            (
                "[smtp]\ntls_self_signed = true\n[tls]\nmode = \"self-signed\"\n",
                "[tls] replaces smtp.tls_cert",
            ),
            (
                "[tls]\nmode = \"off\"\n[web]\nhttps = true\n",
                "HTTPS needs a certificate",
            ),
            ("[web]\nhttp_listen = \"127.0.0.1:80\"\n", "web.http_listen"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn only_a_tls_section_turns_https_on() {
        let none = parse("").unwrap();
        assert_eq!(none.tls.source, CertSource::SelfSigned);
        assert!(!none.tls.is_configured() && !none.web.https);
        let legacy = parse("[smtp]\ntls_self_signed = true\n").unwrap();
        assert_eq!(legacy.tls.written, Written::SmtpKeys);
        assert!(!legacy.web.https);
        let section = parse("[tls]\nmode = \"self-signed\"\n").unwrap();
        assert!(section.web.https && !section.tls.is_ca_issued());
        let proxied = parse("[tls]\nmode = \"self-signed\"\n[web]\nhttps = false\n").unwrap();
        assert!(!proxied.web.https);
        let off = parse("[tls]\nmode = \"off\"\n").unwrap();
        assert!(!off.web.https);
        // Off loopback, plain HTTP is still refused; HTTPS is not.
        let public = "[web]\nlisten = \"0.0.0.0:443\"\n";
        assert!(parse(public).unwrap_err().contains("plain HTTP"));
        assert!(parse(&format!("[tls]\nmode = \"self-signed\"\n{public}")).is_ok());
    }
}
