//! Store-and-forward (`delivery = "queued"`, README "Delivery modes"): the message is
//! committed durably (row, sealed content and queue entry, `synchronous = FULL`) and the
//! sender gets 250 at once; this worker then POSTs the payload sync mode would have sent
//! (same format, same `Idempotency-Key`, same signature), from the kept content and the
//! envelope as checked on arrival.
//!
//! A 2xx ends it (`successful`); a 4xx too (`rejected`: final, no bounce — the sender is
//! gone — and the error callback is told); a 5xx, a timeout or an unreachable app is tried
//! again after [`backoff`] (1 min doubling to 8 h) until `[delivery] queue_expiry_hours`,
//! then the message is `failed` (the error callback is told) and waits for "retry now" or
//! "discard". A POST in flight holds a lease; a crash leaves it leased, and the next start
//! frees every lease, so a 250'd message is POSTed at least once.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::format::{self, PayloadEnvelope};
use super::route::Destination;
use super::{Arrival, Inbound, Posted, Route};
use crate::mail::fields::{Trace, prepend_received, strip_own_received};
use crate::mail::message::ParsedMessage;
use crate::shutdown::Shutdown;
use crate::smtp::Reply;
use crate::smtp::budget::Reservation;
use crate::store::{Finished, Kept, LeasedInbound, Outcome, StoreError};
use crate::webhook;

/// Entries leased (and POSTed in parallel) per round.
const ROUND: u32 = 16;
/// The longest a queued message waits for room in the memory budget.
const MEMORY_WAIT: Duration = Duration::from_secs(600);
/// The first retry's wait; each next one doubles, up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(60);
const LONGEST_WAIT: Duration = Duration::from_secs(8 * 3600);
/// The longest the worker sleeps without looking (a rotation of the manual clock in tests,
/// a retry made due from another process).
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// The wait after the `tries`-th failed try: 1 min, 2 min, 4 min … 8 h.
pub fn backoff(tries: i64) -> Duration {
    let doublings = tries.clamp(1, 20) - 1;
    (FIRST_WAIT * 2u32.pow(doublings as u32)).min(LONGEST_WAIT)
}

impl Inbound {
    /// Commits a `queued` address's message with its queue entry and answers 250; 451 when
    /// that cannot be done (nothing was promised).
    pub(super) async fn enqueue(
        &self,
        route: &Route,
        arrival: &Arrival<'_>,
        body: Vec<u8>,
        envelope: PayloadEnvelope,
    ) -> Reply {
        let Ok((body, parsed)) = tokio::task::spawn_blocking(move || {
            let mut parsed = ParsedMessage::parse(&body);
            // The row needs the attachments' count, not their content: not held twice
            // while the message is sealed and written.
            for attachment in &mut parsed.attachments {
                attachment.content = Vec::new();
            }
            (body, parsed)
        })
        .await
        else {
            error!("parsing a queued message panicked");
            return Reply::new(451, "4.3.0", "Local error in processing, try again later");
        };
        let reply = Reply::new(250, "2.0.0", "Message queued for delivery to the target");
        let posted = Posted {
            outcome: Outcome::Queued,
            reply: reply.clone(),
            result: None,
            attempts: Vec::new(),
        };
        let meta = arrival.meta(route, &parsed, &posted, envelope.authentication());
        // The content is kept until it is POSTed whatever the redaction; the row is redacted
        // as always, and the preview (content) only where nothing is.
        let redact = self.settings.redact.union(&route.options.redact);
        let meta = meta.redact(&redact);
        // The parse goes before the trace line is put in front (one copy of the message at
        // a time), and the text body only as far as the preview and the index read it.
        let text = redact.is_empty().then(|| parsed.into_text()).flatten();
        let mut kept = Kept::new(body, text);
        let trace = Trace {
            helo: &arrival.envelope.helo,
            remote_ip: arrival.conn.remote.ip(),
            by: &self.settings.hostname,
            tls: arrival.conn.tls_version.is_some(),
            at: arrival.received_at,
        };
        prepend_received(&mut kept.raw, &trace);
        let now = self.clock.unix();
        let expires_at = now + self.settings.queue_expiry.as_secs() as i64;
        let envelope = serde_json::to_string(&envelope).expect("the envelope serialises");
        match (self.store)
            .enqueue_inbound(meta, kept, envelope, now, expires_at)
            .await
        {
            Ok(id) => {
                info!(id, address = %route.address, "message queued for its target");
                self.queue_wake.notify_one();
                reply
            }
            Err(error) => {
                error!(%error, "cannot queue a message");
                Reply::new(451, "4.3.0", "Local storage error, try again later")
            }
        }
    }

