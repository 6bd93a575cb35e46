//! Any bytes as a received message: `ParsedMessage::parse`, then every format in
//! `Format::ALL`; and as return mail: `bounce::classify` (DSNs, ARF feedback reports,
//! replies). Nothing may panic and the JSON formats must produce valid JSON.
//!
//! mail-parser 0.11.9 itself panics on some malformed MIME; `ParsedMessage::parse` catches
//! that and passes the message on unparsed, so those panics are not failures here. Each one
//! is reported once, by location; any other panic aborts as usual.

#![no_main]

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use postern::config::Format;
use postern::inbound::format::{self, PayloadEnvelope, Spf};
use postern::mail::message::ParsedMessage;
use postern::outbound::bounce;

static ENVELOPE: LazyLock<PayloadEnvelope> = LazyLock::new(|| PayloadEnvelope {
    to: "to@example.com".into(),
    recipients: vec!["to@example.com".into(), "cc@example.com".into()],
    from: "from@example.net".into(),
    helo_domain: "client.example.net".into(),
    remote_ip: "192.0.2.1".into(),
    tls_version: Some("TLSv1.3".into()),
    md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
    spf: Spf {
        result: "none".into(),
        domain: "example.net".into(),
    },
    dkim: None,
    dmarc: None,
    store_url: None,
});

/// Lets mail-parser's panics unwind to `ParsedMessage::parse`; the rest abort.
fn tolerate_mail_parser_panics() {
    let aborting = std::panic::take_hook();
    let seen = Mutex::new(HashSet::new());
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| (l.file().to_string(), l.line()));
        match location {
            Some((file, line)) if file.contains("/mail-parser-") => {
                if seen.lock().unwrap().insert((file.clone(), line)) {
                    eprintln!("caught mail-parser panic at {file}:{line}: {info}");
                }
            }
            _ => aborting(info),
        }
    }));
}

fuzz_target!(init: tolerate_mail_parser_panics(), |raw: &[u8]| {
    let message = ParsedMessage::parse(raw);
    for (name, format) in Format::ALL {
        let options = format::FormatOptions {
            size_as_number: raw.len() % 2 == 0,
            signature_secret: (raw.len() % 3 == 0).then(|| "whsec_fuzz".to_string()),
            html_to_plain: raw.len() % 3 != 0,
        };
        let payload = format::build(*format, &ENVELOPE, &message, raw, &options);
        if payload.content_type.starts_with("application/json")
            && let Err(e) = serde_json::from_slice::<serde_json::Value>(&payload.body)
        {
            panic!("{name}: invalid JSON: {e}");
        }
    }
    bounce::classify(raw, "", &ENVELOPE.recipients);
});
