//! The tokio shell around [`Session`]: admits connections under the listener's limits
//! ([`Admission`]: in all, per client, slots kept for new clients), reads with the RFC 5321
//! §4.5.3.2 timeouts and the session's [`Pace`] (overall deadline, minimum data rate),
//! writes replies (batched for PIPELINING), upgrades to TLS, and answers `421` when the
//! process shuts down.
//!
//! The same shell serves the MX listener and the submission listeners; each gets its
//! [`SessionPolicy`](super::session::SessionPolicy) through `ServerConfig::session` and its
//! [`MailHandler`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, error, info, warn};

use super::Reply;
use super::admission::Admission;
use super::budget::MemoryBudget;
use super::budget::Reservation;
use super::pace::{Pace, PaceLimits};
use super::session::{
    Credentials, Envelope, Event, Session, SessionConfig, SessionPolicy, SizeLimit, TransactionInfo,
};
use super::spool::{Content, Spool, SpoolWriter};
use crate::metrics::{Listener, Metrics};
use crate::shutdown::Shutdown;

/// Facts about the connection a handler may need.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    /// The negotiated TLS protocol (`TLSv1.3`), or `None` for plaintext.
    pub tls_version: Option<&'static str>,
}

/// Decides what happens to credentials, senders, recipients and messages. Implemented by
/// `inbound` for the MX listener; a submission handler implements it for 587/2525.
pub trait MailHandler: Send + Sync + 'static {
    /// Who a submission client authenticated as: opaque to the SMTP layer, kept by the
    /// session from a successful AUTH until STARTTLS or the end of the connection, and
    /// handed back with every MAIL FROM and message. A handler whose listener never offers
    /// AUTH (inbound) uses [`std::convert::Infallible`].
    type Identity: Send + Sync + 'static;

    /// Submission only: checks the credentials of an AUTH exchange. `Err` is the reply:
    /// [`Reply::AUTH_FAILED`] (535 5.7.8) for wrong credentials,
    /// [`Reply::AUTH_TEMPORARY_FAILURE`] (454 4.7.0) when they cannot be checked now.
    /// Never log `credentials.password`.
    fn authenticate(
        &self,
        conn: &ConnectionInfo,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<Self::Identity, Reply>> + Send;

    /// Submission only: whether the authenticated `identity` may send as `address` (MAIL
    /// FROM, bare; empty for `<>`). `Err` is the reply, e.g. [`Reply::SENDER_NOT_ALLOWED`]
    /// (550 5.7.1) or a 553.
    fn check_sender(
        &self,
        conn: &ConnectionInfo,
        identity: &Self::Identity,
        address: &str,
    ) -> impl Future<Output = Result<(), Reply>> + Send;

    /// `Ok` accepts the recipient (with the size limit of its address, if lower than the
    /// server's); `Err` is the reply refusing it.
    fn check_recipient(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
    ) -> impl Future<Output = Result<Option<SizeLimit>, Reply>> + Send;

    /// A recipient the session refused by itself (past `max_recipients`, reported once per
    /// transaction), for the handler to record; the reply is sent either way.
    fn recipient_refused(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
        reply: &Reply,
    ) -> impl Future<Output = ()> + Send {
        let _ = (conn, transaction, address, reply);
        std::future::ready(())
    }

    /// Delivers a complete message; the returned reply answers DATA (or the last BDAT).
    /// `identity` is who submitted it (always `Some` on a submission listener, `None` on
    /// the MX listener). `content` is in memory, or in a spool file when it was larger than
    /// the listener's spool threshold.
    fn handle_message(
        &self,
        conn: &ConnectionInfo,
        identity: Option<&Self::Identity>,
        envelope: Envelope,
        content: Content,
    ) -> impl Future<Output = Reply> + Send;
}

/// Listener-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub session: SessionConfig,
    pub max_connections: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub limits: ListenerLimits,
}

