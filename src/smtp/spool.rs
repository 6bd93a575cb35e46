//! Disk spooling of message content (issue 15 item 1): past a threshold, the content of a
//! DATA or BDAT transaction goes to a file in `<data_dir>/spool` while it arrives, so a
//! session holds at most about the threshold in memory however large its message is and
//! however slowly it comes.
//!
//! A spool file is sealed (design §4.6) with a key made when the process starts and never
//! written anywhere: what a file holds can be read by this process only, and a file left
//! behind by a crash by nobody. Files are unlinked as soon as they are created (`O_TMPFILE`),
//! so a crash leaves none behind; what an older build left is deleted by [`Spool::open`].
//! The shell ([`super::server`]) writes and reads them off the async threads.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crypto::{Keyring, SealWriter};

/// Content at or below this is never spooled: the default threshold.
pub const DEFAULT_THRESHOLD: usize = 1024 * 1024;

/// Where and past which size message content is spooled, and the key that seals it.
pub struct Spool {
    dir: PathBuf,
    threshold: usize,
    key: Keyring,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Makes `dir` (0700) if it is missing and deletes whatever is in it: files an earlier
    /// process left, which nobody can read any more. Content past `threshold` octets goes
    /// to disk.
    pub fn open(dir: &Path, threshold: usize) -> io::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Arc::new(Spool {
            dir: dir.to_path_buf(),
            threshold,
            key: Keyring::generate(),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Octets of content a session holds in memory before it starts spooling.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// A new, empty spool file. Blocking.
    pub fn create(self: &Arc<Spool>) -> io::Result<SpoolWriter> {
        let file = tempfile::tempfile_in(&self.dir)?;
        let writer = self
            .key
            .seal_writer(BufWriter::with_capacity(64 * 1024, file))?;
        Ok(SpoolWriter {
            writer,
            len: 0,
            spool: self.clone(),
        })
    }
}

/// A spool file being written: the content so far, sealed.
pub struct SpoolWriter {
    writer: SealWriter<BufWriter<File>>,
    len: usize,
    spool: Arc<Spool>,
}

impl SpoolWriter {
    /// Octets of content written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends content. Blocking.
    pub fn write(&mut self, content: &[u8]) -> io::Result<()> {
        self.writer.write_all(content)?;
        self.len += content.len();
        Ok(())
    }

    /// Seals the last chunk: the file is complete. Blocking.
    pub fn finish(self) -> io::Result<Spooled> {
        let file = self
            .writer
            .finish()?
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok(Spooled {
            file,
            len: self.len,
            spool: self.spool,
        })
    }
}

/// A complete spool file; gone when this is dropped (the file was never linked).
pub struct Spooled {
    file: File,
    len: usize,
    spool: Arc<Spool>,
}

impl Spooled {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The content, read back in one buffer of exactly its size. Blocking.
    pub fn read(mut self) -> io::Result<Vec<u8>> {
        self.file.seek(SeekFrom::Start(0))?;
        let reader = BufReader::with_capacity(64 * 1024, &self.file);
        let mut plain = self
            .spool
            .key
            .open_reader(reader)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        // Room for the trace field a handler puts in front (`Received:`, under 1 KiB), so
        // that does not copy the message into a larger buffer.
        let mut content = Vec::with_capacity(self.len + 1024);
        plain.read_to_end(&mut content)?;
        if content.len() != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the spool file gave back {} of {} octets",
                    content.len(),
                    self.len
                ),
            ));
        }
        Ok(content)
    }
}

/// A message's content as the handler gets it: in memory, or in a spool file.
pub enum Content {
    Memory(Vec<u8>),
    Spooled(Spooled),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Memory(bytes) => write!(f, "Content::Memory({} octets)", bytes.len()),
            Content::Spooled(spooled) => write!(f, "Content::Spooled({} octets)", spooled.len),
        }
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Content {
        Content::Memory(bytes)
    }
}

impl Content {
    /// Octets of content.
    pub fn len(&self) -> usize {
        match self {
            Content::Memory(bytes) => bytes.len(),
            Content::Spooled(spooled) => spooled.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_spooled(&self) -> bool {
        matches!(self, Content::Spooled(_))
    }

    /// The content in memory: a spooled message is read back off the async threads.
    pub async fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Content::Memory(bytes) => Ok(bytes),
            Content::Spooled(spooled) => tokio::task::spawn_blocking(move || spooled.read())
                .await
                .map_err(io::Error::other)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(threshold: usize) -> (tempfile::TempDir, Arc<Spool>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool"), threshold).unwrap();
        (dir, spool)
    }

    #[test]
    fn content_comes_back_as_written_and_is_sealed_on_disk() {
        let (_dir, spool) = spool(16);
        let mut writer = spool.create().unwrap();
        let chunk = b"Subject: secret plans\r\n\r\n".repeat(10_000);
        writer.write(&chunk).unwrap();
        writer.write(b"tail\r\n").unwrap();
        assert_eq!(writer.len(), chunk.len() + 6);
        let mut spooled = writer.finish().unwrap();
        let mut on_disk = Vec::new();
        spooled.file.seek(SeekFrom::Start(0)).unwrap();
        spooled.file.read_to_end(&mut on_disk).unwrap();
        assert!(on_disk.len() > chunk.len());
        assert!(
            !on_disk.windows(12).any(|w| w == b"secret plans"),
            "the spool file holds plaintext"
        );
        let back = spooled.read().unwrap();
        assert_eq!(&back[..chunk.len()], &chunk[..]);
        assert!(back.ends_with(b"tail\r\n"));
    }

    #[test]
    fn files_are_never_visible_in_the_directory() {
        let (_dir, spool) = spool(16);
        let mut writer = spool.create().unwrap();
        writer.write(b"x").unwrap();
        assert_eq!(std::fs::read_dir(spool.dir()).unwrap().count(), 0);
        drop(writer.finish().unwrap());
    }

    #[test]
    fn open_deletes_what_an_earlier_process_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("left-over"), b"sealed by a key that is gone").unwrap();
        let spool = Spool::open(&path, 16).unwrap();
        assert_eq!(std::fs::read_dir(spool.dir()).unwrap().count(), 0);
    }

    #[test]
    fn another_process_key_cannot_read_a_file() {
        let (_dir, spool) = spool(16);
        let (_other_dir, other) = self::spool(16);
        let mut writer = spool.create().unwrap();
        writer.write(b"hello").unwrap();
        let spooled = writer.finish().unwrap();
        let stolen = Spooled {
            file: spooled.file.try_clone().unwrap(),
            len: 5,
            spool: other,
        };
        assert_eq!(
            stolen.read().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
