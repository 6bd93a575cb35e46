//! SMTP credentials and sending domains as JSON, for scripts: `GET /api/credentials`,
//! `POST /api/credentials` (admin; the token is in this answer only),
//! `DELETE /api/credentials/{username}` (admin); `GET /api/sending-domains`,
//! `POST /api/sending-domains` (admin: a DKIM key and the records to publish),
//! `DELETE /api/sending-domains/{domain}` (admin) and
//! `GET /api/sending-domains/{domain}/verify` (what DNS shows for each record).
//!
//! The changes go through the helpers below, which the pages (`web::outbound_pages`) call
//! too: the same `Outbound` methods as `postern credential` and `postern sending-domain`,
//! plus an audit row. The gate keeps viewers and requests without the CSRF header away from
//! the writes. Events URLs are shown with their userinfo masked.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use crate::accounts::{AuditAction, Client};
use crate::dns::ResolverChoice;
use crate::outbound::dkim::Algorithm;
use crate::outbound::dns_check::{DnsCheck, RecordCheck, RecordStatus};
use crate::outbound::domains::{DomainError, SendingDomain};
use crate::outbound::{Credential, CredentialError, NewCredentialSpec, Outbound};
use crate::store::CredentialMode;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/credentials",
            get(list_credentials).post(create_credential_api),
        )
        .route("/api/credentials/{username}", delete(revoke_credential))
        .route("/api/sending-domains", get(list_domains).post(add_domain))
        .route("/api/sending-domains/{domain}", delete(remove_domain))
        .route("/api/sending-domains/{domain}/verify", get(verify_domain))
}

// Shared with the pages.

/// The outbound service, or 404 where nothing sends mail.
pub(super) fn outbound(state: &AppState) -> Result<&Outbound, ApiError> {
    state.outbound.as_ref().ok_or(ApiError::NotFound(
        "outbound mail is not enabled on this instance",
    ))
}

/// `http://***@host/…` for a URL with userinfo; other text as it is.
pub(super) fn mask_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_password(None);
            let _ = url.set_username("***");
            url.to_string()
        }
        _ => text.to_string(),
    }
}

/// A credential as shown: never the token, the events URL masked.
#[derive(Debug, Serialize)]
pub(super) struct CredentialView {
    pub username: String,
    pub mode: CredentialMode,
    /// The token's first characters, to recognise it.
    pub prefix: String,
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub revoked_at: Option<i64>,
}

impl From<Credential> for CredentialView {
    fn from(credential: Credential) -> CredentialView {
        CredentialView {
            username: credential.username,
            mode: credential.mode,
            prefix: credential.prefix,
            allowed_senders: credential.allowed_senders,
            events_url: credential.events_url.as_deref().map(mask_url),
            track_opens: credential.track_opens,
            track_clicks: credential.track_clicks,
            created_at: credential.created_at,
            last_used_at: credential.last_used_at,
            revoked_at: credential.revoked_at,
        }
    }
}

/// Where apps send: the send API's base URL (`web.public_url`, else the `Host` the request
/// came to) and the SMTP submission URL with the credential in it (`server.hostname`, the
/// first `[submission]` listener's port, 587 when there is none).
pub(super) struct Endpoints {
    pub api_base_url: String,
    pub smtp_url: String,
}

pub(super) fn endpoints(
    state: &AppState,
    headers: &HeaderMap,
    username: &str,
    token: &str,
) -> Endpoints {
    let base = match &state.settings.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .map(str::to_string)
                .or_else(|| state.settings.web_listen.map(|a| a.to_string()))
                .unwrap_or_else(|| state.settings.hostname.clone());
            format!("http://{host}")
        }
    };
    Endpoints {
        api_base_url: format!("{base}/api/v0.1"),
        smtp_url: format!(
            "smtp://{username}:{token}@{}:{port}?starttls=true",
            state.settings.hostname,
            port = state
                .settings
                .submission_listen
                .first()
                .map_or(587, |listener| listener.port()),
        ),
    }
}

