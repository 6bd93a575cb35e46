//! Which redirects a POST follows (issue 12 §5): a target's `Location` must not carry a
//! message (or a callback's data) somewhere it was not sent. Followed: the same origin
//! (scheme, host, port), or `http` → `https` on the same host (same port, or 80 → 443);
//! another origin only with `[delivery] follow_cross_origin_redirects = true`; never
//! `https` → `http`, never a scheme other than `http` and `https`. Pure: no I/O.

use url::Url;

/// The redirect policy of one client (`[delivery] follow_cross_origin_redirects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    /// Follow a redirect to another origin (still never `https` → `http`).
    pub cross_origin: bool,
}

/// Why a redirect is not followed; the text completes "redirect to URL refused: …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http:// and https:// locations are followed")]
    Scheme,
    #[error("it leaves https for plain http (never followed)")]
    Downgrade,
    #[error(
        "leaves the target's origin (set [delivery] follow_cross_origin_redirects = true to allow)"
    )]
    CrossOrigin,
}

impl RedirectPolicy {
    /// Whether the POST made to `from` may be repeated to `to`.
    pub fn check(&self, from: &Url, to: &Url) -> Result<(), Refusal> {
        if !matches!(to.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if from.scheme() == "https" && to.scheme() == "http" {
            return Err(Refusal::Downgrade);
        }
        if from.origin() == to.origin() || is_upgrade(from, to) || self.cross_origin {
            return Ok(());
        }
        Err(Refusal::CrossOrigin)
    }
}

/// `http://host[:port]` → `https://host[:port]`: the same host and port, or the default
/// ports (80 → 443).
fn is_upgrade(from: &Url, to: &Url) -> bool {
    let ports = (from.port_or_known_default(), to.port_or_known_default());
    from.scheme() == "http"
        && to.scheme() == "https"
        && from.host() == to.host()
        && (ports.0 == ports.1 || ports == (Some(80), Some(443)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: RedirectPolicy = RedirectPolicy {
        cross_origin: false,
    };
    const LENIENT: RedirectPolicy = RedirectPolicy { cross_origin: true };

    fn check(policy: RedirectPolicy, from: &str, to: &str) -> Result<(), Refusal> {
        policy.check(&Url::parse(from).unwrap(), &Url::parse(to).unwrap())
    }

    #[test]
    fn the_same_origin_is_followed() {
        for (from, to) in [
            (
                "https://app.example.com/in",
                "https://app.example.com/v2/in",
            ),
            (
                "https://app.example.com/in",
                "https://APP.example.com:443/x",
            ),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?c=d"),
        ] {
            assert_eq!(check(STRICT, from, to), Ok(()), "{from} → {to}");
        }
    }

    #[test]
    fn an_upgrade_to_https_on_the_same_host_is_followed() {
        for (from, to) in [
            ("http://app.example.com/in", "https://app.example.com/in"),
            ("http://app.example.com:80/in", "https://app.example.com/in"),
            ("http://127.0.0.1:8080/a", "https://127.0.0.1:8080/a"),
        ] {
            assert_eq!(check(STRICT, from, to), Ok(()), "{from} → {to}");
        }
        // Another host, or another port than the default's change, is another origin.
        for (from, to) in [
            ("http://app.example.com/in", "https://other.example.com/in"),
            (
                "http://app.example.com:8080/in",
                "https://app.example.com:8443/",
            ),
            ("http://app.example.com/in", "https://app.example.com:8443/"),
        ] {
            assert_eq!(check(STRICT, from, to), Err(Refusal::CrossOrigin));
            assert_eq!(check(LENIENT, from, to), Ok(()), "{from} → {to}");
        }
    }

    #[test]
    fn another_origin_is_followed_only_when_allowed() {
        for (from, to) in [
            ("https://app.example.com/in", "https://other.example.com/in"),
            (
                "https://app.example.com/in",
                "https://app.example.com:8443/in",
            ),
            (
                "https://app.example.com/in",
                "https://sub.app.example.com/in",
            ),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a"),
            ("http://127.0.0.1/a", "http://localhost/a"),
        ] {
            assert_eq!(check(STRICT, from, to), Err(Refusal::CrossOrigin));
            assert_eq!(check(LENIENT, from, to), Ok(()), "{from} → {to}");
        }
    }

    #[test]
    fn https_to_http_is_never_followed() {
        for policy in [STRICT, LENIENT] {
            for to in ["http://app.example.com/in", "http://other.example.com/in"] {
                let refused = check(policy, "https://app.example.com/in", to);
                assert_eq!(refused, Err(Refusal::Downgrade), "{to}");
            }
        }
    }

    #[test]
    fn other_schemes_are_never_followed() {
        for policy in [STRICT, LENIENT] {
            for to in ["ftp://app.example.com/in", "file:///etc/passwd", "data:,x"] {
                let refused = check(policy, "http://app.example.com/in", to);
                assert_eq!(refused, Err(Refusal::Scheme), "{to}");
            }
        }
    }
}
