//! Blob storage for the finished files, through `object_store`: a local
//! folder by default, S3, Azure Blob or Google Cloud Storage behind the
//! cargo features `s3`, `azure` and `gcs`.
//!
//! Keys are container-relative (`progress-exhaust/<request>/<file>.zip`),
//! as Sunbird's job records them. Every key is parsed by `object_store`,
//! which refuses `..`, `.` and empty segments, so no key can leave the
//! store. Uploads are atomic: the local store stages the file and renames
//! it when complete, cloud stores commit a multipart upload only at the
//! end; a failed upload is aborted and leaves nothing under the key.

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
    /// The store failed (down, refused, out of space): retryable.
    #[error("storage {action} failed: {detail}")]
    Unavailable {
        /// What was being done.
        action: String,
        /// The store's message.
        detail: String,
    },
}

/// Where files are stored.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    signer: Option<Signing>,
    describe: String,
    local_root: Option<std::path::PathBuf>,
}

/// What signs URLs: the cloud store itself (only cloud builds can sign).
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
type Signing = Arc<dyn Signer>;
#[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs")))]
type Signing = std::convert::Infallible;

fn unavailable(action: impl Into<String>, e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable {
        action: action.into(),
        detail: e.to_string(),
    }
}

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

/// Upload chunk size: large enough for S3's 5 MiB minimum part size.
const CHUNK: usize = 8 << 20;

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
        })
    }

    /// A store by URL: a plain path or `file:///abs/path` for a local folder;
    /// with the matching cargo feature, `s3://bucket[/prefix]`,
    /// `az://container[/prefix]` or `gs://bucket[/prefix]`, credentials and
    /// regions coming from the providers' usual environment variables
    /// (`AWS_*`, `AZURE_*`, `GOOGLE_*`) and `options`.
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
        let path = Self::key(key)?;
        let mut file = std::fs::File::open(local)
            .map_err(|e| unavailable(format!("reading {}", local.display()), e))?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| unavailable(format!("starting the upload of {key}"), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(unavailable(format!("reading {}", local.display()), e));
                }
            };
            if n == 0 {
                break;
            }
            size += n as u64;
            writer.write(&buf[..n]);
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(unavailable(format!("uploading {key}"), e));
            }
        }
        writer
            .finish()
            .await
            .map_err(|e| unavailable(format!("completing the upload of {key}"), e))?;
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
                .map_err(|e| unavailable(format!("reading {key}"), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(format!("reading {key}"), e)),
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
                let chunks = r
                    .into_stream()
                    .map(move |c| c.map_err(|e| unavailable(what.clone(), e)))
                    .boxed();
                Ok(Some(StoredFile { size, chunks }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(format!("reading {key}"), e)),
        }
    }

    /// Whether something is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let path = Self::key(key)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(unavailable(format!("looking up {key}"), e)),
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
                .map_err(|e| unavailable(format!("signing a URL for {key}"), e))
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
            Some(Err(e)) => Err(unavailable("listing", e)),
        }
    }
}

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn prefixed<T: ObjectStore + Signer + Clone>(
    store: T,
    prefix: StorePath,
    describe: String,
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
    })
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
    // The three builders share no trait: one expansion per provider.
    #[allow(unused_macros)]
    macro_rules! configured {
        ($builder:expr) => {{
            let mut b = $builder.with_url(url);
            for (k, v) in options {
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
            format!("S3 {url}"),
        ),
        #[cfg(feature = "azure")]
        "az" | "azure" | "abfs" | "abfss" => prefixed(
            configured!(object_store::azure::MicrosoftAzureBuilder::from_env()),
            parsed()?,
            format!("Azure {url}"),
        ),
        #[cfg(feature = "gcs")]
        "gs" => prefixed(
            configured!(object_store::gcp::GoogleCloudStorageBuilder::from_env()),
            parsed()?,
            format!("GCS {url}"),
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

    #[cfg(not(feature = "s3"))]
    #[test]
    fn cloud_urls_need_their_feature() {
        let err = Storage::from_url("s3://bucket", &[]).expect_err("no feature");
        assert!(err.to_string().contains("cargo feature"), "{err}");
    }
}
