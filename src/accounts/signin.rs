//! The sign-in flow: email and password, then, for users with TOTP, a TOTP code or a
//! recovery code. Every failure is throttled and audited; nothing in an answer tells an
//! unknown email from a wrong password.
//!
//! Step one ([`Accounts::sign_in`]) either completes or starts a session that waits for the
//! second factor; step two ([`Accounts::second_factor`]) replaces that session with a new one
//! (a new id: the id seen before the second factor never becomes a signed-in session).

use std::time::Duration;

use super::{
    Accounts, Actor, AuditAction, Client, NewSession, SECOND_FACTOR_TIMEOUT, Session,
    normalise_email, password, totp,
};
use crate::store::{StoreError, UserRow};

/// How step one ended.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: set the cookie.
    Complete(NewSession),
    /// Password right, TOTP on: set the cookie and ask for a code.
    SecondFactor(NewSession),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("too many failed sign-ins; try again in {} seconds", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    #[error("wrong email or password")]
    WrongPassword,
    #[error("wrong code")]
    WrongCode,
    /// The session is not waiting for a second factor (expired, or signed in already).
    #[error("the sign-in took too long; start again")]
    NotPending,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The throttling and audit key for what was typed as an email.
fn account_key(typed: &str) -> String {
    normalise_email(typed)
        .unwrap_or_else(|_| typed.trim().to_lowercase().chars().take(254).collect())
}

impl Accounts {
    /// Step one: email and password.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &Client,
    ) -> Result<SignIn, SignInError> {
        let account = account_key(email);
        if let Some(retry_after) = self.throttled(&account, client.ip).await? {
            return Err(SignInError::Throttled { retry_after });
        }
        let user = self.store().user_by_email(&account).await?;
        let sane = password.len() <= password::MAX_PASSWORD_BYTES;
        let matches = sane
            && self
                .inner
                .hasher
                .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
                .await;
        let user = match (user, matches) {
            (Some(user), true) => user,
            (found, _) => {
                let detail = match found {
                    Some(_) => "wrong password",
                    None => "unknown account",
                };
                self.fail(&account, client, detail).await?;
                return Err(SignInError::WrongPassword);
            }
        };
        self.rehash_if_outdated(&user, password).await?;
        if user.totp_enabled_at.is_some() {
            let pending = self.start_session(&user, true, client).await?;
            return Ok(SignIn::SecondFactor(pending));
        }
        let session = self.start_session(&user, false, client).await?;
        self.succeed(&session, client, "password").await?;
        Ok(SignIn::Complete(session))
    }

    /// Step two: a TOTP code or a recovery code for a session from step one.
    pub async fn second_factor(
        &self,
        pending: &Session,
        code: &str,
        client: &Client,
    ) -> Result<NewSession, SignInError> {
        if !pending.second_factor_pending {
            return Err(SignInError::NotPending);
        }
        let account = pending.user.email.clone();
        if let Some(retry_after) = self.throttled(&account, client.ip).await? {
            return Err(SignInError::Throttled { retry_after });
        }
        let Some(user) = self.store().user(pending.user.id).await? else {
            return Err(SignInError::NotPending);
        };
        let first = self.first_factor(pending.id_hash());
        let how = if totp::looks_like_totp(code) {
            self.check_totp(&user, code)
                .await?
                .then(|| format!("{first} + TOTP"))
        } else if self.use_recovery_code(user.id, code).await? {
            let left = self.store().recovery_codes_left(user.id).await?;
            let detail = format!("{left} left");
            self.audit(
                &Actor::User(user.email.clone()),
                AuditAction::RecoveryCodeUsed,
                None,
                Some(client.ip),
                Some(&detail),
            )
            .await?;
            Some(format!("{first} + recovery code"))
        } else {
            None
        };
        let Some(how) = how else {
            self.fail(&account, client, "wrong or reused second factor")
                .await?;
            return Err(SignInError::WrongCode);
        };
        if !self.store().delete_session(pending.id_hash()).await? {
            // Used up concurrently (a double submit): that request signed in, not this one.
            return Err(SignInError::NotPending);
        }
        let session = self.start_session(&user, false, client).await?;
        self.succeed(&session, client, &how).await?;
        Ok(session)
    }

    /// Step one for a user someone else vouched for (an identity provider): `how` is the
    /// audit detail (and the first part of the second step's). Users with TOTP get the
    /// second step as after a password.
    pub(crate) async fn sign_in_identified(
        &self,
        user: &UserRow,
        how: &str,
        client: &Client,
    ) -> Result<SignIn, StoreError> {
        if user.totp_enabled_at.is_some() {
            let pending = self.start_session(user, true, client).await?;
            self.remember_first_factor(pending.session.id_hash(), how);
            return Ok(SignIn::SecondFactor(pending));
        }
        let session = self.start_session(user, false, client).await?;
        self.succeed(&session, client, how).await?;
        Ok(SignIn::Complete(session))
    }

    /// Notes how a session waiting for its second factor got there, for the audit row of
    /// the second step (kept in memory; after a restart the step says "password").
    fn remember_first_factor(&self, id_hash: &str, how: &str) {
        let now = self.now();
        let timeout = SECOND_FACTOR_TIMEOUT.as_secs() as i64;
        let mut first = self
            .inner
            .first_factors
            .lock()
            .expect("the first factors' lock is never poisoned");
        first.retain(|_, (_, at)| now - *at < timeout);
        first.insert(id_hash.to_string(), (how.to_string(), now));
    }

    fn first_factor(&self, id_hash: &str) -> String {
        self.inner
            .first_factors
            .lock()
            .expect("the first factors' lock is never poisoned")
            .get(id_hash)
            .map(|(how, _)| how.clone())
            .unwrap_or_else(|| "password".into())
    }

    /// After the right password: if its stored hash was made with other parameters than
    /// the configured ones (an older default, a changed cost), stores a new hash made with
    /// the current ones. This is the only moment the password is at hand to do it.
    async fn rehash_if_outdated(&self, user: &UserRow, password: &str) -> Result<(), StoreError> {
        let hasher = &self.inner.hasher;
        if !hasher.needs_rehash(&user.password_hash) {
            return Ok(());
        }
        match hasher.hash(password).await {
            Ok(hash) => {
                self.store()
                    .set_password(user.id, hash, user.password_change_required)
                    .await?;
                tracing::info!(user = %user.email, "password re-hashed with the current parameters");
            }
            // The sign-in does not depend on it: the old hash still verifies.
            Err(error) => {
                tracing::warn!(user = %user.email, %error, "re-hashing a password failed")
            }
        }
        Ok(())
    }

    async fn fail(&self, account: &str, client: &Client, detail: &str) -> Result<(), StoreError> {
        self.record_failure(account, client.ip).await?;
        self.audit(
            &Actor::Anonymous,
            AuditAction::SignInFailed,
            Some(account),
            Some(client.ip),
            Some(detail),
        )
        .await
    }

    async fn succeed(
        &self,
        session: &NewSession,
        client: &Client,
        how: &str,
    ) -> Result<(), StoreError> {
        let user = &session.session.user;
        self.forgive(&user.email, client.ip).await?;
        self.store().set_last_sign_in(user.id, self.now()).await?;
        self.audit(
            &Actor::user(user),
            AuditAction::SignIn,
            None,
            Some(client.ip),
            Some(how),
        )
        .await
    }
}
