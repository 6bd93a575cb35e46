//! What happens to mail Postern receives: route each recipient, then parse the message,
//! build the address's payload, POST it, record the outcome, and turn the target's answer
//! into the SMTP reply (design §4.1).

pub mod callback;
pub mod format;
pub mod managed;
pub mod queue;
pub mod route;
mod stored;
pub mod verify;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use md5::{Digest, Md5};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{DeliveryMode, Field, Format, Redaction, TargetUrl};
use crate::mail::fields::{Trace, strip_own_received, with_received, without_own_received};
use crate::mail::message::ParsedMessage;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::smtp::Reply;
use crate::smtp::budget::MemoryBudget;
use crate::smtp::server::{ConnectionInfo, MailHandler};
use crate::smtp::session::{Credentials, Envelope, SizeLimit, TransactionInfo};
use crate::smtp::spool::Content;
use crate::store::{AttemptRecord, InboundMeta, Kept, Outcome, Store, StoreError};
use crate::webhook::{self, Attempt, Deliverer, Owner, Payload, PostOptions};
use callback::{AuthorizationRequest, ErrorReport};
use format::{Dkim, Dmarc, PayloadEnvelope, Spf};
use route::{Destination, Refusal, Route, Routes};
use verify::Verifier;

/// Longest target text echoed in a 554 reply (design §4.1).
const MAX_REPLY_TEXT: usize = 512;

/// The inbound [`MailHandler`].
pub struct Inbound {
    /// Background work (error callbacks) is tracked so that shutdown waits for it.
    shutdown: Shutdown,
    /// Read afresh at each step (RCPT, then DATA), so a change made through the API applies
    /// to the next recipient command and the next message.
    routes: Routes,
    deliverer: Deliverer,
    store: Store,
    /// SPF/DKIM/DMARC; `None` when no check is enabled.
    verifier: Option<Arc<Verifier>>,
    settings: InboundSettings,
    /// Each POST to a target: its latency and status class, by the route's pattern.
    metrics: Metrics,
    /// The app's "now" for the inbound queue (its retries and expiry).
    clock: Clock,
    /// Poked after a message is queued, so the queue worker POSTs it at once.
    queue_wake: Arc<Notify>,
    /// The attachment and message stores addresses name (`None`: none can be used).
    objects: Option<crate::objects::Objects>,
    /// The SMTP listeners' budget for message content in memory: the queue worker takes a
    /// message's size from it before reading the content back (`None`: unbounded).
    memory: Option<Arc<MemoryBudget>>,
}

/// What the inbound side needs from the config besides routes.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// For the `Received:` line.
    pub hostname: String,
    /// Keep the raw message in the store (dev mode).
    pub keep_raw: bool,
    /// Check SPF for every message.
    pub spf: bool,
    /// `privacy.redact`: fields never stored, for every address.
    pub redact: Redaction,
    /// `[delivery] queue_expiry_hours`: how long a queued message is retried.
    pub queue_expiry: std::time::Duration,
}

impl Inbound {
    pub fn new(
        shutdown: Shutdown,
        routes: Routes,
        deliverer: Deliverer,
        store: Store,
        verifier: Option<Arc<Verifier>>,
        settings: InboundSettings,
    ) -> Inbound {
        Inbound {
            shutdown,
            routes,
            deliverer,
            store,
            verifier,
            settings,
            metrics: Metrics::default(),
            clock: Clock::system(),
            queue_wake: Arc::default(),
            objects: None,
            memory: None,
        }
    }

    /// The queue worker reads content back only when `budget` has room for it, as the SMTP
    /// listeners do for spooled messages.
    pub fn with_memory_budget(mut self, budget: Option<Arc<MemoryBudget>>) -> Inbound {
        self.memory = budget;
        self
    }

    /// Puts attachments and messages into the stores addresses name (contract §3).
    pub fn with_objects(mut self, objects: crate::objects::Objects) -> Inbound {
        self.objects = Some(objects);
        self
    }

    /// Times the inbound queue by `clock` (tests move a manual one).
    pub fn with_clock(mut self, clock: Clock) -> Inbound {
        self.clock = clock;
        self
    }

