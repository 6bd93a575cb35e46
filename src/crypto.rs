//! Encryption at rest (design §4.6): the install's keyring of age X25519 identities and the
//! sealed form of every encrypted value. The only module that imports age (design §4.8).
//!
//! A **keyring** is an age identity file, one `AGE-SECRET-KEY-1…` line per identity, oldest
//! first: the last identity encrypts new values, every identity in it can decrypt. It lives
//! in a 0600 file outside the database, optionally wrapped by a passphrase (an age
//! scrypt-encrypted file, unlocked once at start: scrypt takes seconds by design).
//!
//! A **sealed** value is `MAGIC ‖ key id (8 bytes) ‖ age ciphertext`. The key id (the first
//! 8 bytes of the SHA-256 of the identity's public key) says which identity sealed it, so a
//! rotation knows what is left to re-encrypt and a retired key is refused while values still
//! need it. The magic starts with a NUL byte, which no plaintext this store ever held (mail
//! text, PEM, base32, URLs) begins with, so [`is_sealed`] tells old plaintext rows from
//! sealed ones.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
/// A passphrase that wraps a key file; never printed.
pub use age::secrecy::SecretString as Passphrase;
use age::x25519;
use sha2::{Digest, Sha256};

/// The first bytes of every sealed value.
const MAGIC: &[u8; 4] = b"\0PA1";
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN;

/// scrypt's work factor for a passphrase-wrapped keyring: age's own default (about a second
/// on a server), paid once at start.
const WRAP_WORK_FACTOR: u8 = 18;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "key file {path} is wrapped with a passphrase; set POSTERN_KEY_PASSPHRASE or [encryption] passphrase_file"
    )]
    PassphraseNeeded { path: String },
    #[error("key file {path}: the passphrase does not unlock it")]
    WrongPassphrase { path: String },
    #[error("key file {path}, line {line}: not an age X25519 identity (AGE-SECRET-KEY-1…)")]
    BadIdentity { path: String, line: usize },
    #[error("key file {path} holds no identity")]
    Empty { path: String },
    /// A sealed value names a key this keyring does not hold (retired, or another install's).
    #[error("sealed with key {0}, which the keyring does not hold")]
    UnknownKey(KeyId),
    #[error("sealed value is damaged: {0}")]
    Damaged(String),
    #[error("the keyring has one key left; it cannot be retired")]
    LastKey,
}

/// Which identity sealed a value: 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(recipient: &x25519::Recipient) -> KeyId {
        let digest = Sha256::digest(recipient.to_string().as_bytes());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(text: &str) -> Result<KeyId, String> {
        let bad = || format!("{text:?} is not a key id (16 hex digits)");
        if text.len() != KEY_ID_LEN * 2 || !text.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (index, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(id))
    }
}

struct Key {
    id: KeyId,
    identity: x25519::Identity,
    recipient: x25519::Recipient,
}

impl Key {
    fn new(identity: x25519::Identity) -> Key {
        let recipient = identity.to_public();
        Key {
            id: KeyId::of(&recipient),
            identity,
            recipient,
        }
    }
}

/// The install's identities, oldest first; the last one seals.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ids())
            .finish()
    }
}

impl Keyring {
    /// A keyring with one new identity.
    pub fn generate() -> Keyring {
        Keyring {
            keys: vec![Key::new(x25519::Identity::generate())],
        }
    }

