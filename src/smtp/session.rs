//! The SMTP session state machine (RFC 5321, with PIPELINING, 8BITMIME, SMTPUTF8, SIZE,
//! ENHANCEDSTATUSCODES, CHUNKING and STARTTLS). No I/O and no policy.
//!
//! The shell feeds received octets to [`Session::ingest`] and acts on each [`Event`]: it
//! writes replies, upgrades to TLS, and asks its handler about recipients and messages,
//! answering through [`Session::recipient_checked`] and [`Session::message_handled`].
//! Command lines are split here (not by smtp-proto) so that the line limit holds before
//! anything is buffered; smtp-proto parses each complete line.

use smtp_proto::{Error as ParseError, Request};

use super::Reply;
use super::data::{ChunkReceiver, DataError, DataReceiver};

/// Limits and identity for one session, from the validated config.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_errors: u32,
    pub size_exceeded_message: String,
    /// Whether STARTTLS can be offered (a certificate is configured).
    pub tls_available: bool,
}

/// The SMTP envelope of a complete transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The EHLO/HELO argument.
    pub helo: String,
    /// The MAIL FROM address, bare; empty for the null reverse-path `<>`.
    pub mail_from: String,
    /// Every accepted RCPT TO address in order, bare.
    pub recipients: Vec<String>,
}

/// The transaction so far, as a handler sees it when deciding on a recipient.
#[derive(Debug, Clone, Copy)]
pub struct TransactionInfo<'a> {
    pub helo: &'a str,
    pub mail_from: &'a str,
    /// The client's `SIZE=` parameter, if it sent one.
    pub declared_size: Option<usize>,
    /// Recipients accepted so far.
    pub recipients: &'a [String],
}

/// A lower size limit that applies once a recipient is accepted (per-address limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeLimit {
    pub max: usize,
    /// The 552 text.
    pub message: String,
}

/// What the shell must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this reply (it may be buffered while more pipelined input is pending).
    Reply(Reply),
    /// Write this reply, flush, and close the connection.
    Close(Reply),
    /// Write `220 Ready to start TLS`, drop any buffered input, perform the handshake, then
    /// call [`Session::tls_started`].
    StartTls,
    /// Decide on this recipient, then call [`Session::recipient_checked`].
    CheckRecipient(String),
    /// Deliver this message, then call [`Session::message_handled`].
    Message { envelope: Envelope, body: Vec<u8> },
}

