//! The output side of the request flow: [`Publisher`] implements the core's
//! [`ReportOutput`] (each report built in a work folder of its own on the
//! local disk, packaged as its request's security level asks, stored in a
//! [`Storage`]), and [`TokioClock`] the core's [`Clock`] over the tokio
//! runtime. The runner itself (`exhaust_core::runner`) sequences them.

use crate::WriteError;
use crate::archive::zip_file;
use crate::envelope;
use crate::key::decode_encryption_key;
use crate::report_sink::{ReportSink, check_format};
use crate::storage::{Storage, StorageError};
use chrono::{DateTime, Utc};
use exhaust_core::runner::{
    Clock, OutputError, Packaged, Protection, ReportOutput, Runner, RunnerConfig,
};
use exhaust_core::typed::OutputFormat;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The configuration of a [`Publisher`]: where it builds on the local disk
/// and how it decodes stored keys.
/// Its `Debug` never shows `sunbird_encryption_key`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishConfig {
    /// Where report files and zips are written before they are stored.
    pub work_dir: PathBuf,
    /// Sunbird's `sunbird_encryption_key`: its length is the salt prefix
    /// removed when decoding a request's `encryption_key`.
    pub sunbird_encryption_key: String,
}

impl fmt::Debug for PublishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishConfig")
            .field("work_dir", &self.work_dir)
            .field(
                "sunbird_encryption_key",
                &(!self.sunbird_encryption_key.is_empty()).then_some("<redacted>"),
            )
            .finish()
    }
}

impl PublishConfig {
    /// Building in `work_dir`, with no `sunbird_encryption_key` (stored keys
    /// are decoded without a salt). No default folder here: the system's
    /// temporary folder is read from the environment, which the core does
    /// not do (the settings default to it).
    pub fn in_folder(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            work_dir: work_dir.into(),
            sunbird_encryption_key: String::new(),
        }
    }
}

/// Builds reports in work folders and stores their zips in a [`Storage`].
#[derive(Debug, Clone)]
pub struct Publisher {
    storage: Storage,
    config: PublishConfig,
}

impl Publisher {
    /// A publisher into `storage`.
    pub fn new(storage: Storage, config: PublishConfig) -> Self {
        Self { storage, config }
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Sunbird stores the key encrypted; a key that does not decode is used
    /// as it is (reference 3.5).
    fn decode_key(&self, stored: &str) -> String {
        decode_encryption_key(stored, &self.config.sunbird_encryption_key)
    }
}

/// A report in its work folder, removed (with the report and the zip) when
/// dropped: a build abandoned at a stop deadline leaves nothing behind.
#[derive(Debug)]
pub struct Staged {
    work: tempfile::TempDir,
    file_name: String,
    file_path: PathBuf,
    zip_path: Option<PathBuf>,
    /// When the report was built: its zip entry's time (the runner's clock).
    built_at: DateTime<Utc>,
}

/// The sink a [`Publisher`] writes a report through.
pub type FileSink = ReportSink<BufWriter<File>>;

fn local(e: WriteError) -> OutputError {
    // Local disk trouble (full, gone) may pass.
    OutputError::retryable(e.to_string())
}

fn storage(e: StorageError) -> OutputError {
    OutputError {
        retryable: matches!(e, StorageError::Unavailable { .. }),
        message: e.to_string(),
    }
}

impl ReportOutput for Publisher {
    type Sink = FileSink;
    type Staged = Staged;

    fn check_format(&self, format: OutputFormat) -> Result<(), OutputError> {
        check_format(format).map_err(|e| OutputError::fatal(e.to_string()))
    }

    /// A stored key must give a usable key once decoded: a password or a
    /// text key that is empty (a key that decodes to nothing, or is only
    /// white space) fails the request, naming the level, never the key.
    fn check_protection(&self, protection: &Protection) -> Result<(), OutputError> {
        let (stored, what) = match protection {
            Protection::Password(k) => (k, "a zip password (PASSWORD_PROTECTED_DATASET)"),
            Protection::TextKey(k) => (k, "a text key (TEXT_KEY_ENCRYPTED_DATASET)"),
            Protection::Plain | Protection::PublicKey(_) => return Ok(()),
        };
        if self.decode_key(stored).trim().is_empty() {
            return Err(OutputError::fatal(format!(
                "the request's encryption key gives an empty or blank key once decoded; \
                 it cannot be used as {what}"
            )));
        }
        Ok(())
    }

    fn begin(
        &self,
        file_name: &str,
        format: OutputFormat,
        built_at: DateTime<Utc>,
    ) -> Result<(Staged, FileSink), OutputError> {
        let dir = &self.config.work_dir;
        let work = tempfile::Builder::new()
            .prefix("exhaust-")
            .tempdir_in(dir)
            .map_err(|e| {
                local(WriteError::io(
                    format!("creating a folder in {}", dir.display()),
                    e,
                ))
            })?;
        let file_path = work.path().join(file_name);
        let file = File::create(&file_path).map_err(|e| {
            local(WriteError::io(
                format!("creating {}", file_path.display()),
                e,
            ))
        })?;
        let sink = ReportSink::new(format, BufWriter::with_capacity(1 << 20, file), built_at)
            .map_err(local)?;
        let staged = Staged {
            work,
            file_name: file_name.to_string(),
            file_path,
            zip_path: None,
            built_at,
        };
        Ok((staged, sink))
    }

