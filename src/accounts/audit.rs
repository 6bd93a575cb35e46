//! The audit log: one row per sign-in (and failed sign-in), sign-out, account change and API
//! key change, saying who, what, to whom, from where and when. Rows are only ever added.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Accounts, User};
use crate::clock::from_unix;
use crate::store::{AuditEntry, StoreError};

/// What happened. `as_str` is the stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    /// An operator cleared sign-in failures (`postern user unlock`).
    SignInUnlocked,
    SignOut,
    SignOutEverywhere,
    UserCreated,
    UserDeleted,
    RoleChanged,
    PasswordChanged,
    TotpEnrolled,
    TotpReset,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    ApiKeyCreated,
    ApiKeyRevoked,
    /// For the dashboard's settings pages (next): a configuration change.
    ConfigChanged,
    /// An SMTP credential made or revoked (the dashboard and `/api/credentials`).
    CredentialCreated,
    CredentialRevoked,
    /// A sending domain added or removed (the dashboard and `/api/sending-domains`).
    SendingDomainAdded,
    SendingDomainRemoved,
    /// Received messages deleted from the dashboard or `DELETE /api/messages`.
    MessagesDeleted,
    /// A webhook signing secret made, its replaced secret retired, or signing stopped
    /// (`/signing`, `/api/signing`, `postern signing`).
    SigningSecretRotated,
    SigningSecretRetired,
    SigningSecretRemoved,
    /// An attachment or message store added or removed (`/stores`, `/api/stores`,
    /// `postern store`).
    StoreAdded,
    StoreRemoved,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignIn => "signin",
            AuditAction::SignInFailed => "signin_failed",
            AuditAction::SignInUnlocked => "signin_unlocked",
            AuditAction::SignOut => "signout",
            AuditAction::SignOutEverywhere => "signout_everywhere",
            AuditAction::UserCreated => "user_created",
            AuditAction::UserDeleted => "user_deleted",
            AuditAction::RoleChanged => "role_changed",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::TotpEnrolled => "totp_enrolled",
            AuditAction::TotpReset => "totp_reset",
            AuditAction::RecoveryCodeUsed => "recovery_code_used",
            AuditAction::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditAction::ApiKeyCreated => "api_key_created",
            AuditAction::ApiKeyRevoked => "api_key_revoked",
            AuditAction::ConfigChanged => "config_changed",
            AuditAction::CredentialCreated => "credential_created",
            AuditAction::CredentialRevoked => "credential_revoked",
            AuditAction::SendingDomainAdded => "sending_domain_added",
            AuditAction::SendingDomainRemoved => "sending_domain_removed",
            AuditAction::MessagesDeleted => "messages_deleted",
            AuditAction::SigningSecretRotated => "signing_secret_rotated",
            AuditAction::SigningSecretRetired => "signing_secret_retired",
            AuditAction::SigningSecretRemoved => "signing_secret_removed",
            AuditAction::StoreAdded => "store_added",
            AuditAction::StoreRemoved => "store_removed",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (their email).
    User(String),
    /// A request authenticated by an API key (its name).
    ApiKey(String),
    /// The `postern` command line, run by whoever has the config and the data directory.
    Cli,
    /// Dev mode on loopback, where nobody signs in.
    Dev,
    /// Somebody not signed in (a failed sign-in).
    Anonymous,
}

impl Actor {
    pub fn user(user: &User) -> Actor {
        Actor::User(user.email.clone())
    }

    /// As stored: the email, `api key NAME`, `cli`, `dev` or `anonymous`.
    pub fn label(&self) -> String {
        match self {
            Actor::User(email) => email.clone(),
            Actor::ApiKey(name) => format!("api key {name}"),
            Actor::Cli => "cli".into(),
            Actor::Dev => "dev".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

/// One row of the audit log as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl Accounts {
    /// Adds a row. `subject` is the account or key acted on, `detail` a short free text.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        subject: Option<&str>,
        ip: Option<IpAddr>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store()
            .insert_audit(AuditEntry {
                at: self.now(),
                actor: actor.label(),
                action: action.as_str().into(),
                subject: subject.map(str::to_string),
                ip: ip.map(|ip| ip.to_string()),
                detail: detail.map(str::to_string),
            })
            .await
    }

    /// Newest first, `limit` rows older than the row `before`.
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.store().list_audit(before, limit).await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditRecord {
                id: row.id,
                at: from_unix(row.entry.at),
                actor: row.entry.actor,
                action: row.entry.action,
                subject: row.entry.subject,
                ip: row.entry.ip,
                detail: row.entry.detail,
            })
            .collect())
    }
}
