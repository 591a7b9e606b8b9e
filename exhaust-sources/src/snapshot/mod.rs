//! The snapshot reader: every source trait served from a folder of JSON Lines
//! files (`SNAPSHOT.md`), the embedded default source.
//!
//! Small tables (batches, contents, settings, relation cache) are read whole
//! on first use. Large ones are never loaded: the enrolments (by batch), the
//! user cache, attempts, aggregates (by user) and hierarchies (by
//! collection) are indexed by key on first use (offsets only, each line's key
//! found without parsing the line: `jsonscan`), and a batch reads only its
//! lines, parsed in full when read. Indexes of large tables are persisted
//! (`index.rs`), so a later run, or another process, does not read the
//! whole table again; one `Snapshot` indexes each table once, however many
//! batches it serves. The four tables read by key get a persisted digest
//! instead (`digest.rs`, `SnapshotOptions::digest`): their rows as decoded
//! when the table was indexed, so later reads parse no JSON; a lookup
//! hands each line on as its row or, where the digest kept only the line,
//! as its text (`Item`), and the same code turns both into the result.
//!
//! A chunk's reads (profiles, attempts, aggregates) run on the snapshot's
//! pool of reader threads, so the caller's thread is free meanwhile: the
//! report writes one chunk's rows while the next chunk is read. The other
//! reads (the batch, its hierarchy, its enrolments, which several threads
//! parse) do blocking file I/O inside their async methods: they never wait
//! on a network, and a caller inside a multi-threaded runtime that needs the
//! thread free can run the build on a blocking task.

mod catalogue;
pub(crate) mod digest;
pub(crate) mod index;
pub(crate) mod keyscan;
mod lookups;
mod pool;
mod search;
mod sources;
pub(crate) mod table;

use catalogue::*;
use lookups::*;
use search::*;

use crate::rows::{BatchRow, CacheRow, ContentRow, EnrolmentRow, HierarchyRow};
use digest::tables::{Activities, Attempts, Enrolments, Users};
use digest::{Codec, Damaged, Digest, LineKey, Record, Records};
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter, Reclaim,
    SourceError, SourceResult, UserSource,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use index::{IndexStore, KeyIndex};
use keyscan::top_level_str;
use rayon::prelude::*;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use table::{SOURCE, TableFile, read_all, text_lines};

/// Names and keys that deployments configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The user cache key prefix (`user:`); the user id is the rest of the key.
    pub user_key_prefix: String,
    /// The relation cache key suffix of optional nodes (`optionalnodes`).
    pub optional_nodes_suffix: String,
    /// Enrolment rows per chunk handed to the report.
    pub enrolment_chunk: usize,
    /// Where gzip tables are decompressed (default: the system temp folder).
    pub temp_dir: Option<PathBuf>,
    /// Threads that read one chunk's lines (default: the machine's cores).
    pub threads: usize,
    /// Offset indexes of tables of at least this many bytes are written to
    /// disk and read back by later runs (default 16 MiB: below that,
    /// indexing costs less than the file); `None`: never written or read.
    pub persist_index_min_bytes: Option<u64>,
    /// With a persisted index, also keep a digest of the large tables
    /// (enrolments, user cache, attempts, aggregates): each line's decoded
    /// fields in a compact binary form, so later runs read a batch's rows
    /// without parsing their JSON (`digest.rs`). Default on; off, those
    /// tables get an offset index like the others.
    pub digest: bool,
    /// Digests are written only by a run whose batch has at least this
    /// percentage of the enrolment table's bytes (default 25; 0: always):
    /// writing them parses every line of the four tables, which pays back
    /// within a few later runs for a large batch, and only after dozens for
    /// a small batch of a large snapshot. Digests already written are read
    /// whatever the batch. The first batch a `Snapshot` reads decides.
    pub digest_min_percent: u8,
    /// Whether the first read of a snapshot writes its digests (default
    /// false): writing them parses every line of the four tables, which
    /// made the first report 3.7x slower than the later ones (BENCHMARKS.md,
    /// issue #27). By default the first read only indexes, and a later read
    /// (one that finds the enrolment table's index persisted by an earlier
    /// run) writes them, so a one-off report never waits for digests it
    /// would not use. `digest_min_percent = 0` writes them at once too.
    pub digest_on_first_read: bool,
    /// Where indexes go when the snapshot folder cannot be written (a
    /// read-only snapshot): a folder per snapshot under this one. Default:
    /// `$XDG_CACHE_HOME/exhaust/snapshot-index`, else
    /// `$HOME/.cache/exhaust/snapshot-index`.
    pub index_cache_dir: Option<PathBuf>,
}

