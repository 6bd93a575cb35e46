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
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::pebble::{Pebble, Validation, free_port};
use crate::support::scan::files_holding;
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
    async fn first_certificate(&self, trust: &Arc<ClientConfig>) -> Vec<u8> {
        let deadline = Instant::now() + ORDER;
        loop {
            match https_leaf(self.ports.web, trust).await {
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
) -> Option<(Pebble, Arc<ClientConfig>, Serve)> {
    crate::support::init();
    let pebble = Pebble::start(validity_secs, validation).await?;
    let trust = trusting(&pebble.issuing_root().await);
    let serve = Serve::start(&pebble, ports(&pebble));
    Some((pebble, trust, serve))
}

/// A TLS client trusting only `root_pem` (no public roots).
fn trusting(root_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A dashboard client trusting only `root_pem`, `HOST` resolved to the web listener.
fn dashboard_client(root_pem: &str, web: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap()])
        .resolve(HOST, Ports::addr(web))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The leaf certificate (DER) of a handshake over `stream` for `HOST`, verified by `trust`.
async fn leaf(stream: TcpStream, trust: &Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let connector = tokio_rustls::TlsConnector::from(trust.clone());
    let tls = connector
        .connect(ServerName::try_from(HOST).unwrap(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let certificates = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no certificate")?;
    Ok(certificates[0].to_vec())
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    TcpStream::connect(Ports::addr(port))
        .await
        .map_err(|e| e.to_string())
}

async fn https_leaf(port: u16, trust: &Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    leaf(connect(port).await?, trust).await
}

/// One SMTP reply (all its lines); the last line's text.
async fn reply(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await.expect("the server answers");
        line.push(byte);
        if line.ends_with(b"\r\n") {
            if line.get(3) == Some(&b' ') {
                return String::from_utf8_lossy(&line).into_owned();
            }
            line.clear();
        }
    }
}

/// The leaf served after STARTTLS on an SMTP listener.
async fn starttls_leaf(port: u16, trust: &Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let mut stream = connect(port).await?;
    reply(&mut stream).await;
    stream.write_all(b"EHLO client.test\r\n").await.unwrap();
    reply(&mut stream).await;
    stream.write_all(b"STARTTLS\r\n").await.unwrap();
    let ready = reply(&mut stream).await;
    assert!(ready.starts_with("220"), "STARTTLS refused: {ready}");
    leaf(stream, trust).await
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
    let root = pebble.issuing_root().await;
    let started = Instant::now();
    let first = serve.first_certificate(&trust).await;
    eprintln!(
        "acme: time to first certificate (TLS-ALPN-01, Pebble): {:?}",
        started.elapsed()
    );

    // (a) The dashboard over HTTPS, trusting only Pebble's root.
    let settings = serve
        .settings(dashboard_client(&root, serve.ports.web))
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
    let on_mx = starttls_leaf(ports.smtp, &trust).await.unwrap();
    assert!(on_mx == first, "the MX listener serves another certificate");
    let on_submission = starttls_leaf(ports.submission, &trust).await.unwrap();
    assert!(
        on_submission == first,
        "submission serves another certificate"
    );
    let implicit = leaf(connect(ports.submission_tls).await.unwrap(), &trust).await;
    assert!(
        implicit.unwrap() == first,
        "port 465 serves another certificate"
    );

    // (c) Renewed (a third of 30 s left) and served without a restart, on every listener.
    let deadline = Instant::now() + ORDER;
    let renewed = loop {
        let now = https_leaf(ports.web, &trust).await.unwrap();
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
    let on_smtp = starttls_leaf(ports.smtp, &trust).await.unwrap();
    assert!(
        on_smtp == renewed,
        "the MX listener serves another certificate"
    );
    let settings = serve.settings(dashboard_client(&root, ports.web)).await;
    assert!(settings.contains("<td>renewed</td>"), "{settings}");
}

#[tokio::test]
async fn a_restart_serves_the_cached_certificate_sealed_in_the_store() {
    let ports = |_: &Pebble| Ports::new(free_port(), None);
    let Some((pebble, trust, mut serve)) = scene(86_400, Validation::AlwaysValid, ports).await
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
    let root = pebble.issuing_root().await;
    let settings = serve
        .settings(dashboard_client(&root, serve.ports.web))
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
        starttls_leaf(serve.ports.smtp, &trust).await.unwrap(),
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
    let refused = starttls_leaf(serve.ports.smtp, &trust).await;
    assert!(refused.is_err(), "a CA certificate without validation");
}
