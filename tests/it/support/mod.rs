//! Test harness: the real server on port 0 ([`TestApp`], started through [`Launch`]), a
//! real HTTP receiver on port 0, a raw SMTP client for protocol edge cases, a DNS server on
//! loopback for SPF, DKIM, DMARC and MX, a browser with a cookie jar, the real binary as a
//! process (`binary`), and waiting for background work (`wait`).
//!
//! One home each for what tests share: the admin and viewer accounts and browsers signed
//! in as them ([`TestApp::admin_browser`], [`TestApp::viewer_browser`]), `eventually`, one
//! pass of a background task ([`TestApp::run_events_once`], [`TestApp::run_worker_once`],
//! [`TestApp::run_retention_once`]),
//! and a visible line for a skipped test ([`skipped`]).

#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod certs;
pub mod dns;
pub mod oidc;
pub mod pebble;
pub mod policy_host;
pub mod raw_tcp;
pub mod receiver;
pub mod s3;
pub mod scan;
pub mod sink;
pub mod smtp;
pub mod tls_client;
pub mod tls_front;
pub mod wait;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use postern::accounts::{Accounts, Actor, NewPassword, PasswordParams, Role};
use postern::app::{App, AppOptions, Passes};
use postern::clock::Clock;
use postern::config::{Config, TargetUrl};
use postern::outbound::dkim::Algorithm;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use browser::Browser;
pub use receiver::Receiver;
pub use smtp::Smtp;
pub use wait::{eventually, eventually_ok};

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            postern::telemetry::init(Some("debug"), "debug");
        }
    });
}

/// With encryption on, an app seals with the key file its config names when it exists, else
/// with `<data_dir>/keyring`, made when missing (as `postern dev` does).
pub fn keyring_in(config: &mut Config, data_dir: &std::path::Path) {
    if !config.encryption.enabled || config.encryption.key_file.exists() {
        return;
    }
    config.encryption.key_file = data_dir.join("keyring");
    if !config.encryption.key_file.exists() {
        postern::crypto::Keyring::generate()
            .save(&config.encryption.key_file, None)
            .expect("the test keyring is written");
    }
}

/// Makes a test's data directory private, as `postern` refuses any other (tempfile makes
/// them 0755 under the usual umask), and gives the files the test process writes later the
/// umask `postern` runs with.
pub fn private(data_dir: &std::path::Path) {
    postern::datadir::restrict_umask();
    postern::datadir::tighten(data_dir).expect("the test data directory is made private");
}

/// A loopback port free for both TCP and UDP right now (bound, then released): for a
/// server the test starts, which may also take UDP there (Pebble's DNS).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The admin every `TestApp` starts with.
pub const ADMIN_EMAIL: &str = "admin@postern.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";

/// The viewer account a test adds with [`TestApp::add_viewer`].
pub const VIEWER_EMAIL: &str = "viewer@postern.test";
pub const VIEWER_PASSWORD: &str = "viewer password for tests";

/// A running Postern on ephemeral loopback ports with its own data directory, an admin
/// ([`ADMIN_EMAIL`], [`ADMIN_PASSWORD`]) and an admin API key that [`TestApp::get_json`]
/// sends. The accounts run on a manual clock (`clock`), standing still unless advanced.
pub struct TestApp {
    pub smtp: SocketAddr,
    /// The `[submission]` listeners (dev mode: one, with AUTH taken without TLS).
    pub submission: Vec<SocketAddr>,
    /// The implicit-TLS submission listeners (`[submission] tls_listen`).
    pub submission_tls: Vec<SocketAddr>,
    pub web: SocketAddr,
    /// The port-80 redirect listener (`[web] http_listen`).
    pub http: Option<SocketAddr>,
    pub data_dir: TempDir,
    pub accounts: Accounts,
    /// Credentials and the queue, as `postern credential` sees them.
    pub outbound: postern::outbound::Outbound,
    pub clock: Clock,
    /// `Authorization: Bearer` value of an admin key.
    pub api_key: String,
    passes: Passes,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// How an app starts from TOML config text, with the switches a test may turn on.
    pub fn launch(toml: &str) -> Launch {
        Launch {
            toml: toml.to_string(),
            data_dir: None,
            web: "127.0.0.1:0".into(),
            spf: false,
            deliver: false,
        }
    }

