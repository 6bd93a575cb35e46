//! How a failed command ends: the one place that turns the `anyhow::Error` a command returns
//! into the lines on stderr (`error: …`, sometimes `hint: …`) and the exit code.
//!
//! Exit 2 means the operator's input cannot be used (the config file, the data directory, a
//! flag's value, standard input, an existing output file), the code clap itself uses for a bad
//! command line; anything else that fails exits 1. Commands mark the first kind with a
//! [`CliError`]; they never choose exit codes themselves.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::AppError;
use crate::config::ConfigError;
use crate::store::StoreError;

/// Exit code for input the operator must fix (as for clap's usage errors).
const USAGE: u8 = 2;

/// The failures whose kind decides the exit code or adds a hint line. Any other error a
/// command returns (a refused account change, an unknown key, …) exits 1.
#[derive(Debug, thiserror::Error)]
pub(super) enum CliError {
    /// The config file cannot be read or is not valid: exit 2; when it does not exist, a
    /// hint to create it.
    #[error("{source}")]
    Config { path: PathBuf, source: ConfigError },
    /// The database in the data directory cannot be opened: exit 2.
    #[error(transparent)]
    Store(StoreError),
    /// The keyring cannot be loaded or the store opened with it: exit 2.
    #[error(transparent)]
    Keyring(AppError),
    /// A flag's value, standard input or an output file cannot be used: exit 2.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// The server could not start: exit 1, with what to change when a port is taken or
    /// privileged.
    #[error("{source}")]
    Start { source: AppError, dev: bool },
}

impl CliError {
    /// A [`CliError::Usage`] with this message.
    pub(super) fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(anyhow::Error::msg(message.into()))
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config { .. }
            | CliError::Store(_)
            | CliError::Keyring(_)
            | CliError::Usage(_) => ExitCode::from(USAGE),
            CliError::Start { .. } => ExitCode::FAILURE,
        }
    }

    /// The advice printed after the error, where there is one.
    fn hint(&self) -> Option<String> {
        match self {
            CliError::Config { path, .. } if !path.exists() => Some(format!(
                "create one with `postern init --output {}`",
                path.display()
            )),
            CliError::Start { source, dev } => bind_hint(source, *dev).map(str::to_string),
            _ => None,
        }
    }
}

/// Prints `error: …` (and `hint: …`) for a failed command and gives its exit code.
pub(super) fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(error));
    let kind = error.downcast_ref::<CliError>();
    if let Some(hint) = kind.and_then(CliError::hint) {
        eprintln!("hint: {hint}");
    }
    kind.map_or(ExitCode::FAILURE, CliError::exit_code)
}

/// The error, then each cause its text does not show yet, joined by ": " (anyhow's `{:#}`
/// without repeats). Postern's error types print their source inside their own message, so
/// the walk ends at the first cause already shown: below it, the error speaks for itself.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if line.contains(&text) {
            break;
        }
        line.push_str(": ");
        line.push_str(&text);
    }
    line
}

/// What to change when a listener could not bind.
fn bind_hint(error: &AppError, dev: bool) -> Option<&'static str> {
    let AppError::Bind { source, .. } = error else {
        return None;
    };
    match source.kind() {
        std::io::ErrorKind::AddrInUse if dev => Some(
            "another program (another `postern dev`?) uses that port; choose others with --smtp, --submission and --web",
        ),
        std::io::ErrorKind::AddrInUse => Some(
            "another program uses that port; change smtp.listen, submission.listen or web.listen",
        ),
        std::io::ErrorKind::PermissionDenied => Some(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (e.g. AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit)",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn context_comes_first_and_a_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let with_context = Err::<(), _>(io()).context("cannot write x").unwrap_err();
        assert_eq!(one_line(&with_context), "cannot write x: gone");
        let read = ConfigError::Read {
            path: "/p".into(),
            source: io(),
        };
        assert_eq!(
            one_line(&anyhow::Error::new(read)),
            "cannot read config file /p: gone"
        );
    }

    #[test]
    fn the_operators_input_exits_2_and_anything_else_1() {
        let config = CliError::Config {
            path: "/nonexistent/postern.toml".into(),
            source: ConfigError::Env {
                var: "POSTERN_X".into(),
                message: "bad".into(),
            },
        };
        assert_eq!(
            config.hint().as_deref(),
            Some("create one with `postern init --output /nonexistent/postern.toml`")
        );
        for (error, code) in [
            (anyhow::Error::new(config), ExitCode::from(2)),
            (CliError::usage("--forward x").into(), ExitCode::from(2)),
            (anyhow::anyhow!("no live key with id 3"), ExitCode::FAILURE),
        ] {
            assert_eq!(report(&error), code, "{error}");
        }
        // Context added above the typed error does not hide its kind.
        let wrapped = Err::<(), _>(CliError::usage("x"))
            .context("above")
            .unwrap_err();
        assert_eq!(report(&wrapped), ExitCode::from(2));
    }
}
