//! `[[web.oidc]]`: the identity providers a user may sign in with instead of a password
//! (Google, GitHub, any OpenID Connect issuer), and `web.public_url`, the address browsers
//! reach Postern at, which the providers send them back to.
//!
//! Client secrets are wrapped in [`Secret`], whose `Debug` shows `***`; `postern check` and
//! `/settings` show the provider's name, kind, issuer and client id only.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use super::ConfigError;

/// A value that must never be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Google's issuer, for `kind = "google"`.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
pub const GITHUB_URL: &str = "https://github.com";
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// One configured provider.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// The slug in `/signin/oidc/{name}`.
    pub name: String,
    /// The button says "Sign in with {label}".
    pub label: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect: endpoints from `{issuer}/.well-known/openid-configuration`
    /// (`kind = "google"` is this with Google's issuer).
    Oidc { issuer: Url },
    /// GitHub's OAuth apps (not OpenID Connect): `{web}/login/oauth/*` and `{api}/user/emails`.
    GitHub { web: Url, api: Url },
}

impl ProviderKind {
    /// For `postern check` and `/settings`.
    pub fn describe(&self) -> String {
        match self {
            ProviderKind::Oidc { issuer } => format!("OpenID Connect, issuer {}", text(issuer)),
            ProviderKind::GitHub { web, .. } => format!("GitHub at {}", text(web)),
        }
    }
}

/// A URL as written: without the slash the `url` crate adds to a bare host.
pub fn text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// An `[[web.oidc]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSpec {
    name: String,
    label: Option<String>,
    kind: String,
    issuer: Option<String>,
    github_url: Option<String>,
    api_url: Option<String>,
    client_id: String,
    client_secret: Option<Secret>,
    client_secret_file: Option<PathBuf>,
}

/// An `http(s)://` URL with a host and nothing after the path; plain `http` only to a
/// loopback host (a provider or a stand-in on this machine).
fn provider_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let allowed = "expected an https:// URL (http:// only on loopback), without query or fragment";
    let url = Url::parse(text).map_err(|_| ConfigError::invalid(key, quote(text), allowed))?;
    let loopback = is_loopback_host(&url);
    let ok = match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    };
    if !ok
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(ConfigError::invalid(key, quote(text), allowed));
    }
    Ok(url)
}

/// `localhost` or a loopback address.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn quote(value: &str) -> String {
    format!("{value:?}")
}

/// `web.public_url`: `http(s)://host[:port]`, no path (Postern's routes are at the root).
pub(super) fn public_url(text: &str) -> Result<Url, ConfigError> {
    let key = "web.public_url";
    let allowed =
        "expected the URL browsers reach Postern at, e.g. https://postern.example.com (no path)";
    let url = Url::parse(text).map_err(|_| ConfigError::invalid(key, quote(text), allowed))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(ConfigError::invalid(key, quote(text), allowed));
    }
    Ok(url)
}

/// Validates `[[web.oidc]]` entry `i`; errors name `web.oidc[i].{field}`.
pub(super) fn validate(i: usize, raw: OidcSpec) -> Result<OidcProvider, ConfigError> {
    let key = |field: &str| format!("web.oidc[{i}].{field}");
    check_name(&key, &raw.name)?;
    let (kind, default_label) = match raw.kind.as_str() {
        "oidc" | "google" => oidc_kind(&key, &raw)?,
        "github" => github_kind(&key, &raw)?,
        other => {
            return Err(ConfigError::invalid(
                key("kind"),
                quote(other),
                "one of \"oidc\", \"google\", \"github\"",
            ));
        }
    };
    let label = check_label(&key, raw.label.unwrap_or(default_label))?;
    let client_id = check_client_id(&key, &raw.client_id)?;
    let client_secret = client_secret(&key, raw.client_secret, raw.client_secret_file)?;
    Ok(OidcProvider {
        name: raw.name,
        label,
        kind,
        client_id,
        client_secret,
    })
}

/// The name is part of the URLs (`/signin/oidc/{name}`): a short slug.
fn check_name(key: &impl Fn(&str) -> String, name: &str) -> Result<(), ConfigError> {
    let slug = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || name.len() > 32 || !name.chars().all(slug) {
        return Err(ConfigError::invalid(
            key("name"),
            quote(name),
            "1 to 32 of a-z, 0-9 and -: it is part of the URLs, e.g. \"google\"",
        ));
    }
    Ok(())
}

