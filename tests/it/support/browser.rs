//! A small browser for the sign-in tests: a cookie jar fed by `Set-Cookie`, redirects
//! *not* followed (tests look at each 303), form posts, and the CSRF token read back from
//! the page as a browser would submit it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;

pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

/// One answer.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The value of the page's (first) `csrf_token` hidden field.
    pub fn csrf_token(&self) -> String {
        self.input_value("csrf_token")
            .unwrap_or_else(|| panic!("no csrf_token on the page:\n{}", self.body))
    }

    /// The `value` of `<input … name="{name}" value="…">`.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].replace("&amp;", "&"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The text between `<code id="{id}">` and `</code>`, unescaped.
    pub fn code_text(&self, id: &str) -> Option<String> {
        let marker = format!("<code id=\"{id}\">");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find("</code>")?;
        Some(
            self.body[start..start + end]
                .replace("&amp;", "&")
                .replace("&#39;", "'"),
        )
    }
}

impl Browser {
    pub fn new(web: SocketAddr) -> Browser {
        Browser::from_address(web, None)
    }

    /// A browser whose connections come from `local` (any 127.x.y.z on Linux: each is
    /// another client address on loopback), or from wherever the system picks.
    pub fn from_address(web: SocketAddr, local: Option<std::net::IpAddr>) -> Browser {
        Browser {
            base: format!("http://{web}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(local)
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            user_agent: "postern-tests/1.0".into(),
        }
    }

    /// A browser of `base` (`https://name:port`) through `client` (its trusted roots and
    /// name resolution; redirects must not be followed).
    pub fn over(base: &str, client: reqwest::Client) -> Browser {
        Browser {
            base: base.to_string(),
            client,
            cookies: BTreeMap::new(),
            user_agent: "postern-tests/1.0".into(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.into(), value.into());
    }

    pub fn forget_cookie(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request(Method::GET, path, &[], None).await
    }

    /// POSTs a urlencoded form.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body),
        )
        .await
    }

    /// Submits `fields` to `path` as the form on `form` would: with its CSRF token.
    pub async fn submit(&mut self, form: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = form.csrf_token();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form(path, &all).await
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Page {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(header::USER_AGENT, &self.user_agent);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let page = Page {
            status,
            headers,
            body,
        };
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let expired = set
                .split(';')
                .any(|attribute| attribute.trim().eq_ignore_ascii_case("Max-Age=0"));
            if expired || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().into(), value.into());
            }
        }
        page
    }

    /// Fills in and submits the sign-in form; the answer to the POST.
    pub async fn submit_sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/signin").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf_token();
        self.post_form(
            "/signin",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Signs in a user without TOTP; panics unless that worked.
    pub async fn sign_in(&mut self, email: &str, password: &str) {
        let answer = self.submit_sign_in(email, password).await;
        assert_eq!(answer.status, 303, "sign-in failed: {}", answer.body);
        assert_eq!(answer.location(), Some("/"));
        assert!(self.cookie("postern_session").is_some());
    }

    /// The CSRF token of the signed-in session, read from the home page.
    pub async fn session_csrf(&mut self) -> String {
        let home = self.get("/").await;
        assert_eq!(home.status, 200, "{}", home.body);
        home.csrf_token()
    }
}
