//! MTA-STS (RFC 8461) and per-message `require_tls` against real parts on loopback: the
//! recipients' MX is another Postern (STARTTLS with a certificate from a private test CA) or
//! Postfix's smtp-sink (no STARTTLS); the `_mta-sts` TXT, MX and A records come from a DNS
//! server on loopback; the policy file is served over HTTPS by a [`PolicyHost`] whose
//! certificate the same CA issued for `mta-sts.dest.test`. The CA is trusted through
//! `[outbound] extra_ca_file`, so without a policy the mail would go (opportunistic TLS):
//! each deferral below is the policy's doing.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use postern::outbound::worker::BACKOFF;
use postern::store::{OutboundAttemptRow, RecipientState};

use crate::outbound_delivery::{
    attempts, delivering_app, dest_zone, send, start_delivering, wait_state,
};
use crate::outbound_tls::{assert_verified, tls_mx};
use crate::support::certs::TestCa;
use crate::support::dns::{DnsServer, Zone};
use crate::support::policy_host::PolicyHost;
use crate::support::sink::Sink;
use crate::support::{Receiver, TestApp, eventually_ok};

const POLICY_HOST: &str = "mta-sts.dest.test";

/// An `enforce` or `testing` policy listing `mx`.
fn policy(mode: &str, mx: &[&str]) -> String {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for pattern in mx {
        text.push_str(&format!("mx: {pattern}\r\n"));
    }
    text.push_str("max_age: 86400\r\n");
    text
}

/// `dest.test`'s MX, its policy's TXT record with `id`, and the policy host's address.
fn sts_zone(id: &str) -> Zone {
    dest_zone()
        .txt("_mta-sts.dest.test", &format!("v=STSv1; id={id};"))
        .a(POLICY_HOST, Ipv4Addr::LOCALHOST)
}

/// What a policy test runs against: a private CA, a Postern MX with a certificate it issued,
/// a policy host serving a policy for `dest.test`, and DNS publishing both (TXT id `one`).
struct Scene {
    ca: TestCa,
    dir: TempDir,
    receiver: Receiver,
    mx: TestApp,
    host: PolicyHost,
    dns: DnsServer,
    /// The `[outbound]` lines: policies fetched from the host's port, the CA trusted.
    config: String,
}

impl Scene {
    /// An MX with a certificate for `mx_names`, the policy host serving `policy`.
    async fn start(mx_names: &[&str], policy: &str) -> Scene {
        Scene::start_with(mx_names, policy, &[POLICY_HOST]).await
    }

    /// [`Scene::start`] with the policy host's certificate issued for `host_names`.
    async fn start_with(mx_names: &[&str], policy: &str, host_names: &[&str]) -> Scene {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start().await;
        let mx = tls_mx(&ca, mx_names, &dir, &receiver).await;
        let host = PolicyHost::start(&ca, host_names, policy).await;
        let dns = DnsServer::start(sts_zone("one")).await;
        let config = format!(
            "mta_sts_port = {}\nextra_ca_file = {:?}\nexpiry_hours = 1",
            host.port(),
            ca.write_root(dir.path())
        );
        Scene {
            ca,
            dir,
            receiver,
            mx,
            host,
            dns,
            config,
        }
    }

    /// A delivering app sending to the MX, with a fresh data directory; its token.
    async fn app(&self) -> (TestApp, String) {
        delivering_app(&self.dns, self.mx.smtp.port(), &self.config).await
    }

    /// The app of `data_dir` (stopped before) started again.
    async fn restart(&self, app: TestApp) -> TestApp {
        let data_dir = app.stop().await;
        start_delivering(&self.dns, self.mx.smtp.port(), &self.config, data_dir).await
    }

    /// The MX replaced by one with a certificate for `names` (on another port).
    async fn replace_mx(&mut self, names: &[&str]) {
        let mx = tls_mx(&self.ca, names, &self.dir, &self.receiver).await;
        std::mem::replace(&mut self.mx, mx).stop().await;
    }

    /// Mail the MX passed on.
    fn delivered(&self) -> usize {
        self.receiver.requests().len()
    }

    async fn stop(self) {
        self.mx.stop().await;
    }
}

/// Sends one message to `user@dest.test` (with `extra` fields), waits for `state`; its UUID
/// and its last attempt.
async fn send_until(
    app: &TestApp,
    token: &str,
    extra: serde_json::Value,
    state: RecipientState,
) -> (String, OutboundAttemptRow) {
    let uuid = send(app, token, "user@dest.test", extra).await;
    let attempt = last_attempt_when(app, &uuid, state).await;
    (uuid, attempt)
}

/// Waits for the message's one recipient to be in `state`; its last attempt.
async fn last_attempt_when(app: &TestApp, uuid: &str, state: RecipientState) -> OutboundAttemptRow {
    let message = wait_state(app, uuid, state).await;
    attempts(app, &message).await.pop().expect("an attempt")
}

