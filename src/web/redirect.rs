//! The plain-HTTP listener beside HTTPS (`[web] http_listen`, port 80): every request is
//! sent to the same host and path over HTTPS with a `308` (the method and body are kept), and
//! nothing else is served — no page, no cookie, no API. ACME's HTTP-01 challenge, when it is
//! the configured one, is the only route answered here (`challenge`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};

use super::host::{HostRule, host_name};

/// The redirecting router: to `https://{host}:{https_port}{path}` (no port when 443), for the
/// hosts `hosts` accepts; `challenge` (ACME HTTP-01) is merged in as it is.
pub fn router(https_port: u16, hosts: HostRule, challenge: Option<Router>) -> Router {
    let redirect = Router::new().fallback(to_https).with_state(https_port);
    challenge
        .map(|challenge| challenge.merge(redirect.clone()))
        .unwrap_or(redirect)
        .layer(middleware::from_fn_with_state(hosts, super::host::check))
}

/// ACME's HTTP-01 answers (`tls::acme::Acme::http01_service`) at
/// `/.well-known/acme-challenge/{token}`, to merge into [`router`].
pub fn acme_challenge<S>(service: S) -> Router
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    Router::new().route_service("/.well-known/acme-challenge/{token}", service)
}

async fn to_https(State(port): State<u16>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(host_name);
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response();
    };
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host,
    };
    let port = match port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("https://{host}{port}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
        "This server is reached over HTTPS.\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn location(port: u16, host: &str, uri: &str) -> (StatusCode, Option<String>) {
        let app = router(port, HostRule::only(["mail.example.com"]), None);
        let request = Request::builder()
            .uri(uri)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (response.status(), location)
    }

    #[tokio::test]
    async fn requests_go_to_the_same_host_and_path_over_https() {
        assert_eq!(
            location(443, "mail.example.com", "/messages?page=2").await,
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://mail.example.com/messages?page=2".into())
            )
        );
        assert_eq!(
            location(8443, "MAIL.example.com:80", "/")
                .await
                .1
                .as_deref(),
            Some("https://mail.example.com:8443/")
        );
        assert_eq!(
            location(443, "[::1]:80", "/x").await.1.as_deref(),
            Some("https://[::1]/x")
        );
    }

    #[tokio::test]
    async fn hosts_it_does_not_serve_get_no_redirect() {
        let (status, location) = location(443, "evil.example.net", "/").await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(location, None);
    }
}
