//! An MTA-STS policy host on loopback: HTTPS (a [`TestCa`] certificate for the names given)
//! serving one policy file at `/.well-known/mta-sts.txt` as `text/plain`, 404 elsewhere. The
//! file can be changed, withdrawn (503) or moved (a 301 to another URL) while it runs, and it
//! counts the requests, so a test sees when a policy was fetched again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::certs::TestCa;

const PATH: &str = "/.well-known/mta-sts.txt";

/// What the host answers for the policy's path.
#[derive(Debug, Clone)]
enum Served {
    Policy(String),
    Withdrawn,
    MovedTo(String),
}

pub struct PolicyHost {
    pub addr: SocketAddr,
    served: Arc<Mutex<Served>>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl PolicyHost {
    /// Serves `policy` over HTTPS with a certificate `ca` issues for `names`.
    pub async fn start(ca: &TestCa, names: &[&str], policy: &str) -> PolicyHost {
        super::init();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config(names)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(Served::Policy(policy.to_string())));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (served.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, served, counter) =
                    (acceptor.clone(), shared.clone(), counter.clone());
                tokio::spawn(async move {
                    // A client refusing the certificate ends the handshake: nothing to answer.
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Some(path) = read_request_path(&mut stream).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let served = served.lock().unwrap().clone();
                    let answer = answer(&path, &served);
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        PolicyHost {
            addr,
            served,
            requests,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves `policy` from now on.
    pub fn set_policy(&self, policy: &str) {
        *self.served.lock().unwrap() = Served::Policy(policy.to_string());
    }

    /// Answers 503 from now on.
    pub fn withdraw(&self) {
        *self.served.lock().unwrap() = Served::Withdrawn;
    }

    /// Answers 301 to `location` from now on.
    pub fn move_to(&self, location: &str) {
        *self.served.lock().unwrap() = Served::MovedTo(location.to_string());
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for PolicyHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request line's path, once the head has arrived (at most 8 KiB).
async fn read_request_path<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || head.len() > 8192 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace().nth(1).map(str::to_string)
}

/// The whole HTTP/1.1 answer for `path`.
fn answer(path: &str, served: &Served) -> String {
    let (status, location, body) = match (path == PATH, served) {
        (true, Served::Policy(body)) => ("200 OK", None, body.as_str()),
        (true, Served::Withdrawn) => ("503 Service Unavailable", None, "withdrawn"),
        (true, Served::MovedTo(url)) => ("301 Moved Permanently", Some(url), "moved"),
        (false, _) => ("404 Not Found", None, "not found"),
    };
    let location = location
        .map(|url| format!("Location: {url}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{location}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
