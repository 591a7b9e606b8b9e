//! Blob storage for the finished files, through `object_store`: a local
//! folder by default, S3, Azure Blob or Google Cloud Storage behind the
//! cargo features `s3`, `azure` and `gcs`.
//!
//! Keys are container-relative (`progress-exhaust/<request>/<file>.zip`),
//! as Sunbird's job records them. Every key is parsed by `object_store`,
//! which refuses `..`, `.` and empty segments, so no key can leave the
//! store. Uploads are atomic: a file up to [`SINGLE_PUT_MAX`] goes up in one
//! request (a single PUT is all-or-nothing on every cloud, and it is the one
//! upload every emulator implements); a larger one as a multipart upload,
//! which the cloud commits only at the end. The local store stages the file
//! and renames it when complete. A failed upload is aborted and leaves
//! nothing under the key.
//!
//! The local store's files are its owner's only (0600, folders it creates
//! 0700: reports hold learners' names and contacts), and a file is on disk
//! (fsynced, with its folder) before its upload returns, so a request row
//! never records a file that a crash could lose. Its uploads are written by
//! this module rather than `object_store` (see `write_private`); staging
//! files are named so that a listing never shows them, and those a dead
//! worker left are removed when the store is opened ([`STALE_STAGING`]).
//!
//! Errors name the store and the cause, never a secret: every configured
//! credential is masked out of the stores' messages.

use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage configuration cannot be used.
    #[error("storage configuration: {0}")]
    Config(String),
    /// A key that is not a plain relative path.
    #[error("storage key {key:?} is not a plain relative path: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The store failed (down, refused, bad credentials, missing bucket,
    /// out of space): retryable, since an operator can mend each of these
    /// without the request being at fault.
    #[error("storage ({store}) {action} failed: {detail}")]
    Unavailable {
        /// Which store (as [`Storage::describe`] says it).
        store: String,
        /// What was being done.
        action: String,
        /// The store's message, credentials masked.
        detail: String,
    },
}

/// `[storage]`: where report files are stored.
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// A folder, or a cloud URL (`$EXHAUST_STORAGE_URL`; default `exhaust-files`).
    pub url: String,
    /// Extra `object_store` options for cloud stores (region, endpoint...).
    pub options: std::collections::BTreeMap<String, String>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: "exhaust-files".into(),
            options: std::collections::BTreeMap::new(),
        }
    }
}

// Written by hand: options hold credentials (`aws_secret_access_key`,
// `azure_storage_sas_token`, ...). Every option's value is hidden, not only
// those whose names look secret: which options are set is what a reader of
// debug output needs, and no list of secret names can be complete.
impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: std::collections::BTreeMap<&str, &str> = self
            .options
            .keys()
            .map(|k| (k.as_str(), exhaust_core::redact::REDACTED))
            .collect();
        f.debug_struct("StorageSettings")
            .field("url", &exhaust_core::redact::redact_url(&self.url))
            .field("options", &options)
            .finish()
    }
}

impl StorageSettings {
    /// Opens the storage these settings name ([`Storage::from_settings`]).
    pub fn open(&self) -> Result<Storage, StorageError> {
        Storage::from_settings(&self.url, &self.options)
    }
}

/// The cloud stores this build can open (cargo features `s3`, `azure`,
/// `gcs`); a local folder always works.
pub fn cloud_stores() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "s3") {
        out.push("s3");
    }
    if cfg!(feature = "azure") {
        out.push("azure");
    }
    if cfg!(feature = "gcs") {
        out.push("gcs");
    }
    out
}

/// Where files are stored.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    signer: Option<Signing>,
    describe: String,
    local_root: Option<std::path::PathBuf>,
    /// The local store, whose uploads this module writes itself.
    local: Option<Arc<LocalFileSystem>>,
    /// Credential values to mask out of error messages.
    secrets: Arc<Vec<String>>,
}

impl std::fmt::Debug for Storage {
    // Never the secrets, nor the store's own Debug (it may hold credentials).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("store", &self.describe)
            .finish()
    }
}