    /// Counts the POSTs to targets in the instance's `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Inbound {
        self.metrics = metrics;
        self
    }

    /// `envelope.spf` (contract §5.1); `none` when SPF checking is off.
    async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> Spf {
        match &self.verifier {
            Some(verifier) if self.settings.spf => verifier.spf(ip, helo, mail_from).await,
            _ => Spf {
                result: "none".into(),
                domain: spf_domain(helo, mail_from),
            },
        }
    }

    /// The authorization callback (contract §7.1): 2xx accepts, 4xx → 550, anything else → 450.
    async fn authorize(
        &self,
        route: &Route,
        url: &crate::config::TargetUrl,
        conn: &ConnectionInfo,
        transaction: &TransactionInfo<'_>,
        address: &str,
    ) -> Result<(), Reply> {
        let spf = self
            .spf(conn.remote.ip(), transaction.helo, transaction.mail_from)
            .await;
        let remote_ip = conn.remote.ip().to_string();
        let request = AuthorizationRequest {
            to: address,
            from: transaction.mail_from,
            size: transaction.declared_size,
            remote_ip: &remote_ip,
            helo_domain: transaction.helo,
            spf: &spf,
        };
        let owner = Owner::Address(route.address.clone());
        let id = callback_id();
        let options = PostOptions {
            signed_as: Some((&owner, &id)),
            ..PostOptions::default()
        };
        let delivery = self
            .deliverer
            .deliver_with(url, callback::authorization(url, &request), &options)
            .await;
        match delivery.outcome {
            webhook::Outcome::Accepted { .. } => Ok(()),
            webhook::Outcome::Rejected { status, .. } => {
                info!(
                    address,
                    status, "authorization callback refused the recipient"
                );
                Err(Reply::owned(
                    550,
                    "5.7.1",
                    format!("Recipient refused by the authorization callback (HTTP {status})"),
                ))
            }
            webhook::Outcome::Deferred { reason, .. } => {
                warn!(address, reason, "authorization callback failed");
                Err(Reply::new(
                    450,
                    "4.7.1",
                    "Error contacting the authorization server, try again later",
                ))
            }
        }
    }

    /// SPF for every message; DKIM and DMARC as the route asks (DMARC builds on DKIM).
    async fn verify(
        &self,
        route: &Route,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        body: &[u8],
    ) -> (Spf, Option<Dkim>, Option<Dmarc>) {
        let spf = self.spf(ip, helo, mail_from).await;
        // DMARC builds on the DKIM results, so DKIM runs for either (contract §5.2, §5.3).
        let (dkim, dmarc) = match &self.verifier {
            Some(verifier) if route.options.dkim || route.options.dmarc => {
                let dkim = verifier.dkim(body).await;
                let dmarc = match route.options.dmarc {
                    true => Some(verifier.dmarc(body, &spf, &dkim).await),
                    false => None,
                };
                (route.options.dkim.then_some(dkim), dmarc)
            }
            _ => (None, None),
        };
        (spf, dkim, dmarc)
    }

    /// Parses the message as the client sent it (without our `Received:` line: contract
    /// §1.8), puts its attachments and the whole message into the route's stores (contract
    /// §3) and builds the route's payload (none when capturing), the CPU work off the async
    /// threads. A store that does not take them fails the build: a temporary failure. The
    /// message comes back only with `keep`: otherwise it is dropped as soon as neither the
    /// stores nor the payload need it, so a large message is not held three times over
    /// (message, decoded parts, payload) while the payload is built.
    async fn build(
        &self,
        route: &Route,
        raw: Vec<u8>,
        mut envelope: PayloadEnvelope,
        received_at: OffsetDateTime,
        keep: bool,
    ) -> Result<(Option<Vec<u8>>, ParsedMessage, Option<Payload>), BuildError> {
        let mut options = self.format_options(Some(route)).await;
        let (raw, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = ParsedMessage::parse(&raw);
            (raw, parsed)
        })
        .await
        .map_err(|_| BuildError::Panicked)?;
        let Destination::Target { format, .. } = &route.destination else {
            return Ok((Some(raw).filter(|_| keep), parsed, None));
        };
        let format = *format;
        let result = stored::store(
            self.objects.as_ref(),
            &route.options,
            stored::Message {
                raw: &raw,
                parsed: &parsed,
                envelope: &envelope,
                received_at,
                options: &options,
            },
        )
        .await;
        let stored = match result {
            Ok(stored) => stored,
            Err(error) => {
                let kept = Some(raw).filter(|_| keep);
                return Err(BuildError::Stored(Box::new(NotStored {
                    error,
                    parsed,
                    kept,
                })));
            }
        };
        options.attachment_urls = stored.attachment_urls;
        envelope.store_url = stored.store_url;
        tokio::task::spawn_blocking(move || {
            let carries_message = matches!(format, Format::Raw | Format::Original);
            let mut raw = Some(raw);
            if !keep && !carries_message {
                raw = None;
            }
            let message = raw.as_deref().unwrap_or_default();
            let payload = format::build(format, &envelope, &parsed, message, &options);
            (raw.filter(|_| keep), parsed, Some(payload))
        })
        .await
        .map_err(|_| BuildError::Panicked)
    }

    /// The route's payload switches. The Original format signs with the address's signing
    /// secret (contract §2.9); a secret that cannot be read is logged, and the POST's own
    /// signature step then fails the same way (invariant 39).
    async fn format_options(&self, route: Option<&Route>) -> format::FormatOptions {
        let Some(route) = route else {
            return format::FormatOptions::default();
        };
        let signature_secret = match &route.destination {
            Destination::Target {
                format: Format::Original,
                ..
            } => {
                let owner = Owner::Address(route.address.clone());
                self.deliverer.current_secret(&owner).await
            }
            _ => None,
        };
        format::FormatOptions {
            signature_secret,
            ..format::FormatOptions::of(&route.options)
        }
    }

    /// POSTs the payload to the route's target (or captures it) with the message's
    /// `Idempotency-Key`: the outcome, the SMTP reply, the target's answer and every request
    /// made, recorded as `kind`.
    async fn post(
        &self,
        route: &Route,
        payload: Option<Payload>,
        idempotency_key: &str,
        kind: &'static str,
    ) -> Posted {
        match (&route.destination, payload) {
            (Destination::Target { url, format }, Some(payload)) => {
                let started = Instant::now();
                let owner = Owner::Address(route.address.clone());
                let options = PostOptions {
                    timeout: route.options.timeout,
                    idempotency_key: Some(idempotency_key),
                    signed_as: Some((&owner, idempotency_key)),
                };
                let delivery = self.deliverer.deliver_with(url, payload, &options).await;
                let status = delivery.outcome.status();
                (self.metrics).target_post(&route.address, status, started.elapsed());
                let reply = reply_for(&delivery.outcome);
                let outcome = match &delivery.outcome {
                    webhook::Outcome::Accepted { .. } => Outcome::Successful,
                    webhook::Outcome::Rejected { .. } => Outcome::Rejected,
                    webhook::Outcome::Deferred { .. } => Outcome::Delayed,
                };
                let attempts = delivery
                    .attempts
                    .into_iter()
                    .map(|a| record(kind, Some(format.as_str()), a))
                    .collect();
                Posted {
                    outcome,
                    reply,
                    result: Some(delivery.outcome),
                    attempts,
                }
            }
            _ => Posted {
                outcome: Outcome::Captured,
                reply: Reply::new(250, "2.0.0", "Message captured"),
                result: None,
                attempts: Vec::new(),
            },
        }
    }

    /// A kept message's row and content, or why there is none to send again.
    async fn kept(&self, id: i64) -> Result<(InboundMeta, Vec<u8>), ResendError> {
        let message = self
            .store
            .get_inbound(id)
            .await?
            .ok_or(ResendError::NotFound)?;
        let raw = self.store.get_inbound_raw(id).await?.ok_or(
            match message.meta.redacted.is_empty() {
                true => ResendError::NotKept,
                false => ResendError::Redacted,
            },
        )?;
        Ok((message.meta, raw))
    }

    /// Sends a kept message (dev mode keeps them) to its address's target again, through
    /// the same build and POST as on arrival, and records the requests on the same message
    /// as `resend` attempts. The message's own row (what its sender was told) is unchanged;
    /// no error callback is made. The POST carries the arrival's `Idempotency-Key`: it is
    /// the same message, and an app that handled it already may drop it.
    pub async fn resend(&self, id: i64) -> Result<Resent, ResendError> {
        let (meta, raw) = self.kept(id).await?;
        let router = self.routes.current();
        let route = meta
            .recipients
            .first()
            .and_then(|r| router.lookup(r).ok())
            .map(|id| router.route(id))
            .filter(|route| matches!(route.destination, Destination::Target { .. }))
            .ok_or(ResendError::NoTarget)?;
        let ip: IpAddr = meta
            .remote_ip
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let (spf, dkim, dmarc) = self
            .verify(route, ip, &meta.helo, &meta.mail_from, &raw)
            .await;
        let envelope = PayloadEnvelope {
            to: meta.recipients[0].clone(),
            recipients: meta.recipients.clone(),
            from: meta.mail_from.clone(),
            helo_domain: meta.helo.clone(),
            remote_ip: meta.remote_ip.clone(),
            tls_version: meta.tls_version.clone(),
            md5: meta.md5.clone(),
            spf,
            dkim,
            dmarc,
            store_url: None,
        };
        let idempotency_key = format::idempotency::key(&envelope);
        // The payload carries the message as it arrived, without the kept copy's trace line.
        let mut raw = raw;
        strip_own_received(&mut raw);
        let received_at = OffsetDateTime::parse(&meta.received_at, &Rfc3339)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let (_, _, payload) = (self.build(route, raw, envelope, received_at, false))
            .await
            .map_err(|error| match error {
                BuildError::Panicked => ResendError::Build,
                BuildError::Stored(not_stored) => ResendError::Stored(not_stored.error.to_string()),
            })?;
        let posted = self.post(route, payload, &idempotency_key, "resend").await;
        let resent = Resent {
            outcome: posted.outcome,
            http_status: posted.result.as_ref().and_then(webhook::Outcome::status),
            reply: posted.reply.to_string(),
        };
        self.store.insert_attempts(id, posted.attempts).await?;
        info!(id, outcome = ?resent.outcome, http_status = ?resent.http_status, "message resent");
        Ok(resent)
    }

    /// The payload a kept message makes for its address (JSON Normalized where nothing is
    /// posted, as in dev mode), rebuilt from the kept content and the envelope and
    /// SPF/DKIM/DMARC results recorded on arrival: what the app got (multipart boundaries
    /// are new each time). For the detail page's Payload tab and replays.
    pub async fn payload(&self, id: i64) -> Result<(Format, Payload), ResendError> {
        let (meta, raw) = self.kept(id).await?;
        self.payload_of(meta, raw).await
    }

    /// [`Inbound::payload`] of a row and kept content already read (the detail page has them).
    pub async fn payload_of(
        &self,
        meta: InboundMeta,
        raw: Vec<u8>,
    ) -> Result<(Format, Payload), ResendError> {
        let router = self.routes.current();
        let route = meta
            .recipients
            .first()
            .and_then(|r| router.lookup(r).ok())
            .map(|id| router.route(id));
        let format = match route.map(|route| &route.destination) {
            Some(Destination::Target { format, .. }) => *format,
            _ => Format::JsonNormalized,
        };
        let options = self.format_options(route).await;
        let checks = meta.authentication.clone().unwrap_or_default();
        fn recorded<T: serde::de::DeserializeOwned>(
            checks: &serde_json::Value,
            name: &str,
        ) -> Option<T> {
            serde_json::from_value(checks[name].clone()).ok()
        }
        let envelope = PayloadEnvelope {
            to: meta.recipients.first().cloned().unwrap_or_default(),
            recipients: meta.recipients.clone(),
            from: meta.mail_from.clone(),
            helo_domain: meta.helo.clone(),
            remote_ip: meta.remote_ip.clone(),
            tls_version: meta.tls_version.clone(),
            md5: meta.md5.clone(),
            spf: recorded(&checks, "spf").unwrap_or(Spf {
                result: "none".into(),
                domain: String::new(),
            }),
            dkim: recorded(&checks, "dkim"),
            dmarc: recorded(&checks, "dmarc"),
            store_url: None,
        };
        let payload = tokio::task::spawn_blocking(move || {
            let raw = without_own_received(&raw);
            let parsed = ParsedMessage::parse(raw);
            format::build(format, &envelope, &parsed, raw, &options)
        })
        .await
        .map_err(|_| ResendError::Build)?;
        Ok((format, payload))
    }

    /// Dev mode's "Post to URL": the message's payload ([`Inbound::payload`]) POSTed to `url`
    /// once, recorded on the message as `repost` attempts. The message's own row is unchanged.
    pub async fn repost(&self, id: i64, url: &TargetUrl) -> Result<Resent, ResendError> {
        let (format, payload) = self.payload(id).await?;
        let delivery = self.deliverer.deliver(url, payload, None).await;
        let resent = Resent {
            outcome: match &delivery.outcome {
                webhook::Outcome::Accepted { .. } => Outcome::Successful,
                webhook::Outcome::Rejected { .. } => Outcome::Rejected,
                _ => Outcome::Delayed,
            },
            http_status: delivery.outcome.status(),
            reply: String::new(),
        };
        let records = delivery
            .attempts
            .into_iter()
            .map(|a| record("repost", Some(format.as_str()), a))
            .collect();
        self.store.insert_attempts(id, records).await?;
        info!(id, url = %url, outcome = ?resent.outcome, http_status = ?resent.http_status, "message posted to a URL");
        Ok(resent)
    }

    /// Tells the address's error callback about a non-2xx delivery (contract §7.2), in the
    /// background so that the SMTP reply does not wait for it; the attempt is recorded.
    fn report_error(
        &self,
        route: &Route,
        message_id: i64,
        (to, from): (&str, &str),
        result: &webhook::Outcome,
    ) {
        let Some(url) = route.options.error_callback.clone() else {
            return;
        };
        let report = ErrorReport {
            status: result.status().unwrap_or(0),
            to,
            from,
            response: result.body(),
        };
        let payload = callback::error(&url, &report);
        let deliverer = self.deliverer.clone();
        let store = self.store.clone();
        let owner = Owner::Address(route.address.clone());
        self.shutdown.spawn(async move {
            let id = callback_id();
            let options = PostOptions {
                signed_as: Some((&owner, &id)),
                ..PostOptions::default()
            };
            let delivery = deliverer.deliver_with(&url, payload, &options).await;
            if !matches!(delivery.outcome, webhook::Outcome::Accepted { .. }) {
                warn!(message_id, url = %url, "error callback failed");
            }
            let records = delivery
                .attempts
                .into_iter()
                .map(|a| record("error_callback", None, a))
                .collect();
            if let Err(e) = store.insert_attempts(message_id, records).await {
                error!(error = %e, "cannot record an error callback");
            }
        });
    }
}

