//! What the data directory keeps, for how long, and whether encrypted: the "stored" part of
//! the privacy report. Today nothing expires and nothing is encrypted at rest; `[retention]`
//! and `[encryption]` will change the answers here.

use super::Stored;
use crate::config::Config;

const FOREVER: &str = "until deleted by hand: nothing expires";

/// One entry per kind of data Postern keeps in `config.data_dir`.
pub fn stored(config: &Config) -> Vec<Stored> {
    let row = |what: &str, kept: &str| Stored {
        what: what.into(),
        kept: kept.into(),
        encrypted: false,
    };
    let received = match config.dev {
        Some(_) => row(
            "Received messages, whole (dev mode keeps every raw message)",
            FOREVER,
        ),
        None => row(
            "Received messages' content: not stored (POSTed to the target during the SMTP session)",
            "never stored",
        ),
    };
    let sessions = format!(
        "until sign-out, {} min unused or {} h after sign-in",
        config.web.session_idle.as_secs() / 60,
        config.web.session_lifetime.as_secs() / 3600
    );
    vec![
        row(
            "Received messages' metadata: sender, recipients, subject, size, status, and every \
             POST attempt with the target's answer",
            FOREVER,
        ),
        received,
        row(
            "Sent messages, whole, with their recipients, delivery attempts and events",
            FOREVER,
        ),
        row(
            "The suppression list (recipients that bounced or complained)",
            FOREVER,
        ),
        row(
            "Users (argon2id password digests, TOTP secrets), API keys and SMTP credentials \
             (SHA-256 digests), the audit log",
            FOREVER,
        ),
        row("Sign-in sessions (SHA-256 digests of their ids)", &sessions),
        row(
            "Addresses and domains managed through the API (target URLs with any credentials \
             in them), sending domains with their DKIM private keys",
            FOREVER,
        ),
    ]
}