    /// Starts from TOML config text; listeners and data dir are overridden for the test,
    /// SPF and the delivery worker are off (see [`Launch`]).
    pub async fn start(toml: &str) -> TestApp {
        TestApp::launch(toml).start().await
    }

    /// Like [`TestApp::start`], on an existing data directory.
    pub async fn start_in(toml: &str, data_dir: TempDir) -> TestApp {
        TestApp::launch(toml).in_dir(data_dir).start().await
    }

    /// Like [`TestApp::start_in`], with the web listener on `web` (a URL known in advance,
    /// e.g. to register a callback at an identity provider).
    pub async fn start_on(toml: &str, data_dir: TempDir, web: &str) -> TestApp {
        TestApp::launch(toml)
            .in_dir(data_dir)
            .web_on(web)
            .start()
            .await
    }

    /// Dev mode, optionally forwarding to `forward`.
    pub async fn dev(forward: Option<&str>) -> TestApp {
        TestApp::dev_with(forward, |_| {}).await
    }

    /// Dev mode with `tweak` applied to its config.
    pub async fn dev_with(forward: Option<&str>, tweak: impl FnOnce(&mut Config)) -> TestApp {
        init();
        let data_dir = tempfile::tempdir().unwrap();
        let config = Config::dev(
            data_dir.path().to_owned(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            forward.map(|f| TargetUrl::parse(f).unwrap()),
        );
        // As `postern dev` does (its --submission flag).
        let mut config = config;
        config.submission.listen = vec!["127.0.0.1:0".parse().unwrap()];
        tweak(&mut config);
        TestApp::from_config(config, data_dir).await
    }

    pub async fn from_config(mut config: Config, data_dir: TempDir) -> TestApp {
        private(data_dir.path());
        keyring_in(&mut config, data_dir.path());
        let clock = Clock::manual(time::OffsetDateTime::now_utc());
        let options = AppOptions {
            clock: clock.clone(),
            password: PasswordParams::insecure_for_tests(),
        };
        let app = App::build_with(config, options).await.expect("app builds");
        let accounts = app.accounts().clone();
        let outbound = app.outbound().clone();
        // A restart on the same data directory finds the admin there already.
        let users = accounts.users().await.expect("users are listed");
        if !users.iter().any(|u| u.email == ADMIN_EMAIL) {
            accounts
                .create_user(
                    ADMIN_EMAIL,
                    Role::Admin,
                    NewPassword::Given(ADMIN_PASSWORD.into()),
                    &Actor::Cli,
                )
                .await
                .expect("the test admin is created");
        }
        let (_, api_key) = accounts
            .create_api_key("tests", Role::Admin, &Actor::Cli)
            .await
            .expect("the test API key is created");
        let passes = app.passes();
        let (smtp, web) = (app.smtp_addr(), app.web_addr());
        let submission = app.submission_addrs().to_vec();
        let submission_tls = app.submission_tls_addrs().to_vec();
        let http = app.http_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            smtp,
            submission,
            submission_tls,
            web,
            http,
            data_dir,
            accounts,
            outbound,
            clock,
            api_key,
            passes,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn smtp(&self) -> Smtp {
        Smtp::connect(self.smtp).await
    }

    /// `GET /api/messages`.
    pub async fn messages(&self) -> Vec<Value> {
        let page = self.get_json("/api/messages").await;
        page["messages"].as_array().cloned().unwrap_or_default()
    }

    /// `GET path` with the admin API key; the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// `GET path` with the admin API key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap()
    }

    /// A request with `Authorization: Bearer key` (and a JSON body when given); the status
    /// and the JSON answer (`Null` for an empty one).
    pub async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = match text.is_empty() {
            true => Value::Null,
            false => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")),
        };
        (status, json)
    }

