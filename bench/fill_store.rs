//! Fills a data directory with a realistic store for `bench/data_requests.sh`: `INBOUND`
//! received messages (raw content kept, one target POST each) and `OUTBOUND` sent
//! messages (delivered: claimed, attempted and finished through the worker's store calls),
//! spread over 90 days and 1,000 correspondents at ten domains (`d0.example` …
//! `d9.example`, a tenth of the mail each). One message in a thousand is from or to
//! `person@example.com`. Content is sealed with the keyring at `KEY_FILE`, as the binary
//! does with `[encryption] enabled = true`; `-` stores it in plaintext. Prints one JSON
//! line: the counts and the seconds taken.
//!
//!     cargo run --release --example fill_store -- DATA_DIR KEY_FILE|- INBOUND OUTBOUND

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use postern::crypto::Keyring;
use postern::store::{
    AttemptEnd, AttemptRecord, AttemptReport, Disposition, InboundMeta, Kept, NewOutbound, Outcome,
    Priority, Source, Store,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The correspondents: `user<i>@d<i % 10>.example`.
const PEOPLE: u64 = 1_000;
/// The data subject of the benchmark: one message in this many is theirs.
const SUBJECT_EVERY: u64 = 1_000;
const SUBJECT: &str = "person@example.com";
/// The managed inbound addresses the mail arrives at.
const MANAGED: [&str; 5] = [
    "support@postern.example",
    "billing@postern.example",
    "orders@postern.example",
    "hello@postern.example",
    "jobs@postern.example",
];
const SPAN_SECS: i64 = 90 * 24 * 3600;
/// Outbound messages in flight to the group-commit thread at once.
const ENQUEUE_CONCURRENCY: usize = 100;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: fill_store DATA_DIR KEY_FILE|- INBOUND OUTBOUND");
        std::process::exit(2);
    }
    postern::datadir::restrict_umask();
    let count = |text: &str| -> u64 { text.parse().expect("INBOUND and OUTBOUND are numbers") };
    let (inbound, outbound) = (count(&args[2]), count(&args[3]));
    let store = open(Path::new(&args[0]), &args[1]);
    let end = OffsetDateTime::now_utc().unix_timestamp();
    let start = end - SPAN_SECS;
    let started = Instant::now();
    fill_inbound(&store, inbound, start).await;
    let inbound_secs = started.elapsed().as_secs_f64();
    fill_outbound(&store, outbound, start).await;
    deliver_all(&store, end).await;
    println!(
        "{}",
        serde_json::json!({
            "inbound": inbound,
            "outbound": outbound,
            "inbound_secs": inbound_secs,
            "secs": started.elapsed().as_secs_f64(),
        })
    );
}

fn open(data_dir: &Path, key_file: &str) -> Store {
    let opened = match key_file {
        "-" => Store::open(data_dir),
        path => {
            let keyring = Keyring::load(Path::new(path), None).expect("an unwrapped keyring");
            Store::open_sealed(data_dir, Arc::new(keyring))
        }
    };
    opened.expect("the store opens")
}

/// The correspondent of message `n` (a fixed, well-mixed choice).
fn correspondent(n: u64) -> String {
    if n % SUBJECT_EVERY == 7 {
        return SUBJECT.to_owned();
    }
    let i = n.wrapping_mul(2_654_435_761) % PEOPLE;
    format!("user{i}@d{}.example", i % 10)
}

/// The time of message `n` of `total`, evenly over the span.
fn at(start: i64, n: u64, total: u64) -> i64 {
    start + (n as i64) * SPAN_SECS / (total.max(1) as i64)
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time in range")
        .format(&Rfc3339)
        .expect("RFC 3339 formats")
}

/// A plain-text mail of 1–6 KB, its size varying with `n`.
fn mail(n: u64, from: &str, to: &str, date: i64, subject: &str) -> Vec<u8> {
    let date = OffsetDateTime::from_unix_timestamp(date)
        .expect("a time in range")
        .format(&time::format_description::well_known::Rfc2822)
        .expect("RFC 2822 formats");
    let mut text = format!(
        "Received: from mx.sender.example (mx.sender.example [192.0.2.{}])\r\n\
         \tby mx.postern.example with ESMTPS; {date}\r\n\
         From: Correspondent {n} <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{n}.bench@sender.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n",
        n % 250
    );
    // One message in a thousand mentions a zeppelin (a rare word for the search benchmark).
    if n % 1_000 == 7 {
        text += "Shipping by zeppelin this time.\r\n";
    }
    let lines = 15 + (n.wrapping_mul(7_919) % 75);
    for line in 0..lines {
        text += &format!(
            "Line {line} of message {n}: the quick brown fox jumps over the lazy dog.\r\n"
        );
    }
    text.into_bytes()
}