/// The `webhook-id` of a callback: each callback is a request of its own.
fn callback_id() -> String {
    format!("cb_{}", uuid::Uuid::new_v4().simple())
}

/// A recipient refused at RCPT, for its row.
struct Refused<'a> {
    conn: &'a ConnectionInfo,
    transaction: &'a TransactionInfo<'a>,
    address: &'a str,
    started: Instant,
}

impl Inbound {
    /// Records a refusal at RCPT as a row of its own (outcome `refused`, listed with
    /// `status=refused`): who tried, for which recipient, and the reply they got. `route` is
    /// the address that refused it (the authorization callback), if any. A failed write is
    /// logged; the refusal stands either way.
    async fn record_refusal(&self, refused: Refused<'_>, route: Option<&Route>, reply: &Reply) {
        let Refused {
            conn,
            transaction,
            address,
            started,
        } = refused;
        let redact = match route {
            Some(route) => self.settings.redact.union(&route.options.redact),
            None => self.settings.redact.clone(),
        };
        let meta = InboundMeta {
            received_at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .expect("UTC timestamps format as RFC 3339"),
            remote_ip: conn.remote.ip().to_string(),
            helo: transaction.helo.to_string(),
            mail_from: transaction.mail_from.to_string(),
            recipients: vec![address.to_string()],
            address: route.map(|route| route.address.clone()),
            message_id: None,
            subject: None,
            size: 0,
            md5: String::new(),
            tls_version: conn.tls_version.map(str::to_string),
            target: None,
            format: None,
            http_status: None,
            outcome: Outcome::Refused,
            response_body: None,
            error: None,
            smtp_reply: reply.to_string(),
            processing_ms: started.elapsed().as_millis() as u64,
            redacted: Vec::new(),
            authentication: None,
            header_from: None,
            header_to: None,
            header_cc: None,
            attachments: 0,
        }
        .redact(&redact);
        match self.store.insert_inbound(meta, None, Vec::new()).await {
            Ok(id) => info!(id, status = reply.code, reply = %reply, "recipient refused"),
            Err(error) => error!(%error, "cannot record a refused recipient"),
        }
    }
}