/// Waits for the second attempt of a deferred message to end deferred too; that attempt.
async fn deferred_again(app: &TestApp, uuid: &str) -> OutboundAttemptRow {
    eventually_ok("a second attempt, deferred", async || {
        let message = wait_state(app, uuid, RecipientState::Deferred).await;
        match message.recipients[0].attempts {
            2 => Ok(attempts(app, &message).await.pop().unwrap()),
            n => Err(format!("{n} attempts")),
        }
    })
    .await
}

/// Moves the clock past the first backoff and wakes the worker: a deferred recipient is
/// tried again.
fn retry(app: &TestApp) {
    app.clock.advance(Duration::from_secs(BACKOFF[0] as u64));
    app.outbound.wake_worker();
}

#[tokio::test]
async fn enforce_delivers_only_over_tls_verified_for_the_mx() {
    let mut scene = Scene::start(&["wrong.dest.test"], &policy("enforce", &["mx.dest.test"])).await;

    // The MX's certificate is trusted but names another host: deferred, the policy named.
    let (app, token) = scene.app().await;
    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Deferred).await;
    let port = scene.mx.smtp.port();
    assert_eq!(
        attempt.response.as_deref(),
        Some(
            format!(
                "MTA-STS policy of dest.test (enforce, id one): mx.dest.test (127.0.0.1:{port}): \
                 certificate not valid for mx.dest.test"
            )
            .as_str()
        ),
        "{attempt:?}"
    );
    assert_eq!(scene.delivered(), 0, "nothing was delivered");
    assert_eq!(scene.host.requests(), 1);
    app.stop().await;

    // A certificate for the MX host: delivered, verified.
    scene.replace_mx(&["mx.dest.test"]).await;
    let (app, token) = scene.app().await;
    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    assert_verified(&attempt);
    assert_eq!(scene.delivered(), 1);
    app.stop().await;
    scene.stop().await;
}

#[tokio::test]
async fn enforce_defers_mail_for_an_mx_the_policy_does_not_list_until_the_policy_changes() {
    let scene = Scene::start(&["mx.dest.test"], &policy("enforce", &["mx.other.test"])).await;
    let (app, token) = scene.app().await;

    let (uuid, attempt) = send_until(&app, &token, json!({}), RecipientState::Deferred).await;
    assert_eq!(
        attempt.response.as_deref(),
        Some(
            "MTA-STS policy of dest.test (enforce, id one): no MX host is one it allows \
             (MX: mx.dest.test; policy mx: mx.other.test)"
        ),
        "{attempt:?}"
    );
    assert_eq!(scene.delivered(), 0);

    // The domain publishes a new policy and a new id: it is fetched again and allows the MX.
    // (A restart, as the resolver keeps the old TXT record for its TTL; the policy kept in
    // the store has the old id.)
    scene.host.set_policy(&policy("enforce", &["*.dest.test"]));
    scene.dns.set_zone(sts_zone("two"));
    let app = scene.restart(app).await;
    retry(&app);
    let attempt = last_attempt_when(&app, &uuid, RecipientState::Delivered).await;
    assert_verified(&attempt);
    assert_eq!(scene.host.requests(), 2);
    assert_eq!(scene.delivered(), 1);
    app.stop().await;
    scene.stop().await;
}

#[tokio::test]
async fn testing_delivers_as_without_a_policy() {
    let scene = Scene::start(&["wrong.dest.test"], &policy("testing", &["mx.other.test"])).await;
    let (app, token) = scene.app().await;

    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    let tls = attempt.tls.clone().unwrap_or_default();
    assert!(
        tls.starts_with("TLSv1.3 ") && tls.ends_with(" unverified"),
        "{attempt:?}"
    );
    assert_eq!(scene.host.requests(), 1, "the policy was fetched");
    assert_eq!(scene.delivered(), 1);
    app.stop().await;
    scene.stop().await;
}

#[tokio::test]
async fn a_policy_that_cannot_be_fetched_is_no_policy_but_a_kept_one_still_holds_after_a_restart() {
    let scene = Scene::start(&["wrong.dest.test"], &policy("enforce", &["mx.dest.test"])).await;
    let enforced = "MTA-STS policy of dest.test (enforce, id one): ";

    // Never fetched, and the host answers 503: delivered as if the domain had no policy.
    scene.host.withdraw();
    let (app, token) = scene.app().await;
    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    assert!(attempt.tls.unwrap().ends_with(" unverified"));
    assert_eq!(scene.host.requests(), 1);
    app.stop().await;

    // Fetched once: enforced.
    scene.host.set_policy(&policy("enforce", &["mx.dest.test"]));
    let (app, token) = scene.app().await;
    let (uuid, attempt) = send_until(&app, &token, json!({}), RecipientState::Deferred).await;
    assert!(attempt.response.unwrap().starts_with(enforced));

    // A new id, a policy host that fails, a restart: the kept policy (not expired) holds.
    scene.host.withdraw();
    scene.dns.set_zone(sts_zone("two"));
    let app = scene.restart(app).await;
    let before = scene.host.requests();
    retry(&app);
    let attempt = deferred_again(&app, &uuid).await;
    let response = attempt.response.unwrap_or_default();
    assert!(response.starts_with(enforced), "{response}");
    assert_eq!(scene.host.requests(), before + 1, "the new id was tried");
    assert_eq!(scene.delivered(), 1, "only the mail sent before any policy");
    app.stop().await;
    scene.stop().await;
}

