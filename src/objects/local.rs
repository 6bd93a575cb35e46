//! The local store: files under `<data_dir>/files/<id>/<name>` (directories 0700, files 0600
//! like the rest of the data directory), sealed with the keyring when encryption is on, and
//! served by Postern at `GET /files/<id>/<name>?expires=<unix>&signature=<hex>`: an
//! HMAC-SHA256, with an instance secret, of the id, the name and the expiry. The id is
//! `<expires>-<random>`, so the sweep ([`sweep`]) deletes what no URL can fetch any more
//! without knowing which store made it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::naming::{self, ObjectName};
use crate::crypto::Keyring;

/// The folder of the data directory the local stores write to.
pub const FOLDER: &str = "files";

/// Where a local store's file is, as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub id: String,
    pub name: String,
}

impl FileRef {
    /// A file id and name as a URL gives them, if they can name a file: the id
    /// `<digits>-<32 hex>`, the name one sanitised segment. Nothing else reaches the disk.
    pub fn parse(id: &str, name: &str) -> Option<FileRef> {
        let (expires, random) = id.split_once('-')?;
        let id_ok = (1..=12).contains(&expires.len())
            && expires.bytes().all(|b| b.is_ascii_digit())
            && random.len() == 32
            && random
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let name_ok = naming::sanitise(name) == name;
        (id_ok && name_ok).then(|| FileRef {
            id: id.to_string(),
            name: name.to_string(),
        })
    }

    fn path(&self, files: &Path) -> PathBuf {
        files.join(&self.id).join(&self.name)
    }
}

/// The query a file's URL carries.
fn message_to_sign(file: &FileRef, expires: i64) -> String {
    format!("{}/{}?expires={expires}", file.id, file.name)
}

/// The signature of a file's URL: lower-case hex HMAC-SHA256.
pub fn sign(key: &[u8], file: &FileRef, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message_to_sign(file, expires).as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `signature` is the file's (compared in constant time).
pub fn verify(key: &[u8], file: &FileRef, expires: i64, signature: &str) -> bool {
    let Some(given) = hex(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message_to_sign(file, expires).as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One local store as the deliverer uses it.
pub struct Local {
    pub files: PathBuf,
    pub keyring: Option<Arc<Keyring>>,
    pub expiry_secs: u64,
}

impl Local {
    /// Writes `bytes` (sealed) as a new file named after `name`, valid until `now` plus the
    /// store's expiry; the file and its expiry, for its URL.
    pub async fn put(
        &self,
        name: &ObjectName,
        bytes: Vec<u8>,
        now: i64,
    ) -> Result<(FileRef, i64), String> {
        let expires = now + self.expiry_secs as i64;
        let random = match &name.folder {
            Some(folder) => folder.clone(),
            None => naming::random_folder(),
        };
        let file = FileRef {
            id: format!("{expires}-{random}"),
            name: name.file.clone(),
        };
        let sealed = match &self.keyring {
            Some(keyring) => keyring.seal(&bytes),
            None => bytes,
        };
        let (files, written) = (self.files.clone(), file.clone());
        tokio::task::spawn_blocking(move || write_private(&files, &written, &sealed))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot write {}: {e}", files_display(&self.files, &file)))?;
        Ok((file, expires))
    }
}

fn files_display(files: &Path, file: &FileRef) -> String {
    file.path(files).display().to_string()
}

/// Creates `files/<id>/` (0700) and the file (0600, never over another one).
fn write_private(files: &Path, file: &FileRef, bytes: &[u8]) -> std::io::Result<()> {
    let folder = files.join(&file.id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&folder)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(folder.join(&file.name))?;
    out.write_all(bytes)?;
    out.sync_all()
}

/// Why a file cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The signature does not match (or the URL names no possible file): 403.
    #[error("this link is not valid")]
    Forged,
    /// The link's time is past: 403.
    #[error("this link has expired")]
    Expired,
    /// Signed and in time, but deleted: 404.
    #[error("this file is gone")]
    Gone,
    /// It could not be read or opened: 500.
    #[error("this file cannot be read: {0}")]
    Unreadable(String),
}

/// The plaintext of a file, once its link is checked.
pub async fn read(
    files: &Path,
    keyring: Option<Arc<Keyring>>,
    file: &FileRef,
) -> Result<Vec<u8>, FileError> {
    let path = file.path(files);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Gone),
        Err(e) => return Err(FileError::Unreadable(e.to_string())),
    };
    match keyring {
        Some(keyring) if crate::crypto::is_sealed(&bytes) => keyring
            .open(&bytes)
            .map_err(|e| FileError::Unreadable(e.to_string())),
        _ => Ok(bytes),
    }
}

/// Deletes every file whose links have expired (its id's time is before `now`); how many
/// folders went. Folders it cannot read or name are left alone.
pub fn sweep(files: &Path, now: i64) -> usize {
    let Ok(entries) = std::fs::read_dir(files) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let expires = name
            .to_str()
            .and_then(|id| id.split_once('-'))
            .and_then(|(expires, _)| expires.parse::<i64>().ok());
        if expires.is_some_and(|at| at < now) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_sealed_private_and_served_only_with_a_valid_signature() {
        let dir = crate::datadir::test_dir();
        let keyring = Arc::new(Keyring::generate());
        let local = Local {
            files: dir.path().join(FOLDER),
            keyring: Some(keyring.clone()),
            expiry_secs: 100,
        };
        let name = naming::attachment("secret plans.txt");
        let (file, expires) = local
            .put(&name, b"the plaintext".to_vec(), 1_000)
            .await
            .unwrap();
        assert_eq!(expires, 1_100);
        assert_eq!(file.name, "secret_plans.txt");
        let on_disk = std::fs::read(file.path(&local.files)).unwrap();
        assert!(!on_disk.windows(9).any(|w| w == b"plaintext"));
        crate::datadir::check_dir(dir.path()).expect("private");
        assert_eq!(
            read(&local.files, Some(keyring), &file).await.unwrap(),
            b"the plaintext"
        );

        let key = b"k";
        let signature = sign(key, &file, expires);
        assert!(verify(key, &file, expires, &signature));
        assert!(!verify(key, &file, expires + 1, &signature));
        assert!(!verify(b"other", &file, expires, &signature));
        assert!(!verify(key, &file, expires, &signature[..63]));
        let other = FileRef {
            name: "other.txt".into(),
            ..file.clone()
        };
        assert!(!verify(key, &other, expires, &signature));

        assert_eq!(sweep(&local.files, 1_100), 0);
        assert_eq!(sweep(&local.files, 1_101), 1);
        assert_eq!(read(&local.files, None, &file).await, Err(FileError::Gone));
    }

    #[test]
    fn only_well_formed_ids_and_names_name_a_file() {
        let id = format!("123-{}", "a".repeat(32));
        assert!(FileRef::parse(&id, "x.txt").is_some());
        for (id, name) in [
            (id.as_str(), ".."),
            (id.as_str(), "a b"),
            (id.as_str(), ""),
            ("..", "x.txt"),
            ("123-..", "x.txt"),
            ("x-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x.txt"),
            ("123-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x.txt"),
        ] {
            assert!(FileRef::parse(id, name).is_none(), "{id} {name}");
        }
    }
}