/// The MX listener runs under `SessionPolicy::Inbound`: no AUTH, so no identity and no
/// sender check.
impl MailHandler for Inbound {
    type Identity = std::convert::Infallible;

    async fn authenticate(
        &self,
        _conn: &ConnectionInfo,
        _credentials: &Credentials,
    ) -> Result<Self::Identity, Reply> {
        Err(Reply::NOT_IMPLEMENTED)
    }

    /// Past `max_recipients` (`452 4.5.3`): recorded like the other refusals, once per
    /// transaction.
    async fn recipient_refused(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
        reply: &Reply,
    ) {
        let router = self.routes.current();
        let route = router.lookup(address).ok().map(|id| router.route(id));
        let refused = Refused {
            conn,
            transaction: &transaction,
            address,
            started: Instant::now(),
        };
        self.record_refusal(refused, route, reply).await;
    }

    async fn check_sender(
        &self,
        _conn: &ConnectionInfo,
        identity: &Self::Identity,
        _address: &str,
    ) -> Result<(), Reply> {
        match *identity {}
    }

    async fn check_recipient(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
    ) -> Result<Option<SizeLimit>, Reply> {
        let started = Instant::now();
        let router = self.routes.current();
        let id = match router.lookup(address) {
            Ok(id) => id,
            Err(refusal) => {
                let reply = match refusal {
                    Refusal::NoSuchAddress => Reply::NO_SUCH_USER,
                    // The dashboard and the sender both see that a regexp refused it
                    // (contract §4.3).
                    Refusal::AuthRegex => Reply::new(
                        550,
                        "5.7.1",
                        "Recipient address rejected by the domain's regexp",
                    ),
                };
                let refused = Refused {
                    conn,
                    transaction: &transaction,
                    address,
                    started,
                };
                self.record_refusal(refused, None, &reply).await;
                return Err(reply);
            }
        };
        // One POST per transaction: a recipient of another address waits for its own.
        if let Some(first) = transaction.recipients.first()
            && router.lookup(first) != Ok(id)
        {
            return Err(Reply::SEPARATE_TRANSACTION);
        }
        let route = router.route(id);
        if let Some(url) = &route.options.auth_callback
            && let Err(reply) = self
                .authorize(route, url, conn, &transaction, address)
                .await
        {
            let refused = Refused {
                conn,
                transaction: &transaction,
                address,
                started,
            };
            self.record_refusal(refused, Some(route), &reply).await;
            return Err(reply);
        }
        Ok(route.options.max_message_size.map(|max| SizeLimit {
            max,
            message: route
                .options
                .size_exceeded_message
                .clone()
                .unwrap_or_else(|| {
                    format!("Message exceeds the maximum size of {max} bytes for this address")
                }),
        }))
    }