    /// Reads a key file, unlocking it with `passphrase` when it is wrapped.
    pub fn load(path: &Path, passphrase: Option<&Passphrase>) -> Result<Keyring, CryptoError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CryptoError::Io {
            path: shown.clone(),
            source,
        })?;
        let text = if is_wrapped(&bytes) {
            let passphrase = passphrase.ok_or_else(|| CryptoError::PassphraseNeeded {
                path: shown.clone(),
            })?;
            unwrap(&bytes, passphrase).ok_or_else(|| CryptoError::WrongPassphrase {
                path: shown.clone(),
            })?
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Keyring::parse(&text, &shown)
    }

    fn parse(text: &str, path: &str) -> Result<Keyring, CryptoError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity =
                x25519::Identity::from_str(line).map_err(|_| CryptoError::BadIdentity {
                    path: path.to_owned(),
                    line: index + 1,
                })?;
            keys.push(Key::new(identity));
        }
        if keys.is_empty() {
            return Err(CryptoError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Keyring { keys })
    }

    /// Writes the keyring to `path` as a new 0600 file, wrapped when a passphrase is given;
    /// an existing file is replaced only through a temporary file and a rename, so a crash
    /// never leaves half a keyring.
    pub fn save(&self, path: &Path, passphrase: Option<&Passphrase>) -> Result<(), CryptoError> {
        let io_error = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = self.file_text();
        let bytes = match passphrase {
            Some(passphrase) => wrap(&text, passphrase).map_err(io_error)?,
            None => text.into_bytes(),
        };
        let temporary = path.with_extension("new");
        write_private(&temporary, &bytes).map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)
    }

    /// The identity file text: a comment naming each key's id and public key, then the key.
    fn file_text(&self) -> String {
        let mut text = String::from(
            "# Postern keyring: age X25519 identities, oldest first. The last one encrypts new\n\
             # data; every one decrypts. Without this file the stored mail and secrets cannot\n\
             # be read: keep a copy apart from the database backups.\n",
        );
        for key in &self.keys {
            text.push_str(&format!(
                "# key {} public key: {}\n{}\n",
                key.id,
                key.recipient,
                key.identity.to_string().expose_secret()
            ));
        }
        text
    }

    /// The key ids, oldest first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|key| key.id).collect()
    }

    /// The id of the key that seals new values.
    pub fn current(&self) -> KeyId {
        self.newest().id
    }

    fn newest(&self) -> &Key {
        self.keys.last().expect("a keyring holds at least one key")
    }

    /// Adds a new identity, which seals from now on; the old ones still decrypt.
    pub fn rotate(&mut self) -> KeyId {
        self.keys.push(Key::new(x25519::Identity::generate()));
        self.current()
    }

    /// Drops an identity. The caller first makes sure no value is sealed with it.
    pub fn retire(&mut self, id: KeyId) -> Result<(), CryptoError> {
        let index = self
            .keys
            .iter()
            .position(|key| key.id == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        if self.keys.len() == 1 {
            return Err(CryptoError::LastKey);
        }
        self.keys.remove(index);
        Ok(())
    }

    /// Seals `plaintext` with the current key.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(plaintext.len() + HEADER_LEN + 256);
        let mut writer = self
            .seal_writer(&mut sealed)
            .expect("writing to memory cannot fail");
        writer
            .write_all(plaintext)
            .expect("writing to memory cannot fail");
        writer.finish().expect("writing to memory cannot fail");
        sealed
    }

    /// A writer that seals what is written to it into `output`, a chunk at a time (for
    /// content too big for memory): call [`SealWriter::finish`] at the end, or the output
    /// is truncated.
    pub fn seal_writer<W: Write>(&self, mut output: W) -> io::Result<SealWriter<W>> {
        let key = self.newest();
        output.write_all(MAGIC)?;
        output.write_all(&key.id.0)?;
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&key.recipient as &dyn age::Recipient))
                .expect("one X25519 recipient is a valid recipient set");
        Ok(SealWriter(encryptor.wrap_output(output)?))
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut plaintext = Vec::with_capacity(sealed.len());
        self.open_reader(sealed)?
            .read_to_end(&mut plaintext)
            .map_err(|error| CryptoError::Damaged(error.to_string()))?;
        Ok(plaintext)
    }

    /// A reader of the plaintext of a sealed stream, decrypted a chunk at a time.
    pub fn open_reader<R: BufRead>(&self, mut sealed: R) -> Result<impl Read, CryptoError> {
        let mut header = [0u8; HEADER_LEN];
        sealed
            .read_exact(&mut header)
            .map_err(|_| CryptoError::Damaged("shorter than its header".into()))?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(CryptoError::Damaged("not a sealed value".into()));
        }
        let id = KeyId(header[MAGIC.len()..].try_into().expect("8 bytes"));
        let key = self
            .keys
            .iter()
            .find(|key| key.id == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        let decryptor = age::Decryptor::new_buffered(sealed)
            .map_err(|error| CryptoError::Damaged(error.to_string()))?;
        decryptor
            .decrypt(std::iter::once(&key.identity as &dyn age::Identity))
            .map_err(|error| CryptoError::Damaged(error.to_string()))
    }
}

