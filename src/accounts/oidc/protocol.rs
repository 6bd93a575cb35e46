//! The protocol's decisions, without I/O: which endpoints a discovery document names, whether
//! an ID token's claims fit this sign-in, and which verified email an identity has.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;

use crate::config::is_loopback_host;

/// Where an OpenID Connect provider's endpoints are (from its discovery document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// As the provider spells it (ID tokens carry it as `iss`).
    pub issuer: String,
    pub authorization: Url,
    pub token: Url,
    pub userinfo: Url,
}

/// What is wrong with a provider's answer. Shown to the user (no secrets in here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("its discovery document names issuer {found:?}, not {configured:?}")]
    IssuerMismatch { found: String, configured: String },
    #[error("its discovery document has no usable {0}")]
    MissingEndpoint(&'static str),
    #[error("it returned no ID token")]
    NoIdToken,
    #[error("its ID token is not readable")]
    MalformedIdToken,
    #[error("its ID token's {0} does not match this sign-in")]
    IdTokenClaim(&'static str),
    #[error("its ID token has expired")]
    IdTokenExpired,
    #[error("its user info is about another user than the ID token")]
    SubjectMismatch,
}

/// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).
pub(crate) fn discovery_url(issuer: &Url) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    )
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// An endpoint must be https (http only on loopback, as the config allows for issuers).
fn endpoint(doc: &Value, field: &'static str) -> Result<Url, ProtocolError> {
    let url = doc[field]
        .as_str()
        .and_then(|text| Url::parse(text).ok())
        .ok_or(ProtocolError::MissingEndpoint(field))?;
    let ok = match url.scheme() {
        "https" => true,
        "http" => is_loopback_host(&url),
        _ => false,
    };
    ok.then_some(url)
        .ok_or(ProtocolError::MissingEndpoint(field))
}

/// The endpoints of a discovery document fetched for `configured` (whose `issuer` must be
/// that same issuer: Discovery §4.3).
pub(crate) fn endpoints(configured: &Url, doc: &Value) -> Result<Endpoints, ProtocolError> {
    let found = doc["issuer"].as_str().unwrap_or_default();
    if !same_issuer(found, configured.as_str()) {
        return Err(ProtocolError::IssuerMismatch {
            found: found.chars().take(200).collect(),
            configured: configured.as_str().trim_end_matches('/').into(),
        });
    }
    Ok(Endpoints {
        issuer: found.to_string(),
        authorization: endpoint(doc, "authorization_endpoint")?,
        token: endpoint(doc, "token_endpoint")?,
        userinfo: endpoint(doc, "userinfo_endpoint")?,
    })
}

/// What an ID token must say for this sign-in.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// Checks the claims of an ID token and returns its subject (`sub`).
///
/// The signature is not checked: OpenID Connect Core §3.1.3.7 (item 6) allows a client to
/// rely on TLS instead when the token came straight from the token endpoint, as here (we
/// never accept an ID token from the browser). The claims are checked as item 2-4, 9 and 11
/// say: `iss` is the issuer, `aud` holds our client id (with `azp` when there are several
/// audiences), `exp` is in the future (with a minute for clock skew), `nonce` is the one
/// we sent, which ties the token to this sign-in.
pub(crate) fn check_id_token(id_token: &str, expected: &Expected) -> Result<String, ProtocolError> {
    let mut parts = id_token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProtocolError::MalformedIdToken);
    };
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(ProtocolError::MalformedIdToken)?;
    if !claims["iss"]
        .as_str()
        .is_some_and(|iss| same_issuer(iss, expected.issuer))
    {
        return Err(ProtocolError::IdTokenClaim("issuer"));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == expected.client_id,
        Value::Array(list) => {
            list.iter().any(|a| a.as_str() == Some(expected.client_id))
                && (list.len() == 1 || claims["azp"].as_str() == Some(expected.client_id))
        }
        _ => false,
    };
    if !audience_ok {
        return Err(ProtocolError::IdTokenClaim("audience"));
    }
    const SKEW: i64 = 60;
    match claims["exp"].as_i64() {
        Some(exp) if exp + SKEW > expected.now => {}
        Some(_) => return Err(ProtocolError::IdTokenExpired),
        None => return Err(ProtocolError::IdTokenClaim("expiry")),
    }
    if claims["nonce"].as_str() != Some(expected.nonce) {
        return Err(ProtocolError::IdTokenClaim("nonce"));
    }
    claims["sub"]
        .as_str()
        .filter(|sub| !sub.is_empty())
        .map(str::to_string)
        .ok_or(ProtocolError::IdTokenClaim("subject"))
}

/// The email a provider vouches for, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Verified emails, the primary one first.
    Verified(Vec<String>),
    /// The provider knows an email but has not verified it.
    Unverified(String),
    NoEmail,
}

/// From OpenID Connect user info (Core §5.3.2: its `sub` must be the ID token's).
pub(crate) fn identity_from_userinfo(info: &Value, sub: &str) -> Result<Identity, ProtocolError> {
    if info["sub"].as_str() != Some(sub) {
        return Err(ProtocolError::SubjectMismatch);
    }
    let Some(email) = info["email"].as_str().filter(|e| !e.trim().is_empty()) else {
        return Ok(Identity::NoEmail);
    };
    // Some providers send the boolean as a string.
    let verified = matches!(&info["email_verified"], Value::Bool(true))
        || info["email_verified"].as_str() == Some("true");
    Ok(if verified {
        Identity::Verified(vec![email.to_string()])
    } else {
        Identity::Unverified(email.to_string())
    })
}

