//! CloudMailin-compatible POST payloads (spec §1). Each format is a pure function from a
//! [`ParsedMessage`] and its [`PayloadEnvelope`] to a request body; no I/O.

pub mod json_normalized;

use serde::Serialize;
use serde_json::{Value, json};

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
    /// Present only when the address enables DKIM verification (spec §5.2).
    pub dkim: Option<Dkim>,
    /// Present only when the address enables DMARC verification (spec §5.3).
    pub dmarc: Option<Dmarc>,
}

/// `envelope.spf` (spec §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spf {
    /// `none`, `neutral`, `pass`, `fail`, `softfail`, `temperror` or `permerror`.
    pub result: String,
    pub domain: String,
}

/// `envelope.dkim` (spec §5.2). `success` says the check ran; it is not the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dkim {
    pub success: bool,
    pub result: Vec<DkimSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimSignature {
    /// `pass`, `fail`, `neutral`, `temperror` or `permerror`.
    pub result: String,
    pub domain: String,
    pub selector: String,
}

/// `envelope.dmarc` (spec §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dmarc {
    pub success: bool,
    /// `pass`, `fail`, `none`, `temperror` or `permerror`.
    pub result: String,
    pub details: DmarcDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcDetails {
    pub domain: String,
    /// `none`, `quarantine` or `reject`.
    pub policy: String,
    pub spf_result: String,
    pub dmarc_spf_result: String,
    pub dmarc_dkim_result: String,
    pub dkim_results: Vec<DkimSignature>,
}

impl PayloadEnvelope {
    /// The envelope as every format carries it, in the spec's key order (§1.2). Multipart
    /// formats flatten this same value into bracket notation.
    pub fn to_json(&self) -> Value {
        let mut envelope = json!({
            "to": self.to,
            "recipients": self.recipients,
            "from": self.from,
            "helo_domain": self.helo_domain,
            "remote_ip": self.remote_ip,
            "tls": self.tls_version.is_some(),
            // Despite the name, CloudMailin sends the TLS protocol version here (§1.2).
            "tls_cipher": self.tls_version.as_deref().unwrap_or(""),
            "md5": self.md5,
            "spf": self.spf,
        });
        if let Some(dkim) = &self.dkim {
            envelope["dkim"] = json!(dkim);
        }
        if let Some(dmarc) = &self.dmarc {
            envelope["dmarc"] = json!(dmarc);
        }
        envelope
    }
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
