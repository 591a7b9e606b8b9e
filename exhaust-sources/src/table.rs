//! A JSON Lines table file: sequential scans and reads of indexed lines.
//!
//! Lookups read lines at recorded offsets with `pread` rather than mapping
//! the file, so a batch's memory is what it asked for, not the file's size.
//! A gzip file is decompressed once into a temporary file, which is then read
//! the same way (a gzip stream cannot be read at an offset).

use exhaust_core::source::SourceError;
use std::fs::File;
use std::hash::Hasher;

/// The snapshot's name in source errors.
pub(crate) const SOURCE: &str = "snapshot";
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One table of the snapshot, ready to read.
#[derive(Debug)]
pub(crate) struct TableFile {
    /// The name people know it by (`user_cache.jsonl.gz`).
    pub(crate) display: String,
    file: File,
    // Keeps a decompressed copy alive for as long as the table is used.
    _decompressed: Option<tempfile::NamedTempFile>,
}

impl TableFile {
    /// Opens `<dir>/<name>.jsonl` or `<dir>/<name>.jsonl.gz`; `None` when
    /// neither exists (an empty table).
    pub(crate) fn open(
        dir: &Path,
        name: &str,
        temp_dir: Option<&Path>,
    ) -> Result<Option<Self>, SourceError> {
        let plain = dir.join(format!("{name}.jsonl"));
        let gz = dir.join(format!("{name}.jsonl.gz"));
        if plain.is_file() {
            let file = File::open(&plain).map_err(|e| {
                SourceError::unavailable(SOURCE, format!("cannot open {}: {e}", plain.display()))
            })?;
            return Ok(Some(Self {
                display: format!("{name}.jsonl"),
                file,
                _decompressed: None,
            }));
        }
        if gz.is_file() {
            return decompress(&gz, name, temp_dir).map(Some);
        }
        Ok(None)
    }

    /// Calls `f(offset, line_number, line)` for each non-blank line.
    pub(crate) fn scan(
        &self,
        mut f: impl FnMut(u64, usize, &[u8]) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        // Reads by position, never through the file's shared cursor, so scans
        // of one table (one per batch) neither see nor disturb each other.
        let mut reader = BufReader::with_capacity(
            1 << 20,
            PositionalReader {
                file: &self.file,
                pos: 0,
            },
        );
        let mut buf = Vec::with_capacity(4096);
        let mut offset = 0u64;
        let mut line_no = 0usize;
        loop {
            buf.clear();
            let n = read_line(&mut reader, &mut buf).map_err(|e| {
                SourceError::unavailable(SOURCE, format!("reading {}: {e}", self.display))
            })?;
            if n == 0 {
                return Ok(());
            }
            line_no += 1;
            let line = trim_line(&buf);
            if !line.iter().all(u8::is_ascii_whitespace) {
                f(offset, line_no, line)?;
            }
            offset += n as u64;
        }
    }

    /// Reads `len` bytes at `offset` (one or more whole lines).
    pub(crate) fn read_at(
        &self,
        offset: u64,
        len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), SourceError> {
        buf.resize(len as usize, 0);
        self.file.read_exact_at(buf, offset).map_err(|e| {
            SourceError::unavailable(
                SOURCE,
                format!("reading {} at byte {offset}: {e}", self.display),
            )
        })
    }
}

/// Reads a file from its start with `pread`.
struct PositionalReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    reader.read_until(b'\n', buf)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn decompress(gz: &PathBuf, name: &str, temp_dir: Option<&Path>) -> Result<TableFile, SourceError> {
    let display = format!("{name}.jsonl.gz");
    let src = File::open(gz).map_err(|e| {
        SourceError::unavailable(SOURCE, format!("cannot open {}: {e}", gz.display()))
    })?;
    let mut tmp = match temp_dir {
        Some(d) => tempfile::NamedTempFile::new_in(d),
        None => tempfile::NamedTempFile::new(),
    }
    .map_err(|e| {
        SourceError::unavailable(
            SOURCE,
            format!("cannot create a temporary file to decompress {display}: {e}"),
        )
    })?;
    let mut decoder =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, src));
    std::io::copy(&mut decoder, tmp.as_file_mut()).map_err(|e| {
        SourceError::bad_data(
            SOURCE,
            format!("{display} is not a readable gzip file: {e}"),
        )
    })?;
    let file = tmp.reopen().map_err(|e| {
        SourceError::unavailable(SOURCE, format!("cannot reopen decompressed {display}: {e}"))
    })?;
    Ok(TableFile {
        display,
        file,
        _decompressed: Some(tmp),
    })
}

