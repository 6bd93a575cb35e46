//! The SMTP session state machine (RFC 5321, with PIPELINING, 8BITMIME, SMTPUTF8, SIZE,
//! ENHANCEDSTATUSCODES, CHUNKING, STARTTLS and, on submission listeners, AUTH PLAIN and
//! LOGIN). No I/O, and no decision about addresses, messages or credentials.
//!
//! The shell feeds received octets to [`Session::ingest`] and acts on each [`Event`]: it
//! writes replies, upgrades to TLS, and asks its handler about credentials, senders,
//! recipients and messages, answering through [`Session::authenticated`],
//! [`Session::sender_checked`], [`Session::recipient_checked`] and
//! [`Session::message_handled`]. Command lines are split here (not by smtp-proto) so that
//! the line limit holds before anything is buffered; smtp-proto parses each complete line.
//!
//! One session type serves every listener; its [`SessionPolicy`] says which one. A
//! submission session carries the handler's identity for the credential it authenticated
//! with (`I`, opaque here) until STARTTLS or the end of the connection.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_proto::{Error as ParseError, Request};

use super::Reply;
use super::budget::{MemoryBudget, Reservation};
use super::data::{ChunkReceiver, DataError, DataReceiver};

/// What a listener offers and requires. The MX listener and the submission listeners run
/// the same session code; this is the only difference between them.
///
/// | listener | AUTH advertised in EHLO | AUTH accepted | MAIL FROM needs |
/// |---|---|---|---|
/// | `Inbound` (MX, port 25) | never | never (502) | nothing |
/// | `Submission` (587, 2525) | after STARTTLS | after STARTTLS (530 before) | a successful AUTH (530) |
/// | `Submission { plaintext_auth }` (dev mode) | always | always | a successful AUTH (530) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionPolicy {
    /// Mail for our own addresses from anyone; recipients are checked by the handler.
    #[default]
    Inbound,
    /// Mail from authenticated clients to anyone, so never without AUTH (no open relay).
    Submission {
        /// Accept and advertise AUTH before STARTTLS. Only for dev mode, where the
        /// credentials are not secrets.
        plaintext_auth: bool,
    },
}

impl SessionPolicy {
    /// A production submission listener: AUTH only over TLS.
    pub const SUBMISSION: SessionPolicy = SessionPolicy::Submission {
        plaintext_auth: false,
    };
}

/// The SASL mechanisms a submission listener offers (RFC 4616 PLAIN, and LOGIN, which
/// many clients still default to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// The decoded credentials of one AUTH exchange, for the handler to check. `Debug` masks
/// the password; nothing logs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mechanism: Mechanism,
    /// The authentication identity (the SMTP username).
    pub authcid: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("authcid", &self.authcid)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Limits and identity for one session, from the validated config.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Which listener this is: what is advertised, and whether AUTH is required.
    pub policy: SessionPolicy,
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
    /// Deliver this message, then call [`Session::message_handled`]. `body` is the content
    /// after the first `drained` octets, which the shell took earlier with
    /// [`Session::drain_content`] (0 when it took none).
    Message {
        envelope: Envelope,
        body: Vec<u8>,
        drained: usize,
    },
    /// Submission only: check these credentials, then call [`Session::authenticated`].
    Authenticate(Credentials),
    /// Submission only: decide whether the authenticated identity ([`Session::identity`])
    /// may use this sender, then call [`Session::sender_checked`].
    CheckSender(String),
    /// The session itself refused this recipient (`452 4.5.3` past `max_recipients`, once
    /// per transaction): tell the handler, then write the reply as for [`Event::Reply`].
    RecipientRefused { address: String, reply: Reply },
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
    /// In an AUTH exchange, waiting for the client's next response line.
    Sasl(SaslStep),
    /// Waiting for the shell's answer to an event.
    Waiting,
    Closed,
}

/// What the next line of an AUTH exchange is (RFC 4954 §4).
#[derive(Debug)]
enum SaslStep {
    /// PLAIN after an empty `334 `: `authzid NUL authcid NUL password`.
    Plain,
    /// LOGIN after `334 VXNlcm5hbWU6` ("Username:").
    LoginUser,
    /// LOGIN after `334 UGFzc3dvcmQ6` ("Password:").
    LoginPassword { authcid: String },
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
    /// A recipient past `max_recipients` was reported ([`Event::RecipientRefused`]); the
    /// rest get the 452 without a report, so a flood of RCPTs leaves one record.
    over_limit_reported: bool,
}

/// One SMTP session. `I` is what the handler returned for the credentials of a successful
/// AUTH (submission only; `()` where nobody authenticates, as in the tests).
#[derive(Debug)]
pub struct Session<I = ()> {
    config: SessionConfig,
    state: State,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    tx: Transaction,
    /// Set by a successful AUTH; kept across RSET and EHLO, dropped by STARTTLS.
    identity: Option<I>,
    consecutive_errors: u32,
    /// Refused AUTH attempts in this session: a success in between does not reset them, so
    /// one connection cannot try passwords without end.
    auth_failures: u32,
    /// A partial command line.
    line: Vec<u8>,
    /// Set while discarding the rest of an over-long command line.
    skipping_long_line: bool,
    /// Where message content reserves its memory; `None` is unlimited (tests, fuzzing).
    budget: Option<Arc<MemoryBudget>>,
    /// The budget held by the message the handler has now; released when it answers.
    held: Reservation,
}

