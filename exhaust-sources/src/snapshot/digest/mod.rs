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

pub(crate) mod tables;

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

/// A record or run that does not decode although written by this code:
/// damage the checksums missed, or a bug. Says what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damaged(pub(crate) &'static str);

/// Writes a record's fields (`out`) and its strings' text (`text`).
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    text: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    pub(crate) fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    /// LEB128: small numbers (lengths, most offsets' high bytes) in few bytes.
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// Its length among the fields, its bytes in the text area.
    pub(crate) fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.text.extend_from_slice(s.as_bytes());
    }

    /// `None` as 0, text as its length + 1 (and its bytes).
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.varint(s.len() as u64 + 1);
                self.text.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// The bits, so every value (signed zeros, NaN payloads) comes back.
    pub(crate) fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }

    pub(crate) fn opt_bool(&mut self, v: Option<bool>) {
        self.u8(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    /// Zigzag: small negative numbers stay short.
    pub(crate) fn i32(&mut self, v: i32) {
        self.varint(u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    pub(crate) fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i32(v);
            }
        }
    }
}

/// Reads a record's fields; strings are borrowed from the run's text
/// area, taken in the order they were written.
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    text: &'a str,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Damaged> {
        if n > self.bytes.len() {
            return Err(Damaged("a record runs past its run"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Damaged> {
        // Most numbers (lengths, statuses, tags) fit in one byte.
        if let Some((&b, rest)) = self.bytes.split_first()
            && b < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Damaged("a number is too long"))
    }

    fn len(&mut self) -> Result<usize, Damaged> {
        usize::try_from(self.varint()?).map_err(|_| Damaged("a length is too large"))
    }

    fn text(&mut self, n: usize) -> Result<&'a str, Damaged> {
        // `get` also refuses a cut inside a character.
        let s = self
            .text
            .get(..n)
            .ok_or(Damaged("a string runs past the text area"))?;
        self.text = &self.text[n..];
        Ok(s)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, Damaged> {
        let n = self.len()?;
        self.text(n)
    }

    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>, Damaged> {
        match self.len()? {
            0 => Ok(None),
            n => self.text(n - 1).map(Some),
        }
    }

    pub(crate) fn opt_f64(&mut self) -> Result<Option<f64>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                Ok(Some(f64::from_bits(u64::from_le_bytes(b))))
            }
            _ => Err(Damaged("a bad number tag")),
        }
    }

    pub(crate) fn opt_bool(&mut self) -> Result<Option<bool>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(Damaged("a bad boolean")),
        }
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Damaged> {
        let z = u32::try_from(self.varint()?).map_err(|_| Damaged("a bad integer"))?;
        Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    pub(crate) fn opt_i32(&mut self) -> Result<Option<i32>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i32().map(Some),
            _ => Err(Damaged("a bad integer tag")),
        }
    }

    /// A length that counts items of at least one byte each: never more
    /// than the bytes left, so a damaged count cannot ask for a huge
    /// allocation.
    pub(crate) fn count(&mut self) -> Result<usize, Damaged> {
        let n = self.len()?;
        if n > self.bytes.len() {
            return Err(Damaged("a count exceeds the record"));
        }
        Ok(n)
    }
}

/// How one table's row type is kept in a digest. `decode` must give back
/// the row `encode` was given, field for field: a lookup through the digest
/// then cannot differ from one through the JSON lines.
pub(crate) trait Codec {
    /// The row as read from a JSON line (borrowing from it) and from a
    /// record (borrowing from the digest's bytes).
    type Row<'a>: serde::Deserialize<'a>;
    fn encode(row: &Self::Row<'_>, e: &mut Encoder<'_>);
    fn decode<'a>(d: &mut Decoder<'a>) -> Result<Self::Row<'a>, Damaged>;
}

/// One line of the table as its digest record has it.
pub(crate) enum Record<R> {
    /// A line kept as JSON: read it from the table (`offset`, `len`).
    Line { offset: u64, len: u32 },
    /// A line's row; `offset` is where the line starts in the table (for
    /// messages that name its line number).
    Row { offset: u64, row: R },
}

