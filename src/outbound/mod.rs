//! Outbound mail: what apps send through Postern (contract §6).
//!
//! [`Outbound`] is the service both entry points share — the HTTP send API
//! (`web::send_api`) and SMTP submission — so a message is checked and queued the same way
//! whichever way it came: the credential authenticates (`credentials`), the request becomes
//! bytes (`compose`; a message given as bytes, SMTP's or the API's `raw`, is checked by
//! `raw_message`), the sender is checked against the credential and the sending
//! domains, and the store commits message + recipients durably before the caller answers
//! 202 or 250 (design §4.2).
//!
//! After enqueueing: `events` (the events webhook: batches, retries), `bounce` (mail to
//! the return path: DSNs, plain-text bounces, replies; `return_path` takes it off the MX
//! listener), `suppression` (the list no mail
//! goes to), `tracking` (open pixel, click redirects and their tokens).

pub mod bounce;
pub mod complaint;
pub mod compose;
pub mod credentials;
pub mod dkim;
pub mod dns_check;
pub mod domains;
pub mod events;
pub mod mta_sts;
pub mod mx;
pub mod raw_message;
pub mod return_path;
pub mod submission;
pub mod suppression;
pub mod tracking;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, OnceCell};

use crate::clock::Clock;
use crate::config::Redaction;
use crate::metrics::Metrics;
use crate::store::{
    CredentialMode, CredentialRow, Disposition, NewOutbound, Source, Store, StoreError,
};
pub use compose::{ComposeError, Composed, SendRequest};
pub use credentials::{Credential, CredentialError, NewCredentialSpec};
pub use raw_message::RawError;
pub use return_path::{ReturnMailSettings, WithReturnPath};
pub use submission::Submission;

/// What happens to accepted mail on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundMode {
    /// `serve`: the queue delivers; senders need a sending domain; credentials are checked.
    Deliver,
    /// `postern dev`: any credential is accepted and mail is captured for the dashboard.
    Capture,
}

/// Why a message was not accepted. Each maps to one HTTP status and one SMTP reply.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Invalid(#[from] ComposeError),
    #[error(
        "sending domain {0} is not set up: add it with `postern sending-domain add {0}` \
         and publish its DNS records"
    )]
    UnknownDomain(String),
    #[error("the queue could not store the message; nothing was accepted, try again")]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// The send API's status for this error (contract §6.2: 401, 403, 422; 500 for the store).
    pub fn http_status(&self) -> u16 {
        match self {
            SubmitError::Unauthorized => 401,
            // A raw message's From or Sender the credential may not use, as for `from`.
            SubmitError::Forbidden(_)
            | SubmitError::Invalid(ComposeError::Raw(RawError::Forbidden { .. })) => 403,
            SubmitError::Invalid(_) | SubmitError::UnknownDomain(_) => 422,
            SubmitError::Store(_) => 500,
        }
    }

    /// Whether trying again later can succeed (SMTP 4xx rather than 5xx).
    pub fn is_temporary(&self) -> bool {
        matches!(self, SubmitError::Store(_))
    }
}

/// The 202 body: the message's common fields (contract §6.2), `to`, `cc` and `tags` always
/// arrays; `id` is the UUID used in events and in the SMTP "Queued as" reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub test_mode: bool,
    pub subject: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone)]
pub struct Outbound {
    store: Store,
    clock: Clock,
    mode: OutboundMode,
    expiry: Duration,
    /// Poked after every enqueue so the delivery worker sends new mail at once.
    wake: Arc<Notify>,
    /// `postern dev --relay`: capture mode's open door, but mail is queued for delivery.
    dev_relay: bool,
    /// Poked whenever events are written, so the events webhook sends them at once.
    events: Arc<Notify>,
    /// The public base URL of the tracking routes, without a trailing `/`.
    tracking_url: Arc<str>,
    /// The instance's `tracking_key`, read (or made) on first use.
    tracking_key: Arc<OnceCell<Vec<u8>>>,
    /// `privacy.redact_outbound`: fields of sent mail never stored.
    redact: Redaction,
    /// `[delivery] require_https`: events URLs must be `https://` off loopback.
    require_https: bool,
    /// The worker's attempt results and the bounces return mail reports are counted here.
    metrics: Metrics,
}

impl Outbound {
    pub fn new(store: Store, clock: Clock, mode: OutboundMode, expiry: Duration) -> Outbound {
        Outbound {
            store,
            clock,
            mode,
            expiry,
            wake: Arc::new(Notify::new()),
            dev_relay: false,
            events: Arc::new(Notify::new()),
            tracking_url: Arc::from("http://localhost"),
            tracking_key: Arc::new(OnceCell::new()),
            redact: Redaction::default(),
            require_https: false,
            metrics: Metrics::default(),
        }
    }