impl SnapshotOptions {
    /// The default cache folder of indexes (see
    /// [`SnapshotOptions::index_cache_dir`]).
    pub fn default_index_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("exhaust").join("snapshot-index"))
    }
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            user_key_prefix: "user:".into(),
            optional_nodes_suffix: "optionalnodes".into(),
            enrolment_chunk: 1_000,
            temp_dir: None,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            persist_index_min_bytes: Some(16 << 20),
            digest: true,
            digest_min_percent: 25,
            digest_on_first_read: false,
            index_cache_dir: Self::default_index_cache_dir(),
        }
    }
}

type Lazy<T> = OnceLock<SourceResult<T>>;

/// A snapshot folder, read through the source traits. A clone is cheap
/// and shares the tables and indexes read so far.
#[derive(Debug, Clone)]
pub struct Snapshot {
    inner: Arc<Inner>,
}

/// What a [`Snapshot`] shares with its clones and with the threads that
/// read a chunk's lines while the report writes the previous chunk.
#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    opts: SnapshotOptions,
    tables: HashMap<&'static str, Lazy<Option<TableFile>>>,
    batches: Lazy<HashMap<String, CourseBatch>>,
    contents: Lazy<Vec<(CollectionMeta, serde_json::Map<String, serde_json::Value>)>>,
    relations: Lazy<HashMap<String, Vec<String>>>,
    custodian: Lazy<Option<OrgId>>,
    store: IndexStore,
    enrolments: LargeTable,
    /// The first batch whose enrolments were read: it decides whether this
    /// `Snapshot` writes digests (`write_digests`; see
    /// `SnapshotOptions::digest_min_percent`), when one is missing.
    first_batch: OnceLock<BatchId>,
    write_digests: OnceLock<bool>,
    users: LargeTable,
    attempts: LargeTable,
    activity: LargeTable,
    hierarchies: Lazy<KeyIndex>,
    stats: Counts,
    /// The threads that read chunks' lines, started on first use and kept
    /// for the snapshot's life (one set of allocator heaps, reused).
    pool: Lazy<rayon::ThreadPool>,
}

/// How a `Snapshot` got its indexes so far (see [`Snapshot::index_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Indexes built by reading their table.
    pub built: usize,
    /// Indexes read back from a persisted copy.
    pub loaded: usize,
    /// Indexes written to disk after being built.
    pub persisted: usize,
    /// Gzip tables decompressed (a table whose digest was read is not).
    pub decompressed: usize,
}

#[derive(Debug, Default)]
struct Counts {
    built: AtomicUsize,
    loaded: AtomicUsize,
    persisted: AtomicUsize,
    /// The enrolment table's index was read back, not built: an earlier
    /// run read this snapshot (see `SnapshotOptions::digest_on_first_read`).
    enrolments_loaded: AtomicBool,
}

const TABLES: [&str; 9] = [
    "course_batch",
    "user_enrolments",
    "assessment_aggregator",
    "user_activity_agg",
    "content_hierarchy",
    "system_settings",
    "user_cache",
    "relation_cache",
    "content",
];

impl Snapshot {
    /// Opens a snapshot folder. Tables are opened and indexed on first use.
    pub fn open(dir: impl AsRef<Path>, opts: SnapshotOptions) -> Result<Self, SourceError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(SourceError::unavailable(
                SOURCE,
                format!("{} is not a folder", dir.display()),
            ));
        }
        let store = IndexStore::new(
            &dir,
            opts.index_cache_dir.as_deref(),
            opts.persist_index_min_bytes.unwrap_or(u64::MAX),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                opts,
                store,
                enrolments: LargeTable::default(),
                first_batch: OnceLock::new(),
                write_digests: OnceLock::new(),
                tables: TABLES.iter().map(|t| (*t, OnceLock::new())).collect(),
                batches: OnceLock::new(),
                contents: OnceLock::new(),
                relations: OnceLock::new(),
                custodian: OnceLock::new(),
                users: LargeTable::default(),
                attempts: LargeTable::default(),
                activity: LargeTable::default(),
                hierarchies: OnceLock::new(),
                stats: Counts::default(),
                pool: OnceLock::new(),
            }),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// How many table indexes this snapshot built, read from disk and
    /// persisted: each table is indexed at most once per `Snapshot`.
    pub fn index_stats(&self) -> IndexStats {
        let stats = &self.inner.stats;
        IndexStats {
            built: stats.built.load(Ordering::Relaxed),
            loaded: stats.loaded.load(Ordering::Relaxed),
            persisted: stats.persisted.load(Ordering::Relaxed),
            decompressed: self
                .inner
                .tables
                .values()
                .filter(|cell| matches!(cell.get(), Some(Ok(Some(t))) if t.was_decompressed()))
                .count(),
        }
    }
}
