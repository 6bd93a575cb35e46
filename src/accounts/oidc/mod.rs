//! Sign-in with an identity provider: OpenID Connect (Google, or any issuer by discovery) and
//! GitHub. The provider vouches for an email; a user with that email (case-insensitive) is
//! signed in as if they had typed their password. Users are never created here.
//!
//! [`Oidc::start`] sends the browser to the provider (authorization code flow with `state`,
//! PKCE S256 and, for OpenID Connect, a `nonce`) and remembers the sign-in in memory
//! (`pending`), bound to the browser by a cookie token. [`Oidc::finish`] takes the sign-in
//! back, checks `state` (constant time), exchanges the code at the token endpoint, reads the
//! identity (OpenID Connect: the ID token's claims and the user info, where
//! `email_verified` must be true; GitHub: the verified emails of `/user/emails`, primary
//! first) and continues like a password sign-in: users with TOTP get the second step.
//!
//! Every failure is audited (`signin_failed`, with the provider and the email when one is
//! known) and counted for throttling by the client's address; the provider being
//! unreachable is audited but not counted. The protocol's decisions are in `protocol` (no
//! I/O), the HTTP client in `http`, the pending sign-ins in `pending`.

mod http;
mod pending;
mod protocol;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::{Accounts, Actor, AuditAction, Client, SignIn, normalise_email};
use crate::config::{OidcProvider, ProviderKind};
use crate::secret;
use crate::store::StoreError;
use http::Http;
use pending::{Missing, Pending, PendingLogin};
use protocol::{Endpoints, Identity, ProtocolError};

pub use pending::PENDING_TIMEOUT;

/// Why a sign-in with a provider did not happen. The `Display` is the sentence for the
/// sign-in page (the provider's label is put in front by the caller where it helps).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("there is no sign-in provider {0:?}")]
    UnknownProvider(String),
    #[error("too many failed sign-ins; try again in {} seconds", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    #[error("this sign-in was not started in this browser, or was finished already; start again")]
    NotStarted,
    #[error("this sign-in took longer than {} minutes; start again", PENDING_TIMEOUT.as_secs() / 60)]
    Expired,
    #[error("the answer does not belong to the sign-in this browser started; start again")]
    StateMismatch,
    #[error("{label} did not sign you in ({reason})")]
    Denied { label: String, reason: String },
    #[error("{label} could not be used: {reason}; try again later")]
    Provider { label: String, reason: String },
    #[error("{label} did not tell us an email address")]
    NoEmail { label: String },
    #[error("{label} has not verified your email address {email}; verify it there first")]
    UnverifiedEmail { label: String, email: String },
    #[error("there is no Postern user with the email {email}; ask an admin to add you")]
    UnknownEmail { email: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OidcError {
    /// The audit detail (after the provider's name).
    fn audit_detail(&self) -> String {
        match self {
            OidcError::NotStarted => "not started in this browser".into(),
            OidcError::Expired => "expired".into(),
            OidcError::StateMismatch => "state mismatch".into(),
            OidcError::Denied { reason, .. } => format!("refused by the provider: {reason}"),
            OidcError::Provider { reason, .. } => format!("provider error: {reason}"),
            OidcError::NoEmail { .. } => "no email".into(),
            OidcError::UnverifiedEmail { .. } => "email not verified".into(),
            OidcError::UnknownEmail { .. } => "unknown account".into(),
            other => other.to_string(),
        }
    }

    /// The email concerned, for the audit row's subject.
    fn email(&self) -> Option<&str> {
        match self {
            OidcError::UnverifiedEmail { email, .. } | OidcError::UnknownEmail { email } => {
                Some(email)
            }
            _ => None,
        }
    }

    /// Whether it counts as a failed sign-in for throttling: everything the browser or the
    /// identity is to blame for, not the provider being down.
    fn counts(&self) -> bool {
        !matches!(
            self,
            OidcError::Provider { .. } | OidcError::Throttled { .. } | OidcError::Store(_)
        )
    }
}

/// A sign-in sent to the provider.
#[derive(Debug)]
pub struct Started {
    /// Where to send the browser.
    pub authorize_url: String,
    /// For the cookie that binds the sign-in to this browser (never stored as is).
    pub browser: String,
}

/// The query of the provider's redirect back to us.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set when the user (or the provider) refused: `access_denied`, …
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished sign-in: like step one of a password sign-in.
#[derive(Debug)]
pub struct Finished {
    pub sign_in: SignIn,
    /// The `next` given at the start.
    pub next: String,
}

/// The token endpoint's answer, with OpenID Connect's `id_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The providers of `[[web.oidc]]` and the sign-ins under way. Cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: Accounts,
    providers: Vec<OidcProvider>,
    pending: Mutex<Pending>,
    http: Http,
}