/// One stored object, as a listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key, container-relative.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What signs URLs: the cloud store itself (only cloud builds can sign).
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
type Signing = Arc<dyn Signer>;
#[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs")))]
type Signing = std::convert::Infallible;

/// A stored file being read: its size, and its bytes as they arrive.
pub struct StoredFile {
    /// The size in bytes.
    pub size: u64,
    /// The bytes, chunk by chunk.
    pub chunks: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>>,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile")
            .field("size", &self.size)
            .finish()
    }
}

/// Upload part size: large enough for S3's 5 MiB minimum part size.
const CHUNK: usize = 8 << 20;

/// The largest file uploaded in one request; larger files go up in parts of
/// [`CHUNK`] bytes, so memory stays bounded by one part either way.
pub const SINGLE_PUT_MAX: u64 = CHUNK as u64;

/// How old a staging file of the local store must be to count as left by a
/// dead worker: an upload of a report takes seconds, and other workers on
/// the folder may be writing fresh ones while a store is opened.
pub const STALE_STAGING: Duration = Duration::from_secs(3600);

impl Storage {
    /// A local folder (created when missing, with mode 0700). Staging files
    /// older than [`STALE_STAGING`], left by a worker that died during an
    /// upload, are removed.
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StorageError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let root = dir
            .canonicalize()
            .map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        let store = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| StorageError::Config(e.to_string()))?
                // Removes the folders a deleted file leaves empty.
                .with_automatic_cleanup(true),
        );
        Ok(Self {
            store: store.clone(),
            signer: None,
            describe: format!("local folder {}", root.display()),
            local_root: Some(root),
            local: Some(store),
            secrets: Arc::default(),
        })
    }

    fn unavailable(&self, action: impl Into<String>, e: impl std::fmt::Display) -> StorageError {
        let mut detail = e.to_string();
        for secret in self.secrets.iter() {
            detail = detail.replace(secret.as_str(), "***");
        }
        StorageError::Unavailable {
            store: self.describe.clone(),
            action: action.into(),
            detail,
        }
    }

    /// A store by URL: a plain path or `file:///abs/path` for a local folder;
    /// with the matching cargo feature, `s3://bucket[/prefix]`,
    /// `az://container[/prefix]` or `gs://bucket[/prefix]`, credentials and
    /// regions coming from the providers' usual environment variables
    /// (`AWS_*`, `AZURE_*`, `GOOGLE_*`) and `options`.
    pub fn from_settings(
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, StorageError> {
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::from_url(url, &options)
    }

    /// The storage at `url` (see [`Storage::from_settings`]) with these
    /// `object_store` options.
    pub fn from_url(url: &str, options: &[(String, String)]) -> Result<Self, StorageError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(path);
        }
        if !url.contains("://") {
            return Self::local(url);
        }
        let scheme = url.split("://").next().unwrap_or_default();
        cloud(scheme, url, options)
    }

    /// What the store is, for logs (never credentials).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Removes the staging files of a local store that were last changed
    /// more than an hour before `now`: a worker killed during an upload
    /// leaves its staging file behind (hidden from listings). Fresh ones may
    /// be another worker's upload under way and stay. Nothing here fails:
    /// what cannot be read or removed is logged and left. The time is the
    /// caller's (the composition root's clock); a cloud store has nothing
    /// to remove (its uploads are all-or-nothing).
    pub fn remove_stale_staging(&self, now: SystemTime) {
        if let Some(root) = &self.local_root {
            remove_stale_staging(root, now);
        }
    }

    /// The folder of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    fn key(key: &str) -> Result<StorePath, StorageError> {
        let bad = |reason: String| StorageError::BadKey {
            key: key.to_string(),
            reason,
        };
        if key.is_empty() || key.starts_with('/') || key.contains('\\') {
            return Err(bad("empty, absolute or with a backslash".into()));
        }
        StorePath::parse(key).map_err(|e| bad(e.to_string()))
    }

    /// Uploads the local file at `local` under `key`; returns its size.
    /// Nothing is left under `key` when it fails.
    pub async fn put_file(&self, key: &str, local: &Path) -> Result<u64, StorageError> {
        Self::key(key)?;
        let file = std::fs::File::open(local)
            .map_err(|e| self.unavailable(format!("reading {}", local.display()), e))?;
        self.put_reader(key, file).await
    }

    /// Uploads what `reader` gives under `key`; returns its size. Nothing is
    /// left under `key` when the reader or the store fails part-way.
    pub async fn put_reader(&self, key: &str, mut reader: impl Read) -> Result<u64, StorageError> {
        let path = Self::key(key)?;
        if let Some(local) = &self.local {
            return self.put_local(local, key, &path, reader);
        }
        let read_err =
            |e: std::io::Error| self.unavailable(format!("reading the file for {key}"), e);
        // The first part decides: a file that fits goes up in one request.
        let mut first = Vec::with_capacity(1 << 20);
        (&mut reader)
            .take(SINGLE_PUT_MAX + 1)
            .read_to_end(&mut first)
            .map_err(read_err)?;
        if first.len() as u64 <= SINGLE_PUT_MAX {
            let size = first.len() as u64;
            self.store
                .put(&path, first.into())
                .await
                .map_err(|e| self.unavailable(format!("uploading {key}"), e))?;
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| self.unavailable(format!("starting the upload of {key}"), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut size = first.len() as u64;
        writer.write(&first);
        drop(first);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(read_err(e));
                }
            };
            if n == 0 {
                break;
            }
            size += n as u64;
            writer.write(&buf[..n]);
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(self.unavailable(format!("uploading {key}"), e));
            }
        }
        writer
            .finish()
            .await
            .map_err(|e| self.unavailable(format!("completing the upload of {key}"), e))?;
        Ok(size)
    }

    /// A local store's upload ([`write_private`]). It runs on the caller's
    /// thread, as the reads of `reader` for a cloud upload do.
    fn put_local(
        &self,
        local: &LocalFileSystem,
        key: &str,
        path: &StorePath,
        reader: impl Read,
    ) -> Result<u64, StorageError> {
        // object_store's own check: it refuses a file name that a listing
        // would take for a staging file (`<name>#<digits>`).
        let dest = local
            .path_to_filesystem(path)
            .map_err(|e| StorageError::BadKey {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        let name = path.filename().ok_or_else(|| StorageError::BadKey {
            key: key.to_string(),
            reason: "no file name".into(),
        })?;
        write_private(&dest, name, reader)
            .map_err(|e| self.unavailable(format!("uploading {key}"), e))
    }

    /// The bytes stored under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = Self::key(key)?;
        match self.store.get(&path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| self.unavailable(format!("reading {key}"), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.unavailable(format!("reading {key}"), e)),
        }
    }

    /// Opens the file stored under `key` for streaming, or `None` when there
    /// is none: a large report is served without being held in memory.
    pub async fn open(&self, key: &str) -> Result<Option<StoredFile>, StorageError> {
        use futures_util::StreamExt;
        let path = Self::key(key)?;
        match self.store.get(&path).await {
            Ok(r) => {
                let size = r.meta.size;
                let what = format!("reading {key}");
                let this = self.clone();
                let chunks = r
                    .into_stream()
                    .map(move |c| c.map_err(|e| this.unavailable(what.clone(), e)))
                    .boxed();
                Ok(Some(StoredFile { size, chunks }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.unavailable(format!("reading {key}"), e)),
        }
    }

    /// Whether something is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let path = Self::key(key)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.unavailable(format!("looking up {key}"), e)),
        }
    }

    /// A signed URL that downloads `key` until it expires, for stores that
    /// sign (S3, Azure, GCS); `None` for the local store, whose files the
    /// server hands out through its own signed download route.
    pub async fn signed_url(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<String>, StorageError> {
        let path = Self::key(key)?;
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        #[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
        {
            signer
                .signed_url(object_store::signer::Method::GET, &path, expires_in)
                .await
                .map(|u| Some(u.to_string()))
                .map_err(|e| self.unavailable(format!("signing a URL for {key}"), e))
        }
        #[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs")))]
        {
            let _ = (path, expires_in);
            match *signer {}
        }
    }

    /// Whether the store answers (for health checks).
    pub async fn ping(&self) -> Result<(), StorageError> {
        use futures_util::StreamExt;
        let mut list = self.store.list(None);
        match list.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.unavailable("listing", e)),
        }
    }

    /// Every object whose key starts with the folder `prefix` (all objects
    /// when `None`), sorted by key.
    pub async fn list(&self, prefix: Option<&str>) -> Result<Vec<StoredObject>, StorageError> {
        use futures_util::TryStreamExt;
        let prefix = prefix.map(Self::key).transpose()?;
        let mut objects: Vec<StoredObject> = self
            .store
            .list(prefix.as_ref())
            .map_ok(|m| StoredObject {
                key: m.location.to_string(),
                size: m.size,
            })
            .try_collect()
            .await
            .map_err(|e| self.unavailable("listing", e))?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Removes what is stored under `key`; removing nothing is no error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = Self::key(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.unavailable(format!("deleting {key}"), e)),
        }
    }
}

