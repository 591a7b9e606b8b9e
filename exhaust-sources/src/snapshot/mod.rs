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

pub(crate) mod digest;
pub(crate) mod index;
pub(crate) mod keyscan;
pub(crate) mod table;

use crate::rows::{BatchRow, CacheRow, ContentRow, EnrolmentRow, HierarchyRow};
use digest::tables::{Activities, Attempts, Enrolments, Users};
use digest::{Codec, Damaged, Digest, LineKey, Record, Records};
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter,
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

impl Inner {
    fn table(&self, name: &'static str) -> SourceResult<Option<&TableFile>> {
        let cell = &self.tables[name];
        cell.get_or_init(|| TableFile::open(&self.dir, name, self.opts.temp_dir.as_deref()))
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }

    /// `k`'s digest: a valid one persisted, or one built and written when
    /// the table is large enough to persist what indexing it learns and
    /// the batch wants it (`writes_digests`); `None`: the table is read
    /// through the offset index of its lines. Decided once per `Snapshot`.
    fn digest_of<'a, C: Codec>(
        &'a self,
        large: &'a LargeTable,
        k: Keyed,
    ) -> SourceResult<Option<&'a DigestReading>> {
        large
            .digest
            .get_or_init(|| {
                let Some(t) = self.table(k.table)? else {
                    return Ok(None);
                };
                // A persisted digest is looked for first, whatever the table's
                // size: a run that finds it never decompresses a gzip table
                // (whose size is known only then).
                if self.opts.digest {
                    let started = std::time::Instant::now();
                    let spec = self.spec(k);
                    let table = k.table;
                    match Digest::load(&self.store, t, &spec) {
                        Ok(digest) => {
                            tracing::debug!(
                                table,
                                runs = digest.len(),
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "read the persisted digest of a snapshot table"
                            );
                            self.stats.loaded.fetch_add(1, Ordering::Relaxed);
                            return Ok(Some(DigestReading::new(digest)));
                        }
                        Err(why) => tracing::debug!(table, why, "no persisted digest"),
                    }
                    let built = if t.data_len()? < self.store.min_bytes {
                        Err("the table is small: indexing it costs less than a file".to_owned())
                    } else if self.writes_digests()? {
                        Digest::build::<C>(&self.store, t, &spec, k.in_key_order, |line, n| {
                            self.line_key(t, k, line, n)
                        })?
                    } else {
                        Err("the first batch is a small share of the snapshot".to_owned())
                    };
                    match built {
                        Ok(digest) => {
                            tracing::debug!(
                                table,
                                runs = digest.len(),
                                path = %digest.path().display(),
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "digested and persisted a snapshot table"
                            );
                            self.stats.built.fetch_add(1, Ordering::Relaxed);
                            self.stats.persisted.fetch_add(1, Ordering::Relaxed);
                            return Ok(Some(DigestReading::new(digest)));
                        }
                        Err(why) => tracing::debug!(table, why, "no digest: indexing the lines"),
                    }
                }
                Ok(None)
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }

    /// The offset index of `k`'s table, built once per `Snapshot`.
    fn index<'a>(&'a self, cell: &'a Lazy<KeyIndex>, k: Keyed) -> SourceResult<&'a KeyIndex> {
        cell.get_or_init(|| match self.table(k.table)? {
            Some(t) => self.build_index(t, k),
            None => Ok(KeyIndex::default()),
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// Whether this `Snapshot` writes the digests it misses: when the
    /// first batch it read has at least `digest_min_percent` of the
    /// enrolment table's bytes, as the table's line index says (built by a
    /// key scan, or read back). Decided once, when first needed: a run
    /// that finds every digest written never asks.
    fn writes_digests(&self) -> SourceResult<bool> {
        if let Some(&write) = self.write_digests.get() {
            return Ok(write);
        }
        let min = self.opts.digest_min_percent;
        let write = match (self.first_batch.get(), self.table(ENROLMENTS.table)?) {
            (Some(batch), Some(t)) if self.opts.digest && min > 0 => {
                let index = self.index(&self.enrolments.lines, ENROLMENTS)?;
                let bytes: u64 = index
                    .runs(batch.as_str())
                    .map(|(_, len)| u64::from(len))
                    .sum();
                let percent = bytes as f64 * 100.0 / t.data_len()?.max(1) as f64;
                tracing::debug!(batch = %batch, percent, "the batch's share of the enrolments");
                percent >= f64::from(min)
            }
            // Reads not started by a batch's enrolments: nothing to judge by.
            _ => self.opts.digest,
        };
        Ok(*self.write_digests.get_or_init(|| write))
    }

    /// What a persisted index or digest of `k` was built by (it must match).
    fn spec(&self, k: Keyed) -> String {
        let extra = if k.user_key {
            format!("prefix={}", self.opts.user_key_prefix)
        } else {
            String::new()
        };
        format!("{}|{extra}|lenient={}", k.field, k.lenient)
    }

    /// The key of a line of `k`'s table (whether it is kept as a line
    /// whatever it holds: an unreadable key, for the lookup that judges
    /// it); `None` when the line is not indexed.
    fn line_key(
        &self,
        t: &TableFile,
        k: Keyed,
        line: &[u8],
        n: usize,
    ) -> SourceResult<Option<LineKey>> {
        let value = match top_level_str(line, k.field) {
            Ok(v) => v,
            // Kept under a key no id has, for the reader to judge.
            Err(_) if k.lenient => Some(std::borrow::Cow::Borrowed(UNREADABLE)),
            Err(e) => return Err(row_error(t, n, &e.0)),
        };
        Ok(value
            .as_deref()
            .and_then(|v| {
                if k.user_key {
                    self.user_id_of(v)
                } else {
                    Some(v)
                }
            })
            .map(|key| LineKey::new(key.as_bytes(), key == UNREADABLE)))
    }

    /// The offset index of `k`'s lines: read from disk when a valid copy
    /// is there, written there when the table is large.
    fn build_index(&self, t: &TableFile, k: Keyed) -> SourceResult<KeyIndex> {
        let table = k.table;
        let started = std::time::Instant::now();
        let spec = self.spec(k);
        let persist = t.data_len()? >= self.store.min_bytes;
        if persist {
            match self.store.load(t, &spec) {
                Ok(index) => {
                    tracing::debug!(
                        table,
                        runs = index.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "read the persisted index of a snapshot table"
                    );
                    self.stats.loaded.fetch_add(1, Ordering::Relaxed);
                    return Ok(index);
                }
                Err(why) => tracing::debug!(table, why, "building the index"),
            }
        }
        let index = KeyIndex::build(t, |line, n| {
            Ok(self.line_key(t, k, line, n)?.map(|key| key.hash))
        })?;
        tracing::debug!(
            table,
            runs = index.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "indexed snapshot table"
        );
        self.stats.built.fetch_add(1, Ordering::Relaxed);
        if persist {
            match self.store.save(t, &spec, &index) {
                Ok(path) => {
                    self.stats.persisted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(table, path = %path.display(), "persisted the index");
                }
                Err(why) => tracing::debug!(table, why, "the index stays in memory"),
            }
        }
        Ok(index)
    }

    fn batches(&self) -> SourceResult<&HashMap<String, CourseBatch>> {
        self.batches
            .get_or_init(|| {
                let mut out = HashMap::new();
                if let Some(t) = self.table("course_batch")? {
                    read_all(t, |line, n| {
                        let b = parse::<BatchRow>(t, n, line)?
                            .into_batch()
                            .map_err(|e| row_error(t, n, &e))?;
                        out.insert(b.batch_id.as_str().to_owned(), b);
                        Ok(())
                    })?;
                }
                Ok(out)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn contents(
        &self,
    ) -> SourceResult<&[(CollectionMeta, serde_json::Map<String, serde_json::Value>)]> {
        self.contents
            .get_or_init(|| {
                let mut out = Vec::new();
                if let Some(t) = self.table("content")? {
                    read_all(t, |line, n| {
                        let raw: serde_json::Map<String, serde_json::Value> = parse(t, n, line)?;
                        let meta = serde_json::from_value::<ContentRow>(serde_json::Value::Object(
                            raw.clone(),
                        ))
                        .map_err(|e| row_error(t, n, &e.to_string()))?
                        .into_meta()
                        .map_err(|e| row_error(t, n, &e))?;
                        out.push((meta, raw));
                        Ok(())
                    })?;
                }
                Ok(out)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn relations(&self) -> SourceResult<&HashMap<String, Vec<String>>> {
        self.relations
            .get_or_init(|| {
                let mut out = HashMap::new();
                if let Some(t) = self.table("relation_cache")? {
                    read_all(t, |line, n| {
                        let row: CacheRow = parse(t, n, line)?;
                        let key = row.key.ok_or_else(|| row_error(t, n, "key is missing"))?;
                        let members: Vec<String> = serde_json::from_value(row.value)
                            .map_err(|_| row_error(t, n, "value is not a list of ids"))?;
                        out.insert(key, members);
                        Ok(())
                    })?;
                }
                Ok(out)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The index key of enrolment lines whose batch id cannot be read (a NUL
/// is in no id the platform makes).
const UNREADABLE: &str = "\u{0}unreadable";

/// A large table and what its lines are found by.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    table: &'static str,
    /// The top-level string field that holds each line's key.
    field: &'static str,
    /// A line whose key cannot be read is kept (under `UNREADABLE`) for
    /// the lookup to judge, rather than failing the whole table.
    lenient: bool,
    /// The field is a user cache key: the key is the user id after the
    /// configured prefix (lines with another prefix are not indexed).
    user_key: bool,
    /// Its digest is written in key order: the table is looked up by user,
    /// for a chunk of learners in user id order (see `Inner::keys_items`).
    in_key_order: bool,
}

const ENROLMENTS: Keyed = Keyed {
    table: "user_enrolments",
    field: "batchid",
    lenient: true,
    user_key: false,
    in_key_order: false,
};
const USERS: Keyed = Keyed {
    table: "user_cache",
    field: "key",
    lenient: false,
    user_key: true,
    in_key_order: true,
};
const ATTEMPTS: Keyed = Keyed {
    table: "assessment_aggregator",
    field: "user_id",
    lenient: false,
    user_key: false,
    in_key_order: true,
};
const ACTIVITY: Keyed = Keyed {
    table: "user_activity_agg",
    field: "user_id",
    lenient: false,
    user_key: false,
    in_key_order: true,
};
const HIERARCHIES: Keyed = Keyed {
    table: "content_hierarchy",
    field: "identifier",
    lenient: false,
    user_key: false,
    in_key_order: false,
};

/// How a large table's lines are found: by its digest (see `digest.rs`),
/// when it has one that is not damaged, else by the offset index of its
/// JSON lines. Each is made on first need: the line index of a table read
/// through its digest only when the digest is found damaged, or (for the
/// enrolments) to tell a batch's share of the table.
#[derive(Debug, Default)]
struct LargeTable {
    digest: Lazy<Option<DigestReading>>,
    lines: Lazy<KeyIndex>,
}

#[derive(Debug)]
struct DigestReading {
    digest: Digest,
    /// Set when a run of the digest was found damaged: from then on the
    /// table is read through its lines.
    damaged: AtomicBool,
}

impl DigestReading {
    fn new(digest: Digest) -> Self {
        Self {
            digest,
            damaged: AtomicBool::new(false),
        }
    }
}

/// A `LargeTable` as one read uses it from start to end (a digest found
/// damaged during the read does not switch it to the lines half-way).
#[derive(Clone, Copy)]
enum View<'a> {
    Lines(&'a KeyIndex),
    Digest(&'a DigestReading),
}

/// What a lookup hands on for each line: its JSON text, or its row as the
/// digest keeps it (see [`row_of`]).
enum Item<'x, R> {
    Line(&'x str),
    Row(R),
}

/// The row of a line: parsed from its JSON, or as the digest gave it.
fn row_of<'x, C: Codec>(
    t: &TableFile,
    line_at: &dyn Fn() -> usize,
    item: Item<'x, C::Row<'x>>,
) -> SourceResult<C::Row<'x>> {
    match item {
        Item::Line(line) => {
            serde_json::from_str(line).map_err(|e| row_error(t, line_at(), &e.to_string()))
        }
        Item::Row(row) => Ok(row),
    }
}

/// Read buffers, reused across lookups: digest runs and JSON lines.
#[derive(Default)]
struct Bufs {
    records: Vec<u8>,
    lines: Vec<u8>,
}

thread_local! {
    /// Each reader thread's buffers, kept from one part's lookups to the
    /// next: a span buffer grows to `MAX_SPAN` once per thread, not once
    /// per part (a new zeroed megabyte for every 125 learners and table).
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Calls `f` with this thread's buffers (new ones if they are in use: a
/// lookup inside another).
fn with_bufs<T>(f: impl FnOnce(&mut Bufs) -> T) -> T {
    BUFS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => f(&mut bufs),
        Err(_) => f(&mut Bufs::default()),
    })
}

/// Digest runs this close to each other are read as one span (the bytes
/// between them read and skipped): copying 8 KiB more out of the page
/// cache costs about what one more `pread` does.
const SPAN_GAP: u64 = 8 << 10;

/// At most this many bytes per span read.
const MAX_SPAN: u64 = 1 << 20;

fn parse<T: for<'de> Deserialize<'de>>(
    t: &TableFile,
    line_no: usize,
    line: &[u8],
) -> SourceResult<T> {
    serde_json::from_slice(line).map_err(|e| row_error(t, line_no, &e.to_string()))
}

fn row_error(t: &TableFile, line_no: usize, detail: &str) -> SourceError {
    SourceError::bad_data(SOURCE, format!("{} line {line_no}: {detail}", t.display))
}

/// A reader thread panicked: its part of the read is lost.
fn reader_panicked() -> SourceError {
    SourceError::bad_data(SOURCE, "a snapshot reader thread panicked")
}

/// Calls `f(line_number, item)` for each of a digest run's records, in
/// order: its row, or (a line kept as JSON) the line read from the table.
/// Stops at the first error. `Damaged`, with nothing handed on, when a
/// line record lies past the table's end: a damaged or crafted digest,
/// whose record would otherwise make the read allocate up to 4 GiB.
fn hand_on<'x, C: Codec>(
    t: &TableFile,
    rows: Records<'x, C>,
    lines: &mut Vec<u8>,
    f: &mut impl for<'y> FnMut(&dyn Fn() -> usize, Item<'y, C::Row<'y>>) -> SourceResult<()>,
) -> SourceResult<Result<(), Damaged>> {
    // The table's length only when a line is to be read from it: a gzip
    // table read through its digest is then decompressed, as the read
    // would do anyway.
    let line_end = |r: &Record<_>| match r {
        Record::Line { offset, len } => Some(offset.saturating_add(u64::from(*len))),
        Record::Row { .. } => None,
    };
    if let Some(end) = rows.iter().filter_map(line_end).max()
        && end > t.data_len()?
    {
        return Ok(Err(Damaged("a line record lies past the end of the table")));
    }
    for record in rows {
        match record {
            Record::Line { offset, len } => {
                read_run(t, offset, len, lines, &mut |at, line| {
                    f(at, Item::Line(line))
                })?;
            }
            Record::Row { offset, row } => f(&|| t.line_number_at(offset), Item::Row(row))?,
        }
    }
    Ok(Ok(()))
}

/// Reads one run of lines and calls `f(line_number, line)` for each, in
/// file order. The run is checked to be UTF-8 once, as a whole, and split
/// as text (newlines are never inside a UTF-8 sequence), so lines parse
/// with `from_str`, which then borrows strings without checking each again.
fn read_run(
    t: &TableFile,
    offset: u64,
    len: u32,
    buf: &mut Vec<u8>,
    f: &mut impl FnMut(&dyn Fn() -> usize, &str) -> SourceResult<()>,
) -> SourceResult<()> {
    let bytes = t.read_at(offset, len, buf)?;
    // SIMD validation; the standard library's only to say where a bad
    // sequence starts.
    let text = match simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes)) {
        Ok(text) => text,
        Err(e) => {
            let at = offset + e.valid_up_to() as u64;
            let line = t.line_number_at(at);
            return Err(row_error(t, line, "the line is not UTF-8 text"));
        }
    };
    for (at, line) in text_lines(text) {
        f(&|| t.line_number_at(offset + at as u64), line)?;
    }
    Ok(())
}

// The snapshot's reads are local file scans; the live sources are the ones
// whose reads are worth counting.
impl ReadCounter for Snapshot {}

impl BatchSource for Snapshot {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        Ok(self.inner.batches()?.get(id.as_str()).cloned())
    }
}

impl CollectionBatchSource for Snapshot {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        let wanted: HashSet<&str> = collections.iter().map(ContentId::as_str).collect();
        let mut out: Vec<CourseBatch> = self
            .inner
            .batches()?
            .values()
            .filter(|b| wanted.contains(b.course_id.as_str()))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.batch_id.cmp(&b.batch_id));
        Ok(out)
    }
}

impl EnrolmentSource for Snapshot {
    async fn enrolments<F>(&self, batch: &CourseBatch, mut on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        let inner = &*self.inner;
        let Some(t) = inner.table(ENROLMENTS.table)? else {
            return Ok(());
        };
        let chunk_size = inner.opts.enrolment_chunk.max(1);
        let mut chunk = Vec::with_capacity(chunk_size);
        let _ = inner.first_batch.set(batch.batch_id.clone());
        // The report reads profiles, attempts and aggregates right after the
        // enrolments: index those tables meanwhile, each on a thread of its
        // own (a first run that digests them parses every line: a thread
        // each keeps every core busy until the last is done). Errors are
        // kept in the cells and reported by the lookups.
        std::thread::scope(|s| {
            if inner.opts.threads > 1 {
                s.spawn(|| inner.view::<Users>(&inner.users, USERS).map(drop));
                s.spawn(|| inner.view::<Attempts>(&inner.attempts, ATTEMPTS).map(drop));
                s.spawn(|| {
                    inner
                        .view::<Activities>(&inner.activity, ACTIVITY)
                        .map(drop)
                });
            }
            inner.digest_of::<Enrolments>(&inner.enrolments, ENROLMENTS)?;
            let mut bufs = Bufs::default();
            // Lines whose batch id could not be read: one that mentions this
            // batch's id is parsed, and fails the batch naming its line (a
            // bad line of another batch does not fail this one).
            let needle = serde_json::to_string(batch.batch_id.as_str())
                .map_err(|e| SourceError::bad_data(SOURCE, e.to_string()))?;
            // A row of this batch as a record; `None` for another batch's.
            let record = |line_at: &dyn Fn() -> usize, row: EnrolmentRow| {
                if row.batchid.as_deref() != Some(batch.batch_id.as_str()) {
                    return Ok(None);
                }
                row.into_record()
                    .map(Some)
                    .map_err(|e| row_error(t, line_at(), &e))
            };
            inner.each_item::<Enrolments, _>(
                &inner.enrolments,
                ENROLMENTS,
                t,
                UNREADABLE,
                &mut bufs,
                &mut |line_at, item| {
                    if let Item::Line(line) = item
                        && !line.contains(needle.as_str())
                    {
                        return Ok(());
                    }
                    let row = row_of::<Enrolments>(t, line_at, item)?;
                    chunk.extend(record(line_at, row)?);
                    Ok(())
                },
            )?;
            // The batch's own lines, parsed on `threads` threads and handed
            // on in file order (the report keeps the first row of a user).
            let view = inner.view::<Enrolments>(&inner.enrolments, ENROLMENTS)?;
            let runs: Vec<(u64, u32)> = match view {
                View::Lines(index) => index.runs(batch.batch_id.as_str()).collect(),
                View::Digest(d) => d.digest.runs(batch.batch_id.as_str()).collect(),
            };
            inner.runs_in_order(
                &runs,
                |bufs, run, out| {
                    let read = inner.run_items::<Enrolments, _>(
                        view,
                        t,
                        run,
                        bufs,
                        &mut |line_at, item| {
                            let row = row_of::<Enrolments>(t, line_at, item)?;
                            out.extend(record(line_at, row)?);
                            Ok(())
                        },
                    )?;
                    // Runs before this one may be handed on already: the
                    // read fails rather than give a batch twice or in part.
                    match (read, view) {
                        (Err(damaged), View::Digest(d)) => Err(inner.found_damaged(d, damaged)),
                        _ => Ok(()),
                    }
                },
                |records| {
                    for record in records {
                        chunk.push(record);
                        if chunk.len() >= chunk_size {
                            on_chunk(std::mem::replace(
                                &mut chunk,
                                Vec::with_capacity(chunk_size),
                            ));
                        }
                    }
                },
            )
        })?;
        if !chunk.is_empty() {
            on_chunk(chunk);
        }
        Ok(())
    }
}

impl Inner {
    /// `large` as one read uses it: its digest, unless it has none or it
    /// was found damaged, else the offset index of its lines.
    fn view<'a, C: Codec>(&'a self, large: &'a LargeTable, k: Keyed) -> SourceResult<View<'a>> {
        match self.digest_of::<C>(large, k)? {
            Some(d) if !d.damaged.load(Ordering::Acquire) => Ok(View::Digest(d)),
            _ => self.index(&large.lines, k).map(View::Lines),
        }
    }

    /// A digest run was found damaged: the file is removed (the next run
    /// rebuilds it) and later reads of the table use its lines. The error
    /// for a read that cannot go on.
    fn found_damaged(&self, d: &DigestReading, damaged: Damaged) -> SourceError {
        let path = d.digest.path().display();
        if !d.damaged.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                path = %path,
                what = damaged.0,
                "a snapshot digest is damaged: removed; the table is read from its lines"
            );
            d.digest.discard();
        }
        SourceError::unavailable(
            SOURCE,
            format!(
                "{path} is damaged ({}); it was removed, and the table is read from its lines from now on: run the read again",
                damaged.0
            ),
        )
    }

    /// Calls `f(line_number, item)` for each line of `key` in `k`'s table,
    /// in file order. A damaged digest run met before any line was handed
    /// on is not an error: the key is read again from the table's lines.
    fn each_item<C: Codec, F>(
        &self,
        large: &LargeTable,
        k: Keyed,
        t: &TableFile,
        key: &str,
        bufs: &mut Bufs,
        f: &mut F,
    ) -> SourceResult<()>
    where
        F: for<'x> FnMut(&dyn Fn() -> usize, Item<'x, C::Row<'x>>) -> SourceResult<()>,
    {
        let view = self.view::<C>(large, k)?;
        match view {
            View::Lines(index) => {
                for run in index.runs(key) {
                    // Lines are never `Damaged`.
                    let _ = self.run_items::<C, F>(view, t, run, bufs, f)?;
                }
            }
            View::Digest(d) => {
                for (i, run) in d.digest.runs(key).enumerate() {
                    if let Err(damaged) = self.run_items::<C, F>(view, t, run, bufs, f)? {
                        let error = self.found_damaged(d, damaged);
                        if i > 0 {
                            return Err(error);
                        }
                        return self.each_item::<C, F>(large, k, t, key, bufs, f);
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls `f(line_number, item)` for each line of one run (of lines or
    /// of digest records), in file order; `Damaged`, with nothing handed
    /// on, for a damaged digest run.
    fn run_items<C: Codec, F>(
        &self,
        view: View<'_>,
        t: &TableFile,
        (offset, len): (u64, u32),
        bufs: &mut Bufs,
        f: &mut F,
    ) -> SourceResult<Result<(), Damaged>>
    where
        F: for<'x> FnMut(&dyn Fn() -> usize, Item<'x, C::Row<'x>>) -> SourceResult<()>,
    {
        let Bufs { records, lines } = bufs;
        let View::Digest(d) = view else {
            read_run(t, offset, len, lines, &mut |at, line| {
                f(at, Item::Line(line))
            })?;
            return Ok(Ok(()));
        };
        let rows = match d.digest.read_run::<C>(offset, len, records)? {
            Ok(rows) => rows,
            Err(damaged) => return Ok(Err(damaged)),
        };
        hand_on::<C>(t, rows, lines, f)
    }

    /// Reads `runs` on up to `threads` threads (`read` fills a run's
    /// items), and hands each run's items to `deliver` on this thread, in
    /// the order of `runs`. At most two read runs per thread wait to be
    /// delivered. The first error, in run order, stops the reading and is
    /// returned.
    fn runs_in_order<T: Send>(
        &self,
        runs: &[(u64, u32)],
        read: impl Fn(&mut Bufs, (u64, u32), &mut Vec<T>) -> SourceResult<()> + Sync,
        mut deliver: impl FnMut(Vec<T>),
    ) -> SourceResult<()> {
        let read = |bufs: &mut Bufs, run: &(u64, u32)| {
            let mut out = Vec::new();
            read(bufs, *run, &mut out).map(|()| out)
        };
        let workers = self.opts.threads.clamp(1, runs.len().max(1));
        if workers == 1 {
            let mut bufs = Bufs::default();
            for run in runs {
                deliver(read(&mut bufs, run)?);
            }
            return Ok(());
        }
        std::thread::scope(|s| {
            let receivers: Vec<_> = (0..workers)
                .map(|w| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(2);
                    let read = &read;
                    s.spawn(move || {
                        let mut bufs = Bufs::default();
                        for run in runs.iter().skip(w).step_by(workers) {
                            let result = read(&mut bufs, run);
                            let failed = result.is_err();
                            // A closed channel: the reader stopped at an
                            // earlier error.
                            if tx.send(result).is_err() || failed {
                                return;
                            }
                        }
                    });
                    rx
                })
                .collect();
            for i in 0..runs.len() {
                match receivers[i % workers].recv() {
                    Ok(result) => deliver(result?),
                    Err(_) => return Err(reader_panicked()),
                }
            }
            Ok(())
        })
    }

    /// Looks up the lines of each of a part's `keys` in `k`'s table: calls
    /// `f(state, i, line_number, item)` for each line of `keys[i]`, each
    /// key's lines in file order, and returns `state` (from `new_state`).
    /// A part read through a digest has its runs read in file order, nearby
    /// ones in one read (see [`Inner::keys_items`]); if a run is found
    /// damaged, the part is read again from the table's lines, from a new
    /// state (nothing of it was handed on).
    fn part_items<C: Codec, S, F>(
        &self,
        large: &LargeTable,
        k: Keyed,
        t: &TableFile,
        keys: &[UserId],
        new_state: impl Fn() -> S,
        f: F,
    ) -> SourceResult<S>
    where
        F: for<'x> Fn(&mut S, usize, &dyn Fn() -> usize, Item<'x, C::Row<'x>>) -> SourceResult<()>,
    {
        with_bufs(|bufs| {
            if let View::Digest(d) = self.view::<C>(large, k)? {
                let mut state = new_state();
                let read = self.keys_items::<C, _>(d, t, keys, bufs, &mut |i, at, item| {
                    f(&mut state, i, at, item)
                })?;
                match read {
                    Ok(()) => return Ok(state),
                    // Logged, the file removed, the table read from its lines.
                    Err(damaged) => drop(self.found_damaged(d, damaged)),
                }
            }
            let mut state = new_state();
            for (i, key) in keys.iter().enumerate() {
                self.each_item::<C, _>(large, k, t, key.as_str(), bufs, &mut |at, item| {
                    f(&mut state, i, at, item)
                })?;
            }
            Ok(state)
        })
    }

    /// Calls `f(i, line_number, item)` for each record of each `keys[i]`
    /// in digest `d`, each key's in file order. The runs all the keys need
    /// are read in file order, runs less than `SPAN_GAP` apart in one read
    /// of at most `MAX_SPAN` bytes: a digest written in key order (see
    /// `digest.rs`), looked up for keys in order, as the report asks for
    /// its sorted learners, is read front to back in a few large reads
    /// instead of one `pread` per key.
    ///
    /// The error is the one the keys looked up one by one would give: that
    /// of the first key, in `keys`' order, whose lookup fails. `Damaged`:
    /// a run was damaged; some keys' records may have been handed on.
    fn keys_items<C: Codec, F>(
        &self,
        d: &DigestReading,
        t: &TableFile,
        keys: &[UserId],
        bufs: &mut Bufs,
        f: &mut F,
    ) -> SourceResult<Result<(), Damaged>>
    where
        F: for<'x> FnMut(usize, &dyn Fn() -> usize, Item<'x, C::Row<'x>>) -> SourceResult<()>,
    {
        let mut wanted: Vec<(u64, u32, usize)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            wanted.extend(d.digest.runs(key.as_str()).map(|(o, l)| (o, l, i)));
        }
        // By offset; a key's runs keep their file order.
        wanted.sort_unstable();
        // The first failing key and its error: later keys' records are not
        // looked at (one by one, they would not have been reached).
        let mut failed: Option<(usize, SourceError)> = None;
        let Bufs { records, lines } = bufs;
        let mut rest = &wanted[..];
        while !rest.is_empty() {
            let (n, start, len) = first_span(rest);
            let (span, after) = rest.split_at(n);
            rest = after;
            let bytes = d.digest.read_span(start, len, records)?;
            for &(o, l, i) in span {
                if failed.as_ref().is_some_and(|(j, _)| *j <= i) {
                    continue;
                }
                let at = (o - start) as usize;
                let run = bytes.get(at..at + l as usize).unwrap_or_default();
                let rows = match Digest::decode_run::<C>(run) {
                    Ok(rows) => rows,
                    Err(damaged) => return Ok(Err(damaged)),
                };
                match hand_on::<C>(t, rows, lines, &mut |at, item| f(i, at, item)) {
                    Ok(Ok(())) => {}
                    Ok(Err(damaged)) => return Ok(Err(damaged)),
                    Err(e) => failed = Some((i, e)),
                }
            }
        }
        match failed {
            Some((_, e)) => Err(e),
            None => Ok(Ok(())),
        }
    }

    /// The reader threads (`threads` of them), started on first use.
    fn pool(&self) -> SourceResult<&rayon::ThreadPool> {
        self.pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.opts.threads.max(1))
                    .thread_name(|i| format!("exhaust-snapshot-{i}"))
                    // A panicking read drops its result: the waiting
                    // caller gets an error instead of the process aborting.
                    .panic_handler(|_| tracing::error!("a snapshot reader thread panicked"))
                    .build()
                    .map_err(|e| {
                        SourceError::unavailable(
                            SOURCE,
                            format!("cannot start the reader threads: {e}"),
                        )
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs `f` over parts of `users` on up to `threads` threads and joins
    /// the results in order. Worth it only for chunks of some size.
    fn parallel<T: Send>(
        &self,
        users: &[UserId],
        f: impl Fn(&[UserId]) -> SourceResult<Vec<T>> + Sync,
    ) -> SourceResult<Vec<T>> {
        let threads = self.opts.threads.max(1);
        if threads == 1 || users.len() < 256 {
            return f(users);
        }
        // A few parts per thread, so a thread that finishes early takes
        // over the work of one that is slow.
        let part = users.len().div_ceil(threads * 4).max(128);
        let pool = self.pool()?;
        // On the pool: called from one of its threads (a chunk's read), the
        // parts are shared with the other threads by work stealing.
        let results: Vec<SourceResult<Vec<T>>> =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| users.par_chunks(part).map(&f).collect())
            }))
            .map_err(|_| reader_panicked())?;
        let results = results.into_iter().collect::<SourceResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(results.iter().map(Vec::len).sum());
        for r in results {
            out.extend(r);
        }
        Ok(out)
    }
}

impl Inner {
    /// The user id a user cache key names: the rest of `user:<id>`.
    fn user_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.opts.user_key_prefix.as_str())
    }
}

impl UserSource for Snapshot {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        let ids = ids.to_vec();
        self.off_thread(move |inner| inner.users(&ids)).await
    }
}

impl Inner {
    fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Users>(&self.users, USERS)?;
        let Some(t) = self.table(USERS.table)? else {
            return Ok(vec![None; ids.len()]);
        };
        self.parallel(ids, |ids| {
            self.part_items::<Users, _, _>(
                &self.users,
                USERS,
                t,
                ids,
                || vec![None; ids.len()],
                |found, i, at, item| {
                    let row = row_of::<Users>(t, at, item)?;
                    // Runs are found by hash: only this user's lines count,
                    // the last one found winning.
                    if row.key.as_deref().and_then(|k| self.user_id_of(k)) == Some(ids[i].as_str())
                    {
                        found[i] = Some(row.value.0);
                    }
                    Ok(())
                },
            )
        })
    }
}

impl OptionalNodeSource for Snapshot {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        let key = format!(
            "{c}:{c}:{}",
            self.inner.opts.optional_nodes_suffix,
            c = collection.as_str()
        );
        Ok(self
            .inner
            .relations()?
            .get(&key)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default())
    }
}

