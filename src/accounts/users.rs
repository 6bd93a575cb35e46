//! Users: an email, an argon2id password, a role (admin or viewer) and, once enrolled, a TOTP
//! secret. Created by `postern user add` with a generated one-time password (to be changed
//! at first sign-in) or a chosen one.

use serde::Serialize;
use time::OffsetDateTime;

use super::{AccountError, Accounts, Actor, AuditAction, Client, Role, Session, password};
use crate::clock::from_unix;
use crate::store::{NewUser, RoleChange, UserDeletion, UserRow};

/// A user as the rest of the program sees one: no password hash, no TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub totp_enabled: bool,
    /// Signed in with a generated one-time password: must choose a new one before anything
    /// else.
    pub password_change_required: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in_at: Option<OffsetDateTime>,
}

impl From<&UserRow> for User {
    fn from(row: &UserRow) -> User {
        User {
            id: row.id,
            email: row.email.clone(),
            role: row.role,
            totp_enabled: row.totp_enabled_at.is_some(),
            password_change_required: row.password_change_required,
            created_at: from_unix(row.created_at),
            last_sign_in_at: row.last_sign_in_at.map(from_unix),
        }
    }
}

/// How a new user gets a password.
#[derive(Debug, Clone)]
pub enum NewPassword {
    /// Generate a one-time password, returned once, to be changed at first sign-in.
    Generate,
    /// This one (checked against the rules).
    Given(String),
}

/// Trims and lower-cases an email address, and refuses what cannot be one: it needs one `@`
/// with something on both sides, a dot in the domain, at most 254 characters, no spaces or
/// control characters, and no `:` (authenticator apps' `issuer:account` separator).
pub fn normalise_email(text: &str) -> Result<String, AccountError> {
    let email = text.trim().to_lowercase();
    let invalid = || AccountError::InvalidEmail(text.chars().take(100).collect());
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == ':' || c == '@';
    if local.is_empty()
        || domain.is_empty()
        || email.len() > 254
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.chars().filter(|&c| c == '@').count() != 1
        || local.chars().any(bad_char)
        || domain.chars().any(bad_char)
    {
        return Err(invalid());
    }
    Ok(email)
}

impl Accounts {
    /// Creates a user; with [`NewPassword::Generate`] also returns the generated password,
    /// which is shown once and must be changed at first sign-in.
    pub async fn create_user(
        &self,
        email: &str,
        role: Role,
        password: NewPassword,
        actor: &Actor,
    ) -> Result<(User, Option<String>), AccountError> {
        let email = normalise_email(email)?;
        let (password, generated) = match password {
            NewPassword::Generate => (password::generate(), true),
            NewPassword::Given(given) => {
                password::check_new_password(&given).map_err(AccountError::WeakPassword)?;
                (given, false)
            }
        };
        let password_hash = self
            .inner
            .hasher
            .hash(&password)
            .await
            .map_err(AccountError::Internal)?;
        let row = self
            .store()
            .insert_user(NewUser {
                email: email.clone(),
                password_hash,
                role,
                password_change_required: generated,
                created_at: self.now(),
            })
            .await?
            .ok_or_else(|| AccountError::EmailTaken(email.clone()))?;
        let detail = format!("role {}", role.as_str());
        self.audit(
            actor,
            AuditAction::UserCreated,
            Some(&email),
            None,
            Some(&detail),
        )
        .await?;
        Ok((User::from(&row), generated.then_some(password)))
    }

    /// Every user, by email.
    pub async fn users(&self) -> Result<Vec<User>, AccountError> {
        let rows = self.store().list_users().await?;
        Ok(rows.iter().map(User::from).collect())
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, AccountError> {
        let row = self.store().user(id).await?;
        Ok(row.as_ref().map(User::from))
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        let email = normalise_email(email)?;
        let row = self.store().user_by_email(&email).await?;
        Ok(row.as_ref().map(User::from))
    }

    /// Gives a user another role (their sessions see it at the next request); refuses to
    /// make the last admin a viewer.
    pub async fn change_role(
        &self,
        email: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<(), AccountError> {
        let email = normalise_email(email)?;
        match self.store().set_role(&email, role).await? {
            RoleChange::Changed => {
                let detail = format!("role {}", role.as_str());
                self.audit(
                    actor,
                    AuditAction::RoleChanged,
                    Some(&email),
                    None,
                    Some(&detail),
                )
                .await?;
                Ok(())
            }
            RoleChange::NotFound => Err(AccountError::NoSuchUser(email)),
            RoleChange::LastAdmin => Err(AccountError::LastAdmin(email)),
        }
    }

    /// Deletes a user and their sessions; refuses to delete the last admin.
    pub async fn delete_user(&self, email: &str, actor: &Actor) -> Result<(), AccountError> {
        let email = normalise_email(email)?;
        match self.store().delete_user(&email).await? {
            UserDeletion::Deleted => {
                self.audit(actor, AuditAction::UserDeleted, Some(&email), None, None)
                    .await?;
                Ok(())
            }
            UserDeletion::NotFound => Err(AccountError::NoSuchUser(email)),
            UserDeletion::LastAdmin => Err(AccountError::LastAdmin(email)),
        }
    }

    /// Sets a new password chosen by the signed-in user, and signs out their other sessions.
    pub async fn change_password(
        &self,
        session: &Session,
        new_password: &str,
        client: &Client,
    ) -> Result<(), AccountError> {
        password::check_new_password(new_password).map_err(AccountError::WeakPassword)?;
        let user = &session.user;
        // Keeping the current password would make a printed one-time password permanent.
        let current = self.store().user(user.id).await?;
        let current_hash = current.as_ref().map(|row| row.password_hash.as_str());
        if current_hash.is_some() && self.inner.hasher.verify(new_password, current_hash).await {
            return Err(AccountError::WeakPassword(
                "the new password must differ from the current one".into(),
            ));
        }
        let hash = self
            .inner
            .hasher
            .hash(new_password)
            .await
            .map_err(AccountError::Internal)?;
        self.store().set_password(user.id, hash, false).await?;
        let others = self
            .store()
            .delete_sessions_of_user(user.id, Some(session.id_hash().to_string()))
            .await?;
        let detail = format!("{others} other sessions signed out");
        self.audit(
            &Actor::user(user),
            AuditAction::PasswordChanged,
            None,
            Some(client.ip),
            Some(&detail),
        )
        .await?;
        Ok(())
    }

    /// Turns a user's TOTP off and deletes their recovery codes (a lost phone), and signs out
    /// their sessions. They enrol again at their next sign-in if TOTP is required.
    pub async fn reset_totp(&self, email: &str, actor: &Actor) -> Result<(), AccountError> {
        let email = normalise_email(email)?;
        let row = self
            .store()
            .user_by_email(&email)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(email.clone()))?;
        self.store().disable_totp(row.id).await?;
        self.store().delete_sessions_of_user(row.id, None).await?;
        self.audit(actor, AuditAction::TotpReset, Some(&email), None, None)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalise_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a@b@example.com",
            "al ice@example.com",
            "alice:x@example.com",
            "alice@.example.com",
            "alice@example.com.",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(normalise_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
