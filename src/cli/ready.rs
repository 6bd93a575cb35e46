//! `postern ready`: asks the running server's web listener for `/readyz`, from the same
//! machine (or container), and turns the answer into an exit code — for a container's
//! `HEALTHCHECK`, a monitoring script, or an operator who wants one word.
//!
//! It connects to the configured `web.listen` on loopback (an unspecified address such as
//! `0.0.0.0` means this machine), naming `server.hostname` as the host so the Host check and
//! the certificate's name match. The certificate is not verified: the question is whether this
//! process is ready, not whether the network path can be trusted, and a self-signed or
//! not-yet-issued ACME certificate must not read as "down".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::config::Config;

/// Longer than this without an answer, the server counts as not ready.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(super) struct ReadyArgs {
    /// The config file of the running server; POSTERN_SECTION__KEY variables override it.
    #[arg(long, short, env = "POSTERN_CONFIG", default_value = super::DEFAULT_CONFIG, value_name = "FILE")]
    config: PathBuf,
}

pub(super) fn ready(args: ReadyArgs) -> anyhow::Result<()> {
    let config = super::load(&args.config)?;
    let url = readyz_url(&config);
    let answer = super::runtime().block_on(ask(&config, &url));
    match answer {
        Ok(body) if body["ready"] == true => {
            println!("ready ({url})");
            Ok(())
        }
        Ok(body) => Err(anyhow::anyhow!("not ready ({url}): {}", describe(&body))),
        Err(error) => Err(anyhow::anyhow!("no answer from {url}: {error}")),
    }
}

/// The URL of `/readyz` on `config`'s web listener, as seen from this machine.
fn readyz_url(config: &Config) -> String {
    let scheme = if config.web.https { "https" } else { "http" };
    format!(
        "{scheme}://{}:{}/readyz",
        config.hostname,
        config.web.listen.port()
    )
}

/// Where to connect for `listen`: itself, or loopback for an unspecified address.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn ask(config: &Config, url: &str) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .resolve(&config.hostname, local_address(config.web.listen))
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?;
    let response = client.get(url).send().await.map_err(|error| {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|_| format!("HTTP {status} without the JSON of /readyz"))?;
    Ok(body)
}

/// "store: not writable (see the log); certificate: expired" from a `/readyz` body.
fn describe(body: &Value) -> String {
    let checks = &body["checks"];
    body["not_ready"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| format!("{name}: {}", checks[name].as_str().unwrap_or("failed")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:443".parse().unwrap();
        assert_eq!(local_address(v4), "127.0.0.1:443".parse().unwrap());
        let v6: SocketAddr = "[::]:8443".parse().unwrap();
        assert_eq!(local_address(v6), "[::1]:8443".parse().unwrap());
        let given: SocketAddr = "10.0.0.5:443".parse().unwrap();
        assert_eq!(local_address(given), given);
    }

    #[test]
    fn the_failed_checks_are_named_with_what_they_found() {
        let body = json!({
            "ready": false,
            "not_ready": ["store", "certificate"],
            "checks": {"store": "no write within 2 s", "listeners": "accepting",
                       "certificate": "expired"},
        });
        assert_eq!(
            describe(&body),
            "store: no write within 2 s; certificate: expired"
        );
    }
}
