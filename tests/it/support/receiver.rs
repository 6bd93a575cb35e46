//! A real HTTP endpoint (axum on port 0) standing in for the customer's app. It records
//! every request and answers by path:
//!
//! - `/status/{code}` (optionally with an extension, `/status/200.json`): that status, `text/plain` body `target says {code}`
//! - `/html/{code}`: that status, an HTML body
//! - `/slow/{ms}`: waits, then 200
//! - `/redirect/{hops}/{code}`: `302` to `/redirect/{hops-1}/{code}` until 0, then `code`
//! - `/big/{code}`: that status with a 6000-octet `text/plain` body of `é`s
//! - `/redirect-abs/{port}`: `307` to `/status/200` on another receiver at `port`
//! - `/fail-first/{n}`: 500 to the first `n` requests to this path, then 200
//! - `/goto?to={url}`: `307` to `url` (written unencoded: everything after `to=`)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            addr,
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/{*path}", any(handle))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }

    /// The only request received; fails if there were none or several.
    pub fn single(&self) -> Captured {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one POST, got {}",
            requests.len()
        );
        requests.into_iter().next().unwrap()
    }
}

async fn handle(
    State(receiver): State<Receiver>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let seen = {
        let mut requests = receiver.requests.lock().unwrap();
        requests.push(Captured {
            method,
            path: path.clone(),
            headers,
            body,
            peer,
        });
        requests.iter().filter(|r| r.path == path).count()
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["status", code] => {
            // `/status/422.json` too: callbacks pick their encoding from the extension.
            let code = code.split('.').next().unwrap();
            let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
            (
                code,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("target says {}", code.as_u16()),
            )
                .into_response()
        }
        ["html", code] => {
            let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
            (
                code,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Nope</h1></body></html>",
            )
                .into_response()
        }
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            (StatusCode::OK, "slow ok").into_response()
        }
        ["redirect", hops, code] => {
            let hops: u32 = hops.parse().unwrap();
            if hops == 0 {
                let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
                (code, "end of redirects").into_response()
            } else {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("/redirect/{}/{code}", hops - 1))],
                )
                    .into_response()
            }
        }
        ["big", code] => {
            let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
            (
                code,
                [(header::CONTENT_TYPE, "text/plain")],
                "é".repeat(3000),
            )
                .into_response()
        }
        ["redirect-abs", port] => (
            StatusCode::TEMPORARY_REDIRECT,
            [(
                header::LOCATION,
                format!("http://127.0.0.1:{port}/status/200"),
            )],
        )
            .into_response(),
        ["goto"] => {
            let to = uri.query().and_then(|q| q.strip_prefix("to=")).unwrap();
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, to.to_string())],
            )
                .into_response()
        }
        ["fail-first", n] if seen <= n.parse::<usize>().unwrap() => {
            (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose").into_response()
        }
        _ => (StatusCode::OK, "ok").into_response(),
    }
}
