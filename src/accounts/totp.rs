//! TOTP second factor (RFC 6238): HMAC-SHA1, 6 digits, 30-second steps, the form every
//! authenticator app reads from an `otpauth://` URL or its QR code.
//!
//! A code is accepted for the current step and one step either side (RFC 6238 §5.2's
//! recommended network delay), so ±1 step of clock drift works and ±2 does not. Each step is
//! accepted once per user: a code that was used, or one older than the last used, is refused
//! (§5.2: "the verifier MUST NOT accept the second attempt of the same OTP").
//!
//! Enrolment: [`Accounts::totp_enrolment`] stores a pending secret and shows it;
//! [`Accounts::confirm_totp`] turns it on once a code from the app matches, and returns the
//! recovery codes, shown once. The secret is kept in the store as base32 (encryption at rest
//! is a later issue).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::{AccountError, Accounts, Actor, AuditAction, Client, User, recovery};
use crate::secret;
use crate::store::{StoreError, UserRow};

pub const TOTP_DIGITS: u8 = 6;
pub const TOTP_STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one.
pub const TOTP_SKEW_STEPS: u16 = 1;

/// What the enrolment page shows.
pub struct TotpEnrolment {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/Issuer:email?secret=…&issuer=…`.
    pub otpauth_url: String,
    /// The URL as a QR code: a PNG, base64 (for a `data:image/png;base64,` URL).
    pub qr_png_base64: String,
}

/// 160 random bits (RFC 4226 §4's recommended length), base32.
fn new_secret() -> String {
    Secret::from(secret::random_bytes::<20>()).to_base32()
}

fn totp(secret_base32: &str, account: &str, issuer: &str) -> Result<Totp, String> {
    let secret = Secret::try_from_base32(secret_base32).map_err(|e| e.to_string())?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_step_duration(TOTP_STEP_SECS)
        .with_skew(TOTP_SKEW_STEPS)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer.replace(':', " ")))
        .build()
        .map_err(|e| e.to_string())
}

/// The step whose code `typed` is, within the drift window around `now`; spaces ignored.
fn matching_step(totp: &Totp, typed: &str, now: i64) -> Option<i64> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    totp.check(&code, now).map(|step| step as i64)
}

/// Whether `typed` looks like a TOTP code rather than a recovery code.
pub(crate) fn looks_like_totp(typed: &str) -> bool {
    let digits: Vec<char> = typed.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == TOTP_DIGITS as usize && digits.iter().all(char::is_ascii_digit)
}

impl Accounts {
    fn totp_for(&self, secret: &str, email: &str) -> Result<Totp, AccountError> {
        totp(secret, email, &self.policy().totp_issuer)
            .map_err(|e| AccountError::Internal(format!("stored TOTP secret is unusable: {e}")))
    }

    /// Starts (or shows again) the enrolment of `user`: the pending secret, its URL and QR.
    pub async fn totp_enrolment(&self, user: &User) -> Result<TotpEnrolment, AccountError> {
        let row = self
            .store()
            .user(user.id)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.email.clone()))?;
        if row.totp_enabled_at.is_some() {
            return Err(AccountError::TotpAlreadyEnabled);
        }
        // Reloading the page shows the same secret, so a scan already made stays good.
        let secret = match row.totp_secret {
            Some(secret) => secret,
            None => {
                let secret = new_secret();
                if !self
                    .store()
                    .set_pending_totp_secret(user.id, secret.clone())
                    .await?
                {
                    return Err(AccountError::TotpAlreadyEnabled);
                }
                secret
            }
        };
        let totp = self.totp_for(&secret, &row.email)?;
        let otpauth_url = totp
            .to_url()
            .map_err(|e| AccountError::Internal(e.to_string()))?;
        let qr_png_base64 = STANDARD.encode(
            totp.to_qr_png()
                .map_err(|e| AccountError::Internal(e.to_string()))?,
        );
        Ok(TotpEnrolment {
            secret,
            otpauth_url,
            qr_png_base64,
        })
    }

    /// Turns TOTP on if `code` matches the pending secret; returns the ten recovery codes,
    /// which exist only in this answer from now on.
    pub async fn confirm_totp(
        &self,
        user: &User,
        code: &str,
        client: &Client,
    ) -> Result<Vec<String>, AccountError> {
        let row = self
            .store()
            .user(user.id)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.email.clone()))?;
        if row.totp_enabled_at.is_some() {
            return Err(AccountError::TotpAlreadyEnabled);
        }
        let Some(secret) = row.totp_secret else {
            return Err(AccountError::WrongCode);
        };
        let totp = self.totp_for(&secret, &row.email)?;
        let step = matching_step(&totp, code, self.now()).ok_or(AccountError::WrongCode)?;
        let codes = recovery::generate();
        let hashes = codes.iter().map(|c| recovery::hash(c)).collect();
        if !self
            .store()
            .enable_totp(user.id, secret, step, self.now(), hashes)
            .await?
        {
            return Err(AccountError::TotpAlreadyEnabled);
        }
        self.audit(
            &Actor::user(user),
            AuditAction::TotpEnrolled,
            None,
            Some(client.ip),
            None,
        )
        .await?;
        Ok(codes)
    }

    /// Whether `code` is the user's current TOTP code, not used before; marks it used.
    pub(crate) async fn check_totp(&self, row: &UserRow, code: &str) -> Result<bool, StoreError> {
        let (Some(secret), Some(_)) = (&row.totp_secret, row.totp_enabled_at) else {
            return Ok(false);
        };
        let Ok(totp) = totp(secret, &row.email, &self.policy().totp_issuer) else {
            return Ok(false);
        };
        let Some(step) = matching_step(&totp, code, self.now()) else {
            return Ok(false);
        };
        self.store().use_totp_step(row.id, step).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows, with 6 of the 8 digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        let totp = totp(&secret, "test@example.com", "Postern").unwrap();
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), code, "T = {time}");
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let totp = totp(&new_secret(), "a@example.com", "Postern").unwrap();
        let now = 1_800_000_015i64;
        let step = now / 30;
        let code_at = |step: i64| totp.generate(step as u64 * 30).to_string();
        for drift in [-1, 0, 1] {
            assert_eq!(
                matching_step(&totp, &code_at(step + drift), now),
                Some(step + drift),
                "drift {drift}"
            );
        }
        for drift in [-2, 2] {
            let code = code_at(step + drift);
            // A code of another step may, one time in a million, equal a valid one.
            if (-1..=1).all(|d| code != code_at(step + d)) {
                assert_eq!(matching_step(&totp, &code, now), None, "drift {drift}");
            }
        }
        let spaced = format!("{} {}", &code_at(step)[..3], &code_at(step)[3..]);
        assert_eq!(matching_step(&totp, &spaced, now), Some(step));
        assert_eq!(matching_step(&totp, "12345", now), None);
        assert_eq!(matching_step(&totp, "abcdef", now), None);
    }

    #[test]
    fn otpauth_urls_name_the_issuer_and_account() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32, "160 bits in base32");
        let totp = totp(&secret, "alice@example.com", "Postern mx.example.com").unwrap();
        let url = totp.to_url().unwrap();
        assert!(
            url.starts_with("otpauth://totp/Postern%20mx.example.com:alice%40example.com?"),
            "{url}"
        );
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        let png = totp.to_qr_png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(looks_like_totp("123 456"));
        assert!(!looks_like_totp("abcd-efgh-jkmn-pqrs"));
    }
}
