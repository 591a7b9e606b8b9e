//! A JSON Lines table file: sequential scans and reads of indexed lines.
//!
//! Lookups read lines at recorded offsets with `pread` rather than mapping
//! the file, so a batch's memory is what it asked for, not the file's size.
//! A gzip file is decompressed once into a temporary file, which is then read
//! the same way (a gzip stream cannot be read at an offset); only when its
//! lines are first needed, so a run that finds the table's digest persisted
//! never decompresses it.

use exhaust_core::source::SourceError;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The snapshot's name in source errors.
pub(crate) const SOURCE: &str = "snapshot";

/// What identifies one version of a table's file: a persisted index is
/// trusted only for the file it was built from. Taken from the open file
/// (the `.gz` itself for a gzip table) before it is read, so a change made
/// while it is indexed gives a stamp the next run will not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FileStamp {
    pub(crate) len: u64,
    /// Permission bits (not part of what identifies the file's version:
    /// files derived from it take them, see `digest.rs`).
    pub(crate) mode: u32,
    pub(crate) mtime_s: i64,
    pub(crate) mtime_ns: i64,
    pub(crate) ino: u64,
    pub(crate) dev: u64,
}

impl FileStamp {
    fn of(file: &File) -> std::io::Result<Self> {
        let m = file.metadata()?;
        Ok(Self {
            len: m.len(),
            mode: m.mode() & 0o7777,
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ino: m.ino(),
            dev: m.dev(),
        })
    }
}

/// One table of the snapshot, ready to read.
#[derive(Debug)]
pub(crate) struct TableFile {
    /// The name people know it by (`user_cache.jsonl.gz`).
    pub(crate) display: String,
    /// The file as it was when opened (see [`FileStamp`]).
    pub(crate) stamp: FileStamp,
    /// The JSON Lines: the file itself, or (gzip) its decompressed copy,
    /// made on first use.
    data: OnceLock<Result<Data, SourceError>>,
    /// A gzip table's file and where to decompress it.
    gz: Option<(File, Option<PathBuf>)>,
}

#[derive(Debug)]
struct Data {
    file: File,
    /// Bytes of JSON Lines.
    len: u64,
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
            let cannot = |e: std::io::Error| {
                SourceError::unavailable(SOURCE, format!("cannot open {}: {e}", plain.display()))
            };
            let file = File::open(&plain).map_err(cannot)?;
            let stamp = FileStamp::of(&file).map_err(cannot)?;
            let data = Data {
                file,
                len: stamp.len,
                _decompressed: None,
            };
            return Ok(Some(Self {
                display: format!("{name}.jsonl"),
                stamp,
                data: OnceLock::from(Ok(data)),
                gz: None,
            }));
        }
        if gz.is_file() {
            let cannot = |e: std::io::Error| {
                SourceError::unavailable(SOURCE, format!("cannot open {}: {e}", gz.display()))
            };
            let file = File::open(&gz).map_err(cannot)?;
            // Stamped before decompressing, so a change during it is
            // noticed by the next run.
            let stamp = FileStamp::of(&file).map_err(cannot)?;
            return Ok(Some(Self {
                display: format!("{name}.jsonl.gz"),
                stamp,
                data: OnceLock::new(),
                gz: Some((file, temp_dir.map(Path::to_path_buf))),
            }));
        }
        Ok(None)
    }

    /// The JSON Lines, decompressed first for a gzip table (once; an error
    /// is kept and given to every later read).
    fn data(&self) -> Result<&Data, SourceError> {
        self.data
            .get_or_init(|| match &self.gz {
                Some((file, temp_dir)) => decompress(file, &self.display, temp_dir.as_deref()),
                None => Err(SourceError::unavailable(
                    SOURCE,
                    format!("{} is not open", self.display),
                )),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Bytes of JSON Lines (decompressed, for a gzip table: this
    /// decompresses it).
    pub(crate) fn data_len(&self) -> Result<u64, SourceError> {
        self.data().map(|d| d.len)
    }

    /// Whether this is a gzip table that was decompressed.
    pub(crate) fn was_decompressed(&self) -> bool {
        self.gz.is_some() && self.data.get().is_some()
    }

    /// Calls `f(offset, line_number, line)` for each non-blank line.
    pub(crate) fn scan(
        &self,
        mut f: impl FnMut(u64, usize, &[u8]) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        // Reads blocks by position, never through the file's shared cursor,
        // so scans of one table (one per batch) neither see nor disturb each
        // other; lines are handed out of the block in place (memchr finds
        // their ends), never copied one by one.
        let file = &self.data()?.file;
        let mut buf = vec![0u8; SCAN_BLOCK];
        let mut filled = 0usize; // bytes of `buf` holding file data
        let mut base = 0u64; // the file offset of `buf[0]`
        let mut line_no = 0usize;
        let mut eof = false;
        loop {
            while !eof && filled < buf.len() {
                match file.read_at(&mut buf[filled..], base + filled as u64) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(SourceError::unavailable(
                            SOURCE,
                            format!("reading {}: {e}", self.display),
                        ));
                    }
                }
            }
            let mut start = 0usize;
            for end in memchr::memchr_iter(b'\n', &buf[..filled]) {
                line_no += 1;
                let line = trim_line(&buf[start..end]);
                if !line.iter().all(u8::is_ascii_whitespace) {
                    f(base + start as u64, line_no, line)?;
                }
                start = end + 1;
            }
            if eof {
                // The last line may have no newline.
                if start < filled {
                    line_no += 1;
                    let line = trim_line(&buf[start..filled]);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        f(base + start as u64, line_no, line)?;
                    }
                }
                return Ok(());
            }
            if start == 0 {
                // A line longer than the block: make room for it.
                buf.resize(buf.len() * 2, 0);
            } else {
                buf.copy_within(start..filled, 0);
                filled -= start;
                base += start as u64;
            }
        }
    }

    /// The number (from 1) of the line that starts at `offset`, for error
    /// messages of lines read by offset. Counts the newlines before it, so
    /// it costs a read of the file up to there: only on the error path.
    pub(crate) fn line_number_at(&self, offset: u64) -> usize {
        let Ok(Data { file, .. }) = self.data() else {
            // Unreadable: the error that made it so is the one reported.
            return 0;
        };
        let mut buf = vec![0u8; SCAN_BLOCK];
        let mut pos = 0u64;
        let mut newlines = 0usize;
        while pos < offset {
            let want = (offset - pos).min(buf.len() as u64) as usize;
            match file.read_at(&mut buf[..want], pos) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    newlines += memchr::memchr_iter(b'\n', &buf[..n]).count();
                    pos += n as u64;
                }
            }
        }
        newlines + 1
    }

    /// Reads `len` bytes at `offset` (one or more whole lines) into the
    /// front of `buf` (see [`read_into`]).
    pub(crate) fn read_at<'b>(
        &self,
        offset: u64,
        len: u32,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], SourceError> {
        read_into(&self.data()?.file, &self.display, offset, len, buf)
    }
}

