//! Outbound TLS policy against real parts: the recipients' MX or the relay is another
//! Postern on loopback whose STARTTLS certificate comes from a private test CA. The relay and
//! `require_tls` domains get verified TLS or nothing (deferred, with a reason that names the
//! host and the fix); every attempt records the TLS version, cipher and verification.

use std::net::Ipv4Addr;

use serde_json::json;
use tempfile::TempDir;

use postern::store::{OutboundAttemptRow, RecipientState};

use crate::outbound_delivery::{attempts, delivering_app, dest_zone, send, wait_state};
use crate::support::certs::TestCa;
use crate::support::dns::{DnsServer, Zone};
use crate::support::{Receiver, TestApp, config_with};

/// A Postern taking `*@dest.test` and `*@open.test` over STARTTLS with a certificate `ca` issued for
/// `names`, passing it on to `receiver`.
pub(crate) async fn tls_mx(
    ca: &TestCa,
    names: &[&str],
    dir: &TempDir,
    receiver: &Receiver,
) -> TestApp {
    let files = ca.issue(names, dir.path(), "mx");
    TestApp::start(&config_with(
        &[
            ("*@dest.test", receiver.url("/in")),
            ("*@open.test", receiver.url("/in")),
        ],
        &format!(
            "[smtp]\ntls_cert = {:?}\ntls_key = {:?}\n",
            files.cert, files.key
        ),
    ))
    .await
}

/// Sends one message to `user@dest.test`, waits for `state`; its UUID and its one attempt.
async fn send_until(
    app: &TestApp,
    token: &str,
    state: RecipientState,
) -> (String, OutboundAttemptRow) {
    let uuid = send(app, token, "user@dest.test", json!({})).await;
    let message = wait_state(app, &uuid, state).await;
    let mut attempts = attempts(app, &message).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    (uuid, attempts.remove(0))
}

/// [`send_until`]'s attempt.
async fn attempt_until(app: &TestApp, token: &str, state: RecipientState) -> OutboundAttemptRow {
    send_until(app, token, state).await.1
}

/// `TLSv1.3 TLS13_… verified`: the attempt's record of a verified TLS 1.3 session.
pub(crate) fn assert_verified(attempt: &OutboundAttemptRow) {
    let tls = attempt.tls.as_deref().unwrap_or_default();
    let words: Vec<&str> = tls.split(' ').collect();
    assert!(
        words.len() == 3
            && words[0] == "TLSv1.3"
            && words[1].starts_with("TLS13_")
            && words[2] == "verified",
        "{attempt:?}"
    );
}

