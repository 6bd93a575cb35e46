//! A TLS client trusting only one root (a test CA's, Pebble's), for the tests of the
//! listeners' certificate: the leaf presented over HTTPS, after SMTP STARTTLS and on an
//! implicit-TLS port, and an HTTPS `reqwest` client for a host name resolved to loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An SMTP session over TLS, read line by line.
pub type TlsSmtp = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

/// Verifies servers against `root_pem` alone, for the name `host`.
pub struct TlsClient {
    root_pem: String,
    host: &'static str,
    smtp: Arc<ClientConfig>,
    https: Arc<ClientConfig>,
}

impl TlsClient {
    pub fn trusting(root_pem: &str, host: &'static str) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let smtp = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut https = smtp.clone();
        https.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsClient {
            root_pem: root_pem.to_string(),
            host,
            smtp: Arc::new(smtp),
            https: Arc::new(https),
        }
    }

    /// The leaf the HTTPS listener at `addr` presents (HTTP/1.1 negotiated by ALPN).
    pub async fn https_leaf(&self, addr: SocketAddr) -> Result<CertificateDer<'static>, String> {
        let tcp = connect(addr).await?;
        let (tls, leaf) = self.handshake(&self.https, tcp).await?;
        let alpn = tls.get_ref().1.alpn_protocol();
        assert_eq!(
            alpn,
            Some(&b"http/1.1"[..]),
            "HTTPS without HTTP/1.1 by ALPN"
        );
        Ok(leaf)
    }

    /// STARTTLS on the SMTP listener at `addr`: the session after the handshake and the
    /// leaf the server presented.
    pub async fn starttls(
        &self,
        addr: SocketAddr,
    ) -> Result<(TlsSmtp, CertificateDer<'static>), String> {
        let mut plain = BufReader::new(connect(addr).await?);
        assert!(reply(&mut plain).await.starts_with("220"));
        let ehlo = command(&mut plain, "EHLO client.test").await;
        assert!(ehlo.contains("STARTTLS"), "STARTTLS not offered: {ehlo}");
        let ready = command(&mut plain, "STARTTLS").await;
        assert!(ready.starts_with("220"), "STARTTLS refused: {ready}");
        let (tls, leaf) = self.handshake(&self.smtp, plain.into_inner()).await?;
        Ok((BufReader::new(tls), leaf))
    }

    /// Implicit TLS (RFC 8314) at `addr`: the handshake first, then the greeting over it.
    pub async fn implicit_tls(
        &self,
        addr: SocketAddr,
    ) -> Result<(TlsSmtp, CertificateDer<'static>), String> {
        let tcp = connect(addr).await?;
        let (tls, leaf) = self.handshake(&self.smtp, tcp).await?;
        let mut session = BufReader::new(tls);
        let greeting = reply(&mut session).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        Ok((session, leaf))
    }

    /// An HTTPS client trusting only the root, with the host name resolved to `web`; it
    /// follows no redirect.
    pub fn https_client(&self, web: SocketAddr) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.root_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([root])
            .resolve(self.host, web)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn handshake(
        &self,
        config: &Arc<ClientConfig>,
        tcp: TcpStream,
    ) -> Result<
        (
            tokio_rustls::client::TlsStream<TcpStream>,
            CertificateDer<'static>,
        ),
        String,
    > {
        let name = ServerName::try_from(self.host).unwrap();
        let tls = TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .ok_or("no certificate")?[0]
            .clone()
            .into_owned();
        Ok((tls, leaf))
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr).await.map_err(|e| e.to_string())
}

/// An SMTP reply, all its lines, within 10 s.
pub async fn reply<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("a reply within 10 s")
            .unwrap();
        assert!(read > 0, "the server closed the connection after {text:?}");
        text.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return text;
        }
    }
}

/// Sends one command line, returns the reply.
pub async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    line: &str,
) -> String {
    stream
        .get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    reply(stream).await
}
