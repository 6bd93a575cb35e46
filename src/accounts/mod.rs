//! Accounts and sign-in: users with argon2id passwords and roles, TOTP second factor with
//! recovery codes, server-side sessions with idle and absolute expiry, CSRF tokens bound to
//! a session, login throttling, API keys and the audit log.
//!
//! [`Accounts`] is the one handle (cheap to clone) that the web layer and the CLI use; it
//! holds the store, the [`Clock`] and the [`Policy`]. One concept per file: `users`,
//! `password`, `totp`, `recovery`, `sessions`, `csrf`, `throttle`, `signin` (the flow that
//! ties them together), `oidc` (sign-in with Google, GitHub or an OpenID Connect issuer,
//! which then joins that flow), `api_keys`, `audit`. Time comes from `crate::clock`, random
//! secrets and their digests from `crate::secret`. All SQL is in `store::accounts`. Nothing
//! here knows about HTTP.

mod api_keys;
mod audit;
pub mod csrf;
pub mod oidc;
mod password;
mod recovery;
mod sessions;
mod signin;
mod throttle;
mod totp;
mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

pub use crate::store::Role;
pub use api_keys::{API_KEY_PREFIX, ApiKey};
pub use audit::{Actor, AuditAction, AuditRecord};
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordParams, check_new_password};
pub use recovery::RECOVERY_CODES;
pub use sessions::{
    NewSession, PUBLIC_ID_CHARS, SECOND_FACTOR_TIMEOUT, Session, SessionEnd, SessionSummary,
    TOUCH_INTERVAL,
};
pub use signin::{SignIn, SignInError};
pub use throttle::{
    ACCOUNT_FAILURES, IP_FAILURES, KNOWN_ADDRESS_DAYS, PAIR_FAILURES, THROTTLE_WINDOW, ip_key,
};
pub use totp::{TOTP_DIGITS, TOTP_SKEW_STEPS, TOTP_STEP_SECS, TotpEnrolment};
pub use users::{NewPassword, User, normalise_email};

/// The rules an installation runs with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A session unused for this long is over.
    pub session_idle: Duration,
    /// A session is over this long after sign-in, however busy.
    pub session_lifetime: Duration,
    /// Users without TOTP must enrol before they can use anything else.
    pub require_totp: bool,
    pub password: PasswordParams,
    /// Shown by authenticator apps next to the account name.
    pub totp_issuer: String,
}

/// 30 minutes.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// 12 hours.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            session_idle: DEFAULT_SESSION_IDLE,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            require_totp: false,
            password: PasswordParams::PRODUCTION,
            totp_issuer: "Postern".into(),
        }
    }
}

/// Where a request comes from, for throttling, sessions and the audit log.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn new(ip: IpAddr) -> Client {
        Client {
            ip,
            user_agent: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("a user {0} exists already")]
    EmailTaken(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("{0} is the only admin; add another admin first")]
    LastAdmin(String),
    #[error("API key names are 1 to 100 printable characters")]
    InvalidKeyName,
    #[error("two-factor authentication is already on")]
    TotpAlreadyEnabled,
    #[error("that code is not right; codes change every 30 seconds")]
    WrongCode,
    /// Hashing, QR drawing or a corrupt stored value: a bug or a broken machine.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The accounts service. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    policy: Policy,
    hasher: password::Hasher,
    /// How sessions waiting for their second factor passed the first (see `signin`), by
    /// session id digest, with the time.
    first_factors: std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
}

impl Accounts {
    pub fn new(store: Store, clock: Clock, policy: Policy) -> Accounts {
        let hasher = password::Hasher::new(policy.password);
        Accounts {
            inner: Arc::new(Inner {
                store,
                clock,
                policy,
                hasher,
                first_factors: Default::default(),
            }),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn now(&self) -> i64 {
        self.inner.clock.unix()
    }
}

#[cfg(test)]
mod tests;