#[tokio::test]
async fn a_relay_with_an_untrusted_certificate_gets_nothing_and_the_reason_names_the_fix() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let relay = tls_mx(&ca, &["127.0.0.1"], &dir, &receiver).await;
    let dns = DnsServer::start(Zone::new()).await;
    let port = relay.smtp.port();
    let extra = format!("relay = \"smtp://127.0.0.1:{port}\"");
    let (app, token) = delivering_app(&dns, 9, &extra).await;

    let attempt = attempt_until(&app, &token, RecipientState::Deferred).await;
    assert_eq!(
        attempt.response.as_deref(),
        Some(
            format!(
                "relay 127.0.0.1:{port}: certificate not trusted (UnknownIssuer); \
                 set [outbound] extra_ca_file for a private CA"
            )
            .as_str()
        ),
        "{attempt:?}"
    );
    assert_eq!(attempt.tls, None);
    assert_eq!(
        receiver.requests().len(),
        0,
        "nothing reached the relay's target"
    );
    app.stop().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_relay_trusted_through_extra_ca_file_gets_the_mail_over_verified_tls() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let relay = tls_mx(&ca, &["127.0.0.1"], &dir, &receiver).await;
    let dns = DnsServer::start(Zone::new()).await;
    let extra = format!(
        "relay = \"smtp://127.0.0.1:{}\"\nextra_ca_file = {:?}",
        relay.smtp.port(),
        ca.write_root(dir.path())
    );
    let (app, token) = delivering_app(&dns, 9, &extra).await;

    let (uuid, attempt) = send_until(&app, &token, RecipientState::Delivered).await;
    assert_verified(&attempt);
    assert_eq!(receiver.single().json()["envelope"]["to"], "user@dest.test");
    // The API and the dashboard show what the attempt recorded.
    let tls = attempt.tls.unwrap();
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(api["attempts"][0]["tls"], json!(tls));
    let page = app
        .admin_browser()
        .await
        .get(&format!("/outbound/{uuid}"))
        .await;
    assert!(page.body.contains(&tls), "{}", page.body);
    app.stop().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_require_tls_domain_gets_verified_tls_to_its_mx_or_nothing() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mx = tls_mx(&ca, &["mx.dest.test"], &dir, &receiver).await;
    let dns = DnsServer::start(dest_zone()).await;
    let port = mx.smtp.port();

    // The MX's certificate is from a CA nobody trusts: deferred.
    let (app, token) = delivering_app(&dns, port, "require_tls = [\"dest.test\"]").await;
    let attempt = attempt_until(&app, &token, RecipientState::Deferred).await;
    assert_eq!(
        attempt.response.as_deref(),
        Some(
            format!(
                "mx.dest.test (127.0.0.1:{port}): certificate not trusted (UnknownIssuer); \
                 set [outbound] extra_ca_file for a private CA"
            )
            .as_str()
        ),
        "{attempt:?}"
    );
    assert_eq!(receiver.requests().len(), 0);
    app.stop().await;

    // Trusted, but the MX answers to another name than its certificate's: deferred too.
    let root = ca.write_root(dir.path());
    let elsewhere = Zone::new()
        .mx("dest.test", 10, "other.dest.test")
        .a("other.dest.test", Ipv4Addr::LOCALHOST);
    dns.set_zone(elsewhere);
    let trusted = format!("require_tls = [\"dest.test\"]\nextra_ca_file = {root:?}");
    let (app, token) = delivering_app(&dns, port, &trusted).await;
    let attempt = attempt_until(&app, &token, RecipientState::Deferred).await;
    assert_eq!(
        attempt.response.as_deref(),
        Some(
            format!(
                "other.dest.test (127.0.0.1:{port}): certificate not valid for other.dest.test"
            )
            .as_str()
        ),
        "{attempt:?}"
    );
    app.stop().await;

    // Trusted and named: delivered, and the attempt says so.
    dns.set_zone(dest_zone());
    let (app, token) = delivering_app(&dns, port, &trusted).await;
    let attempt = attempt_until(&app, &token, RecipientState::Delivered).await;
    assert_verified(&attempt);
    assert_eq!(receiver.requests().len(), 1);
    app.stop().await;
    mx.stop().await;
}

#[tokio::test]
async fn a_connection_kept_from_opportunistic_tls_never_carries_a_require_tls_domain() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mx = tls_mx(&ca, &["mx.dest.test"], &dir, &receiver).await;
    // Both domains have the same MX; only dest.test has a policy.
    let zone = dest_zone().mx("open.test", 10, "mx.dest.test");
    let dns = DnsServer::start(zone).await;
    let (app, token) = delivering_app(&dns, mx.smtp.port(), "require_tls = [\"dest.test\"]").await;

    let open = send(&app, &token, "user@open.test", json!({})).await;
    let message = wait_state(&app, &open, RecipientState::Delivered).await;
    let tls = attempts(&app, &message).await[0].tls.clone().unwrap();
    assert!(tls.ends_with(" unverified"), "{tls}");
    // The connection just used is kept for the next recipient at that MX, but not for
    // this one: it needs a verified certificate, and this MX's is not trusted.
    let attempt = attempt_until(&app, &token, RecipientState::Deferred).await;
    assert!(
        attempt
            .response
            .as_deref()
            .unwrap()
            .contains("certificate not trusted (UnknownIssuer)"),
        "{attempt:?}"
    );
    assert_eq!(receiver.requests().len(), 1);
    app.stop().await;
    mx.stop().await;
}
