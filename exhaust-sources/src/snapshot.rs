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
//! batches it serves.
//!
//! A chunk's reads (profiles, attempts, aggregates) run on the snapshot's
//! pool of reader threads, so the caller's thread is free meanwhile: the
//! report writes one chunk's rows while the next chunk is read. The other
//! reads (the batch, its hierarchy, its enrolments, which several threads
//! parse) do blocking file I/O inside their async methods: they never wait
//! on a network, and a caller inside a multi-threaded runtime that needs the
//! thread free can run the build on a blocking task.

use crate::index::{IndexStore, KeyIndex, key_hash};
use crate::jsonscan::top_level_str;
use crate::rows::{
    ActivityRow, AttemptRow, BatchRow, CacheRow, ContentRow, EnrolmentRow, HierarchyRow,
    UserCacheRow,
};
use crate::table::{SOURCE, TableFile, read_all, text_lines};
use exhaust_core::model::{
    ActivityAggregate, AssessmentAttempt, CollectionMeta, CourseBatch, EnrolmentRecord, UserEntry,
};
use exhaust_core::source::{
    ActivitySource, AttemptSource, BatchSource, CollectionBatchSource, CollectionSource,
    CustodianOrgSource, EnrolmentSource, HierarchySource, OptionalNodeSource, ReadCounter,
    SourceError, SourceResult, UserSource,
};
use exhaust_core::{BatchId, ContentId, OrgId, UserId};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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
    enrolment_index: Lazy<KeyIndex>,
    users: Lazy<KeyIndex>,
    attempts: Lazy<KeyIndex>,
    activity: Lazy<KeyIndex>,
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
                enrolment_index: OnceLock::new(),
                tables: TABLES.iter().map(|t| (*t, OnceLock::new())).collect(),
                batches: OnceLock::new(),
                contents: OnceLock::new(),
                relations: OnceLock::new(),
                custodian: OnceLock::new(),
                users: OnceLock::new(),
                attempts: OnceLock::new(),
                activity: OnceLock::new(),
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

    /// The index of `table` by the top-level string `field` of each line
    /// (`key_of` maps the field's value to the key; `None`: not indexed).
    /// `spec` names what is indexed, for the persisted copy. Built once per
    /// `Snapshot`; read from disk when a valid copy is there, written there
    /// when the table is large.
    fn index<'a>(
        &'a self,
        cell: &'a Lazy<KeyIndex>,
        table: &'static str,
        field: &'static str,
        spec: &str,
        lenient: bool,
        key_of: impl Fn(&str) -> Option<&str>,
    ) -> SourceResult<&'a KeyIndex> {
        cell.get_or_init(|| {
            let Some(t) = self.table(table)? else {
                return Ok(KeyIndex::default());
            };
            let started = std::time::Instant::now();
            let spec = format!("{field}|{spec}|lenient={lenient}");
            let persist = t.data_len >= self.store.min_bytes;
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
                let value = match top_level_str(line, field) {
                    Ok(v) => v,
                    // Kept under a key no id has, for the reader to judge.
                    Err(_) if lenient => Some(std::borrow::Cow::Borrowed(UNREADABLE)),
                    Err(e) => return Err(row_error(t, n, &e.0)),
                };
                Ok(value
                    .as_deref()
                    .and_then(&key_of)
                    .map(|k| key_hash(k.as_bytes())))
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
        })
        .as_ref()
        .map_err(Clone::clone)
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

