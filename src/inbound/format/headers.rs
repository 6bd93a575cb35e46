//! Header fields as the formats key them (contract §1.3): normalized `lower_snake` keys for the
//! recommended formats, the Ruby `mail` gem's names and order for the deprecated ones.
//!
//! The deprecated formats come from CloudMailin's Ruby stack, and the real 2015 payload
//! (`peterhellberg/cloudmailin: testdata/bcc.json`) shows what the `mail` gem does to a
//! header block:
//!
//! - A field the gem knows (its `Field::FIELDS_MAP`) is renamed to the gem's capitalisation
//!   (each field class's `CAPITALIZED_FIELD`): `MIME-Version` becomes `Mime-Version`, while
//!   `Message-ID` and `Content-ID` keep their capital `ID`. `DKIM-Signature` is not one of
//!   them, so it stays as written, like every other unknown field (`OptionalField`).
//! - Fields are kept sorted by the gem's `FIELD_ORDER` (`Mail::FieldList#<<` inserts in
//!   order, stably), unknown fields last in message order. That is why `bcc.json` lists
//!   `Received, Date, From, To, Bcc, Message-ID, Subject, Mime-Version, Content-Type` and
//!   then the `X-` fields, which is not the order Gmail writes them in.
//!
//! We copy both, so that a consumer written against upstream sees the same keys in the same
//! order. Repeated fields stay arrays in message order, as in the normalized formats
//! (contract §1.3).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::mail::message::ParsedMessage;

/// How a format names header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `Message-ID` → `message_id` (JSON Normalized, Multipart Normalized).
    Normalized,
    /// As written, with the `mail` gem's capitalisation and order (deprecated JSON and
    /// Multipart).
    Original,
}

/// One key of the `headers` object: a name and its values in message order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderGroup<'m> {
    pub key: String,
    pub values: Vec<&'m str>,
}

/// The top-level header fields grouped by key, in order of first appearance (contract §1.3
/// item 7), or in the `mail` gem's order for [`Naming::Original`].
///
/// Fields whose keys differ only in case are one group, named as first written: the
/// normalized keys are lower-case anyway, and for original names this is how the `mail`
/// gem looks fields up (`responsible_for?` compares case-insensitively).
pub fn grouped(message: &ParsedMessage, naming: Naming) -> Vec<HeaderGroup<'_>> {
    let mut groups: Vec<HeaderGroup<'_>> = Vec::new();
    // Lower-cased key → index in `groups`; a hash so that a message with a great many
    // distinct fields costs linear time, not quadratic.
    let mut index: HashMap<String, usize> = HashMap::new();
    for field in &message.headers {
        let key = match naming {
            Naming::Normalized => normalize_name(&field.name),
            Naming::Original => canonical_name(&field.name),
        };
        match index.entry(key.to_ascii_lowercase()) {
            Entry::Occupied(slot) => groups[*slot.get()].values.push(&field.value),
            Entry::Vacant(slot) => {
                slot.insert(groups.len());
                groups.push(HeaderGroup {
                    key,
                    values: vec![&field.value],
                });
            }
        }
    }
    if naming == Naming::Original {
        // Stable: equal ranks keep their message order, as in `Mail::FieldList#<<`.
        groups.sort_by_key(|g| mail_gem_rank(&g.key));
    }
    groups
}

/// `Message-ID` → `message_id` (contract §1.3 item 2).
pub fn normalize_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// The fields the `mail` gem knows, lower-case, with its spelling of each
/// (`mikel/mail: lib/mail/field.rb` `FIELDS_MAP` and `lib/mail/fields/*_field.rb`
/// `CAPITALIZED_FIELD`).
const MAIL_GEM_NAMES: &[(&str, &str)] = &[
    ("to", "To"),
    ("cc", "Cc"),
    ("bcc", "Bcc"),
    ("message-id", "Message-ID"),
    ("in-reply-to", "In-Reply-To"),
    ("references", "References"),
    ("subject", "Subject"),
    ("comments", "Comments"),
    ("keywords", "Keywords"),
    ("date", "Date"),
    ("from", "From"),
    ("sender", "Sender"),
    ("reply-to", "Reply-To"),
    ("resent-date", "Resent-Date"),
    ("resent-from", "Resent-From"),
    ("resent-sender", "Resent-Sender"),
    ("resent-to", "Resent-To"),
    ("resent-cc", "Resent-Cc"),
    ("resent-bcc", "Resent-Bcc"),
    ("resent-message-id", "Resent-Message-ID"),
    ("return-path", "Return-Path"),
    ("received", "Received"),
    ("mime-version", "Mime-Version"),
    ("content-transfer-encoding", "Content-Transfer-Encoding"),
    ("content-description", "Content-Description"),
    ("content-disposition", "Content-Disposition"),
    ("content-type", "Content-Type"),
    ("content-id", "Content-ID"),
    ("content-location", "Content-Location"),
];

