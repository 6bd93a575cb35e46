//! STARTTLS under lettre with Postern's own TLS (`tls::client`), so that the worker chooses
//! how the certificate is checked and sees what the handshake negotiated — lettre's own
//! `starttls` hides both.
//!
//! lettre speaks SMTP over a [`Detachable`] TCP stream until the server has said yes to
//! `STARTTLS`; the stream is then taken back, the handshake runs on it, and a new lettre
//! connection goes on over TLS behind a [`Resumed`] stream, whose first line is the greeting
//! lettre expects of a new connection (after STARTTLS the server sends none, RFC 3207 §4.2:
//! the client sends EHLO, which lettre then does, learning the extensions offered over TLS).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::Starttls;
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::client::{ClientTls, HandshakeError, Negotiated};

/// Why the upgrade failed: the server refused or broke off (`Smtp`), or the handshake did.
pub(super) enum UpgradeError {
    Smtp(lettre::transport::smtp::Error),
    Tls(HandshakeError),
}

/// A plain connection: lettre's, and the handle that takes its stream back for STARTTLS.
pub(super) async fn greet(
    stream: TcpStream,
    hello: &ClientId,
) -> Result<(AsyncSmtpConnection, Detachable), lettre::transport::smtp::Error> {
    let detachable = Detachable(Arc::new(Mutex::new(Some(stream))));
    let connection =
        AsyncSmtpConnection::connect_with_transport(Box::new(detachable.clone()), hello).await?;
    Ok((connection, detachable))
}

/// `STARTTLS`, the handshake with `name` (checked when `verify`), then EHLO over TLS: the
/// connection to go on with and what was negotiated.
pub(super) async fn upgrade(
    mut connection: AsyncSmtpConnection,
    detachable: Detachable,
    tls: &ClientTls,
    name: &str,
    verify: bool,
    hello: &ClientId,
) -> Result<(AsyncSmtpConnection, Negotiated), UpgradeError> {
    connection
        .command(Starttls)
        .await
        .map_err(UpgradeError::Smtp)?;
    // Anything lettre had read past the 220 is dropped with it, as RFC 3207 §5 wants.
    drop(connection);
    let stream = detachable.take().ok_or_else(|| {
        UpgradeError::Tls(HandshakeError::Handshake(
            io::ErrorKind::NotConnected.into(),
        ))
    })?;
    let (stream, negotiated) = tls
        .handshake(stream, name, verify)
        .await
        .map_err(UpgradeError::Tls)?;
    let resumed = Resumed {
        greeting: GREETING,
        stream,
    };
    let connection = AsyncSmtpConnection::connect_with_transport(Box::new(resumed), hello)
        .await
        .map_err(UpgradeError::Smtp)?;
    Ok((connection, negotiated))
}

/// The greeting [`Resumed`] plays to lettre; no server sent it.
const GREETING: &[u8] = b"220 TLS started\r\n";

/// A TCP stream lettre reads and writes until [`Detachable::take`] takes it back.
#[derive(Debug, Clone)]
pub(super) struct Detachable(Arc<Mutex<Option<TcpStream>>>);

impl Detachable {
    fn take(&self) -> Option<TcpStream> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// `f` on the stream, or "not connected" once it was taken.
    fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut stream = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match stream.as_mut() {
            Some(stream) => f(Pin::new(stream)),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncRead for Detachable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Detachable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|stream| stream.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_shutdown(cx))
    }
}

impl AsyncTokioStream for Detachable {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        let stream = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match stream.as_ref() {
            Some(stream) => stream.peer_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The TLS stream after STARTTLS, with [`GREETING`] to read first.
#[derive(Debug)]
struct Resumed {
    /// What is left of the greeting to hand out.
    greeting: &'static [u8],
    stream: TlsStream<TcpStream>,
}

impl AsyncRead for Resumed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.greeting.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.greeting.len().min(buf.remaining());
        buf.put_slice(&self.greeting[..n]);
        self.greeting = &self.greeting[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Resumed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Resumed {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.get_ref().0.peer_addr()
    }
}
