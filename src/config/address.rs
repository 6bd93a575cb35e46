//! The address model: which recipient addresses Postern accepts, where their mail goes and
//! in which payload format.

use std::fmt;

/// A recipient pattern: one exact address, or every address of a domain (`*@domain`).
/// Both parts are stored lower-case; matching is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    Exact { local: String, domain: String },
    CatchAll { domain: String },
}

impl AddressPattern {
    /// Parses `user@example.com` or `*@example.com`; the error says what is allowed.
    pub fn parse(text: &str) -> Result<AddressPattern, String> {
        let allowed = || "expected user@example.com or *@example.com".to_string();
        let (local, domain) = text.rsplit_once('@').ok_or_else(allowed)?;
        let domain = domain.to_ascii_lowercase();
        let domain_ok = !domain.is_empty()
            && domain.len() <= 255
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !domain_ok || local.is_empty() || local.len() > 64 {
            return Err(allowed());
        }
        if local == "*" {
            return Ok(AddressPattern::CatchAll { domain });
        }
        if local.contains(['*', ' ', '<', '>', '@']) || local.chars().any(char::is_control) {
            return Err(allowed());
        }
        Ok(AddressPattern::Exact {
            local: local.to_lowercase(),
            domain,
        })
    }

    pub fn domain(&self) -> &str {
        match self {
            AddressPattern::Exact { domain, .. } | AddressPattern::CatchAll { domain } => domain,
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressPattern::Exact { local, domain } => write!(f, "{local}@{domain}"),
            AddressPattern::CatchAll { domain } => write!(f, "*@{domain}"),
        }
    }
}

/// The HTTP POST format of an address (spec §1); the ids are the spec's (§1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `json+n`: JSON Normalized (spec §1.6).
    JsonNormalized,
    /// `multipart+n`: Multipart Normalized (spec §1.7).
    MultipartNormalized,
    /// `raw`: the message as received plus the envelope, as form-data (spec §1.8).
    Raw,
    /// `json`: deprecated JSON, header names as written (spec §1.9.1).
    Json,
    /// `multipart`: deprecated Multipart, indexed attachments (spec §1.9.2).
    Multipart,
}

impl Format {
    pub const ALL: &[(&str, Format)] = &[
        ("json+n", Format::JsonNormalized),
        ("multipart+n", Format::MultipartNormalized),
        ("raw", Format::Raw),
        ("json", Format::Json),
        ("multipart", Format::Multipart),
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
        assert_eq!(
            AddressPattern::parse("Support@Example.COM").unwrap(),
            AddressPattern::Exact {
                local: "support".into(),
                domain: "example.com".into()
            }
        );
        assert_eq!(
            AddressPattern::parse("*@example.com").unwrap(),
            AddressPattern::CatchAll {
                domain: "example.com".into()
            }
        );
        for bad in [
            "",
            "user",
            "@example.com",
            "user@",
            "a*b@example.com",
            "u@exa mple.com",
            "u@.com",
        ] {
            assert!(
                AddressPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
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
