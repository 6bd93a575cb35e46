//! CSRF tokens, bound to a secret the browser holds in an `HttpOnly` cookie: the session id
//! once signed in, an anonymous random value before (the sign-in form) and in dev mode.
//!
//! The token is HMAC-SHA256 keyed with that secret over a fixed label, base64url: the server
//! stores nothing more, a page can embed the token without revealing the cookie, and a token
//! is worthless with any other session. A forged cross-site request cannot read the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret;

const LABEL: &[u8] = b"postern csrf v1";

/// The token for forms and the `X-CSRF-Token` header of a browser holding `secret`.
pub fn token_for(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(secret).finalize().into_bytes())
}

/// Whether `presented` is the token for `secret` (constant time).
pub fn verify(secret: &str, presented: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(presented.trim()) else {
        return false;
    };
    mac(secret).verify_slice(&bytes).is_ok()
}

/// A new anonymous secret for a browser that has no session (256 random bits).
pub fn new_secret() -> String {
    secret::new_token()
}

fn mac(secret: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(LABEL);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_secret() {
        let secret = new_secret();
        let token = token_for(&secret);
        assert_eq!(token, token_for(&secret), "stable for a session");
        assert!(verify(&secret, &token));
        assert!(!verify(&new_secret(), &token));
        assert!(!verify(&secret, ""));
        assert!(!verify(&secret, "not base64!"));
        assert!(!verify(&secret, &token[..token.len() - 2]));
        assert!(
            !token.contains(&secret),
            "the token does not reveal the secret"
        );
    }
}
