//! A local S3 for the store tests: PyPI `moto[server]` (`moto_server`) on a loopback port,
//! run as a subprocess; buckets are made with plain HTTP (moto takes unsigned requests).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::free_port;

/// `moto_server` on a loopback port.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

fn s3_required() -> bool {
    std::env::var_os("TEST_S3").is_some_and(|v| v == "required")
}

impl Moto {
    /// Starts moto; `None` (after saying so) if it is not installed and `TEST_S3` is not
    /// `required`.
    pub async fn start() -> Option<Moto> {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                !s3_required(),
                "TEST_S3=required but moto_server is missing: python3 -m pip install \"moto[server]==5.2.5\""
            );
            super::skipped(
                "moto_server is not installed (python3 -m pip install \"moto[server]==5.2.5\"; TEST_S3=required makes this a failure)",
            );
            return None;
        }
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server runs");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        for _ in 0..300 {
            if reqwest::get(&moto.endpoint).await.is_ok() {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "moto_server did not answer on {} within 30 s",
            moto.endpoint
        );
    }

    /// Makes a bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        let answer = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }

    /// An object's bytes (plain GET: moto does not check signatures).
    pub async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let answer = reqwest::get(url).await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.bytes().await.unwrap().to_vec())
    }

    /// Stops the server: the store becomes unreachable.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
