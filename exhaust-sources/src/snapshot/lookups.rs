//! The lookup engine: a large table's lines (or digest records) for a key,
//! or for the keys of a part, read in as few reads as the file allows
//! (spans of nearby runs), each line handed on as its JSON text or its row,
//! in key order, with the error the keys looked up one by one would give.

use super::*;

/// A `LargeTable` as one read uses it from start to end (a digest found
/// damaged during the read does not switch it to the lines half-way).
#[derive(Clone, Copy)]
pub(super) enum View<'a> {
    Lines(&'a KeyIndex),
    Digest(&'a DigestReading),
}

/// What a lookup hands on for each line: its JSON text, or its row as the
/// digest keeps it (see [`row_of`]).
pub(super) enum Item<'x, R> {
    Line(&'x str),
    Row(R),
}

/// The row of a line: parsed from its JSON, or as the digest gave it.
pub(super) fn row_of<'x, C: Codec>(
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
pub(super) struct Bufs {
    pub(super) records: Vec<u8>,
    pub(super) lines: Vec<u8>,
}

thread_local! {
    /// Each reader thread's buffers, kept from one part's lookups to the
    /// next: a span buffer grows to `MAX_SPAN` once per thread, not once
    /// per part (a new zeroed megabyte for every 125 learners and table).
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Calls `f` with this thread's buffers (new ones if they are in use: a
/// lookup inside another).
pub(super) fn with_bufs<T>(f: impl FnOnce(&mut Bufs) -> T) -> T {
    BUFS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => f(&mut bufs),
        Err(_) => f(&mut Bufs::default()),
    })
}

/// Digest runs this close to each other are read as one span (the bytes
/// between them read and skipped): copying 8 KiB more out of the page
/// cache costs about what one more `pread` does.
pub(super) const SPAN_GAP: u64 = 8 << 10;

/// At most this many bytes per span read.
pub(super) const MAX_SPAN: u64 = 1 << 20;

pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    t: &TableFile,
    line_no: usize,
    line: &[u8],
) -> SourceResult<T> {
    serde_json::from_slice(line).map_err(|e| row_error(t, line_no, &e.to_string()))
}

pub(super) fn row_error(t: &TableFile, line_no: usize, detail: &str) -> SourceError {
    SourceError::bad_data(SOURCE, format!("{} line {line_no}: {detail}", t.display))
}

/// A reader thread panicked: its part of the read is lost.
pub(super) fn reader_panicked() -> SourceError {
    SourceError::bad_data(SOURCE, "a snapshot reader thread panicked")
}

/// Calls `f(line_number, item)` for each of a digest run's records, in
/// order: its row, or (a line kept as JSON) the line read from the table.
/// Stops at the first error. `Damaged`, with nothing handed on, when a
/// line record lies past the table's end: a damaged or crafted digest,
/// whose record would otherwise make the read allocate up to 4 GiB.
pub(super) fn hand_on<'x, C: Codec>(
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
pub(super) fn read_run(
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

impl Inner {
    /// `large` as one read uses it: its digest, unless it has none or it
    /// was found damaged, else the offset index of its lines.
    pub(super) fn view<'a, C: Codec>(
        &'a self,
        large: &'a LargeTable,
        k: Keyed,
    ) -> SourceResult<View<'a>> {
        match self.digest_of::<C>(large, k)? {
            Some(d) if !d.damaged.load(Ordering::Acquire) => Ok(View::Digest(d)),
            _ => self.index(&large.lines, k).map(View::Lines),
        }
    }

    /// A digest run was found damaged: the file is removed (the next run
    /// rebuilds it) and later reads of the table use its lines. The error
    /// for a read that cannot go on.
    pub(super) fn found_damaged(&self, d: &DigestReading, damaged: Damaged) -> SourceError {
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
    pub(super) fn each_item<C: Codec, F>(
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
    pub(super) fn run_items<C: Codec, F>(
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
    pub(super) fn runs_in_order<T: Send>(
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
    pub(super) fn part_items<C: Codec, S, F>(
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
            // The table's lines: every key's runs found first (see
            // `KeyIndex::runs_of_keys`), then read in key order, so the
            // first error is the first failing key's, as one by one.
            let index = self.index(&large.lines, k)?;
            let mut wanted: Vec<(u64, u32, usize)> = Vec::with_capacity(keys.len());
            index.runs_of_keys(keys.iter().map(UserId::as_str), &mut wanted);
            let mut state = new_state();
            for &(offset, len, i) in &wanted {
                read_run(t, offset, len, &mut bufs.lines, &mut |at, line| {
                    f(&mut state, i, at, Item::Line(line))
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
    pub(super) fn keys_items<C: Codec, F>(
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
        let mut wanted: Vec<(u64, u32, usize)> = Vec::with_capacity(keys.len());
        d.digest
            .runs_of_keys(keys.iter().map(UserId::as_str), &mut wanted);
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
}

/// The first span of `runs` (`(offset, len, _)`, sorted by offset): how
/// many runs it covers, and its offset and length. A run joins the span
/// when it starts at most `SPAN_GAP` bytes after the span's end and the
/// span stays within `MAX_SPAN` bytes; the first run is in it whatever its
/// length. Runs may overlap (one run wanted by two keys).
pub(super) fn first_span<T>(runs: &[(u64, u32, T)]) -> (usize, u64, u32) {
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
pub(super) struct Found<T> {
    pub(super) keys: Vec<u32>,
    pub(super) items: Vec<T>,
}

impl<T> Found<T> {
    /// Room for `n` items: a chunk's learners have a few attempts and
    /// aggregates each, so the vectors grow a few times, not item by item.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            keys: Vec::with_capacity(n),
            items: Vec::with_capacity(n),
        }
    }

    pub(super) fn push(&mut self, key: usize, item: T) {
        self.keys.push(key as u32);
        self.items.push(item);
    }

    /// The items in the order the keys were asked for, each key's in the
    /// order found (file order). Found in that order already when a digest
    /// in key order is read for keys in order, as the report asks for
    /// them: then nothing is moved.
    pub(super) fn in_key_order(self) -> Vec<T> {
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