impl AttemptSource for Snapshot {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        let (collection, users) = (collection.clone(), users.to_vec());
        self.off_thread(move |inner| inner.attempts(&collection, &users))
            .await
    }
}

impl ActivitySource for Snapshot {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        let (batch, activities, users) = (batch.clone(), activities.to_vec(), users.to_vec());
        self.off_thread(move |inner| inner.activity(&batch, &activities, &users))
            .await
    }
}

impl Snapshot {
    /// Runs `f` on the reader pool and waits for it without holding the
    /// caller's thread: the report builds one chunk's rows while the next
    /// chunk's lines are read (`build_rows` polls the reads first). The
    /// pool shares the tables and indexes; if the caller stops waiting,
    /// the read still finishes and its result is dropped.
    fn off_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> SourceResult<T> + Send + 'static,
    ) -> impl Future<Output = SourceResult<T>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.inner.pool().map(|pool| {
            pool.spawn(move || {
                // The receiver is gone only when the caller stopped waiting.
                let _ = tx.send(f(&inner));
            });
        });
        async move {
            started?;
            rx.await.unwrap_or_else(|_| Err(reader_panicked()))
        }
    }
}

impl Inner {
    fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Attempts>(&self.attempts, ATTEMPTS)?;
        let Some(t) = self.table(ATTEMPTS.table)? else {
            return Ok(Vec::new());
        };
        self.parallel(users, |users| {
            let found = self.part_items::<Attempts, _, _>(
                &self.attempts,
                ATTEMPTS,
                t,
                users,
                || Found::with_capacity(users.len() * 8),
                |found, i, at, item| {
                    let row = row_of::<Attempts>(t, at, item)?;
                    // Runs are found by hash: only this user's lines count.
                    if row.user_id.as_deref() != Some(users[i].as_str()) {
                        return Ok(());
                    }
                    let a = row.into_attempt().map_err(|e| {
                        SourceError::bad_data(SOURCE, format!("assessment_aggregator: {e}"))
                    })?;
                    if &a.course_id == collection {
                        found.push(i, a);
                    }
                    Ok(())
                },
            )?;
            Ok(found.in_key_order())
        })
    }
}