    async fn handle_message(
        &self,
        conn: &ConnectionInfo,
        _identity: Option<&Self::Identity>,
        envelope: Envelope,
        content: Content,
    ) -> Reply {
        let started = Instant::now();
        let body = match content.into_bytes().await {
            Ok(body) => body,
            Err(error) => {
                error!(%error, "cannot read a spooled message back");
                return Reply::SPOOL_ERROR;
            }
        };
        let received_at = OffsetDateTime::now_utc();
        let router = self.routes.current();
        let Some(route) = envelope
            .recipients
            .first()
            .and_then(|r| router.lookup(r).ok())
            .map(|id| router.route(id))
        else {
            // check_recipient accepted every recipient: the address was removed through the
            // API since. The sender tries again later and then gets the new answer.
            warn!(recipients = ?envelope.recipients, "the address of an accepted recipient was removed during the transaction");
            return Reply::new(451, "4.3.0", "Local error in processing, try again later");
        };
        let arrival = Arrival {
            conn,
            envelope: &envelope,
            received_at,
            size: body.len() as u64,
            md5: format!("{:x}", Md5::digest(&body)),
            started,
        };
        let payload_envelope = self.payload_envelope(route, &arrival, &body).await;
        if route.options.delivery == DeliveryMode::Queued
            && matches!(route.destination, Destination::Target { .. })
        {
            return self.enqueue(route, &arrival, body, payload_envelope).await;
        }
        let idempotency_key = format::idempotency::key(&payload_envelope);
        let authentication = payload_envelope.authentication();
        // The payload carries the message as it arrived; our trace line goes into the kept
        // copy only (made after the target answered: one copy while it is waited for).
        let keep = self.keeps_content(route);
        let built = (self.build(route, body, payload_envelope, received_at, keep)).await;
        let (body, parsed, posted) = match built {
            Ok((body, parsed, payload)) => {
                let posted = self.post(route, payload, &idempotency_key, "target").await;
                (body, parsed, posted)
            }
            Err(BuildError::Panicked) => {
                error!("building the payload panicked");
                return Reply::new(451, "4.3.0", "Local error in processing, try again later");
            }
            // A store that does not take the message: like a target that does not answer,
            // the sender tries again later (450), and the row says why.
            Err(BuildError::Stored(not_stored)) => {
                let NotStored {
                    error,
                    parsed,
                    kept,
                } = *not_stored;
                let reason = error.to_string();
                let result = webhook::Outcome::Deferred {
                    status: None,
                    body: String::new(),
                    reason,
                };
                let posted = Posted {
                    outcome: Outcome::Delayed,
                    reply: reply_for(&result),
                    result: Some(result),
                    attempts: Vec::new(),
                };
                (kept, parsed, posted)
            }
        };
        let meta = arrival.meta(route, &parsed, &posted, authentication);
        let kept = body.map(|body| {
            let raw =
                with_received_header(&body, &envelope, conn, &self.settings.hostname, received_at);
            Kept::new(raw, parsed.into_text())
        });
        self.record(route, &envelope, meta, kept, posted).await
    }
}

