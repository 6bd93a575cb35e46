//! The real binary: CLI, config errors, dev mode, graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command};

use crate::support::binary::{run, spawn_dev};
use crate::support::{Smtp, eventually};

#[test]
fn version_and_help() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("postern {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for word in [
        "dev",
        "serve",
        "check",
        "init",
        "user",
        "key",
        "POSTERN_LOG",
    ] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
}

#[test]
fn init_writes_a_config_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    let path = path.to_str().unwrap();
    let (code, out, err) = run(&["init", "--output", path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("postern check --config"));
    assert!(out.contains("postern user add --config"), "{out}");
    let (code, _, err) = run(&["init", "--output", path], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"));
    let (code, out, err) = run(&["check", "--config", path], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config OK"));
    assert!(
        out.contains("support@example.com -> https://***@app.example.com/incoming_mails"),
        "{out}"
    );
    assert!(!out.contains("password"), "a secret was printed:\n{out}");
}

fn check_config(toml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, toml).unwrap();
    let (code, _, err) = run(&["check", "--config", path.to_str().unwrap()], env);
    (code, err)
}

#[test]
fn bad_config_names_key_value_and_what_is_allowed() {
    let (code, err) = check_config("[smtp]\nmax_recipients = 0\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("smtp.max_recipients = 0: must be between 1 and 1000"),
        "{err}"
    );

    let (code, err) = check_config(
        "[[address]]\naddress = \"a@example.com\"\ntarget = \"http://127.0.0.1/\"\nformat = \"xml\"\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("address[0].format = \"xml\": supported formats: json+n"),
        "{err}"
    );

    let (code, err) = check_config(
        "[[address]]\naddress = \"a@example.com\"\ntarget = \"ftp://user:hunter2@host/\"\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("address[0].target"), "{err}");
    assert!(!err.contains("hunter2"), "the password was printed: {err}");

    let (code, err) = check_config("[smtp]\nlisten = \"nowhere\"\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("smtp.listen = \"nowhere\": expected IP:PORT"),
        "{err}"
    );

    let (code, err) = check_config("[smtp]\nmax_recipents = 5\n", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("max_recipents"), "{err}");

    let (code, err) = check_config("", &[("POSTERN_SMTP__MAX_ERRORS", "0")]);
    assert_eq!(code, 2);
    assert!(err.contains("smtp.max_errors = 0"), "{err}");

    let (code, err) = check_config("", &[("POSTERN_SMTPLISTEN", "x")]);
    assert_eq!(code, 2);
    assert!(err.contains("POSTERN_SMTPLISTEN"), "{err}");

    let (code, _) = check_config("", &[("POSTERN_SMTP__LISTEN", "127.0.0.1:2525")]);
    assert_eq!(code, 0);

    // Submission takes AUTH only over TLS: no certificate, no listener.
    let (code, err) = check_config(
        "[tls]\nmode = \"off\"\n[submission]\nlisten = [\"127.0.0.1:587\"]\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("tls.mode = \"off\": submission listeners need a certificate"),
        "{err}"
    );
    let (code, err) = check_config(
        "[smtp]\ntls_self_signed = true\n[submission]\nlisten = [\"0.0.0.0:25\"]\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("not smtp.listen's"), "{err}");
}

#[test]
fn check_says_whether_submission_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, "").unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Submission off (no [submission] listen)"),
        "{out}"
    );
    std::fs::write(
        &path,
        "[smtp]\ntls_self_signed = true\n[submission]\nlisten = [\"0.0.0.0:587\", \"0.0.0.0:2525\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "Submission 0.0.0.0:587, 0.0.0.0:2525  (STARTTLS required before AUTH PLAIN/LOGIN"
        ),
        "{out}"
    );
}