async fn fill_inbound(store: &Store, total: u64, start: i64) {
    for n in 0..total {
        let from = correspondent(n);
        let to = MANAGED[(n % MANAGED.len() as u64) as usize];
        let received = at(start, n, total);
        let subject = format!("Question {n}");
        let raw = mail(n, &from, to, received, &subject);
        // The text body, as `mail::message` would find it (for the preview and the index).
        let text = String::from_utf8_lossy(&raw)
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        let received_at = rfc3339(received);
        let meta = InboundMeta {
            received_at: received_at.clone(),
            remote_ip: format!("192.0.2.{}", n % 250),
            helo: "mx.sender.example".into(),
            mail_from: from,
            recipients: vec![to.to_owned()],
            address: Some(to.to_owned()),
            message_id: Some(format!("{n}.bench@sender.example")),
            subject: Some(subject),
            size: raw.len() as u64,
            md5: format!("{:032x}", n),
            tls_version: Some("TLSv1.3".into()),
            target: Some("https://app.example/inbound".into()),
            format: Some("json+n".into()),
            http_status: Some(200),
            outcome: Outcome::Successful,
            response_body: Some("ok".into()),
            error: None,
            smtp_reply: "250 2.0.0 Message accepted".into(),
            processing_ms: 40,
            redacted: Vec::new(),
            authentication: None,
            header_from: Some(format!("Correspondent {n} <{}>", correspondent(n))),
            header_to: Some(format!("<{to}>")),
            header_cc: None,
            attachments: 0,
        };
        let attempt = AttemptRecord {
            kind: "target".into(),
            url: "https://app.example/inbound".into(),
            format: Some("json+n".into()),
            http_status: Some(200),
            response_body: "ok".into(),
            error: None,
            started_at: received_at,
            duration_ms: 35,
        };
        store
            .insert_inbound(
                meta,
                Some(Kept {
                    raw,
                    text: Some(text),
                }),
                vec![attempt],
            )
            .await
            .expect("the inbound row is written");
    }
}

fn new_outbound(n: u64, total: u64, start: i64) -> NewOutbound {
    let to = correspondent(n + 500);
    let created_at = at(start, n, total);
    let uuid = uuid::Uuid::new_v4().to_string();
    let subject = format!("Your order {n}");
    NewOutbound {
        raw: mail(n, "app@postern.example", &to, created_at, &subject),
        envelope_from: format!("bounces+{uuid}@postern.example"),
        uuid,
        credential_id: None,
        username: "bench".into(),
        source: Source::Api,
        header_from: "Postern App <app@postern.example>".into(),
        subject: Some(subject),
        tags: vec!["bench".into()],
        priority: Priority::Standard,
        test_mode: false,
        track_opens: false,
        track_clicks: false,
        require_tls: false,
        remote_ip: Some("127.0.0.1".into()),
        recipients: vec![to],
        disposition: Disposition::Deliver,
        webhook: false,
        created_at,
        expires_at: created_at + 5 * 24 * 3600,
        redacted: Vec::new(),
    }
}

async fn fill_outbound(store: &Store, total: u64, start: i64) {
    let mut batch = tokio::task::JoinSet::new();
    for n in 0..total {
        let store = store.clone();
        batch.spawn(async move { store.enqueue(new_outbound(n, total, start)).await });
        if batch.len() >= ENQUEUE_CONCURRENCY {
            drain(&mut batch).await;
        }
    }
    drain(&mut batch).await;
}

async fn drain<T: 'static, E: std::fmt::Debug + 'static>(
    batch: &mut tokio::task::JoinSet<Result<T, E>>,
) {
    while let Some(done) = batch.join_next().await {
        done.expect("the task ran").expect("the message is queued");
    }
}

/// Takes every queued recipient through one delivered attempt, as the worker records it.
async fn deliver_all(store: &Store, now: i64) {
    loop {
        let claimed = store.claim_due(now, 500).await.expect("claim");
        if claimed.is_empty() {
            return;
        }
        for recipient in claimed {
            let attempt = store.begin_attempt(&recipient, now).await.expect("begin");
            let report = AttemptReport {
                end: AttemptEnd::Delivered,
                host: Some(format!("mx.{}", recipient.domain)),
                code: Some(250),
                response: "2.0.0 OK queued".into(),
                tls: Some("starttls".into()),
                duration_ms: 120,
                at: now,
            };
            store
                .finish_attempt(&recipient, attempt, report)
                .await
                .expect("finish");
        }
    }
}
