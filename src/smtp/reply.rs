//! SMTP replies: a code, an enhanced status code (RFC 3463) and text, written to the wire.

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply. Text may hold several lines (`\n`-separated); they are written as a
/// multi-line reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `2.1.0`; empty for the greeting and EHLO.
    pub enhanced: &'static str,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, enhanced: &'static str, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Borrowed(text),
        }
    }

    pub fn owned(code: u16, enhanced: &'static str, text: String) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Owned(text),
        }
    }

    /// 2xx and 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends this reply to `out` in wire form (CRLF line ends, `-` continuation lines).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let line = line.trim_end_matches('\r');
            if self.enhanced.is_empty() {
                out.extend_from_slice(format!("{}{sep}{line}\r\n", self.code).as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{}{sep}{} {line}\r\n", self.code, self.enhanced).as_bytes(),
                );
            }
        }
    }

    pub const OK: Reply = Reply::new(250, "2.0.0", "OK");
    pub const SENDER_OK: Reply = Reply::new(250, "2.1.0", "Sender OK");
    pub const RECIPIENT_OK: Reply = Reply::new(250, "2.1.5", "Recipient OK");
    pub const RESET: Reply = Reply::new(250, "2.0.0", "Reset");
    pub const BYE: Reply = Reply::new(221, "2.0.0", "Bye");
    pub const START_DATA: Reply = Reply::new(354, "", "Start mail input; end with <CRLF>.<CRLF>");
    pub const START_TLS: Reply = Reply::new(220, "2.0.0", "Ready to start TLS");
    pub const VRFY: Reply = Reply::new(
        252,
        "2.5.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    );
    pub const HELP: Reply = Reply::new(
        214,
        "2.0.0",
        "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
    );
    pub const SHUTTING_DOWN: Reply =
        Reply::new(421, "4.3.2", "Server shutting down, try again later");
    pub const TOO_MANY_ERRORS: Reply =
        Reply::new(421, "4.7.0", "Too many errors, closing connection");
    pub const TIMEOUT: Reply = Reply::new(421, "4.4.2", "Timeout, closing connection");
    pub const TOO_BUSY: Reply = Reply::new(421, "4.3.2", "Too many connections, try again later");
    pub const LINE_TOO_LONG: Reply = Reply::new(500, "5.5.2", "Line too long");
    pub const UNKNOWN_COMMAND: Reply = Reply::new(500, "5.5.1", "Command not recognized");
    pub const NOT_IMPLEMENTED: Reply = Reply::new(502, "5.5.1", "Command not implemented");
    pub const BAD_SEQUENCE_HELO: Reply = Reply::new(503, "5.5.1", "Send EHLO or HELO first");
    pub const BAD_SEQUENCE_MAIL: Reply = Reply::new(503, "5.5.1", "Send MAIL FROM first");
    pub const BAD_SEQUENCE_NESTED_MAIL: Reply = Reply::new(
        503,
        "5.5.1",
        "Sender already given; send RSET to start over",
    );
    pub const BAD_SEQUENCE_RCPT: Reply = Reply::new(503, "5.5.1", "Send RCPT TO first");
    pub const BAD_SEQUENCE_BDAT: Reply =
        Reply::new(503, "5.5.1", "DATA cannot follow BDAT in one transaction");
    pub const TLS_ALREADY: Reply = Reply::new(503, "5.5.1", "TLS already active");
    pub const TLS_UNAVAILABLE: Reply = Reply::new(454, "4.7.0", "TLS not available");
    pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, "4.5.3", "Too many recipients");
    pub const SEPARATE_TRANSACTION: Reply = Reply::new(
        452,
        "4.5.3",
        "This recipient must be sent in a separate transaction",
    );
    pub const NO_SUCH_USER: Reply = Reply::new(550, "5.1.1", "No such recipient here");
    /// RFC 6531 §3.3: a MAIL or RCPT argument that is not valid UTF-8.
    pub const ADDRESS_NOT_UTF8: Reply = Reply::new(553, "5.6.7", "Address is not valid UTF-8");
    /// The global memory budget for message content is spent (issue 10 item 9).
    pub const NO_MEMORY: Reply = Reply::new(
        452,
        "4.3.1",
        "Insufficient system storage: too many messages in progress, try again later",
    );
    /// Per-IP connection cap of a listener.
    /// The spool file of a message could not be written or read back (a full disk, say).
    pub const SPOOL_ERROR: Reply = Reply::new(
        451,
        "4.3.0",
        "Local error in processing (message spool), try again later",
    );
    /// The same in the middle of the content, when the session can only be closed.
    pub const SPOOL_CLOSING: Reply = Reply::new(
        421,
        "4.3.0",
        "Local error in processing (message spool), closing connection",
    );
    pub const TOO_MANY_FROM_IP: Reply = Reply::new(
        421,
        "4.7.0",
        "Too many connections from your address, try again later",
    );
    /// The listener is nearly full and this address already has a session: the remaining
    /// slots are kept for addresses that have none.
    pub const SLOTS_RESERVED: Reply = Reply::new(
        421,
        "4.7.0",
        "Server nearly full; remaining connections are kept for other senders, try again later",
    );
    pub const SESSION_DEADLINE: Reply = Reply::new(
        421,
        "4.4.2",
        "Session time limit reached, closing connection",
    );
    pub const DATA_TOO_SLOW: Reply = Reply::new(
        421,
        "4.4.2",
        "Message data arriving too slowly, closing connection",
    );
    pub const SMTPUTF8_REQUIRED: Reply =
        Reply::new(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");

    // AUTH (RFC 4954) on a submission listener.
    pub const AUTH_OK: Reply = Reply::new(235, "2.7.0", "Authentication successful");
    pub const AUTH_FAILED: Reply = Reply::new(535, "5.7.8", "Authentication credentials invalid");
    /// For a handler that cannot check credentials right now (store unavailable).
    pub const AUTH_TEMPORARY_FAILURE: Reply =
        Reply::new(454, "4.7.0", "Temporary authentication failure");
    pub const AUTH_REQUIRED: Reply = Reply::new(530, "5.7.0", "Authentication required");
    pub const AUTH_NEEDS_TLS: Reply =
        Reply::new(530, "5.7.0", "Must issue a STARTTLS command first");
    pub const AUTH_ALREADY: Reply = Reply::new(503, "5.5.1", "Already authenticated");
    pub const AUTH_IN_TRANSACTION: Reply =
        Reply::new(503, "5.5.1", "AUTH not permitted during a mail transaction");
    pub const AUTH_UNKNOWN_MECHANISM: Reply =
        Reply::new(504, "5.5.4", "Unrecognized authentication type");
    pub const AUTH_CANCELLED: Reply = Reply::new(501, "5.0.0", "Authentication cancelled");
    pub const AUTH_BAD_BASE64: Reply = Reply::new(501, "5.5.2", "Invalid base64 data");
    pub const AUTH_MALFORMED: Reply = Reply::new(501, "5.5.2", "Malformed authentication response");
    /// The sender a handler refuses for the authenticated credential.
    pub const SENDER_NOT_ALLOWED: Reply = Reply::new(
        550,
        "5.7.1",
        "Sender address not allowed for this credential",
    );
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        let text = String::from_utf8_lossy(&out);
        f.write_str(text.trim_end().replace("\r\n", " / ").as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_and_multi_line() {
        assert_eq!(wire(&Reply::OK), "250 2.0.0 OK\r\n");
        assert_eq!(
            wire(&Reply::owned(
                250,
                "",
                "mx.example\nPIPELINING\nSIZE 10".into()
            )),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn display_is_one_line() {
        assert_eq!(
            Reply::owned(250, "", "a\nb".into()).to_string(),
            "250-a / 250 b"
        );
    }
}