impl Inner {
    fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Activities>(&self.activity, ACTIVITY)?;
        let Some(t) = self.table(ACTIVITY.table)? else {
            return Ok(Vec::new());
        };
        let wanted: rustc_hash::FxHashSet<&str> =
            activities.iter().map(ContentId::as_str).collect();
        let context = format!("cb:{batch}");
        self.parallel(users, |users| {
            let found = self.part_items::<Activities, _, _>(
                &self.activity,
                ACTIVITY,
                t,
                users,
                || Found::with_capacity(users.len() * 8),
                |found, i, at, item| {
                    let row = row_of::<Activities>(t, at, item)?;
                    let relevant = row.activity_type.as_deref() == Some("Course")
                        && row.context_id.as_deref() == Some(context.as_str())
                        && row
                            .activity_id
                            .as_deref()
                            .is_some_and(|a| wanted.contains(a));
                    if relevant {
                        let agg = row.into_aggregate().map_err(|e| {
                            SourceError::bad_data(SOURCE, format!("user_activity_agg: {e}"))
                        })?;
                        if agg.user_id == users[i] {
                            found.push(i, agg);
                        }
                    }
                    Ok(())
                },
            )?;
            Ok(found.in_key_order())
        })
    }
}

/// The first span of `runs` (`(offset, len, _)`, sorted by offset): how
/// many runs it covers, and its offset and length. A run joins the span
/// when it starts at most `SPAN_GAP` bytes after the span's end and the
/// span stays within `MAX_SPAN` bytes; the first run is in it whatever its
/// length. Runs may overlap (one run wanted by two keys).
fn first_span<T>(runs: &[(u64, u32, T)]) -> (usize, u64, u32) {
    let Some((start, first, _)) = runs.first() else {
        return (0, 0, 0);
    };
    let start = *start;
    let mut end = start + u64::from(*first);
    let n = 1 + runs[1..]
        .iter()
        .take_while(|(o, l, _)| {
            let e = o + u64::from(*l);
            let joins = *o <= end + SPAN_GAP && e.max(end) - start <= MAX_SPAN;
            if joins {
                end = end.max(e);
            }
            joins
        })
        .count();
    // At most `MAX_SPAN`, or the first run's length (a `u32`).
    (n, start, (end - start) as u32)
}

