//! The events webhook (contract §6.8): a background task that POSTs the `outbound_events`
//! rows marked `pending` to their credential's events URL, in batches.
//!
//! Body: `{"events": [{"kind", "recipient", "message_id", "details": {…}}, …]}`, at most
//! [`BATCH`] events per POST, one POST per events URL at a time; `message_id` is the
//! message's UUID. Basic auth comes from the URL's userinfo (masked in logs), as for
//! inbound targets (the same `webhook::Deliverer`: ≤ 3 redirects within the origin,
//! [`TIMEOUT`]).
//! A 2xx marks the batch `sent`; anything else leaves it `pending` for the next try after
//! [`BACKOFF`] (30 s, 2 min, 10 min, 30 min, then hourly); an event still unsent
//! [`GIVE_UP_SECS`] (24 h) after it happened is marked `failed`.
//!
//! What goes out: every event kind as written (`registration`, `dispatch`, `soft_bounce`
//! per retry, `open`, `click`, `auto_reply`, …), but at most one terminal event
//! (`delivery`, `bounce`, `retries_exhausted`, `suppressed`) per recipient of a message —
//! a later one (a DSN after a `delivery`) stays in the history and is not sent
//! (`Store::due_events`). Events are sent in the order they were written, per URL; a
//! batch that failed is retried as a whole, so a receiver may see an event twice (after a
//! timeout) and should treat them idempotently. A credential with a signing secret signs
//! its batches (Standard Webhooks, `webhook::signing`; the `webhook-id` names the batch's
//! events, so a retried batch keeps it).
//!
//! Time is the app's `Clock` (a test moves it, then calls `Outbound::events_written`).
//! The task wakes when events are written (`Outbound::events_written`), when the next
//! retry is due, and at least every [`IDLE_WAKE`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::Outbound;
use crate::config::TargetUrl;
use crate::shutdown::Shutdown;
use crate::store::PendingEvent;
use crate::webhook::{self, Deliverer, Owner, Payload, PostOptions};

/// Events per POST at most.
pub const BATCH: usize = 100;
/// Each POST (with its redirects) gets this long.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// Seconds to wait after the 1st, 2nd, … failed attempt; the last repeats.
pub const BACKOFF: &[i64] = &[30, 120, 600, 1800, 3600];
/// An event not delivered this long after it happened is given up (`failed`).
pub const GIVE_UP_SECS: i64 = 24 * 3600;
/// The task looks at the queue at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);
/// Due events read per round.
const ROUND: u32 = 1000;

/// When to try again after `attempts` failed attempts (counting the one just made);
/// `None` when the event is given up.
pub fn retry_at(now: i64, created_at: i64, attempts: i64) -> Option<i64> {
    let index = (attempts.max(1) as usize - 1).min(BACKOFF.len() - 1);
    let next = now + BACKOFF[index];
    (next - created_at < GIVE_UP_SECS).then_some(next)
}

/// The webhook body for `events` (contract §6.8).
pub fn body(events: &[PendingEvent]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|event| {
            json!({
                "kind": event.kind,
                "recipient": event.recipient,
                "message_id": event.message_uuid,
                "details": serde_json::from_str::<Value>(&event.details)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({})),
            })
        })
        .collect();
    json!({ "events": events })
}

/// The `webhook-id` of a batch: the same for the same events, so an app that got a batch
/// whose answer was lost can tell the retry apart.
fn batch_id(ids: &[i64]) -> String {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.to_be_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// Runs until the shutdown: sends what is due, then sleeps until woken or the next is due.
pub async fn run(outbound: Outbound, deliverer: Deliverer, shutdown: Shutdown) {
    let notify = outbound.events_notify();
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let wait = match run_once(&outbound, &deliverer).await {
            // A full round: more may be due.
            Ok(taken) if taken == ROUND as usize && !shutdown.is_triggered() => Duration::ZERO,
            Ok(_) => match outbound.store.next_event_due().await {
                Ok(Some(at)) => {
                    // At least a second: events due now that a round left are picked up
                    // next round, without spinning.
                    Duration::from_secs((at - outbound.clock.unix()).clamp(1, 60) as u64)
                }
                Ok(None) => IDLE_WAKE,
                Err(error) => {
                    warn!(%error, "events webhook: cannot read the queue");
                    Duration::from_secs(5)
                }
            },
            Err(error) => {
                warn!(%error, "events webhook: cannot read the queue");
                Duration::from_secs(5)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait.min(IDLE_WAKE)) => {}
        }
    }
}

