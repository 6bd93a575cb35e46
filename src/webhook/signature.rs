//! Signed webhooks per the Standard Webhooks specification (standardwebhooks.com), no I/O:
//! the secret's text form (`whsec_` + base64 of 32 random bytes), and the three headers
//! every signed POST carries:
//!
//! - `webhook-id`: the same for every try of the same thing (a message's idempotency key);
//! - `webhook-timestamp`: Unix seconds when the request was made;
//! - `webhook-signature`: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body` with the
//!   secret's bytes, one per valid secret, separated by spaces (two while a rotation
//!   overlaps: an app that knows either secret accepts the request).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::random_bytes;

pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix of a secret's text form, which the specification's libraries strip.
const PREFIX: &str = "whsec_";

/// A signing secret: random bytes, shown to people as `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// Why a stored secret's text does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a signing secret starts with {PREFIX}")]
    NoPrefix,
    #[error("a signing secret is whsec_ followed by base64")]
    NotBase64,
    #[error("a signing secret needs 24 to 64 bytes")]
    Length,
}

impl SigningSecret {
    /// 256 fresh random bits.
    pub fn generate() -> SigningSecret {
        SigningSecret(random_bytes::<32>().to_vec())
    }

    /// The text form: what is shown once, stored (sealed), and given to the app.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    pub fn parse(text: &str) -> Result<SigningSecret, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::NoPrefix)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        match bytes.len() {
            24..=64 => Ok(SigningSecret(bytes)),
            _ => Err(SecretError::Length),
        }
    }

    /// `v1,<base64 HMAC-SHA256(id.timestamp.body)>`.
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The secrets a POST is signed with: the current one, then the one it replaced while the
/// rotation overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    pub current: SigningSecret,
    pub previous: Option<SigningSecret>,
}

/// The three headers of a signed request, values in order: id, timestamp, signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl SigningKeys {
    /// The headers of a request with this `id` and `body`, made at `timestamp`.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> SignatureHeaders {
        let signature = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|secret| secret.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ");
        SignatureHeaders {
            id: id.to_string(),
            timestamp: timestamp.to_string(),
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the specification (and in every reference library's tests).
    #[test]
    fn signs_the_specifications_example() {
        let keys = SigningKeys {
            current: SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            previous: None,
        };
        let headers = keys.headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(headers.timestamp, "1614265330");
        assert_eq!(headers.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_current_first() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let both = SigningKeys {
            current: new.clone(),
            previous: Some(old.clone()),
        };
        let signature = both.headers("id", 1, b"body").signature;
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("id", 1, b"body"), old.sign("id", 1, b"body")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn every_byte_of_id_timestamp_and_body_counts() {
        let keys = SigningKeys {
            current: SigningSecret::generate(),
            previous: None,
        };
        let base = keys.headers("id", 100, b"body").signature;
        assert_ne!(base, keys.headers("iD", 100, b"body").signature);
        assert_ne!(base, keys.headers("id", 101, b"body").signature);
        assert_ne!(base, keys.headers("id", 100, b"body ").signature);
        // The scheme joins the parts with dots, so an id with a dot could sign the same bytes
        // as another id and timestamp: Postern's ids (hex, `cb_`/`evt_` + hex) have none.
        assert_eq!(
            keys.headers("a.1", 2, b"x").signature,
            keys.headers("a", 1, b"2.x").signature
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_text_is_refused() {
        let secret = SigningSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_") && text.len() == 6 + 44, "{text}");
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        assert_ne!(SigningSecret::generate(), secret);
        assert_eq!(SigningSecret::parse("MfKQ9r8G"), Err(SecretError::NoPrefix));
        assert_eq!(
            SigningSecret::parse("whsec_***"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(SigningSecret::parse("whsec_AAAA"), Err(SecretError::Length));
        assert_eq!(format!("{secret:?}"), "SigningSecret(…)");
    }
}
