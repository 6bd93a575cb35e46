//! JSON, deprecated (`json`, contract §1.9.1): JSON Normalized with the header names as
//! written, spelt and ordered the way upstream's Ruby `mail` gem does it
//! ([`super::headers`]). Envelope, bodies and attachments are identical.

use super::headers::Naming;
use super::{FormatOptions, PayloadEnvelope, json_normalized};
use crate::mail::message::ParsedMessage;

pub fn build(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    options: &FormatOptions,
) -> Vec<u8> {
    json_normalized::payload(envelope, message, Naming::Original, options)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::inbound::format::tests::{envelope, message};

    #[test]
    fn original_names_and_the_same_rest() {
        let options = FormatOptions::default();
        let json: Value =
            serde_json::from_slice(&build(&envelope(), &message(), &options)).unwrap();
        let keys: Vec<&String> = json["headers"].as_object().unwrap().keys().collect();
        // The message has `MIME-Version` before `Subject`; the mail gem's order does not.
        assert_eq!(
            keys,
            ["Received", "Subject", "Mime-Version", "X-Tag", "X_Tag"]
        );
        assert_eq!(json["headers"]["Received"], json!(["r1", "r2"]));
        assert_eq!(json["headers"]["X-Tag"], "1");
        let normalized: Value =
            serde_json::from_slice(&json_normalized::build(&envelope(), &message(), &options))
                .unwrap();
        for key in ["envelope", "plain", "html", "reply_plain", "attachments"] {
            assert_eq!(json[key], normalized[key], "{key}");
        }
    }
}
