//! What the Debian package and the systemd unit promise: the unit's sandbox scores at most 2.0
//! in `systemd-analyze security`; the real binary tells systemd `READY=1` only once its SMTP
//! port answers, `RELOADING=1` … `READY=1` around SIGHUP and `STOPPING=1` on SIGTERM; the
//! shipped config passes `postern check` and documents every key `postern init` does.
//!
//! The score needs `systemd-analyze` (`apt-get install systemd`); without it that test is
//! skipped with a line on stderr, unless `TEST_PACKAGING=required`, which makes it fail.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::Smtp;
use crate::support::binary::{Server, postern, run};
use crate::support::free_port;

/// The highest exposure `systemd-analyze security` may give the unit (it prints 0.0–10.0).
const MAX_EXPOSURE: f64 = 2.0;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_unit_scores_at_most_2_0_in_systemd_analyze_security() {
    let unit = repository().join("systemd/postern.service");
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32);
    let output = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", &threshold])
        .arg(&unit)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            assert!(
                std::env::var("TEST_PACKAGING").as_deref() != Ok("required"),
                "TEST_PACKAGING=required but systemd-analyze cannot run: {error} (apt-get install systemd)"
            );
            eprintln!("skipped: systemd-analyze cannot run ({error}); apt-get install systemd");
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let score: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("→ Overall exposure level for postern.service: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in the output of systemd-analyze: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    eprintln!("systemd-analyze security: postern.service exposure {score}");
    assert!(
        output.status.success() && score <= MAX_EXPOSURE,
        "the unit's exposure is {score}, above {MAX_EXPOSURE}: {text}"
    );
}

/// The next datagram on `socket`, waiting at most 30 s (a loaded machine builds the app slowly).
async fn next_notification(socket: &UnixDatagram) -> String {
    let socket = socket.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buffer = [0u8; 4096];
        let n = socket
            .recv(&mut buffer)
            .expect("a notification within 30 s");
        String::from_utf8(buffer[..n].to_vec()).unwrap()
    })
    .await
    .unwrap()
}

fn signal(server: &Server, name: &str) {
    let sent = Command::new("kill")
        .args([name, &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn ready_only_once_smtp_answers_reloading_on_sighup_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::private(dir.path());
    let (smtp, web) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = {:?}\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp}\"\n[web]\nlisten = \"127.0.0.1:{web}\"\n\
             [outbound]\ndeliver = false\n[dns]\nservers = [\"127.0.0.1:9\"]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let notify_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let server = Server(
        postern()
            .args(["serve", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let ready = next_notification(&socket).await;
    // Asked once, at once: a READY=1 sent before the listener was bound fails here.
    let greeted = Smtp::try_connect(format!("127.0.0.1:{smtp}").parse().unwrap()).await;
    assert!(greeted.is_ok(), "READY=1 came before SMTP answered 220");
    assert!(
        ready.starts_with("READY=1\n"),
        "first notification: {ready:?}"
    );
    assert!(
        ready.contains(&format!(
            "STATUS=SMTP 127.0.0.1:{smtp}, web 127.0.0.1:{web}"
        )),
        "{ready:?}"
    );

    signal(&server, "-HUP");
    let reloading = next_notification(&socket).await;
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading:?}");
    assert!(reloading.contains("\nMONOTONIC_USEC="), "{reloading:?}");
    let ready_again = next_notification(&socket).await;
    assert_eq!(ready_again, ready, "READY=1 after the reload");

    signal(&server, "-TERM");
    let stopping = next_notification(&socket).await;
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let mut server = server;
    let status = tokio::task::spawn_blocking(move || server.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "a drained stop exits 0");
}

#[test]
fn the_shipped_config_passes_check_and_routes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::private(dir.path());
    let shipped = repository().join("packaging/postern.toml");
    let data_dir = dir.path().display().to_string();
    let (code, out, err) = run(
        &["check", "--config", shipped.to_str().unwrap()],
        &[("POSTERN_SERVER__DATA_DIR", &data_dir)],
    );
    assert_eq!(
        code, 0,
        "postern check on packaging/postern.toml: {out}{err}"
    );
    assert!(out.contains("Addresses none"), "{out}");
    // The key file is the unit's credential (CREDENTIALS_DIRECTORY, as the tests set it).
    assert!(
        out.contains(&format!(
            "key file {}",
            crate::support::binary::credentials_directory()
                .join("keyring")
                .display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{data_dir}  (private")), "{out}");
}

/// `key = …` names, set or commented out.
fn documented_keys(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches('#').trim_start();
            let (key, _) = line.split_once(" = ")?;
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
                .then(|| key.to_owned())
        })
        .collect()
}

#[test]
fn the_shipped_config_documents_every_key_the_example_does() {
    let example = documented_keys(&repository().join("src/config/example.toml"));
    let shipped = documented_keys(&repository().join("packaging/postern.toml"));
    assert!(example.len() > 50, "{example:?}");
    assert_eq!(
        example.difference(&shipped).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys src/config/example.toml documents and packaging/postern.toml does not"
    );
    assert_eq!(
        shipped.difference(&example).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys packaging/postern.toml documents and src/config/example.toml does not"
    );
}
