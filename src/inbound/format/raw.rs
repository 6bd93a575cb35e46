//! Raw (`raw`, contract §1.8): `multipart/form-data` with the envelope in bracket notation and
//! `message`, the message exactly as received (after our own `Received:` line, like the
//! contract's example), sent as a plain field rather than a file part ([INF] contract §1.8).
//!
//! [INF] The field table in the docs omits `tls` and `recipients`; we send the same envelope
//! fields as Multipart Normalized, as contract §1.2 recommends.

use super::PayloadEnvelope;
use super::form_data::FormData;

pub fn form<'a>(envelope: &PayloadEnvelope, raw: &'a [u8]) -> FormData<'a> {
    let mut form = FormData::new();
    form.flattened("envelope", &envelope.to_json());
    form.bytes("message", raw);
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::envelope;

    #[test]
    fn envelope_then_the_unaltered_message() {
        // Not UTF-8, bare LF, a line that looks like a delimiter: all passed on untouched.
        let raw = b"Subject: x\r\n\r\n\xe9t\xe9\n--B\r\n";
        let form = form(&envelope(), raw);
        let names: Vec<&str> = form.names().collect();
        assert_eq!(names.first(), Some(&"envelope[to]"));
        assert_eq!(names.last(), Some(&"message"));
        let boundary = form.unused_boundary("B");
        assert_ne!(boundary, "B");
        let body = form.encode(&boundary);
        let message_part = b"name=\"message\"\r\n\r\n";
        let start = body
            .windows(message_part.len())
            .position(|w| w == message_part)
            .unwrap()
            + message_part.len();
        let end = body.len() - format!("\r\n--{boundary}--\r\n").len();
        assert_eq!(&body[start..end], raw);
    }
}