/// The key of a table keyed by a field's whole value.
fn whole_key(value: &str) -> Option<&str> {
    Some(value)
}

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
        let Some(t) = self.inner.table("user_enrolments")? else {
            return Ok(());
        };
        let chunk_size = self.inner.opts.enrolment_chunk.max(1);
        let mut chunk = Vec::with_capacity(chunk_size);
        // The report reads profiles, attempts and aggregates right after the
        // enrolments: index those tables on another thread meanwhile. Errors
        // are kept in the indexes' cells and reported by the lookups.
        std::thread::scope(|s| {
            if self.inner.opts.threads > 1 {
                s.spawn(|| {
                    let _ = self.inner.user_index();
                    let _ = self
                        .inner
                        .by_user_index(&self.inner.attempts, "assessment_aggregator");
                    let _ = self
                        .inner
                        .by_user_index(&self.inner.activity, "user_activity_agg");
                });
            }
            let index = self.inner.index(
                &self.inner.enrolment_index,
                "user_enrolments",
                "batchid",
                "",
                true,
                whole_key,
            )?;
            let mut buf = Vec::new();
            // Lines whose batch id could not be read: one that mentions this
            // batch's id is parsed, and fails the batch naming its line (a
            // bad line of another batch does not fail this one).
            let needle = serde_json::to_string(batch.batch_id.as_str())
                .map_err(|e| SourceError::bad_data(SOURCE, e.to_string()))?;
            // A line of this batch as a record; `None` for another batch's.
            let record = |line_at: &dyn Fn() -> usize, line: &str| {
                let row: EnrolmentRow = serde_json::from_str(line)
                    .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
                if row.batchid.as_deref() != Some(batch.batch_id.as_str()) {
                    return Ok(None);
                }
                row.into_record()
                    .map(Some)
                    .map_err(|e| row_error(t, line_at(), &e))
            };
            self.inner
                .lookup_lines(index, t, UNREADABLE, &mut buf, |line_at, line| {
                    if line.contains(needle.as_str()) {
                        chunk.extend(record(line_at, line)?);
                    }
                    Ok(())
                })?;
            // The batch's own lines, parsed on `threads` threads and handed
            // on in file order (the report keeps the first row of a user).
            let runs: Vec<(u64, u32)> = index.runs(batch.batch_id.as_str()).collect();
            self.inner.runs_in_order(
                t,
                &runs,
                |line_at, line, out| {
                    out.extend(record(line_at, line)?);
                    Ok(())
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
    /// Calls `f(line_number, line)` for each line of `key` in an indexed
    /// table, in file order (`read_run` per run of lines); `line_number`
    /// counts (error path only).
    fn lookup_lines(
        &self,
        index: &KeyIndex,
        t: &TableFile,
        key: &str,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&dyn Fn() -> usize, &str) -> SourceResult<()>,
    ) -> SourceResult<()> {
        for (offset, len) in index.runs(key) {
            read_run(t, offset, len, buf, &mut f)?;
        }
        Ok(())
    }

    /// Reads and parses `runs` of `t` on up to `threads` threads, and hands
    /// each run's items to `deliver` on this thread, in the order of
    /// `runs`. At most two parsed runs per thread wait to be delivered. The
    /// first error, in run order, stops the reading and is returned.
    fn runs_in_order<T: Send>(
        &self,
        t: &TableFile,
        runs: &[(u64, u32)],
        parse: impl Fn(&dyn Fn() -> usize, &str, &mut Vec<T>) -> SourceResult<()> + Sync,
        mut deliver: impl FnMut(Vec<T>),
    ) -> SourceResult<()> {
        let read = |buf: &mut Vec<u8>, &(offset, len): &(u64, u32)| {
            let mut out = Vec::new();
            read_run(t, offset, len, buf, &mut |line_at, line| {
                parse(line_at, line, &mut out)
            })
            .map(|()| out)
        };
        let workers = self.opts.threads.clamp(1, runs.len().max(1));
        if workers == 1 {
            let mut buf = Vec::new();
            for run in runs {
                deliver(read(&mut buf, run)?);
            }
            return Ok(());
        }
        std::thread::scope(|s| {
            let receivers: Vec<_> = (0..workers)
                .map(|w| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(2);
                    let read = &read;
                    s.spawn(move || {
                        let mut buf = Vec::new();
                        for run in runs.iter().skip(w).step_by(workers) {
                            let result = read(&mut buf, run);
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

    fn user_index(&self) -> SourceResult<&KeyIndex> {
        let spec = format!("prefix={}", self.opts.user_key_prefix);
        self.index(&self.users, "user_cache", "key", &spec, false, |k| {
            self.user_id_of(k)
        })
    }

    fn by_user_index<'a>(
        &'a self,
        cell: &'a Lazy<KeyIndex>,
        table: &'static str,
    ) -> SourceResult<&'a KeyIndex> {
        self.index(cell, table, "user_id", "", false, whole_key)
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
        let index = self.user_index()?;
        self.parallel(ids, |ids| self.users_part(index, ids))
    }

    fn users_part(&self, index: &KeyIndex, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        let mut buf = Vec::new();
        let mut out = Vec::with_capacity(ids.len());
        let Some(t) = self.table("user_cache")? else {
            return Ok(vec![None; ids.len()]);
        };
        for id in ids {
            let mut entry = None;
            self.lookup_lines(index, t, id.as_str(), &mut buf, |line_at, line| {
                let row: UserCacheRow = serde_json::from_str(line)
                    .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
                if row.key.as_deref().and_then(|k| self.user_id_of(k)) == Some(id.as_str()) {
                    entry = Some(row.value.0);
                }
                Ok(())
            })?;
            out.push(entry);
        }
        Ok(out)
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
        let index = self.by_user_index(&self.attempts, "assessment_aggregator")?;
        let Some(t) = self.table("assessment_aggregator")? else {
            return Ok(Vec::new());
        };
        self.parallel(users, |users| {
            let mut buf = Vec::new();
            let mut out = Vec::new();
            for user in users {
                self.lookup_lines(index, t, user.as_str(), &mut buf, |line_at, line| {
                    let row: AttemptRow = serde_json::from_str(line)
                        .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
                    // Runs are found by hash: only this user's lines count.
                    if row.user_id.as_deref() != Some(user.as_str()) {
                        return Ok(());
                    }
                    let a = row.into_attempt().map_err(|e| {
                        SourceError::bad_data(SOURCE, format!("assessment_aggregator: {e}"))
                    })?;
                    if &a.course_id == collection {
                        out.push(a);
                    }
                    Ok(())
                })?;
            }
            Ok(out)
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
        let index = self.by_user_index(&self.activity, "user_activity_agg")?;
        self.parallel(users, |users| {
            self.activity_part(index, batch, activities, users)
        })
    }

    fn activity_part(
        &self,
        index: &KeyIndex,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        let wanted: rustc_hash::FxHashSet<&str> =
            activities.iter().map(ContentId::as_str).collect();
        let context = format!("cb:{batch}");
        let Some(t) = self.table("user_activity_agg")? else {
            return Ok(Vec::new());
        };
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for user in users {
            self.lookup_lines(index, t, user.as_str(), &mut buf, |line_at, line| {
                let row: ActivityRow = serde_json::from_str(line)
                    .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
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
                    if &agg.user_id == user {
                        out.push(agg);
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

impl HierarchySource for Snapshot {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        let index = self.inner.index(
            &self.inner.hierarchies,
            "content_hierarchy",
            "identifier",
            "",
            false,
            whole_key,
        )?;
        let Some(t) = self.inner.table("content_hierarchy")? else {
            return Ok(None);
        };
        let mut found = None;
        let mut buf = Vec::new();
        self.inner
            .lookup_lines(index, t, collection.as_str(), &mut buf, |line_at, line| {
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