    /// `POST /api/v0.1/{username}/messages` (the send API) with `token`; status and answer.
    pub async fn post_message(&self, username: &str, token: &str, body: Value) -> (u16, Value) {
        let path = format!("/api/v0.1/{username}/messages");
        self.call(token, reqwest::Method::POST, &path, Some(body))
            .await
    }

    /// A credential made as `postern credential add` makes it; its token.
    pub async fn credential(&self, spec: postern::outbound::NewCredentialSpec) -> String {
        let made = self.outbound.create_credential(spec).await;
        made.expect("the credential is made").1
    }

    /// `example.com` as a sending domain (Ed25519 DKIM key, return path `mta.example.com`).
    pub async fn add_example_sending_domain(&self) {
        self.outbound
            .add_sending_domain("example.com", Algorithm::Ed25519, None, "mx.postern.test")
            .await
            .expect("example.com is added as a sending domain");
    }

    /// The bytes queued for the outbound message `uuid`.
    pub async fn queued_content(&self, uuid: &str) -> Vec<u8> {
        let store = self.outbound.store();
        let summary = store.outbound_message(uuid).await.unwrap();
        let summary = summary.expect("the message is in the queue");
        let content = store.outbound_content(summary.row_id).await.unwrap();
        content.expect("the message has content")
    }

    /// One message from `sender@example.org` to `to` over SMTP (RCPT must be accepted);
    /// the reply to its end of data.
    pub async fn mail_to(&self, to: &str) -> String {
        let mut smtp = self.smtp().await;
        smtp.ehlo().await;
        smtp.send_mail("sender@example.org", &[to], "Subject: hi\r\n\r\nhello")
            .await
    }

    /// The RCPT reply for `to` (after `MAIL FROM:<sender@example.org>`).
    pub async fn rcpt_reply(&self, to: &str) -> String {
        let mut smtp = self.smtp().await;
        smtp.ehlo().await;
        smtp.cmd("MAIL FROM:<sender@example.org>", "250").await;
        smtp.send(format!("RCPT TO:<{to}>\r\n").as_bytes()).await;
        smtp.reply().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    /// A browser (cookie jar, no redirects followed) for this app.
    pub fn browser(&self) -> Browser {
        Browser::new(self.web)
    }

    /// A browser signed in as `email`.
    pub async fn signed_in(&self, email: &str, password: &str) -> Browser {
        let mut browser = self.browser();
        browser.sign_in(email, password).await;
        browser
    }

    /// A browser signed in as the admin.
    pub async fn admin_browser(&self) -> Browser {
        self.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Adds the viewer account ([`VIEWER_EMAIL`], [`VIEWER_PASSWORD`]).
    pub async fn add_viewer(&self) {
        self.accounts
            .create_user(
                VIEWER_EMAIL,
                Role::Viewer,
                NewPassword::Given(VIEWER_PASSWORD.into()),
                &Actor::Cli,
            )
            .await
            .expect("the viewer is created");
    }

    /// Adds the viewer account and a browser signed in as it.
    pub async fn viewer_browser(&self) -> Browser {
        self.add_viewer().await;
        self.signed_in(VIEWER_EMAIL, VIEWER_PASSWORD).await
    }

    /// One round of the events webhook now, as its task runs each time it wakes: the due
    /// events it took. Zero means nothing was due — a claim a test can check, where a
    /// sleep could only show that nothing had happened *yet*.
    pub async fn run_events_once(&self) -> usize {
        self.passes
            .events()
            .await
            .expect("the events queue is readable")
    }

    /// One round of the inbound queue now: the queued messages due that it POSTed.
    pub async fn run_inbound_queue_once(&self) -> usize {
        self.passes
            .inbound_queue()
            .await
            .expect("the inbound queue is readable")
    }

    /// One re-encryption pass now (as `serve` runs every 10 minutes): the values it sealed
    /// with the current key.
    pub async fn run_reencrypt_once(&self) -> u64 {
        self.passes
            .reencrypt()
            .await
            .expect("every stored value opens")
    }

    /// One pass of the delivery worker now, waiting for the attempts it started: the
    /// recipients it attempted. Panics when the app has no worker (see
    /// [`Launch::delivering`]).
    pub async fn run_worker_once(&self) -> usize {
        self.passes
            .deliveries()
            .await
            .expect("the app runs the delivery worker (TestApp::launch(…).delivering())")
    }

    /// One retention sweep now, as of the manual clock (the sweeper's loop does not run on
    /// a manual clock, so nothing races the test): what it deleted.
    pub async fn run_retention_once(&self) -> postern::store::Swept {
        self.passes
            .retention()
            .await
            .expect("the retention sweep runs")
    }

    /// Triggers the shutdown and waits for the drain; the data directory is handed back
    /// (for a restart on it).
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the app drains within 30 s")
                .unwrap();
        }
        self.data_dir
    }
}