/// Makes a credential through `Outbound` and writes the audit row.
pub(super) async fn create_credential(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    spec: NewCredentialSpec,
) -> Result<(Credential, String), ApiError> {
    let outbound = outbound(state)?;
    let (credential, token) = outbound
        .create_credential(spec)
        .await
        .map_err(credential_error)?;
    let detail = format!("mode {}", credential.mode.as_str());
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::CredentialCreated,
            Some(&credential.username),
            client.map(|c| c.ip),
            Some(&detail),
        )
        .await?;
    Ok((credential, token))
}

/// Revokes a credential through `Outbound` and writes the audit row; false when there is
/// no live credential of that name.
pub(super) async fn revoke(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    username: &str,
) -> Result<bool, ApiError> {
    let revoked = outbound(state)?.revoke_credential(username).await?;
    if revoked {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::CredentialRevoked,
                Some(username),
                client.map(|c| c.ip),
                None,
            )
            .await?;
    }
    Ok(revoked)
}

/// 422 naming the field; 409 for a taken username.
pub(super) fn credential_error(error: CredentialError) -> ApiError {
    let field = |field: &str, error: &CredentialError| ApiError::Field {
        field: field.to_string(),
        message: error.to_string(),
        detail: format!("{field}: {error}"),
    };
    match error {
        CredentialError::BadUsername(_) => field("username", &error),
        CredentialError::BadSender(_) => field("allowed_senders", &error),
        CredentialError::BadEventsUrl(_) => field("events_url", &error),
        CredentialError::Taken(_) => ApiError::Status(StatusCode::CONFLICT, error.to_string()),
        CredentialError::Store(error) => ApiError::Store(error),
    }
}

/// Adds a sending domain through `Outbound` and writes the audit row.
pub(super) async fn add_sending_domain(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    domain: &str,
    algorithm: Algorithm,
    return_path: Option<&str>,
) -> Result<SendingDomain, ApiError> {
    let added = outbound(state)?
        .add_sending_domain(domain, algorithm, return_path, &state.settings.hostname)
        .await
        .map_err(|error| match error {
            DomainError::BadDomain(ref name) => ApiError::Field {
                field: if Some(name.as_str()) == return_path.map(str::trim) {
                    "return_path".into()
                } else {
                    "domain".into()
                },
                message: error.to_string(),
                detail: error.to_string(),
            },
            DomainError::Exists(_) => ApiError::Status(StatusCode::CONFLICT, error.to_string()),
            DomainError::Dkim(error) => ApiError::Internal(error.to_string()),
            DomainError::Store(error) => ApiError::Store(error),
        })?;
    let detail = format!(
        "DKIM {} selector {}, return path {}",
        added.dkim_algorithm, added.dkim_selector, added.return_path_domain
    );
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::SendingDomainAdded,
            Some(&added.domain),
            client.map(|c| c.ip),
            Some(&detail),
        )
        .await?;
    Ok(added)
}

/// Removes a sending domain and its key, and writes the audit row; false when there was none.
pub(super) async fn remove_sending_domain(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    domain: &str,
) -> Result<bool, ApiError> {
    let removed = outbound(state)?.remove_sending_domain(domain).await?;
    if removed {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::SendingDomainRemoved,
                Some(&domain.trim().to_ascii_lowercase()),
                client.map(|c| c.ip),
                None,
            )
            .await?;
    }
    Ok(removed)
}

pub(super) async fn sending_domains(state: &AppState) -> Result<Vec<SendingDomain>, ApiError> {
    Ok(outbound(state)?
        .sending_domains(&state.settings.hostname)
        .await?)
}

pub(super) async fn sending_domain(
    state: &AppState,
    domain: &str,
) -> Result<SendingDomain, ApiError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    sending_domains(state)
        .await?
        .into_iter()
        .find(|d| d.domain == domain)
        .ok_or(ApiError::NotFound("no such sending domain"))
}

