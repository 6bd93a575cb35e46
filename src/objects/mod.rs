//! Attachment and message stores (contract §3): named places, managed at runtime (API,
//! dashboard, CLI) and kept in the SQLite store (`store::object_stores`, the secret key
//! sealed), where an address's attachments (`attachment_store`) and whole messages
//! (`message_store`) are put before the POST, which then carries their URLs.
//!
//! Two kinds: an S3-compatible bucket (`s3`, through object_store: the only importer of
//! it) and the data directory (`local`: files sealed with the keyring, served by Postern
//! over expiring signed URLs). A store is saved only after a test object was written to it.
//! The model is write-only: Postern puts objects and hands out their URLs; it never lists,
//! reads back (but for serving the local store's files) or deletes what is in a bucket.

pub mod local;
pub mod naming;
pub mod s3;
pub mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::clock::Clock;
use crate::store::{ObjectStoreRow, Store, StoreError};
use local::{FileError, FileRef, Local};
use naming::ObjectName;
use s3::S3;
pub use settings::{StoreInfo, StoreSettings, StoreSpec};

/// The instance secret that signs the local stores' URLs.
const URL_KEY: &str = "files_url_key";
/// The test object a save writes (S3: below the prefix; local: deleted again).
pub const TEST_OBJECT: &str = "postern-write-test.txt";
const TEST_CONTENT: &[u8] = b"Postern checks that it can write to this store.\n";

/// Why a store could not be saved, used or removed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Invalid(String),
    #[error("no store is named {0:?} (postern store list)")]
    NoSuchStore(String),
    #[error("a store named {0:?} exists already; remove it first to change it")]
    Duplicate(String),
    #[error("store {name:?} is used by {}; change those addresses first", .addresses.join(", "))]
    InUse {
        name: String,
        addresses: Vec<String>,
    },
    /// The store refused or could not be reached: its own words.
    #[error("store {name:?}: {reason}")]
    Write { name: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A backend ready to take objects, with the row it was made from (to see a change).
enum Backend {
    S3(S3),
    Local(Local),
}

/// The stores and what puts objects into them: cheap to clone.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// `<data_dir>/files`.
    files: PathBuf,
    /// Where this instance's web listener is reached from outside (`config.tracking_url`):
    /// the local stores' URLs start with it.
    public_url: String,
    clock: Clock,
    /// Clients by store name, with the row each was made from: a changed row makes a new one.
    clients: Mutex<HashMap<String, (ObjectStoreRow, Arc<Backend>)>>,
    url_key: OnceCell<Vec<u8>>,
}

/// An object a message makes.
pub struct Put<'a> {
    pub name: ObjectName,
    pub content_type: &'a str,
    pub bytes: Vec<u8>,
}

impl Objects {
    pub fn new(
        store: Store,
        data_dir: &std::path::Path,
        public_url: &str,
        clock: Clock,
    ) -> Objects {
        Objects {
            inner: Arc::new(Inner {
                store,
                files: data_dir.join(local::FOLDER),
                public_url: public_url.trim_end_matches('/').to_string(),
                clock,
                clients: Mutex::default(),
                url_key: OnceCell::new(),
            }),
        }
    }

    /// Checks a store, writes the test object to it and keeps it; the store's own error
    /// when the write fails (then nothing is kept).
    pub async fn add(&self, spec: &StoreSpec) -> Result<StoreInfo, ObjectError> {
        let settings = spec.check().map_err(ObjectError::Invalid)?;
        if self
            .inner
            .store
            .object_store(&settings.name)
            .await?
            .is_some()
        {
            return Err(ObjectError::Duplicate(settings.name));
        }
        let row = settings.row(self.inner.clock.unix());
        let backend = self.backend_of(&row)?;
        self.write_test(&settings.name, &backend).await?;
        if !self.inner.store.insert_object_store(row.clone()).await? {
            return Err(ObjectError::Duplicate(settings.name));
        }
        Ok(StoreInfo::of(&row))
    }

    /// Every store, without secrets.
    pub async fn list(&self) -> Result<Vec<StoreInfo>, ObjectError> {
        let rows = self.inner.store.object_stores().await?;
        Ok(rows.iter().map(StoreInfo::of).collect())
    }

    /// Writes the test object to a kept store again: `Ok` with where it went.
    pub async fn test(&self, name: &str) -> Result<String, ObjectError> {
        let (_, backend) = self.client(name).await?;
        self.write_test(name, &backend).await
    }

    /// Removes a store, unless `used_by` (the addresses that name it: the caller knows the
    /// config's, this adds the managed ones) is not empty; `false` when there is none.
    pub async fn remove(&self, name: &str, mut used_by: Vec<String>) -> Result<bool, ObjectError> {
        used_by.extend(self.inner.store.addresses_using_store(name).await?);
        used_by.sort();
        used_by.dedup();
        if !used_by.is_empty() {
            return Err(ObjectError::InUse {
                name: name.to_string(),
                addresses: used_by,
            });
        }
        let removed = self.inner.store.remove_object_store(name).await?;
        self.clients().remove(name);
        Ok(removed)
    }