/// A run's records, in line order.
pub(crate) type Records<'b, C> = Vec<Record<<C as Codec>::Row<'b>>>;

const RECORD_LINE: u8 = 0;
const RECORD_ROW: u8 = 1;

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

/// A key-order build decodes a table's records into parts by key range,
/// one part per this many bytes of the table (a part's records are sorted
/// in memory: about half as many bytes; three tables are digested at
/// once).
const PART_BYTES: u64 = if cfg!(test) { 64 } else { 8 << 20 };

/// At most this many parts (temporary files, open at once) per table:
/// three tables at once stay well under the usual limit of 1,024 open
/// files. Past 1 GB of table, parts grow instead.
const MAX_PARTS: usize = 128;

/// What precedes a record's fields and text in a part file.
struct PartHead {
    order: u64,
    /// Its line's offset in the table.
    offset: u64,
    hash: u32,
    fields_len: u32,
    text_len: u32,
}

impl PartHead {
    const LEN: usize = 8 + 8 + 4 + 4 + 4;

    fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.order.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.hash.to_le_bytes());
        b[20..24].copy_from_slice(&self.fields_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.text_len.to_le_bytes());
        b
    }

    /// The head at the front of `b`, if `b` holds one.
    fn from_bytes(b: &[u8]) -> Option<Self> {
        let (order, b) = b.split_first_chunk::<8>()?;
        let (offset, b) = b.split_first_chunk::<8>()?;
        let (hash, b) = b.split_first_chunk::<4>()?;
        let (fields_len, b) = b.split_first_chunk::<4>()?;
        let (text_len, _) = b.split_first_chunk::<4>()?;
        Some(Self {
            order: u64::from_le_bytes(*order),
            offset: u64::from_le_bytes(*offset),
            hash: u32::from_le_bytes(*hash),
            fields_len: u32::from_le_bytes(*fields_len),
            text_len: u32::from_le_bytes(*text_len),
        })
    }

    /// Bytes of the record it heads, itself included.
    fn record_len(&self) -> usize {
        Self::LEN + self.fields_len as usize + self.text_len as usize
    }
}