#[derive(Debug)]
enum State {
    Command,
    Data(DataReceiver),
    Bdat {
        chunk_left: usize,
        last: bool,
        /// `Err` holds the reply when the chunk is being discarded (BDAT out of sequence).
        content: Result<ChunkReceiver, Reply>,
    },
    /// Waiting for the shell's answer to an event.
    Waiting,
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: Option<String>,
    declared_size: Option<usize>,
    recipients: Vec<String>,
    /// The tightest per-address limit among the accepted recipients.
    size_limit: Option<SizeLimit>,
    smtputf8: bool,
    /// BDAT content received so far; set by the first BDAT.
    chunks: Option<ChunkReceiver>,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    tx: Transaction,
    consecutive_errors: u32,
    /// A partial command line.
    line: Vec<u8>,
    /// Set while discarding the rest of an over-long command line.
    skipping_long_line: bool,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            line: Vec::with_capacity(128),
            config,
            state: State::Command,
            helo: None,
            esmtp: false,
            tls: false,
            tx: Transaction::default(),
            consecutive_errors: 0,
            skipping_long_line: false,
        }
    }

    /// The 220 banner.
    pub fn greeting(&self) -> Reply {
        Reply::owned(220, "", format!("{} ESMTP Postern", self.config.hostname))
    }

    /// The current transaction, for the handler's recipient decision.
    pub fn transaction(&self) -> TransactionInfo<'_> {
        TransactionInfo {
            helo: self.helo.as_deref().unwrap_or_default(),
            mail_from: self.tx.mail_from.as_deref().unwrap_or_default(),
            declared_size: self.tx.declared_size,
            recipients: &self.tx.recipients,
        }
    }

    /// The size limit and its 552 text for the current transaction.
    fn size_limit(&self) -> (usize, &str) {
        match &self.tx.size_limit {
            Some(limit) if limit.max < self.config.max_message_size => (limit.max, &limit.message),
            _ => (
                self.config.max_message_size,
                &self.config.size_exceeded_message,
            ),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True while message content (DATA or a BDAT chunk) is being read: the shell applies
    /// the data timeout instead of the command timeout.
    pub fn is_reading_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Consumes octets from `input` until an event occurs. Returns the number of octets
    /// consumed and the event, or `None` when all input was consumed and more is needed.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        match &mut self.state {
            State::Closed | State::Waiting => (0, None),
            State::Data(receiver) => {
                let (used, result) = receiver.ingest(input);
                let event = result.map(|result| self.data_finished(result));
                (used, event)
            }
            State::Bdat {
                chunk_left,
                last,
                content,
            } => {
                let take = input.len().min(*chunk_left);
                if let Ok(content) = content {
                    let max = match &self.tx.size_limit {
                        Some(limit) => limit.max.min(self.config.max_message_size),
                        None => self.config.max_message_size,
                    };
                    content.push(&input[..take], max);
                }
                *chunk_left -= take;
                if *chunk_left > 0 {
                    return (take, None);
                }
                let last = *last;
                let content = std::mem::replace(content, Err(Reply::OK));
                (take, Some(self.chunk_finished(content, last)))
            }
            State::Command => self.ingest_command(input),
        }
    }

    fn ingest_command(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            self.buffer_partial_line(input);
            return (input.len(), None);
        };
        let used = newline + 1;
        if self.skipping_long_line {
            self.skipping_long_line = false;
            return (used, Some(self.error(Reply::LINE_TOO_LONG)));
        }
        if self.line.len() + used > self.config.max_line_length {
            self.line.clear();
            return (used, Some(self.error(Reply::LINE_TOO_LONG)));
        }
        let event = if self.line.is_empty() {
            self.command_line(&input[..used])
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(&input[..used]);
            let event = self.command_line(&line);
            line.clear();
            self.line = line;
            event
        };
        match event {
            Some(event) => (used, Some(event)),
            // BDAT: the chunk follows the command line directly.
            None => {
                let (more, event) = self.ingest(&input[used..]);
                (used + more, event)
            }
        }
    }

    fn buffer_partial_line(&mut self, input: &[u8]) {
        if self.skipping_long_line {
            return;
        }
        if self.line.len() + input.len() > self.config.max_line_length {
            self.line = Vec::with_capacity(128);
            self.skipping_long_line = true;
        } else {
            self.line.extend_from_slice(input);
        }
    }

    /// Handles one complete command line; `None` only for a BDAT whose chunk follows.
    fn command_line(&mut self, line: &[u8]) -> Option<Event> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(error) => return Some(self.error(parse_error_reply(error))),
        };
        Some(match request {
            Request::Ehlo { host } => self.hello(host.into_owned(), true),
            Request::Helo { host } => self.hello(host.into_owned(), false),
            Request::Mail { from } => self.mail(
                from.address.into_owned(),
                from.size,
                from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            ),
            Request::Rcpt { to } => self.rcpt(to.address.into_owned()),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                // smtp-proto keeps only the first digits of an over-long size; a chunk size
                // that is not exactly what was sent would desynchronise the framing.
                if chunk_size_token(line) != Some(chunk_size) {
                    return Some(self.error(Reply::new(501, "5.5.4", "Syntax: BDAT size [LAST]")));
                }
                return self.bdat(chunk_size, is_last);
            }
            Request::Rset => {
                self.tx = Transaction::default();
                self.ok(Reply::RESET)
            }
            Request::Noop { .. } => self.ok(Reply::OK),
            Request::Quit => {
                self.state = State::Closed;
                Event::Close(Reply::BYE)
            }
            Request::Vrfy { .. } => self.ok(Reply::VRFY),
            Request::Help { .. } => self.ok(Reply::HELP),
            Request::StartTls => self.starttls(),
            Request::Lhlo { .. }
            | Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.error(Reply::NOT_IMPLEMENTED),
        })
    }

    fn hello(&mut self, host: String, esmtp: bool) -> Event {
        // A domain or address literal (UTF-8 allowed for SMTPUTF8); no junk in the logs.
        if host
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\u{FFFD}')
        {
            return self.error(Reply::new(501, "5.5.4", "Invalid domain name in EHLO/HELO"));
        }
        // RFC 5321 §4.1.4: EHLO/HELO resets any transaction in progress.
        self.tx = Transaction::default();
        self.helo = Some(host);
        self.esmtp = esmtp;
        if !esmtp {
            return self.ok(Reply::owned(250, "", self.config.hostname.clone()));
        }
        let mut text = format!(
            "{}\nPIPELINING\n8BITMIME\nSMTPUTF8\nSIZE {}\nENHANCEDSTATUSCODES\nCHUNKING",
            self.config.hostname, self.config.max_message_size
        );
        if self.config.tls_available && !self.tls {
            text.push_str("\nSTARTTLS");
        }
        text.push_str("\nHELP");
        self.ok(Reply::owned(250, "", text))
    }

    fn mail(&mut self, address: String, declared_size: usize, smtputf8: bool) -> Event {
        if self.helo.is_none() {
            return self.error(Reply::BAD_SEQUENCE_HELO);
        }
        if self.tx.mail_from.is_some() {
            return self.error(Reply::BAD_SEQUENCE_NESTED_MAIL);
        }
        if declared_size > self.config.max_message_size {
            return self.error(self.size_exceeded());
        }
        if !address.is_ascii() && !smtputf8 {
            return self.error(Reply::SMTPUTF8_REQUIRED);
        }
        self.tx.mail_from = Some(address);
        self.tx.declared_size = (declared_size > 0).then_some(declared_size);
        self.tx.smtputf8 = smtputf8;
        self.ok(Reply::SENDER_OK)
    }

    fn rcpt(&mut self, address: String) -> Event {
        if self.tx.mail_from.is_none() {
            return self.error(Reply::BAD_SEQUENCE_MAIL);
        }
        if self.tx.chunks.is_some() {
            return self.error(Reply::BAD_SEQUENCE_BDAT);
        }
        if !address.is_ascii() && !self.tx.smtputf8 {
            return self.error(Reply::SMTPUTF8_REQUIRED);
        }
        if !address.contains('@') {
            return self.error(Reply::new(
                501,
                "5.1.3",
                "Recipient must be a full address, user@domain",
            ));
        }
        if self.tx.recipients.len() >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 makes the client send the rest in another transaction.
            return self.error(Reply::TOO_MANY_RECIPIENTS);
        }
        self.state = State::Waiting;
        Event::CheckRecipient(address)
    }

    /// The shell's answer to [`Event::CheckRecipient`]: `Ok` accepts the recipient, with the
    /// address's own size limit if it has one.
    pub fn recipient_checked(
        &mut self,
        address: String,
        verdict: Result<Option<SizeLimit>, Reply>,
    ) -> Event {
        debug_assert!(matches!(self.state, State::Waiting));
        self.state = State::Command;
        match verdict {
            Ok(limit) => {
                if let Some(limit) = limit {
                    if self.tx.declared_size.is_some_and(|size| size > limit.max) {
                        return self.error(Reply::owned(552, "5.3.4", limit.message));
                    }
                    if self
                        .tx
                        .size_limit
                        .as_ref()
                        .is_none_or(|l| limit.max < l.max)
                    {
                        self.tx.size_limit = Some(limit);
                    }
                }
                let duplicate = self
                    .tx
                    .recipients
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&address));
                if !duplicate {
                    self.tx.recipients.push(address);
                }
                self.ok(Reply::RECIPIENT_OK)
            }
            Err(reply) => self.error(reply),
        }
    }

    fn data(&mut self) -> Event {
        if let Some(reply) = self.content_sequence_error() {
            return self.error(reply);
        }
        if self.tx.chunks.is_some() {
            return self.error(Reply::BAD_SEQUENCE_BDAT);
        }
        self.state = State::Data(DataReceiver::new(
            self.size_limit().0,
            self.config.max_line_length,
        ));
        self.ok(Reply::START_DATA)
    }

    /// Starts reading a BDAT chunk. Returns `None` when the reply waits for the chunk.
    fn bdat(&mut self, chunk_size: usize, last: bool) -> Option<Event> {
        // RFC 3030 §2: the chunk is read (and discarded) even when the command is refused.
        let content = match self.content_sequence_error() {
            Some(reply) => Err(reply),
            None => Ok(self.tx.chunks.take().unwrap_or_default()),
        };
        if chunk_size == 0 {
            return Some(self.chunk_finished(content, last));
        }
        self.state = State::Bdat {
            chunk_left: chunk_size,
            last,
            content,
        };
        None
    }

    fn content_sequence_error(&self) -> Option<Reply> {
        if self.tx.mail_from.is_none() {
            Some(Reply::BAD_SEQUENCE_MAIL)
        } else if self.tx.recipients.is_empty() {
            Some(Reply::BAD_SEQUENCE_RCPT)
        } else {
            None
        }
    }

    fn chunk_finished(&mut self, content: Result<ChunkReceiver, Reply>, last: bool) -> Event {
        self.state = State::Command;
        let content = match content {
            Ok(content) => content,
            Err(reply) => return self.error(reply),
        };
        if !last {
            let received = content.received();
            self.tx.chunks = Some(content);
            return self.ok(Reply::owned(
                250,
                "2.0.0",
                format!("{received} octets received"),
            ));
        }
        let result = content.finish(self.size_limit().0);
        self.data_finished(result)
    }

    fn data_finished(&mut self, result: Result<Vec<u8>, DataError>) -> Event {
        match result {
            Ok(body) => {
                let tx = std::mem::take(&mut self.tx);
                self.state = State::Waiting;
                Event::Message {
                    envelope: Envelope {
                        helo: self.helo.clone().unwrap_or_default(),
                        mail_from: tx.mail_from.unwrap_or_default(),
                        recipients: tx.recipients,
                    },
                    body,
                }
            }
            Err(error) => {
                let too_large = Reply::owned(552, "5.3.4", self.size_limit().1.to_string());
                self.tx = Transaction::default();
                self.state = State::Command;
                let reply = match error {
                    DataError::TooLarge => too_large,
                    DataError::LineTooLong => Reply::owned(
                        500,
                        "5.5.2",
                        format!(
                            "Line too long (limit {} octets); message refused",
                            self.config.max_line_length
                        ),
                    ),
                };
                self.error(reply)
            }
        }
    }

    /// The shell's answer to [`Event::Message`]: the reply decided by the handler.
    pub fn message_handled(&mut self, reply: Reply) -> Event {
        debug_assert!(matches!(self.state, State::Waiting));
        self.state = State::Command;
        if reply.is_positive() {
            self.ok(reply)
        } else {
            self.error(reply)
        }
    }

    fn starttls(&mut self) -> Event {
        if self.tls {
            return self.error(Reply::TLS_ALREADY);
        }
        if !self.config.tls_available {
            return self.error(Reply::TLS_UNAVAILABLE);
        }
        if self.helo.is_none() {
            return self.error(Reply::BAD_SEQUENCE_HELO);
        }
        self.state = State::Waiting;
        Event::StartTls
    }

    /// After a completed handshake: RFC 3207 §4.2, the client starts over with EHLO.
    pub fn tls_started(&mut self) {
        self.state = State::Command;
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.tx = Transaction::default();
        self.line.clear();
        self.skipping_long_line = false;
    }

    fn size_exceeded(&self) -> Reply {
        Reply::owned(552, "5.3.4", self.config.size_exceeded_message.clone())
    }

    fn ok(&mut self, reply: Reply) -> Event {
        self.consecutive_errors = 0;
        Event::Reply(reply)
    }

    fn error(&mut self, reply: Reply) -> Event {
        self.consecutive_errors += 1;
        if self.consecutive_errors >= self.config.max_errors {
            self.state = State::Closed;
            return Event::Close(Reply::TOO_MANY_ERRORS);
        }
        Event::Reply(reply)
    }
}

