//! What the data directory keeps, for how long, and whether encrypted: the "stored" part of
//! the privacy report, from `[retention]` and `[encryption]`.

use super::Stored;
use crate::config::Config;
use crate::retention::ContentRule;

const FOREVER: &str = "until deleted by hand";

/// One entry per kind of data Postern keeps in `config.data_dir`.
pub fn stored(config: &Config) -> Vec<Stored> {
    let sealed = config.encryption.enabled;
    let row = |what: &str, kept: &str, encrypted: bool| Stored {
        what: what.into(),
        kept: kept.into(),
        encrypted,
    };
    let retention = &config.retention;
    let days = |n: u32| format!("{n} days");
    let content = match retention.content {
        ContentRule::Days(n) => days(n),
        ContentRule::Newest(n) => format!("the newest {n} messages of each direction (dev mode)"),
    };
    let received = match config.dev {
        Some(_) => row(
            "Received messages, whole (dev mode keeps every raw message)",
            &content,
            sealed,
        ),
        None => row(
            "Received messages' content: not stored (POSTed to the target during the SMTP \
             session)",
            "never stored",
            false,
        ),
    };
    let sent_metadata = match config.privacy.redact_outbound.is_empty() {
        true => "Sent messages' metadata: recipients, delivery attempts and events".to_string(),
        false => format!(
            "Sent messages' metadata: recipients, delivery attempts and events (never: {}, \
             [privacy] redact_outbound)",
            config.privacy.redact_outbound.names().join(", ")
        ),
    };
    let sessions = format!(
        "until sign-out, {} min unused or {} h after sign-in",
        config.web.session_idle.as_secs() / 60,
        config.web.session_lifetime.as_secs() / 3600
    );
    let mut rows = vec![
        row(
            "Received messages' metadata: sender, recipients, subject, size, status, and every \
             POST attempt with the target's answer (less any field [privacy] redacts)",
            &days(retention.inbound_metadata_days),
            false,
        ),
        received,
        row(
            &sent_metadata,
            &days(retention.outbound_metadata_days),
            false,
        ),
        row(
            "Sent messages' content (the MIME message)",
            &content,
            sealed,
        ),
        row(
            "IP address and user agent of opens and clicks",
            &days(retention.tracking_days),
            false,
        ),
        row(
            "The suppression list (recipients that bounced or complained)",
            FOREVER,
            false,
        ),
        row(
            "Users (argon2id digests of their sign-in secrets, TOTP secrets), API keys and SMTP credentials \
             (SHA-256 digests)",
            FOREVER,
            sealed,
        ),
        row("The audit log", &days(retention.audit_days), false),
        row(
            "Sign-in sessions (SHA-256 digests of their ids)",
            &sessions,
            false,
        ),
        row(
            "Addresses and domains managed through the API (target URLs with any credentials \
             in them), sending domains with their DKIM private keys",
            FOREVER,
            sealed,
        ),
    ];
    if matches!(config.tls.source, crate::config::CertSource::Acme(_)) {
        rows.push(row(
            "The ACME account key, and the certificate with its private key",
            "until replaced by a renewal",
            sealed,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_metadata(toml: &str) -> String {
        let config = Config::from_toml(toml, Vec::new()).unwrap();
        let rows = stored(&config);
        let row = rows
            .iter()
            .find(|s| s.what.starts_with("Sent messages' metadata"));
        row.expect("a row for sent metadata").what.clone()
    }

    #[test]
    fn sent_metadata_names_what_redact_outbound_leaves_out() {
        let plain = sent_metadata("[server]\nhostname = \"mx.example.com\"\n");
        assert!(!plain.contains("never"), "{plain}");
        let redacted = sent_metadata(
            "[server]\nhostname = \"mx.example.com\"\n\
             [privacy]\nredact_outbound = [\"server_response\", \"subject\"]\n",
        );
        assert!(
            redacted.contains("never: subject, server_response"),
            "{redacted}"
        );
    }
}