#[tokio::test]
async fn a_policy_is_taken_only_from_a_verified_host_and_never_through_a_redirect() {
    let enforce = policy("enforce", &["mx.dest.test"]);
    // The policy host's certificate names another host: no policy, delivered as usual.
    let scene = Scene::start_with(&["wrong.dest.test"], &enforce, &["www.dest.test"]).await;
    let (app, token) = scene.app().await;
    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    assert!(attempt.tls.unwrap().ends_with(" unverified"));
    assert_eq!(
        scene.host.requests(),
        0,
        "the handshake failed before any request"
    );
    app.stop().await;
    scene.stop().await;

    // A redirect to a host serving an enforce policy is not followed: no policy either.
    let scene = Scene::start(&["wrong.dest.test"], &enforce).await;
    let elsewhere = PolicyHost::start(&scene.ca, &[POLICY_HOST], &enforce).await;
    let url = format!(
        "https://{POLICY_HOST}:{}/.well-known/mta-sts.txt",
        elsewhere.port()
    );
    scene.host.move_to(&url);
    let (app, token) = scene.app().await;
    let (_, attempt) = send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    assert!(attempt.tls.unwrap().ends_with(" unverified"));
    assert_eq!((scene.host.requests(), elsewhere.requests()), (1, 0));
    app.stop().await;
    scene.stop().await;
}

#[tokio::test]
async fn a_message_requiring_tls_is_never_sent_in_clear_and_finally_expires() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "expiry_hours = 1").await;

    // The sink takes mail in clear: without require_tls it is delivered.
    send_until(&app, &token, json!({}), RecipientState::Delivered).await;
    assert_eq!(sink.messages().len(), 1);

    let (uuid, attempt) = send_until(
        &app,
        &token,
        json!({"require_tls": true}),
        RecipientState::Deferred,
    )
    .await;
    let port = sink.port();
    let reason = format!(
        "TLS required by the message (require_tls): mx.dest.test (127.0.0.1:{port}) \
         does not offer STARTTLS and TLS is required"
    );
    assert_eq!(
        attempt.response.as_deref(),
        Some(reason.as_str()),
        "{attempt:?}"
    );
    assert_eq!(attempt.tls, None);
    // The API and the dashboard say the message requires TLS.
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(api["require_tls"], json!(true), "{api}");
    let page = app
        .admin_browser()
        .await
        .get(&format!("/outbound/{uuid}"))
        .await;
    assert!(
        page.body
            .contains("<dd id=\"require-tls\">yes: verified TLS or no delivery</dd>"),
        "{}",
        page.body
    );

    // An hour on, the next try is past the expiry: given up, with the same reason.
    app.clock.advance(Duration::from_secs(3600));
    app.outbound.wake_worker();
    let attempt = last_attempt_when(&app, &uuid, RecipientState::Expired).await;
    assert_eq!(attempt.response.as_deref(), Some(reason.as_str()));
    assert_eq!(sink.messages().len(), 1, "never delivered in clear");
    app.stop().await;
}

#[tokio::test]
async fn a_message_requiring_tls_goes_over_tls_verified_for_the_mx() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let dns = DnsServer::start(dest_zone()).await;
    let root = ca.write_root(dir.path());
    let trusted = format!("extra_ca_file = {root:?}");

    // Trusted, but for another name: deferred.
    let wrong = tls_mx(&ca, &["wrong.dest.test"], &dir, &receiver).await;
    let (app, token) = delivering_app(&dns, wrong.smtp.port(), &trusted).await;
    let (_, attempt) = send_until(
        &app,
        &token,
        json!({"require_tls": true}),
        RecipientState::Deferred,
    )
    .await;
    assert!(
        attempt
            .response
            .as_deref()
            .unwrap()
            .starts_with("TLS required by the message (require_tls): mx.dest.test"),
        "{attempt:?}"
    );
    app.stop().await;
    wrong.stop().await;

    let right = tls_mx(&ca, &["mx.dest.test"], &dir, &receiver).await;
    let (app, token) = delivering_app(&dns, right.smtp.port(), &trusted).await;
    let (uuid, attempt) = send_until(
        &app,
        &token,
        json!({"require_tls": true}),
        RecipientState::Delivered,
    )
    .await;
    assert_verified(&attempt);
    assert_eq!(receiver.requests().len(), 1);
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(api["require_tls"], json!(true));
    assert_eq!(api["attempts"][0]["tls"], json!(attempt.tls));
    app.stop().await;
    right.stop().await;
}