/// Reads `len` bytes of `file` (`name` in messages) at `offset` into the
/// front of `buf`. The buffer only grows, and grows by a new zeroed
/// allocation: a reused buffer is neither copied on growth nor cleared
/// again before each read.
pub(crate) fn read_into<'b>(
    file: &File,
    name: &dyn std::fmt::Display,
    offset: u64,
    len: u32,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], SourceError> {
    let len = len as usize;
    if buf.len() < len {
        *buf = vec![0; len];
    }
    let out = &mut buf[..len];
    file.read_exact_at(out, offset).map_err(|e| {
        SourceError::unavailable(SOURCE, format!("reading {name} at byte {offset}: {e}"))
    })?;
    Ok(out)
}

/// Bytes read per block by scans.
const SCAN_BLOCK: usize = 1 << 20;

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn decompress(src: &File, display: &str, temp_dir: Option<&Path>) -> Result<Data, SourceError> {
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
    // Read by position through a reader of its own: the open file's cursor
    // is not shared with anyone, but `&File` reads would move it.
    let reader = PositionedReader { file: src, pos: 0 };
    let mut decoder =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, reader));
    std::io::copy(&mut decoder, tmp.as_file_mut()).map_err(|e| {
        SourceError::bad_data(
            SOURCE,
            format!("{display} is not a readable gzip file: {e}"),
        )
    })?;
    let file = tmp.reopen().map_err(|e| {
        SourceError::unavailable(SOURCE, format!("cannot reopen decompressed {display}: {e}"))
    })?;
    let len = file.metadata().map(|m| m.len()).map_err(|e| {
        SourceError::unavailable(SOURCE, format!("cannot read decompressed {display}: {e}"))
    })?;
    Ok(Data {
        file,
        len,
        _decompressed: Some(tmp),
    })
}

/// Reads a file from the start by position (`pread`), never through its
/// shared cursor.
struct PositionedReader<'f> {
    file: &'f File,
    pos: u64,
}

impl std::io::Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Splits a run of lines read with [`TableFile::read_at`] (and checked to
/// be text): each non-blank line with its position in `text`.
pub(crate) fn text_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    let mut start = 0usize;
    ends.map(move |end| {
        let at = start;
        start = end + 1;
        // A newline is one byte and never inside a UTF-8 sequence, so
        // `at..end` always falls on character boundaries.
        let line = text.get(at..end).unwrap_or_default();
        (at, line.trim_end_matches('\r'))
    })
    .filter(|(_, l)| !l.bytes().all(|b| b.is_ascii_whitespace()))
}

/// Reads a whole small table into memory (batches, contents, settings).
pub(crate) fn read_all(
    table: &TableFile,
    mut f: impl FnMut(&[u8], usize) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    table.scan(|_, n, line| f(line, n))
}

#[cfg(test)]
mod tests {
    use super::text_lines;

    #[test]
    fn lines_of_a_run_with_their_positions() {
        let text = "{\"a\":1}\r\n\n  \n{\"b\":\"é\"}\n{\"c\":3}";
        let got: Vec<(usize, &str)> = text_lines(text).collect();
        assert_eq!(
            got,
            [(0, "{\"a\":1}"), (13, "{\"b\":\"é\"}"), (24, "{\"c\":3}")]
        );
        for (at, line) in &got {
            assert!(text[*at..].starts_with(line));
        }
        assert_eq!(text_lines("").count(), 0);
        assert_eq!(text_lines("\n\r\n").count(), 0);
        assert_eq!(text_lines("x\n").collect::<Vec<_>>(), [(0, "x")]);
    }
}