fn parse_error_reply(error: ParseError) -> Reply {
    match error {
        ParseError::UnknownCommand => Reply::UNKNOWN_COMMAND,
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => {
            Reply::owned(501, "5.5.4", format!("Syntax: {syntax}"))
        }
        ParseError::InvalidParameter { param } => {
            Reply::owned(501, "5.5.4", format!("Invalid value for parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => Reply::owned(
            504,
            "5.5.4",
            format!("Unsupported parameter {}", printable(&param)),
        ),
        ParseError::ResponseTooLong => Reply::LINE_TOO_LONG,
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
            Reply::new(501, "5.5.2", "Syntax error")
        }
    }
}

/// The chunk size of a `BDAT` line as sent, if it is a number that fits.
fn chunk_size_token(line: &[u8]) -> Option<usize> {
    let token = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .nth(1)?;
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Client text echoed in a reply: printable ASCII only, bounded.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.test".into(),
            max_message_size: 1000,
            max_recipients: 2,
            max_line_length: 100,
            max_errors: 5,
            size_exceeded_message: "too big".into(),
            tls_available: true,
        }
    }

    /// Feeds `input` and answers handler events like an accept-all handler; returns the
    /// wire replies in order and the messages delivered.
    fn drive(session: &mut Session, input: &[u8]) -> (Vec<String>, Vec<(Envelope, Vec<u8>)>) {
        let mut replies = Vec::new();
        let mut messages = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let (used, event) = session.ingest(&input[pos..]);
            pos += used;
            let Some(mut event) = event else { break };
            loop {
                event = match event {
                    Event::CheckRecipient(address) => {
                        let verdict = if address.starts_with("unknown") {
                            Err(Reply::NO_SUCH_USER)
                        } else if address.starts_with("small") {
                            Ok(Some(SizeLimit {
                                max: 100,
                                message: "small box".into(),
                            }))
                        } else {
                            Ok(None)
                        };
                        session.recipient_checked(address, verdict)
                    }
                    Event::Message { envelope, body } => {
                        messages.push((envelope, body));
                        session.message_handled(Reply::OK)
                    }
                    Event::Reply(reply) | Event::Close(reply) => {
                        replies.push(
                            format!("{} {}", reply.code, reply.enhanced)
                                .trim()
                                .to_string(),
                        );
                        break;
                    }
                    Event::StartTls => {
                        replies.push("220 starttls".into());
                        session.tls_started();
                        break;
                    }
                };
            }
        }
        (replies, messages)
    }

    fn replies_to(input: &str) -> Vec<String> {
        drive(&mut Session::new(config()), input.as_bytes()).0
    }

    #[test]
    fn a_whole_transaction() {
        let mut session = Session::new(config());
        let (replies, messages) = drive(
            &mut session,
            b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            replies,
            [
                "250",
                "250 2.1.0",
                "250 2.1.5",
                "354",
                "250 2.0.0",
                "221 2.0.0"
            ]
        );
        assert_eq!(
            messages[0].0,
            Envelope {
                helo: "c.test".into(),
                mail_from: "a@x.test".into(),
                recipients: vec!["b@y.test".into()]
            }
        );
        assert_eq!(messages[0].1, b"Subject: s\r\n\r\nbody\r\n");
        assert!(session.is_closed());
    }

    #[test]
    fn sequence_errors() {
        assert_eq!(replies_to("MAIL FROM:<a@x.test>\r\n"), ["503 5.5.1"]);
        assert_eq!(
            replies_to("HELO c\r\nRCPT TO:<b@y.test>\r\n"),
            ["250", "503 5.5.1"]
        );
        assert_eq!(
            replies_to("HELO c\r\nMAIL FROM:<>\r\nDATA\r\n"),
            ["250", "250 2.1.0", "503 5.5.1"]
        );
        assert_eq!(
            replies_to("HELO c\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n"),
            ["250", "250 2.1.0", "503 5.5.1"]
        );
    }

    #[test]
    fn recipient_rules() {
        assert_eq!(
            replies_to(
                "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<unknown@y.test>\r\nRCPT TO:<nodomain>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
            ),
            [
                "250",
                "250 2.1.0",
                "550 5.1.1",
                "501 5.1.3",
                "250 2.1.5",
                "250 2.1.5",
                "452 4.5.3"
            ]
        );
    }

    #[test]
    fn duplicate_recipients_are_listed_once() {
        let mut session = Session::new(config());
        let (_, messages) = drive(
            &mut session,
            b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<A@y.test>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert_eq!(messages[0].0.recipients, ["a@y.test"]);
    }

    #[test]
    fn size_declared_and_actual() {
        assert_eq!(
            replies_to("EHLO c\r\nMAIL FROM:<a@x.test> SIZE=1001\r\n"),
            ["250", "552 5.3.4"]
        );
        let body = "x".repeat(60) + "\r\n";
        let input = format!(
            "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n{}.\r\nRSET\r\n",
            body.repeat(20)
        );
        assert_eq!(
            replies_to(&input),
            [
                "250",
                "250 2.1.0",
                "250 2.1.5",
                "354",
                "552 5.3.4",
                "250 2.0.0"
            ]
        );
    }

    #[test]
    fn per_address_size_limit() {
        assert_eq!(
            replies_to(
                "EHLO c\r\nMAIL FROM:<a@x.test> SIZE=500\r\nRCPT TO:<small@y.test>\r\nRCPT TO:<b@y.test>\r\n"
            ),
            ["250", "250 2.1.0", "552 5.3.4", "250 2.1.5"]
        );
        let body = "x".repeat(60) + "\r\n";
        let input = format!(
            "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<small@y.test>\r\nDATA\r\n{}.\r\n",
            body.repeat(2)
        );
        let mut session = Session::new(config());
        let (replies, _) = drive(&mut session, input.as_bytes());
        assert_eq!(
            replies,
            [
                "250",
                "250 2.1.0",
                "250 2.1.5",
                "250 2.1.5",
                "354",
                "552 5.3.4"
            ]
        );
    }

    #[test]
    fn long_command_line_is_refused_and_skipped() {
        let input = format!("EHLO {}\r\nNOOP\r\n", "a".repeat(200));
        assert_eq!(replies_to(&input), ["500 5.5.2", "250 2.0.0"]);
    }

    #[test]
    fn errors_in_a_row_close_the_session() {
        let mut session = Session::new(config());
        let (replies, _) = drive(&mut session, b"X\r\nX\r\nX\r\nX\r\nX\r\nNOOP\r\n");
        assert_eq!(
            replies,
            [
                "500 5.5.1",
                "500 5.5.1",
                "500 5.5.1",
                "500 5.5.1",
                "421 4.7.0"
            ]
        );
        assert!(session.is_closed());
        // A success in between resets the count.
        assert_eq!(
            replies_to("X\r\nX\r\nX\r\nX\r\nNOOP\r\nX\r\n")
                .last()
                .unwrap(),
            "500 5.5.1"
        );
    }

    #[test]
    fn starttls_resets_the_session() {
        let mut session = Session::new(config());
        let (replies, _) = drive(
            &mut session,
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nSTARTTLS\r\n",
        );
        assert_eq!(replies, ["250", "250 2.1.0", "220 starttls"]);
        assert!(session.is_tls());
        let (replies, _) = drive(
            &mut session,
            b"MAIL FROM:<a@x.test>\r\nEHLO c\r\nSTARTTLS\r\n",
        );
        assert_eq!(replies, ["503 5.5.1", "250", "503 5.5.1"]);
    }

    #[test]
    fn starttls_without_certificate() {
        let mut session = Session::new(SessionConfig {
            tls_available: false,
            ..config()
        });
        let (replies, _) = drive(&mut session, b"EHLO c\r\nSTARTTLS\r\n");
        assert_eq!(replies, ["250", "454 4.7.0"]);
    }

    #[test]
    fn bdat_size_must_be_exact() {
        assert_eq!(
            replies_to(
                "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nBDAT 99999999999999999999999\r\n"
            ),
            ["250", "250 2.1.0", "250 2.1.5", "501 5.5.4"]
        );
    }

    #[test]
    fn bdat_oversize_is_discarded_and_refused() {
        let chunk = "y".repeat(1500);
        let input = format!(
            "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nBDAT 1500 LAST\r\n{chunk}NOOP\r\n"
        );
        assert_eq!(
            replies_to(&input),
            ["250", "250 2.1.0", "250 2.1.5", "552 5.3.4", "250 2.0.0"]
        );
    }

    /// A deterministic fuzz: random mixes of commands, fragments and junk, split at random
    /// points. The session must never panic, and every reply must be a valid SMTP reply.
    #[test]
    fn random_input_never_panics() {
        const PIECES: &[&[u8]] = &[
            b"EHLO c\r\n",
            b"HELO c\r\n",
            b"MAIL FROM:<a@x.test>\r\n",
            b"MAIL FROM:<> SIZE=10\r\n",
            b"RCPT TO:<b@y.test>\r\n",
            b"RCPT TO:<unknown@y.test>\r\n",
            b"DATA\r\n",
            b"BDAT 3\r\n",
            b"BDAT 0 LAST\r\n",
            b"BDAT 5 LAST\r\n",
            b".\r\n",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r.\r",
            b"..x",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"STARTTLS\r\n",
            b"QUIT\r\n",
            b"\x00\xff",
            b"\r",
            b"\n",
            b"MAIL FROM:<\xff>\r\n",
            b"VRFY x\r\n",
            b"AUTH LOGIN\r\n",
            b"x",
            b"BDAT -1\r\n",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 40) {
                if next() % 10 == 0 {
                    input.extend((0..next() % 300).map(|_| next() as u8));
                } else {
                    input.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
                }
            }
            let mut session = Session::new(config());
            let mut pos = 0;
            while pos < input.len() && !session.is_closed() {
                let end = (pos + 1 + (next() % 64) as usize).min(input.len());
                let (replies, _) = drive(&mut session, &input[pos..end]);
                for reply in replies {
                    let code: u16 = reply[..3].parse().unwrap();
                    assert!((200..600).contains(&code), "{reply}");
                }
                // `drive` consumes everything it was given unless the session is waiting
                // on a closed state, so move on by the slice.
                pos = end;
            }
        }
    }
}
