//! `[privacy]` and the `redact` lists of `[[address]]` / `[[domain]]`: which metadata fields
//! are never written to the store. Parsed once here; the services blank what a list names
//! before a row is written.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::ConfigError;

/// A metadata field that can be left out of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// The connecting client's address (inbound `remote_ip`; outbound: the API caller's).
    SenderIp,
    /// The name the client gave in HELO/EHLO.
    Helo,
    /// The envelope sender (`mail_from`).
    Sender,
    /// The envelope recipients.
    Recipient,
    Subject,
    /// The `Message-ID` header.
    MessageId,
    /// What the target (inbound) or the receiving server (outbound) answered.
    ServerResponse,
    /// The TLS version of the connection.
    Tls,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::SenderIp,
        Field::Helo,
        Field::Sender,
        Field::Recipient,
        Field::Subject,
        Field::MessageId,
        Field::ServerResponse,
        Field::Tls,
    ];

    /// The name in config files, the API and the `redacted` list of a row.
    pub fn name(self) -> &'static str {
        match self {
            Field::SenderIp => "sender_ip",
            Field::Helo => "helo",
            Field::Sender => "sender",
            Field::Recipient => "recipient",
            Field::Subject => "subject",
            Field::MessageId => "message_id",
            Field::ServerResponse => "server_response",
            Field::Tls => "tls",
        }
    }

    pub fn from_name(text: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == text)
    }
}

/// A set of fields not to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction(BTreeSet<Field>);

impl Redaction {
    /// Parses a `redact` list; `key` names it in the error, which lists the valid names.
    pub fn parse(key: &str, names: &[String]) -> Result<Redaction, ConfigError> {
        names
            .iter()
            .map(|name| {
                Field::from_name(name).ok_or_else(|| {
                    let valid: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                    ConfigError::invalid(
                        key,
                        format!("\"{name}\""),
                        format!("not a metadata field; valid fields: {}", valid.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(Redaction)
    }

    pub fn contains(&self, field: Field) -> bool {
        self.0.contains(&field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both lists: per-address settings add to the instance's.
    pub fn union(&self, other: &Redaction) -> Redaction {
        Redaction(self.0.union(&other.0).copied().collect())
    }

    /// The field names, in a fixed order (what a row records).
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|f| f.name().to_string()).collect()
    }
}

/// `[privacy]`: what the instance never stores.
#[derive(Debug, Clone, Default)]
pub struct PrivacyConfig {
    /// Fields of received mail.
    pub redact: Redaction,
    /// Fields of sent mail.
    pub redact_outbound: Redaction,
}

/// `[privacy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPrivacy {
    redact: Vec<String>,
    redact_outbound: Vec<String>,
}

/// Fields a sent message has; the others are refused in `redact_outbound`.
const OUTBOUND_FIELDS: [Field; 5] = [
    Field::SenderIp,
    Field::Sender,
    Field::Subject,
    Field::ServerResponse,
    Field::Tls,
];

impl RawPrivacy {
    pub(super) fn validate(self) -> Result<PrivacyConfig, ConfigError> {
        let redact = Redaction::parse("privacy.redact", &self.redact)?;
        let redact_outbound = Redaction::parse("privacy.redact_outbound", &self.redact_outbound)?;
        if let Some(field) = redact_outbound
            .0
            .iter()
            .find(|field| !OUTBOUND_FIELDS.contains(field))
        {
            let valid: Vec<&str> = OUTBOUND_FIELDS.iter().map(|f| f.name()).collect();
            return Err(ConfigError::invalid(
                "privacy.redact_outbound",
                format!("\"{}\"", field.name()),
                format!(
                    "not a field of sent mail; valid fields: {}",
                    valid.join(", ")
                ),
            ));
        }
        Ok(PrivacyConfig {
            redact,
            redact_outbound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(redact: &[&str], outbound: &[&str]) -> RawPrivacy {
        RawPrivacy {
            redact: redact.iter().map(|s| s.to_string()).collect(),
            redact_outbound: outbound.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_field_name_parses() {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        let config = raw(&names, &[]).validate().unwrap();
        assert!(Field::ALL.iter().all(|&f| config.redact.contains(f)));
        assert!(config.redact_outbound.is_empty());
    }

    #[test]
    fn an_unknown_field_is_an_error_listing_the_valid_ones() {
        let error = raw(&["sender_ip", "ip"], &[]).validate().unwrap_err();
        let text = error.to_string();
        assert!(text.contains("privacy.redact"), "{text}");
        assert!(text.contains("\"ip\""), "{text}");
        assert!(text.contains("sender_ip, helo, sender"), "{text}");
    }

    #[test]
    fn outbound_refuses_fields_sent_mail_does_not_have() {
        let text = raw(&[], &["helo"]).validate().unwrap_err().to_string();
        assert!(text.contains("privacy.redact_outbound"), "{text}");
        assert!(text.contains("not a field of sent mail"), "{text}");
        let config = raw(&[], &["subject", "server_response"])
            .validate()
            .unwrap();
        assert_eq!(
            config.redact_outbound.names(),
            ["subject", "server_response"]
        );
    }

    #[test]
    fn per_address_lists_add_to_the_instance_list() {
        let instance = Redaction::parse("k", &["subject".into()]).unwrap();
        let address = Redaction::parse("k", &["sender_ip".into(), "subject".into()]).unwrap();
        assert_eq!(instance.union(&address).names(), ["sender_ip", "subject"]);
    }
}
