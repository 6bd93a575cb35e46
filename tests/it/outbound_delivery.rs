//! The outbound delivery worker against real parts: Postfix's `smtp-sink` as the recipients'
//! MX on loopback, behind a DNS server on loopback serving MX and A records. Time is the
//! app's manual clock, moved by the tests to reach retries and expiry.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use serde_json::{Value, json};
use tempfile::TempDir;

use postern::config::{Config, RelayUrl};
use postern::outbound::NewCredentialSpec;
use postern::outbound::worker::BACKOFF;
use postern::store::{OutboundAttemptRow, OutboundSummary, RecipientState};

use crate::support::dns::{DnsServer, Zone};
use crate::support::sink::Sink;
use crate::support::{Receiver, TestApp, config_with, eventually_ok};

const USERNAME: &str = "shop";
const EVENTS_URL: &str = "http://127.0.0.1:9/events";

/// `dest.test` → MX 10 `mx.dest.test` → 127.0.0.1.
pub(crate) fn dest_zone() -> Zone {
    Zone::new()
        .mx("dest.test", 10, "mx.dest.test")
        .a("mx.dest.test", Ipv4Addr::LOCALHOST)
}

fn outbound_toml(dns: &DnsServer, port: u16, extra: &str) -> String {
    let timeout = match extra.contains("timeout_secs") {
        true => "",
        false => "timeout_secs = 5\n",
    };
    config_with(
        &[],
        &format!(
            "[outbound]\ndns = [\"{}\"]\nport = {port}\n{timeout}{extra}\n",
            dns.addr()
        ),
    )
}

/// An app whose delivery worker asks `dns` for MX records and connects to `port`.
pub(crate) async fn start_delivering(
    dns: &DnsServer,
    port: u16,
    extra: &str,
    data_dir: TempDir,
) -> TestApp {
    TestApp::launch(&outbound_toml(dns, port, extra))
        .in_dir(data_dir)
        .delivering()
        .start()
        .await
}

/// A delivering app with the credential `shop` (events URL set) and the sending domain
/// `example.com`; returns the credential's token.
pub(crate) async fn delivering_app(dns: &DnsServer, port: u16, extra: &str) -> (TestApp, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let app = start_delivering(dns, port, extra, data_dir).await;
    let token = setup_sender(&app).await;
    (app, token)
}

