//! The `Idempotency-Key` value of an inbound message's POST: the same for the sender's
//! retry of the same message, different for any other message, so that an app can drop
//! the second POST of a message whose first POST it handled while Postern crashed before
//! answering the sender (issue 10 item 10).
//!
//! Derived from what a retry repeats: the message's MD5 (already computed for
//! `envelope.md5`, so the body is not hashed again), MAIL FROM and the recipients, sorted
//! (a retry may list them in another order). Not the HELO name, client IP or TLS: a retry
//! may come from another host of the sender's cluster. Not the time.

use sha2::{Digest, Sha256};

use super::PayloadEnvelope;

/// Changes only if the derivation changes (then every key changes with it).
const DOMAIN: &str = "postern-idempotency-key-v1";

/// 32 lower-case hex digits (128 bits of SHA-256 over length-prefixed fields).
pub fn key(envelope: &PayloadEnvelope) -> String {
    let mut recipients: Vec<&str> = envelope.recipients.iter().map(String::as_str).collect();
    recipients.sort_unstable();
    recipients.dedup();
    let mut hash = Sha256::new();
    for field in [DOMAIN, &envelope.md5, &envelope.from]
        .into_iter()
        .chain(recipients)
    {
        // Length-prefixed, so that no two field lists hash the same bytes.
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field.as_bytes());
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::envelope;

    #[test]
    fn the_same_message_gets_the_same_key_whatever_the_connection() {
        let first = envelope();
        let mut retry = envelope();
        retry.helo_domain = "mx2.example.com".into();
        retry.remote_ip = "198.51.100.7".into();
        retry.tls_version = Some("TLSv1.3".into());
        retry.recipients.reverse();
        assert_eq!(key(&first), key(&retry));
        assert_eq!(key(&first).len(), 32);
        assert!(key(&first).bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn another_message_sender_or_recipient_gets_another_key() {
        let base = key(&envelope());
        let mut other = envelope();
        other.md5 = "d41d8cd98f00b204e9800998ecf8427e".into();
        assert_ne!(key(&other), base);
        let mut other = envelope();
        other.from = "someone@example.com".into();
        assert_ne!(key(&other), base);
        let mut other = envelope();
        other.recipients.pop();
        assert_ne!(key(&other), base);
        // Fields do not run into each other.
        let mut a = envelope();
        let mut b = envelope();
        (a.from, a.recipients) = ("ab".into(), vec!["c".into()]);
        (b.from, b.recipients) = ("a".into(), vec!["bc".into()]);
        assert_ne!(key(&a), key(&b));
    }
}
