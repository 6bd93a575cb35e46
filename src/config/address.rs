//! The address model: which recipient addresses Postern accepts, where their mail goes and
//! in which payload format.

use std::fmt;

/// A recipient pattern: `user@example.com`, `*@example.com` (every address of a domain),
/// or either of them at `*.example.com` (every direct subdomain: one level, contract §4.3).
/// Stored lower-case; matching is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressPattern {
    pub local: LocalPattern,
    pub domain: DomainPattern,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalPattern {
    /// `*`
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Exact(String),
    /// `*.parent`: any single label in front of `parent`.
    Subdomain(String),
}

impl DomainPattern {
    /// Parses `example.com` or `*.example.com`.
    pub fn parse(text: &str) -> Result<DomainPattern, String> {
        let allowed = || "expected a domain such as example.com or *.example.com".to_string();
        let text = text.to_ascii_lowercase();
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(parent) => (true, parent.to_string()),
            None => (false, text),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        match (valid, wildcard) {
            (false, _) => Err(allowed()),
            // `*.com` would take a whole top-level domain.
            (true, true) if !name.contains('.') => Err(allowed()),
            (true, true) => Ok(DomainPattern::Subdomain(name)),
            (true, false) => Ok(DomainPattern::Exact(name)),
        }
    }

    /// Whether `domain` (lower-case) is covered.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => domain == name,
            DomainPattern::Subdomain(parent) => domain
                .strip_suffix(parent.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }

    /// The parent of a one-level subdomain: `a.example.com` → `example.com`.
    pub fn parent_of(domain: &str) -> Option<&str> {
        domain
            .split_once('.')
            .map(|(_, parent)| parent)
            .filter(|p| p.contains('.'))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => f.write_str(name),
            DomainPattern::Subdomain(parent) => write!(f, "*.{parent}"),
        }
    }
}

impl AddressPattern {
    /// Parses `user@example.com`, `*@example.com`, `user@*.example.com` or
    /// `*@*.example.com`; the error says what is allowed.
    pub fn parse(text: &str) -> Result<AddressPattern, String> {
        let allowed =
            || "expected user@example.com, *@example.com, or either at *.example.com".to_string();
        let (local, domain) = text.rsplit_once('@').ok_or_else(allowed)?;
        let domain = DomainPattern::parse(domain).map_err(|_| allowed())?;
        if local.is_empty() || local.len() > 64 {
            return Err(allowed());
        }
        if local == "*" {
            return Ok(AddressPattern {
                local: LocalPattern::Any,
                domain,
            });
        }
        if local.contains(['*', ' ', '<', '>', '@']) || local.chars().any(char::is_control) {
            return Err(allowed());
        }
        Ok(AddressPattern {
            local: LocalPattern::Exact(local.to_lowercase()),
            domain,
        })
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.local {
            LocalPattern::Any => write!(f, "*@{}", self.domain),
            LocalPattern::Exact(local) => write!(f, "{local}@{}", self.domain),
        }
    }
}

/// The HTTP POST format of an address (contract §1); the ids are the contract's (contract §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `json+n`: JSON Normalized (contract §1.6).
    JsonNormalized,
    /// `multipart+n`: Multipart Normalized (contract §1.7).
    MultipartNormalized,
    /// `raw`: the message as received plus the envelope, as form-data (contract §1.8).
    Raw,
    /// `json`: deprecated JSON, header names as written (contract §1.9.1).
    Json,
    /// `multipart`: deprecated Multipart, indexed attachments (contract §1.9.2).
    Multipart,
    /// `original`: deprecated flat fields with an MD5-signed request (contract §1.9.3, §2.9).
    Original,
}

impl Format {
    pub const ALL: &[(&str, Format)] = &[
        ("json+n", Format::JsonNormalized),
        ("multipart+n", Format::MultipartNormalized),
        ("raw", Format::Raw),
        ("json", Format::Json),
        ("multipart", Format::Multipart),
        ("original", Format::Original),
    ];

    pub fn parse(text: &str) -> Result<Format, String> {
        Format::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, format)| *format)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|(n, _)| *n).collect();
                format!("supported formats: {}", names.join(", "))
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::JsonNormalized => "json+n",
            Format::MultipartNormalized => "multipart+n",
            Format::Raw => "raw",
            Format::Json => "json",
            Format::Multipart => "multipart",
            Format::Original => "original",
        }
    }
}

/// A webhook target. Any userinfo is a secret (it becomes a Basic auth header), so
/// `Display` and `Debug` show it as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl(url::Url);

impl TargetUrl {
    pub fn parse(text: &str) -> Result<TargetUrl, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("expected an http:// or https:// URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("expected an http:// or https:// URL with a host".into());
        }
        Ok(TargetUrl(url))
    }

    /// The URL with its secrets, for the HTTP client only.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// Masks the userinfo of a string that may not even be a valid URL.
    pub fn mask_str(text: &str) -> String {
        match text.rfind('@') {
            Some(at) => {
                let start = text.find("://").map(|i| i + 3).filter(|&i| i <= at);
                let start = start.unwrap_or(0);
                format!("{:?}", format!("{}***{}", &text[..start], &text[at..]))
            }
            None => format!("{text:?}"),
        }
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if !shown.username().is_empty() || shown.password().is_some() {
            let _ = shown.set_username("***");
            let _ = shown.set_password(None);
        }
        write!(f, "{shown}")
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_lowercase() {
        let exact = AddressPattern::parse("Support@Example.COM").unwrap();
        assert_eq!(exact.local, LocalPattern::Exact("support".into()));
        assert_eq!(exact.domain, DomainPattern::Exact("example.com".into()));
        assert_eq!(exact.to_string(), "support@example.com");
        let all = AddressPattern::parse("*@*.Example.com").unwrap();
        assert_eq!(all.local, LocalPattern::Any);
        assert_eq!(all.domain, DomainPattern::Subdomain("example.com".into()));
        assert_eq!(all.to_string(), "*@*.example.com");
        for bad in [
            "",
            "user",
            "@example.com",
            "user@",
            "a*b@example.com",
            "u@exa mple.com",
            "u@.com",
            "*@*.com",
            "*@a.*.com",
        ] {
            assert!(
                AddressPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn wildcard_domains_cover_one_level() {
        let wildcard = DomainPattern::parse("*.example.com").unwrap();
        assert!(wildcard.matches("eu.example.com"));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("a.b.example.com"));
        assert!(!wildcard.matches("badexample.com"));
        assert_eq!(
            DomainPattern::parent_of("eu.example.com"),
            Some("example.com")
        );
        assert_eq!(DomainPattern::parent_of("example.com"), None);
    }

    #[test]
    fn unknown_format_is_an_error_naming_the_supported_ones() {
        assert_eq!(Format::parse("json+n"), Ok(Format::JsonNormalized));
        for (name, format) in Format::ALL {
            assert_eq!(Format::parse(name), Ok(*format));
            assert_eq!(format.as_str(), *name);
        }
        let err = Format::parse("xml").unwrap_err();
        assert!(err.contains("json+n"), "{err}");
    }

    #[test]
    fn target_userinfo_is_never_displayed() {
        let t = TargetUrl::parse("https://user:s3cret@app.example.com/in?x=1").unwrap();
        assert_eq!(t.to_string(), "https://***@app.example.com/in?x=1");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.expose().password(), Some("s3cret"));
        assert!(!TargetUrl::mask_str("ftp://u:s3cret@host").contains("s3cret"));
        assert!(!TargetUrl::mask_str("htp:/u:s3cret@ho st").contains("s3cret"));
    }
}
