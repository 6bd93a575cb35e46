//! Telling systemd what the service is doing (`Type=notify`, the `sd_notify` protocol): one
//! datagram of `KEY=value` lines to the socket named by `$NOTIFY_SOCKET`, a path or, with a
//! leading `@`, an abstract Linux socket name. `READY=1` once the store is migrated and every
//! listener is bound, `RELOADING=1` … `READY=1` around a SIGHUP, `STOPPING=1` when the drain
//! starts. Without `$NOTIFY_SOCKET` (not under systemd, or `Type=exec`) nothing is sent.
//!
//! Written here rather than with a crate: the protocol is one `sendto`, and std's
//! `UnixDatagram` (with `SocketAddrExt` for abstract names) does all of it.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tracing::{debug, warn};

/// The variable systemd sets for `Type=notify` services.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// What the service tells the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Started: migrations ran and every listener accepts. `status` is shown by
    /// `systemctl status`.
    Ready { status: String },
    /// A SIGHUP is being handled; `READY=1` follows.
    Reloading,
    /// The shutdown signal arrived: listeners close, sessions drain.
    Stopping,
}

impl State {
    /// The datagram's text. `RELOADING=1` carries `MONOTONIC_USEC` (CLOCK_MONOTONIC, as
    /// `Type=notify-reload` requires; `Type=notify` ignores it).
    fn message(&self) -> String {
        match self {
            State::Ready { status } => format!("READY=1\nSTATUS={}", one_line(status)),
            State::Reloading => format!(
                "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading",
                monotonic_usec()
            ),
            State::Stopping => "STOPPING=1\nSTATUS=Draining sessions".to_owned(),
        }
    }
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{SOCKET_ENV}={0:?} is neither an absolute path nor an @abstract name")]
    BadAddress(String),
    #[error("cannot send to {SOCKET_ENV} {address}: {source}")]
    Send {
        address: String,
        source: std::io::Error,
    },
}

/// Sends `state` to `$NOTIFY_SOCKET` when it is set; a failure is logged, never fatal
/// (systemd then times the start out and says so).
pub fn notify(state: &State) {
    let Some(address) = std::env::var_os(SOCKET_ENV) else {
        return;
    };
    let address = address.to_string_lossy().into_owned();
    match send(&address, &state.message()) {
        Ok(()) => debug!(?state, "told systemd"),
        Err(error) => warn!("{error}"),
    }
}

/// One datagram to `address` (`/path` or `@abstract`).
pub fn send(address: &str, message: &str) -> Result<(), NotifyError> {
    let failed = |source| NotifyError::Send {
        address: address.to_owned(),
        source,
    };
    let socket = UnixDatagram::unbound().map_err(failed)?;
    if let Some(name) = address.strip_prefix('@') {
        send_abstract(&socket, name, message).map_err(failed)?;
    } else if address.starts_with('/') {
        socket
            .send_to(message.as_bytes(), PathBuf::from(address))
            .map_err(failed)?;
    } else {
        return Err(NotifyError::BadAddress(address.to_owned()));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &str, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(message.as_bytes(), &address).map(drop)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &str, _: &str) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// A status line: the protocol separates fields by newlines.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares reload requests against.
fn monotonic_usec() -> u128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32).as_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = crate::datadir::test_dir();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        assert_eq!(received(&socket), "READY=1");

        let name = format!("postern-notify-test-{}", std::process::id());
        let address = {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
        };
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        assert_eq!(received(&socket), "STOPPING=1");
    }

    #[test]
    fn a_relative_address_is_refused() {
        assert!(matches!(
            send("notify.sock", "READY=1"),
            Err(NotifyError::BadAddress(_))
        ));
    }

    #[test]
    fn messages_are_key_value_lines() {
        let ready = State::Ready {
            status: "SMTP 0.0.0.0:25\nweb 0.0.0.0:443".to_owned(),
        };
        assert_eq!(
            ready.message(),
            "READY=1\nSTATUS=SMTP 0.0.0.0:25 web 0.0.0.0:443"
        );
        assert!(State::Stopping.message().starts_with("STOPPING=1\n"));
        let reloading = State::Reloading.message();
        let usec: u128 = reloading
            .lines()
            .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(reloading.starts_with("RELOADING=1\n") && usec > 0);
    }
}
