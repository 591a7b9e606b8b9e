//! The digest file: runs of one key's records, each ending with its
//! checksum, then the run index and a whole-file checksum; written under a
//! temporary name and renamed into place, read back and checked whole on
//! load.

use super::*;

/// Bytes before a run's fields: their length.
pub(super) const RUN_HEAD: usize = 4;

/// Encodes records into runs of one key and writes them.
pub(super) struct RunWriter {
    pub(super) w: Writer,
    pub(super) runs: Vec<Run>,
    /// The open run's key hash, and its fields and text so far (the
    /// buffers are reused from run to run).
    pub(super) open: Option<u32>,
    pub(super) run_fields: Vec<u8>,
    pub(super) run_text: Vec<u8>,
}

impl RunWriter {
    /// Adds a record encoded by [`encode_record`], of a key of hash `hash`.
    pub(super) fn add(&mut self, hash: u32, fields: &[u8], text: &[u8]) {
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
    pub(super) fn finish(mut self) -> Self {
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
pub(super) fn encode_record<C: Codec>(
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
pub(super) fn write_run(
    w: &mut Writer,
    runs: &mut Vec<Run>,
    hash: u32,
    fields: &[u8],
    text: &[u8],
) {
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
pub(super) struct Writer {
    pub(super) out: BufWriter<File>,
    pub(super) pos: u64,
    pub(super) failed: Option<std::io::Error>,
}

impl Writer {
    pub(super) fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(bytes)
        {
            self.failed = Some(e);
        }
        self.pos += bytes.len() as u64;
    }
}

pub(super) fn read_digest(path: &Path, table: &TableFile, spec: &str) -> Result<Digest, String> {
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
pub(super) struct ReaderAt<'a, R: ?Sized> {
    pub(super) src: &'a R,
    pub(super) pos: u64,
    pub(super) end: u64,
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