/// Splits a run of lines read with [`TableFile::read_at`].
pub(crate) fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&b| b == b'\n')
        .map(trim_line)
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

/// Where the lines of each key are: a sorted list of (key hash, offset,
/// length) runs. Consecutive lines with the same key share one run, so an
/// export grouped by partition (as dsbulk writes it) costs one entry per
/// partition. Readers must check the key of each line they read: runs are
/// found by hash, and hashes can collide.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    runs: Vec<(u64, u64, u32)>,
    /// `buckets[p]..buckets[p + 1]` are the runs whose hash starts with the
    /// 16-bit prefix `p`: one cache miss instead of a long binary search.
    buckets: Vec<u32>,
}

const PREFIX_BITS: u32 = 16;

/// A fast, fixed hash: the index lives only in this process and holds keys
/// of our own files, so it needs no protection against chosen collisions.
fn key_hash(key: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(key.as_bytes());
    h.finish()
}

impl KeyIndex {
    /// Indexes `table` by the key `key_of` extracts from each line (`None`:
    /// the line is not indexed).
    pub(crate) fn build(
        table: &TableFile,
        mut key_of: impl FnMut(&[u8], usize) -> Result<Option<String>, SourceError>,
    ) -> Result<Self, SourceError> {
        let mut runs: Vec<(u64, u64, u32)> = Vec::new();
        let mut open: Option<(u64, u64, u64)> = None; // hash, start, end
        table.scan(|offset, line_no, line| {
            let Some(key) = key_of(line, line_no)? else {
                return Ok(());
            };
            let h = key_hash(&key);
            // The line ends before the next one starts; the newline is
            // excluded by `lines()` when reading.
            let end = offset + line.len() as u64;
            if let Some((oh, start, oend)) = &mut open
                && *oh == h
                && end - *start < u64::from(u32::MAX)
            {
                *oend = end;
                return Ok(());
            }
            if let Some((oh, start, oend)) = open.take() {
                runs.push((oh, start, (oend - start) as u32));
            }
            open = Some((h, offset, end));
            Ok(())
        })?;
        if let Some((h, start, end)) = open {
            runs.push((h, start, (end - start) as u32));
        }
        runs.sort_unstable();
        runs.shrink_to_fit();
        let mut buckets = vec![0u32; (1 << PREFIX_BITS) + 1];
        for r in &runs {
            buckets[(r.0 >> (64 - PREFIX_BITS)) as usize + 1] += 1;
        }
        for p in 1..buckets.len() {
            buckets[p] += buckets[p - 1];
        }
        Ok(Self { runs, buckets })
    }

    /// The runs that may hold lines of `key`.
    pub(crate) fn runs(&self, key: &str) -> impl Iterator<Item = (u64, u32)> + '_ {
        let h = key_hash(key);
        let bucket = match self.buckets.get((h >> (64 - PREFIX_BITS)) as usize..) {
            Some([lo, hi, ..]) => &self.runs[*lo as usize..*hi as usize],
            _ => &[][..],
        };
        let start = bucket.partition_point(|r| r.0 < h);
        bucket[start..]
            .iter()
            .take_while(move |r| r.0 == h)
            .map(|r| (r.1, r.2))
    }
}

/// Reads a whole small table into memory (batches, contents, settings).
pub(crate) fn read_all(
    table: &TableFile,
    mut f: impl FnMut(&[u8], usize) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    table.scan(|_, n, line| f(line, n))
}
