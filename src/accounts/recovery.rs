//! Recovery codes: ten single-use codes, made when TOTP is turned on and shown once, each of
//! which replaces a TOTP code at sign-in when the phone is gone. 16 base32 characters (80
//! bits) in groups of four; only their SHA-256 is stored, and a used code is deleted.

use super::{AccountError, Accounts, Actor, AuditAction, Client, User};
use crate::secret;
use crate::store::StoreError;

/// How many codes a user gets.
pub const RECOVERY_CODES: usize = 10;

/// Ten fresh codes, `xxxx-xxxx-xxxx-xxxx`.
pub(crate) fn generate() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| secret::human_code(4, 4))
        .collect()
}

/// The stored form of a code as generated or as typed (case, spaces and dashes ignored).
pub(crate) fn hash(code: &str) -> String {
    secret::sha256_hex(&secret::normalise_code(code))
}

impl Accounts {
    /// Replaces the user's recovery codes with ten new ones (TOTP must be on).
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        client: &Client,
    ) -> Result<Vec<String>, AccountError> {
        let row = self
            .store()
            .user(user.id)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.email.clone()))?;
        if row.totp_enabled_at.is_none() {
            return Err(AccountError::WrongCode);
        }
        let codes = generate();
        self.store()
            .replace_recovery_codes(user.id, codes.iter().map(|c| hash(c)).collect())
            .await?;
        self.audit(
            &Actor::user(user),
            AuditAction::RecoveryCodesRegenerated,
            None,
            Some(client.ip),
            None,
        )
        .await?;
        Ok(codes)
    }

    /// How many unused recovery codes the user has.
    pub async fn recovery_codes_left(&self, user: &User) -> Result<u32, StoreError> {
        self.store().recovery_codes_left(user.id).await
    }

    /// Uses up the code if the user has it.
    pub(crate) async fn use_recovery_code(
        &self,
        user_id: i64,
        typed: &str,
    ) -> Result<bool, StoreError> {
        self.store().use_recovery_code(user_id, hash(typed)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_hashed_as_typed() {
        let codes = generate();
        assert_eq!(codes.len(), 10);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        let code = &codes[0];
        assert_eq!(hash(code), hash(&code.to_uppercase().replace('-', " ")));
        assert_ne!(hash(code), hash(&codes[1]));
        assert_eq!(hash(code).len(), 64);
    }
}