/// What a part's lookups found, each item with the index of its key.
struct Found<T> {
    keys: Vec<u32>,
    items: Vec<T>,
}

impl<T> Found<T> {
    /// Room for `n` items: a chunk's learners have a few attempts and
    /// aggregates each, so the vectors grow a few times, not item by item.
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: Vec::with_capacity(n),
            items: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, key: usize, item: T) {
        self.keys.push(key as u32);
        self.items.push(item);
    }

    /// The items in the order the keys were asked for, each key's in the
    /// order found (file order). Found in that order already when a digest
    /// in key order is read for keys in order, as the report asks for
    /// them: then nothing is moved.
    fn in_key_order(self) -> Vec<T> {
        let Self { keys, items } = self;
        if keys.is_sorted() {
            return items;
        }
        // Stable: a key's items keep their order.
        let mut order: Vec<(u32, u32)> = keys.iter().zip(0u32..).map(|(&k, i)| (k, i)).collect();
        order.sort_unstable();
        let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
        order
            .iter()
            .filter_map(|&(_, i)| slots[i as usize].take())
            .collect()
    }
}

impl HierarchySource for Snapshot {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        let index = self.inner.index(&self.inner.hierarchies, HIERARCHIES)?;
        let Some(t) = self.inner.table(HIERARCHIES.table)? else {
            return Ok(None);
        };
        let mut found = None;
        let mut buf = Vec::new();
        for (offset, len) in index.runs(collection.as_str()) {
            read_run(t, offset, len, &mut buf, &mut |line_at, line| {
                let row: HierarchyRow = serde_json::from_str(line)
                    .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
                if row.identifier.as_deref() == Some(collection.as_str()) {
                    found = match row.hierarchy {
                        Some(serde_json::Value::String(s)) => Some(s),
                        // A hierarchy stored as an object rather than its text.
                        Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
                        _ => None,
                    };
                }
                Ok(())
            })?;
        }
        Ok(found)
    }
}