impl<I> Session<I> {
    pub fn new(config: SessionConfig) -> Session<I> {
        Session {
            line: Vec::with_capacity(128),
            config,
            state: State::Command,
            helo: None,
            esmtp: false,
            tls: false,
            tx: Transaction::default(),
            identity: None,
            consecutive_errors: 0,
            auth_failures: 0,
            skipping_long_line: false,
            budget: None,
            held: Reservation::default(),
        }
    }

    /// Message content buffered by this session reserves its bytes from `budget`.
    pub fn with_memory_budget(mut self, budget: Arc<MemoryBudget>) -> Session<I> {
        self.budget = Some(budget);
        self
    }

    fn reservation(&self) -> Reservation {
        Reservation::new(self.budget.clone())
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

    /// The handler's identity for the credentials this session authenticated with.
    pub fn identity(&self) -> Option<&I> {
        self.identity.as_ref()
    }

    /// True while message content (DATA or a BDAT chunk) is being read: the shell applies
    /// the data timeout instead of the command timeout.
    pub fn is_reading_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Octets of the current transaction's content held in memory now (DATA, or BDAT
    /// chunks so far): the shell moves them to a spool file past its threshold.
    pub fn buffered_content(&self) -> usize {
        match &self.state {
            State::Data(receiver) => receiver.buffered(),
            State::Bdat {
                content: Ok(receiver),
                ..
            } => receiver.buffered(),
            _ => self.tx.chunks.as_ref().map_or(0, ChunkReceiver::buffered),
        }
    }

    /// Moves the content held now to the end of `out` (see [`Event::Message`]'s `drained`).
    /// Returns the octets of this transaction's content moved so far, `out`'s included: 0
    /// when there was none to move.
    pub fn drain_content(&mut self, out: &mut Vec<u8>) -> usize {
        match &mut self.state {
            State::Data(receiver) => {
                receiver.drain_into(out);
                receiver.drained()
            }
            State::Bdat {
                content: Ok(receiver),
                ..
            } => {
                receiver.drain_into(out);
                receiver.drained()
            }
            _ => match &mut self.tx.chunks {
                Some(receiver) => {
                    receiver.drain_into(out);
                    receiver.drained()
                }
                None => 0,
            },
        }
    }

    /// Consumes octets from `input` until an event occurs. Returns the number of octets
    /// consumed and the event, or `None` when all input was consumed and more is needed.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        match &mut self.state {
            State::Closed | State::Waiting => (0, None),
            State::Data(receiver) => {
                let (used, result) = receiver.ingest(input);
                let drained = receiver.drained();
                if result.is_some() {
                    self.held = receiver.take_reservation();
                }
                let event = result.map(|result| self.data_finished(result, drained));
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
            State::Command | State::Sasl(_) => self.ingest_command(input),
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
            return (used, Some(self.line_too_long()));
        }
        if self.line.len() + used > self.config.max_line_length {
            self.line.clear();
            return (used, Some(self.line_too_long()));
        }
        let event = if self.line.is_empty() {
            self.line_received(&input[..used])
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(&input[..used]);
            let event = self.line_received(&line);
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

    /// An over-long line is refused; one in an AUTH exchange also ends the exchange.
    fn line_too_long(&mut self) -> Event {
        if matches!(self.state, State::Sasl(_)) {
            self.state = State::Command;
        }
        self.error(Reply::LINE_TOO_LONG)
    }

    /// Handles one complete line: a command, or the client's response in an AUTH exchange.
    fn line_received(&mut self, line: &[u8]) -> Option<Event> {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Sasl(step) => Some(self.sasl_response(step, line)),
            state => {
                self.state = state;
                self.command_line(line)
            }
        }
    }

    /// Handles one complete command line; `None` only for a BDAT whose chunk follows.
    fn command_line(&mut self, line: &[u8]) -> Option<Event> {
        if self.config.policy == SessionPolicy::Inbound && is_rcpt_to_postmaster(line) {
            // RFC 5321 §4.5.1: `<Postmaster>` without a domain must be accepted; it means
            // this host's postmaster, routed like any other address.
            let address = format!("postmaster@{}", self.config.hostname);
            return Some(self.rcpt(address));
        }
        // smtp-proto would turn invalid UTF-8 into U+FFFD, and distinct addresses into one
        // (RFC 6531 §3.3: an address must be valid UTF-8).
        if is_address_command(line) && std::str::from_utf8(line).is_err() {
            return Some(self.error(Reply::ADDRESS_NOT_UTF8));
        }
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
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::Lhlo { .. }
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
        // Which listener advertises what (see `SessionPolicy`): STARTTLS wherever a
        // certificate is configured and TLS is not up yet; AUTH never on the MX listener
        // (port 25 takes mail for our addresses from anyone and relays for nobody), and on
        // a submission listener only once the session is encrypted (RFC 4954 §4: no
        // passwords in the clear), except in dev mode.
        if self.config.tls_available && !self.tls {
            text.push_str("\nSTARTTLS");
        }
        if self.auth_offered() {
            text.push_str("\nAUTH PLAIN LOGIN");
        }
        text.push_str("\nHELP");
        self.ok(Reply::owned(250, "", text))
    }

    fn mail(&mut self, address: String, declared_size: usize, smtputf8: bool) -> Event {
        if self.helo.is_none() {
            return self.error(Reply::BAD_SEQUENCE_HELO);
        }
        let submission = matches!(self.config.policy, SessionPolicy::Submission { .. });
        if submission && self.identity.is_none() {
            return self.error(Reply::AUTH_REQUIRED);
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
        self.tx.declared_size = (declared_size > 0).then_some(declared_size);
        self.tx.smtputf8 = smtputf8;
        if submission {
            // The handler enforces the credential's sender restrictions.
            self.state = State::Waiting;
            return Event::CheckSender(address);
        }
        self.tx.mail_from = Some(address);
        self.ok(Reply::SENDER_OK)
    }

    /// The shell's answer to [`Event::CheckSender`]: `Ok` accepts the sender, `Err` is the
    /// reply refusing it (550 5.7.1 for a sender the credential may not use).
    pub fn sender_checked(&mut self, address: String, verdict: Result<(), Reply>) -> Event {
        debug_assert!(matches!(self.state, State::Waiting));
        self.state = State::Command;
        match verdict {
            Ok(()) => {
                self.tx.mail_from = Some(address);
                self.ok(Reply::SENDER_OK)
            }
            Err(reply) => {
                self.tx = Transaction::default();
                self.error(reply)
            }
        }
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
        // A recipient given again was checked already (and its size limit applied): accept
        // it without asking the handler — no second route lookup or authorization callback.
        if self
            .tx
            .recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&address))
        {
            return self.ok(Reply::RECIPIENT_OK);
        }
        if self.tx.recipients.len() >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 makes the client send the rest in another transaction.
            let event = self.error(Reply::TOO_MANY_RECIPIENTS);
            return match (event, self.tx.over_limit_reported) {
                (Event::Reply(reply), false) => {
                    self.tx.over_limit_reported = true;
                    Event::RecipientRefused { address, reply }
                }
                (event, _) => event,
            };
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
                self.tx.recipients.push(address);
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
        let max_size = self.size_limit().0;
        if self.budget.as_ref().is_some_and(|b| !b.can_start(max_size)) {
            return self.error(Reply::NO_MEMORY);
        }
        self.state = State::Data(DataReceiver::with_reservation(
            self.size_limit().0,
            self.config.max_line_length,
            self.reservation(),
        ));
        self.ok(Reply::START_DATA)
    }

