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
//! Errors name the store and the cause, never a secret: every configured
//! credential is masked out of the stores' messages.

use object_store::path::Path as StorePath;
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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

/// Where files are stored.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    signer: Option<Signing>,
    describe: String,
    local_root: Option<std::path::PathBuf>,
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

impl Storage {
    /// A local folder (created when missing).
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let root = dir
            .canonicalize()
            .map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| StorageError::Config(e.to_string()))?
            // Removes the folders a deleted file leaves empty.
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            signer: None,
            describe: format!("local folder {}", root.display()),
            local_root: Some(root),
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