impl CollectionSource for Snapshot {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        let wanted: HashSet<&str> = ids.iter().map(ContentId::as_str).collect();
        Ok(self
            .inner
            .contents()?
            .iter()
            .filter(|(m, _)| wanted.contains(m.identifier.as_str()))
            .map(|(m, _)| m.clone())
            .collect())
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        let filters = body
            .pointer("/request/filters")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                SourceError::bad_data(SOURCE, "a search filter needs request.filters")
            })?;
        let mut out = Vec::new();
        for (meta, raw) in self.inner.contents()? {
            if matches_filters(raw, filters)? {
                out.push(meta.clone());
            }
        }
        Ok(out)
    }
}

/// The subset of the search API's filters a snapshot can answer: each filter
/// is a value or a list of values, matched exactly against the field.
fn matches_filters(
    row: &serde_json::Map<String, serde_json::Value>,
    filters: &serde_json::Map<String, serde_json::Value>,
) -> SourceResult<bool> {
    for (name, wanted) in filters {
        let actual = row.get(name);
        let hit = match wanted {
            serde_json::Value::Array(values) => values.iter().any(|v| Some(v) == actual),
            serde_json::Value::Object(_) => {
                return Err(SourceError::bad_data(
                    SOURCE,
                    format!(
                        "the snapshot's search supports only exact-value filters; {name} has an operator"
                    ),
                ));
            }
            v => Some(v) == actual,
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

impl CustodianOrgSource for Snapshot {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        self.inner
            .custodian
            .get_or_init(|| {
                #[derive(Deserialize)]
                struct Row {
                    id: Option<String>,
                    value: Option<String>,
                }
                let mut found = None;
                if let Some(t) = self.inner.table("system_settings")? {
                    read_all(t, |line, n| {
                        let row: Row = parse(t, n, line)?;
                        if row.id.as_deref() == Some("custodianOrgId") {
                            found = row.value.map(OrgId::new);
                        }
                        Ok(())
                    })?;
                }
                Ok(found)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spans `runs` are read in, as (runs covered, offset, length).
    fn spans(mut runs: &[(u64, u32, ())]) -> Vec<(usize, u64, u32)> {
        let mut out = Vec::new();
        while !runs.is_empty() {
            let span = first_span(runs);
            out.push(span);
            runs = &runs[span.0..];
        }
        out
    }

    #[test]
    fn runs_close_together_are_read_in_one_span() {
        let gap = SPAN_GAP;
        // Adjacent, then a gap of exactly SPAN_GAP, then one byte more.
        let runs = [
            (0, 100, ()),
            (100, 50, ()),
            (150 + gap, 10, ()),
            (160 + 2 * gap + 1, 10, ()),
        ];
        assert_eq!(
            spans(&runs),
            vec![(3, 0, (160 + gap) as u32), (1, 160 + 2 * gap + 1, 10)]
        );
    }

    #[test]
    fn spans_stay_within_max_span_unless_one_run_is_longer() {
        let half = (MAX_SPAN / 2) as u32;
        let runs = [
            (0, half, ()),
            (u64::from(half), half, ()),
            // Would make the span one byte too long.
            (MAX_SPAN, 1, ()),
            // Longer than MAX_SPAN alone: a span of its own.
            (MAX_SPAN + 1, MAX_SPAN as u32 * 2, ()),
            (3 * MAX_SPAN + 1, 5, ()),
        ];
        assert_eq!(
            spans(&runs),
            vec![
                (2, 0, MAX_SPAN as u32),
                (1, MAX_SPAN, 1),
                (1, MAX_SPAN + 1, MAX_SPAN as u32 * 2),
                (1, 3 * MAX_SPAN + 1, 5),
            ]
        );
    }

    #[test]
    fn a_run_wanted_twice_is_read_once_in_its_span() {
        // Two keys with one hash share a run: it is listed twice.
        let runs = [(10, 40, ()), (10, 40, ()), (60, 5, ())];
        assert_eq!(spans(&runs), vec![(3, 10, 55)]);
    }

    /// A digest whose runs are crafted (right checksums) to hold a line
    /// record past the table's end, `u32::MAX` bytes long: the lookups find
    /// it damaged before reading anything (no 4 GiB buffer), read the
    /// table's lines instead, and the report is the fresh one.
    #[test]
    fn a_line_record_past_the_table_is_damage_not_a_huge_read() {
        use crate::generate::{GenParams, generate};
        use exhaust_core::report::{ReportOptions, VecSink, build_report};
        let dir = tempfile::tempdir().expect("tempdir");
        let params = GenParams {
            batches: 1,
            enrolments_per_batch: 6,
            users: 8,
            ..GenParams::default()
        };
        let summary = generate(dir.path(), &params).expect("generates");
        let batch = exhaust_core::BatchId::new(summary.batch_ids[0].clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let report = |opts: SnapshotOptions| {
            let snapshot = Snapshot::open(dir.path(), opts).expect("opens");
            let mut sink = VecSink::default();
            runtime
                .block_on(build_report(
                    &snapshot,
                    &batch,
                    None,
                    &ReportOptions::default(),
                    &mut sink,
                ))
                .map(|_| sink.rows)
        };
        let persisted = || SnapshotOptions {
            persist_index_min_bytes: Some(0),
            digest_min_percent: 0,
            ..SnapshotOptions::default()
        };
        let fresh = report(SnapshotOptions {
            persist_index_min_bytes: None,
            ..SnapshotOptions::default()
        })
        .expect("builds");
        assert_eq!(report(persisted()).expect("builds"), fresh);

        let digest = std::fs::read_dir(dir.path().join(crate::snapshot::index::INDEX_DIR))
            .expect("index folder")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with("user_cache.jsonl.") && name.ends_with(".dig")
            })
            .expect("the user cache's digest");
        let mut bytes = std::fs::read(&digest).expect("read");
        // The run index: 16 bytes a run (hash, length, offset) before the
        // 16-byte trailer (run count, checksum).
        let word = |b: &[u8], at: usize, n: usize| {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b[at..at + n]);
            u64::from_le_bytes(w)
        };
        let count = word(&bytes, bytes.len() - 16, 8) as usize;
        let index_at = bytes.len() - 16 - 16 * count;
        for r in 0..count {
            let len = word(&bytes, index_at + 16 * r + 4, 4) as usize;
            let offset = word(&bytes, index_at + 16 * r + 8, 8) as usize;
            // Line records only: the first at offset 0 (its number padded
            // with empty continuation bytes to fill the run exactly),
            // `u32::MAX` bytes long; then empty lines; no text.
            let fields = len - 8;
            let pad = (fields - 7) % 3;
            let mut run = (fields as u32).to_le_bytes().to_vec();
            run.extend(std::iter::repeat_n(0x80, pad));
            run.extend([0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
            run.resize(4 + fields, 0);
            let mut sum = crate::snapshot::index::Mixer::new(3);
            sum.write(&run);
            run.extend_from_slice(&(sum.finish() as u32).to_le_bytes());
            bytes[offset..offset + len].copy_from_slice(&run);
        }
        std::fs::write(&digest, &bytes).expect("write");

        assert_eq!(report(persisted()).expect("builds from the lines"), fresh);
        assert!(!digest.exists(), "the crafted digest is removed");
    }

    #[test]
    fn found_items_come_back_in_the_order_of_their_keys() {
        let mut found = Found::with_capacity(0);
        for (key, item) in [(2, "c1"), (0, "a1"), (2, "c2"), (1, "b1"), (0, "a2")] {
            found.push(key, item);
        }
        assert_eq!(found.in_key_order(), ["a1", "a2", "b1", "c1", "c2"]);
        let mut sorted = Found::with_capacity(4);
        for (key, item) in [(0, "a"), (0, "b"), (3, "c")] {
            sorted.push(key, item);
        }
        assert_eq!(sorted.in_key_order(), ["a", "b", "c"]);
    }
}