/// One round, the body of [`run`]'s loop: reads the due events (at most a round's worth),
/// POSTs them per URL (the URLs in parallel), records the outcomes. The number of due events
/// it took — POSTed, or held back behind a failed batch, or dropped for want of a URL — so a
/// test can run one pass and know it found nothing, rather than sleep and hope.
pub async fn run_once(
    outbound: &Outbound,
    deliverer: &Deliverer,
) -> Result<usize, crate::store::StoreError> {
    let now = outbound.clock.unix();
    let due = outbound.store.due_events(now, ROUND).await?;
    let taken = due.len();
    // Per URL and credential: each credential's batches are signed with its own secret.
    let mut by_url: BTreeMap<(String, Option<String>), Vec<PendingEvent>> = BTreeMap::new();
    let mut nowhere = Vec::new();
    for event in due {
        match event.events_url.clone() {
            Some(url) => (by_url.entry((url, event.credential.clone())))
                .or_default()
                .push(event),
            None => nowhere.push(event.id),
        }
    }
    if !nowhere.is_empty() {
        // The credential lost its URL (or is gone): nothing to send these to.
        outbound.store.mark_events(nowhere, "none", None).await?;
    }
    let mut posts = tokio::task::JoinSet::new();
    for ((url, credential), events) in by_url {
        let (outbound, deliverer) = (outbound.clone(), deliverer.clone());
        let owner = credential.map(Owner::Credential);
        posts.spawn(async move { send_to(&outbound, &deliverer, &url, owner, events).await });
    }
    while let Some(result) = posts.join_next().await {
        if let Ok(Err(error)) = result {
            warn!(%error, "events webhook: cannot record an outcome");
        }
    }
    Ok(taken)
}

/// POSTs `events` to `url` in batches; stops at the first failure (later batches wait
/// with it, keeping the order).
async fn send_to(
    outbound: &Outbound,
    deliverer: &Deliverer,
    url: &str,
    owner: Option<Owner>,
    events: Vec<PendingEvent>,
) -> Result<(), crate::store::StoreError> {
    let Ok(target) = TargetUrl::parse(url) else {
        warn!(url = %TargetUrl::mask_str(url), "events webhook: the events URL is not usable; events dropped");
        let ids = events.iter().map(|e| e.id).collect();
        return outbound.store.mark_events(ids, "failed", None).await;
    };
    let mut batches = events.chunks(BATCH);
    while let Some(batch) = batches.next() {
        let payload = Payload {
            content_type: "application/json".into(),
            body: body(batch).to_string().into_bytes(),
        };
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        let id = batch_id(&ids);
        let options = PostOptions {
            timeout: Some(TIMEOUT),
            signed_as: owner.as_ref().map(|owner| (owner, id.as_str())),
            ..PostOptions::default()
        };
        let delivery = deliverer.deliver_with(&target, payload, &options).await;
        if let webhook::Outcome::Accepted { status, .. } = delivery.outcome {
            info!(url = %target, events = ids.len(), status, "events webhook: batch sent");
            outbound.store.mark_events(ids, "sent", None).await?;
            continue;
        }
        let reason = match &delivery.outcome {
            webhook::Outcome::Deferred { reason, .. } => reason.clone(),
            other => format!("HTTP {}", other.status().unwrap_or(0)),
        };
        // This batch and every later one for this URL wait for the next try.
        let now = outbound.clock.unix();
        let rest = std::iter::once(batch).chain(batches.by_ref());
        let (mut retry, mut given_up) = (BTreeMap::<i64, Vec<i64>>::new(), Vec::new());
        for event in rest.flatten() {
            match retry_at(now, event.created_at, event.attempts + 1) {
                Some(at) => retry.entry(at).or_default().push(event.id),
                None => given_up.push(event.id),
            }
        }
        warn!(url = %target, %reason, retrying = retry.values().map(Vec::len).sum::<usize>(), given_up = given_up.len(), "events webhook: POST failed");
        for (at, ids) in retry {
            outbound.store.mark_events(ids, "pending", Some(at)).await?;
        }
        if !given_up.is_empty() {
            outbound.store.mark_events(given_up, "failed", None).await?;
        }
        break;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_then_give_up_after_a_day() {
        assert_eq!(retry_at(1000, 1000, 1), Some(1030));
        assert_eq!(retry_at(1000, 1000, 2), Some(1120));
        assert_eq!(retry_at(1000, 1000, 3), Some(1600));
        assert_eq!(retry_at(1000, 1000, 4), Some(2800));
        assert_eq!(retry_at(1000, 1000, 5), Some(4600));
        assert_eq!(retry_at(1000, 1000, 50), Some(4600));
        assert_eq!(retry_at(1000 + GIVE_UP_SECS - 3600, 1000, 9), None);
        assert_eq!(
            retry_at(1000 + GIVE_UP_SECS - 3601, 1000, 9),
            Some(1000 + GIVE_UP_SECS - 1)
        );
    }

    #[test]
    fn body_shape() {
        let event = PendingEvent {
            id: 1,
            message_uuid: "u".into(),
            recipient: "r@example.net".into(),
            kind: "bounce".into(),
            details: r#"{"smtp_code":550}"#.into(),
            events_url: None,
            credential: None,
            attempts: 0,
            created_at: 0,
        };
        let broken = PendingEvent {
            details: "not json".into(),
            ..event.clone()
        };
        assert_eq!(
            body(&[event, broken]),
            json!({"events": [
                {"kind": "bounce", "recipient": "r@example.net", "message_id": "u", "details": {"smtp_code": 550}},
                {"kind": "bounce", "recipient": "r@example.net", "message_id": "u", "details": {}},
            ]})
        );
    }
}
