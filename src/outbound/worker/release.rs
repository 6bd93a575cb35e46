//! Release: a captured message handed to an SMTP server the user names (dev mode's
//! "Release", like Mailpit's), as it was received — one plain-text connection (STARTTLS when
//! offered, any certificate: a test server on this machine or the LAN), the original envelope
//! sender, the recipients given. Not the queue: nothing is retried, the server's answer is
//! shown as it is.

use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::starttls;
use crate::tls::client::ClientTls;

/// How long connecting and each step may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a release did not go through: what to show the user.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0} is not an address (user@example.com)")]
    Address(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0} timed out")]
    Timeout(String),
    #[error("the server answered: {0}")]
    Refused(String),
}

/// Sends `raw` to `server` (`host:port`) for `recipients`, from `sender` (empty: `<>`); the
/// server's answer to the message.
pub async fn release(
    server: &str,
    hello: &str,
    sender: &str,
    recipients: &[String],
    raw: &[u8],
) -> Result<String, ReleaseError> {
    let parse = |address: &str| {
        address
            .parse::<Address>()
            .map_err(|_| ReleaseError::Address(address.to_string()))
    };
    let from = match sender.is_empty() {
        true => None,
        false => Some(parse(sender)?),
    };
    let to = recipients
        .iter()
        .map(|r| parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(from, to).map_err(|e| ReleaseError::Address(e.to_string()))?;
    let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| ReleaseError::Timeout(format!("connecting to {server}")))?
        .map_err(|e| ReleaseError::Connect(server.to_string(), e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let hello = ClientId::Domain(hello.to_string());
    let refused = |e: lettre::transport::smtp::Error| ReleaseError::Refused(e.to_string());
    let (connection, plain) = tokio::time::timeout(TIMEOUT, starttls::greet(stream, &hello))
        .await
        .map_err(|_| ReleaseError::Timeout(format!("the greeting of {server}")))?
        .map_err(refused)?;
    let mut connection = match connection.can_starttls() {
        false => connection,
        true => {
            let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
            let tls = ClientTls::new(&[])
                .map_err(|e| ReleaseError::Refused(format!("TLS setup: {e}")))?;
            match starttls::upgrade(connection, plain, &tls, host, false, &hello).await {
                Ok((connection, _)) => connection,
                Err(_) => {
                    return Err(ReleaseError::Refused(format!(
                        "STARTTLS with {server} failed"
                    )));
                }
            }
        }
    };
    let response = tokio::time::timeout(TIMEOUT * 2, connection.send(&envelope, raw))
        .await
        .map_err(|_| ReleaseError::Timeout(format!("sending to {server}")))?
        .map_err(refused)?;
    connection.quit().await.ok();
    Ok(format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    ))
}
