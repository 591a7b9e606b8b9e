//! The digest of a large snapshot table: each line's decoded fields in a
//! compact binary form, persisted beside the offset index, so that a later
//! run reads a batch's rows without parsing their JSON again.
//!
//! A report spends most of its time reading the lines a batch needs: half
//! of it parsing their JSON, a fifth copying them out of the page cache
//! (BENCHMARKS.md). The first run of a table reads every line anyway to
//! index it; the digest keeps what that reading decoded, in the table's
//! own line order, or (the tables looked up by user) sorted by key, so
//! that a chunk of learners in user id order reads its records front to
//! back in a few large reads instead of one read per learner:
//! - one record per indexed line: the line's offset in the table and
//!   either its row (the fields the report reads, in the `Codec`'s form)
//!   or, for a line that does not decode, only its length, so the lookup
//!   reads and parses that line from the table as before and reports the
//!   same error at the same line. Whatever the digest holds, a lookup gives
//!   what the JSON lines give: the same rows, in the same order, and the
//!   same errors.
//! - records of one key in runs, as the offset index keeps lines (runs of
//!   consecutive same-key records, at most 1 MiB): a run is its records'
//!   fields, then the text of all their strings in one area (checked to be
//!   UTF-8 once per run, not once per string), then a checksum of its
//!   bytes, checked before any record of it is used;
//! - the run index at the end of the file, followed by its length and a
//!   checksum over the header and the index, checked whole on load (as an
//!   index file is).
//!
//! The file is keyed like an index file (the table's stamp, what was
//! indexed, the format version) and written the same way: under a
//! temporary name, renamed into place when complete. Damage the load cannot
//! see (a record's bytes) is found by its run's checksum when read; the
//! file is then removed, so the next run rebuilds it (`snapshot.rs` decides
//! what the current read does).

mod codec;
mod format;
mod sort;
pub(crate) mod tables;

pub(crate) use codec::*;
pub(crate) use format::*;
use sort::*;

use crate::snapshot::index::{
    IndexStore, KeyIndex, MAX_RUN, Mixer, RUN_BYTES, Run, header, key_hash, read_runs, run_bytes,
    temp_file,
};
use crate::snapshot::table::{TableFile, read_into};
use exhaust_core::source::SourceError;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The format version: bump it when the layout or any `Codec` changes.
pub(crate) const MAGIC: &[u8; 8] = b"EXHDIG03";

/// Bytes after the run index: its run count and the checksum.
const TRAILER: u64 = 16;

/// A run's bytes end with this many checksum bytes.
const RUN_SUM: usize = 4;

/// A table's digest file, open for lookups.
#[derive(Debug)]
pub(crate) struct Digest {
    file: File,
    path: PathBuf,
    index: KeyIndex,
}

/// How an indexed line is kept: under the hash of its key; `as_line`
/// keeps it as JSON whatever it holds; `order` is its key's first eight
/// bytes (big-endian), which a digest written in key order sorts by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineKey {
    pub(crate) hash: u32,
    pub(crate) as_line: bool,
    pub(crate) order: u64,
}

impl LineKey {
    /// The key `key` of a line, by hash and first bytes.
    pub(crate) fn new(key: &[u8], as_line: bool) -> Self {
        let mut first = [0u8; 8];
        let n = key.len().min(8);
        first[..n].copy_from_slice(&key[..n]);
        Self {
            hash: key_hash(key),
            as_line,
            order: u64::from_be_bytes(first),
        }
    }
}

impl Digest {
    /// The digest of `table` under `spec`, if a valid one is persisted;
    /// why not, otherwise.
    pub(crate) fn load(store: &IndexStore, table: &TableFile, spec: &str) -> Result<Self, String> {
        store.first_valid(&IndexStore::file_name(table, spec, "dig"), |path| {
            read_digest(path, table, spec)
        })
    }