/// One message as it arrived on the MX listener, for its payload and its row.
struct Arrival<'a> {
    conn: &'a ConnectionInfo,
    envelope: &'a Envelope,
    received_at: OffsetDateTime,
    /// Of the message as the client sent it (without our `Received:` line).
    size: u64,
    md5: String,
    started: Instant,
}

impl Arrival<'_> {
    /// The message's row: what the target answered and what the sender was told.
    fn meta(
        &self,
        route: &Route,
        parsed: &ParsedMessage,
        posted: &Posted,
        authentication: serde_json::Value,
    ) -> InboundMeta {
        let (target, format) = match &route.destination {
            Destination::Target { url, format } => {
                (Some(url.to_string()), Some(format.as_str().to_string()))
            }
            Destination::Capture => (None, None),
        };
        let result = posted.result.as_ref();
        InboundMeta {
            received_at: self
                .received_at
                .format(&Rfc3339)
                .expect("UTC timestamps format as RFC 3339"),
            remote_ip: self.conn.remote.ip().to_string(),
            helo: self.envelope.helo.clone(),
            mail_from: self.envelope.mail_from.clone(),
            recipients: self.envelope.recipients.clone(),
            address: Some(route.address.clone()),
            message_id: parsed.header("message-id").map(str::to_string),
            subject: parsed.header("subject").map(str::to_string),
            size: self.size,
            md5: self.md5.clone(),
            tls_version: self.conn.tls_version.map(str::to_string),
            target,
            format,
            http_status: result.and_then(webhook::Outcome::status),
            outcome: posted.outcome,
            response_body: result.map(|r| r.body().to_string()),
            error: match result {
                Some(webhook::Outcome::Deferred { reason, .. }) => Some(reason.clone()),
                _ => None,
            },
            smtp_reply: posted.reply.to_string(),
            processing_ms: self.started.elapsed().as_millis() as u64,
            redacted: Vec::new(),
            authentication: Some(authentication),
            header_from: parsed.header("from").map(str::to_string),
            header_to: parsed.header("to").map(str::to_string),
            header_cc: parsed.header("cc").map(str::to_string),
            attachments: parsed.attachments.len() as u32,
        }
    }
}