/// Limits that keep one client from taking every slot or all memory (issue 10 items 4 and
/// 9). `Default` sets none of them.
#[derive(Debug, Clone, Default)]
pub struct ListenerLimits {
    /// Sessions one client (an IPv4 address or an IPv6 /64) may hold at once.
    pub max_connections_per_ip: Option<usize>,
    /// Session deadline and minimum data rate.
    pub pace: PaceLimits,
    /// Shared by every listener of the process: the bytes all sessions may buffer.
    pub memory: Option<Arc<MemoryBudget>>,
    /// Where content past a threshold goes while it arrives; `None` keeps it in memory.
    pub spool: Option<Arc<Spool>>,
}

impl ListenerLimits {
    /// Every limit set: `min_data_rate` bytes/s per `window` (0 for none), and a fresh
    /// memory budget of `memory_budget` bytes (share the result between listeners).
    pub fn new(
        max_connections_per_ip: usize,
        session_deadline: Duration,
        min_data_rate: u64,
        window: Duration,
        memory_budget: usize,
    ) -> ListenerLimits {
        ListenerLimits {
            max_connections_per_ip: Some(max_connections_per_ip),
            pace: PaceLimits {
                session_deadline: Some(session_deadline),
                min_data_rate,
                window,
            },
            memory: Some(MemoryBudget::new(memory_budget)),
            spool: None,
        }
    }

    /// Spools message content past the spool's threshold.
    pub fn with_spool(mut self, spool: Arc<Spool>) -> ListenerLimits {
        self.spool = Some(spool);
        self
    }
}

/// How long a spooled message waits for room in the memory budget to be read back before
/// it is answered `452 4.3.1` (the client waits up to 10 minutes for the reply to DATA:
/// RFC 5321 §4.5.3.2.6).
const READ_BACK_WAIT: Duration = Duration::from_secs(120);

pub struct SmtpServer<H> {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    tls: Option<TlsAcceptor>,
    /// RFC 8314 implicit TLS (port 465): the handshake comes before the greeting.
    implicit_tls: bool,
    handler: Arc<H>,
    /// Sessions, and the replies to RCPT and DATA, counted under this listener's name.
    metrics: Option<(Metrics, Listener)>,
}

impl<H: MailHandler> SmtpServer<H> {
    pub fn new(
        listener: TcpListener,
        config: ServerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Arc<H>,
    ) -> SmtpServer<H> {
        let mut config = config;
        config.session.tls_available = tls.is_some();
        if config.session.policy == SessionPolicy::SUBMISSION && tls.is_none() {
            warn!("submission listener without a TLS certificate: every AUTH is refused (530)");
        }
        SmtpServer {
            listener,
            config: Arc::new(config),
            tls: tls.map(TlsAcceptor::from),
            implicit_tls: false,
            handler,
            metrics: None,
        }
    }

    /// Counts this listener's sessions and replies in `metrics` as `listener`.
    pub fn with_metrics(mut self, metrics: Metrics, listener: Listener) -> SmtpServer<H> {
        self.metrics = Some((metrics, listener));
        self
    }

    /// Makes this an implicit-TLS listener (RFC 8314 §3.3, port 465): every connection
    /// starts with the TLS handshake, and STARTTLS is not offered inside it.
    pub fn implicit_tls(mut self) -> SmtpServer<H> {
        assert!(self.tls.is_some(), "implicit TLS needs a certificate");
        self.implicit_tls = true;
        self
    }

