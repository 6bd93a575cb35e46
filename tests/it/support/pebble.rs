//! Debian's `pebble`, Let's Encrypt's test ACME CA, on loopback ports of its own for each
//! test, and `pebble-challtestsrv` as the DNS server its validation authority asks (every
//! name → 127.0.0.1), so challenges are really validated against Postern's listeners: TLS-ALPN-01 on
//! [`Pebble::tls_port`], HTTP-01 on [`Pebble::http_port`].
//!
//! Pebble's own HTTPS certificate is issued by a [`TestCa`] made here (Pebble ships none; a
//! self-signed leaf fails in rustls as `CaUsedAsEndEntity`): [`Pebble::ca_file`] is what
//! `[tls] acme_ca_file` names. The root that signs the certificates Pebble issues is made
//! fresh at each start: [`Pebble::issuing_root`] fetches it from the management port.
//!
//! Skipped (said on the terminal) when `pebble` is not installed, unless `TEST_ACME=required`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::certs::TestCa;
use super::free_port;

/// What Pebble checks before it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Pebble's validation authority connects to Postern (names resolved by
    /// `pebble-challtestsrv` to 127.0.0.1).
    Real,
    /// Every challenge passes (`PEBBLE_VA_ALWAYS_VALID=1`): only the ACME exchange is tested.
    AlwaysValid,
}

pub struct Pebble {
    /// `https://localhost:PORT/dir`.
    pub directory: String,
    /// The CA of Pebble's own HTTPS certificate (PEM): `[tls] acme_ca_file`.
    pub ca_file: PathBuf,
    /// Where the validation authority connects for TLS-ALPN-01 and HTTP-01.
    pub tls_port: u16,
    pub http_port: u16,
    management: u16,
    ca_pem: String,
    _pebble: Child,
    _dns: Option<Child>,
    _dir: tempfile::TempDir,
}

fn required() -> bool {
    std::env::var_os("TEST_ACME").is_some_and(|v| v == "required")
}

fn output() -> Stdio {
    match std::env::var_os("TEST_LOG") {
        Some(_) => Stdio::inherit(),
        None => Stdio::null(),
    }
}

impl Pebble {
    /// Starts Pebble issuing certificates valid for `validity_secs`; `None` (after saying
    /// so) when it is not installed and `TEST_ACME` is not `required`.
    pub async fn start(validity_secs: u64, validation: Validation) -> Option<Pebble> {
        if std::process::Command::new("pebble")
            .arg("-h")
            .output()
            .is_err()
        {
            assert!(
                !required(),
                "TEST_ACME=required but pebble is not installed: apt-get install pebble"
            );
            super::skipped(
                "pebble is not installed (apt-get install pebble; TEST_ACME=required makes this a failure)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_file = ca.write_root(dir.path());
        let tls = ca.issue(&["localhost", "127.0.0.1"], dir.path(), "pebble");
        let (listen, management, tls_port, http_port) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": tls.cert,
            "privateKey": tls.key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();

        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(&config_file)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let dns = match validation {
            Validation::AlwaysValid => {
                pebble.env("PEBBLE_VA_ALWAYS_VALID", "1");
                None
            }
            Validation::Real => {
                let dns_port = free_port();
                pebble
                    .arg("-dnsserver")
                    .arg(format!("127.0.0.1:{dns_port}"));
                Some(challtestsrv(dns_port))
            }
        };
        let child = pebble
            .stdout(output())
            .stderr(output())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble runs");
        let pebble = Pebble {
            directory: format!("https://localhost:{listen}/dir"),
            ca_pem: ca.root_pem(),
            ca_file,
            tls_port,
            http_port,
            management,
            _pebble: child,
            _dns: dns,
            _dir: dir,
        };
        pebble.wait_until_up().await;
        Some(pebble)
    }

    /// A client trusting only the CA of Pebble's HTTPS certificate.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    }

    async fn wait_until_up(&self) {
        let client = self.client();
        for _ in 0..200 {
            if let Ok(answer) = client.get(&self.directory).send().await
                && answer.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pebble did not answer on {} within 10 s", self.directory);
    }

    /// The root that signs what Pebble issues (PEM), from the management port.
    pub async fn issuing_root(&self) -> String {
        let url = format!("https://localhost:{}/roots/0", self.management);
        let answer = self.client().get(&url).send().await.unwrap();
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        answer.text().await.unwrap()
    }
}

/// `pebble-challtestsrv` as a DNS server on `port` answering 127.0.0.1 for every name
/// (its challenge servers off: Postern answers the challenges).
fn challtestsrv(port: u16) -> Child {
    Command::new("pebble-challtestsrv")
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .arg("-dns01")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .arg("-management")
        .arg(format!("127.0.0.1:{}", free_port()))
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .expect("pebble-challtestsrv runs (it comes with the pebble package)")
}