    /// Reads `table` whole and writes its digest, decoding each line that
    /// `key_of` indexes as a `C` row. `Err` is the table's error (a line
    /// whose key cannot be read, a read error), which the JSON index would
    /// have met too; `Ok(Err(why))` says why no digest could be written
    /// (no writable folder, a full disk): the caller indexes the lines
    /// instead.
    ///
    /// `in_key_order`: the records are written sorted by their key's first
    /// bytes (a key's lines in file order), not in the table's line order.
    /// A table looked up by user, for learners the report reads in user id
    /// order, is then read front to back (see `snapshot.rs`'s
    /// `keys_items`). It costs a key scan first, to cut the keys into parts
    /// of about equal size; then the table is read and decoded as in line
    /// order, each record put in its part's temporary file, and each part
    /// is sorted in memory and written out (`write_in_key_order`).
    pub(crate) fn build<C: Codec>(
        store: &IndexStore,
        table: &TableFile,
        spec: &str,
        in_key_order: bool,
        mut key_of: impl FnMut(&[u8], usize) -> Result<Option<LineKey>, SourceError>,
    ) -> Result<Result<Self, String>, SourceError> {
        let name = IndexStore::file_name(table, spec, "dig");
        let mut why = Vec::new();
        let mut target = None;
        for dir in store.dirs() {
            // As readable as the table: a digest holds the profile fields
            // the report reads, names included, so it must not be more
            // open than the user cache it came from.
            match temp_file(dir, &name, (table.stamp.mode & 0o666) | 0o600) {
                Ok(tmp) => {
                    target = Some((dir.to_path_buf(), tmp));
                    break;
                }
                Err(e) => why.push(format!("{}: {e}", dir.display())),
            }
        }
        let Some((dir, tmp)) = target else {
            return Ok(Err(why.join("; ")));
        };
        let head = header(MAGIC, table, spec, None);
        let file = match tmp.as_file().try_clone() {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("{}: {e}", dir.display()))),
        };
        let mut w = RunWriter {
            w: Writer {
                out: BufWriter::with_capacity(1 << 20, file),
                pos: 0,
                failed: None,
            },
            runs: Vec::new(),
            open: None,
            run_fields: Vec::new(),
            run_text: Vec::new(),
        };
        w.w.write(&head);
        if in_key_order {
            // The key scan: each key's `order`, once per run of lines of
            // one key, kept in buckets by its first byte and each bucket
            // sorted on its own (no doubled vector of them all while it
            // fills), to cut the keys into parts.
            let mut buckets: Vec<Vec<u64>> = (0..256).map(|_| Vec::new()).collect();
            let mut last: Option<(u64, u32)> = None;
            table.scan(|_, line_no, line| {
                if let Some(key) = key_of(line, line_no)?
                    && last.replace((key.order, key.hash)) != Some((key.order, key.hash))
                {
                    buckets[(key.order >> 56) as usize].push(key.order);
                }
                Ok(())
            })?;
            // The parts' bounds: orders at equal steps of the keys.
            let keys: usize = buckets.iter().map(Vec::len).sum();
            let parts = usize::try_from(table.data_len()? / PART_BYTES)
                .unwrap_or(MAX_PARTS)
                .clamp(1, MAX_PARTS);
            let step = keys.div_ceil(parts).max(1);
            let mut bounds: Vec<u64> = Vec::with_capacity(parts);
            let mut seen = 0usize;
            for bucket in &mut buckets {
                bucket.sort_unstable();
                for &order in bucket.iter() {
                    if seen > 0 && seen.is_multiple_of(step) && bounds.last() != Some(&order) {
                        bounds.push(order);
                    }
                    seen += 1;
                }
                *bucket = Vec::new();
            }
            match write_in_key_order::<C>(table, &dir, &bounds, &mut key_of, &mut w)? {
                Ok(()) => {}
                Err(why) => return Ok(Err(why)),
            }
        } else {
            let (mut fields, mut text) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
            table.scan(|offset, line_no, line| {
                if let Some(key) = key_of(line, line_no)? {
                    encode_record::<C>(offset, line, key, &mut fields, &mut text);
                    w.add(key.hash, &fields, &text);
                }
                Ok(())
            })?;
        }
        let RunWriter { mut w, runs, .. } = w.finish();
        let index = KeyIndex::from_runs(runs);
        let mut sum = Mixer::new(2);
        sum.write(&head);
        for r in index.all_runs() {
            let b = run_bytes(r);
            sum.write(&b);
            w.write(&b);
        }
        w.write(&(index.len() as u64).to_le_bytes());
        w.write(&sum.finish().to_le_bytes());
        let Writer { out, failed, .. } = w;
        let written = match failed {
            Some(e) => {
                drop(out);
                Err(e)
            }
            None => out.into_inner().map(|_| ()).map_err(|e| e.into_error()),
        };
        let path = dir.join(&name);
        let persisted = match written.and_then(|()| tmp.persist(&path).map_err(|e| e.error)) {
            Ok(file) => file,
            Err(e) => return Ok(Err(format!("{}: {e}", dir.display()))),
        };
        Ok(Ok(Self {
            file: persisted,
            path,
            index,
        }))
    }

    /// The runs that may hold records of `key`, in file order.
    pub(crate) fn runs(&self, key: &str) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.index.runs(key)
    }

    /// The runs of each of `keys`, as `(offset, len, i)` for `keys[i]` (see
    /// [`KeyIndex::runs_of_keys`]).
    pub(crate) fn runs_of_keys<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
        out: &mut Vec<(u64, u32, usize)>,
    ) {
        self.index.runs_of_keys(keys, out)
    }

    /// Runs in the index.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Reads the run at `offset` (`len` bytes, checksum included) and
    /// decodes its records, all of them before any is returned: a damaged
    /// run gives `Damaged` and no record.
    pub(crate) fn read_run<'b, C: Codec>(
        &self,
        offset: u64,
        len: u32,
        buf: &'b mut Vec<u8>,
    ) -> Result<Result<Records<'b, C>, Damaged>, SourceError> {
        if (len as usize) < RUN_HEAD + RUN_SUM {
            return Ok(Err(Damaged("a run is too short")));
        }
        let bytes = self.read_span(offset, len, buf)?;
        Ok(Self::decode_run::<C>(bytes))
    }

    /// Reads `len` bytes at `offset`: one or more whole runs, which
    /// [`Digest::decode_run`] then decodes one by one.
    pub(crate) fn read_span<'b>(
        &self,
        offset: u64,
        len: u32,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], SourceError> {
        read_into(&self.file, &self.path.display(), offset, len, buf)
    }

    /// Decodes one run's bytes (checksum included), checking its checksum
    /// and every record before any is returned.
    pub(crate) fn decode_run<C: Codec>(bytes: &[u8]) -> Result<Records<'_, C>, Damaged> {
        if bytes.len() < RUN_HEAD + RUN_SUM {
            return Err(Damaged("a run is too short"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - RUN_SUM);
        let mut sum = Mixer::new(3);
        sum.write(body);
        if (sum.finish() as u32).to_le_bytes() != tail {
            return Err(Damaged("a run's checksum does not match"));
        }
        let (head, rest) = body.split_at(RUN_HEAD);
        let mut n = [0u8; RUN_HEAD];
        n.copy_from_slice(head);
        let fields_len = u32::from_le_bytes(n) as usize;
        if fields_len > rest.len() {
            return Err(Damaged("a run's fields overrun it"));
        }
        let (fields, text) = rest.split_at(fields_len);
        let Ok(text) = simdutf8::basic::from_utf8(text) else {
            return Err(Damaged("a run's text is not UTF-8"));
        };
        let mut d = Decoder {
            bytes: fields,
            text,
        };
        // One allocation per run: a record takes at least a few bytes of
        // fields (its offset, tag and row), so this is never too small for
        // long, and a run of one user's attempts does not grow the vector
        // four times.
        let mut out = Vec::with_capacity(fields.len() / 16 + 1);
        while !d.bytes.is_empty() {
            let offset = d.varint()?;
            out.push(match d.u8()? {
                RECORD_LINE => Record::Line {
                    offset,
                    len: u32::try_from(d.varint()?).map_err(|_| Damaged("a bad length"))?,
                },
                RECORD_ROW => Record::Row {
                    offset,
                    row: C::decode(&mut d)?,
                },
                _ => return Err(Damaged("a bad record tag")),
            });
        }
        if !d.text.is_empty() {
            return Err(Damaged("a run's text is longer than its strings"));
        }
        Ok(out)
    }

    /// Removes the file (found damaged): the next run rebuilds it. This
    /// process keeps reading its open file, and another process that has
    /// it open keeps its own.
    pub(crate) fn discard(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a damaged digest");
        }
    }

    /// The file, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_as_written() {
        let (mut bytes, mut text) = (Vec::new(), Vec::new());
        let mut e = Encoder {
            out: &mut bytes,
            text: &mut text,
        };
        let numbers = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        for n in numbers {
            e.varint(n);
        }
        let ints = [
            None,
            Some(0),
            Some(-1),
            Some(2),
            Some(i32::MIN),
            Some(i32::MAX),
        ];
        for i in ints {
            e.opt_i32(i);
        }
        let floats = [None, Some(0.0), Some(-0.0), Some(1.5e300), Some(f64::NAN)];
        for f in floats {
            e.opt_f64(f);
        }
        for b in [None, Some(false), Some(true)] {
            e.opt_bool(b);
        }
        e.str("");
        e.str("é\"x");
        e.opt_str(None);
        e.opt_str(Some(""));
        e.opt_str(Some("abc"));
        let text = std::str::from_utf8(&text).expect("text");
        let mut d = Decoder {
            bytes: &bytes,
            text,
        };
        for n in numbers {
            assert_eq!(d.varint(), Ok(n));
        }
        for i in ints {
            assert_eq!(d.opt_i32(), Ok(i));
        }
        for f in floats {
            assert_eq!(
                d.opt_f64().map(|v| v.map(f64::to_bits)),
                Ok(f.map(f64::to_bits))
            );
        }
        for b in [None, Some(false), Some(true)] {
            assert_eq!(d.opt_bool(), Ok(b));
        }
        assert_eq!(d.str(), Ok(""));
        assert_eq!(d.str(), Ok("é\"x"));
        assert_eq!(d.opt_str(), Ok(None));
        assert_eq!(d.opt_str(), Ok(Some("")));
        assert_eq!(d.opt_str(), Ok(Some("abc")));
        assert!(d.bytes.is_empty() && d.text.is_empty());
        // Cut short, with a bad tag, or a string cut inside a character:
        // an error, never a panic.
        let fields = |bytes| Decoder { bytes, text: "é" };
        assert!(fields(&[0x80]).varint().is_err());
        assert!(fields(&[5]).str().is_err());
        assert!(fields(&[1]).str().is_err());
        assert_eq!(fields(&[2]).str(), Ok("é"));
        assert!(fields(&[9]).opt_bool().is_err());
        assert!(fields(&[4]).opt_str().is_err());
        assert!(fields(&[0xff; 11]).varint().is_err());
    }

    /// A table of `text` in a new folder (kept alive by the `TempDir`),
    /// digested as `Activities` rows keyed by their `user_id`.
    fn digested(text: &str, in_key_order: bool) -> (tempfile::TempDir, Digest) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.jsonl"), text).expect("write");
        let table = TableFile::open(dir.path(), "t", None)
            .expect("opens")
            .expect("exists");
        let store = IndexStore::new(dir.path(), None, 0);
        let digest = Digest::build::<crate::snapshot::digest::tables::Activities>(
            &store,
            &table,
            "spec",
            in_key_order,
            |line, _| {
                let key = crate::snapshot::keyscan::top_level_str(line, "user_id")
                    .expect("key")
                    .expect("present");
                Ok(Some(LineKey::new(key.as_bytes(), false)))
            },
        )
        .expect("reads")
        .expect("written");
        (dir, digest)
    }

    /// The records of `runs` of a `digested` table, in order, each as its
    /// line's offset and its activity id.
    fn records(digest: &Digest, runs: impl IntoIterator<Item = (u64, u32)>) -> Vec<(u64, String)> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for (offset, len) in runs {
            let records = digest
                .read_run::<crate::snapshot::digest::tables::Activities>(offset, len, &mut buf)
                .expect("reads")
                .expect("whole");
            for r in records {
                let Record::Row { offset, row } = r else {
                    panic!("every line decodes")
                };
                out.push((offset, row.activity_id.as_deref().expect("id").to_owned()));
            }
        }
        out
    }

    /// A table whose lines are not in key order, digested with
    /// `in_key_order`: the records come out sorted by key, each key's in
    /// file order, whatever the order of the lines; without it, in line
    /// order.
    #[test]
    fn a_digest_in_key_order_sorts_records_by_key() {
        let users = ["carol", "alice", "dave", "bob", "alice", "erin"];
        let mut text = String::new();
        for (n, u) in users.iter().enumerate() {
            text.push_str(&format!(
                "{{\"user_id\":\"{u}\",\"activity_id\":\"c{n}\"}}\n"
            ));
            if n == 2 {
                // Not indexed: skipped by both passes.
                text.push_str("\n   \n");
            }
        }
        // Each key's records, in the order the digest holds them.
        let order = |in_key_order: bool| {
            let (_dir, digest) = digested(&text, in_key_order);
            let mut runs: Vec<(u64, u32)> = digest
                .index
                .all_runs()
                .iter()
                .map(|r| (r.offset, r.len))
                .collect();
            runs.sort_unstable();
            records(&digest, runs)
                .into_iter()
                .map(|(offset, activity)| {
                    // The user, from the line the record says it is.
                    let line = &text[offset as usize..];
                    let user = line["{\"user_id\":\"".len()..]
                        .split('"')
                        .next()
                        .expect("user");
                    format!("{user}/{activity}")
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(true),
            [
                "alice/c1", "alice/c4", "bob/c3", "carol/c0", "dave/c2", "erin/c5"
            ]
        );
        assert_eq!(
            order(false),
            [
                "carol/c0", "alice/c1", "dave/c2", "bob/c3", "alice/c4", "erin/c5"
            ]
        );
    }

    /// One key's lines longer together than a run (`MAX_RUN`) are split
    /// into several runs, and still come back in file order.
    #[test]
    fn a_key_longer_than_a_run_keeps_its_file_order() {
        let big = "x".repeat(600 << 10);
        let mut text = String::new();
        for (n, u) in ["bob", "bob", "alice", "bob", "bob"].iter().enumerate() {
            text.push_str(&format!(
                "{{\"user_id\":\"{u}\",\"activity_id\":\"{n}{big}\"}}\n"
            ));
        }
        let (_dir, digest) = digested(&text, true);
        let mut seen = Vec::new();
        for key in ["alice", "bob"] {
            for (_, id) in records(&digest, digest.runs(key)) {
                seen.push(format!("{key}/{}", &id[..1]));
            }
        }
        assert_eq!(seen, ["alice/2", "bob/0", "bob/1", "bob/3", "bob/4"]);
        assert!(digest.runs("bob").count() >= 4, "one line per run");
    }
}
