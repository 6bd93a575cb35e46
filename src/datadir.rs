//! The private data directory (design §4.6): what Postern keeps on disk — the database, its
//! WAL, the keyring, spooled mail — is readable by Postern's user alone. The directory is
//! created 0700, files 0600 (the process umask is 077 from the start, so SQLite's `-wal`
//! and `-shm` and every later file are born private), and a directory or file that other
//! users can read is refused with the command that fixes it, never silently used.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Permission bits for anyone but the owner.
const OTHERS: u32 = 0o077;

/// Gives every file and directory this process creates owner-only permissions. Called first
/// thing in `main`, before any thread or file exists.
pub fn restrict_umask() {
    // SAFETY: umask(2) only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Others can read (or write, or enter) it: refused, with the fix.
    #[error("{0}")]
    Exposed(Exposed),
    #[error("cannot create data directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process serves this data directory (it holds the lock file).
    #[error(
        "postern serve is running on {dir} (it holds {lock}); stop it first (e.g. `systemctl stop postern`) and run this again"
    )]
    Serving { dir: PathBuf, lock: PathBuf },
}

/// A path whose mode lets other users in.
#[derive(Debug)]
pub struct Exposed {
    pub path: PathBuf,
    pub mode: u32,
    pub is_dir: bool,
}

impl fmt::Display for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, fix) = if self.is_dir {
            ("directory", "chmod 700")
        } else {
            ("file", "chmod 600")
        };
        write!(
            f,
            "{what} {} is open to other users (mode {:04o}); Postern keeps mail and keys \
             there, so it must be private: run `{fix} {}` (and `chown` it to the user \
             Postern runs as)",
            self.path.display(),
            self.mode & 0o7777,
            self.path.display()
        )
    }
}

/// Creates `dir` 0700 when it does not exist; otherwise checks that it and everything in it
/// is private.
pub fn ensure(dir: &Path) -> Result<(), DataDirError> {
    if !dir.exists() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| DataDirError::Create {
                path: dir.to_owned(),
                source,
            });
    }
    check_dir(dir)
}

/// Checks that `dir` and every file and directory under it are private.
pub fn check_dir(dir: &Path) -> Result<(), DataDirError> {
    check_path(dir)?;
    let read = |source| DataDirError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            check_dir(&path)?;
        } else {
            check_path(&path)?;
        }
    }
    Ok(())
}

/// Checks one file (a key file outside the data directory, say) or directory.
pub fn check_path(path: &Path) -> Result<(), DataDirError> {
    let metadata = std::fs::symlink_metadata(path).map_err(|source| DataDirError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.file_type().is_symlink() {
        // The link's own mode means nothing; what it points at is checked where it lives
        // (systemd's credentials directory, say), not here.
        return Ok(());
    }
    let mode = metadata.permissions().mode();
    if mode & OTHERS != 0 {
        return Err(DataDirError::Exposed(Exposed {
            path: path.to_owned(),
            mode,
            is_dir: metadata.is_dir(),
        }));
    }
    Ok(())
}

/// Makes `dir` and everything under it private, for `postern dev`, whose data directory a
/// developer made in passing (an older Postern created it 0755). Production refuses instead.
pub fn tighten(dir: &Path) -> Result<(), DataDirError> {
    if !dir.exists() {
        return ensure(dir);
    }
    let fix = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            DataDirError::Read {
                path: path.to_owned(),
                source,
            }
        })
    };
    fix(dir, 0o700)?;
    let read = |source| DataDirError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            tighten(&path)?;
        } else if let Err(error) = fix(&path, 0o600) {
            // A file gone since the listing (SQLite's `-shm` when the last connection of a
            // store closes) needs no tightening.
            if !matches!(&error, DataDirError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
            {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// A private scratch directory for the unit tests that open a store (tempfile makes them
/// 0755 under the usual umask, which [`ensure`] refuses).
#[cfg(test)]
pub(crate) fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("the temporary directory is made private");
    dir
}

/// The lock file `serve` holds on its data directory for as long as it runs.
pub const SERVE_LOCK: &str = "postern.lock";

/// An exclusive `flock` on `<data_dir>/postern.lock`, released when dropped (or when the
/// process ends, however it ends). `serve` holds it; `restore` takes it so that no `serve`
/// runs on a database being replaced.
#[derive(Debug)]
pub struct ServeLock {
    _file: std::fs::File,
}

/// Takes the data directory's [`ServeLock`] without waiting: [`DataDirError::Serving`] when
/// another process holds it.
pub fn lock_serving(dir: &Path) -> Result<ServeLock, DataDirError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let lock = dir.join(SERVE_LOCK);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(|source| DataDirError::Create {
            path: lock.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        return Err(DataDirError::Serving {
            dir: dir.to_owned(),
            lock,
        });
    }
    Ok(ServeLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn set(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_directory_is_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/b");
        ensure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        ensure(&dir).unwrap();
    }

    #[test]
    fn an_open_directory_or_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        set(dir.path(), 0o755);
        let error = ensure(dir.path()).unwrap_err().to_string();
        assert!(error.contains("mode 0755"), "{error}");
        assert!(
            error.contains(&format!("chmod 700 {}", dir.path().display())),
            "{error}"
        );

        set(dir.path(), 0o700);
        let db = dir.path().join("postern.db");
        std::fs::write(&db, b"").unwrap();
        set(&db, 0o644);
        let error = ensure(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&format!("chmod 600 {}", db.display())),
            "{error}"
        );

        let nested = dir.path().join("spool");
        std::fs::create_dir(&nested).unwrap();
        set(&db, 0o600);
        set(&nested, 0o750);
        assert!(matches!(
            check_dir(dir.path()),
            Err(DataDirError::Exposed(Exposed { is_dir: true, .. }))
        ));
    }

    #[test]
    fn group_write_alone_is_refused_too() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keyring");
        std::fs::write(&key, b"").unwrap();
        set(&key, 0o620);
        assert!(check_path(&key).is_err());
        set(&key, 0o400);
        check_path(&key).unwrap();
    }

    #[test]
    fn dev_tightens_what_an_older_version_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postern.db");
        std::fs::write(&db, b"").unwrap();
        set(&db, 0o644);
        set(dir.path(), 0o755);
        tighten(dir.path()).unwrap();
        assert_eq!((mode(dir.path()), mode(&db)), (0o700, 0o600));
        check_dir(dir.path()).unwrap();
    }

    #[test]
    fn one_serve_lock_per_data_directory_until_dropped() {
        let dir = test_dir();
        let held = lock_serving(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join(SERVE_LOCK)), 0o600);
        let refused = lock_serving(dir.path()).unwrap_err();
        assert!(matches!(refused, DataDirError::Serving { .. }), "{refused}");
        assert!(refused.to_string().contains("stop it first"), "{refused}");
        drop(held);
        lock_serving(dir.path()).unwrap();
    }
}
