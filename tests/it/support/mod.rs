//! Test harness: the real server on port 0, a real HTTP receiver on port 0, a raw SMTP
//! client for protocol edge cases, and a DNS server on loopback for SPF, DKIM and DMARC.

#![allow(dead_code)]

pub mod browser;
pub mod dns;
pub mod oidc;
pub mod receiver;
pub mod sink;
pub mod smtp;

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use postern::accounts::{Accounts, Actor, NewPassword, PasswordParams, Role};
use postern::app::{App, AppOptions};
use postern::clock::Clock;
use postern::config::{Config, TargetUrl};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use browser::Browser;
pub use receiver::Receiver;
pub use smtp::Smtp;

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            postern::telemetry::init(Some("debug"));
        }
    });
}

/// The admin every `TestApp` starts with.
pub const ADMIN_EMAIL: &str = "admin@postern.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";

/// A running Postern on ephemeral loopback ports with its own data directory, an admin
/// ([`ADMIN_EMAIL`], [`ADMIN_PASSWORD`]) and an admin API key that [`TestApp::get_json`]
/// sends. The accounts run on a manual clock (`clock`), standing still unless advanced.
pub struct TestApp {
    pub smtp: SocketAddr,
    /// The `[submission]` listeners (dev mode: one, with AUTH taken without TLS).
    pub submission: Vec<SocketAddr>,
    pub web: SocketAddr,
    pub data_dir: TempDir,
    pub accounts: Accounts,
    /// Credentials and the queue, as `postern credential` sees them.
    pub outbound: postern::outbound::Outbound,
    pub clock: Clock,
    /// `Authorization: Bearer` value of an admin key.
    pub api_key: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Starts from TOML config text; listeners and data dir are overridden for the test.
    pub async fn start(toml: &str) -> TestApp {
        TestApp::start_in(toml, tempfile::tempdir().unwrap()).await
    }

    /// Like [`TestApp::start`], on an existing data directory.
    pub async fn start_in(toml: &str, data_dir: TempDir) -> TestApp {
        TestApp::start_on(toml, data_dir, "127.0.0.1:0").await
    }

    /// Like [`TestApp::start_in`], with the web listener on `web` (a URL known in advance,
    /// e.g. to register a callback at an identity provider).
    pub async fn start_on(toml: &str, data_dir: TempDir, web: &str) -> TestApp {
        init();
        let mut env: Vec<(String, String)> = [
            ("POSTERN_SMTP__LISTEN", "127.0.0.1:0".to_string()),
            ("POSTERN_WEB__LISTEN", web.to_string()),
            (
                "POSTERN_SERVER__DATA_DIR",
                data_dir.path().display().to_string(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        // Tests never ask the machine's resolver: SPF is off unless a test configures
        // [auth] with its own loopback DNS server.
        if !toml.contains("[auth]") {
            env.push(("POSTERN_AUTH__SPF".into(), "false".into()));
        }
        // Nor does the delivery worker: it runs only where a test's [outbound] section
        // starts with its own loopback DNS server (`[outbound]\ndns = …`).
        if !toml.contains("[outbound]\ndns") {
            env.push(("POSTERN_OUTBOUND__DELIVER".into(), "false".into()));
        }
        let config = Config::from_toml(toml, env).expect("test config is valid");
        TestApp::from_config(config, data_dir).await
    }

    /// Dev mode, optionally forwarding to `forward`.
    pub async fn dev(forward: Option<&str>) -> TestApp {
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
        TestApp::from_config(config, data_dir).await
    }

    pub async fn from_config(config: Config, data_dir: TempDir) -> TestApp {
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
        let (smtp, web) = (app.smtp_addr(), app.web_addr());
        let submission = app.submission_addrs().to_vec();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            smtp,
            submission,
            web,
            data_dir,
            accounts,
            outbound,
            clock,
            api_key,
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    /// A browser (cookie jar, no redirects followed) for this app.
    pub fn browser(&self) -> Browser {
        Browser::new(self.web)
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
