//! Postfix's `smtp-sink` on loopback as the recipients' mail server: every message it
//! accepts is dumped to a file of its own (its envelope as `X-Mail-Args`/`X-Rcpt-Args`
//! headers), and its options inject faults (`-r RCPT`: 4xx at RCPT, `-f RCPT`: 5xx).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

pub struct Sink {
    addr: SocketAddr,
    dir: TempDir,
    child: Child,
}

impl Sink {
    /// A sink on a free port of 127.0.0.1.
    pub async fn start(options: &[&str]) -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Sink::start_on(SocketAddr::from(([127, 0, 0, 1], port)), options).await
    }

    /// A sink on `addr`, answering as `options` say; returns once it accepts connections.
    pub async fn start_on(addr: SocketAddr, options: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops root for `nobody`, who writes the dumps.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(dir.path().join("msg."))
            .args(options)
            .arg(addr.to_string())
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("smtp-sink (Postfix) is installed at /usr/sbin/smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "smtp-sink listens on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sink { addr, dir, child }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The dumped messages so far (smtp-sink's headers first, then the message).
    pub fn messages(&self) -> Vec<String> {
        dumps(self.dir.path())
    }

    /// Stops the sink; its port is free again.
    pub async fn stop(mut self) -> SocketAddr {
        let _ = self.child.kill().await;
        self.addr
    }
}

fn dumps(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}
