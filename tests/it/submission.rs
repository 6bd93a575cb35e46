//! AUTH on a submission listener, over a real socket with real STARTTLS: `smtp::server`
//! started directly with a submission policy, the self-signed dev certificate and a test
//! handler (one credential, one allowed sender), driven by Python's smtplib and swaks.
//!
//! This holds the SMTP side of the contract; the product's handler (`outbound::Submission`,
//! the outbound queue) is tested through the real app in `submission_outbound.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern::config::TlsConfig;
use postern::shutdown::Shutdown;
use postern::smtp::Reply;
use postern::smtp::server::{
    ConnectionInfo, ListenerLimits, MailHandler, ServerConfig, SmtpServer,
};
use postern::smtp::session::{
    Credentials, Envelope, SessionConfig, SessionPolicy, SizeLimit, TransactionInfo,
};
use tokio::net::TcpListener;

use crate::support::{Smtp, init};

const USER: &str = "app";
const PASSWORD: &str = "s3cret pass";

/// What the test handler returns for a good credential.
#[derive(Debug)]
struct Identity {
    name: String,
    allowed_senders: Vec<String>,
}

/// A message as the handler received it: who submitted it, and the envelope.
#[derive(Debug)]
struct Submitted {
    submitter: Option<String>,
    tls: bool,
    envelope: Envelope,
}

/// Accepts one credential ([`USER`], [`PASSWORD`]; in dev mode any), which may send as
/// `app@example.com` only; records every message.
struct TestSubmission {
    any_credentials: bool,
    messages: Mutex<Vec<Submitted>>,
}

impl MailHandler for TestSubmission {
    type Identity = Identity;

    async fn authenticate(
        &self,
        _conn: &ConnectionInfo,
        credentials: &Credentials,
    ) -> Result<Identity, Reply> {
        let good = credentials.authcid == USER && credentials.password == PASSWORD;
        if !good && !self.any_credentials {
            return Err(Reply::AUTH_FAILED);
        }
        Ok(Identity {
            name: credentials.authcid.clone(),
            allowed_senders: vec!["app@example.com".into()],
        })
    }

    async fn check_sender(
        &self,
        _conn: &ConnectionInfo,
        identity: &Identity,
        address: &str,
    ) -> Result<(), Reply> {
        match identity.allowed_senders.iter().any(|s| s == address) {
            true => Ok(()),
            false => Err(Reply::SENDER_NOT_ALLOWED),
        }
    }

    async fn check_recipient(
        &self,
        _conn: &ConnectionInfo,
        _transaction: TransactionInfo<'_>,
        _address: &str,
    ) -> Result<Option<SizeLimit>, Reply> {
        Ok(None)
    }

    async fn handle_message(
        &self,
        conn: &ConnectionInfo,
        identity: Option<&Identity>,
        envelope: Envelope,
        _content: postern::smtp::spool::Content,
    ) -> Reply {
        let mut messages = self.messages.lock().unwrap();
        messages.push(Submitted {
            submitter: identity.map(|i| i.name.clone()),
            tls: conn.tls_version.is_some(),
            envelope,
        });
        Reply::owned(
            250,
            "2.0.0",
            format!(
                "Thanks! Queued as: 00000000-0000-4000-8000-{:012}",
                messages.len()
            ),
        )
    }
}