#[test]
fn check_prints_the_sign_in_providers_and_their_callback_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("github-secret");
    std::fs::write(&secret, "gh-s3cret\n").unwrap();
    let toml = format!(
        concat!(
            "[web]\npublic_url = \"https://postern.example.com\"\n",
            "[[web.oidc]]\nname = \"google\"\nkind = \"google\"\nclient_id = \"id-1.apps.googleusercontent.com\"\nclient_secret = \"g-s3cret\"\n",
            "[[web.oidc]]\nname = \"gh\"\nkind = \"github\"\nclient_id = \"Iv1.abc\"\nclient_secret_file = {:?}\n",
        ),
        secret.display().to_string()
    );
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, toml).unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Sign-in   \"Sign in with Google\" (OpenID Connect, issuer https://accounts.google.com, client id id-1.apps.googleusercontent.com); register the callback https://postern.example.com/signin/oidc/google/callback"),
        "{out}"
    );
    assert!(
        out.contains("Sign-in   \"Sign in with GitHub\" (GitHub at https://github.com, client id Iv1.abc); register the callback https://postern.example.com/signin/oidc/gh/callback"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret") && !err.contains("s3cret"),
        "{out}{err}"
    );

    let (code, err) = check_config("", &[("POSTERN_WEB__OIDC__CLIENT_SECRET", "x")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("[[web.oidc]] can only be set in the config file"),
        "{err}"
    );
}

#[test]
fn check_prints_the_outbound_settings_with_the_relay_password_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    let root = crate::support::certs::TestCa::new().write_root(dir.path());
    std::fs::write(
        &path,
        format!(
            "[server]\nhostname = \"mx.example.com\"\n[outbound]\nrequire_tls = [\"bank.example\"]\n\
             relay = \"smtp://relay-user:r3lay-s3cret@smtp.example.net:2525\"\n\
             extra_ca_file = {root:?}\n"
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "Outbound  through the relay smtp://relay-user:****@smtp.example.net:2525 \
             (verified TLS); EHLO mx.example.com; STARTTLS when offered, verified and required \
             for bank.example; extra CA {}; max 64 connections, 4 per domain; retried for 72 h",
            root.display()
        )),
        "{out}"
    );
    assert!(!out.contains("r3lay-s3cret") && !err.contains("r3lay-s3cret"));

    std::fs::write(
        &path,
        "[dns]\nservers = \"127.0.0.1:5353\"\n[outbound]\nport = 2525\nmta_sts_port = 8443\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "Outbound  to each domain's MX on port 2525 (DNS: 127.0.0.1:5353); MTA-STS enforce \
             policies honoured (policies fetched from port 8443, a test setting); EHLO localhost;"
        ),
        "{out}"
    );
    assert!(!out.contains("deprecated"), "{out}");
}

#[test]
fn check_warns_about_the_deprecated_dns_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    // The old key still applies, to every lookup, with a warning naming its replacement.
    std::fs::write(&path, "[outbound]\ndns = \"127.0.0.1:5353\"\nport = 2525\n").unwrap();
    let (code, out, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning:  [outbound] dns is deprecated; use [dns] servers instead"),
        "{out}"
    );
    assert!(
        out.contains("SPF       on (DNS: 127.0.0.1:5353;")
            && out.contains("on port 2525 (DNS: 127.0.0.1:5353)"),
        "{out}"
    );
    // Two keys naming different servers: no config, and an error naming both.
    std::fs::write(
        &path,
        "[auth]\ndns = \"127.0.0.1:53\"\n[outbound]\ndns = \"127.0.0.1:5353\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("auth.dns and outbound.dns"), "{err}");
}

#[test]
fn missing_config_file_gives_a_hint() {
    let (code, _, err) = run(&["serve", "--config", "/nonexistent/postern.toml"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read config file /nonexistent/postern.toml"),
        "{err}"
    );
    assert!(err.contains("postern init"), "{err}");
}

/// Whether process `pid` has a SIGTERM handler installed (Linux: signal 15's bit in the
/// `SigCgt` mask of `/proc/PID/status`).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
    caught.is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Starts `postern dev` on ephemeral ports; returns the child, its SMTP address, its API
/// base URL and the banner.
/// Reads a dev banner up to its last line; the SMTP listener it names.
pub fn smtp_addr_from_banner(stdout: std::process::ChildStdout) -> SocketAddr {
    // The whole banner is read: the child must not write to a closed pipe.
    let banner: Vec<String> = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .take_while(|line| !line.contains("Ctrl-C"))
        .collect();
    banner
        .iter()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("SMTP")?.to_owned();
            rest.split_whitespace().next()?.parse().ok()
        })
        .expect("the banner names the SMTP listener")
}