/// Returns the token; the sending domain's DKIM record is `dkim_record(app)`.
async fn setup_sender(app: &TestApp) -> String {
    let token = app
        .credential(NewCredentialSpec {
            username: USERNAME.into(),
            events_url: Some(EVENTS_URL.into()),
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;
    token
}

/// The DKIM TXT record of `example.com`: (name, value).
async fn dkim_record(app: &TestApp) -> (String, String) {
    let domains = app
        .outbound
        .sending_domains("mx.postern.test")
        .await
        .unwrap();
    let record = domains[0]
        .dns_records
        .iter()
        .find(|record| record.name.contains("._domainkey."))
        .unwrap();
    (record.name.clone(), record.value.clone())
}

/// Sends through the HTTP API; the message's UUID.
pub(crate) async fn send(app: &TestApp, token: &str, to: &str, extra: Value) -> String {
    let mut body = json!({
        "from": "Shop <shop@example.com>",
        "to": to,
        "subject": format!("Hello {to}"),
        "plain": format!("Body for {to}"),
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, answer) = app.post_message(USERNAME, token, body).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

async fn load(app: &TestApp, uuid: &str) -> OutboundSummary {
    app.outbound
        .store()
        .outbound_message(uuid)
        .await
        .unwrap()
        .expect("the message is stored")
}

/// Waits until the message's one recipient is in `state`.
pub(crate) async fn wait_state(
    app: &TestApp,
    uuid: &str,
    state: RecipientState,
) -> OutboundSummary {
    eventually_ok(&format!("the recipient {state:?}"), async || {
        let message = load(app, uuid).await;
        match message.recipients[0].state == state {
            true => Ok(message),
            false => Err(format!("still {:?}", message.recipients[0])),
        }
    })
    .await
}

pub(crate) async fn attempts(app: &TestApp, message: &OutboundSummary) -> Vec<OutboundAttemptRow> {
    app.outbound
        .store()
        .outbound_attempts(message.row_id)
        .await
        .unwrap()
}

async fn event_kinds(app: &TestApp, message: &OutboundSummary) -> Vec<String> {
    app.outbound
        .store()
        .outbound_events(message.row_id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect()
}

/// The sink's dumps, once `count` arrived whole.
async fn wait_dumps(sink: &Sink, count: usize) -> Vec<String> {
    eventually_ok(&format!("{count} dumps"), async || {
        let dumps = sink.messages();
        match dumps.len() >= count && dumps.iter().all(|d| d.ends_with("\n\n")) {
            true => Ok(dumps),
            false => Err(format!("{} dumps", dumps.len())),
        }
    })
    .await
}

#[tokio::test]
async fn a_message_is_delivered_to_the_mx_with_its_envelope_and_recorded() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "").await;

    let uuid = send(&app, &token, "User <user@dest.test>", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    let recipient = &message.recipients[0];
    assert_eq!(recipient.attempts, 1);
    assert_eq!(recipient.last_code, Some(250));

    let attempts = attempts(&app, &message).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, "delivered");
    assert_eq!(attempts[0].host.as_deref(), Some("mx.dest.test"));
    assert_eq!(attempts[0].code, Some(250));
    assert_eq!(attempts[0].tls, None, "smtp-sink offers no STARTTLS");
    assert!(attempts[0].duration_ms.is_some());

    assert_eq!(
        event_kinds(&app, &message).await,
        ["registration", "dispatch", "delivery"]
    );
    let events = app
        .outbound
        .store()
        .outbound_events(message.row_id)
        .await
        .unwrap();
    let delivery = events.last().unwrap();
    assert_eq!(delivery.recipient, "user@dest.test");
    assert_eq!(
        delivery.webhook, "pending",
        "the credential has an events URL"
    );
    let details: Value = serde_json::from_str(&delivery.details).unwrap();
    assert_eq!(details["host"], "mx.dest.test");
    assert_eq!(details["code"], 250);

    // The API's detail has the attempt too, and its times are RFC 3339 like /api/messages'.
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    let attempt = &api["attempts"][0];
    assert_eq!(attempt["recipient"], "user@dest.test");
    assert_eq!(
        (&attempt["outcome"], &attempt["host"], &attempt["code"]),
        (&json!("delivered"), &json!("mx.dest.test"), &json!(250))
    );
    let rfc3339 = time::format_description::well_known::Rfc3339;
    for at in [
        &api["created_at"],
        &api["recipients"][0]["updated_at"],
        &api["events"][0]["created_at"],
        &attempt["started_at"],
    ] {
        let text = at.as_str().unwrap_or_else(|| panic!("{at} is a string"));
        time::OffsetDateTime::parse(text, &rfc3339).unwrap();
    }

    // The bytes arrive with the envelope: MAIL FROM the return path, one RCPT, our EHLO.
    let dumps = wait_dumps(&sink, 1).await;
    assert_eq!(dumps.len(), 1);
    let dump = &dumps[0];
    assert!(dump.contains("X-Helo-Args: mx.postern.test\n"), "{dump}");
    assert!(
        dump.contains(&format!("X-Mail-Args: <bounces+{uuid}@mta.example.com>")),
        "{dump}"
    );
    assert!(dump.contains("X-Rcpt-Args: <user@dest.test>\n"), "{dump}");
    let queued = app
        .outbound
        .store()
        .outbound_content(message.row_id)
        .await
        .unwrap()
        .unwrap();
    let queued = String::from_utf8(queued).unwrap().replace("\r\n", "\n");
    assert!(
        dump.contains(&queued),
        "the queued message arrives unchanged (after its signature):\n{dump}"
    );
    assert!(queued.contains("Body for User <user@dest.test>"));

    // Signed for the sending domain on the way out; dkimpy verifies what arrived.
    let start = dump
        .find("DKIM-Signature:")
        .expect("the message is DKIM-signed");
    let arrived = dump[start..]
        .strip_suffix('\n')
        .unwrap()
        .replace('\n', "\r\n");
    let (name, value) = dkim_record(&app).await;
    assert_eq!(
        crate::dkim::verify(arrived.as_bytes(), &name, &value),
        "pass"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_priority_queue_goes_first_and_digests_last() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    // Queued while the worker is off…
    let (app, token) = delivering_app(&dns, sink.port(), "deliver = false").await;
    let digest = send(&app, &token, "a@dest.test", json!({"priority": "digest"})).await;
    let standard = send(&app, &token, "b@dest.test", json!({})).await;
    let priority = send(&app, &token, "c@dest.test", json!({"priority": "priority"})).await;
    let data_dir = app.stop().await;

    // …then sent one at a time in queue order.
    let app = start_delivering(&dns, sink.port(), "max_connections = 1", data_dir).await;
    let mut first_attempt = Vec::new();
    for uuid in [&priority, &standard, &digest] {
        let message = wait_state(&app, uuid, RecipientState::Delivered).await;
        first_attempt.push(attempts(&app, &message).await[0].id);
    }
    assert!(
        first_attempt.windows(2).all(|pair| pair[0] < pair[1]),
        "attempt ids priority, standard, digest: {first_attempt:?}"
    );
    assert_eq!(wait_dumps(&sink, 3).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn mx_preference_is_followed_and_a_refusing_mx_falls_back_to_the_next() {
    let port = Sink::start(&[]).await.stop().await.port();
    let best = Sink::start_on(SocketAddr::from(([127, 0, 0, 1], port)), &[]).await;
    let worse = Sink::start_on(SocketAddr::from(([127, 0, 0, 3], port)), &[]).await;
    let zone = Zone::new()
        // Listed worst first: the order of the answer must not matter.
        .mx("dest.test", 20, "mx2.dest.test")
        .mx("dest.test", 10, "mx1.dest.test")
        .a("mx1.dest.test", Ipv4Addr::new(127, 0, 0, 1))
        .a("mx2.dest.test", Ipv4Addr::new(127, 0, 0, 3))
        // Nothing listens on 127.0.0.2: the connection is refused.
        .mx("down.test", 10, "mx-down.down.test")
        .mx("down.test", 20, "mx-up.down.test")
        .a("mx-down.down.test", Ipv4Addr::new(127, 0, 0, 2))
        .a("mx-up.down.test", Ipv4Addr::new(127, 0, 0, 3));
    let dns = DnsServer::start(zone).await;
    let (app, token) = delivering_app(&dns, port, "").await;

    let preferred = send(&app, &token, "user@dest.test", json!({})).await;
    let message = wait_state(&app, &preferred, RecipientState::Delivered).await;
    assert_eq!(
        attempts(&app, &message).await[0].host.as_deref(),
        Some("mx1.dest.test")
    );
    assert_eq!(wait_dumps(&best, 1).await.len(), 1);

    let fallback = send(&app, &token, "user@down.test", json!({})).await;
    let message = wait_state(&app, &fallback, RecipientState::Delivered).await;
    let attempts = attempts(&app, &message).await;
    assert_eq!(
        attempts.len(),
        1,
        "one attempt tries every host: {attempts:?}"
    );
    assert_eq!(attempts[0].host.as_deref(), Some("mx-up.down.test"));
    let dumps = wait_dumps(&worse, 1).await;
    assert!(dumps[0].contains("X-Rcpt-Args: <user@down.test>"));
    assert_eq!(best.messages().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_domain_without_mx_gets_mail_at_its_address_and_a_null_mx_bounces() {
    let sink = Sink::start(&[]).await;
    let zone = Zone::new()
        .a("plain.test", Ipv4Addr::LOCALHOST)
        .mx("nullmx.test", 0, ".")
        .a("nullmx.test", Ipv4Addr::LOCALHOST);
    let dns = DnsServer::start(zone).await;
    let (app, token) = delivering_app(&dns, sink.port(), "").await;

    let uuid = send(&app, &token, "user@plain.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    assert_eq!(
        attempts(&app, &message).await[0].host.as_deref(),
        Some("plain.test")
    );

    let uuid = send(&app, &token, "user@nullmx.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Bounced).await;
    let attempt = &attempts(&app, &message).await[0];
    assert_eq!(attempt.outcome, "bounced");
    assert!(
        attempt.response.as_deref().unwrap().contains("null MX"),
        "{attempt:?}"
    );
    assert_eq!(
        event_kinds(&app, &message).await,
        ["registration", "dispatch", "bounce"]
    );
    assert!(
        app.outbound
            .store()
            .is_suppressed("user@nullmx.test")
            .await
            .unwrap()
    );
    // Only the first message reached the host that nullmx.test's A record names.
    assert_eq!(wait_dumps(&sink, 1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_temporary_failure_is_retried_after_the_backoff() {
    let refusing = Sink::start(&["-r", "RCPT"]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, refusing.port(), "").await;

    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Deferred).await;
    let recipient = &message.recipients[0];
    let first = &attempts(&app, &message).await[0];
    assert_eq!(first.outcome, "deferred");
    assert_eq!(first.code.map(|code| code / 100), Some(4), "{first:?}");
    assert_eq!(recipient.next_attempt_at, message.created_at + BACKOFF[0]);
    assert_eq!(
        event_kinds(&app, &message).await,
        ["registration", "dispatch", "soft_bounce"]
    );

    // The server recovers; once the clock passes the backoff the worker tries again.
    let addr = refusing.stop().await;
    let sink = Sink::start_on(addr, &[]).await;
    app.clock.advance(Duration::from_secs(BACKOFF[0] as u64));
    app.outbound.wake_worker();
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    let outcomes: Vec<String> = attempts(&app, &message)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["deferred", "delivered"]);
    assert_eq!(
        event_kinds(&app, &message).await,
        ["registration", "dispatch", "soft_bounce", "delivery"]
    );
    assert_eq!(wait_dumps(&sink, 1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_bounces_and_suppresses_the_address() {
    let sink = Sink::start(&["-f", "RCPT"]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "").await;

    let uuid = send(&app, &token, "gone@dest.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Bounced).await;
    let attempt = &attempts(&app, &message).await[0];
    assert_eq!(attempt.outcome, "bounced");
    assert_eq!(attempt.code.map(|code| code / 100), Some(5), "{attempt:?}");
    assert_eq!(
        event_kinds(&app, &message).await,
        ["registration", "dispatch", "bounce"]
    );
    assert!(
        app.outbound
            .store()
            .is_suppressed("gone@dest.test")
            .await
            .unwrap()
    );

    // The next message to the address is never attempted.
    let again = send(&app, &token, "gone@dest.test", json!({})).await;
    let message = load(&app, &again).await;
    assert_eq!(message.recipients[0].state, RecipientState::Suppressed);
    assert_eq!(event_kinds(&app, &message).await, ["suppressed"]);
    assert!(attempts(&app, &message).await.is_empty());
    // Nor later: the worker looks at the queue again and still leaves it alone.
    assert_eq!(app.run_worker_once().await, 0, "nothing is attempted");
    let message = load(&app, &again).await;
    assert_eq!(message.recipients[0].state, RecipientState::Suppressed);
    assert!(attempts(&app, &message).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn temporary_failures_past_the_expiry_give_up() {
    let sink = Sink::start(&["-r", "RCPT"]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "expiry_hours = 1").await;

    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    wait_state(&app, &uuid, RecipientState::Deferred).await;
    // An hour on, the next failure has no retry left before the expiry.
    app.clock.advance(Duration::from_secs(3600));
    app.outbound.wake_worker();
    let message = wait_state(&app, &uuid, RecipientState::Expired).await;
    assert_eq!(message.recipients[0].attempts, 2);
    assert_eq!(
        event_kinds(&app, &message).await,
        [
            "registration",
            "dispatch",
            "soft_bounce",
            "retries_exhausted"
        ]
    );
    assert!(
        !app.outbound
            .store()
            .is_suppressed("user@dest.test")
            .await
            .unwrap(),
        "an expiry is not a bounce"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_domain_that_requires_tls_is_not_sent_in_plain_text() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "require_tls = [\"dest.test\"]").await;

    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Deferred).await;
    let attempt = &attempts(&app, &message).await[0];
    assert!(
        attempt.response.as_deref().unwrap().contains("STARTTLS"),
        "{attempt:?}"
    );
    assert!(sink.messages().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_cut_off_by_a_crash_is_sent_again_after_the_restart() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "deliver = false").await;
    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    // What a worker leaves when the process dies mid-attempt: the recipient claimed
    // (`sending`) and its attempt recorded as `started`.
    let store = app.outbound.store().clone();
    let claimed = store.claim_due(app.clock.unix(), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .begin_attempt(&claimed[0], app.clock.unix())
        .await
        .unwrap();
    assert_eq!(
        load(&app, &uuid).await.recipients[0].state,
        RecipientState::Sending
    );
    let data_dir: TempDir = app.stop().await;
    drop(store);

    let app = start_delivering(&dns, sink.port(), "", data_dir).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    let outcomes: Vec<String> = attempts(&app, &message)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["interrupted", "delivered"]);
    assert_eq!(wait_dumps(&sink, 1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_relay_takes_every_message_whatever_the_recipients_mx() {
    let sink = Sink::start(&[]).await;
    // No record at all for the recipient's domain: only the relay is asked.
    let dns = DnsServer::start(Zone::new()).await;
    let relay = format!(
        "relay = \"smtp://relay-user:relay%20secret@127.0.0.1:{}\"",
        sink.port()
    );
    let (app, token) = delivering_app(&dns, 9, &relay).await;

    let uuid = send(&app, &token, "user@nowhere.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    assert_eq!(
        attempts(&app, &message).await[0].host.as_deref(),
        Some("127.0.0.1")
    );
    let dumps = wait_dumps(&sink, 1).await;
    assert!(dumps[0].contains("X-Rcpt-Args: <user@nowhere.test>"));
    assert_eq!(dns.queries(), 0, "no MX lookup with a relay");
    app.stop().await;
}

#[tokio::test]
async fn starttls_is_used_when_the_mx_offers_it_and_recorded_unverified() {
    // The recipient's MX is another Postern with a self-signed certificate, passing the
    // mail on to an HTTP receiver; dest.test has no policy, so any certificate does.
    let receiver = Receiver::start().await;
    let mx = TestApp::start(&config_with(
        &[("*@dest.test", receiver.url("/in"))],
        "[smtp]\ntls_self_signed = true\n",
    ))
    .await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, mx.smtp.port(), "").await;

    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    let attempt = &attempts(&app, &message).await[0];
    let tls = attempt.tls.as_deref().unwrap_or_default();
    assert!(
        tls.starts_with("TLSv1.3 TLS13_") && tls.ends_with(" unverified"),
        "{attempt:?}"
    );
    assert_eq!(attempt.code, Some(250));

    let payload = receiver.single().json();
    assert_eq!(payload["envelope"]["tls_cipher"], "TLSv1.3");
    assert_eq!(payload["envelope"]["to"], "user@dest.test");
    assert_eq!(
        payload["envelope"]["from"],
        format!("bounces+{uuid}@mta.example.com")
    );
    assert_eq!(payload["envelope"]["helo_domain"], "mx.postern.test");
    app.stop().await;
    mx.stop().await;
}

#[tokio::test]
async fn dev_mode_with_a_relay_delivers_what_it_would_only_capture() {
    let sink = Sink::start(&[]).await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::dev(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        None,
    );
    config.outbound.relay =
        Some(RelayUrl::parse(&format!("smtp://127.0.0.1:{}", sink.port())).unwrap());
    let app = TestApp::from_config(config, data_dir).await;

    // Any credential, any sender domain, as dev mode always takes them.
    let uuid = send(&app, "any-token", "someone@example.net", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Delivered).await;
    assert_eq!(message.envelope_from, format!("bounces+{uuid}@example.com"));
    let dumps = wait_dumps(&sink, 1).await;
    assert!(dumps[0].contains("X-Rcpt-Args: <someone@example.net>"));
    app.stop().await;

    // Without --relay the same message is only captured.
    let app = TestApp::dev(None).await;
    let uuid = send(&app, "any-token", "someone@example.net", json!({})).await;
    assert_eq!(
        load(&app, &uuid).await.recipients[0].state,
        RecipientState::Captured
    );
    app.stop().await;
}

/// A minimal MX that counts connections and the most transactions it had at once; each
/// end of DATA is answered after `hold`, so parallel deliveries overlap.
struct CountingMx {
    port: u16,
    connections: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl CountingMx {
    async fn start(hold: Duration) -> CountingMx {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let (count, most) = (connections.clone(), most_at_once.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (active, most) = (active.clone(), most.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 counting ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            tokio::time::sleep(hold).await;
                            active.fetch_sub(1, Ordering::SeqCst);
                            b"250 2.0.0 queued\r\n"
                        } else {
                            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                                Some("EHLO") => b"250-counting\r\n250 8BITMIME\r\n",
                                Some("MAIL") => {
                                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                                    most.fetch_max(now, Ordering::SeqCst);
                                    b"250 2.1.0 ok\r\n"
                                }
                                Some("DATA") => {
                                    in_data = true;
                                    b"354 go on\r\n"
                                }
                                Some("QUIT") => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    return;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingMx {
            port,
            connections,
            most_at_once,
        }
    }
}

#[tokio::test]
async fn deliveries_to_one_domain_are_limited_and_reuse_their_connections() {
    let mx = CountingMx::start(Duration::from_millis(150)).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, mx.port, "max_per_domain = 2").await;

    let to: Vec<String> = (0..8).map(|i| format!("user{i}@dest.test")).collect();
    let uuid = send(&app, &token, &to.join(", "), json!({})).await;
    eventually_ok("every recipient delivered", async || {
        let message = load(&app, &uuid).await;
        let states: Vec<_> = message.recipients.iter().map(|r| r.state).collect();
        match states.iter().all(|s| *s == RecipientState::Delivered) {
            true => Ok(()),
            false => Err(format!("{states:?}")),
        }
    })
    .await;
    assert_eq!(
        mx.most_at_once.load(Ordering::SeqCst),
        2,
        "two transactions at once, never more"
    );
    let connections = mx.connections.load(Ordering::SeqCst);
    assert_eq!(
        connections, 2,
        "8 recipients over the 2 connections the limit allows: kept connections are reused"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_mx_that_never_greets_is_a_temporary_failure_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection without a word.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, port, "timeout_secs = 1").await;

    let started = Instant::now();
    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    let message = wait_state(&app, &uuid, RecipientState::Deferred).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let attempt = &attempts(&app, &message).await[0];
    assert_eq!(attempt.outcome, "deferred");
    assert_eq!(attempt.host.as_deref(), Some("mx.dest.test"));
    app.stop().await;
    silent.abort();
}

#[tokio::test]
async fn the_delivery_reaches_the_events_webhook() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let webhook = Receiver::start().await;
    let app = start_delivering(&dns, sink.port(), "", tempfile::tempdir().unwrap()).await;
    let token = app
        .credential(NewCredentialSpec {
            username: USERNAME.into(),
            events_url: Some(webhook.url("/events")),
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;

    let uuid = send(&app, &token, "user@dest.test", json!({})).await;
    wait_state(&app, &uuid, RecipientState::Delivered).await;
    let kinds = eventually_ok("the delivery event on the webhook", async || {
        let kinds: Vec<String> = webhook
            .requests()
            .iter()
            .flat_map(|request| request.json()["events"].as_array().unwrap().clone())
            .map(|event| {
                assert_eq!(event["message_id"], uuid.as_str());
                event["kind"].as_str().unwrap().to_string()
            })
            .collect();
        match kinds.contains(&"delivery".to_string()) {
            true => Ok(kinds),
            false => Err(format!("webhook events so far: {kinds:?}")),
        }
    })
    .await;
    assert_eq!(kinds, ["registration", "dispatch", "delivery"]);
    app.stop().await;
}

#[tokio::test]
async fn mail_submitted_over_smtp_is_delivered_signed_without_control_headers() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let extra = "[smtp]\ntls_self_signed = true\n[submission]\nlisten = [\"127.0.0.1:0\"]";
    let (app, token) = delivering_app(&dns, sink.port(), extra).await;

    let output = tokio::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port"])
        .arg(app.submission[0].port().to_string())
        .args([
            "--helo",
            "swaks.test",
            "--timeout",
            "20",
            "--tls",
            "--auth",
            "PLAIN",
        ])
        .args(["--auth-user", USERNAME, "--auth-password", &token])
        .args(["--from", "shop@example.com", "--to", "user@dest.test"])
        .args(["--header", "From: Shop <shop@example.com>"])
        .args(["--header", "X-CloudMTA-Class: priority"])
        .output()
        .await
        .expect("swaks is installed");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "swaks {}:\n{transcript}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let uuid = transcript
        .lines()
        .find_map(|line| line.split("Queued as: ").nth(1))
        .unwrap_or_else(|| panic!("no Queued as:\n{transcript}"))
        .trim()
        .to_string();

    wait_state(&app, &uuid, RecipientState::Delivered).await;
    let dump = &wait_dumps(&sink, 1).await[0];
    assert!(dump.contains(&format!("X-Mail-Args: <bounces+{uuid}@mta.example.com>")));
    assert!(dump.contains("X-Rcpt-Args: <user@dest.test>"), "{dump}");
    assert!(dump.contains("DKIM-Signature:"), "{dump}");
    assert!(!dump.to_ascii_lowercase().contains("x-cloudmta"), "{dump}");
    app.stop().await;
}

#[tokio::test]
async fn html_mail_leaves_with_its_tracking_pixel_and_links_and_they_record_events() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "").await;
    let html = r#"<html><body><p>Hi <a href="https://shop.example/offer">offer</a> <a href="mailto:x@example.com">mail</a></p></body></html>"#;
    let tracked = send(&app, &token, "user@dest.test", json!({"html": html})).await;
    wait_state(&app, &tracked, RecipientState::Delivered).await;
    let untracked = send(
        &app,
        &token,
        "user@dest.test",
        json!({"html": html, "track_opens": false, "track_clicks": false}),
    )
    .await;
    wait_state(&app, &untracked, RecipientState::Delivered).await;

    let dumps = wait_dumps(&sink, 2).await;
    let with = dumps
        .iter()
        .find(|d| d.contains(&format!("bounces+{tracked}@")))
        .unwrap();
    let without = dumps
        .iter()
        .find(|d| d.contains(&format!("bounces+{untracked}@")))
        .unwrap();
    // The HTML part is quoted-printable: undo soft breaks and `=3D` before looking.
    let decoded = |dump: &str| dump.replace("=\n", "").replace("=3D", "=");
    let with = decoded(with);
    let base = app.url("/t/");
    let pixel =
        regex::Regex::new(&format!(r#"{}o/([A-Za-z0-9_.-]+)"#, regex::escape(&base))).unwrap();
    let pixel = pixel
        .captures(&with)
        .unwrap_or_else(|| panic!("an open pixel in\n{with}"))[0]
        .to_string();
    assert!(
        with.contains(&format!("{base}c/")),
        "a tracked link:\n{with}"
    );
    assert!(with.contains("mailto:x@example.com"), "mailto links stay");
    assert!(!with.contains("href=\"https://shop.example/offer\""));
    let without = decoded(without);
    assert!(!without.contains(&base) && without.contains("https://shop.example/offer"));
    // The signature is made over the tracked copy: dkimpy verifies what arrived.
    let raw_with = dumps
        .iter()
        .find(|d| d.contains(&format!("bounces+{tracked}@")))
        .unwrap();
    let start = raw_with.find("DKIM-Signature:").expect("signed");
    let arrived = raw_with[start..]
        .strip_suffix('\n')
        .unwrap()
        .replace('\n', "\r\n");
    let (name, value) = dkim_record(&app).await;
    assert_eq!(
        crate::dkim::verify(arrived.as_bytes(), &name, &value),
        "pass"
    );

    // The pixel records an open for this recipient.
    let response = reqwest::get(&pixel).await.unwrap();
    assert_eq!(response.status(), 200);
    let message = load(&app, &tracked).await;
    let kinds = event_kinds(&app, &message).await;
    assert!(kinds.iter().any(|k| k == "open"), "{kinds:?}");
    app.stop().await;
}
