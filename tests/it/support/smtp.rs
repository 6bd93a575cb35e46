//! A raw SMTP client over TCP for protocol tests: exact bytes out, whole replies in.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Smtp {
    stream: BufReader<TcpStream>,
}

impl Smtp {
    /// Connects and reads the 220 greeting.
    pub async fn connect(addr: SocketAddr) -> Smtp {
        Smtp::try_connect(addr)
            .await
            .unwrap_or_else(|greeting| panic!("greeting: {greeting}"))
    }

    /// Connects; the session once greeted with 220, else the greeting it got instead.
    pub async fn try_connect(addr: SocketAddr) -> Result<Smtp, String> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut smtp = Smtp {
            stream: BufReader::new(stream),
        };
        let greeting = smtp.reply().await;
        match greeting.starts_with("220 ") {
            true => Ok(smtp),
            false => Err(greeting),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads one complete reply (all lines of a multi-line reply, joined by `\n`).
    pub async fn reply(&mut self) -> String {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_reply())
            .await
            .expect("a reply within 20 s")
    }

    async fn read_reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await.unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply (got {lines:?})"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends a command line and asserts the reply starts with `expect`.
    pub async fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let reply = self.reply().await;
        assert!(
            reply.starts_with(expect),
            "{line:?}: expected {expect:?}, got {reply:?}"
        );
        reply
    }

    pub async fn ehlo(&mut self) -> String {
        self.cmd("EHLO client.test", "250").await
    }

    /// A whole transaction; returns the reply to the end of data.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], data: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250").await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), "250").await;
        }
        self.cmd("DATA", "354").await;
        self.send(data.as_bytes()).await;
        self.send(b"\r\n.\r\n").await;
        self.reply().await
    }

    /// True when the server closed the connection (EOF within the timeout).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// True when nothing arrives within `wait`.
    pub async fn is_silent(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 256];
        tokio::time::timeout(wait, self.stream.read(&mut buf))
            .await
            .is_err()
    }
}