    /// The instance's metrics (a private registry otherwise).
    pub fn with_metrics(mut self, metrics: Metrics) -> Outbound {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `[delivery] require_https`: refuse plain `http://` events URLs off loopback.
    pub fn with_require_https(mut self, require_https: bool) -> Outbound {
        self.require_https = require_https;
        self
    }

    /// `privacy.redact_outbound`: what the rows of sent mail leave out.
    pub fn with_redaction(mut self, redact: Redaction) -> Outbound {
        self.redact = redact;
        self
    }

    /// `postern dev --relay`: in capture mode, queue mail for delivery (through the relay)
    /// instead of only capturing it.
    pub fn with_dev_relay(mut self) -> Outbound {
        self.dev_relay = true;
        self
    }

    /// Whether accepted mail is queued for the delivery worker.
    pub fn delivers(&self) -> bool {
        self.mode == OutboundMode::Deliver || self.dev_relay
    }

    /// Makes the delivery worker look at the queue now (enqueue does it; tests that move
    /// the clock do it too).
    pub fn wake_worker(&self) {
        self.wake.notify_one();
    }

    /// Sets the public base URL of the tracking routes (`[outbound] tracking_url`).
    pub fn with_tracking_url(mut self, url: &str) -> Outbound {
        self.tracking_url = Arc::from(url.trim_end_matches('/'));
        self
    }

    pub fn tracking_url(&self) -> &str {
        &self.tracking_url
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Call after writing `outbound_events` rows: wakes the events webhook, which sends
    /// what is due at once instead of at its next scheduled look.
    pub fn events_written(&self) {
        self.events.notify_one();
    }

    /// What the events webhook waits on (see [`Outbound::events_written`]).
    pub(crate) fn events_notify(&self) -> Arc<Notify> {
        self.events.clone()
    }

    pub fn mode(&self) -> OutboundMode {
        self.mode
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Unix seconds on this service's clock.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// `POST /api/v0.1/{username}/messages`: authenticate, compose, check, enqueue.
    pub async fn send_api(
        &self,
        username: &str,
        token: &str,
        request: SendRequest,
        remote_ip: Option<String>,
    ) -> Result<Accepted, SubmitError> {
        let credential = self.authenticate(username, token).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut composed = compose::compose(request, &credential, &uuid, self.clock.unix())?;
        if !composed.tags.iter().any(|tag| tag == "api") {
            composed.tags.push("api".into());
        }
        self.enqueue(&credential, uuid, composed, Source::Api, remote_ip)
            .await
    }

    /// Checks `username` + `token` (the API's bearer token is the SMTP password). In
    /// capture mode any pair is accepted and an unknown username is created on the spot.
    pub async fn authenticate(
        &self,
        username: &str,
        token: &str,
    ) -> Result<Credential, SubmitError> {
        credentials::authenticate(self, username, token).await
    }

    /// Checks the sender and durably queues a composed message; shared by the API and SMTP
    /// submission. Returns once the message and its recipients are committed.
    pub async fn enqueue(
        &self,
        credential: &Credential,
        uuid: String,
        composed: Composed,
        source: Source,
        remote_ip: Option<String>,
    ) -> Result<Accepted, SubmitError> {
        let sender = &composed.from.address;
        if !credential.may_send_as(sender) {
            return Err(SubmitError::Forbidden(format!(
                "credential {} may not send as {sender}",
                credential.username
            )));
        }
        let from_domain = crate::mail::address::domain_of(sender);
        let return_path_domain = match self.store.return_path_domain(&from_domain).await? {
            Some(domain) => domain,
            None if self.mode == OutboundMode::Capture => from_domain.clone(),
            None => return Err(SubmitError::UnknownDomain(from_domain)),
        };
        let test_mode = composed.test_mode || credential.mode == CredentialMode::Test;
        let disposition = match (self.mode, test_mode) {
            (_, true) => Disposition::Test,
            (OutboundMode::Capture, false) if self.dev_relay => Disposition::Deliver,
            (OutboundMode::Capture, false) => Disposition::Capture,
            (OutboundMode::Deliver, false) => Disposition::Deliver,
        };
        let now = self.clock.unix();
        let accepted = Accepted {
            id: uuid.clone(),
            from: composed.from.to_string(),
            to: composed.to,
            cc: composed.cc,
            test_mode,
            subject: composed.subject.clone(),
            tags: composed.tags.clone(),
        };
        self.store
            .enqueue(
                NewOutbound {
                    envelope_from: format!("bounces+{uuid}@{return_path_domain}"),
                    uuid,
                    credential_id: Some(credential.id),
                    username: credential.username.clone(),
                    source,
                    header_from: composed.from.to_string(),
                    subject: composed.subject,
                    tags: composed.tags,
                    priority: composed.priority,
                    test_mode,
                    // The request's `track_opens`/`track_clicks` win over the credential's.
                    track_opens: composed.track_opens.unwrap_or(credential.track_opens),
                    track_clicks: composed.track_clicks.unwrap_or(credential.track_clicks),
                    require_tls: composed.require_tls,
                    raw: composed.raw,
                    remote_ip,
                    recipients: composed.recipients,
                    disposition,
                    webhook: credential.events_url.is_some(),
                    created_at: now,
                    expires_at: now + self.expiry.as_secs() as i64,
                    redacted: Vec::new(),
                }
                .redact(&self.redact),
            )
            .await?;
        self.wake.notify_one();
        // Registration (or suppressed) events are written with the message.
        self.events_written();
        Ok(accepted)
    }
}

impl From<CredentialRow> for Credential {
    fn from(row: CredentialRow) -> Credential {
        Credential {
            id: row.id,
            username: row.username,
            prefix: row.prefix,
            mode: row.mode,
            allowed_senders: row.allowed_senders,
            events_url: row.events_url,
            track_opens: row.track_opens,
            track_clicks: row.track_clicks,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}