    /// POSTs one leased entry and records how it went.
    async fn deliver_queued(&self, entry: LeasedInbound) -> Result<(), StoreError> {
        let id = entry.message_id;
        let tries = entry.attempts + 1;
        let envelope: PayloadEnvelope = match serde_json::from_str(&entry.envelope) {
            Ok(envelope) => envelope,
            Err(error) => {
                let why = format!("the queued envelope does not read: {error}");
                return self.give_up(id, why).await;
            }
        };
        let row = self.store.get_inbound(id).await?;
        // Room in the memory budget first: up to 16 entries are POSTed at once.
        let size = row.as_ref().map_or(0, |message| message.meta.size as usize);
        let _held = self.hold_memory(size).await;
        let Some(mut raw) = self.store.get_inbound_raw(id).await? else {
            return self
                .give_up(id, "the message's content is gone".into())
                .await;
        };
        let router = self.routes.current();
        let route = envelope
            .recipients
            .first()
            .and_then(|r| router.lookup(r).ok())
            .map(|id| router.route(id))
            .filter(|route| matches!(route.destination, Destination::Target { .. }));
        let Some(route) = route else {
            let why = "no address with a target routes this message now".to_string();
            return self
                .try_later(id, tries, entry.expires_at, why, Vec::new(), None)
                .await;
        };
        let idempotency_key = format::idempotency::key(&envelope);
        let (to, from) = (envelope.to.clone(), envelope.from.clone());
        // The message as it arrived: our trace line cut off in place (no second copy).
        strip_own_received(&mut raw);
        let received_at = row
            .and_then(|message| OffsetDateTime::parse(&message.meta.received_at, &Rfc3339).ok())
            .unwrap_or_else(|| self.clock.now());
        let payload = match self.build(route, raw, envelope, received_at, false).await {
            Ok((_, _, payload)) => payload,
            // A panic, or a store that does not take the message: tried again later.
            Err(error) => {
                return self
                    .try_later(
                        id,
                        tries,
                        entry.expires_at,
                        error.to_string(),
                        Vec::new(),
                        None,
                    )
                    .await;
            }
        };
        let posted = self.post(route, payload, &idempotency_key, "queued").await;
        let result = posted.result.clone();
        match (posted.outcome, &result) {
            (Outcome::Successful | Outcome::Rejected, Some(answer)) => {
                let finished = Finished {
                    outcome: posted.outcome,
                    http_status: answer.status(),
                    response_body: Some(answer.body().to_string()),
                    keep_content: self.settings.keep_raw
                        && self.settings.redact.union(&route.options.redact).is_empty(),
                };
                self.store
                    .finish_inbound(id, finished, posted.attempts)
                    .await?;
                info!(id, tries, outcome = ?posted.outcome, http_status = ?answer.status(), "queued message posted");
                if posted.outcome == Outcome::Rejected {
                    self.report_error(route, id, (&to, &from), answer);
                }
                Ok(())
            }
            _ => {
                let why = match &result {
                    Some(webhook::Outcome::Deferred { reason, .. }) => reason.clone(),
                    Some(other) => format!("HTTP {}", other.status().unwrap_or(0)),
                    None => "nothing was posted".to_string(),
                };
                let report = result.map(|answer| (route, (to, from), answer));
                self.try_later(id, tries, entry.expires_at, why, posted.attempts, report)
                    .await
            }
        }
    }

    /// Takes what handling `size` octets costs from the memory budget, waiting up to
    /// [`MEMORY_WAIT`] for room; past that the entry goes ahead anyway (and says so), as
    /// it holds a lease other workers cannot take.
    async fn hold_memory(&self, size: usize) -> Option<Reservation> {
        let budget = self.memory.as_ref()?;
        let deadline = tokio::time::Instant::now() + MEMORY_WAIT;
        let held = budget.wait_to_handle(size, deadline).await;
        if held.is_none() {
            warn!(
                size,
                "no room in the memory budget for a queued message; posting it anyway"
            );
        }
        held
    }