    fn package(
        &self,
        staged: &mut Staged,
        sink: FileSink,
        zip_name: &str,
        protection: &Protection,
    ) -> Result<Packaged, OutputError> {
        let (writer, stats) = sink.finish().map_err(local)?;
        writer
            .into_inner()
            .map_err(|e| local(WriteError::io("flushing the report", e.into_error())))?;
        let zip_path = staged.work.path().join(zip_name);
        let (file, entry) = (&staged.file_path, staged.file_name.as_str());
        let zip_bytes = match protection {
            Protection::Plain => {
                zip_file(file, &zip_path, entry, None, staged.built_at).map_err(local)?
            }
            Protection::Password(key) => {
                let password = self.decode_key(key);
                zip_file(file, &zip_path, entry, Some(&password), staged.built_at).map_err(local)?
            }
            Protection::TextKey(key) => {
                let key = self.decode_key(key);
                seal(file, &zip_path, entry, staged.built_at, |i, o| {
                    envelope::encrypt_text_key(i, o, &key)
                })?
            }
            Protection::PublicKey(pem) => seal(file, &zip_path, entry, staged.built_at, |i, o| {
                envelope::encrypt_public_key(i, o, pem)
            })?,
        };
        staged.zip_path = Some(zip_path);
        Ok(Packaged {
            file_bytes: stats.bytes,
            zip_bytes,
        })
    }

    async fn store(&self, staged: Staged, key: &str) -> Result<(), OutputError> {
        let zip = staged
            .zip_path
            .as_deref()
            .ok_or_else(|| OutputError::fatal("a report was stored before it was packaged"))?;
        self.storage.put_file(key, zip).await.map_err(storage)?;
        // Only now: an upload is never cut short by removing its file.
        drop(staged);
        Ok(())
    }

    async fn store_summary(&self, key: &str, json: Vec<u8>) -> Result<(), OutputError> {
        self.storage
            .put_reader(key, std::io::Cursor::new(json))
            .await
            .map(|_| ())
            .map_err(storage)
    }
}

/// Encrypts the report into Sunbird's envelope and puts it in a plain zip
/// under the report's name, as Sunbird's stage A then stage B do.
fn seal<F>(
    file: &Path,
    zip: &Path,
    entry: &str,
    built_at: DateTime<Utc>,
    encrypt: F,
) -> Result<u64, OutputError>
where
    F: FnOnce(
        std::io::BufReader<File>,
        &mut BufWriter<File>,
    ) -> Result<u64, envelope::EnvelopeError>,
{
    let sealed = file.with_extension("sealed");
    let input = File::open(file)
        .map_err(|e| local(WriteError::io(format!("opening {}", file.display()), e)))?;
    let output = File::create(&sealed)
        .map_err(|e| local(WriteError::io(format!("creating {}", sealed.display()), e)))?;
    let mut output = BufWriter::with_capacity(1 << 20, output);
    // A key that cannot be used is the request's fault; disk trouble may pass.
    encrypt(std::io::BufReader::new(input), &mut output).map_err(|e| OutputError {
        retryable: matches!(e, envelope::EnvelopeError::Io { .. }),
        message: format!("encrypting the report: {e}"),
    })?;
    output.into_inner().map_err(|e| {
        local(WriteError::io(
            "flushing the encrypted report",
            e.into_error(),
        ))
    })?;
    zip_file(&sealed, zip, entry, None, built_at).map_err(local)
}

/// The core's [`Clock`] over tokio: the system's wall clock (or a pinned
/// one, for tests), tokio's timer and yield.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock {
    pinned: Option<DateTime<Utc>>,
}

impl TokioClock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A wall clock that always reads `at` (timers and durations stay
    /// real): a test's file dates and completion times are then known.
    pub fn pinned(at: DateTime<Utc>) -> Self {
        Self { pinned: Some(at) }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.pinned.unwrap_or_else(Utc::now)
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    fn yield_now(&self) -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

/// The runner of `exhaust run` and of the server's worker: the core's
/// request flow over this crate's output and clock.
pub type AppRunner<S, R, P> = Runner<S, R, P, Publisher, TokioClock>;

/// A request runner whose output is a [`Publisher`] into `storage`: the one
/// place a runner's output is composed (the frontends' composition root,
/// `exhaust_server::app`, and embedders call it).
pub fn publishing_runner<S, R, P>(
    sources: S,
    store: R,
    prefs: P,
    storage: Storage,
    publish: PublishConfig,
    clock: TokioClock,
    config: RunnerConfig,
) -> AppRunner<S, R, P>
where
    S: exhaust_core::source::ReportSource,
    R: exhaust_core::store::RequestStore,
    P: exhaust_core::security::PreferenceSource + Sync,
{
    Runner::new(
        sources,
        store,
        prefs,
        Publisher::new(storage, publish),
        clock,
        config,
    )
}