/// Writes what `reader` gives to `dest` (whose key's file name is `name`)
/// for the local store; returns its size.
///
/// `object_store`'s `LocalFileSystem` creates its staging file and folders
/// with the process's umask (0644 and 0755 as a rule) and has no option for
/// the mode, and chmod after its rename would leave a window in which a
/// report is readable by every local user. So the local store writes its
/// files itself, the way `LocalFileSystem` does with `with_fsync(true)` but
/// private from the start: the staging file is created with mode 0600 (its
/// name from [`staging_name`], beside `dest`), written, fsynced, renamed to
/// `dest`, and `dest`'s folder fsynced; missing folders are created 0700
/// and each new folder's parent fsynced. A failure removes the staging file
/// (and `dest`, when the rename was done but not made durable).
fn write_private(dest: &Path, name: &str, mut reader: impl Read) -> std::io::Result<u64> {
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("a stored file needs a folder"))?;
    create_private_dirs(dir)?;
    let (mut file, staging) = create_staging(dir, name)?;
    let mut renamed = false;
    let written = (|| {
        let size = std::io::copy(&mut reader, &mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&staging, dest)?;
        renamed = true;
        sync_dir(dir)?;
        Ok(size)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
        if renamed {
            let _ = std::fs::remove_file(dest);
        }
    }
    written
}