/// From GitHub's `GET /user/emails`: `[{"email", "primary", "verified", "visibility"}]`.
pub(crate) fn identity_from_github(emails: &Value) -> Identity {
    let list = emails.as_array().map(Vec::as_slice).unwrap_or_default();
    let email = |entry: &Value| entry["email"].as_str().map(str::to_string);
    let is = |entry: &Value, field: &str| entry[field].as_bool() == Some(true);
    let mut verified: Vec<&Value> = list.iter().filter(|e| is(e, "verified")).collect();
    // Primary first, the rest in GitHub's order.
    verified.sort_by_key(|e| !is(e, "primary"));
    let verified: Vec<String> = verified.into_iter().filter_map(email).collect();
    if !verified.is_empty() {
        return Identity::Verified(verified);
    }
    let shown = list
        .iter()
        .find(|e| is(e, "primary"))
        .or(list.first())
        .and_then(email);
    match shown {
        Some(email) => Identity::Unverified(email),
        None => Identity::NoEmail,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn token(claims: Value) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    const ISSUER: &str = "https://id.example.com";

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: "client-1",
            nonce: "n-1",
            now: 1_000,
        }
    }

    #[test]
    fn discovery_must_name_the_configured_issuer_and_usable_endpoints() {
        let issuer = Url::parse("https://id.example.com/").unwrap();
        assert_eq!(
            discovery_url(&issuer),
            "https://id.example.com/.well-known/openid-configuration"
        );
        let doc = json!({
            "issuer": "https://id.example.com",
            "authorization_endpoint": "https://id.example.com/auth",
            "token_endpoint": "https://id.example.com/token",
            "userinfo_endpoint": "https://id.example.com/userinfo",
        });
        assert_eq!(endpoints(&issuer, &doc).unwrap().token.path(), "/token");
        let mut other = doc.clone();
        other["issuer"] = json!("https://evil.example.com");
        assert!(matches!(
            endpoints(&issuer, &other),
            Err(ProtocolError::IssuerMismatch { .. })
        ));
        let mut plain = doc.clone();
        plain["token_endpoint"] = json!("http://id.example.com/token");
        assert_eq!(
            endpoints(&issuer, &plain),
            Err(ProtocolError::MissingEndpoint("token_endpoint"))
        );
        let mut none = doc;
        none.as_object_mut().unwrap().remove("userinfo_endpoint");
        assert_eq!(
            endpoints(&issuer, &none),
            Err(ProtocolError::MissingEndpoint("userinfo_endpoint"))
        );
    }

    #[test]
    fn id_token_claims_are_checked() {
        let good =
            json!({"iss": ISSUER, "aud": "client-1", "exp": 2_000, "nonce": "n-1", "sub": "u-1"});
        assert_eq!(
            check_id_token(&token(good.clone()), &expected()).unwrap(),
            "u-1"
        );
        let with = |field: &str, value: Value| {
            let mut claims = good.clone();
            claims[field] = value;
            check_id_token(&token(claims), &expected())
        };
        assert_eq!(
            with("iss", json!("https://other.example")),
            Err(ProtocolError::IdTokenClaim("issuer"))
        );
        assert_eq!(
            with("aud", json!("client-2")),
            Err(ProtocolError::IdTokenClaim("audience"))
        );
        assert_eq!(with("aud", json!(["client-1"])).unwrap(), "u-1");
        assert_eq!(
            with("aud", json!(["client-1", "other"])),
            Err(ProtocolError::IdTokenClaim("audience")),
            "several audiences need azp"
        );
        assert_eq!(with("exp", json!(900)), Err(ProtocolError::IdTokenExpired));
        assert_eq!(with("exp", json!(950)).unwrap(), "u-1", "a minute of skew");
        assert_eq!(
            with("nonce", json!("n-2")),
            Err(ProtocolError::IdTokenClaim("nonce"))
        );
        assert_eq!(
            with("nonce", Value::Null),
            Err(ProtocolError::IdTokenClaim("nonce"))
        );
        assert_eq!(
            check_id_token("a.b", &expected()),
            Err(ProtocolError::MalformedIdToken)
        );
        assert_eq!(
            check_id_token("a.!!.c", &expected()),
            Err(ProtocolError::MalformedIdToken)
        );
    }

    #[test]
    fn only_verified_emails_count() {
        let info = |verified: Value| json!({"sub": "u-1", "email": "A@example.com", "email_verified": verified});
        assert_eq!(
            identity_from_userinfo(&info(json!(true)), "u-1").unwrap(),
            Identity::Verified(vec!["A@example.com".into()])
        );
        assert_eq!(
            identity_from_userinfo(&info(json!("true")), "u-1").unwrap(),
            Identity::Verified(vec!["A@example.com".into()])
        );
        for unverified in [json!(false), json!("false"), Value::Null, json!(1)] {
            assert_eq!(
                identity_from_userinfo(&info(unverified), "u-1").unwrap(),
                Identity::Unverified("A@example.com".into())
            );
        }
        assert_eq!(
            identity_from_userinfo(&json!({"sub": "u-1"}), "u-1").unwrap(),
            Identity::NoEmail
        );
        assert_eq!(
            identity_from_userinfo(&info(json!(true)), "u-2"),
            Err(ProtocolError::SubjectMismatch)
        );

        let github = json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "unverified@example.com", "primary": false, "verified": false},
            {"email": "main@example.com", "primary": true, "verified": true},
        ]);
        assert_eq!(
            identity_from_github(&github),
            Identity::Verified(vec!["main@example.com".into(), "old@example.com".into()])
        );
        let none = json!([{"email": "x@example.com", "primary": true, "verified": false}]);
        assert_eq!(
            identity_from_github(&none),
            Identity::Unverified("x@example.com".into())
        );
        assert_eq!(identity_from_github(&json!([])), Identity::NoEmail);
        assert_eq!(
            identity_from_github(&json!({"message": "Bad credentials"})),
            Identity::NoEmail
        );
    }
}
