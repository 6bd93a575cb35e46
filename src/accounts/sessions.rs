//! Server-side sessions. The browser holds a random 256-bit id in a cookie; the store holds
//! only its SHA-256. A session ends after [`Policy::session_idle`] without use (30 minutes by
//! default), [`Policy::session_lifetime`] after sign-in whatever the use (12 hours), at
//! sign-out, or when the user signs out everywhere. A session that still waits for the
//! second factor lasts [`SECOND_FACTOR_TIMEOUT`] and grants nothing else.
//!
//! A user sees their own signed-in sessions ([`Accounts::sessions_of`]) under a public id
//! (the first [`PUBLIC_ID_CHARS`] hex digits of the stored digest) and can end any one of
//! them ([`Accounts::end_session`]).

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Accounts, Actor, AuditAction, Client, Policy, User, csrf};
use crate::clock::from_unix;
use crate::secret;
use crate::store::{SessionCutoffs, SessionRow, StoreError, UserRow};

/// How long the second sign-in step (TOTP or recovery code) may take.
pub const SECOND_FACTOR_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Use of a session is recorded at most this often (one write a minute, not one a request),
/// so idle expiry is exact to within this.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

const MAX_USER_AGENT: usize = 256;

/// Hex digits of a session's stored digest that name it in lists and sign-out buttons.
///
/// The digest is SHA-256 of a 256-bit random token, so any part of it tells nothing about
/// the token (SHA-256 is not invertible, and the token has far too much entropy to guess
/// from it); the cookie, not the digest, signs in. 16 digits (64 bits) are still shown
/// rather than all 64, so that a page or a log holding the id never holds the whole stored
/// key of the session row. Ids are only compared among one user's own sessions, where 64
/// bits make a collision unthinkable.
pub const PUBLIC_ID_CHARS: usize = 16;

/// One of a user's sessions as they see it listed: never the token or its full digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The public id ([`PUBLIC_ID_CHARS`] hex digits).
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    pub ip: String,
    pub user_agent: Option<String>,
    /// The session the request that listed them came with.
    pub current: bool,
}

/// What [`Accounts::end_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Ended the session of the request itself: the caller signs the browser out.
    ThisSession,
    /// Ended another of the user's sessions.
    OtherSession,
    /// The user has no live session with that id.
    NotFound,
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// Password accepted, second factor not yet: only `/signin/totp` accepts this session.
    pub second_factor_pending: bool,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub ip: String,
    pub user_agent: Option<String>,
    id_hash: String,
    csrf_token: String,
}

impl Session {
    /// The CSRF token to embed in this session's forms (`csrf_token` field) or send as
    /// `X-CSRF-Token`.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// When the session ends if it is not used again.
    pub fn expires_at(&self, policy: &Policy) -> OffsetDateTime {
        let idle = self.last_seen_at + policy.session_idle;
        let absolute = self.created_at + policy.session_lifetime;
        idle.min(absolute)
    }

    pub(crate) fn id_hash(&self) -> &str {
        &self.id_hash
    }

    /// The id this session is listed under (see [`PUBLIC_ID_CHARS`]).
    pub fn public_id(&self) -> &str {
        public_id(&self.id_hash)
    }
}

fn public_id(id_hash: &str) -> &str {
    id_hash.get(..PUBLIC_ID_CHARS).unwrap_or(id_hash)
}

/// A session just started: `token` goes into the cookie and is never stored.
pub struct NewSession {
    pub token: String,
    pub session: Session,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"***")
            .field("session", &self.session)
            .finish()
    }
}

fn session_from(row: &SessionRow, user: &UserRow, token: &str) -> Session {
    Session {
        user: User::from(user),
        second_factor_pending: row.second_factor_pending,
        created_at: from_unix(row.created_at),
        last_seen_at: from_unix(row.last_seen_at),
        ip: row.ip.clone(),
        user_agent: row.user_agent.clone(),
        id_hash: row.id_hash.clone(),
        csrf_token: csrf::token_for(token),
    }
}

/// Whether the session is over at `now` (Unix seconds).
fn expired(row: &SessionRow, policy: &Policy, now: i64) -> bool {
    let after = |start: i64, length: Duration| now >= start.saturating_add(length.as_secs() as i64);
    if row.second_factor_pending {
        return after(row.created_at, SECOND_FACTOR_TIMEOUT);
    }
    after(row.last_seen_at, policy.session_idle) || after(row.created_at, policy.session_lifetime)
}