/// A key that only the other kind of provider takes.
fn not_here(key: &impl Fn(&str) -> String, field: &str, kind: &str) -> ConfigError {
    ConfigError::invalid(key(field), "(set)", format!("only for kind = \"{kind}\""))
}

/// `kind = "oidc"` (an issuer of one's own) or `"google"` (Google's issuer); the default
/// label comes with it.
fn oidc_kind(
    key: &impl Fn(&str) -> String,
    raw: &OidcSpec,
) -> Result<(ProviderKind, String), ConfigError> {
    if raw.github_url.is_some() {
        return Err(not_here(key, "github_url", "github"));
    }
    if raw.api_url.is_some() {
        return Err(not_here(key, "api_url", "github"));
    }
    let google = raw.kind == "google";
    let issuer = match (google, &raw.issuer) {
        (true, None) => Url::parse(GOOGLE_ISSUER).expect("a valid URL"),
        (true, Some(_)) => {
            return Err(ConfigError::invalid(
                key("issuer"),
                "(set)",
                format!(
                    "kind = \"google\" means issuer {GOOGLE_ISSUER}; use kind = \"oidc\" for another"
                ),
            ));
        }
        (false, Some(issuer)) => provider_url(&key("issuer"), issuer)?,
        (false, None) => {
            return Err(ConfigError::invalid(
                key("issuer"),
                "(missing)",
                "the issuer URL, e.g. https://accounts.example.com (its /.well-known/openid-configuration is read)",
            ));
        }
    };
    let label = if google {
        "Google".to_string()
    } else {
        raw.name.clone()
    };
    Ok((ProviderKind::Oidc { issuer }, label))
}

/// `kind = "github"`: github.com, or a GitHub Enterprise server's web and API URLs.
fn github_kind(
    key: &impl Fn(&str) -> String,
    raw: &OidcSpec,
) -> Result<(ProviderKind, String), ConfigError> {
    if raw.issuer.is_some() {
        return Err(not_here(key, "issuer", "oidc"));
    }
    let web = provider_url(
        &key("github_url"),
        raw.github_url.as_deref().unwrap_or(GITHUB_URL),
    )?;
    let api = provider_url(
        &key("api_url"),
        raw.api_url.as_deref().unwrap_or(GITHUB_API_URL),
    )?;
    Ok((ProviderKind::GitHub { web, api }, "GitHub".to_string()))
}

/// The button text: one short line.
fn check_label(key: &impl Fn(&str) -> String, label: String) -> Result<String, ConfigError> {
    if label.trim().is_empty() || label.chars().count() > 60 || label.chars().any(char::is_control)
    {
        return Err(ConfigError::invalid(
            key("label"),
            quote(&label),
            "one line of 1 to 60 characters",
        ));
    }
    Ok(label)
}

/// The client id, trimmed: one line.
fn check_client_id(key: &impl Fn(&str) -> String, written: &str) -> Result<String, ConfigError> {
    let client_id = written.trim().to_string();
    if client_id.is_empty() || client_id.len() > 512 || client_id.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            key("client_id"),
            quote(written),
            "the client id the provider gave you (one line)",
        ));
    }
    Ok(client_id)
}

/// The client secret, given inline or in a file (exactly one of the two); errors show it
/// as `***`.
fn client_secret(
    key: &impl Fn(&str) -> String,
    inline: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Secret, ConfigError> {
    let secret = match (inline, file) {
        (Some(secret), None) => secret,
        (None, Some(path)) => read_secret_file(key, &path)?,
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                key("client_secret"),
                "***",
                "set client_secret or client_secret_file, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                key("client_secret"),
                "(missing)",
                "set client_secret, or client_secret_file (a file holding only the secret)",
            ));
        }
    };
    if secret.expose().is_empty() || secret.expose().chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            key("client_secret"),
            "***",
            "the client secret the provider gave you (one line, not empty)",
        ));
    }
    Ok(secret)
}

