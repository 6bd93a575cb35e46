//! One certificate for every listener (`[tls]`), against real sockets and a real TLS client
//! trusting only a private test CA: the HTTPS dashboard (with HSTS), STARTTLS on the MX and
//! submission listeners and implicit TLS on the port-465-style listener all present the
//! same certificate; new files are served without a restart (on change, and on SIGHUP to
//! the real binary) while open sessions go on; the port-80 listener only redirects; with no
//! `[tls]` the MX still offers STARTTLS; `check` names what the certificate covers and
//! refuses a pair that does not fit.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::BufReader;
use tokio::net::TcpStream;

use crate::support::TestApp;
use crate::support::binary::{Server, run};
use crate::support::certs::{CertFiles, TestCa};
use crate::support::free_port;
use crate::support::tls_client::{TlsClient, command, reply};

const HOST: &str = "mx.postern.test";

/// A TLS client trusting only `ca`, for [`HOST`].
fn trusting(ca: &TestCa) -> TlsClient {
    TlsClient::trusting(&ca.root_pem(), HOST)
}

/// The leaf certificate of a PEM file.
fn leaf(files: &CertFiles) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(&files.cert).unwrap()
}

fn files_config(files: &CertFiles, extra: &str) -> String {
    format!(
        "[server]\nhostname = \"{HOST}\"\n[tls]\nmode = \"files\"\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
        files.cert.display().to_string(),
        files.key.display().to_string(),
    )
}

#[tokio::test]
async fn https_starttls_and_implicit_tls_serve_one_certificate_and_a_new_one_without_restart() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&[HOST], dir.path(), "mx");
    let app = TestApp::start(&files_config(
        &files,
        "[submission]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n",
    ))
    .await;
    let first = leaf(&files);

    // The dashboard over HTTPS, with HSTS; plain HTTP on that port gets no page.
    let client = trusting(&ca).https_client(app.web);
    let url = format!("https://{HOST}:{}/signin", app.web.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let plain = reqwest::get(format!("http://{}/signin", app.web))
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.headers().get("set-cookie").is_none());
    assert_eq!(
        plain.text().await.unwrap(),
        "This port speaks HTTPS: use an https:// URL.\n"
    );
    assert_eq!(trusting(&ca).https_leaf(app.web).await.unwrap(), first);

    // The same certificate on the MX, on submission STARTTLS and on implicit TLS.
    let (mut mx, mx_cert) = trusting(&ca).starttls(app.smtp).await.unwrap();
    assert_eq!(mx_cert, first);
    let (_, submission_cert) = trusting(&ca).starttls(app.submission[0]).await.unwrap();
    assert_eq!(submission_cert, first);
    let (mut implicit, implicit_cert) = trusting(&ca)
        .implicit_tls(app.submission_tls[0])
        .await
        .unwrap();
    assert_eq!(implicit_cert, first);
    // Inside implicit TLS, STARTTLS is not offered again and AUTH is.
    let ehlo = command(&mut implicit, "EHLO client.test").await;
    assert!(
        ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );

    // New files: served to new connections within seconds, no restart.
    let renewed = ca.issue(&[HOST], dir.path(), "mx");
    let second = leaf(&renewed);
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(20);
    while trusting(&ca).https_leaf(app.web).await.unwrap() != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(trusting(&ca).starttls(app.smtp).await.unwrap().1, second);
    assert_eq!(
        trusting(&ca)
            .implicit_tls(app.submission_tls[0])
            .await
            .unwrap()
            .1,
        second
    );
    // The session that began before the reload goes on with its own certificate.
    assert!(
        command(&mut mx, "EHLO client.test")
            .await
            .starts_with("250")
    );
    assert!(command(&mut mx, "NOOP").await.starts_with("250"));
}