impl Inbound {
    /// The envelope every payload carries, with the SPF/DKIM/DMARC results the route asks
    /// for (checked over `body`, the message as sent).
    async fn payload_envelope(
        &self,
        route: &Route,
        arrival: &Arrival<'_>,
        body: &[u8],
    ) -> PayloadEnvelope {
        let (conn, envelope) = (arrival.conn, arrival.envelope);
        let (spf, dkim, dmarc) = self
            .verify(
                route,
                conn.remote.ip(),
                &envelope.helo,
                &envelope.mail_from,
                body,
            )
            .await;
        PayloadEnvelope {
            to: envelope.recipients[0].clone(),
            recipients: envelope.recipients.clone(),
            from: envelope.mail_from.clone(),
            helo_domain: envelope.helo.clone(),
            remote_ip: conn.remote.ip().to_string(),
            tls_version: conn.tls_version.map(str::to_string),
            md5: arrival.md5.clone(),
            spf,
            dkim,
            dmarc,
            store_url: None,
        }
    }

    /// Whether a message for `route` is kept (dev mode keeps all, a capture route keeps
    /// what it captures), unless redaction is on for it: the raw message holds every field.
    fn keeps_content(&self, route: &Route) -> bool {
        let redact = self.settings.redact.union(&route.options.redact);
        (self.settings.keep_raw || matches!(route.destination, Destination::Capture))
            && redact.is_empty()
    }

    /// Writes the message's row (with the raw message when kept) and its attempts, and
    /// starts the error callback for a non-2xx answer; returns the SMTP reply.
    async fn record(
        &self,
        route: &Route,
        envelope: &Envelope,
        meta: InboundMeta,
        kept: Option<Kept>,
        posted: Posted,
    ) -> Reply {
        let Posted {
            outcome,
            reply,
            result,
            mut attempts,
        } = posted;
        let summary = (meta.outcome, meta.http_status, meta.processing_ms);
        // Per-address lists add to the instance's; the raw message holds every field, so
        // it is not kept when any is redacted.
        let redact = self.settings.redact.union(&route.options.redact);
        let meta = meta.redact(&redact);
        if redact.contains(Field::ServerResponse) {
            attempts.iter_mut().for_each(|a| a.response_body.clear());
        }
        match self.store.insert_inbound(meta, kept, attempts).await {
            Ok(id) => {
                info!(id, address = %route.address, status = reply.code, outcome = ?summary.0, http_status = summary.1, ms = summary.2, reply = %reply, "message handled");
                if let Some(result) = &result
                    && !matches!(result, webhook::Outcome::Accepted { .. })
                {
                    let sender = (envelope.recipients[0].as_str(), envelope.mail_from.as_str());
                    self.report_error(route, id, sender, result);
                }
                reply
            }
            // A captured message exists only in the store: without the row it is not kept.
            Err(e) if outcome == Outcome::Captured => {
                error!(error = %e, "cannot store a captured message");
                Reply::new(451, "4.3.0", "Local storage error, try again later")
            }
            // The app has the message; losing its metadata row must not make the sender
            // deliver it twice.
            Err(e) => {
                error!(error = %e, "cannot record message metadata; replying as the target decided");
                reply
            }
        }
    }
}

/// Why [`Inbound::build`] made no payload.
#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("building the payload panicked")]
    Panicked,
    /// The address's attachment or message store did not take the message.
    #[error("{}", .0.error)]
    Stored(Box<NotStored>),
}

/// A message its address's store did not take: the store's error, and the message as
/// parsed (and kept, where it is) for its row — not parsed or copied a second time.
#[derive(Debug)]
struct NotStored {
    error: crate::objects::ObjectError,
    parsed: ParsedMessage,
    kept: Option<Vec<u8>>,
}

/// What [`Inbound::post`] did.
struct Posted {
    outcome: Outcome,
    reply: Reply,
    /// The target's answer; `None` when captured.
    result: Option<webhook::Outcome>,
    attempts: Vec<AttemptRecord>,
}

