//! SMTP credentials: CloudMailin's "SMTP username" and its token, which is both the SMTP
//! AUTH password and the send API's bearer token (contract §6.2, §6.5).
//!
//! A token is 256 random bits shown once; the store keeps its SHA-256 and its first
//! characters. A credential is `live` (delivers) or `test` (never delivers), may be limited
//! to some senders, and carries the account's events webhook URL and tracking defaults.

use serde::Serialize;

use super::{Outbound, OutboundMode, SubmitError};
use crate::config::{HTTPS_REQUIRED, TargetUrl, in_clear};
use crate::secret;
use crate::store::{CredentialMode, NewCredential, StoreError};

/// Characters of a token kept in clear to recognise it.
const SHOWN_CHARS: usize = 8;
/// `last_used_at` is written at most this often per credential.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// A credential as listed and as the queue sees it: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub id: i64,
    pub username: String,
    pub prefix: String,
    pub mode: CredentialMode,
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub revoked_at: Option<i64>,
}

impl Credential {
    /// Whether mail from `sender` may go out under this credential: any sender when no
    /// pattern is set, else one matching `user@example.com` exactly or `@example.com` by
    /// domain (case-insensitive).
    pub fn may_send_as(&self, sender: &str) -> bool {
        if self.allowed_senders.is_empty() {
            return true;
        }
        let sender = sender.to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        self.allowed_senders.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix('@') {
                Some(allowed_domain) => allowed_domain == domain,
                None => pattern == sender,
            }
        })
    }
}

/// What an operator asks for when making a credential.
#[derive(Debug, Clone, Default)]
pub struct NewCredentialSpec {
    pub username: String,
    pub test: bool,
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    /// `None`: on (the default policy, contract §6.12).
    pub track_opens: Option<bool>,
    pub track_clicks: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "username {0:?} is not allowed: use 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    )]
    BadUsername(String),
    #[error("sender pattern {0:?} is not an address (user@example.com) or a domain (@example.com)")]
    BadSender(String),
    #[error("events URL {0:?} must be an http:// or https:// URL")]
    BadEventsUrl(String),
    /// The URL, masked.
    #[error("events URL {0}: {HTTPS_REQUIRED}")]
    EventsUrlInClear(String),
    #[error("a credential called {0:?} exists already")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Usernames go into URL paths unencoded (the JS client does not encode them, contract §6.3).
fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
        })
}

/// Any name as a valid username (dev mode): lower case, other characters as `-`, at most 64.
fn dev_username(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '_' | '-') => c,
            _ => '-',
        })
        .take(64)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'u');
        out.truncate(64);
    }
    out
}

fn valid_sender_pattern(pattern: &str) -> bool {
    let (local, domain) = match pattern.strip_prefix('@') {
        Some(domain) => ("x", domain),
        None => match pattern.rsplit_once('@') {
            Some(parts) => parts,
            None => return false,
        },
    };
    !local.is_empty()
        && domain.contains('.')
        && !pattern
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '>'))
}

impl Outbound {
    /// Makes a credential; returns it with its token, which is not kept anywhere else.
    pub async fn create_credential(
        &self,
        spec: NewCredentialSpec,
    ) -> Result<(Credential, String), CredentialError> {
        if !valid_username(&spec.username) {
            return Err(CredentialError::BadUsername(spec.username));
        }
        if let Some(bad) = spec
            .allowed_senders
            .iter()
            .find(|p| !valid_sender_pattern(p))
        {
            return Err(CredentialError::BadSender(bad.clone()));
        }
        if let Some(url) = &spec.events_url {
            self.check_events_url(url)?;
        }
        // Letters and digits only: it goes into shell commands (`swaks --auth-password …`).
        let secret = secret::new_alphanumeric_token();
        let row = self
            .store
            .insert_credential(NewCredential {
                username: spec.username.clone(),
                secret_hash: secret::sha256_hex(&secret),
                prefix: secret[..SHOWN_CHARS].to_string(),
                mode: if spec.test {
                    CredentialMode::Test
                } else {
                    CredentialMode::Live
                },
                allowed_senders: spec.allowed_senders,
                events_url: spec.events_url,
                track_opens: spec.track_opens.unwrap_or(true),
                track_clicks: spec.track_clicks.unwrap_or(true),
                created_at: self.clock.unix(),
            })
            .await?
            .ok_or(CredentialError::Taken(spec.username))?;
        Ok((row.into(), secret))
    }