    /// Starts reading a BDAT chunk. Returns `None` when the reply waits for the chunk.
    fn bdat(&mut self, chunk_size: usize, last: bool) -> Option<Event> {
        // RFC 3030 §2: the chunk is read (and discarded) even when the command is refused.
        let content = match self.content_sequence_error() {
            Some(reply) => Err(reply),
            None => Ok(match self.tx.chunks.take() {
                Some(chunks) => chunks,
                None => ChunkReceiver::new(self.reservation()),
            }),
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
        let mut content = match content {
            Ok(content) => content,
            Err(reply) => return self.error(reply),
        };
        if content.is_out_of_memory() {
            // No point in reading more chunks of a message that cannot be kept.
            return self.data_finished(Err(DataError::NoMemory), 0);
        }
        if !last {
            let received = content.received();
            self.tx.chunks = Some(content);
            return self.ok(Reply::owned(
                250,
                "2.0.0",
                format!("{received} octets received"),
            ));
        }
        self.held = content.take_reservation();
        let drained = content.drained();
        let result = content.finish(self.size_limit().0);
        self.data_finished(result, drained)
    }

    fn data_finished(&mut self, result: Result<Vec<u8>, DataError>, drained: usize) -> Event {
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
                    drained,
                }
            }
            Err(error) => {
                let too_large = Reply::owned(552, "5.3.4", self.size_limit().1.to_string());
                self.held.release();
                self.tx = Transaction::default();
                self.state = State::Command;
                let reply = match error {
                    DataError::TooLarge => too_large,
                    DataError::NoMemory => Reply::NO_MEMORY,
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

    /// The shell wrote the message's content held in memory to its spool file: that memory
    /// is given back now, before the shell waits for room to read the message back (which
    /// counts the whole message, and would otherwise wait on this share too).
    pub fn content_spooled(&mut self) {
        debug_assert!(matches!(self.state, State::Waiting));
        self.held.release();
    }

    /// The shell's answer to [`Event::Message`]: the reply decided by the handler.
    pub fn message_handled(&mut self, reply: Reply) -> Event {
        debug_assert!(matches!(self.state, State::Waiting));
        self.state = State::Command;
        self.held.release();
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

    /// After a completed handshake: RFC 3207 §4.2, the client starts over with EHLO, and
    /// any AUTH from before the handshake is forgotten.
    pub fn tls_started(&mut self) {
        self.state = State::Command;
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.tx = Transaction::default();
        self.identity = None;
        self.line.clear();
        self.skipping_long_line = false;
    }

    /// Whether AUTH is advertised and accepted now (see [`SessionPolicy`]).
    fn auth_offered(&self) -> bool {
        match self.config.policy {
            SessionPolicy::Inbound => false,
            SessionPolicy::Submission { plaintext_auth } => self.tls || plaintext_auth,
        }
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    fn auth(&mut self, mechanism: u64, initial_response: &str) -> Event {
        let SessionPolicy::Submission { .. } = self.config.policy else {
            return self.error(Reply::NOT_IMPLEMENTED);
        };
        if self.helo.is_none() {
            return self.error(Reply::BAD_SEQUENCE_HELO);
        }
        if !self.auth_offered() {
            return self.error(Reply::AUTH_NEEDS_TLS);
        }
        if self.identity.is_some() {
            return self.error(Reply::AUTH_ALREADY);
        }
        if self.tx.mail_from.is_some() {
            return self.error(Reply::AUTH_IN_TRANSACTION);
        }
        let mechanism = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            _ => return self.error(Reply::AUTH_UNKNOWN_MECHANISM),
        };
        // No initial response, an empty one (`=`), or base64.
        let initial = match initial_response {
            "" => None,
            "=" => Some(Vec::new()),
            text => match BASE64.decode(text) {
                Ok(decoded) => Some(decoded),
                Err(_) => return self.error(Reply::AUTH_BAD_BASE64),
            },
        };
        match (mechanism, initial) {
            (Mechanism::Plain, None) => self.challenge(SaslStep::Plain, ""),
            (Mechanism::Plain, Some(response)) => self.plain(&response),
            (Mechanism::Login, None) => self.challenge(SaslStep::LoginUser, "VXNlcm5hbWU6"),
            // Some clients send the username with the command.
            (Mechanism::Login, Some(user)) => self.login_user(&user),
        }
    }

    /// A `334` continuation; the client's next line is the response.
    fn challenge(&mut self, step: SaslStep, text: &'static str) -> Event {
        self.state = State::Sasl(step);
        Event::Reply(Reply::new(334, "", text))
    }

    /// One response line of an AUTH exchange: base64, or `*` to cancel.
    fn sasl_response(&mut self, step: SaslStep, line: &[u8]) -> Event {
        let response = line.trim_ascii();
        if response == b"*" {
            return self.error(Reply::AUTH_CANCELLED);
        }
        let Ok(decoded) = BASE64.decode(response) else {
            return self.error(Reply::AUTH_BAD_BASE64);
        };
        match step {
            SaslStep::Plain => self.plain(&decoded),
            SaslStep::LoginUser => self.login_user(&decoded),
            SaslStep::LoginPassword { authcid } => match String::from_utf8(decoded) {
                Ok(password) => self.check_credentials(Credentials {
                    mechanism: Mechanism::Login,
                    authcid,
                    password,
                }),
                Err(_) => self.error(Reply::AUTH_MALFORMED),
            },
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL password`, in UTF-8.
    fn plain(&mut self, response: &[u8]) -> Event {
        let mut fields = response.split(|&b| b == 0).map(std::str::from_utf8);
        let (Some(Ok(authzid)), Some(Ok(authcid)), Some(Ok(password)), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return self.error(Reply::AUTH_MALFORMED);
        };
        if authcid.is_empty() {
            return self.error(Reply::AUTH_MALFORMED);
        }
        // Nobody may act for another credential: an authorization identity, if given, is
        // the authentication identity itself.
        if !authzid.is_empty() && authzid != authcid {
            return self.auth_failed(Reply::AUTH_FAILED);
        }
        self.check_credentials(Credentials {
            mechanism: Mechanism::Plain,
            authcid: authcid.to_string(),
            password: password.to_string(),
        })
    }

    fn login_user(&mut self, user: &[u8]) -> Event {
        match std::str::from_utf8(user) {
            Ok(authcid) if !authcid.is_empty() => self.challenge(
                SaslStep::LoginPassword {
                    authcid: authcid.to_string(),
                },
                "UGFzc3dvcmQ6",
            ),
            _ => self.error(Reply::AUTH_MALFORMED),
        }
    }

    fn check_credentials(&mut self, credentials: Credentials) -> Event {
        self.state = State::Waiting;
        Event::Authenticate(credentials)
    }

    /// The shell's answer to [`Event::Authenticate`]: the handler's identity for these
    /// credentials, or the reply refusing them (535 5.7.8, or 454 4.7.0 when they cannot
    /// be checked now).
    pub fn authenticated(&mut self, result: Result<I, Reply>) -> Event {
        debug_assert!(matches!(self.state, State::Waiting));
        self.state = State::Command;
        match result {
            Ok(identity) => {
                self.identity = Some(identity);
                self.ok(Reply::AUTH_OK)
            }
            Err(reply) => self.auth_failed(reply),
        }
    }

    /// A refused AUTH: an error like any other, and one of at most `max_errors` per session.
    fn auth_failed(&mut self, reply: Reply) -> Event {
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_errors {
            self.state = State::Closed;
            return Event::Close(Reply::TOO_MANY_ERRORS);
        }
        self.error(reply)
    }

    fn size_exceeded(&self) -> Reply {
        Reply::owned(552, "5.3.4", self.config.size_exceeded_message.clone())
    }

    fn ok(&mut self, reply: Reply) -> Event {
        self.consecutive_errors = 0;
        Event::Reply(reply)
    }

    /// A refusal. It counts towards `max_errors`, except a 452: "not now, or not in this
    /// transaction" (too many recipients, a separate transaction, no memory) is no protocol
    /// error, and a sender that retries it must not be cut off with 421.
    fn error(&mut self, reply: Reply) -> Event {
        if reply.code == 452 {
            return Event::Reply(reply);
        }
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

/// `MAIL` and `RCPT` lines, whose argument is an address.
fn is_address_command(line: &[u8]) -> bool {
    line.get(..4).is_some_and(|verb| {
        verb.eq_ignore_ascii_case(b"MAIL") || verb.eq_ignore_ascii_case(b"RCPT")
    })
}

/// `RCPT TO:<postmaster>` (any case, a space allowed after the colon, no parameters).
fn is_rcpt_to_postmaster(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    if !line
        .get(..8)
        .is_some_and(|head| head.eq_ignore_ascii_case(b"RCPT TO:"))
    {
        return false;
    }
    let argument = line[8..].strip_prefix(b" ").unwrap_or(&line[8..]);
    argument.eq_ignore_ascii_case(b"<postmaster>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_recipient_is_not_checked_again() {
        let mut session: Session = Session::new(config());
        let mut checks = 0;
        let mut replies = Vec::new();
        for line in [
            "EHLO c\r\n",
            "MAIL FROM:<a@b.c>\r\n",
            "RCPT TO:<x@d.e>\r\n",
            "RCPT TO:<X@D.E>\r\n",
            "RCPT TO:<y@d.e>\r\n",
            "RCPT TO:<x@d.e>\r\n",
        ] {
            let (_, event) = session.ingest(line.as_bytes());
            let event = match event.unwrap() {
                Event::CheckRecipient(address) => {
                    checks += 1;
                    session.recipient_checked(address, Ok(None))
                }
                other => other,
            };
            if let Event::Reply(reply) = event {
                replies.push(reply.code);
            }
        }
        // max_recipients is 2: the repeats are still accepted, and checked once each.
        assert_eq!(replies, [250, 250, 250, 250, 250, 250]);
        assert_eq!(checks, 2);
        assert_eq!(session.tx.recipients, ["x@d.e", "y@d.e"]);
    }

    #[test]
    fn rcpt_to_postmaster_without_a_domain_is_this_hosts_postmaster() {
        for line in ["RCPT TO:<postmaster>\r\n", "rcpt to: <PostMaster>\r\n"] {
            assert!(is_rcpt_to_postmaster(line.as_bytes()), "{line}");
        }
        for line in [
            "RCPT TO:<postmaster@example.com>\r\n",
            "RCPT TO:<postmaster> NOTIFY=NEVER\r\n",
            "RCPT TO:<postmasterx>\r\n",
            "MAIL FROM:<postmaster>\r\n",
        ] {
            assert!(!is_rcpt_to_postmaster(line.as_bytes()), "{line}");
        }
        let mut session = Session::new(config());
        let (replies, messages) = drive(
            &mut session,
            b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nhi\r\n.\r\n",
        );
        assert_eq!(replies[2], "250 2.1.5");
        assert_eq!(messages[0].0.recipients, ["postmaster@mx.test"]);
    }

    fn config() -> SessionConfig {
        SessionConfig {
            policy: SessionPolicy::Inbound,
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
                    Event::Message { envelope, body, .. } => {
                        messages.push((envelope, body));
                        session.message_handled(Reply::OK)
                    }
                    // One good credential; `temp` cannot be checked now.
                    Event::Authenticate(credentials) => session.authenticated(
                        match (credentials.authcid.as_str(), credentials.password.as_str()) {
                            ("user", "secret") => Ok(()),
                            ("temp", _) => Err(Reply::AUTH_TEMPORARY_FAILURE),
                            _ => Err(Reply::AUTH_FAILED),
                        },
                    ),
                    // The credential may not send as `other@…`.
                    Event::CheckSender(address) => {
                        let verdict = match address.starts_with("other") {
                            true => Err(Reply::SENDER_NOT_ALLOWED),
                            false => Ok(()),
                        };
                        session.sender_checked(address, verdict)
                    }
                    // A continuation shows its challenge; every other reply its codes.
                    Event::Reply(reply) | Event::Close(reply) if reply.code == 334 => {
                        replies.push(format!("334 {}", reply.text));
                        break;
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
                    // Reported (once per transaction), then answered like any reply.
                    Event::RecipientRefused { address, reply } => {
                        replies.push(format!("reported {address}"));
                        Event::Reply(reply)
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
                "reported c@y.test",
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
    fn replies_452_do_not_count_as_errors() {
        // max_recipients 2 and max_errors 5: many more recipients get 452 each, never 421,
        // and the accepted ones are delivered.
        let mut input = String::from("EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
        for i in 0..20 {
            input.push_str(&format!("RCPT TO:<r{i}@y.test>\r\n"));
        }
        input.push_str("DATA\r\nhi\r\n.\r\n");
        let mut session = Session::new(config());
        let (replies, messages) = drive(&mut session, input.as_bytes());
        assert_eq!(replies[2..4], ["250 2.1.5", "250 2.1.5"]);
        // The first one over the limit is reported to the handler, the rest are not.
        assert_eq!(replies[4], "reported r2@y.test");
        assert!(
            replies[5..23].iter().all(|r| r == "452 4.5.3"),
            "{replies:?}"
        );
        assert_eq!(replies[23..], ["354", "250 2.0.0"]);
        assert_eq!(messages[0].0.recipients, ["r0@y.test", "r1@y.test"]);
        // A 452 does not reset the count of real errors either.
        let replies = replies_to(
            "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nX\r\nX\r\nRCPT TO:<c@y.test>\r\nX\r\nX\r\nX\r\n",
        );
        assert_eq!(replies.last().unwrap(), "421 4.7.0");
    }

    #[test]
    fn addresses_that_are_not_utf8_are_refused_not_converted() {
        let classes: [(&str, &[u8]); 4] = [
            ("lone continuation byte", b"\x80"),
            ("overlong encoding", b"\xc0\xaf"),
            ("UTF-16 surrogate", b"\xed\xa0\x80"),
            ("0xFF", b"\xff"),
        ];
        for (class, bytes) in classes {
            let address = [b"<".as_slice(), bytes, b"@probe.test>"].concat();
            for smtputf8 in [" SMTPUTF8", ""] {
                let mail = [
                    b"MAIL FROM:".as_slice(),
                    &address,
                    smtputf8.as_bytes(),
                    b"\r\n",
                ]
                .concat();
                let input = [b"EHLO c\r\n".as_slice(), &mail].concat();
                let (replies, _) = drive(&mut Session::new(config()), &input);
                assert_eq!(replies, ["250", "553 5.6.7"], "MAIL, {class}{smtputf8}");

                let rcpt = [b"RCPT TO:".as_slice(), &address, b"\r\n"].concat();
                let input = [
                    format!("EHLO c\r\nMAIL FROM:<a@x.test>{smtputf8}\r\n").as_bytes(),
                    &rcpt,
                    b"RCPT TO:<\xc3\xa9@probe.test>\r\n",
                ]
                .concat();
                let (replies, _) = drive(&mut Session::new(config()), &input);
                let valid = if smtputf8.is_empty() {
                    "553 5.6.7"
                } else {
                    "250 2.1.5"
                };
                assert_eq!(
                    replies,
                    ["250", "250 2.1.0", "553 5.6.7", valid],
                    "RCPT, {class}{smtputf8}"
                );
            }
        }
    }

    /// Feeds `input` up to the complete message, which stays with the "handler".
    fn until_message(session: &mut Session, input: &[u8]) {
        let mut pos = 0;
        while pos < input.len() {
            let (used, event) = session.ingest(&input[pos..]);
            pos += used;
            match event {
                Some(Event::CheckRecipient(address)) => {
                    session.recipient_checked(address, Ok(None));
                }
                Some(Event::Message { .. }) => return,
                _ => {}
            }
        }
        panic!("no message in the input");
    }

    #[test]
    fn a_spent_memory_budget_defers_data() {
        let budget = MemoryBudget::new(1500);
        let transaction =
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n";
        let mut first = Session::new(config()).with_memory_budget(budget.clone());
        until_message(&mut first, transaction);
        // The buffer of the message being handled (capped at the 1000-octet size limit)...
        assert_eq!(budget.used(), 1000);
        // ...leaves no room for another: 452 4.3.1 at DATA, not counted as an error.
        let mut second = Session::new(config()).with_memory_budget(budget.clone());
        let (replies, _) = drive(&mut second, transaction);
        assert_eq!(replies[3..], ["452 4.3.1", "500 5.5.1", "500 5.5.1"]);
        assert!(!second.is_closed());
        // The handler answers the first message; its bytes come back.
        first.message_handled(Reply::OK);
        assert_eq!(budget.used(), 0);
        let (replies, messages) = drive(&mut second, b"DATA\r\nhi\r\n.\r\n");
        assert_eq!(replies, ["354", "250 2.0.0"]);
        assert_eq!(messages.len(), 1);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_budget_spent_while_reading_refuses_that_message_only() {
        // Room for the first 16 KiB buffer of a message, not for the 32 KiB one after it.
        let budget = MemoryBudget::new(20 * 1024);
        let roomy = SessionConfig {
            max_message_size: 100_000,
            ..config()
        };
        let mut session = Session::new(roomy).with_memory_budget(budget.clone());
        let body = format!("{}.\r\n", ("x".repeat(88) + "\r\n").repeat(300));
        let input = format!(
            "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n{body}NOOP\r\n"
        );
        let (replies, messages) = drive(&mut session, input.as_bytes());
        assert_eq!(replies[3..], ["354", "452 4.3.1", "250 2.0.0"]);
        assert!(messages.is_empty());
        assert_eq!(budget.used(), 0);
        // BDAT: the chunk is read and discarded, the transaction is over.
        let input = format!(
            "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 27000\r\n{}BDAT 2 LAST\r\nhi",
            "y".repeat(27000)
        );
        let (replies, _) = drive(&mut session, input.as_bytes());
        assert_eq!(
            replies,
            ["250 2.1.0", "250 2.1.5", "452 4.3.1", "503 5.5.1"]
        );
        assert_eq!(budget.used(), 0);
        // A message that fits is still taken.
        let (replies, messages) = drive(
            &mut session,
            b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n",
        );
        assert_eq!(replies[2..], ["354", "250 2.0.0"]);
        assert_eq!(messages.len(), 1);
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

    fn submission(plaintext_auth: bool) -> SessionConfig {
        SessionConfig {
            policy: SessionPolicy::Submission { plaintext_auth },
            ..config()
        }
    }

    /// A submission session that has been through STARTTLS and EHLO.
    fn submission_over_tls() -> Session {
        let mut session = Session::new(submission(false));
        let (replies, _) = drive(&mut session, b"EHLO c\r\nSTARTTLS\r\nEHLO c\r\n");
        assert_eq!(replies, ["250", "220 starttls", "250"]);
        session
    }

    fn replies_over_tls(input: &str) -> Vec<String> {
        drive(&mut submission_over_tls(), input.as_bytes()).0
    }

    /// The EHLO keywords, one per line after the hostname.
    fn ehlo_keywords(session: &mut Session) -> Vec<String> {
        let (_, event) = session.ingest(b"EHLO c\r\n");
        let Some(Event::Reply(reply)) = event else {
            panic!("{event:?}")
        };
        reply.text.lines().skip(1).map(str::to_string).collect()
    }

    #[test]
    fn which_listener_advertises_what() {
        let auth = "AUTH PLAIN LOGIN".to_string();
        let starttls = "STARTTLS".to_string();
        // MX: STARTTLS, never AUTH, before or after TLS.
        let mut inbound = Session::new(config());
        let keywords = ehlo_keywords(&mut inbound);
        assert!(keywords.contains(&starttls) && !keywords.contains(&auth));
        inbound.tls_started();
        assert!(!ehlo_keywords(&mut inbound).contains(&auth));
        // Submission: STARTTLS first, AUTH only once encrypted.
        let mut submission_session = Session::<()>::new(submission(false));
        let keywords = ehlo_keywords(&mut submission_session);
        assert!(keywords.contains(&starttls) && !keywords.contains(&auth));
        submission_session.tls_started();
        let keywords = ehlo_keywords(&mut submission_session);
        assert!(keywords.contains(&auth) && !keywords.contains(&starttls));
        // Dev mode: AUTH in plaintext too.
        let mut dev = Session::<()>::new(submission(true));
        assert!(ehlo_keywords(&mut dev).contains(&auth));
    }

    #[test]
    fn inbound_refuses_auth_and_needs_none() {
        assert_eq!(
            replies_to("EHLO c\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\n"),
            ["250", "502 5.5.1", "250 2.1.0"]
        );
    }

    #[test]
    fn submission_needs_tls_before_auth() {
        let mut session = Session::new(submission(false));
        let (replies, _) = drive(
            &mut session,
            b"EHLO c\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nAUTH LOGIN\r\nMAIL FROM:<a@x.test>\r\n",
        );
        assert_eq!(replies, ["250", "530 5.7.0", "530 5.7.0", "530 5.7.0"]);
        assert!(session.identity().is_none());
    }

    #[test]
    fn auth_needs_ehlo_first() {
        let mut session = Session::new(submission(false));
        session.tls_started();
        let (replies, _) = drive(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
        assert_eq!(replies, ["503 5.5.1"]);
    }

    #[test]
    fn mail_before_auth_is_refused() {
        assert_eq!(
            replies_over_tls("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"),
            ["530 5.7.0", "503 5.5.1"]
        );
    }

    #[test]
    fn plain_with_initial_response() {
        let mut session = submission_over_tls();
        let (replies, messages) = drive(
            &mut session,
            b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert_eq!(
            replies,
            ["235 2.7.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
        );
        assert_eq!(messages.len(), 1);
        assert!(session.identity().is_some());
    }

    #[test]
    fn plain_with_continuation() {
        assert_eq!(
            replies_over_tls("AUTH PLAIN\r\nAHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\n"),
            ["334 ", "235 2.7.0", "250 2.1.0"]
        );
        // An authorization identity equal to the user is fine; another one is not.
        assert_eq!(
            replies_over_tls("AUTH PLAIN dXNlcgB1c2VyAHNlY3JldA==\r\n"),
            ["235 2.7.0"]
        );
        assert_eq!(
            replies_over_tls("AUTH PLAIN Ym9zcwB1c2VyAHNlY3JldA==\r\n"),
            ["535 5.7.8"]
        );
    }

    #[test]
    fn login_in_steps() {
        assert_eq!(
            replies_over_tls("AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\n"),
            [
                "334 VXNlcm5hbWU6",
                "334 UGFzc3dvcmQ6",
                "235 2.7.0",
                "250 2.1.0"
            ]
        );
        // The username may come with the command.
        assert_eq!(
            replies_over_tls("AUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\n"),
            ["334 UGFzc3dvcmQ6", "235 2.7.0"]
        );
    }

    #[test]
    fn wrong_or_unverifiable_credentials() {
        let mut session = submission_over_tls();
        let (replies, _) = drive(
            &mut session,
            b"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\nAUTH PLAIN AHRlbXAAeA==\r\nMAIL FROM:<a@x.test>\r\n",
        );
        assert_eq!(replies, ["535 5.7.8", "454 4.7.0", "530 5.7.0"]);
        assert!(session.identity().is_none());
    }

    #[test]
    fn cancel_and_malformed_responses() {
        assert_eq!(
            replies_over_tls("AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\ndXNlcg==\r\n*\r\nNOOP\r\n"),
            [
                "334 ",
                "501 5.0.0",
                "334 VXNlcm5hbWU6",
                "334 UGFzc3dvcmQ6",
                "501 5.0.0",
                "250 2.0.0"
            ]
        );
        assert_eq!(
            replies_over_tls(
                "AUTH PLAIN not*base64\r\nAUTH PLAIN\r\n!!!\r\nAUTH LOGIN\r\n%%\r\nNOOP\r\n"
            ),
            [
                "501 5.5.2",
                "334 ",
                "501 5.5.2",
                "334 VXNlcm5hbWU6",
                "501 5.5.2",
                "250 2.0.0"
            ]
        );
        // Base64 of something that is not `authzid NUL authcid NUL password` in UTF-8.
        assert_eq!(
            replies_over_tls(
                "AUTH PLAIN bm9udWw=\r\nAUTH PLAIN AABzZWNyZXQ=\r\nAUTH PLAIN /wAA\r\nAUTH PLAIN =\r\n"
            ),
            ["501 5.5.2", "501 5.5.2", "501 5.5.2", "501 5.5.2"]
        );
    }

    #[test]
    fn unknown_mechanism() {
        assert_eq!(
            replies_over_tls("AUTH CRAM-MD5\r\nAUTH FOO\r\nAUTH\r\n"),
            ["504 5.5.4", "504 5.5.4", "501 5.5.4"]
        );
    }

    #[test]
    fn auth_twice_or_in_a_transaction() {
        assert_eq!(
            replies_over_tls(
                "AUTH PLAIN AHVzZXIAc2VjcmV0\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\nAUTH LOGIN\r\n"
            ),
            ["235 2.7.0", "503 5.5.1", "250 2.1.0", "503 5.5.1"]
        );
    }

    #[test]
    fn the_handler_decides_on_senders() {
        assert_eq!(
            replies_over_tls(
                "AUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<other@x.test>\r\nRCPT TO:<b@y.test>\r\nMAIL FROM:<a@x.test>\r\n"
            ),
            ["235 2.7.0", "550 5.7.1", "503 5.5.1", "250 2.1.0"]
        );
    }

    #[test]
    fn auth_survives_rset_and_ehlo_but_not_starttls() {
        let mut session = Session::new(submission(true));
        let (replies, _) = drive(
            &mut session,
            b"EHLO c\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nRSET\r\nEHLO c\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nSTARTTLS\r\n",
        );
        assert_eq!(
            replies,
            [
                "250",
                "235 2.7.0",
                "250 2.0.0",
                "250",
                "250 2.1.0",
                "250 2.0.0",
                "220 starttls"
            ]
        );
        assert!(session.identity().is_none());
        let (replies, _) = drive(&mut session, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
        assert_eq!(replies, ["250", "530 5.7.0"]);
    }

    #[test]
    fn dev_policy_allows_auth_without_tls() {
        let mut session = Session::new(submission(true));
        let (replies, messages) = drive(
            &mut session,
            b"EHLO c\r\nAUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert_eq!(
            replies,
            [
                "250",
                "334 VXNlcm5hbWU6",
                "334 UGFzc3dvcmQ6",
                "235 2.7.0",
                "250 2.1.0",
                "250 2.1.5",
                "354",
                "250 2.0.0"
            ]
        );
        assert_eq!(messages.len(), 1);
        assert!(!session.is_tls());
    }

    #[test]
    fn failed_auth_counts_against_the_error_cap() {
        // max_errors is 5: five refusals end the session, whatever succeeds in between.
        let attempt = "AUTH PLAIN AHVzZXIAd3Jvbmc=\r\nNOOP\r\n";
        let mut session = submission_over_tls();
        let (replies, _) = drive(&mut session, attempt.repeat(6).as_bytes());
        assert_eq!(replies.len(), 9);
        assert_eq!(replies[8], "421 4.7.0");
        assert!(session.is_closed());
        // And like any error, in a row with others.
        let (replies, _) = drive(
            &mut submission_over_tls(),
            b"X\r\nX\r\nX\r\nX\r\nAUTH PLAIN AHVzZXIAd3Jvbmc=\r\n",
        );
        assert_eq!(replies.last().unwrap(), "421 4.7.0");
    }

    #[test]
    fn a_long_auth_response_ends_the_exchange() {
        let input = format!("AUTH LOGIN\r\n{}\r\nNOOP\r\n", "A".repeat(200));
        assert_eq!(
            replies_over_tls(&input),
            ["334 VXNlcm5hbWU6", "500 5.5.2", "250 2.0.0"]
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let credentials = Credentials {
            mechanism: Mechanism::Plain,
            authcid: "user".into(),
            password: "secret".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("user") && !shown.contains("secret"),
            "{shown}"
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
            b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n",
            b"AUTH PLAIN\r\n",
            b"dXNlcg==\r\n",
            b"c2VjcmV0\r\n",
            b"*\r\n",
            b"MAIL FROM:<other@x.test>\r\n",
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
            let mut session = Session::new(match next() % 3 {
                0 => config(),
                n => submission(n == 1),
            });
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
