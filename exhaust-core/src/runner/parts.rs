//! What the runner runs over besides the sources, the store and the
//! preferences: the output (packaging and storage of a built report, with
//! its errors and the protection asked for), the clock and the stop
//! signal. The other crates implement them (`exhaust_writer::Publisher`,
//! `TokioClock`, `Shutdown`).

use super::*;

/// Where the runner gets time from, and how it hands the thread back to
/// the scheduler: the runtime's, injected, so that the core reads no clock
/// (a test pins the wall time; `exhaust-writer`'s `TokioClock` is the
/// production one).
pub trait Clock: Sync {
    /// The wall-clock time now (completion times, the date in file names).
    fn now(&self) -> DateTime<Utc>;
    /// A monotonic instant, for durations.
    fn instant(&self) -> Instant;
    /// Resolves after `duration` (the poll interval of [`Runner::watch`]).
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
    /// Returns `Pending` once, so that whatever waits beside the caller (a
    /// stop deadline) is polled: the runtime's own yield.
    fn yield_now(&self) -> impl Future<Output = ()> + Send;
}

/// What stops a run: a stop flag with a grace deadline.
pub trait StopSignal: Sync {
    /// Whether a stop was asked for: no new request or batch is started.
    fn is_triggered(&self) -> bool;
    /// Resolves once triggered.
    fn triggered(&self) -> impl Future<Output = ()> + Send;
    /// Resolves at the grace deadline (never before a trigger): the build
    /// in hand is then abandoned.
    fn deadline_reached(&self) -> impl Future<Output = ()> + Send;
}

/// A bare flag, read between requests and batches. It has no deadline, so
/// a build in hand always finishes.
impl StopSignal for AtomicBool {
    fn is_triggered(&self) -> bool {
        self.load(Ordering::SeqCst)
    }

    fn triggered(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    fn deadline_reached(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// Why the output side (local files, packaging, storage) failed, and
/// whether a later run may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError {
    /// What failed, for the request's message (never a key or secret).
    pub message: String,
    /// Whether trying again later may succeed (a disk or a storage
    /// problem), as opposed to a request that cannot be served (a bad key).
    pub retryable: bool,
}

impl OutputError {
    /// A failure a later run may not meet (a full disk, a storage down).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that is the request's (a key that cannot be used, a
    /// format this build cannot write).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a request's files are protected, with the key material as the
/// request stores it (the output decodes a stored key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// A plain zip.
    Plain,
    /// ZipCrypto with the request's stored key as password. (A request
    /// without a key fails instead: Sunbird's job would write a zip
    /// without password, which a deployment that asked for passwords does
    /// not expect to hand out.)
    Password(String),
    /// Sunbird's envelope, the file key wrapped with the request's stored
    /// text key.
    TextKey(String),
    /// Sunbird's envelope, the file key wrapped with this RSA public key (PEM).
    PublicKey(String),
}

/// The sizes of a packaged report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packaged {
    /// The report file's size: its `fileSize`, counted against the limits.
    pub file_bytes: u64,
    /// The zip's size.
    pub zip_bytes: u64,
}

/// Where a built report goes: a file written through a [`RowSink`],
/// packaged (zipped, encrypted) and stored. `exhaust-writer` implements it
/// (`Publisher`: work folders on the local disk, then its `Storage`).
pub trait ReportOutput: Sync {
    /// The sink a report's rows are written into.
    type Sink: RowSink + Send;
    /// A report being built or packaged, not yet stored; dropping it
    /// removes its files (a build abandoned at a stop deadline).
    type Staged: Send;

    /// Refuses a format this build cannot write.
    fn check_format(&self, format: OutputFormat) -> Result<(), OutputError>;

    /// Refuses, before anything is built, key material that the output
    /// could not use (a stored key that decodes to an empty password, say),
    /// with a message that names the problem and never the key. The default
    /// accepts every protection.
    fn check_protection(&self, protection: &Protection) -> Result<(), OutputError> {
        let _ = protection;
        Ok(())
    }

    /// Starts a report file named `file_name` in `format`; `built_at` goes
    /// into the typed formats' metadata.
    fn begin(
        &self,
        file_name: &str,
        format: OutputFormat,
        built_at: DateTime<Utc>,
    ) -> Result<(Self::Staged, Self::Sink), OutputError>;

    /// Completes the report and packages it into a zip named `zip_name`,
    /// protected as asked.
    fn package(
        &self,
        staged: &mut Self::Staged,
        sink: Self::Sink,
        zip_name: &str,
        protection: &Protection,
    ) -> Result<Packaged, OutputError>;

    /// Stores the packaged zip under `key`; the local files go afterwards.
    fn store(
        &self,
        staged: Self::Staged,
        key: &str,
    ) -> impl Future<Output = Result<(), OutputError>> + Send;

    /// Stores a report's [`BatchSummary`](crate::summary::BatchSummary)
    /// (its JSON) under `key`, beside the report, before the report's zip
    /// is stored. The default stores nothing (an output without a place
    /// for summaries).
    fn store_summary(
        &self,
        key: &str,
        json: Vec<u8>,
    ) -> impl Future<Output = Result<(), OutputError>> + Send {
        let _ = (key, json);
        std::future::ready(Ok(()))
    }
}