/// The staging file's name for a stored file named `name`: `<name>#<n>`,
/// the form `object_store`'s listing hides, with any `#` in `name` replaced
/// by `_`, since the listing hides a name only when everything after its
/// first `#` is digits (a batch id may hold a `#`).
fn staging_name(name: &str, n: u64) -> String {
    format!("{}#{n}", name.replace('#', "_"))
}

/// Whether a file name is a staging file's (ends in `#<digits>`): never a
/// stored file's, as `object_store` refuses such keys.
fn is_staging_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Creates a new staging file for `name` in `dir`, mode 0600, trying the
/// next number when one is taken (another worker's upload of the same key).
fn create_staging(dir: &Path, name: &str) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    let mut n = 1;
    loop {
        let path = dir.join(staging_name(name, n));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Creates `dir` and its missing parents with mode 0700, and fsyncs the
/// parent of each folder created, so the new entries survive a crash.
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for created in missing {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Flushes a folder's entries to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the staging files under `root` last changed more than
/// [`STALE_STAGING`] before `now` (see [`Storage::remove_stale_staging`]).
fn remove_stale_staging(root: &Path, now: SystemTime) {
    let mut folders = vec![root.to_path_buf()];
    let mut removed = 0_usize;
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(folder = %folder.display(), error = %e, "cannot list a storage folder");
                continue;
            }
        };
        for entry in entries.flatten() {
            // The entry's own type: a symbolic link is never followed.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(entry.path());
                continue;
            }
            if !kind.is_file() || !is_staging_name(&entry.file_name()) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|changed| now.duration_since(changed).ok())
                .is_some_and(|age| age > STALE_STAGING);
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!(
                        file = %entry.path().display(),
                        error = %e,
                        "cannot remove a stale staging file"
                    ),
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed stale staging files of dead uploads");
    }
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn prefixed<T: ObjectStore + Signer + Clone>(
    store: T,
    prefix: StorePath,
    describe: String,
    secrets: Vec<String>,
) -> Result<Storage, StorageError> {
    if !prefix.as_ref().is_empty() {
        return Err(StorageError::Config(format!(
            "{describe}: a key prefix in the URL is not supported; use the bucket or container alone"
        )));
    }
    Ok(Storage {
        store: Arc::new(store.clone()),
        signer: Some(Arc::new(store)),
        describe,
        local_root: None,
        local: None,
        secrets: Arc::new(secrets),
    })
}

