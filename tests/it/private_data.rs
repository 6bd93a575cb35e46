//! The private data directory (issue 11 point 1): what Postern writes is its user's alone,
//! whatever umask it was started with, and a directory others can read is refused with the
//! command that fixes it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use crate::support::binary::postern;
use crate::support::{Smtp, eventually};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the binary with a permissive umask, as a careless shell would start it.
fn postern_with_open_umask() -> std::process::Command {
    let mut command = postern();
    // SAFETY: umask(2) is async-signal-safe and touches only the child's own mask.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    command
}

#[tokio::test]
async fn what_postern_creates_is_private_whatever_the_umask() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let mut child = postern_with_open_umask()
        .args([
            "dev",
            "--smtp",
            "127.0.0.1:0",
            "--submission",
            "127.0.0.1:0",
        ])
        .args(["--web", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let smtp = crate::lifecycle::smtp_addr_from_banner(child.stdout.take().unwrap());
    let mut session = Smtp::connect(smtp).await;
    session.ehlo().await;
    session.cmd("MAIL FROM:<a@example.com>", "250").await;
    session.cmd("RCPT TO:<b@example.com>", "250").await;
    session.cmd("DATA", "354").await;
    session
        .cmd("Subject: private\r\n\r\nbody\r\n.", "250")
        .await;
    let wal = data_dir.join("postern.db-wal");
    eventually("the WAL to exist", async || wal.exists()).await;

    assert_eq!(mode(&data_dir), 0o700);
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        // Files 0600; the directories Postern makes in it (the spool) 0700.
        let private = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), private, "{}", path.display());
    }
    for name in ["postern.db", "postern.db-wal", "postern.db-shm"] {
        assert!(data_dir.join(name).exists(), "{name}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn config_for(dir: &Path, data_dir: &Path) -> std::path::PathBuf {
    let path = dir.join("postern.toml");
    let toml = format!(
        "[server]\ndata_dir = \"{}\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
        data_dir.display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn run(command: &str, config: &Path) -> (i32, String, String) {
    let output = postern()
        .args([command, "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_and_serve_refuse_a_data_directory_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    set_mode(&data_dir, 0o755);
    let config = config_for(dir.path(), &data_dir);
    let fix = format!("chmod 700 {}", data_dir.display());
    for command in ["check", "serve"] {
        let (code, _, err) = run(command, &config);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(err.contains("mode 0755"), "{command}: {err}");
        assert!(err.contains(&fix), "{command}: {err}");
    }

    // A database file an older version left 0644, in a private directory.
    set_mode(&data_dir, 0o700);
    let db = data_dir.join("postern.db");
    std::fs::write(&db, b"").unwrap();
    set_mode(&db, 0o644);
    let (code, _, err) = run("check", &config);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", db.display())),
        "{err}"
    );

    // The same commands that open the store refuse it too.
    let output = postern()
        .args(["user", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chmod 600"));

    set_mode(&db, 0o600);
    let (code, out, err) = run("check", &config);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("private: directory 0700, files 0600"), "{out}");
}

#[test]
fn dev_makes_an_old_scratch_directory_private() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("postern-data");
    std::fs::create_dir(&data_dir).unwrap();
    set_mode(&data_dir, 0o755);
    let mut child = crate::support::binary::spawn_dev(&data_dir);
    crate::lifecycle::smtp_addr_from_banner(child.stdout.take().unwrap());
    assert_eq!(mode(&data_dir), 0o700);
    child.kill().unwrap();
    child.wait().unwrap();
}
