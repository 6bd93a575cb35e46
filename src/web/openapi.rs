//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every JSON route, hand-written in
//! `openapi.json` next to this file. Public, like `/healthz`: it holds no data, only what the
//! README already publishes, and a client or generator needs it before it has a key. A test
//! below reads every route registered under `/api/` in `src/web` and fails when one is not documented,
//! and `tests/it/api.rs` requests every documented route, so the two cannot drift apart.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const DOCUMENT: &str = include_str!("openapi.json");

/// Public: outside every gate.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response() }),
    )
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use serde_json::Value;

    /// The `.rs` files under `dir`, its folders included.
    fn sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }

    /// Every `(path, method)` registered under `/api/` by a `.route(…)` in `src/web`.
    fn registered() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut routes = Vec::new();
        for path in sources(&dir) {
            let source = std::fs::read_to_string(&path).unwrap();
            for call in source.split(".route(").skip(1) {
                let call = call.trim_start();
                let Some(rest) = call.strip_prefix("\"/api/") else {
                    continue;
                };
                let (tail, handlers) = rest.split_once('"').unwrap();
                // The method router: up to the next route, or the end of the function.
                let handlers = handlers.split("\n}").next().unwrap();
                let mut found = false;
                for method in ["get", "post", "put", "delete", "patch"] {
                    let called = [" ", "(", ".", "\n"]
                        .iter()
                        .any(|before| handlers.contains(&format!("{before}{method}(")));
                    if called {
                        routes.push((format!("/api/{tail}"), method.to_string()));
                        found = true;
                    }
                }
                assert!(
                    found,
                    "no method found for /api/{tail} in {}",
                    path.display()
                );
            }
        }
        routes
    }

    #[test]
    fn every_api_route_is_documented() {
        let document: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let routes = registered();
        // The scan sees the files it should (it would pass vacuously otherwise).
        assert!(routes.len() >= 17, "{routes:?}");
        for (path, method) in &routes {
            assert!(
                document["paths"][path][method].is_object(),
                "{} {path} is routed but not in openapi.json",
                method.to_uppercase()
            );
        }
        // And nothing documented is missing from the router.
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    routes.iter().any(|(p, m)| p == path && m == method),
                    "{} {path} is documented but not routed",
                    method.to_uppercase()
                );
            }
        }
    }
}