/// age's STREAM: plaintext is sealed in chunks of this size, each with a tag of [`TAG_LEN`].
const CHUNK_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;

/// What a [`SealWriter`] writes after the header it wrote when it was made (our header,
/// age's, which varies in length, and the nonce), for `plaintext_len` octets: known before
/// sealing, so a large value can be written in place a chunk at a time (the store's
/// incremental blob I/O). STREAM writes one chunk per 64 KiB started (one for an empty
/// value; a full last chunk is not followed by an empty one).
pub fn sealed_payload_len(plaintext_len: usize) -> usize {
    let chunks = plaintext_len.div_ceil(CHUNK_LEN).max(1);
    plaintext_len + chunks * TAG_LEN
}

/// Whether `bytes` is a sealed value (else: plaintext stored before encryption existed).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes.starts_with(MAGIC)
}

/// The key that sealed `bytes`, when they are sealed.
pub fn sealed_with(bytes: &[u8]) -> Option<KeyId> {
    is_sealed(bytes).then(|| KeyId(bytes[MAGIC.len()..HEADER_LEN].try_into().expect("8 bytes")))
}

/// The writer [`Keyring::seal_writer`] returns.
pub struct SealWriter<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> SealWriter<W> {
    /// Writes the last chunk and returns the output.
    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A passphrase-wrapped key file: age's armored or binary header.
fn is_wrapped(bytes: &[u8]) -> bool {
    bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || bytes.starts_with(b"age-encryption.org/v1")
}

fn wrap(text: &str, passphrase: &Passphrase) -> io::Result<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
    recipient.set_work_factor(WRAP_WORK_FACTOR);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .expect("one scrypt recipient is a valid recipient set");
    let armored =
        age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor)?;
    let mut writer = encryptor.wrap_output(armored)?;
    writer.write_all(text.as_bytes())?;
    writer.finish()?.finish()
}

