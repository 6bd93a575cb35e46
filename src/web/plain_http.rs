//! No API tokens over plain HTTP from another machine (issue 12 §3): the web listener serves
//! plain HTTP, so a bearer token (an admin API key, a send-API credential) sent to it from a
//! peer off loopback crossed the network in clear. Such requests get a JSON 403 that says so,
//! unless `web.allow_plain_http` vouches for a TLS proxy in front (whose connections are the
//! peers then). Sessions are left alone: their cookies are already `Secure` off loopback.

use std::net::IpAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Whether a bearer token from `peer` over plain HTTP may be used: `Err` is the sentence
/// the client is answered with.
pub(super) fn token_allowed(peer: IpAddr, allow_plain_http: bool) -> Result<(), String> {
    if allow_plain_http || peer.is_loopback() || is_mapped_loopback(peer) {
        return Ok(());
    }
    Err(format!(
        "API tokens are refused over plain HTTP from {peer}: use HTTPS (or set [web] \
         allow_plain_http = true behind a TLS proxy)"
    ))
}

/// [`token_allowed`] as the answer to send when refused: a JSON 403, logged.
pub(super) fn refusal(peer: IpAddr, allow_plain_http: bool) -> Option<Response> {
    let sentence = token_allowed(peer, allow_plain_http).err()?;
    tracing::warn!(%peer, "API token refused: it came over plain HTTP from another machine");
    Some(ApiError::Status(StatusCode::FORBIDDEN, sentence).into_response())
}

/// `::ffff:127.0.0.1`, a loopback client on a dual-stack listener.
fn is_mapped_loopback(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn tokens_from_loopback_are_taken_over_plain_http() {
        for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(token_allowed(ip(peer), false), Ok(()), "{peer}");
        }
    }

    #[test]
    fn tokens_from_another_machine_are_refused_with_the_fix() {
        for peer in ["192.0.2.7", "10.0.0.1", "2001:db8::7", "::ffff:192.0.2.7"] {
            let refused = token_allowed(ip(peer), false).unwrap_err();
            assert_eq!(
                refused,
                format!(
                    "API tokens are refused over plain HTTP from {peer}: use HTTPS (or set \
                     [web] allow_plain_http = true behind a TLS proxy)"
                )
            );
        }
    }

    #[test]
    fn allow_plain_http_trusts_the_proxy_in_front() {
        assert_eq!(token_allowed(ip("192.0.2.7"), true), Ok(()));
        assert_eq!(token_allowed(ip("2001:db8::7"), true), Ok(()));
    }
}