/// Whether an option or environment variable holds a credential, by its
/// name: its value is masked out of every error message.
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "key",
        "token",
        "sas",
        "password",
        "credential",
        "signature",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The credential values in `options` and in the providers' environment
/// variables (`prefix` is `AWS_`, `AZURE_` or `GOOGLE_`), longest first so
/// that no value is half-masked by a shorter one inside it.
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn secret_values(options: &[(String, String)], prefix: &str) -> Vec<String> {
    let mut values: Vec<String> = options
        .iter()
        .filter(|(k, _)| is_secret_name(k))
        .map(|(_, v)| v.clone())
        .chain(
            std::env::vars()
                .filter(|(k, _)| k.starts_with(prefix) && is_secret_name(k))
                .map(|(_, v)| v),
        )
        // Very short values (`true`, a one-letter placeholder) would mask
        // ordinary words of the message and protect nothing.
        .filter(|v| v.len() >= 4)
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

#[allow(unused_variables)]
fn cloud(scheme: &str, url: &str, options: &[(String, String)]) -> Result<Storage, StorageError> {
    let parsed = || {
        object_store::path::Path::parse(
            url.split("://")
                .nth(1)
                .and_then(|rest| rest.split_once('/'))
                .map(|(_, p)| p)
                .unwrap_or(""),
        )
        .map_err(|e| StorageError::Config(e.to_string()))
    };
    // Where the store is, for messages: the URL, and the endpoint when one is
    // configured (an emulator, OCI's S3 endpoint, a private cloud).
    #[allow(unused)]
    let describe = |provider: &str| {
        let endpoint = options
            .iter()
            .find(|(k, _)| {
                let k = k.to_ascii_lowercase();
                k.ends_with("endpoint") || k.ends_with("base_url") || k.ends_with("use_emulator")
            })
            .map(|(k, v)| {
                if k.ends_with("use_emulator") {
                    " (emulator)".to_string()
                } else {
                    format!(" at {v}")
                }
            })
            .unwrap_or_default();
        format!("{provider} {url}{endpoint}")
    };
    // The three builders share no trait: one expansion per provider. A store
    // that does not answer fails within about half a minute instead of
    // object_store's three minutes of retries, so that a worker hands the
    // request back and goes on; the options can still lengthen the timeouts.
    #[allow(unused_macros)]
    macro_rules! configured {
        ($builder:expr) => {{
            let retry = object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            };
            let mut b = $builder.with_url(url).with_retry(retry);
            let defaults = [("connect_timeout", "5s"), ("timeout", "120s")];
            for (k, v) in defaults
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(options.iter().cloned())
            {
                let key = k
                    .parse()
                    .map_err(|e| StorageError::Config(format!("option {k}: {e}")))?;
                b = b.with_config(key, v);
            }
            b.build().map_err(|e| StorageError::Config(e.to_string()))?
        }};
    }
    match scheme {
        #[cfg(feature = "s3")]
        "s3" | "s3a" => prefixed(
            configured!(object_store::aws::AmazonS3Builder::from_env()),
            parsed()?,
            describe("S3"),
            secret_values(options, "AWS_"),
        ),
        #[cfg(feature = "azure")]
        "az" | "azure" | "abfs" | "abfss" => prefixed(
            configured!(object_store::azure::MicrosoftAzureBuilder::from_env()),
            parsed()?,
            describe("Azure"),
            secret_values(options, "AZURE_"),
        ),
        #[cfg(feature = "gcs")]
        "gs" => prefixed(
            configured!(object_store::gcp::GoogleCloudStorageBuilder::from_env()),
            parsed()?,
            describe("GCS"),
            secret_values(options, "GOOGLE_"),
        ),
        other => Err(StorageError::Config(format!(
            "storage URL scheme {other:?} is not supported by this build: use a local path, \
             or build with the cargo feature s3, azure or gcs"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_go_in_under_their_key_and_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path().join("store")).expect("store");
        let src = dir.path().join("a.zip");
        std::fs::write(&src, b"zip bytes").expect("write");
        let key = "progress-exhaust/R1/b1_progress_20240115.zip";
        assert_eq!(storage.put_file(key, &src).await.expect("put"), 9);
        assert_eq!(
            std::fs::read(dir.path().join("store").join(key)).expect("stored"),
            b"zip bytes"
        );
        assert_eq!(
            storage.get(key).await.expect("get").as_deref(),
            Some(&b"zip bytes"[..])
        );
        assert!(storage.exists(key).await.expect("exists"));
        let opened = storage.open(key).await.expect("open").expect("stored");
        assert_eq!(opened.size, 9);
        use futures_util::TryStreamExt;
        let chunks: Vec<bytes::Bytes> = opened.chunks.try_collect().await.expect("read");
        assert_eq!(chunks.concat(), b"zip bytes");
        assert!(
            storage
                .open("progress-exhaust/none.zip")
                .await
                .expect("open")
                .is_none()
        );
        assert_eq!(
            storage.get("progress-exhaust/none.zip").await.expect("get"),
            None
        );
        assert_eq!(
            storage
                .signed_url(key, Duration::from_secs(60))
                .await
                .expect("sign"),
            None
        );
        storage.ping().await.expect("ping");
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path().join("store")).expect("store");
        let src = dir.path().join("a.zip");
        std::fs::write(&src, b"x").expect("write");
        for key in [
            "../escape.zip",
            "a/../../escape.zip",
            "/etc/passwd",
            "",
            "a//b",
            "a\\..\\b",
        ] {
            let err = storage.put_file(key, &src).await.expect_err(key);
            assert!(matches!(err, StorageError::BadKey { .. }), "{key}: {err}");
        }
        assert!(!dir.path().join("escape.zip").exists());
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_under_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store");
        let storage = Storage::local(&root).expect("store");
        // A file where the request's folder should be: the upload cannot
        // create its folder (this holds even for root, unlike permissions).
        std::fs::write(root.join("progress-exhaust"), b"in the way").expect("block");
        let src = dir.path().join("a.zip");
        std::fs::write(&src, b"x").expect("write");
        let err = storage
            .put_file("progress-exhaust/R1/b1.zip", &src)
            .await
            .expect_err("blocked");
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        assert_eq!(
            std::fs::read(root.join("progress-exhaust")).expect("untouched"),
            b"in the way"
        );
    }

    /// The permission bits of `path`, in octal as `ls` shows them.
    fn mode_of(path: &Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        format!("{:04o}", mode & 0o7777)
    }

    #[tokio::test]
    async fn stored_files_and_created_folders_are_the_owners_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store").join("reports");
        let storage = Storage::local(&root).expect("store");
        assert_eq!(
            mode_of(&dir.path().join("store")),
            "0700",
            "a created parent"
        );
        assert_eq!(mode_of(&root), "0700", "the created root");
        let src = dir.path().join("a.zip");
        std::fs::write(&src, b"zip bytes").expect("write");
        let key = "progress-exhaust/R1/b1_progress_20240115.zip";
        assert_eq!(storage.put_file(key, &src).await.expect("put"), 9);
        assert_eq!(std::fs::read(root.join(key)).expect("stored"), b"zip bytes");
        assert_eq!(mode_of(&root.join(key)), "0600", "a stored file");
        assert_eq!(mode_of(&root.join("progress-exhaust")), "0700");
        assert_eq!(mode_of(&root.join("progress-exhaust/R1")), "0700");

        // A file above the single-request size takes the same way, whole.
        let big: Vec<u8> = (0..SINGLE_PUT_MAX + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        let big_key = "progress-exhaust/R2/big.zip";
        let size = storage.put_reader(big_key, &big[..]).await.expect("put");
        assert_eq!(size, big.len() as u64);
        assert_eq!(std::fs::read(root.join(big_key)).expect("stored"), big);
        assert_eq!(mode_of(&root.join(big_key)), "0600");
        assert_eq!(mode_of(&root.join("progress-exhaust/R2")), "0700");

        // Overwriting keeps the mode; no staging file is left beside it.
        std::fs::write(&src, b"again").expect("write");
        storage.put_file(key, &src).await.expect("overwrite");
        assert_eq!(
            storage.get(key).await.expect("get").as_deref(),
            Some(&b"again"[..])
        );
        assert_eq!(mode_of(&root.join(key)), "0600");
        let mut names: Vec<String> = std::fs::read_dir(root.join("progress-exhaust/R1"))
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["b1_progress_20240115.zip"]);
    }

    #[tokio::test]
    async fn staging_names_are_refused_as_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path()).expect("store");
        let err = storage
            .put_reader("progress-exhaust/R1/a.zip#12", &b"x"[..])
            .await
            .expect_err("a staging name");
        assert!(matches!(err, StorageError::BadKey { .. }), "{err}");
    }

    #[test]
    fn staging_files_are_hidden_whatever_the_key() {
        // A batch id may hold a `#`; the listing hides a name only when all
        // after its first `#` is digits.
        assert_eq!(
            staging_name("b#1_progress_x.zip", 3),
            "b_1_progress_x.zip#3"
        );
        assert_eq!(staging_name("b_progress_x.zip", 12), "b_progress_x.zip#12");
        for name in ["b_1_progress_x.zip#3", "a.zip#12", "#1"] {
            assert!(is_staging_name(std::ffi::OsStr::new(name)), "{name}");
        }
        for name in [
            "a.zip",
            "a.zip#",
            "a#1.zip",
            "a.zip#1x",
            "b#1_progress_x.zip",
        ] {
            assert!(!is_staging_name(std::ffi::OsStr::new(name)), "{name}");
        }
    }

    #[tokio::test]
    async fn stale_staging_files_go_at_open_and_fresh_ones_stay_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("progress-exhaust/R1");
        std::fs::create_dir_all(&folder).expect("folder");
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        let plant = |name: &str, changed: Option<SystemTime>| {
            let path = folder.join(name);
            let file = std::fs::File::create(&path).expect("plant");
            std::io::Write::write_all(&mut &file, b"partial").expect("write");
            if let Some(t) = changed {
                file.set_modified(t).expect("mtime");
            }
            path
        };
        let stale = plant("a_progress_1.zip#1", Some(two_hours_ago));
        let fresh = plant("b_progress_1.zip#2", None);
        // An old report is a report, whatever its age.
        let old_report = plant("c_progress_1.zip", Some(two_hours_ago));

        let storage = Storage::local(dir.path()).expect("store");
        storage.remove_stale_staging(SystemTime::now());
        assert!(!stale.exists(), "a stale staging file is removed");
        assert!(fresh.exists(), "a fresh one may be another worker's");
        assert!(old_report.exists());
        let listed = storage.list(None).await.expect("list");
        assert_eq!(
            listed,
            [StoredObject {
                key: "progress-exhaust/R1/c_progress_1.zip".into(),
                size: 7,
            }]
        );
    }

    #[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
    #[test]
    fn credentials_are_known_by_name_and_masked_longest_first() {
        for name in [
            "aws_secret_access_key",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "azure_storage_sas_token",
            "google_service_account_key",
            "aws_session_token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "aws_region",
            "aws_endpoint",
            "allow_http",
            "azure_storage_account_name",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        let options = [
            ("aws_secret_access_key".to_string(), "abcd".to_string()),
            ("aws_session_token".to_string(), "xxabcdxx".to_string()),
            ("aws_region".to_string(), "ap-mumbai-1".to_string()),
            ("aws_access_key_id".to_string(), "no".to_string()),
        ];
        let values = secret_values(&options, "EXHAUST_TEST_NO_SUCH_PREFIX_");
        assert_eq!(values, ["xxabcdxx", "abcd"]);
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn cloud_urls_need_their_feature() {
        let err = Storage::from_url("s3://bucket", &[]).expect_err("no feature");
        assert!(err.to_string().contains("cargo feature"), "{err}");
    }
}
