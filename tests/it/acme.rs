//! ACME against Debian's Pebble (`support::pebble`): the real `postern serve` with
//! `[tls] mode = "acme"` gets a certificate the CA really validated (TLS-ALPN-01 on the HTTPS
//! listener, HTTP-01 on the port-80 one), serves it on HTTPS, SMTP STARTTLS, submission and
//! port 465 (clients trust only Pebble's root), renews it without a restart, keeps it sealed
//! in the store across a restart, and until the first one exists serves a temporary
//! self-signed certificate while `/settings` says why.
//!
//! Skipped (said on the terminal) without `pebble`, unless `TEST_ACME=required`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls_pki_types::CertificateDer;

use crate::support::free_port;
use crate::support::pebble::{Pebble, Validation};
use crate::support::scan::files_holding;
use crate::support::tls_client::TlsClient;
use crate::support::{Browser, binary, private};

const HOST: &str = "mail.postern.test";
const ADMIN: &str = "admin@postern.test";
const PASSWORD: &str = "acme test password";
/// How long an order may take on a loaded machine (Pebble issues in about 3 s here).
const ORDER: Duration = Duration::from_secs(90);

/// `postern serve` over its own data directory, killed when dropped.
struct Serve {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    ports: Ports,
}

#[derive(Clone, Copy)]
struct Ports {
    web: u16,
    smtp: u16,
    submission: u16,
    submission_tls: u16,
    /// `[web] http_listen`, with HTTP-01.
    http: Option<u16>,
}

