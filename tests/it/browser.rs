//! The browser end-to-end test: `tests/browser/e2e.mjs` drives a headless Chromium through the
//! real `postern serve` (sign-in, TOTP enrolment, sign-in with TOTP, a message arriving over
//! the event stream, its detail page, a hostile message that must run and load nothing, a new
//! address, a refused RCPT under its filter, every page at 390 px, sign-out; then a second user
//! made by `postern user add` without `--password-stdin` signs in with the printed one-time
//! password, is made to choose a new one, finds their session under "My sessions" and signs it
//! out there). A `postern dev` runs alongside, the only mode that keeps messages: the hostile
//! message's HTML body in the sandboxed iframe and every tab, and the inbox (live arrival,
//! search, keys, tabs, remote images on request, attachment preview, release to an SMTP sink,
//! delete, dark mode, 390 px).
//!
//! **Opt-in**: it needs Node, `npm ci` in `tests/browser` and a Chromium (`/usr/bin/chromium`,
//! or `E2E_CHROMIUM`). `TEST_BROWSER=1` (or `required`, as `.ci/run` sets it) runs it and
//! fails when any of them is missing; without `TEST_BROWSER` the test returns at once and
//! prints that it was skipped: a deliberate skip, not a pass.
//!
//! Screenshots go to `TEST_ARTIFACTS_DIR` (default `target/ci-artifacts/browser/`), never
//! into the repository; `UPDATE_SCREENSHOTS=1` also copies the README's five
//! ([`README_SCREENSHOTS`]) over `tests/browser/screenshots/`, to review and commit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::binary::{postern, spawn_dev};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free right now (the server binds it a moment later).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits (bounded) until `GET /healthz` answers 200.
fn wait_healthy(web: SocketAddr, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("postern serve exited early: {status}");
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&web, Duration::from_secs(1)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request =
                format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "postern serve did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `postern dev` (open on loopback, keeps messages) on ephemeral ports; returns it, its
/// SMTP address and its web URL, from the banner.
fn start_dev(data_dir: &Path) -> (Server, String, String) {
    let mut child = spawn_dev(data_dir);
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (mut smtp, mut web) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("SMTP") {
            smtp = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("Web") {
            web = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    (
        server,
        smtp.expect("the dev banner names the SMTP listener"),
        web.expect("the dev banner names the web listener"),
    )
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where the screenshots go: `TEST_ARTIFACTS_DIR`, else `target/ci-artifacts/browser/`. (Not
/// a `POSTERN_*` name: the binary reads those as config overrides and refuses unknown ones.)
fn artifacts_dir() -> PathBuf {
    match std::env::var_os("TEST_ARTIFACTS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts/browser"),
    }
}

/// The screenshots the README shows, refreshed by `UPDATE_SCREENSHOTS=1`.
const README_SCREENSHOTS: [&str; 5] = [
    "list.png",
    "detail.png",
    "detail-payload.png",
    "phone.png",
    "dark.png",
];

/// `postern user add` for `email` (a viewer) without `--password-stdin`: the one-time
/// password it prints.
fn add_user_with_one_time_password(config: &Path, email: &str) -> String {
    let added = postern()
        .args(["user", "add", "--config"])
        .arg(config)
        .args(["--email", email, "--role", "viewer"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success(),
        "postern user add: {stdout}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("one-time password: "))
        .unwrap_or_else(|| panic!("no one-time password printed:\n{stdout}"))
        .trim()
        .to_string()
}

#[test]
fn browser_end_to_end() {
    match std::env::var("TEST_BROWSER").as_deref() {
        Ok("1" | "required") => {}
        Ok(other) if !other.is_empty() && other != "0" => {
            panic!("TEST_BROWSER={other:?}: expected 1 or required")
        }
        _ => {
            crate::support::skipped("opt-in: set TEST_BROWSER=1 to run it");
            return;
        }
    }
    let chromium = std::env::var_os("E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "TEST_BROWSER is set but there is no Chromium at {} (apt-get install chromium, or set E2E_CHROMIUM)",
        chromium.display()
    );
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let web = free_port();
    let smtp = free_port();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            concat!(
                "[server]\nhostname = \"localhost\"\ndata_dir = {data:?}\n\n",
                "[smtp]\nlisten = \"{smtp}\"\n\n",
                "[web]\nlisten = \"{web}\"\n\n",
                "[auth]\nspf = false\n\n",
                "[[address]]\naddress = \"inbox@example.com\"\n",
                "target = \"http://{web}/target/200\"\n",
            ),
            data = data.to_str().unwrap(),
            smtp = smtp,
            web = web,
        ),
    )
    .unwrap();

    // The admin, with a password of ours.
    let email = "admin@example.com";
    let password = "correct horse battery staple";
    let mut add = postern()
        .args(["user", "add", "--config"])
        .arg(&config)
        .args(["--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "postern user add: {}",
        String::from_utf8_lossy(&added.stderr)
    );

    // A second user, with the one-time password `postern user add` prints: the browser must
    // be made to replace it.
    let second_email = "second@example.com";
    let one_time = add_user_with_one_time_password(&config, second_email);

    let mut server = Server(
        postern()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(web, &mut server.0);

    // A dev-mode server too: only there is the message kept, so only there does the detail
    // page show the hostile HTML body (in its sandboxed iframe).
    let dev_data = dir.path().join("dev");
    std::fs::create_dir(&dev_data).unwrap();
    let (_dev, dev_smtp, dev_web) = start_dev(&dev_data);

    let browser = browser_dir();
    if !browser.join("node_modules").exists() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser)
            .output()
            .expect("npm is needed for the browser test");
        assert!(
            npm.status.success(),
            "npm ci: {}",
            String::from_utf8_lossy(&npm.stderr)
        );
    }

    let started = Instant::now();
    let run = Command::new("node")
        .arg(browser.join("e2e.mjs"))
        .env("E2E_WEB", format!("http://{web}"))
        .env("E2E_SMTP", smtp.to_string())
        .env("E2E_EMAIL", email)
        .env("E2E_PASSWORD", password)
        .env("E2E_RCPT", "inbox@example.com")
        .env("E2E_DEV_WEB", &dev_web)
        .env("E2E_DEV_SMTP", &dev_smtp)
        .env("E2E_SECOND_EMAIL", second_email)
        .env("E2E_SECOND_PASSWORD", &one_time)
        .env("E2E_CHROMIUM", &chromium)
        .env("E2E_SCREENSHOTS", &artifacts)
        .output()
        .expect("node is needed for the browser test");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}{stderr}e2e took {:?}", started.elapsed());
    assert!(
        run.status.success(),
        "e2e.mjs failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(stdout.contains("e2e: PASS"), "{stdout}");
    println!("browser_end_to_end: screenshots in {}", artifacts.display());

    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        for name in README_SCREENSHOTS {
            let to = browser.join("screenshots").join(name);
            std::fs::copy(artifacts.join(name), &to).unwrap();
            println!("browser_end_to_end: updated {}", to.display());
        }
    }
}