/// `client_secret_file`: the file's text without its final line break.
fn read_secret_file(key: &impl Fn(&str) -> String, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::invalid(
            key("client_secret_file"),
            quote(&path.display().to_string()),
            format!("cannot read it: {e}"),
        )
    })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(toml: &str) -> Result<crate::config::WebConfig, String> {
        Config::from_toml(toml, Vec::new())
            .map(|c| c.web)
            .map_err(|e| e.to_string())
    }

    const GOOGLE: &str = "[web]\npublic_url = \"https://postern.example.com\"\n[[web.oidc]]\nname = \"google\"\nkind = \"google\"\nclient_id = \"id-1\"\nclient_secret = \"s3cret-value\"\n";

    #[test]
    fn providers_are_read_with_their_defaults() {
        let web = load(GOOGLE).unwrap();
        assert_eq!(
            web.public_url.as_ref().unwrap().as_str(),
            "https://postern.example.com/"
        );
        let google = &web.oidc[0];
        assert_eq!(google.label, "Google");
        assert_eq!(
            google.kind,
            super::ProviderKind::Oidc {
                issuer: url::Url::parse("https://accounts.google.com").unwrap()
            }
        );
        let debug = format!("{web:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("***"));

        let github = load(
            "[[web.oidc]]\nname = \"gh\"\nkind = \"github\"\nlabel = \"GitHub Enterprise\"\ngithub_url = \"http://127.0.0.1:9999\"\napi_url = \"http://127.0.0.1:9999/api/v3\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
        )
        .unwrap();
        assert_eq!(github.oidc[0].label, "GitHub Enterprise");
        assert!(
            matches!(&github.oidc[0].kind, super::ProviderKind::GitHub { api, .. } if api.path() == "/api/v3")
        );
    }

    #[test]
    fn the_secret_may_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let web = load(&format!(
            "[[web.oidc]]\nname = \"corp\"\nkind = \"oidc\"\nissuer = \"https://id.example.com\"\nclient_id = \"x\"\nclient_secret_file = {:?}\n",
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(web.oidc[0].client_secret.expose(), "from-a-file");
        assert_eq!(web.oidc[0].label, "corp");
    }

    #[test]
    fn bad_entries_name_the_key_and_never_show_the_secret() {
        let entry = |body: &str| load(&format!("[[web.oidc]]\n{body}\n")).unwrap_err();
        let cases = [
            (
                "name = \"Google\"\nkind = \"google\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].name = \"Google\": 1 to 32",
            ),
            (
                "name = \"a\"\nkind = \"saml\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].kind = \"saml\"",
            ),
            (
                "name = \"a\"\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].issuer = (missing)",
            ),
            (
                "name = \"a\"\nkind = \"oidc\"\nissuer = \"http://id.example.com\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].issuer = \"http://id.example.com\": expected an https:// URL",
            ),
            (
                "name = \"a\"\nkind = \"google\"\nissuer = \"https://x.example\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].issuer = (set)",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"",
                "web.oidc[0].client_secret = (missing)",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"\nclient_secret_file = \"/x\"",
                "web.oidc[0].client_secret = ***: set client_secret or client_secret_file, not both",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"\"\nclient_secret = \"s3cret\"",
                "web.oidc[0].client_id = \"\"",
            ),
            (
                "name = \"a\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret_file = \"/nonexistent/secret\"",
                "web.oidc[0].client_secret_file = \"/nonexistent/secret\": cannot read it",
            ),
        ];
        for (body, expected) in cases {
            let error = entry(body);
            assert!(error.starts_with(expected), "{body}\n→ {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        let twice = format!(
            "{GOOGLE}[[web.oidc]]\nname = \"google\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n"
        );
        assert!(
            load(&twice)
                .unwrap_err()
                .starts_with("web.oidc[1].name = \"google\": already configured as web.oidc[0]")
        );
        let path = "[web]\npublic_url = \"https://postern.example.com/dashboard\"\n";
        assert!(load(path).unwrap_err().starts_with("web.public_url = "));
    }

    #[test]
    fn a_public_listener_needs_the_public_url() {
        let open = GOOGLE.replace(
            "public_url = \"https://postern.example.com\"",
            "listen = \"0.0.0.0:8025\"\nallow_plain_http = true",
        );
        let error = load(&open).unwrap_err();
        assert!(error.starts_with("web.public_url = (missing)"), "{error}");
        // On loopback the callback URL follows the browser's loopback Host instead.
        let loopback = GOOGLE.replace("public_url = \"https://postern.example.com\"", "");
        assert!(load(&loopback).unwrap().public_url.is_none());
    }

    #[test]
    fn providers_cannot_come_from_the_environment() {
        let env = vec![("POSTERN_WEB__OIDC".to_string(), "x".to_string())];
        let error = Config::from_toml("", env).unwrap_err().to_string();
        assert!(error.contains("client_secret_file"), "{error}");
    }
}
