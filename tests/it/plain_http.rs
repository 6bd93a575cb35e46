//! No credentials over plain HTTP off loopback (issue 12 §3): `check` and `serve` refuse a
//! plain-HTTP web listener off loopback without `[web] allow_plain_http = true`, and API
//! tokens (admin API keys, the send API's) sent over plain HTTP from another address get a
//! JSON 403. The other address is this machine's own interface address: the connection
//! stays on this host, its peer is not loopback.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use postern::config::Config;
use postern::outbound::NewCredentialSpec;

use crate::support::binary::{postern, run};
use crate::support::{TestApp, config_with, skipped};

const REFUSED: &str = "serves plain HTTP to the network, so passwords and API tokens would \
                       cross it in clear: put it on loopback behind a TLS proxy, or set [web] \
                       allow_plain_http = true if a TLS proxy in front of it terminates HTTPS";

fn config_file(dir: &tempfile::TempDir, web: &str) -> String {
    let path = dir.path().join("postern.toml");
    let toml = format!(
        "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n[smtp]\nlisten = \
         \"127.0.0.1:0\"\n[web]\n{web}",
        dir.path().display()
    );
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[test]
fn check_refuses_a_plain_http_listener_off_loopback_without_allow_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::private(dir.path());
    let exposed = config_file(&dir, "listen = \"0.0.0.0:8025\"\n");
    let (code, _, err) = run(&["check", "--config", &exposed], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("web.listen = 0.0.0.0:8025: {REFUSED}")),
        "{err}"
    );

    let proxied = config_file(&dir, "listen = \"0.0.0.0:8025\"\nallow_plain_http = true\n");
    let (code, out, err) = run(&["check", "--config", &proxied], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // The environment is checked the same way as the file.
    let loopback = config_file(&dir, "");
    let env = [("POSTERN_WEB__LISTEN", "[::]:8025")];
    let (code, _, err) = run(&["check", "--config", &loopback], &env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("web.listen = [::]:8025: {REFUSED}")),
        "{err}"
    );
}

#[test]
fn serve_refuses_to_start_a_plain_http_listener_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::private(dir.path());
    let exposed = config_file(&dir, "listen = \"0.0.0.0:0\"\n");
    let mut child = postern()
        .args(["serve", "--config", &exposed])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A server that starts anyway would run until killed: give it a bounded time to exit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started a plain-HTTP listener on 0.0.0.0");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("web.listen = 0.0.0.0:0: {REFUSED}")),
        "{err}"
    );
}

/// This machine's address on its route out (no packet is sent: a UDP `connect` only picks
/// the route), when it has one that is not loopback.
fn interface_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `Authorization: Bearer token` from `from` to `port` on `to`: status and JSON answer.
async fn call_from(
    from: IpAddr,
    to: SocketAddr,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut request = client
        .request(method, format!("http://{to}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message() -> Value {
    json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"})
}

#[tokio::test]
async fn api_tokens_over_plain_http_from_another_address_are_refused() {
    let Some(outside) = interface_address() else {
        return skipped("this machine has no address other than loopback");
    };
    // `postern dev --web 0.0.0.0:…`: dev mode never refuses its listener (see the README),
    // and takes no `allow_plain_http`.
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config::dev(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "0.0.0.0:0".parse().unwrap(),
        None,
    );
    let app = TestApp::from_config(config, data_dir).await;
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let at = |ip: IpAddr| SocketAddr::new(ip, app.web.port());
    let refusal = json!({
        "status": 403,
        "error": format!(
            "API tokens are refused over plain HTTP from {outside}: use HTTPS (or set [web] \
             allow_plain_http = true behind a TLS proxy)"
        ),
    });

    // An admin API key: taken from loopback, refused from the interface address.
    let get = reqwest::Method::GET;
    let (status, _) = call_from(
        loopback,
        at(loopback),
        &app.api_key,
        get.clone(),
        "/api/messages",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call_from(
        outside,
        at(outside),
        &app.api_key,
        get,
        "/api/messages",
        None,
    )
    .await;
    assert_eq!((status, body), (403, refusal.clone()));

    // The send API (dev mode takes any token): the same.
    let post = reqwest::Method::POST;
    let send = "/api/v0.1/app/messages";
    let (status, body) = call_from(
        loopback,
        at(loopback),
        "any",
        post.clone(),
        send,
        Some(message()),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call_from(outside, at(outside), "any", post, send, Some(message())).await;
    assert_eq!((status, body), (403, refusal));
}

#[tokio::test]
async fn allow_plain_http_takes_api_tokens_from_the_proxy() {
    let Some(outside) = interface_address() else {
        return skipped("this machine has no address other than loopback");
    };
    let app = TestApp::launch(&config_with(&[], "[web]\nallow_plain_http = true\n"))
        .web_on("0.0.0.0:0")
        .start()
        .await;
    let token = app
        .credential(NewCredentialSpec {
            username: "app".into(),
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;
    let to = SocketAddr::new(outside, app.web.port());
    let get = reqwest::Method::GET;
    let (status, body) = call_from(outside, to, &app.api_key, get, "/api/messages", None).await;
    assert_eq!(status, 200, "{body}");
    let post = reqwest::Method::POST;
    let send = "/api/v0.1/app/messages";
    let (status, body) = call_from(outside, to, &token, post, send, Some(message())).await;
    assert_eq!(status, 202, "{body}");
}
