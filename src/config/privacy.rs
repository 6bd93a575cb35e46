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
    /// Sent mail only: the IP address and user agent of the recipient's opens and clicks.
    Tracking,
}

impl Field {
    /// Fields a received message has (`redact` lists).
    pub const INBOUND: [Field; 8] = [
        Field::SenderIp,
        Field::Helo,
        Field::Sender,
        Field::Recipient,
        Field::Subject,
        Field::MessageId,
        Field::ServerResponse,
        Field::Tls,
    ];

    /// Fields a sent message has (`redact_outbound`).
    pub const OUTBOUND: [Field; 6] = [
        Field::SenderIp,
        Field::Sender,
        Field::Subject,
        Field::ServerResponse,
        Field::Tls,
        Field::Tracking,
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
            Field::Tracking => "tracking",
        }
    }

    pub fn from_name(text: &str) -> Option<Field> {
        let mut every = Field::INBOUND.into_iter().chain(Field::OUTBOUND);
        every.find(|field| field.name() == text)
    }
}

/// A set of fields not to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction(BTreeSet<Field>);

impl Redaction {
    /// Parses a `redact` list (fields of received mail); `key` names it in the error, which
    /// lists the valid names.
    pub fn parse(key: &str, names: &[String]) -> Result<Redaction, ConfigError> {
        Redaction::parse_of(
            key,
            names,
            &Field::INBOUND,
            "a metadata field of received mail",
        )
    }

    /// Parses `redact_outbound` (fields of sent mail).
    pub fn parse_outbound(key: &str, names: &[String]) -> Result<Redaction, ConfigError> {
        Redaction::parse_of(key, names, &Field::OUTBOUND, "a field of sent mail")
    }

    /// Parses `names`; each must name one of `valid`, else the error lists them.
    fn parse_of(
        key: &str,
        names: &[String],
        valid: &[Field],
        what: &str,
    ) -> Result<Redaction, ConfigError> {
        names
            .iter()
            .map(|name| {
                Field::from_name(name)
                    .filter(|field| valid.contains(field))
                    .ok_or_else(|| {
                        let valid: Vec<&str> = valid.iter().map(|f| f.name()).collect();
                        ConfigError::invalid(
                            key,
                            format!("\"{name}\""),
                            format!("not {what}; valid fields: {}", valid.join(", ")),
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Redaction)
    }

    /// A row's list of names, as written: unknown names are skipped.
    pub fn of_row(names: &[String]) -> Redaction {
        Redaction(names.iter().filter_map(|n| Field::from_name(n)).collect())
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
    /// Kept message text goes into the search index, which is not sealed (an index cannot
    /// be): off by default where content is sealed; dev mode turns it on (its keyring sits
    /// beside its data anyway).
    pub index_bodies: bool,
}

/// `[privacy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPrivacy {
    redact: Vec<String>,
    redact_outbound: Vec<String>,
    index_bodies: bool,
}

impl RawPrivacy {
    pub(super) fn validate(self) -> Result<PrivacyConfig, ConfigError> {
        Ok(PrivacyConfig {
            redact: Redaction::parse("privacy.redact", &self.redact)?,
            redact_outbound: Redaction::parse_outbound(
                "privacy.redact_outbound",
                &self.redact_outbound,
            )?,
            index_bodies: self.index_bodies,
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
            index_bodies: false,
        }
    }

    #[test]
    fn every_field_name_parses() {
        let names: Vec<&str> = Field::INBOUND.iter().map(|f| f.name()).collect();
        let config = raw(&names, &[]).validate().unwrap();
        assert!(Field::INBOUND.iter().all(|&f| config.redact.contains(f)));
        assert!(config.redact_outbound.is_empty());
        let names: Vec<&str> = Field::OUTBOUND.iter().map(|f| f.name()).collect();
        let config = raw(&[], &names).validate().unwrap();
        assert!(
            Field::OUTBOUND
                .iter()
                .all(|&f| config.redact_outbound.contains(f))
        );
    }

    #[test]
    fn tracking_is_a_field_of_sent_mail_only() {
        let text = raw(&["tracking"], &[]).validate().unwrap_err().to_string();
        assert!(
            text.contains("not a metadata field of received mail"),
            "{text}"
        );
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