    /// A temporary failure: the next try after [`backoff`], or `failed` past the expiry
    /// (then the error callback hears of it).
    async fn try_later(
        &self,
        id: i64,
        tries: i64,
        expires_at: i64,
        why: String,
        records: Vec<crate::store::AttemptRecord>,
        report: Option<(&Route, (String, String), webhook::Outcome)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.unix();
        let next_at = now + backoff(tries).as_secs() as i64;
        let failed = next_at > expires_at;
        (self.store)
            .reschedule_inbound(id, next_at, why.clone(), failed, records)
            .await?;
        if failed {
            warn!(id, tries, reason = %why, "queued message failed: retries exhausted");
            if let Some((route, (to, from), answer)) = report {
                self.report_error(route, id, (&to, &from), &answer);
            }
        } else {
            info!(id, tries, reason = %why, next_in_secs = next_at - now, "queued message: POST failed, retrying");
        }
        Ok(())
    }

    /// A message that can never be POSTed as it is: `failed` at once.
    async fn give_up(&self, id: i64, why: String) -> Result<(), StoreError> {
        error!(id, reason = %why, "queued message failed");
        let now = self.clock.unix();
        (self.store)
            .reschedule_inbound(id, now, why, true, Vec::new())
            .await
    }

    /// "Retry now" (dashboard, API): a queued or failed message is due at once, and kept for
    /// at least another expiry period; false when it is not in the queue.
    pub async fn retry_queued_now(&self, id: i64) -> Result<bool, StoreError> {
        let now = self.clock.unix();
        let expires_at = now + self.settings.queue_expiry.as_secs() as i64;
        let retried = self.store.retry_inbound_now(id, now, expires_at).await?;
        if retried {
            self.queue_wake.notify_one();
        }
        Ok(retried)
    }

    /// "Discard" (dashboard, API): the message leaves the queue and its content is deleted;
    /// false when it is not in the queue (or its POST is being made right now).
    pub async fn discard_queued(&self, id: i64) -> Result<bool, StoreError> {
        self.store.discard_inbound(id).await
    }
}

/// Runs until the shutdown: frees the leases a previous process left, then POSTs what is
/// due, sleeping until woken (a message queued, "retry now") or the next entry is due.
pub async fn run(inbound: Arc<Inbound>, shutdown: Shutdown) {
    match inbound
        .store
        .release_inbound_leases(inbound.clock.unix())
        .await
    {
        Ok(0) => {}
        Ok(freed) => info!(
            freed,
            "inbound queue: POSTs cut short by the last stop are due again"
        ),
        Err(error) => warn!(%error, "inbound queue: cannot free old leases"),
    }
    loop {
        let wait = match run_once(&inbound).await {
            Ok(taken) if taken > 0 => Duration::ZERO,
            Ok(_) => match inbound.store.next_inbound_due().await {
                Ok(Some(at)) => Duration::from_secs((at - inbound.clock.unix()).max(0) as u64),
                Ok(None) => IDLE_WAKE,
                Err(error) => {
                    warn!(%error, "inbound queue: cannot read the queue");
                    Duration::from_secs(5)
                }
            },
            Err(error) => {
                warn!(%error, "inbound queue: a round failed");
                Duration::from_secs(5)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = inbound.queue_wake.notified() => {}
            _ = tokio::time::sleep(wait.min(IDLE_WAKE)) => {}
        }
    }
}

/// One round: leases what is due now (at most [`ROUND`]), POSTs it in parallel, records
/// the outcomes; the number taken, so a test can run one round and know it found nothing.
pub async fn run_once(inbound: &Arc<Inbound>) -> Result<usize, StoreError> {
    let now = inbound.clock.unix();
    let leased = inbound.store.lease_due_inbound(now, ROUND).await?;
    let taken = leased.len();
    let mut posts = JoinSet::new();
    for entry in leased {
        let inbound = inbound.clone();
        posts.spawn(async move { inbound.deliver_queued(entry).await });
    }
    while let Some(result) = posts.join_next().await {
        if let Ok(Err(error)) = result {
            warn!(%error, "inbound queue: cannot record an outcome");
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_a_minute_to_eight_hours() {
        let minutes: Vec<u64> = (1..=11).map(|t| backoff(t).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 64, 128, 256, 480, 480]);
        assert_eq!(backoff(0), FIRST_WAIT);
        assert_eq!(backoff(1_000), LONGEST_WAIT);
    }
}
