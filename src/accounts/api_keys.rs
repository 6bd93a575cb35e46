//! API keys for scripts: `Authorization: Bearer pst_…`. A key has a name, a role (admin or
//! viewer) and is shown once when made; the store keeps its SHA-256 and its first characters
//! (to recognise it in a list). Revoked keys stay listed but authenticate nothing.

use serde::Serialize;
use time::OffsetDateTime;

use super::{AccountError, Accounts, Actor, AuditAction, Role, TOUCH_INTERVAL};
use crate::clock::from_unix;
use crate::secret;
use crate::store::{ApiKeyRow, NewApiKey, StoreError};

/// Every key starts with this, so secret scanners and people can tell what it is.
pub const API_KEY_PREFIX: &str = "pst_";
/// Characters of a key kept in clear to recognise it: the prefix and 8 more.
const SHOWN_CHARS: usize = API_KEY_PREFIX.len() + 8;

/// A key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// `pst_` and the next 8 characters of the key.
    pub prefix: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> ApiKey {
        ApiKey {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            role: row.role,
            created_at: from_unix(row.created_at),
            created_by: row.created_by,
            last_used_at: row.last_used_at.map(from_unix),
            revoked_at: row.revoked_at.map(from_unix),
        }
    }
}

impl Accounts {
    /// Makes a key; returns it with the secret, which is not kept anywhere else.
    pub async fn create_api_key(
        &self,
        name: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<(ApiKey, String), AccountError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccountError::InvalidKeyName);
        }
        let secret = format!("{API_KEY_PREFIX}{}", secret::new_token());
        let row = self
            .store()
            .insert_api_key(NewApiKey {
                name: name.to_string(),
                key_hash: secret::sha256_hex(&secret),
                prefix: secret[..SHOWN_CHARS].to_string(),
                role,
                created_at: self.now(),
                created_by: actor.label(),
            })
            .await?;
        let detail = format!("role {}", role.as_str());
        self.audit(
            actor,
            AuditAction::ApiKeyCreated,
            Some(name),
            None,
            Some(&detail),
        )
        .await?;
        Ok((ApiKey::from(row), secret))
    }

    /// The live key matching a presented bearer token, recording its use.
    pub async fn api_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        if !presented.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let Some(row) = self
            .store()
            .api_key_by_hash(&secret::sha256_hex(presented))
            .await?
        else {
            return Ok(None);
        };
        let now = self.now();
        if row
            .last_used_at
            .is_none_or(|at| now - at >= TOUCH_INTERVAL.as_secs() as i64)
        {
            self.store().touch_api_key(row.id, now).await?;
        }
        Ok(Some(ApiKey::from(row)))
    }

    /// Every key, revoked ones included.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = self.store().list_api_keys().await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    /// `false` if there is no such live key.
    pub async fn revoke_api_key(&self, id: i64, actor: &Actor) -> Result<bool, StoreError> {
        let Some(row) = self.store().revoke_api_key(id, self.now()).await? else {
            return Ok(false);
        };
        self.audit(
            actor,
            AuditAction::ApiKeyRevoked,
            Some(&row.name),
            None,
            None,
        )
        .await?;
        Ok(true)
    }
}