fn start_dev(data_dir: &std::path::Path) -> (Child, SocketAddr, String, String) {
    let mut child = spawn_dev(data_dir);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let mut smtp = None;
    let mut api = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.trim().strip_prefix("SMTP") {
            smtp = Some(rest.split_whitespace().next().unwrap().parse().unwrap());
        }
        if let Some(rest) = line.trim().strip_prefix("API") {
            api = Some(rest.trim().to_string());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    (
        child,
        smtp.expect("the banner names the SMTP listener"),
        api.expect("the banner names the API"),
        banner,
    )
}

#[tokio::test]
async fn dev_banner_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, smtp_addr, _, banner) = start_dev(dir.path());
    assert!(
        banner.contains("swaks --server 127.0.0.1 --port"),
        "{banner}"
    );
    assert!(banner.contains("/api/messages"), "{banner}");
    assert!(banner.contains("Open without sign-in"), "{banner}");
    assert!(
        banner.contains("Dev mode keeps the newest 1,000 messages"),
        "the banner says what dev mode keeps: {banner}"
    );
    assert!(
        banner.contains("--auth-user dev --auth-password dev --to someone@example.com"),
        "the banner shows how to submit: {banner}"
    );

    // One idle session, one in the middle of DATA.
    let mut idle = Smtp::connect(smtp_addr).await;
    idle.ehlo().await;
    let mut busy = Smtp::connect(smtp_addr).await;
    busy.ehlo().await;
    busy.cmd("MAIL FROM:<a@example.com>", "250").await;
    busy.cmd("RCPT TO:<b@example.com>", "250").await;
    busy.cmd("DATA", "354").await;
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    // The 354 put the session in DATA; the banner comes before the signal handler, and a
    // SIGTERM before it would kill the process outright.
    let pid = child.id();
    eventually("postern to catch SIGTERM", async || catches_sigterm(pid)).await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    assert!(idle.reply().await.starts_with("421 4.3.2"));
    assert!(idle.is_closed().await);
    // The message in flight is finished and answered, then the session is closed.
    busy.send(b"second half\r\n.\r\n").await;
    assert!(busy.reply().await.starts_with("250 "));
    assert!(busy.reply().await.starts_with("421 4.3.2"));

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        tokio::net::TcpStream::connect(smtp_addr).await.is_err(),
        "still listening after exit"
    );

    // The message answered 250 during the drain is in the store after a restart.
    let (mut child, _, api, _) = start_dev(dir.path());
    let page: serde_json::Value = reqwest::get(&api).await.unwrap().json().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["subject"], "in flight");
    assert_eq!(messages[0]["outcome"], "captured");
}

/// design §7: one crypto provider (aws-lc-rs); `ring` must not be compiled in.
#[test]
fn ring_is_not_in_the_dependency_graph() {
    let output = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "-i",
            "ring",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.trim().is_empty(), "ring is a dependency:\n{stdout}");
    assert!(
        stderr.contains("did not match any packages") || stderr.contains("nothing to print"),
        "unexpected cargo tree output: {stderr}"
    );
}

/// Issue 15, item 8: the limit is said once, and `postern dev` sets it. The session past
/// `--max-connections` is answered `421 4.3.2` at once (not left in the kernel's backlog).
#[tokio::test]
async fn dev_sets_the_connection_limit_and_one_more_gets_421_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::support::binary::postern()
        .args([
            "dev",
            "--smtp",
            "127.0.0.1:0",
            "--submission",
            "127.0.0.1:0",
        ])
        .args([
            "--web",
            "127.0.0.1:0",
            "--max-connections",
            "2",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut smtp = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("SMTP") {
            smtp = rest
                .split_whitespace()
                .next()
                .map(|a| a.parse::<SocketAddr>().unwrap());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let smtp = smtp.expect("the banner names the SMTP listener");
    // From three loopback addresses (one address alone meets the per-address share first).
    let from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, last], 0)))
            .unwrap();
        let mut stream = socket.connect(smtp).await.unwrap();
        let mut greeting = vec![0; 512];
        let n = tokio::io::AsyncReadExt::read(&mut stream, &mut greeting)
            .await
            .unwrap();
        (stream, String::from_utf8_lossy(&greeting[..n]).to_string())
    };
    let (_first, greeting) = from(1).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (_second, greeting) = from(2).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let started = std::time::Instant::now();
    let (mut third, greeting) = from(3).await;
    assert!(greeting.starts_with("421 4.3.2"), "{greeting}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut third, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty(), "closed after the 421");
    child.kill().unwrap();
    child.wait().unwrap();

    // Out of range is a usage error naming the flag.
    let refused = crate::support::binary::postern()
        .args(["dev", "--max-connections", "0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--max-connections"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
