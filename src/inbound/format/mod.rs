//! CloudMailin-compatible POST payloads (spec §1). Each format is a pure function from a
//! [`ParsedMessage`] and its [`PayloadEnvelope`] to a request body; no I/O.

pub mod json_normalized;

use super::message::ParsedMessage;
use crate::config::Format;

/// The SMTP facts every format carries (spec §1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadEnvelope {
    /// The first accepted recipient, the one that routed to this address.
    pub to: String,
    pub recipients: Vec<String>,
    /// MAIL FROM, bare; empty for the null reverse-path.
    pub from: String,
    pub helo_domain: String,
    pub remote_ip: String,
    /// The TLS protocol (`TLSv1.3`), or `None` for a plaintext session.
    pub tls_version: Option<String>,
    /// Lower-case hex MD5 of the message as the client sent it.
    pub md5: String,
    pub spf: Spf,
}

/// `envelope.spf`. Until SPF checking lands the result is always `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spf {
    pub result: String,
    pub domain: String,
}

/// A ready request body.
#[derive(Debug, Clone)]
pub struct Payload {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub fn build(format: Format, envelope: &PayloadEnvelope, message: &ParsedMessage) -> Payload {
    match format {
        Format::JsonNormalized => Payload {
            // No charset parameter: the official demo receiver compares for equality (§1.1).
            content_type: "application/json",
            body: json_normalized::build(envelope, message),
        },
    }
}