struct Listener {
    addr: SocketAddr,
    handler: Arc<TestSubmission>,
    shutdown: Shutdown,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Listener {
    /// A submission listener on a loopback port with the self-signed dev certificate.
    async fn start(policy: SessionPolicy) -> Listener {
        init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls =
            postern::tls::Certificates::new(&TlsConfig::unconfigured(), "submit.postern.test")
                .unwrap()
                .expect("a self-signed certificate")
                .smtp_config();
        let config = ServerConfig {
            session: SessionConfig {
                policy,
                hostname: "submit.postern.test".into(),
                max_message_size: 1 << 20,
                max_recipients: 20,
                max_line_length: 1000,
                max_errors: 10,
                size_exceeded_message: "too big".into(),
                tls_available: true,
            },
            max_connections: 10,
            command_timeout: Duration::from_secs(30),
            data_timeout: Duration::from_secs(30),
            limits: ListenerLimits::default(),
        };
        let handler = Arc::new(TestSubmission {
            any_credentials: matches!(
                policy,
                SessionPolicy::Submission {
                    plaintext_auth: true
                }
            ),
            messages: Mutex::new(Vec::new()),
        });
        let shutdown = Shutdown::new();
        let server = SmtpServer::new(listener, config, Some(tls), handler.clone());
        tokio::spawn(server.run(shutdown.clone()));
        Listener {
            addr,
            handler,
            shutdown,
        }
    }

    /// Runs a Python smtplib script with `host`, `port`, `user`, `password` and an
    /// unverifying TLS context `ctx` defined; it must print `ok` last.
    async fn python(&self, script: &str) {
        let prelude = r#"
import base64, smtplib, ssl, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the dev certificate is self-signed
msg = "From: app@example.com\r\nTo: someone@example.net\r\nSubject: hi\r\n\r\nbody\r\n"

def refused(action, error, code):
    try:
        action()
    except error as e:
        assert getattr(e, "smtp_code", None) == code, (e, code)
        return
    raise AssertionError(f"expected {error.__name__} {code}")

def connect():
    s = smtplib.SMTP(host, port, local_hostname="python.test", timeout=20)
    s.ehlo()
    return s
"#;
        let output = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(format!("{prelude}\n{script}"))
            .args(["127.0.0.1", &self.addr.port().to_string(), USER, PASSWORD])
            .output()
            .await
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.trim_end().ends_with("ok"),
            "python failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs swaks with `args`; returns whether it succeeded and what it printed.
    async fn swaks(&self, args: &[&str]) -> (bool, String) {
        let output = tokio::process::Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--from", "app@example.com", "--to", "someone@example.net"])
            .args(["--helo", "swaks.test", "--timeout", "20"])
            .args(args)
            .output()
            .await
            .expect("swaks is installed (.ci/run installs it: apt-get install swaks)");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    fn submitted(&self) -> Vec<(Option<String>, bool, String, Vec<String>)> {
        let messages = self.handler.messages.lock().unwrap();
        messages
            .iter()
            .map(|m| {
                (
                    m.submitter.clone(),
                    m.tls,
                    m.envelope.mail_from.clone(),
                    m.envelope.recipients.clone(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn python_smtplib_authenticates_after_starttls() {
    let listener = Listener::start(SessionPolicy::SUBMISSION).await;
    listener
        .python(
            r#"
s = connect()
assert not s.has_extn("auth"), s.esmtp_features
# smtplib itself refuses: the server does not offer AUTH in plaintext.
refused(lambda: s.login(user, password), smtplib.SMTPNotSupportedError, None)
# And the server refuses AUTH sent anyway, and mail without it.
plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
code, text = s.docmd("AUTH", "PLAIN " + plain)
assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first"), (code, text)
refused(lambda: s.sendmail("app@example.com", ["someone@example.net"], msg), smtplib.SMTPSenderRefused, 530)

s.starttls(context=ctx)
s.ehlo()
assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}, s.esmtp_features
assert not s.has_extn("starttls")
refused(lambda: s.login(user, "wrong"), smtplib.SMTPAuthenticationError, 535)
s.login(user, password)
refused(lambda: s.sendmail("boss@example.com", ["someone@example.net"], msg), smtplib.SMTPSenderRefused, 550)
s.mail("app@example.com")
s.rcpt("someone@example.net")
code, text = s.data(msg)
assert code == 250 and text.startswith(b"2.0.0 Thanks! Queued as: "), (code, text)
s.quit()

# PLAIN with the 334 continuation, and LOGIN in two steps.
for mechanism, method in (("PLAIN", "auth_plain"), ("LOGIN", "auth_login")):
    s = connect()
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = user, password
    code, text = s.auth(mechanism, getattr(s, method), initial_response_ok=False)
    assert (code, text) == (235, b"2.7.0 Authentication successful"), (code, text)
    s.sendmail("app@example.com", ["someone@example.net"], msg)
    s.quit()
print("ok")
"#,
        )
        .await;
    let expected = (
        Some(USER.to_string()),
        true,
        "app@example.com".to_string(),
        vec!["someone@example.net".to_string()],
    );
    assert_eq!(listener.submitted(), vec![expected; 3]);
}

#[tokio::test]
async fn swaks_authenticates_after_starttls() {
    let listener = Listener::start(SessionPolicy::SUBMISSION).await;
    for mechanism in ["PLAIN", "LOGIN"] {
        let (ok, out) = listener
            .swaks(&[
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                USER,
                "--auth-password",
                PASSWORD,
            ])
            .await;
        assert!(ok, "swaks --auth {mechanism}:\n{out}");
        assert!(
            out.contains("<~  235 2.7.0 Authentication successful"),
            "{out}"
        );
        assert!(out.contains("<~  250 2.0.0 Thanks! Queued as: "), "{out}");
    }

    let (ok, out) = listener
        .swaks(&[
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            USER,
            "--auth-password",
            "wrong",
        ])
        .await;
    assert!(!ok);
    assert!(
        out.contains("<~* 535 5.7.8 Authentication credentials invalid"),
        "{out}"
    );

    // Without TLS: no AUTH on offer, and no mail without it.
    let (ok, out) = listener
        .swaks(&[
            "--auth",
            "PLAIN",
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
        ])
        .await;
    assert!(!ok);
    assert!(
        out.contains("Host did not advertise authentication"),
        "{out}"
    );
    let (ok, out) = listener.swaks(&[]).await;
    assert!(!ok);
    assert!(
        out.contains("<** 530 5.7.0 Authentication required"),
        "{out}"
    );

    assert_eq!(listener.submitted().len(), 2);
    assert!(
        listener
            .submitted()
            .iter()
            .all(|(user, tls, ..)| user.as_deref() == Some(USER) && *tls)
    );
}

/// The raw exchange before TLS, byte for byte.
#[tokio::test]
async fn auth_before_starttls_is_refused() {
    let listener = Listener::start(SessionPolicy::SUBMISSION).await;
    let mut smtp = Smtp::connect(listener.addr).await;
    let ehlo = smtp.ehlo().await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    smtp.cmd(
        "AUTH PLAIN AGFwcABzM2NyZXQgcGFzcw==",
        "530 5.7.0 Must issue a STARTTLS command first",
    )
    .await;
    smtp.cmd("AUTH LOGIN", "530 5.7.0").await;
    smtp.cmd(
        "MAIL FROM:<app@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    smtp.cmd("QUIT", "221").await;
}

/// Dev mode: AUTH with any credentials, with or without STARTTLS.
#[tokio::test]
async fn dev_policy_takes_any_credentials_without_tls() {
    let listener = Listener::start(SessionPolicy::Submission {
        plaintext_auth: true,
    })
    .await;
    listener
        .python(
            r#"
s = connect()
assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}, s.esmtp_features
s.login("anyone", "anything")
s.sendmail("app@example.com", ["someone@example.net"], msg)
s.quit()
print("ok")
"#,
        )
        .await;
    let (ok, out) = listener
        .swaks(&[
            "--auth",
            "LOGIN",
            "--auth-user",
            "dev",
            "--auth-password",
            "dev",
        ])
        .await;
    assert!(ok, "{out}");
    let (ok, out) = listener
        .swaks(&[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "dev",
            "--auth-password",
            "dev",
        ])
        .await;
    assert!(ok, "{out}");
    let submitters: Vec<_> = listener
        .submitted()
        .into_iter()
        .map(|(user, tls, ..)| (user.unwrap(), tls))
        .collect();
    assert_eq!(
        submitters,
        [
            ("anyone".to_string(), false),
            ("dev".to_string(), false),
            ("dev".to_string(), true)
        ]
    );
}