/// The result of [`Inbound::resend`].
#[derive(Debug, Clone)]
pub struct Resent {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    /// The SMTP reply this answer would have given.
    pub reply: String,
}

/// Why [`Inbound::resend`] could not send a message again.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("no such message")]
    NotFound,
    #[error("the message itself is not kept (only dev mode keeps it)")]
    NotKept,
    /// Redaction is on for the message (`privacy.redact` or its address's `redact`): the
    /// raw message would hold the redacted fields, so it was not kept.
    #[error(
        "the message itself is not kept: some of its fields are redacted (privacy.redact), \
         so it cannot be resent; ask the sender to send it again"
    )]
    Redacted,
    #[error("the message's address has no target to send it to")]
    NoTarget,
    #[error("building the payload failed")]
    Build,
    /// The address's attachment or message store did not take the message.
    #[error("{0}")]
    Stored(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A delivery attempt as the store keeps it.
fn record(kind: &'static str, format: Option<&str>, attempt: Attempt) -> AttemptRecord {
    let started_at = OffsetDateTime::from(attempt.started_at.max(SystemTime::UNIX_EPOCH));
    AttemptRecord {
        kind: kind.to_string(),
        url: attempt.url,
        format: format.map(str::to_string),
        http_status: attempt.status,
        response_body: attempt.body,
        error: attempt.error,
        started_at: started_at
            .format(&Rfc3339)
            .expect("UTC timestamps format as RFC 3339"),
        duration_ms: attempt.duration.as_millis() as u64,
    }
}

/// The SMTP reply for a target's answer (contract §2.1, design §4.1).
pub fn reply_for(outcome: &webhook::Outcome) -> Reply {
    match outcome {
        webhook::Outcome::Accepted { status, .. } => Reply::owned(
            250,
            "2.0.0",
            format!("Message accepted by the target (HTTP {status})"),
        ),
        webhook::Outcome::Rejected {
            status, reply_text, ..
        } => {
            let text = reply_text
                .as_deref()
                .map(sanitize_reply_text)
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Message rejected by the target (HTTP {status})"));
            Reply::owned(554, "5.0.0", text)
        }
        webhook::Outcome::Deferred { reason, .. } => {
            warn!(
                reason,
                "target did not accept the message; sender will retry"
            );
            Reply::owned(
                450,
                "4.3.0",
                format!(
                    "Target temporarily unavailable ({}), try again later",
                    sanitize_reply_text(reason)
                ),
            )
        }
    }
}

/// One line of printable text, at most [`MAX_REPLY_TEXT`] characters.
fn sanitize_reply_text(text: &str) -> String {
    let mut line = String::with_capacity(text.len().min(MAX_REPLY_TEXT));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if line.chars().count() >= MAX_REPLY_TEXT {
            break;
        }
        line.push(c);
    }
    line.trim_end().to_string()
}

/// `envelope.spf.domain`: the MAIL FROM domain, or the HELO name for the null sender.
fn spf_domain(helo: &str, mail_from: &str) -> String {
    mail_from
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_ascii_lowercase())
        .unwrap_or_else(|| helo.to_ascii_lowercase())
}

/// The `Received:` trace field for a message of this session, in front of `body`.
fn with_received_header(
    body: &[u8],
    envelope: &Envelope,
    conn: &ConnectionInfo,
    hostname: &str,
    at: OffsetDateTime,
) -> Vec<u8> {
    let trace = Trace {
        helo: &envelope.helo,
        remote_ip: conn.remote.ip(),
        by: hostname,
        tls: conn.tls_version.is_some(),
        at,
    };
    with_received(body, &trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_mapping() {
        let accepted = webhook::Outcome::Accepted {
            status: 201,
            body: String::new(),
        };
        assert_eq!(reply_for(&accepted).code, 250);
        let rejected = webhook::Outcome::Rejected {
            status: 422,
            body: "no\r\nsuch user".into(),
            reply_text: Some("no\r\nsuch\tuser".into()),
        };
        let reply = reply_for(&rejected);
        assert_eq!((reply.code, reply.text.as_ref()), (554, "no such user"));
        let html = webhook::Outcome::Rejected {
            status: 404,
            body: "<h1>x</h1>".into(),
            reply_text: None,
        };
        assert_eq!(
            reply_for(&html).text,
            "Message rejected by the target (HTTP 404)"
        );
        let deferred = webhook::Outcome::Deferred {
            status: Some(503),
            body: String::new(),
            reason: "target answered HTTP 503".into(),
        };
        assert_eq!(reply_for(&deferred).code, 450);
    }

    #[test]
    fn reply_text_is_bounded() {
        let long = "x".repeat(5000);
        assert_eq!(sanitize_reply_text(&long).len(), MAX_REPLY_TEXT);
        assert_eq!(sanitize_reply_text("a\u{0}\u{7}b"), "a b");
    }
}