/// How a [`TestApp`] starts ([`TestApp::launch`]). Tests never ask the machine's resolver,
/// so SPF checks and the delivery worker (MX lookups) are switched off unless the test
/// turns them on, having pointed them at its own loopback DNS server (or a relay). The
/// switches are explicit rather than read from the config text, which may name the DNS
/// servers under any of its keys, in any order.
pub struct Launch {
    toml: String,
    data_dir: Option<TempDir>,
    web: String,
    spf: bool,
    deliver: bool,
}

impl Launch {
    /// SPF as the config says (`[auth] spf`), instead of off.
    pub fn checking_spf(mut self) -> Launch {
        self.spf = true;
        self
    }

    /// The delivery worker as the config says (`[outbound] deliver`, on by default),
    /// instead of off.
    pub fn delivering(mut self) -> Launch {
        self.deliver = true;
        self
    }

    /// On an existing data directory (a restart).
    pub fn in_dir(mut self, data_dir: TempDir) -> Launch {
        self.data_dir = Some(data_dir);
        self
    }

    /// The web listener on `web` instead of an ephemeral port.
    pub fn web_on(mut self, web: &str) -> Launch {
        self.web = web.to_string();
        self
    }

    pub async fn start(self) -> TestApp {
        init();
        let data_dir = match self.data_dir {
            Some(data_dir) => data_dir,
            None => tempfile::tempdir().unwrap(),
        };
        let mut env: Vec<(String, String)> = vec![
            ("POSTERN_SMTP__LISTEN".into(), "127.0.0.1:0".into()),
            ("POSTERN_WEB__LISTEN".into(), self.web),
            (
                "POSTERN_SERVER__DATA_DIR".into(),
                data_dir.path().display().to_string(),
            ),
        ];
        if !self.spf {
            env.push(("POSTERN_AUTH__SPF".into(), "false".into()));
        }
        if !self.deliver {
            env.push(("POSTERN_OUTBOUND__DELIVER".into(), "false".into()));
        }
        let config = Config::from_toml(&self.toml, env).expect("test config is valid");
        TestApp::from_config(config, data_dir).await
    }
}

/// Says that the running test was skipped and why, on the terminal itself: the harness
/// captures a passing test's `println!`, and a skip that nobody sees reads as a pass.
pub fn skipped(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED: {why}");
}

/// A config routing `addresses` (pattern, target URL) with JSON Normalized.
pub fn config_with(addresses: &[(&str, String)], extra: &str) -> String {
    config_with_format(addresses, "json+n", extra)
}

/// A config routing `addresses` (pattern, target URL) with the payload format `format`.
pub fn config_with_format(addresses: &[(&str, String)], format: &str, extra: &str) -> String {
    let mut toml = String::from("[server]\nhostname = \"mx.postern.test\"\n");
    toml.push_str(extra);
    for (pattern, target) in addresses {
        toml.push_str(&format!(
            "\n[[address]]\naddress = \"{pattern}\"\ntarget = \"{target}\"\nformat = \"{format}\"\n"
        ));
    }
    toml
}