/// What DNS shows for each record of `domain`, asked as `[dns] servers` configures.
pub(super) async fn verify(
    state: &AppState,
    domain: &SendingDomain,
) -> Result<Vec<RecordCheck>, ApiError> {
    let check = DnsCheck::new(
        ResolverChoice::from_config(state.settings.dns_servers.as_deref()),
        state.settings.dns_timeout,
    );
    check.verify(domain).await.map_err(|error| {
        ApiError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot ask DNS: {error}"),
        )
    })
}

// Handlers.

async fn list_credentials(State(state): State<AppState>) -> Result<Response, ApiError> {
    let credentials: Vec<CredentialView> = outbound(&state)?
        .credentials()
        .await?
        .into_iter()
        .map(CredentialView::from)
        .collect();
    Ok(Json(json!({ "credentials": credentials })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    username: String,
    #[serde(default)]
    test: bool,
    #[serde(default)]
    allowed_senders: Vec<String>,
    events_url: Option<String>,
    track_opens: Option<bool>,
    track_clicks: Option<bool>,
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

async fn create_credential_api(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Result<Json<NewCredential>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let spec = NewCredentialSpec {
        username: body.username.trim().to_string(),
        test: body.test,
        allowed_senders: body
            .allowed_senders
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        events_url: body
            .events_url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty()),
        track_opens: body.track_opens,
        track_clicks: body.track_clicks,
    };
    let client = client.map(|Extension(c)| c);
    let (credential, token) = create_credential(&state, &principal, client.as_ref(), spec).await?;
    let endpoints = endpoints(&state, &headers, &credential.username, &token);
    let body = json!({
        "credential": CredentialView::from(credential),
        "token": token,
        "smtp_url": endpoints.smtp_url,
        "api_base_url": endpoints.api_base_url,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(username)) = path else {
        return Err(ApiError::BadRequest("a username is needed".into()));
    };
    let client = client.map(|Extension(c)| c);
    if revoke(&state, &principal, client.as_ref(), &username).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such credential, or revoked already"))
    }
}

async fn list_domains(State(state): State<AppState>) -> Result<Response, ApiError> {
    let domains = sending_domains(&state).await?;
    Ok(Json(json!({ "sending_domains": domains })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    domain: String,
    /// `rsa` (2048 bits, the default) or `ed25519`.
    algorithm: Option<String>,
    /// Default `mta.<domain>`.
    return_path: Option<String>,
}

pub(super) fn algorithm_field(name: Option<&str>) -> Result<Algorithm, ApiError> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(Algorithm::Rsa2048),
        Some(name) => Algorithm::from_name(name).ok_or_else(|| ApiError::Field {
            field: "algorithm".into(),
            message: "must be rsa or ed25519".into(),
            detail: format!("algorithm {name:?}: must be rsa or ed25519"),
        }),
    }
}

async fn add_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    body: Result<Json<NewDomain>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let algorithm = algorithm_field(body.algorithm.as_deref())?;
    let return_path = body
        .return_path
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let client = client.map(|Extension(c)| c);
    let added = add_sending_domain(
        &state,
        &principal,
        client.as_ref(),
        &body.domain,
        algorithm,
        return_path,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

async fn remove_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(domain)) = path else {
        return Err(ApiError::BadRequest("a domain is needed".into()));
    };
    let client = client.map(|Extension(c)| c);
    if remove_sending_domain(&state, &principal, client.as_ref(), &domain).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such sending domain"))
    }
}

async fn verify_domain(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(domain)) = path else {
        return Err(ApiError::BadRequest("a domain is needed".into()));
    };
    let domain = sending_domain(&state, &domain).await?;
    let records = verify(&state, &domain).await?;
    // DMARC is a recommendation; the others are needed for mail to pass and bounce back.
    let verified = records
        .iter()
        .filter(|r| !r.record.name.starts_with("_dmarc."))
        .all(|r| r.status == RecordStatus::Found);
    Ok(Json(json!({
        "domain": domain.domain,
        "verified": verified,
        "records": records,
    }))
    .into_response())
}