/// The second pass of a key-order build. The table is read again in line
/// order; each indexed line is decoded and its record appended to the
/// temporary file of its part (its key's order between two `bounds`).
/// Then each part is read back whole, its records sorted by key order and
/// line offset, and handed to `w` in that order. Every read is sequential:
/// a read per key, in key order, cost a system call per key, most of what
/// the build added to indexing. `Ok(Err(why))`: a temporary file could not
/// be written or read back (no digest is written).
fn write_in_key_order<C: Codec>(
    table: &TableFile,
    dir: &Path,
    bounds: &[u64],
    key_of: &mut impl FnMut(&[u8], usize) -> Result<Option<LineKey>, SourceError>,
    w: &mut RunWriter,
) -> Result<Result<(), String>, SourceError> {
    let why = |e: std::io::Error| format!("{}: a temporary file: {e}", dir.display());
    let mut parts = Vec::with_capacity(bounds.len() + 1);
    for _ in 0..=bounds.len() {
        match tempfile::tempfile_in(dir) {
            Ok(f) => parts.push(BufWriter::with_capacity(16 << 10, f)),
            Err(e) => return Ok(Err(why(e))),
        }
    }
    let mut failed: Option<std::io::Error> = None;
    let (mut fields, mut text) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    table.scan(|offset, line_no, line| {
        let Some(key) = key_of(line, line_no)? else {
            return Ok(());
        };
        encode_record::<C>(offset, line, key, &mut fields, &mut text);
        let part = &mut parts[bounds.partition_point(|&b| b <= key.order)];
        let head = PartHead {
            order: key.order,
            offset,
            hash: key.hash,
            fields_len: fields.len() as u32,
            text_len: text.len() as u32,
        }
        .to_bytes();
        for bytes in [&head[..], &fields, &text] {
            if failed.is_none()
                && let Err(e) = part.write_all(bytes)
            {
                failed = Some(e);
            }
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Ok(Err(why(e)));
    }
    let mut bytes = Vec::new();
    for part in parts {
        let mut file = match part.into_inner() {
            Ok(f) => f,
            Err(e) => return Ok(Err(why(e.into_error()))),
        };
        bytes.clear();
        // Room for the whole part at once: no doubling while it is read.
        let read = file.metadata().and_then(|m| {
            bytes.reserve(usize::try_from(m.len()).unwrap_or(0));
            file.rewind()?;
            std::io::Read::read_to_end(&mut file, &mut bytes)
        });
        if let Err(e) = read {
            return Ok(Err(why(e)));
        }
        // (order, line offset, key hash, fields, text) of each record.
        let mut records = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let record = PartHead::from_bytes(rest)
                .and_then(|h| Some((rest.get(PartHead::LEN..h.record_len())?, h)));
            let Some((body, head)) = record else {
                return Ok(Err(format!(
                    "{}: a temporary file came back cut",
                    dir.display()
                )));
            };
            let (fields, text) = body.split_at(head.fields_len as usize);
            records.push((head.order, head.offset, head.hash, fields, text));
            rest = &rest[head.record_len()..];
        }
        // By key, a key's lines in file order (offsets are unique).
        records.sort_unstable_by_key(|&(order, offset, ..)| (order, offset));
        for (_, _, hash, fields, text) in records {
            w.add(hash, fields, text);
        }
    }
    Ok(Ok(()))
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

/// Bytes before a run's fields: their length.
const RUN_HEAD: usize = 4;

/// Encodes records into runs of one key and writes them.
struct RunWriter {
    w: Writer,
    runs: Vec<Run>,
    /// The open run's key hash, and its fields and text so far (the
    /// buffers are reused from run to run).
    open: Option<u32>,
    run_fields: Vec<u8>,
    run_text: Vec<u8>,
}

impl RunWriter {
    /// Adds a record encoded by [`encode_record`], of a key of hash `hash`.
    fn add(&mut self, hash: u32, fields: &[u8], text: &[u8]) {
        let Self {
            run_fields,
            run_text,
            ..
        } = self;
        let size = RUN_HEAD + run_fields.len() + run_text.len() + fields.len() + text.len();
        let joins = self.open == Some(hash) && (size + RUN_SUM) as u64 <= MAX_RUN;
        if !joins {
            if let Some(h) = self.open.replace(hash) {
                write_run(&mut self.w, &mut self.runs, h, run_fields, run_text);
            }
            run_fields.clear();
            run_text.clear();
        }
        run_fields.extend_from_slice(fields);
        run_text.extend_from_slice(text);
    }

    /// Writes the open run.
    fn finish(mut self) -> Self {
        if let Some(h) = self.open.take() {
            write_run(
                &mut self.w,
                &mut self.runs,
                h,
                &self.run_fields,
                &self.run_text,
            );
        }
        self
    }
}

/// Encodes the record of the line at `offset` into `fields` and `text`
/// (cleared first): its row, or only where it is when it does not decode
/// (or is kept as a line).
fn encode_record<C: Codec>(
    offset: u64,
    line: &[u8],
    key: LineKey,
    fields: &mut Vec<u8>,
    text: &mut Vec<u8>,
) {
    fields.clear();
    text.clear();
    let mut e = Encoder { out: fields, text };
    e.varint(offset);
    let row = if key.as_line {
        None
    } else {
        simdutf8::basic::from_utf8(line)
            .ok()
            .and_then(|line| serde_json::from_str::<C::Row<'_>>(line).ok())
    };
    match row {
        Some(row) => {
            e.u8(RECORD_ROW);
            C::encode(&row, &mut e);
        }
        None => {
            e.u8(RECORD_LINE);
            e.varint(line.len() as u64);
        }
    }
}

/// Writes one run (its fields' length, its fields, its text, the checksum
/// of all three) and adds it to `runs`.
fn write_run(w: &mut Writer, runs: &mut Vec<Run>, hash: u32, fields: &[u8], text: &[u8]) {
    let start = w.pos;
    let head = u32::try_from(fields.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut sum = Mixer::new(3);
    for part in [&head[..], fields, text] {
        sum.write(part);
        w.write(part);
    }
    w.write(&(sum.finish() as u32).to_le_bytes());
    runs.push(Run {
        hash,
        offset: start,
        len: u32::try_from(w.pos - start).unwrap_or(u32::MAX),
    });
}

/// A buffered writer that remembers its first error (checked once, at the
/// end) and where it is.
struct Writer {
    out: BufWriter<File>,
    pos: u64,
    failed: Option<std::io::Error>,
}

impl Writer {
    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(bytes)
        {
            self.failed = Some(e);
        }
        self.pos += bytes.len() as u64;
    }
}

fn read_digest(path: &Path, table: &TableFile, spec: &str) -> Result<Digest, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let file_len = file.metadata().map_err(|e| bad(&e.to_string()))?.len();
    let expected = header(MAGIC, table, spec, None);
    let index = parse_digest_index(&file, file_len, &expected).map_err(|e| bad(&e))?;
    Ok(Digest {
        file,
        path: path.to_path_buf(),
        index,
    })
}

/// Reads bytes at a position: a file (`pread`), or bytes in memory (the
/// fuzz targets).
pub(crate) trait ReadAt {
    /// Fills `buf` from `offset`; an error when there are fewer bytes.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A [`ReadAt`] read in order from `pos` to `end`.
struct ReaderAt<'a, R: ?Sized> {
    src: &'a R,
    pos: u64,
    end: u64,
}

impl<R: ReadAt + ?Sized> std::io::Read for ReaderAt<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        self.src.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a digest file of `file_len` bytes from `src` and checks all but
/// its records: the header is `expected`, the trailer's run count fits
/// the file, every run of the run index lies within the records and comes
/// in order, and the checksum over the header and the index matches; the
/// run index, then. Every byte may be anything (damage, another program's
/// file, a file crafted with right checksums): `Err` says what was wrong;
/// it never panics, and it allocates no more than `file_len`. (A run's
/// records are checked when it is read: [`Digest::decode_run`].)
pub(crate) fn parse_digest_index<R: ReadAt + ?Sized>(
    src: &R,
    file_len: u64,
    expected: &[u8],
) -> Result<KeyIndex, String> {
    let head_len = expected.len() as u64;
    if file_len < head_len + TRAILER {
        return Err("truncated".into());
    }
    let mut head = vec![0u8; expected.len()];
    src.read_exact_at(&mut head, 0)
        .map_err(|_| "truncated header")?;
    if head != expected {
        return Err("built from another version of the table, or another digest".into());
    }
    let mut trailer = [0u8; TRAILER as usize];
    src.read_exact_at(&mut trailer, file_len - TRAILER)
        .map_err(|_| "truncated")?;
    let mut w8 = [0u8; 8];
    w8.copy_from_slice(&trailer[..8]);
    let count = u64::from_le_bytes(w8);
    w8.copy_from_slice(&trailer[8..]);
    let checksum = u64::from_le_bytes(w8);
    let runs_start = count
        .checked_mul(RUN_BYTES as u64)
        .and_then(|b| (file_len - TRAILER).checked_sub(b))
        .filter(|start| *start >= head_len)
        .ok_or("truncated or overlong")?;
    let records = head_len..runs_start;
    let index_len = file_len - TRAILER - runs_start;
    let mut r = BufReader::with_capacity(
        usize::try_from(index_len)
            .unwrap_or(usize::MAX)
            .min(1 << 20),
        ReaderAt {
            src,
            pos: runs_start,
            end: file_len - TRAILER,
        },
    );
    let mut sum = Mixer::new(2);
    sum.write(&head);
    let runs = read_runs(&mut r, count, &mut sum, records)?;
    if sum.finish() != checksum {
        return Err("checksum mismatch".into());
    }
    Ok(KeyIndex::from_sorted(runs))
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