    /// Accepts connections until shutdown; each session runs as a tracked task.
    pub async fn run(self, shutdown: Shutdown) {
        let admission = Admission::new(
            self.config.max_connections,
            self.config
                .limits
                .max_connections_per_ip
                .unwrap_or(usize::MAX),
        );
        loop {
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(%error, "accepting an SMTP connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.triggered() => break,
            };
            let _ = stream.set_nodelay(true);
            let ticket = match admission.admit(remote.ip()) {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    debug!(peer = %remote, %refusal, "connection refused");
                    shutdown.spawn(refuse(stream, refusal.reply()));
                    continue;
                }
            };
            if let Some((metrics, listener)) = &self.metrics {
                metrics.session(*listener);
            }
            let mut session = Session::new(self.config.session.clone());
            if let Some(budget) = &self.config.limits.memory {
                session = session.with_memory_budget(budget.clone());
            }
            let connection = Connection {
                stream: Stream::Plain(stream),
                session,
                pace: Pace::new(self.config.limits.pace, std::time::Instant::now()),
                info: ConnectionInfo {
                    remote,
                    tls_version: None,
                },
                config: self.config.clone(),
                tls: self.tls.clone(),
                implicit_tls: self.implicit_tls,
                handler: self.handler.clone(),
                shutdown: shutdown.clone(),
                metrics: self.metrics.clone(),
                spooling: None,
                spill: Vec::new(),
            };
            let span = tracing::info_span!("smtp", peer = %remote);
            shutdown.spawn(
                async move {
                    if let Err(error) = connection.serve().await {
                        debug!(%error, "session ended with an I/O error");
                    }
                    drop(ticket);
                }
                .instrument(span),
            );
        }
    }
}

async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
}

/// What the read loop does after an event.
enum Flow {
    Continue,
    Close,
    /// TLS is up; unread plaintext input must be discarded.
    Upgraded,
}

/// What waiting for more input gave.
enum Read {
    /// More octets are in the input buffer.
    More,
    /// The client closed the connection.
    Eof,
    /// Write this reply and close: a timeout, a limit, or shutdown.
    Close(Reply),
}

struct Connection<H: MailHandler> {
    stream: Stream,
    session: Session<H::Identity>,
    pace: Pace,
    info: ConnectionInfo,
    config: Arc<ServerConfig>,
    tls: Option<TlsAcceptor>,
    implicit_tls: bool,
    handler: Arc<H>,
    shutdown: Shutdown,
    metrics: Option<(Metrics, Listener)>,
    /// The spool file of the transaction's content, once it passed the threshold.
    spooling: Option<SpoolWriter>,
    /// The buffer content goes through on its way to the spool file (kept between spills).
    spill: Vec<u8>,
}

impl<H: MailHandler> Connection<H> {
    async fn serve(mut self) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(512);
        if self.implicit_tls {
            self.start_tls().await?;
        }
        if self.shutdown.is_triggered() {
            Reply::SHUTTING_DOWN.write_to(&mut out);
            return self.stream.write_all(&out).await;
        }
        self.session.greeting().write_to(&mut out);
        self.stream.write_all(&out).await?;
        out.clear();

        let mut input: Vec<u8> = Vec::with_capacity(8192);
        loop {
            // Handle everything already received; replies to pipelined commands are batched.
            let mut pos = 0;
            while pos < input.len() {
                let (used, event) = self.session.ingest(&input[pos..]);
                pos += used;
                let Some(event) = event else { break };
                match self.handle(event, &mut out).await? {
                    Flow::Continue => {}
                    Flow::Close => {
                        self.stream.write_all(&out).await?;
                        return self.stream.shutdown().await;
                    }
                    Flow::Upgraded => {
                        // Bytes the client pipelined behind STARTTLS arrived in plaintext:
                        // drop them (RFC 3207 §5, CVE-2011-0411 command injection).
                        pos = input.len();
                        break;
                    }
                }
            }
            input.drain(..pos);
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
                out.clear();
            }
            if let Err(error) = self.spill().await {
                // Mid-content there is no reply to give but this one (the client retries).
                error!(%error, "cannot write the message spool file; closing the session");
                Reply::SPOOL_CLOSING.write_to(&mut out);
                self.stream.write_all(&out).await?;
                return self.stream.shutdown().await;
            }

