//! The real `postern` binary as a child process, for the tests of what only a process shows:
//! the CLI, the dev banner, signals, exit codes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The real binary, without any `POSTERN_*` variable of the environment the tests run in,
/// and with a keyring where systemd's `LoadCredential=` would put it (the default
/// `[encryption] key_file` then), shared by the binaries of this test run.
pub fn postern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postern"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POSTERN_") {
            command.env_remove(name);
        }
    }
    command.env("CREDENTIALS_DIRECTORY", credentials_directory());
    command
}

/// `postern args…` with `env` added, run to the end: exit code, stdout, stderr.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = postern()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command` with `stdin` written to its standard input: exit code, stdout, stderr.
pub fn run_with_stdin(command: &mut Command, stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A private directory holding `keyring`, made once per test run.
pub fn credentials_directory() -> &'static Path {
    static DIRECTORY: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIRECTORY
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            super::private(dir.path());
            postern::crypto::Keyring::generate()
                .save(&dir.path().join("keyring"), None)
                .expect("the test keyring is written");
            dir
        })
        .path()
}

/// `postern dev` on ephemeral loopback ports over `data_dir`; its standard output (the
/// banner, which names the ports) is piped.
pub fn spawn_dev(data_dir: &Path) -> Child {
    postern()
        .args([
            "dev",
            "--smtp",
            "127.0.0.1:0",
            "--submission",
            "127.0.0.1:0",
        ])
        .args(["--web", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A server process, killed at the end of the test whatever happens.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