/// The `mail` gem's `Field::FIELD_ORDER`; fields not listed rank after all of these.
const MAIL_GEM_ORDER: &[&str] = &[
    "return-path",
    "received",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-message-id",
    "date",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "message-id",
    "in-reply-to",
    "references",
    "subject",
    "comments",
    "keywords",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-location",
    "content-disposition",
    "content-description",
];

/// A field name as the `mail` gem spells it: its own capitalisation for the fields it
/// knows, the name as written for all others (`X-Tag`, `DKIM-Signature`, `x-custom`).
pub fn canonical_name(name: &str) -> String {
    MAIL_GEM_NAMES
        .iter()
        .find(|(lower, _)| lower.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |(_, canonical)| canonical.to_string())
}

fn mail_gem_rank(name: &str) -> usize {
    MAIL_GEM_ORDER
        .iter()
        .position(|known| known.eq_ignore_ascii_case(name))
        .unwrap_or(MAIL_GEM_ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message::HeaderField;

    fn message(fields: &[(&str, &str)]) -> ParsedMessage {
        ParsedMessage {
            headers: fields
                .iter()
                .map(|(name, value)| HeaderField {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            ..ParsedMessage::default()
        }
    }

    #[test]
    fn normalized_names() {
        assert_eq!(normalize_name("Message-ID"), "message_id");
        assert_eq!(
            normalize_name("X-Google-DKIM-Signature"),
            "x_google_dkim_signature"
        );
        assert_eq!(normalize_name("MIME-Version"), "mime_version");
    }

    #[test]
    fn canonical_names_follow_the_mail_gem() {
        for (written, expected) in [
            ("MIME-Version", "Mime-Version"),
            ("mime-version", "Mime-Version"),
            ("message-id", "Message-ID"),
            ("Message-Id", "Message-ID"),
            ("CONTENT-ID", "Content-ID"),
            ("return-path", "Return-Path"),
            ("RECEIVED", "Received"),
            ("reply-to", "Reply-To"),
            ("Resent-cc", "Resent-Cc"),
            ("content-transfer-encoding", "Content-Transfer-Encoding"),
            ("subject", "Subject"),
            // Unknown to the gem: as written.
            ("DKIM-Signature", "DKIM-Signature"),
            ("dkim-signature", "dkim-signature"),
            ("Received-SPF", "Received-SPF"),
            ("X-Google-DKIM-Signature", "X-Google-DKIM-Signature"),
            ("x-gm-message-state", "x-gm-message-state"),
            ("X_Tag", "X_Tag"),
        ] {
            assert_eq!(canonical_name(written), expected, "{written}");
        }
    }

    #[test]
    fn repeats_group_in_message_order_by_first_appearance() {
        let m = message(&[
            ("Received", "b"),
            ("Subject", "s"),
            ("received", "a"),
            ("X-Tag", "1"),
            ("X_Tag", "2"),
        ]);
        let keys = |naming| -> Vec<(String, Vec<&str>)> {
            grouped(&m, naming)
                .into_iter()
                .map(|g| (g.key, g.values))
                .collect()
        };
        assert_eq!(
            keys(Naming::Normalized),
            [
                ("received".to_string(), vec!["b", "a"]),
                ("subject".to_string(), vec!["s"]),
                // Two spellings, one key (contract §1.3 item 7).
                ("x_tag".to_string(), vec!["1", "2"]),
            ]
        );
        assert_eq!(
            keys(Naming::Original),
            [
                ("Received".to_string(), vec!["b", "a"]),
                ("Subject".to_string(), vec!["s"]),
                ("X-Tag".to_string(), vec!["1"]),
                ("X_Tag".to_string(), vec!["2"]),
            ]
        );
    }

    #[test]
    fn original_names_take_the_mail_gem_order() {
        // Gmail's order in the message behind bcc.json; upstream sent it re-ordered.
        let m = message(&[
            ("MIME-Version", "1.0"),
            ("Received", "r1"),
            ("X-Received", "x"),
            ("Date", "d"),
            ("Message-ID", "<m>"),
            ("Subject", "s"),
            ("From", "f"),
            ("x-custom", "c"),
            ("To", "t"),
            ("Bcc", "b"),
            ("Content-Type", "multipart/alternative"),
            ("Received", "r2"),
        ]);
        let keys: Vec<String> = grouped(&m, Naming::Original)
            .into_iter()
            .map(|g| g.key)
            .collect();
        assert_eq!(
            keys,
            [
                "Received",
                "Date",
                "From",
                "To",
                "Bcc",
                "Message-ID",
                "Subject",
                "Mime-Version",
                "Content-Type",
                "X-Received",
                "x-custom",
            ]
        );
        let normalized: Vec<String> = grouped(&m, Naming::Normalized)
            .into_iter()
            .map(|g| g.key)
            .collect();
        assert_eq!(
            normalized[0], "mime_version",
            "normalized keeps message order"
        );
    }
}
