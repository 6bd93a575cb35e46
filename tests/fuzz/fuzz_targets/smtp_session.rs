//! Any bytes, split anywhere, into `smtp::session::Session`, whose events are answered like
//! an accept-all handler would (as `drive` in the session's unit tests). Nothing may panic;
//! the session must consume its input or stop with an event; every reply must be well
//! formed on the wire; no message may exceed its size limit.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use postern::smtp::Reply;
use postern::smtp::session::{Event, Session, SessionConfig, SessionPolicy, SizeLimit};

const MAX_MESSAGE: usize = 2000;
/// The limit of recipients that start with `small`.
const SMALL_BOX: usize = 200;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// 0: the MX listener; 1: submission; 2: dev-mode submission (AUTH without TLS).
    listener: u8,
    /// The lengths in which the data arrives, used in turn (0 counts as 1).
    splits: Vec<u8>,
    data: &'a [u8],
}

fn config(listener: u8) -> SessionConfig {
    SessionConfig {
        policy: match listener % 3 {
            0 => SessionPolicy::Inbound,
            n => SessionPolicy::Submission {
                plaintext_auth: n == 2,
            },
        },
        hostname: "mx.fuzz.test".into(),
        max_message_size: MAX_MESSAGE,
        max_recipients: 3,
        max_line_length: 120,
        max_errors: 10,
        size_exceeded_message: "too big".into(),
        tls_available: true,
    }
}

fuzz_target!(|input: Input<'_>| {
    let mut session = Session::new(config(input.listener));
    check_reply(&session.greeting());
    let mut rest = input.data;
    let mut splits = input.splits.iter().cycle();
    while !rest.is_empty() && !session.is_closed() {
        let len = splits.next().map_or(rest.len(), |&n| usize::from(n.max(1)));
        let (mut chunk, after) = rest.split_at(len.min(rest.len()));
        rest = after;
        while !chunk.is_empty() && !session.is_closed() {
            let (used, event) = session.ingest(chunk);
            assert!(used <= chunk.len());
            chunk = &chunk[used..];
            match event {
                None => assert!(chunk.is_empty(), "ingest stopped without an event"),
                // The shell drops what it had buffered before the TLS handshake.
                Some(event) => {
                    if answer(&mut session, event) {
                        chunk = &[];
                    }
                }
            }
        }
    }
});

/// Answers events until one is for the wire; true after STARTTLS.
fn answer(session: &mut Session, mut event: Event) -> bool {
    loop {
        event = match event {
            Event::CheckRecipient(address) => {
                let verdict = if address.starts_with("unknown") {
                    Err(Reply::new(550, "5.1.1", "No such user"))
                } else if address.starts_with("small") {
                    Ok(Some(SizeLimit {
                        max: SMALL_BOX,
                        message: "small box".into(),
                    }))
                } else {
                    Ok(None)
                };
                session.recipient_checked(address, verdict)
            }
            Event::Message { envelope, body, .. } => {
                assert!(
                    !envelope.recipients.is_empty(),
                    "a message without recipients"
                );
                let limit = if envelope.recipients.iter().any(|r| r.starts_with("small")) {
                    SMALL_BOX
                } else {
                    MAX_MESSAGE
                };
                assert!(
                    body.len() <= limit,
                    "{} octets past the limit {limit}",
                    body.len()
                );
                let reply = if body.len() % 3 == 0 {
                    Reply::new(554, "5.6.0", "rejected by the target")
                } else {
                    Reply::OK
                };
                session.message_handled(reply)
            }
            Event::Reply(reply) => {
                check_reply(&reply);
                return false;
            }
            Event::Close(reply) => {
                check_reply(&reply);
                assert!(session.is_closed(), "Close without closing");
                return false;
            }
            Event::StartTls => {
                session.tls_started();
                return true;
            }
            // Passwords that start with `ok` are right; senders `other@…` not allowed.
            Event::Authenticate(credentials) => {
                session.authenticated(match credentials.password.starts_with("ok") {
                    true => Ok(()),
                    false => Err(Reply::AUTH_FAILED),
                })
            }
            Event::CheckSender(address) => {
                assert!(session.identity().is_some(), "a sender check before AUTH");
                let verdict = match address.starts_with("other") {
                    true => Err(Reply::SENDER_NOT_ALLOWED),
                    false => Ok(()),
                };
                session.sender_checked(address, verdict)
            }
        };
    }
}

/// A valid code, and on the wire CRLF-terminated lines of `code[- ]text` with no other CR
/// or LF: client text echoed in a reply must not be able to forge another reply.
fn check_reply(reply: &Reply) {
    assert!((200..600).contains(&reply.code), "{reply:?}");
    let mut wire = Vec::new();
    reply.write_to(&mut wire);
    let text = String::from_utf8(wire).expect("replies are UTF-8");
    let lines: Vec<&str> = text
        .strip_suffix("\r\n")
        .expect("CRLF at the end")
        .split("\r\n")
        .collect();
    let code = reply.code.to_string();
    for (i, line) in lines.iter().enumerate() {
        assert!(!line.contains(['\r', '\n']), "bare CR or LF in {text:?}");
        let separator = if i + 1 == lines.len() { " " } else { "-" };
        assert!(
            line.starts_with(&format!("{code}{separator}")),
            "bad reply line {line:?}"
        );
    }
}
