//! The web listener's accept loop: hyper serving the axum router — over HTTPS with the
//! certificate every listener shares (`tls::Certificates`), or plain HTTP — with the limits a public
//! listener needs and `axum::serve` does not offer — a deadline for a request's headers (a
//! client that opens connections and never finishes a request holds nothing for long), a cap
//! on connections per client address and in all, and the shared shutdown (stop accepting,
//! let requests in flight finish, close idle keep-alive connections).
//!
//! A connection over a cap is answered `503` with `Retry-After` and closed, so a browser shows
//! a reason and a script sees a status, not a reset. Connections are admitted by the same rule
//! as SMTP sessions (`smtp::admission`), the last tenth of the slots included. Over HTTPS
//! the handshake must finish within the header deadline too; a handshake that asks for
//! ACME's `acme-tls/1` gets the challenge config.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::shutdown::Shutdown;
use crate::smtp::admission::Admission;
use crate::tls::Certificates;

/// The address a connection came in on (the listener's own address, even on a wildcard
/// listener), a request extension for the `Host` check (`web::host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// The limits of one web listener (`[web]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client has to send a request's headers, also between keep-alive requests.
    pub header_read_timeout: Duration,
    /// Open connections from one client address (IPv6: its /64).
    pub max_connections_per_ip: usize,
    /// Open connections in all.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_ip: 64,
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` — HTTPS with `tls`, else plain HTTP — until `shutdown`
/// triggers, then waits for the requests in flight (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Arc<Certificates>>,
    shutdown: Shutdown,
) {
    // The SMTP listeners' admission (per address, in all, the last tenth kept for new
    // addresses): one rule for every listener.
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_ip);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(%error, "web listener could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        let Ok(slot) = admission.admit(peer.ip()) else {
            debug!(%peer, "web connection refused: over the connection limits");
            tokio::spawn(refuse(stream));
            continue;
        };
        let local = stream.local_addr().ok();
        let service = service(router.clone(), peer, local);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service, limits, watcher, peer).await,
                Some(certificates) => {
                    let deadline = limits.header_read_timeout;
                    match tokio::time::timeout(deadline, handshake(stream, &certificates)).await {
                        Ok(Ok(Some(tls))) => {
                            serve_connection(tls, service, limits, watcher, peer).await
                        }
                        Ok(Ok(None)) => debug!(%peer, "plain HTTP on the HTTPS port: told so"),
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves HTTP/1.1 on one connection until it closes or the shutdown ends it.
async fn serve_connection<S, IO>(
    io: IO,
    service: S,
    limits: HttpLimits,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        debug!(%peer, %error, "web connection ended with an error");
    }
}

/// The server side of a TLS handshake: the client's hello picks the config (ACME's
/// TLS-ALPN-01 challenge, or HTTPS). A client speaking plain HTTP instead (its first octet
/// is not a TLS handshake record's) is answered a `400` saying to use `https://`: `None`.
async fn handshake(
    mut stream: TcpStream,
    certificates: &Certificates,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
        stream.write_all(PLAIN_ON_HTTPS).await?;
        let _ = stream.shutdown().await;
        return Ok(None);
    }
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let config = certificates.https_config(&start.client_hello());
    start.into_stream(config).await.map(Some)
}

/// The first octet of a TLS record carrying a handshake (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;

/// The answer to plain HTTP sent to the HTTPS listener (its `Content-Length` is checked by
/// a test).
const PLAIN_ON_HTTPS: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
        Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
        Content-Length: 45\r\nConnection: close\r\n\r\n\
        This port speaks HTTPS: use an https:// URL.\n";

/// The router for one connection, with the client's address for `ConnectInfo` and the
/// connection's own address as [`LocalAddr`].
fn service(
    router: Router,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
        Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = Infallible,
        Future = impl Send,
    > + Clone,
> {
    let service = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(local) = local {
            request.extensions_mut().insert(LocalAddr(local));
        }
        request
    });
    hyper_util::service::TowerToHyperService::new(service)
}

/// A short answer to a connection over a cap; bounded, so a client that never reads cannot
/// hold the task.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(BUSY)).await;
}

/// The answer over a cap (its `Content-Length` is checked by a test).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
        Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
        Content-Length: 51\r\nConnection: close\r\n\r\n\
        Too many connections from your address; try again.\n";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::AsyncReadExt;

    async fn start(limits: HttpLimits) -> (SocketAddr, Shutdown, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(listener, router, limits, None, shutdown.clone()));
        (addr, shutdown, server)
    }

    async fn connect_from(addr: SocketAddr, local: &str) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    async fn get_root(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn one_address_cannot_take_every_connection() {
        let limits = HttpLimits {
            max_connections_per_ip: 3,
            max_connections: 5,
            ..HttpLimits::default()
        };
        let (addr, shutdown, _server) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect_from(addr, "127.0.0.2").await);
        }
        // The fourth from the same address is refused with a status, not a reset.
        let mut fourth = connect_from(addr, "127.0.0.2").await;
        let mut refused = String::new();
        fourth.read_to_string(&mut refused).await.unwrap();
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        // Another address is served, and sees its own address.
        let mut other = connect_from(addr, "127.0.0.3").await;
        let answer = get_root(&mut other).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.3"), "{answer}");
        // A connection that closes gives its place back.
        drop(held.pop());
        let mut again = None;
        for _ in 0..50 {
            let mut stream = connect_from(addr, "127.0.0.2").await;
            let answer = get_root(&mut stream).await;
            if answer.starts_with("HTTP/1.1 200") {
                again = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "the freed place was never given back");
        shutdown.trigger();
    }

    #[tokio::test]
    async fn unfinished_headers_are_cut_at_the_deadline() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let (addr, shutdown, _server) = start(limits).await;
        let mut slow = connect_from(addr, "127.0.0.4").await;
        slow.write_all(b"GET / HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was still open after 5 s");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "closed before the deadline"
        );
        shutdown.trigger();
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_ends_the_loop() {
        let (addr, shutdown, server) = start(HttpLimits::default()).await;
        let mut idle = connect_from(addr, "127.0.0.5").await;
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the loop ends with idle connections open")
            .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[test]
    fn the_busy_answer_declares_its_length_and_nosniff() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    }
}
