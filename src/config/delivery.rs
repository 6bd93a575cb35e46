//! `[delivery]`'s rules on where a POST may go (issue 12 §5): `require_https` (no plain
//! `http://` target, callback or events URL off loopback) and `extra_ca_file` (roots trusted
//! in addition to the system's, for a target with a private CA, read by `ca_file`;
//! verification stays on).

use url::Url;

use super::oidc::is_loopback_host;

/// Whether a POST to `url` would travel unencrypted off this machine: `http://` to a host
/// other than `localhost` or a loopback address.
pub fn in_clear(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback_host(url)
}

/// What is wrong with a plain `http://` URL when `[delivery] require_https = true`.
pub const HTTPS_REQUIRED: &str = "plain http:// is refused because [delivery] require_https = true: \
     use an https:// URL (http:// is allowed only to localhost and loopback addresses)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_off_loopback_is_in_clear() {
        for clear in ["http://app.example.com/in", "http://10.0.0.5:8080/"] {
            assert!(in_clear(&Url::parse(clear).unwrap()), "{clear}");
        }
        for safe in [
            "https://app.example.com/in",
            "http://127.0.0.1:3000/in",
            "http://127.8.9.10/",
            "http://[::1]:3000/",
            "http://LocalHost/in",
        ] {
            assert!(!in_clear(&Url::parse(safe).unwrap()), "{safe}");
        }
    }
}
