//! The `Host` check in front of every route, a guard against DNS rebinding: a web page whose
//! name an attacker points at 127.0.0.1 reaches the listener with the attacker's name in
//! `Host`, so a request is served only when it names this machine.
//!
//! Accepted, whatever the port: `localhost`, any `127.x.y.z`, `[::1]`, the address the client
//! connected to (the listener's own address), and the hosts of `web.public_url` and of the
//! tracking URL (`[outbound] tracking_url`, or the one derived from the listener), which other
//! machines use for the send API and the tracking links. Anything else, an empty or missing
//! `Host` (an HTTP/1.0 client) or two of them gets `421 Misdirected Request` with a sentence
//! saying which names are accepted: no page, no CSRF token, no data. A listener off loopback
//! without `web.public_url` accepts any `Host` ([`HostRule::Any`]; `serve` and `postern check`
//! warn), since Postern cannot know the names it is reached by there.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::web::listener::LocalAddr;

/// Which `Host` values the web listener serves.
#[derive(Debug, Clone)]
pub enum HostRule {
    /// Any: a listener off loopback with no `web.public_url` to compare with.
    Any,
    /// Loopback names and addresses, the connection's own address, and these hosts
    /// (lowercase, no port, IPv6 without brackets).
    Only(Arc<Vec<String>>),
}

impl HostRule {
    /// Loopback plus the given hosts (e.g. from `web.public_url`; URLs' `host_str`).
    pub fn only<'a>(hosts: impl IntoIterator<Item = &'a str>) -> HostRule {
        // Loopback is always in; leaving it out of the list keeps the refusal's sentence short.
        let mut names: Vec<String> = hosts
            .into_iter()
            .map(normalise)
            .filter(|name| !is_loopback(name))
            .collect();
        names.sort();
        names.dedup();
        HostRule::Only(Arc::new(names))
    }

    /// Whether a request naming `host` (a `Host` value, port included) over a connection to
    /// `local` is served.
    pub fn accepts(&self, host: &str, local: Option<IpAddr>) -> bool {
        let HostRule::Only(names) = self else {
            return true;
        };
        let Some(name) = host_name(host) else {
            return false;
        };
        is_loopback(&name)
            || names.contains(&name)
            || name.parse::<IpAddr>().is_ok_and(|ip| Some(ip) == local)
    }

    /// The sentence a refused request gets.
    fn refusal(&self) -> String {
        let extra = match self {
            HostRule::Only(names) if !names.is_empty() => format!(", {}", names.join(", ")),
            _ => String::new(),
        };
        format!(
            "Postern answers only to requests for localhost, 127.0.0.1, [::1], the address it \
             listens on{extra} (any port); this request's Host header names another host or \
             none. To reach it under another name, set web.public_url in the [web] section \
             of the config.\n"
        )
    }
}

/// The host part of a `Host` value: lowercase, port and IPv6 brackets and a final dot removed;
/// `None` when empty or malformed.
pub(super) fn host_name(value: &str) -> Option<String> {
    let authority: axum::http::uri::Authority = value.parse().ok()?;
    // No user info: a Host header never has it.
    if authority.as_str().contains('@') {
        return None;
    }
    let name = normalise(authority.host());
    (!name.is_empty()).then_some(name)
}

fn normalise(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// `localhost`, `127.x.y.z`, `::1` (and `::ffff:127.x.y.z`), normalised.
fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
}

/// The middleware: every host the request names (its `Host` header, and the URI's authority
/// when it came in absolute form) must be accepted, and there must be exactly one `Host`.
pub(super) async fn check(State(rule): State<HostRule>, request: Request, next: Next) -> Response {
    let local = request
        .extensions()
        .get::<LocalAddr>()
        .map(|LocalAddr(addr)| addr.ip());
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let accepted = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().is_ok_and(|host| rule.accepts(host, local)),
        _ => matches!(rule, HostRule::Any),
    } && request
        .uri()
        .authority()
        .is_none_or(|authority| rule.accepts(authority.as_str(), local));
    if accepted {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            rule.refusal(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_the_named_hosts_are_accepted_with_any_port() {
        let rule = HostRule::only(["Postern.Example.com", "track.example.com"]);
        let local = Some("192.0.2.10".parse().unwrap());
        for host in [
            "localhost",
            "LOCALHOST:8025",
            "localhost.:1",
            "127.0.0.1",
            "127.0.0.1:8025",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8025",
            "postern.example.com",
            "postern.example.com.:443",
            "track.example.com:8080",
            "192.0.2.10:8025",
        ] {
            assert!(rule.accepts(host, local), "{host}");
        }
        for host in [
            "",
            ":8025",
            "evil.example",
            "evil.example:8025",
            "localhost.evil.example",
            "postern.example.com.evil.example",
            "192.0.2.11",
            "[::2]:80",
            "user@localhost",
            "local host",
        ] {
            assert!(!rule.accepts(host, local), "{host}");
        }
        assert!(HostRule::Any.accepts("evil.example", None));
    }

    #[test]
    fn the_refusal_names_the_accepted_hosts_and_the_setting() {
        let text = HostRule::only(["postern.example.com", "127.0.0.1"]).refusal();
        assert!(
            text.contains("listens on, postern.example.com (any port)"),
            "{text}"
        );
        assert!(text.contains("localhost, 127.0.0.1, [::1]"), "{text}");
        assert!(text.contains("postern.example.com"), "{text}");
        assert!(text.contains("web.public_url"), "{text}");
    }
}