            match self.read_more(&mut input).await? {
                Read::More => {}
                Read::Eof => return Ok(()),
                Read::Close(reply) => {
                    reply.write_to(&mut out);
                    self.stream.write_all(&out).await?;
                    return self.stream.shutdown().await;
                }
            }
        }
    }

    /// Reads more input: within the data timeout while message content flows, the command
    /// timeout otherwise, and the session's pace. A shutdown interrupts the wait, except in
    /// the middle of content.
    async fn read_more(&mut self, input: &mut Vec<u8>) -> std::io::Result<Read> {
        let reading_data = self.session.is_reading_data();
        let idle = if reading_data {
            self.config.data_timeout
        } else {
            self.config.command_timeout
        };
        if input.capacity() - input.len() < 4096 {
            input.reserve(8192);
        }
        loop {
            let (until, wake) = self
                .pace
                .read_until(std::time::Instant::now(), reading_data, idle);
            let until = tokio::time::Instant::from_std(until);
            let read = tokio::select! {
                read = tokio::time::timeout_at(until, self.stream.read_buf(input)) => read,
                _ = self.shutdown.triggered(), if !reading_data => {
                    return Ok(Read::Close(Reply::SHUTTING_DOWN));
                }
            };
            // `read_buf` is cancel safe: a wait cut short for a rate check loses nothing.
            let checked = match read {
                Ok(Ok(0)) => return Ok(Read::Eof),
                Ok(Ok(n)) => self
                    .pace
                    .received(std::time::Instant::now(), n)
                    .map(|()| true),
                Ok(Err(error)) => return Err(error),
                Err(_elapsed) => self
                    .pace
                    .woke(std::time::Instant::now(), wake)
                    .map(|()| false),
            };
            match checked {
                Ok(true) => return Ok(Read::More),
                Ok(false) => continue,
                Err(expiry) => {
                    debug!(%expiry, "closing the session");
                    return Ok(Read::Close(expiry.reply()));
                }
            }
        }
    }

    async fn handle(&mut self, event: Event, out: &mut Vec<u8>) -> std::io::Result<Flow> {
        let event = match event {
            Event::CheckRecipient(address) => {
                let verdict = self
                    .handler
                    .check_recipient(&self.info, self.session.transaction(), &address)
                    .await;
                if let (Some((metrics, listener)), Err(reply)) = (&self.metrics, &verdict)
                    && reply.code >= 500
                {
                    metrics.recipient_refused(*listener, reply.code);
                }
                self.session.recipient_checked(address, verdict)
            }
            Event::Message {
                envelope,
                body,
                drained,
            } => {
                let reply = match self.content(body, drained).await {
                    Ok((content, read_back)) => {
                        let reply = (self.handler)
                            .handle_message(&self.info, self.session.identity(), envelope, content)
                            .await;
                        drop(read_back);
                        reply
                    }
                    Err(reply) => reply,
                };
                if let Some((metrics, listener)) = &self.metrics {
                    metrics.message(*listener, reply.code);
                }
                self.session.message_handled(reply)
            }
            Event::Authenticate(credentials) => {
                let result = self.handler.authenticate(&self.info, &credentials).await;
                // The username only; a password is never logged.
                match &result {
                    Ok(_) => info!(
                        mechanism = credentials.mechanism.as_str(),
                        user = %credentials.authcid,
                        "authenticated"
                    ),
                    Err(reply) => info!(
                        mechanism = credentials.mechanism.as_str(),
                        code = reply.code,
                        "authentication refused"
                    ),
                }
                drop(credentials);
                self.session.authenticated(result)
            }
            Event::RecipientRefused { address, reply } => {
                self.handler
                    .recipient_refused(&self.info, self.session.transaction(), &address, &reply)
                    .await;
                Event::Reply(reply)
            }
            Event::CheckSender(address) => {
                let identity = self
                    .session
                    .identity()
                    .expect("the session asks about senders only once authenticated");
                let verdict = self
                    .handler
                    .check_sender(&self.info, identity, &address)
                    .await;
                self.session.sender_checked(address, verdict)
            }
            other => other,
        };
        match event {
            Event::Reply(reply) => {
                reply.write_to(out);
                Ok(Flow::Continue)
            }
            Event::Close(reply) => {
                reply.write_to(out);
                Ok(Flow::Close)
            }
            Event::StartTls => {
                Reply::START_TLS.write_to(out);
                self.stream.write_all(out).await?;
                out.clear();
                self.start_tls().await?;
                Ok(Flow::Upgraded)
            }
            Event::CheckRecipient(_)
            | Event::RecipientRefused { .. }
            | Event::Message { .. }
            | Event::Authenticate(_)
            | Event::CheckSender(_) => {
                unreachable!("the session answers a handler result with a reply")
            }
        }
    }

    /// Past the spool threshold, moves the transaction's content held in memory to its
    /// spool file (made by the first move), off the async threads.
    async fn spill(&mut self) -> std::io::Result<()> {
        let Some(spool) = &self.config.limits.spool else {
            return Ok(());
        };
        if self.session.buffered_content() < spool.threshold().max(1) {
            return Ok(());
        }
        let mut chunk = std::mem::take(&mut self.spill);
        chunk.clear();
        let drained = self.session.drain_content(&mut chunk);
        // A file left by an earlier transaction (refused or reset) is not this one's.
        let writer = (self.spooling.take()).filter(|w| w.len() + chunk.len() == drained);
        if writer.is_none() && drained != chunk.len() {
            return Err(std::io::Error::other(
                "the spool file of this message was lost",
            ));
        }
        let spool = spool.clone();
        let (writer, chunk) = tokio::task::spawn_blocking(move || {
            let mut writer = match writer {
                Some(writer) => writer,
                None => {
                    debug!(
                        threshold = spool.threshold(),
                        "spooling the message to disk"
                    );
                    spool.create()?
                }
            };
            writer.write(&chunk)?;
            Ok::<_, std::io::Error>((writer, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        self.spooling = Some(writer);
        self.spill = chunk;
        Ok(())
    }

    /// The message's content for the handler: in memory, or its spool file completed with
    /// the rest (`tail`). Spooled content waits for room in the memory budget to be read
    /// back; the reservation returned holds it until the handler is done.
    async fn content(
        &mut self,
        tail: Vec<u8>,
        drained: usize,
    ) -> Result<(Content, Option<Reservation>), Reply> {
        let writer = self.spooling.take();
        if drained == 0 {
            return Ok((Content::Memory(tail), None));
        }
        let Some(mut writer) = writer.filter(|w| w.len() == drained) else {
            error!("the spool file of a message was lost");
            return Err(Reply::SPOOL_ERROR);
        };
        let finished = tokio::task::spawn_blocking(move || {
            writer.write(&tail)?;
            writer.finish()
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|finished| finished);
        let spooled = match finished {
            Ok(spooled) => spooled,
            Err(error) => {
                error!(%error, "cannot finish the message spool file");
                return Err(Reply::SPOOL_ERROR);
            }
        };
        self.session.content_spooled();
        let read_back = match &self.config.limits.memory {
            Some(budget) => {
                let deadline = tokio::time::Instant::now() + READ_BACK_WAIT;
                let Some(held) = budget.wait_to_handle(spooled.len(), deadline).await else {
                    warn!(
                        size = spooled.len(),
                        "no room in the memory budget to handle a spooled message"
                    );
                    return Err(Reply::NO_MEMORY);
                };
                Some(held)
            }
            None => None,
        };
        Ok((Content::Spooled(spooled), read_back))
    }

    async fn start_tls(&mut self) -> std::io::Result<()> {
        let acceptor = self.tls.clone().expect("STARTTLS is offered only with TLS");
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            unreachable!("the session refuses a second STARTTLS");
        };
        let handshake = tokio::time::timeout(self.config.command_timeout, acceptor.accept(tcp));
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                info!(%error, "TLS handshake failed");
                return Err(error);
            }
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
        };
        let version = crate::tls::protocol_name(tls.get_ref().1.protocol_version());
        debug!(version, "TLS established");
        self.info.tls_version = Some(version);
        self.stream = Stream::Tls(Box::new(tls));
        self.session.tls_started();
        Ok(())
    }
}

/// The connection's byte stream, plaintext or upgraded.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only during the upgrade.
    Closed,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