impl Accounts {
    /// Starts a session for `user` (deleting expired ones on the way).
    pub(crate) async fn start_session(
        &self,
        user: &UserRow,
        second_factor_pending: bool,
        client: &Client,
    ) -> Result<NewSession, StoreError> {
        let now = self.now();
        let policy = self.policy();
        let secs = |d: Duration| d.as_secs() as i64;
        self.store()
            .delete_expired_sessions(SessionCutoffs {
                idle_before: now - secs(policy.session_idle),
                created_before: now - secs(policy.session_lifetime),
                pending_before: now - secs(SECOND_FACTOR_TIMEOUT),
            })
            .await?;
        let token = secret::new_token();
        let row = SessionRow {
            id_hash: secret::sha256_hex(&token),
            user_id: user.id,
            second_factor_pending,
            created_at: now,
            last_seen_at: now,
            ip: client.ip.to_string(),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|agent| agent.chars().take(MAX_USER_AGENT).collect()),
        };
        self.store().insert_session(row.clone()).await?;
        let session = session_from(&row, user, &token);
        Ok(NewSession { token, session })
    }

    /// The live session whose id is `token` (the cookie value), recording its use; `None` if
    /// there is none or it has expired (an expired one is deleted).
    pub async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let id_hash = secret::sha256_hex(token);
        let Some((mut row, user)) = self.store().session(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        if expired(&row, self.policy(), now) {
            self.store().delete_session(&id_hash).await?;
            return Ok(None);
        }
        if now - row.last_seen_at >= TOUCH_INTERVAL.as_secs() as i64 {
            self.store().touch_session(&id_hash, now).await?;
            row.last_seen_at = now;
        }
        Ok(Some(session_from(&row, &user, token)))
    }

    /// Ends this session.
    pub async fn sign_out(&self, session: &Session, client: &Client) -> Result<(), StoreError> {
        self.store().delete_session(&session.id_hash).await?;
        self.audit(
            &Actor::user(&session.user),
            AuditAction::SignOut,
            None,
            Some(client.ip),
            None,
        )
        .await
    }

    /// The signed-in (not expired, not waiting for a second factor) sessions of `current`'s
    /// user, newest first, `current` marked.
    pub async fn sessions_of(&self, current: &Session) -> Result<Vec<SessionSummary>, StoreError> {
        let rows = self.store().sessions_of_user(current.user.id).await?;
        let now = self.now();
        Ok(rows
            .iter()
            .filter(|row| !row.second_factor_pending && !expired(row, self.policy(), now))
            .map(|row| SessionSummary {
                id: public_id(&row.id_hash).to_string(),
                created_at: from_unix(row.created_at),
                last_seen_at: from_unix(row.last_seen_at),
                ip: row.ip.clone(),
                user_agent: row.user_agent.clone(),
                current: row.id_hash == current.id_hash,
            })
            .collect())
    }

    /// Ends the session with public id `id` if it is one of `current`'s user's: another
    /// device's, or `current` itself (then it is a sign-out).
    pub async fn end_session(
        &self,
        current: &Session,
        id: &str,
        client: &Client,
    ) -> Result<SessionEnd, StoreError> {
        // Exactly the shown length, so that a short (or empty) prefix never names several.
        let well_formed = id.len() == PUBLIC_ID_CHARS
            && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Ok(SessionEnd::NotFound);
        }
        let rows = self.store().sessions_of_user(current.user.id).await?;
        let Some(row) = rows.iter().find(|row| public_id(&row.id_hash) == id) else {
            return Ok(SessionEnd::NotFound);
        };
        if !self.store().delete_session(&row.id_hash).await? {
            return Ok(SessionEnd::NotFound);
        }
        let this = row.id_hash == current.id_hash;
        let detail = if this {
            "this session".to_string()
        } else {
            format!("session {id} ({})", row.ip)
        };
        self.audit(
            &Actor::user(&current.user),
            AuditAction::SignOut,
            None,
            Some(client.ip),
            Some(&detail),
        )
        .await?;
        Ok(if this {
            SessionEnd::ThisSession
        } else {
            SessionEnd::OtherSession
        })
    }

    /// Ends every session of the user, on every device; returns how many there were.
    pub async fn sign_out_everywhere(
        &self,
        user: &User,
        actor: &Actor,
        client: Option<&Client>,
    ) -> Result<usize, StoreError> {
        let count = self.store().delete_sessions_of_user(user.id, None).await?;
        let detail = format!("{count} sessions");
        self.audit(
            actor,
            AuditAction::SignOutEverywhere,
            Some(&user.email),
            client.map(|c| c.ip),
            Some(&detail),
        )
        .await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_absolute_and_second_factor_expiry() {
        let policy = Policy::default();
        let row = |pending, created_at, last_seen_at| SessionRow {
            id_hash: String::new(),
            user_id: 1,
            second_factor_pending: pending,
            created_at,
            last_seen_at,
            ip: String::new(),
            user_agent: None,
        };
        let minute = 60;
        // Idle: 30 minutes after the last use.
        assert!(!expired(&row(false, 0, 0), &policy, 30 * minute - 1));
        assert!(expired(&row(false, 0, 0), &policy, 30 * minute));
        // Absolute: 12 hours after sign-in, however recent the last use.
        let late = 12 * 60 * minute;
        assert!(!expired(&row(false, 0, late - 5), &policy, late - 1));
        assert!(expired(&row(false, 0, late - 5), &policy, late));
        // Waiting for the second factor: 5 minutes.
        assert!(!expired(&row(true, 0, 0), &policy, 5 * minute - 1));
        assert!(expired(&row(true, 0, 0), &policy, 5 * minute));
    }
}
