//! One loopback port that speaks plain HTTP and HTTPS, in front of two [`Receiver`]s: a
//! connection starting with a TLS handshake (first octet `0x16`) is decrypted and forwarded
//! to the `tls` receiver, any other to the `plain` one. So `http://127.0.0.1:P/…` and
//! `https://127.0.0.1:P/…` are the same host and port, and each receiver's requests show
//! which scheme a POST came over. The certificate (for `127.0.0.1` and `localhost`) is
//! issued by a private CA made here; [`TlsFront::write_ca`] gives the PEM for
//! `[delivery] extra_ca_file`.
//!
//! [`Receiver`]: super::Receiver

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::certs::TestCa;

/// The first octet of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

pub struct TlsFront {
    pub addr: SocketAddr,
    ca_pem: String,
}

impl TlsFront {
    /// Listens on an ephemeral loopback port; plain connections go to `plain`, TLS ones
    /// (decrypted) to `tls`.
    pub async fn start(plain: SocketAddr, tls: SocketAddr) -> TlsFront {
        super::init();
        let (ca_pem, config) = certificates();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(forward(stream, acceptor.clone(), plain, tls));
            }
        });
        TlsFront { addr, ca_pem }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Writes the CA's certificate (PEM) into `dir`; its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("app-ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// One connection, to the receiver its first octet picks; errors end it quietly (a client
/// that refuses the certificate is one of the cases tested).
async fn forward(
    mut stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    plain: SocketAddr,
    tls: SocketAddr,
) {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.unwrap_or(0) == 0 {
        return;
    }
    if first[0] != TLS_HANDSHAKE {
        let mut backend = TcpStream::connect(plain).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut backend).await;
        return;
    }
    let Ok(mut decrypted) = acceptor.accept(stream).await else {
        return;
    };
    let mut backend = TcpStream::connect(tls).await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut decrypted, &mut backend).await;
}

/// A private CA (its PEM) and a server config with a certificate it issued for the
/// loopback names.
fn certificates() -> (String, rustls::ServerConfig) {
    let ca = TestCa::new();
    let config = ca.server_config(&["127.0.0.1", "localhost"]);
    (ca.root_pem(), config)
}