/// Equal secrets, compared without an early exit (over their digests, so lengths leak
/// nothing either).
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Text from the provider, made safe to show and store: one line, at most 200 characters.
fn short(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

fn github_endpoint(web: &Url, path: &str) -> Url {
    let base = web.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{path}")).expect("a valid base URL with a path is valid")
}

impl Oidc {
    pub fn new(accounts: Accounts, providers: Vec<OidcProvider>) -> Oidc {
        Oidc {
            inner: Arc::new(Inner {
                accounts,
                providers,
                pending: Mutex::new(Pending::default()),
                http: Http::new(),
            }),
        }
    }

    pub fn providers(&self) -> &[OidcProvider] {
        &self.inner.providers
    }

    pub fn provider(&self, name: &str) -> Option<&OidcProvider> {
        self.inner.providers.iter().find(|p| p.name == name)
    }

    fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// Starts a sign-in with provider `name`, whose callback is `redirect_url`; `next` is
    /// where the browser goes once signed in.
    pub async fn start(
        &self,
        name: &str,
        redirect_url: &str,
        next: &str,
        client: &Client,
    ) -> Result<Started, OidcError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| OidcError::UnknownProvider(name.to_string()))?;
        if let Some(retry_after) = self.accounts().address_throttled(client.ip).await? {
            return Err(OidcError::Throttled { retry_after });
        }
        let started = self.start_with(provider, redirect_url, next).await;
        if let Err(error) = &started {
            self.failed(provider, error, client).await?;
        }
        started
    }

    async fn start_with(
        &self,
        provider: &OidcProvider,
        redirect_url: &str,
        next: &str,
    ) -> Result<Started, OidcError> {
        let (endpoints, authorization, token) = match &provider.kind {
            ProviderKind::Oidc { issuer } => {
                let endpoints = self.discover(provider, issuer).await?;
                let (authorization, token) =
                    (endpoints.authorization.clone(), endpoints.token.clone());
                (Some(endpoints), authorization, token)
            }
            ProviderKind::GitHub { web, .. } => (
                None,
                github_endpoint(web, "login/oauth/authorize"),
                github_endpoint(web, "login/oauth/access_token"),
            ),
        };
        let oauth = oauth_client(provider, authorization, token, redirect_url)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = oauth
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        let scopes: &[&str] = match provider.kind {
            ProviderKind::Oidc { .. } => &["openid", "email"],
            ProviderKind::GitHub { .. } => &["read:user", "user:email"],
        };
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.to_string()));
        }
        let nonce = endpoints.as_ref().map(|_| secret::new_token());
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.clone());
        }
        let (authorize_url, state) = request.url();
        let login = PendingLogin {
            provider: provider.name.clone(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce,
            redirect_url: redirect_url.to_string(),
            endpoints,
            next: next.to_string(),
            started_at: self.accounts().now(),
        };
        let browser = self
            .inner
            .pending
            .lock()
            .expect("the pending sign-ins' lock is never poisoned")
            .insert(login, self.accounts().now());
        Ok(Started {
            authorize_url: authorize_url.to_string(),
            browser,
        })
    }

    async fn discover(
        &self,
        provider: &OidcProvider,
        issuer: &Url,
    ) -> Result<Endpoints, OidcError> {
        let doc = self
            .inner
            .http
            .get_json(&protocol::discovery_url(issuer), None)
            .await
            .map_err(|e| provider_error(provider, format!("its discovery document: {e}")))?;
        protocol::endpoints(issuer, &doc).map_err(|e| provider_error(provider, e.to_string()))
    }

    /// Finishes the sign-in that the browser holding `browser` started with provider `name`.
    pub async fn finish(
        &self,
        name: &str,
        browser: Option<&str>,
        callback: &Callback,
        client: &Client,
    ) -> Result<Finished, OidcError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| OidcError::UnknownProvider(name.to_string()))?;
        if let Some(retry_after) = self.accounts().address_throttled(client.ip).await? {
            return Err(OidcError::Throttled { retry_after });
        }
        let finished = self.finish_with(provider, browser, callback, client).await;
        if let Err(error) = &finished {
            self.failed(provider, error, client).await?;
        }
        finished
    }

    async fn finish_with(
        &self,
        provider: &OidcProvider,
        browser: Option<&str>,
        callback: &Callback,
        client: &Client,
    ) -> Result<Finished, OidcError> {
        let now = self.accounts().now();
        let taken = browser.ok_or(Missing::Unknown).and_then(|browser| {
            self.inner
                .pending
                .lock()
                .expect("the pending sign-ins' lock is never poisoned")
                .take(browser, now)
        });
        let login = match taken {
            Ok(login) => login,
            Err(Missing::Unknown) => return Err(OidcError::NotStarted),
            Err(Missing::Expired) => return Err(OidcError::Expired),
        };
        let state_matches = callback
            .state
            .as_deref()
            .is_some_and(|state| same_secret(state, &login.state));
        if login.provider != provider.name || !state_matches {
            return Err(OidcError::StateMismatch);
        }
        if let Some(error) = &callback.error {
            let reason = match &callback.error_description {
                Some(description) => format!("{error}: {description}"),
                None => error.clone(),
            };
            return Err(OidcError::Denied {
                label: provider.label.clone(),
                reason: short(&reason),
            });
        }
        let Some(code) = callback.code.as_deref().filter(|c| !c.is_empty()) else {
            return Err(provider_error(provider, "no code in its answer".into()));
        };
        let answer = self.exchange(provider, &login, code).await?;
        let identity = self.identity(provider, &login, &answer, now).await?;
        let user = self.user_for(provider, identity).await?;
        let how = format!("oidc {}", provider.name);
        let sign_in = self
            .accounts()
            .sign_in_identified(&user, &how, client)
            .await?;
        Ok(Finished {
            sign_in,
            next: login.next,
        })
    }

    /// The authorization code → tokens, at the token endpoint, with the PKCE verifier.
    async fn exchange(
        &self,
        provider: &OidcProvider,
        login: &PendingLogin,
        code: &str,
    ) -> Result<TokenAnswer, OidcError> {
        let (authorization, token) = match (&provider.kind, &login.endpoints) {
            (_, Some(endpoints)) => (endpoints.authorization.clone(), endpoints.token.clone()),
            (ProviderKind::GitHub { web, .. }, None) => (
                github_endpoint(web, "login/oauth/authorize"),
                github_endpoint(web, "login/oauth/access_token"),
            ),
            (ProviderKind::Oidc { .. }, None) => {
                return Err(provider_error(provider, "no endpoints".into()));
            }
        };
        let oauth = oauth_client(provider, authorization, token, &login.redirect_url)?;
        let http = self.inner.http.clone();
        let send = move |request| {
            let http = http.clone();
            async move { http.send(request).await }
        };
        oauth
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
            .request_async(&send)
            .await
            .map_err(|error| {
                let reason = match error {
                    RequestTokenError::ServerResponse(answer) => {
                        format!("it refused the code ({})", answer.error())
                    }
                    RequestTokenError::Request(error) => format!("its token endpoint {error}"),
                    // GitHub answers errors with 200 and an `error` field.
                    RequestTokenError::Parse(_, body) => {
                        match serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|answer| answer["error"].as_str().map(str::to_string))
                        {
                            Some(error) => format!("it refused the code ({error})"),
                            None => "its token endpoint answered with something unreadable".into(),
                        }
                    }
                    RequestTokenError::Other(text) => format!("its token endpoint: {text}"),
                };
                provider_error(provider, short(&reason))
            })
    }

    /// The identity the provider vouches for.
    async fn identity(
        &self,
        provider: &OidcProvider,
        login: &PendingLogin,
        answer: &TokenAnswer,
        now: i64,
    ) -> Result<Identity, OidcError> {
        let access_token = answer.access_token().secret();
        let failed = |e: ProtocolError| provider_error(provider, e.to_string());
        match (&provider.kind, &login.endpoints) {
            (ProviderKind::Oidc { .. }, Some(endpoints)) => {
                let id_token = answer
                    .extra_fields()
                    .id_token
                    .as_deref()
                    .ok_or_else(|| failed(ProtocolError::NoIdToken))?;
                let expected = protocol::Expected {
                    issuer: &endpoints.issuer,
                    client_id: &provider.client_id,
                    nonce: login.nonce.as_deref().unwrap_or_default(),
                    now,
                };
                let subject = protocol::check_id_token(id_token, &expected).map_err(failed)?;
                let info = self
                    .inner
                    .http
                    .get_json(endpoints.userinfo.as_str(), Some(access_token))
                    .await
                    .map_err(|e| provider_error(provider, format!("its user info {e}")))?;
                protocol::identity_from_userinfo(&info, &subject).map_err(failed)
            }
            (ProviderKind::GitHub { api, .. }, _) => {
                let url = github_endpoint(api, "user/emails");
                let emails = self
                    .inner
                    .http
                    .get_json(url.as_str(), Some(access_token))
                    .await
                    .map_err(|e| provider_error(provider, format!("its email list {e}")))?;
                Ok(protocol::identity_from_github(&emails))
            }
            (ProviderKind::Oidc { .. }, None) => {
                Err(provider_error(provider, "no endpoints".into()))
            }
        }
    }

    /// The existing user with one of the verified emails (the first that has one).
    async fn user_for(
        &self,
        provider: &OidcProvider,
        identity: Identity,
    ) -> Result<crate::store::UserRow, OidcError> {
        let label = provider.label.clone();
        let emails = match identity {
            Identity::Verified(emails) => emails,
            Identity::Unverified(email) => {
                return Err(OidcError::UnverifiedEmail {
                    label,
                    email: short(&email),
                });
            }
            Identity::NoEmail => return Err(OidcError::NoEmail { label }),
        };
        for email in &emails {
            let Ok(email) = normalise_email(email) else {
                continue;
            };
            if let Some(user) = self.accounts().store().user_by_email(&email).await? {
                return Ok(user);
            }
        }
        Err(OidcError::UnknownEmail {
            email: short(&emails[0].trim().to_lowercase()),
        })
    }

    /// Audits a failure, and counts it for throttling where the browser is to blame.
    async fn failed(
        &self,
        provider: &OidcProvider,
        error: &OidcError,
        client: &Client,
    ) -> Result<(), StoreError> {
        let accounts = self.accounts();
        if error.counts() {
            accounts
                .record_failure(&format!("oidc {}", provider.name), client.ip)
                .await?;
        }
        let detail = format!("oidc {}: {}", provider.name, error.audit_detail());
        tracing::info!(provider = %provider.name, ip = %client.ip, %detail, "sign-in with a provider failed");
        accounts
            .audit(
                &Actor::Anonymous,
                AuditAction::SignInFailed,
                error.email(),
                Some(client.ip),
                Some(&detail),
            )
            .await
    }
}

fn provider_error(provider: &OidcProvider, reason: String) -> OidcError {
    OidcError::Provider {
        label: provider.label.clone(),
        reason,
    }
}

fn oauth_client(
    provider: &OidcProvider,
    authorization: Url,
    token: Url,
    redirect_url: &str,
) -> Result<OAuthClient, OidcError> {
    let redirect = RedirectUrl::new(redirect_url.to_string())
        .map_err(|_| provider_error(provider, "the callback URL is not valid".into()))?;
    let auth_type = match provider.kind {
        // RFC 6749's default, and OpenID Connect's (client_secret_basic).
        ProviderKind::Oidc { .. } => AuthType::BasicAuth,
        // GitHub documents the secret as a form field.
        ProviderKind::GitHub { .. } => AuthType::RequestBody,
    };
    Ok(
        oauth2::Client::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                provider.client_secret.expose().to_string(),
            ))
            .set_auth_type(auth_type)
            .set_auth_uri(AuthUrl::from_url(authorization))
            .set_token_uri(TokenUrl::from_url(token))
            .set_redirect_uri(redirect),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn provider_text_is_one_short_line() {
        assert_eq!(short("a\r\nb"), "a  b");
        assert_eq!(short(&"x".repeat(500)).len(), 200);
    }
}