    /// Puts one object into the store `name`: its URL (the local store's is signed and
    /// expires).
    pub async fn put(&self, name: &str, object: Put<'_>) -> Result<String, ObjectError> {
        let (_, backend) = self.client(name).await?;
        let failed = |reason: String| ObjectError::Write {
            name: name.to_string(),
            reason,
        };
        match backend.as_ref() {
            Backend::S3(s3) => s3
                .put(&object.name.key(), object.content_type, object.bytes)
                .await
                .map_err(failed),
            Backend::Local(local) => {
                let now = self.inner.clock.unix();
                let (file, expires) = local
                    .put(&object.name, object.bytes, now)
                    .await
                    .map_err(failed)?;
                let key = self.url_key().await?;
                let signature = local::sign(&key, &file, expires);
                Ok(format!(
                    "{}/files/{}/{}?expires={expires}&signature={signature}",
                    self.inner.public_url, file.id, file.name
                ))
            }
        }
    }

    /// A local store's file, if the link is signed and in time (`GET /files/…`).
    pub async fn file(
        &self,
        id: &str,
        name: &str,
        expires: i64,
        signature: &str,
    ) -> Result<Vec<u8>, FileError> {
        let file = FileRef::parse(id, name).ok_or(FileError::Forged)?;
        let key = self
            .url_key()
            .await
            .map_err(|e| FileError::Unreadable(e.to_string()))?;
        if !local::verify(&key, &file, expires, signature) {
            return Err(FileError::Forged);
        }
        if expires < self.inner.clock.unix() {
            return Err(FileError::Expired);
        }
        local::read(&self.inner.files, self.inner.store.keyring(), &file).await
    }

    /// Deletes the local stores' files whose links have expired; how many went.
    pub async fn sweep_files(&self) -> usize {
        let (files, now) = (self.inner.files.clone(), self.inner.clock.unix());
        tokio::task::spawn_blocking(move || local::sweep(&files, now))
            .await
            .unwrap_or(0)
    }

    async fn url_key(&self) -> Result<Vec<u8>, StoreError> {
        self.inner
            .url_key
            .get_or_try_init(|| async {
                let fresh = crate::secret::random_bytes::<32>().to_vec();
                self.inner.store.instance_secret(URL_KEY, fresh).await
            })
            .await
            .cloned()
    }

    fn clients(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (ObjectStoreRow, Arc<Backend>)>> {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The client of a kept store: the cached one while its row is unchanged (a change by
    /// another process, the CLI, shows at the next use).
    async fn client(&self, name: &str) -> Result<(ObjectStoreRow, Arc<Backend>), ObjectError> {
        let row = (self.inner.store.object_store(name).await?)
            .ok_or_else(|| ObjectError::NoSuchStore(name.to_string()))?;
        if let Some((cached, backend)) = self.clients().get(name)
            && *cached == row
        {
            return Ok((row, backend.clone()));
        }
        let backend = Arc::new(self.backend_of(&row)?);
        self.clients()
            .insert(name.to_string(), (row.clone(), backend.clone()));
        Ok((row, backend))
    }

    fn backend_of(&self, row: &ObjectStoreRow) -> Result<Backend, ObjectError> {
        let settings = StoreSettings::of_row(row).map_err(ObjectError::Invalid)?;
        match settings.kind {
            settings::Kind::S3(s3) => {
                S3::new(&s3)
                    .map(Backend::S3)
                    .map_err(|reason| ObjectError::Write {
                        name: row.name.clone(),
                        reason,
                    })
            }
            settings::Kind::Local { expiry_secs } => Ok(Backend::Local(Local {
                files: self.inner.files.clone(),
                keyring: self.inner.store.keyring(),
                expiry_secs,
            })),
        }
    }

    /// Writes the test object; where it went.
    async fn write_test(&self, name: &str, backend: &Backend) -> Result<String, ObjectError> {
        let failed = |reason: String| ObjectError::Write {
            name: name.to_string(),
            reason,
        };
        let test = ObjectName {
            folder: None,
            file: TEST_OBJECT.to_string(),
        };
        match backend {
            Backend::S3(s3) => s3
                .put(&test.key(), "text/plain", TEST_CONTENT.to_vec())
                .await
                .map_err(failed),
            Backend::Local(local) => {
                let (file, _) = local
                    .put(&test, TEST_CONTENT.to_vec(), self.inner.clock.unix())
                    .await
                    .map_err(failed)?;
                let folder = local.files.join(&file.id);
                let _ = tokio::fs::remove_dir_all(&folder).await;
                Ok(local.files.display().to_string())
            }
        }
    }
}