    /// An `http(s)://` URL with a host; not plain `http://` off loopback when
    /// `[delivery] require_https` is on.
    fn check_events_url(&self, url: &str) -> Result<(), CredentialError> {
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| CredentialError::BadEventsUrl(url.to_string()))?;
        if self.require_https && in_clear(&parsed) {
            return Err(CredentialError::EventsUrlInClear(TargetUrl::mask_str(url)));
        }
        Ok(())
    }

    pub async fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        Ok(self
            .store
            .credentials()
            .await?
            .into_iter()
            .map(Credential::from)
            .collect())
    }

    /// Revokes the credential called `username`; false when there is no live one.
    pub async fn revoke_credential(&self, username: &str) -> Result<bool, StoreError> {
        match self.store.credential_by_username(username).await? {
            Some(row) => {
                self.store
                    .revoke_credential(row.id, self.clock.unix())
                    .await
            }
            None => Ok(false),
        }
    }
}

pub(super) async fn authenticate(
    outbound: &Outbound,
    username: &str,
    presented: &str,
) -> Result<Credential, SubmitError> {
    // Dev mode takes any username, e.g. an email address: it becomes a valid one.
    let dev_name;
    let username = match outbound.mode {
        OutboundMode::Capture => {
            dev_name = dev_username(username);
            dev_name.as_str()
        }
        OutboundMode::Deliver => username,
    };
    let row = outbound.store.credential_by_username(username).await?;
    let now = outbound.clock.unix();
    let row = match (row, outbound.mode) {
        (Some(row), OutboundMode::Capture) => row,
        (None, OutboundMode::Capture) if valid_username(username) => {
            // Dev mode: the first use of a username makes it (any token works).
            let spec = NewCredentialSpec {
                username: username.to_string(),
                ..NewCredentialSpec::default()
            };
            match outbound.create_credential(spec).await {
                Ok((credential, _)) => return Ok(credential),
                Err(CredentialError::Taken(_)) => outbound
                    .store
                    .credential_by_username(username)
                    .await?
                    .ok_or(SubmitError::Unauthorized)?,
                Err(CredentialError::Store(error)) => return Err(error.into()),
                Err(_) => return Err(SubmitError::Unauthorized),
            }
        }
        (Some(row), OutboundMode::Deliver)
            // Digests of a 256-bit token: comparing them leaks nothing usable about it.
            if row.revoked_at.is_none() && row.secret_hash == secret::sha256_hex(presented) =>
        {
            row
        }
        _ => return Err(SubmitError::Unauthorized),
    };
    if let Err(error) = outbound
        .store
        .touch_credential(row.id, now, TOUCH_INTERVAL_SECS)
        .await
    {
        tracing::warn!(%error, "cannot record the credential's use");
    }
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(patterns: &[&str]) -> Credential {
        Credential {
            id: 1,
            username: "app".into(),
            prefix: String::new(),
            mode: CredentialMode::Live,
            allowed_senders: patterns.iter().map(|p| p.to_string()).collect(),
            events_url: None,
            track_opens: true,
            track_clicks: true,
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn sender_patterns_match_addresses_and_domains() {
        assert!(credential(&[]).may_send_as("anyone@anywhere.test"));
        let limited = credential(&["alerts@example.com", "@mail.example.org"]);
        assert!(limited.may_send_as("Alerts@Example.com"));
        assert!(limited.may_send_as("x@mail.example.org"));
        assert!(!limited.may_send_as("other@example.com"));
        assert!(!limited.may_send_as("x@sub.mail.example.org"));
        assert!(!limited.may_send_as("x@example.org"));
    }

    #[test]
    fn usernames_are_url_safe() {
        for good in ["app", "my-app.prod", "a1_b"] {
            assert!(valid_username(good), "{good}");
        }
        for bad in ["", "App", "-app", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
        for (given, used) in [
            ("dev", "dev"),
            ("Me@Example.COM", "me-example.com"),
            ("", "u"),
            ("-x y", "u-x-y"),
        ] {
            assert_eq!(dev_username(given), used);
            assert!(valid_username(used), "{used}");
        }
        assert_eq!(dev_username(&"é".repeat(70)).len(), 64);
        assert!(valid_sender_pattern("@example.com"));
        assert!(valid_sender_pattern("a@example.com"));
        assert!(!valid_sender_pattern("example.com"));
        assert!(!valid_sender_pattern("@localhost"));
    }
}