fn unwrap(bytes: &[u8], passphrase: &Passphrase) -> Option<String> {
    let reader = age::armor::ArmoredReader::new(bytes);
    let decryptor = age::Decryptor::new(reader).ok()?;
    let identity = age::scrypt::Identity::new(passphrase.clone());
    let mut text = String::new();
    decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Creates `path` with mode 0600 (replacing a leftover), so the secret is never readable by
/// others, not even for a moment.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose output can be looked at while a [`SealWriter`] owns it.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sealed_length_is_known_once_the_header_is_written() {
        let keyring = Keyring::generate();
        for len in [
            0,
            1,
            100,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            3 * CHUNK_LEN,
            200_000,
        ] {
            let sealed = Shared::default();
            let mut writer = keyring.seal_writer(sealed.clone()).unwrap();
            let header = sealed.0.borrow().len();
            writer.write_all(&vec![7u8; len]).unwrap();
            writer.finish().unwrap();
            let sealed = sealed.0.borrow().clone();
            assert_eq!(
                sealed.len(),
                header + sealed_payload_len(len),
                "{len} octets"
            );
            assert_eq!(keyring.open(&sealed).unwrap().len(), len);
        }
    }

    #[test]
    fn a_sealed_value_opens_and_names_its_key() {
        let keyring = Keyring::generate();
        let sealed = keyring.seal(b"Subject: hello\r\n\r\nbody");
        assert!(is_sealed(&sealed));
        assert_eq!(sealed_with(&sealed), Some(keyring.current()));
        assert!(!sealed.windows(4).any(|window| window == b"body"));
        assert_eq!(
            keyring.open(&sealed).unwrap(),
            b"Subject: hello\r\n\r\nbody"
        );
        assert!(!is_sealed(b"Subject: plain"));
    }

    #[test]
    fn empty_and_large_values_round_trip() {
        let keyring = Keyring::generate();
        assert_eq!(keyring.open(&keyring.seal(b"")).unwrap(), b"");
        let big: Vec<u8> = (0..200_000u32).map(|n| n as u8).collect();
        assert_eq!(keyring.open(&keyring.seal(&big)).unwrap(), big);
    }

    #[test]
    fn rotation_seals_with_the_new_key_and_still_opens_the_old() {
        let mut keyring = Keyring::generate();
        let old = keyring.current();
        let before = keyring.seal(b"old");
        let new = keyring.rotate();
        assert_ne!(old, new);
        let after = keyring.seal(b"new");
        assert_eq!(sealed_with(&after), Some(new));
        assert_eq!(keyring.open(&before).unwrap(), b"old");
        keyring.retire(old).unwrap();
        assert!(matches!(keyring.open(&before), Err(CryptoError::UnknownKey(id)) if id == old));
        assert_eq!(keyring.open(&after).unwrap(), b"new");
        assert!(matches!(keyring.retire(new), Err(CryptoError::LastKey)));
    }

    #[test]
    fn another_installs_key_cannot_open_and_damage_is_an_error() {
        let ours = Keyring::generate();
        let theirs = Keyring::generate();
        let sealed = theirs.seal(b"secret");
        assert!(matches!(
            ours.open(&sealed),
            Err(CryptoError::UnknownKey(_))
        ));
        let mut damaged = ours.seal(b"secret");
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(ours.open(&damaged), Err(CryptoError::Damaged(_))));
        assert!(matches!(ours.open(b"\0PA1"), Err(CryptoError::Damaged(_))));
    }

    #[test]
    fn a_saved_keyring_loads_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        let mut keyring = Keyring::generate();
        keyring.rotate();
        keyring.save(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Keyring::load(&path, None).unwrap();
        assert_eq!(loaded.ids(), keyring.ids());
        let sealed = keyring.seal(b"x");
        assert_eq!(loaded.open(&sealed).unwrap(), b"x");
    }

    #[test]
    fn a_wrapped_keyring_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        let keyring = Keyring::generate();
        // A low work factor keeps the test fast; the format is the same.
        let text = keyring.file_text();
        let mut recipient =
            age::scrypt::Recipient::new(Passphrase::from("correct horse".to_owned()));
        recipient.set_work_factor(10);
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let armored =
            age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor)
                .unwrap();
        let mut writer = encryptor.wrap_output(armored).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
        std::fs::write(&path, writer.finish().unwrap().finish().unwrap()).unwrap();

        assert!(matches!(
            Keyring::load(&path, None),
            Err(CryptoError::PassphraseNeeded { .. })
        ));
        assert!(matches!(
            Keyring::load(&path, Some(&Passphrase::from("wrong".to_owned()))),
            Err(CryptoError::WrongPassphrase { .. })
        ));
        let loaded =
            Keyring::load(&path, Some(&Passphrase::from("correct horse".to_owned()))).unwrap();
        assert_eq!(loaded.ids(), keyring.ids());
    }

    #[test]
    fn a_file_without_identities_or_with_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            Keyring::load(&path, None),
            Err(CryptoError::Empty { .. })
        ));
        std::fs::write(&path, "AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
        assert!(matches!(
            Keyring::load(&path, None),
            Err(CryptoError::BadIdentity { line: 1, .. })
        ));
    }

    #[test]
    fn key_ids_print_and_parse() {
        let keyring = Keyring::generate();
        let id = keyring.current();
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        assert!("xyz".parse::<KeyId>().is_err());
    }
}
