//! Sign-ins waiting for the provider to send the browser back: kept in memory for
//! [`PENDING_TIMEOUT`], at most [`MAX_PENDING`] at a time, each taken out at most once.
//!
//! The browser holds a random token in a short-lived cookie; the map is keyed by its
//! SHA-256, so a callback is only accepted from the browser that started the sign-in (and
//! the `state` parameter must match as well). A restart forgets them all: the user clicks
//! the button again.

use std::collections::HashMap;
use std::time::Duration;

use crate::secret;

/// How long the provider may take (the user types a password, maybe a second factor there).
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// More than this many unfinished sign-ins at once: the oldest is dropped.
pub const MAX_PENDING: usize = 1000;

/// What the callback needs to finish a sign-in.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub provider: String,
    /// The `state` sent to the provider.
    pub state: String,
    pub pkce_verifier: String,
    /// OpenID Connect only.
    pub nonce: Option<String>,
    /// Where the provider sends the browser back; the token request repeats it.
    pub redirect_url: String,
    /// Endpoints found by discovery at the start (OpenID Connect).
    pub endpoints: Option<super::protocol::Endpoints>,
    /// Where to go after signing in (a path on this site).
    pub next: String,
    pub started_at: i64,
}

/// Why a callback has nothing to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No such sign-in: no cookie, a forged one, finished already, or a restart since.
    Unknown,
    /// Started more than [`PENDING_TIMEOUT`] ago.
    Expired,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    by_browser: HashMap<String, PendingLogin>,
}

impl Pending {
    /// Keeps `login`; returns the browser's token for the cookie.
    pub fn insert(&mut self, login: PendingLogin, now: i64) -> String {
        let timeout = PENDING_TIMEOUT.as_secs() as i64;
        self.by_browser
            .retain(|_, pending| now - pending.started_at < timeout);
        while self.by_browser.len() >= MAX_PENDING {
            let oldest = self
                .by_browser
                .iter()
                .min_by_key(|(_, pending)| pending.started_at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.by_browser.remove(&key),
                None => break,
            };
        }
        let browser = secret::new_token();
        self.by_browser.insert(secret::sha256_hex(&browser), login);
        browser
    }

    /// Takes out the sign-in of the browser holding `browser` (once only).
    pub fn take(&mut self, browser: &str, now: i64) -> Result<PendingLogin, Missing> {
        let login = self
            .by_browser
            .remove(&secret::sha256_hex(browser))
            .ok_or(Missing::Unknown)?;
        if now - login.started_at >= PENDING_TIMEOUT.as_secs() as i64 {
            return Err(Missing::Expired);
        }
        Ok(login)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_browser.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(started_at: i64) -> PendingLogin {
        PendingLogin {
            provider: "p".into(),
            state: "s".into(),
            pkce_verifier: "v".into(),
            nonce: None,
            redirect_url: "http://127.0.0.1/cb".into(),
            endpoints: None,
            next: "/".into(),
            started_at,
        }
    }

    #[test]
    fn a_sign_in_is_taken_once_by_its_browser_within_the_timeout() {
        let mut pending = Pending::default();
        let browser = pending.insert(login(100), 100);
        assert_eq!(
            pending.take("another browser", 101).unwrap_err(),
            Missing::Unknown
        );
        assert_eq!(pending.take(&browser, 101).unwrap().state, "s");
        assert_eq!(pending.take(&browser, 102).unwrap_err(), Missing::Unknown);

        let late = pending.insert(login(100), 100);
        let timeout = PENDING_TIMEOUT.as_secs() as i64;
        assert_eq!(
            pending.take(&late, 100 + timeout).unwrap_err(),
            Missing::Expired
        );
    }

    #[test]
    fn the_map_is_bounded_and_sheds_the_oldest() {
        let mut pending = Pending::default();
        let first = pending.insert(login(0), 0);
        let second = pending.insert(login(1), 1);
        for i in 0..MAX_PENDING {
            pending.insert(login(2), 2 + (i as i64 % 3));
        }
        assert_eq!(pending.len(), MAX_PENDING);
        assert_eq!(pending.take(&first, 10).unwrap_err(), Missing::Unknown);
        assert_eq!(pending.take(&second, 10).unwrap_err(), Missing::Unknown);
        // Expired ones go first, whatever the count.
        pending.insert(login(10_000), 10_000);
        assert_eq!(pending.len(), 1);
    }
}