impl Ports {
    fn new(web: u16, http: Option<u16>) -> Ports {
        Ports {
            web,
            smtp: free_port(),
            submission: free_port(),
            submission_tls: free_port(),
            http,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

impl Serve {
    /// The config for `pebble`, the admin user made with the CLI, and `serve` started.
    fn start(pebble: &Pebble, ports: Ports) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        private(dir.path());
        let config = dir.path().join("postern.toml");
        std::fs::write(&config, config_text(dir.path(), pebble, ports)).unwrap();
        let (code, _, err) = binary::run_with_stdin(
            binary::postern()
                .args([
                    "user",
                    "add",
                    "--email",
                    ADMIN,
                    "--password-stdin",
                    "--config",
                ])
                .arg(&config),
            &format!("{PASSWORD}\n"),
        );
        assert_eq!(code, 0, "user add: {err}");
        let mut serve = Serve {
            child: None,
            log: dir.path().join("serve.log"),
            config,
            dir,
            ports,
        };
        serve.spawn();
        serve
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = binary::postern()
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postern serve starts");
        self.child = Some(child);
    }

    /// SIGTERM, and the exit code.
    fn stop(&mut self) -> i32 {
        let mut child = self.child.take().expect("serve runs");
        // SAFETY: signals the child we started and still own.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        child.wait().unwrap().code().unwrap_or(-1)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn https_base(&self) -> String {
        format!("https://{HOST}:{}", self.ports.web)
    }

    /// The admin signed in over HTTPS through `client`.
    async fn admin(&self, client: reqwest::Client) -> Browser {
        let mut browser = Browser::over(&self.https_base(), client);
        browser.sign_in(ADMIN, PASSWORD).await;
        browser
    }

    /// `/settings` as the admin sees it, over HTTPS through `client`.
    async fn settings(&self, client: reqwest::Client) -> String {
        let page = self.admin(client).await.get("/settings").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.body
    }

    /// Waits until HTTPS serves a certificate chaining to `trust`; its leaf (DER).
    async fn first_certificate(&self, trust: &TlsClient) -> CertificateDer<'static> {
        let deadline = Instant::now() + ORDER;
        loop {
            match trust.https_leaf(Ports::addr(self.ports.web)).await {
                Ok(leaf) => return leaf,
                Err(seen) if Instant::now() > deadline => panic!(
                    "no CA certificate on HTTPS after {ORDER:?} ({seen}); serve's log:\n{}",
                    self.log()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config_text(dir: &Path, pebble: &Pebble, ports: Ports) -> String {
    let (challenge, http) = match ports.http {
        Some(port) => (
            "challenge = \"http-01\"\n",
            format!("http_listen = \"127.0.0.1:{port}\"\n"),
        ),
        None => ("", String::new()),
    };
    format!(
        r#"[server]
hostname = "{HOST}"
data_dir = "{dir}"
[smtp]
listen = "127.0.0.1:{smtp}"
[submission]
listen = "127.0.0.1:{submission}"
tls_listen = "127.0.0.1:{submission_tls}"
[web]
listen = "127.0.0.1:{web}"
{http}[tls]
mode = "acme"
directory = "{directory}"
contact = ["postmaster@postern.test"]
acme_ca_file = "{ca}"
{challenge}"#,
        dir = dir.display(),
        smtp = ports.smtp,
        submission = ports.submission,
        submission_tls = ports.submission_tls,
        web = ports.web,
        directory = pebble.directory,
        ca = pebble.ca_file.display(),
    )
}

/// Pebble issuing for `validity_secs`, a client trusting only its root, and `serve` on
/// `ports(&pebble)`; `None` when Pebble is not installed (the skip is said).
async fn scene(
    validity_secs: u64,
    validation: Validation,
    ports: impl FnOnce(&Pebble) -> Ports,
) -> Option<(Pebble, TlsClient, Serve)> {
    crate::support::init();
    let pebble = Pebble::start(validity_secs, validation).await?;
    let trust = TlsClient::trusting(&pebble.issuing_root().await, HOST);
    let serve = Serve::start(&pebble, ports(&pebble));
    Some((pebble, trust, serve))
}

/// A PEM body line of `der` (the second: past the common header bytes), as a cache in
/// plaintext would hold it.
fn pem_line(der: &[u8]) -> Vec<u8> {
    let base64 = base64::engine::general_purpose::STANDARD.encode(der);
    base64.as_bytes()[64..128].to_vec()
}

#[tokio::test]
async fn tls_alpn_01_certificate_on_every_listener_and_renewed_without_restart() {
    // Pebble's validation authority connects to its tlsPort: the HTTPS listener.
    let ports = |pebble: &Pebble| Ports::new(pebble.tls_port, None);
    let Some((pebble, trust, serve)) = scene(30, Validation::Real, ports).await else {
        return;
    };
    let started = Instant::now();
    let first = serve.first_certificate(&trust).await;
    eprintln!(
        "acme: time to first certificate (TLS-ALPN-01, Pebble): {:?}",
        started.elapsed()
    );

    // (a) The dashboard over HTTPS, trusting only Pebble's root.
    let settings = serve
        .settings(trust.https_client(Ports::addr(serve.ports.web)))
        .await;
    assert!(settings.contains("Pebble"), "the issuer:\n{settings}");
    let source = format!("Ordered from {} (TLS-ALPN-01", pebble.directory);
    assert!(settings.contains(&source), "the ACME source:\n{settings}");
    assert!(
        settings.contains("<td>issued</td>"),
        "an issued event:\n{settings}"
    );
    assert!(!settings.contains("acme-pending"), "{settings}");

    // (b) The same certificate on STARTTLS (MX and submission) and implicit TLS (465).
    let ports = serve.ports;
    let on_mx = trust
        .starttls(Ports::addr(ports.smtp))
        .await
        .map(|(_, leaf)| leaf)
        .unwrap();
    assert!(on_mx == first, "the MX listener serves another certificate");
    let on_submission = trust
        .starttls(Ports::addr(ports.submission))
        .await
        .map(|(_, leaf)| leaf)
        .unwrap();
    assert!(
        on_submission == first,
        "submission serves another certificate"
    );
    let implicit = trust.implicit_tls(Ports::addr(ports.submission_tls)).await;
    assert!(
        implicit.unwrap().1 == first,
        "port 465 serves another certificate"
    );

    // (c) Renewed (a third of 30 s left) and served without a restart, on every listener.
    let deadline = Instant::now() + ORDER;
    let renewed = loop {
        let now = trust.https_leaf(Ports::addr(ports.web)).await.unwrap();
        if now != first {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "not renewed; log:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("acme: renewed {:?} after the start", started.elapsed());
    let on_smtp = trust
        .starttls(Ports::addr(ports.smtp))
        .await
        .map(|(_, leaf)| leaf)
        .unwrap();
    assert!(
        on_smtp == renewed,
        "the MX listener serves another certificate"
    );
    let settings = serve
        .settings(trust.https_client(Ports::addr(ports.web)))
        .await;
    assert!(settings.contains("<td>renewed</td>"), "{settings}");
}

#[tokio::test]
async fn a_restart_serves_the_cached_certificate_sealed_in_the_store() {
    let ports = |_: &Pebble| Ports::new(free_port(), None);
    let Some((_pebble, trust, mut serve)) = scene(86_400, Validation::AlwaysValid, ports).await
    else {
        return;
    };
    let first = serve.first_certificate(&trust).await;
    assert_eq!(serve.stop(), 0, "log:\n{}", serve.log());

    // The certificate's key and the account key are sealed: no PEM, no DER line of the
    // certificate in any file of the data directory (a plaintext cache would hold both).
    let data = serve.dir.path();
    assert_eq!(files_holding(data, b"PRIVATE KEY"), Vec::<String>::new());
    assert_eq!(files_holding(data, &pem_line(&first)), Vec::<String>::new());

    let restarted = Instant::now();
    serve.spawn();
    let again = serve.first_certificate(&trust).await;
    eprintln!(
        "acme: certificate served {:?} after a restart (from the store)",
        restarted.elapsed()
    );
    assert!(again == first, "a restart ordered a new certificate");
    let settings = serve
        .settings(trust.https_client(Ports::addr(serve.ports.web)))
        .await;
    assert_eq!(settings.matches("<td>issued</td>").count(), 1, "{settings}");
    assert!(settings.contains("<td>cached</td>"), "{settings}");
}

#[tokio::test]
async fn http_01_is_answered_on_the_port_80_listener() {
    // Pebble's validation authority asks its httpPort: the port-80 listener.
    let ports = |pebble: &Pebble| Ports::new(free_port(), Some(pebble.http_port));
    let Some((_pebble, trust, serve)) = scene(86_400, Validation::Real, ports).await else {
        return;
    };
    let started = Instant::now();
    let first = serve.first_certificate(&trust).await;
    eprintln!(
        "acme: time to first certificate (HTTP-01, Pebble): {:?}",
        started.elapsed()
    );
    assert_eq!(
        trust
            .starttls(Ports::addr(serve.ports.smtp))
            .await
            .map(|(_, leaf)| leaf)
            .unwrap(),
        first
    );
}

#[tokio::test]
async fn until_the_ca_issues_listeners_serve_a_temporary_certificate_and_settings_say_why() {
    // The HTTPS listener is not where Pebble connects: every validation fails.
    let ports = |_: &Pebble| Ports::new(free_port(), None);
    let Some((_pebble, trust, serve)) = scene(86_400, Validation::Real, ports).await else {
        return;
    };
    let any_certificate = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(HOST, Ports::addr(serve.ports.web))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + ORDER;
    let settings = loop {
        if let Ok(answer) = any_certificate
            .get(serve.https_base() + "/healthz")
            .send()
            .await
            && answer.status().is_success()
        {
            let settings = serve.settings(any_certificate.clone()).await;
            if settings.contains("the last order failed") {
                break settings;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no failure shown; log:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(settings.contains("id=\"acme-pending\""), "{settings}");
    assert!(settings.contains("<td>failed</td>"), "{settings}");
    // The CA's own words (Pebble's problem type for a failed connection).
    assert!(
        settings.contains("urn:ietf:params:acme:error:"),
        "{settings}"
    );
    // STARTTLS is still offered, with the temporary certificate (not Pebble's).
    let refused = trust
        .starttls(Ports::addr(serve.ports.smtp))
        .await
        .map(|(_, leaf)| leaf);
    assert!(refused.is_err(), "a CA certificate without validation");
}
