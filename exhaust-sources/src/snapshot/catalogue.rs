//! The snapshot's tables and what finds their lines: each table file opened
//! once, the small ones read whole, the large ones indexed by key (offsets,
//! persisted when large) or read through their digest, decided once per
//! `Snapshot`.

use super::*;

impl Inner {
    pub(super) fn table(&self, name: &'static str) -> SourceResult<Option<&TableFile>> {
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
    pub(super) fn digest_of<'a, C: Codec>(
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
    pub(super) fn index<'a>(
        &'a self,
        cell: &'a Lazy<KeyIndex>,
        k: Keyed,
    ) -> SourceResult<&'a KeyIndex> {
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
    /// key scan, or read back), and the snapshot was read before (the
    /// index was read back; or `digest_on_first_read`). Decided once, when
    /// first needed: a run that finds every digest written never asks.
    pub(super) fn writes_digests(&self) -> SourceResult<bool> {
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
                let again = self.stats.enrolments_loaded.load(Ordering::Relaxed);
                tracing::debug!(
                    batch = %batch,
                    percent,
                    again,
                    "the batch's share of the enrolments; whether an earlier run read them"
                );
                // A first read leaves the digests to a later one.
                (again || self.opts.digest_on_first_read) && percent >= f64::from(min)
            }
            // Reads not started by a batch's enrolments: nothing to judge by.
            _ => self.opts.digest,
        };
        Ok(*self.write_digests.get_or_init(|| write))
    }

    /// What a persisted index or digest of `k` was built by (it must match).
    pub(super) fn spec(&self, k: Keyed) -> String {
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
    pub(super) fn line_key(
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
    pub(super) fn build_index(&self, t: &TableFile, k: Keyed) -> SourceResult<KeyIndex> {
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
                    if table == ENROLMENTS.table {
                        self.stats.enrolments_loaded.store(true, Ordering::Relaxed);
                    }
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

    pub(super) fn batches(&self) -> SourceResult<&HashMap<String, CourseBatch>> {
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

    pub(super) fn contents(
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

    pub(super) fn relations(&self) -> SourceResult<&HashMap<String, Vec<String>>> {
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
pub(super) const UNREADABLE: &str = "\u{0}unreadable";

/// A large table and what its lines are found by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keyed {
    pub(super) table: &'static str,
    /// The top-level string field that holds each line's key.
    pub(super) field: &'static str,
    /// A line whose key cannot be read is kept (under `UNREADABLE`) for
    /// the lookup to judge, rather than failing the whole table.
    pub(super) lenient: bool,
    /// The field is a user cache key: the key is the user id after the
    /// configured prefix (lines with another prefix are not indexed).
    pub(super) user_key: bool,
    /// Its digest is written in key order: the table is looked up by user,
    /// for a chunk of learners in user id order (see `Inner::keys_items`).
    pub(super) in_key_order: bool,
}

pub(super) const ENROLMENTS: Keyed = Keyed {
    table: "user_enrolments",
    field: "batchid",
    lenient: true,
    user_key: false,
    in_key_order: false,
};
pub(super) const USERS: Keyed = Keyed {
    table: "user_cache",
    field: "key",
    lenient: false,
    user_key: true,
    in_key_order: true,
};
pub(super) const ATTEMPTS: Keyed = Keyed {
    table: "assessment_aggregator",
    field: "user_id",
    lenient: false,
    user_key: false,
    in_key_order: true,
};
pub(super) const ACTIVITY: Keyed = Keyed {
    table: "user_activity_agg",
    field: "user_id",
    lenient: false,
    user_key: false,
    in_key_order: true,
};
pub(super) const HIERARCHIES: Keyed = Keyed {
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
pub(super) struct LargeTable {
    pub(super) digest: Lazy<Option<DigestReading>>,
    pub(super) lines: Lazy<KeyIndex>,
}

#[derive(Debug)]
pub(super) struct DigestReading {
    pub(super) digest: Digest,
    /// Set when a run of the digest was found damaged: from then on the
    /// table is read through its lines.
    pub(super) damaged: AtomicBool,
}

impl DigestReading {
    pub(super) fn new(digest: Digest) -> Self {
        Self {
            digest,
            damaged: AtomicBool::new(false),
        }
    }
}