#[tokio::test]
async fn a_broken_pair_keeps_the_old_certificate_until_a_good_one_arrives() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&[HOST], dir.path(), "mx");
    let app = TestApp::start(&files_config(&files, "")).await;
    let first = leaf(&files);
    // Half a renewal: a new certificate beside the old key.
    let other = ca.issue(&[HOST], dir.path(), "other");
    std::fs::copy(&other.cert, &files.cert).unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        trusting(&ca).https_leaf(app.web).await.unwrap(),
        first,
        "a mismatched pair was served"
    );
    assert_eq!(trusting(&ca).starttls(app.smtp).await.unwrap().1, first);
    // The key arrives: the pair fits and is served.
    std::fs::copy(&other.key, &files.key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while trusting(&ca).https_leaf(app.web).await.unwrap() != leaf(&other) {
        assert!(Instant::now() < deadline, "the fitting pair was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_port_80_listener_only_redirects_to_https() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&[HOST], dir.path(), "mx");
    let app = TestApp::start(&files_config(
        &files,
        "[web]\nhttp_listen = \"127.0.0.1:0\"\n",
    ))
    .await;
    let http = app.http.expect("the redirect listener is bound");
    let client = reqwest::Client::builder()
        .resolve(HOST, http)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, path) in [("GET", "/messages?page=2"), ("POST", "/api/messages")] {
        let response = client
            .request(
                method.parse().unwrap(),
                format!("http://{HOST}:{}{path}", http.port()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 308, "{method} {path}");
        assert_eq!(
            response.headers()["location"],
            format!("https://{HOST}:{}{path}", app.web.port()).as_str()
        );
        assert!(response.headers().get("set-cookie").is_none());
    }
    // Another host is not redirected anywhere.
    let response = reqwest::Client::new()
        .get(format!("http://{http}/"))
        .header("host", "evil.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    // Following the redirect reaches the HTTPS dashboard.
    let response = trusting(&ca)
        .https_client(app.web)
        .get(format!("https://{HOST}:{}/signin", app.web.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn with_no_tls_section_the_mx_offers_starttls_with_a_self_signed_certificate() {
    let app = TestApp::start("").await;
    let mut plain = BufReader::new(TcpStream::connect(app.smtp).await.unwrap());
    reply(&mut plain).await;
    let ehlo = command(&mut plain, "EHLO client.test").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    // The dashboard stays plain HTTP on loopback.
    let response = reqwest::get(format!("http://{}/signin", app.web))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

/// `postern check` on a config file in `dir`: exit code, stdout, stderr.
fn check(dir: &Path, toml: &str) -> (i32, String, String) {
    let path = dir.join("postern.toml");
    std::fs::write(&path, toml).unwrap();
    let data = dir.join("data");
    run(
        &["check", "--config", path.to_str().unwrap()],
        &[("POSTERN_SERVER__DATA_DIR", data.to_str().unwrap())],
    )
}

#[test]
fn check_names_what_the_certificate_covers_and_refuses_a_pair_that_does_not_fit() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&["other.postern.test"], dir.path(), "mx");
    let config = files_config(&files, "[encryption]\nenabled = false\n");
    let (code, out, err) = check(dir.path(), &config);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Cert      other.postern.test; issuer CN=Postern test CA; expires "),
        "{out}"
    );
    assert!(out.contains("days left)"), "{out}");
    assert!(
        out.contains("warning:  the certificate does not cover mx.postern.test"),
        "{out}"
    );
    assert!(out.contains("Web       https://"), "{out}");

    let other = ca.issue(&[HOST], dir.path(), "other");
    std::fs::copy(&other.key, &files.key).unwrap();
    let (code, _, err) = check(dir.path(), &config);
    assert_eq!(code, 2);
    assert!(
        err.contains("TLS certificate and key do not fit together"),
        "{err}"
    );

    let (code, out, _) = check(dir.path(), "[encryption]\nenabled = false\n");
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "warning:  no [tls] section: SMTP offers STARTTLS with a self-signed certificate"
        ),
        "{out}"
    );
}

/// A certificate for [`HOST`] whose files have exactly the sizes of `like`'s, so that only
/// their content tells them apart.
fn same_size_certificate(ca: &TestCa, dir: &Path, like: &CertFiles) -> CertFiles {
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();
    for attempt in 0..200 {
        let files = ca.issue(&[HOST], dir, &format!("candidate{attempt}"));
        if size(&files.cert) == size(&like.cert) && size(&files.key) == size(&like.key) {
            return files;
        }
    }
    panic!("no certificate of the same size in 200 attempts");
}

#[tokio::test]
async fn sighup_makes_the_real_binary_read_the_certificate_files_at_once() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&[HOST], dir.path(), "mx");
    let (smtp, web) = (free_port(), free_port());
    let data = dir.path().join("data");
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        files_config(
            &files,
            &format!(
                "[smtp]\nlisten = \"127.0.0.1:{smtp}\"\n[web]\nlisten = \"127.0.0.1:{web}\"\n\
                 [encryption]\nenabled = false\n"
            ),
        )
        .replace(
            "[tls]",
            &format!("data_dir = {:?}\n[tls]", data.display().to_string()),
        ),
    )
    .unwrap();
    let child = crate::support::binary::postern()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let web: SocketAddr = format!("127.0.0.1:{web}").parse().unwrap();
    crate::support::eventually("the web listener opens", async || {
        TcpStream::connect(web).await.is_ok()
    })
    .await;
    let first = leaf(&files);
    assert_eq!(trusting(&ca).https_leaf(web).await.unwrap(), first);

    // New content under the old sizes and times: the change check cannot see it.
    let renewed = same_size_certificate(&ca, dir.path(), &files);
    let second = leaf(&renewed);
    let times = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times(&files.cert), times(&files.key));
    std::fs::copy(&renewed.cert, &files.cert).unwrap();
    std::fs::copy(&renewed.key, &files.key).unwrap();
    let set = |path: &Path, time| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap()
    };
    set(&files.cert, cert_time);
    set(&files.key, key_time);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        trusting(&ca).https_leaf(web).await.unwrap(),
        first,
        "read without SIGHUP"
    );

    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    crate::support::eventually("the new certificate is served after SIGHUP", async || {
        trusting(&ca).https_leaf(web).await.unwrap() == second
    })
    .await;
    // The process is still serving (SIGHUP is not a stop).
    assert!(
        TcpStream::connect(format!("127.0.0.1:{smtp}"))
            .await
            .is_ok()
    );
}
