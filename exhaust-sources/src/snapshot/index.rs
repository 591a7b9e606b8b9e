//! The offset index of a snapshot table, and its copy on disk.
//!
//! An index says where the lines of each key are: a sorted list of (key
//! hash, offset, length) runs. Consecutive lines with the same key share one
//! run, so an export grouped by partition (as dsbulk writes it) costs one
//! entry per partition. Readers check the key of each line they read: runs
//! are found by a 32-bit hash, and hashes can collide.
//!
//! Building it means reading the whole table, which is most of a report's
//! time on a large snapshot whose batch is small; so the index of a large
//! table is written to disk and read back by later runs:
//! - beside the snapshot in `.exhaust-index/`, or, when that folder cannot
//!   be written (a read-only snapshot), in a cache folder named after the
//!   snapshot's path;
//! - keyed by the table file's `FileStamp` (size, modification time to the
//!   nanosecond, inode, device) and by what was indexed (file, field, key
//!   prefix, format version): any difference means the file changed or the
//!   index is another's, and it is rebuilt, never trusted;
//! - checked whole before use (its length and a checksum over every byte),
//!   so a truncated or damaged file is rebuilt too;
//! - written under a temporary name in the same folder and renamed into
//!   place, so a reader in another process sees the old file or the new
//!   one, never half of one; two processes building at once both write a
//!   complete index and the last rename wins.

use crate::snapshot::table::TableFile;
use exhaust_core::source::SourceError;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One run of lines: 16 bytes, sorted by `(hash, offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Run {
    pub(crate) hash: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    runs: Vec<Run>,
    /// `buckets[p]..buckets[p + 1]` are the runs whose hash starts with the
    /// prefix `p` (its top `32 - shift` bits): one cache miss instead of a
    /// long binary search.
    buckets: Vec<u32>,
    shift: u32,
}

/// Prefix bits of the smallest and largest bucket tables: a bucket per two
/// runs or so, between 256 buckets and 2^22 (16 MiB for 5,000,000 runs,
/// where 65,536 buckets of 76 runs each left a binary search of several
/// cache misses per lookup).
const MIN_PREFIX_BITS: u32 = 8;
const MAX_PREFIX_BITS: u32 = 22;

/// The most bytes a run of several lines spans (a single longer line is a
/// run of its own, up to 4 GiB).
pub(crate) const MAX_RUN: u64 = 1 << 20;

/// The key's hash. Written here rather than taken from a hashing crate
/// because persisted indexes depend on it: it must never change with a
/// dependency's version (the format version below changes with it). A
/// word-at-a-time multiply-rotate (as FxHash) finished with MurmurHash3's
/// 64-bit mixer, so the top bits used for buckets are well spread.
pub(crate) fn key_hash(key: &[u8]) -> u32 {
    let mut h = Mixer::new(key.len() as u64);
    h.write(key);
    (h.finish() >> 32) as u32
}

/// Multiply-rotate hashing over little-endian words, with a final mix. Also
/// the checksum of index files.
pub(crate) struct Mixer {
    h: u64,
    tail: [u8; 8],
    tail_len: usize,
}

impl Mixer {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    pub(crate) fn new(seed: u64) -> Self {
        Self {
            h: seed,
            tail: [0; 8],
            tail_len: 0,
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.word(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub(crate) fn finish(mut self) -> u64 {
        if self.tail_len > 0 {
            self.tail[self.tail_len..].fill(0);
            self.word(u64::from_le_bytes(self.tail));
        }
        // MurmurHash3's fmix64.
        let mut k = self.h;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

impl KeyIndex {
    /// Indexes `table` by the key `key_of` extracts from each line (`None`:
    /// the line is not indexed).
    pub(crate) fn build(
        table: &TableFile,
        mut key_of: impl FnMut(&[u8], usize) -> Result<Option<u32>, SourceError>,
    ) -> Result<Self, SourceError> {
        let mut runs: Vec<Run> = Vec::new();
        let mut open: Option<(u32, u64, u64)> = None; // hash, start, end
        let mut sized = false;
        table.scan(|offset, line_no, line| {
            let Some(h) = key_of(line, line_no)? else {
                return Ok(());
            };
            // The line ends before the next one starts; the newline is
            // excluded by `lines()` when reading.
            let end = offset + line.len() as u64;
            // A run is capped (a new one starts past MAX_RUN), so a lookup
            // never reads more than that at once: a batch's enrolments are
            // often one run the size of the table.
            if let Some((oh, start, oend)) = &mut open
                && *oh == h
                && end - *start <= MAX_RUN
            {
                *oend = end;
                return Ok(());
            }
            if let Some((hash, start, end)) = open.take() {
                runs.push(Run {
                    hash,
                    offset: start,
                    len: (end - start) as u32,
                });
                // Once a few MB are read, reserve what the whole file will
                // need, so the list does not double past it (it is the
                // largest allocation of a report over a big user cache).
                if !sized && start > 4 << 20 {
                    sized = true;
                    let per_byte = runs.len() as f64 / start as f64;
                    let len = table.data_len().unwrap_or(0);
                    let expected = (per_byte * len as f64 * 1.05) as usize;
                    runs.reserve_exact(expected.saturating_sub(runs.len()));
                }
            }
            open = Some((h, offset, end));
            Ok(())
        })?;
        if let Some((hash, start, end)) = open {
            runs.push(Run {
                hash,
                offset: start,
                len: (end - start) as u32,
            });
        }
        Ok(Self::from_runs(runs))
    }

    /// The index of `runs`, in any order.
    pub(crate) fn from_runs(mut runs: Vec<Run>) -> Self {
        runs.sort_unstable();
        runs.shrink_to_fit();
        Self::from_sorted(runs)
    }

    pub(crate) fn from_sorted(runs: Vec<Run>) -> Self {
        let bits = (usize::BITS - (runs.len() / 2).leading_zeros())
            .clamp(MIN_PREFIX_BITS, MAX_PREFIX_BITS);
        let shift = 32 - bits;
        let mut buckets = vec![0u32; (1 << bits) + 1];
        for r in &runs {
            buckets[(r.hash >> shift) as usize + 1] += 1;
        }
        for p in 1..buckets.len() {
            buckets[p] += buckets[p - 1];
        }
        Self {
            runs,
            buckets,
            shift,
        }
    }

    /// The runs that may hold lines of `key`, in file order.
    pub(crate) fn runs(&self, key: &str) -> impl Iterator<Item = (u64, u32)> + '_ {
        let h = key_hash(key.as_bytes());
        let bucket = match self.buckets.get((h >> self.shift) as usize..) {
            Some([lo, hi, ..]) => &self.runs[*lo as usize..*hi as usize],
            _ => &[][..],
        };
        let start = bucket.partition_point(|r| r.hash < h);
        bucket[start..]
            .iter()
            .take_while(move |r| r.hash == h)
            .map(|r| (r.offset, r.len))
    }

    /// The runs of each of `keys`, appended to `out` as `(offset, len, i)`
    /// for `keys[i]`: the keys in order, each key's runs in file order (what
    /// [`KeyIndex::runs`] gives for each key in turn).
    ///
    /// Looked up in passes over all the keys (their hashes, then their
    /// buckets' bounds, then their buckets' first runs, then the search),
    /// not key by key: a lookup is two cache misses in a large index (the
    /// bucket table and the runs), and a pass whose loads do not depend on
    /// one another lets the processor wait for many of them at once, where
    /// key by key it waits for each in turn. (Measured in BENCHMARKS.md,
    /// issue #27: it was the largest single cost of a run reading digests.)
    pub(crate) fn runs_of_keys<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
        out: &mut Vec<(u64, u32, usize)>,
    ) {
        let hashes: Vec<u32> = keys.into_iter().map(|k| key_hash(k.as_bytes())).collect();
        let bounds: Vec<(u32, u32)> = hashes
            .iter()
            .map(|&h| match self.buckets.get((h >> self.shift) as usize..) {
                Some([lo, hi, ..]) => (*lo, *hi),
                _ => (0, 0),
            })
            .collect();
        // Each bucket's first run, loaded for all keys before any search
        // (its value is only a way to make the load happen here).
        let firsts: u32 = bounds
            .iter()
            .filter(|(lo, hi)| lo < hi)
            .map(|&(lo, _)| self.runs.get(lo as usize).map_or(0, |r| r.hash))
            .fold(0, u32::wrapping_add);
        std::hint::black_box(firsts);
        for (i, (&h, &(lo, hi))) in hashes.iter().zip(&bounds).enumerate() {
            let bucket = self.runs.get(lo as usize..hi as usize).unwrap_or_default();
            let start = bucket.partition_point(|r| r.hash < h);
            out.extend(
                bucket[start..]
                    .iter()
                    .take_while(|r| r.hash == h)
                    .map(|r| (r.offset, r.len, i)),
            );
        }
    }

    /// Every run, sorted.
    pub(crate) fn all_runs(&self) -> &[Run] {
        &self.runs
    }

    /// Runs in the index.
    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }
}

/// Where and when indexes are kept on disk.
#[derive(Debug, Clone)]
pub(crate) struct IndexStore {
    /// `<snapshot>/.exhaust-index`.
    beside: PathBuf,
    /// The cache folder's place for this snapshot, if any.
    cache: Option<PathBuf>,
    /// Tables smaller than this are indexed in memory only: rebuilding
    /// them costs less than a file.
    pub(crate) min_bytes: u64,
}

/// The folder beside the snapshot's tables.
pub(crate) const INDEX_DIR: &str = ".exhaust-index";

/// The file format's version: bump it when the layout, the hash or the
/// key extraction changes, so older files are rebuilt.
pub(crate) const MAGIC: &[u8; 8] = b"EXHIDX02";

impl IndexStore {
    pub(crate) fn new(snapshot: &Path, cache_root: Option<&Path>, min_bytes: u64) -> Self {
        let cache = cache_root.map(|root| {
            // One folder per snapshot path, so two snapshots never share.
            let path = std::fs::canonicalize(snapshot).unwrap_or_else(|_| snapshot.to_path_buf());
            let mut h = Mixer::new(0);
            h.write(path.as_os_str().as_encoded_bytes());
            root.join(format!("{:016x}", h.finish()))
        });
        Self {
            beside: snapshot.join(INDEX_DIR),
            cache,
            min_bytes,
        }
    }

    /// The file of `table`'s index (`ext` `idx`) or digest (`dig`) under
    /// `spec`.
    pub(crate) fn file_name(table: &TableFile, spec: &str, ext: &str) -> String {
        let mut h = Mixer::new(1);
        h.write(spec.as_bytes());
        format!("{}.{:08x}.{ext}", table.display, h.finish() as u32)
    }

    /// Where files go, in order of preference: beside the snapshot, then
    /// the cache folder.
    pub(crate) fn dirs(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.beside.as_path()).chain(self.cache.as_deref())
    }

    /// The persisted index of `table` under `spec` (what was indexed), if a
    /// valid one exists; why not, otherwise.
    pub(crate) fn load(&self, table: &TableFile, spec: &str) -> Result<KeyIndex, String> {
        self.first_valid(&Self::file_name(table, spec, "idx"), |path| {
            read_index(path, table, spec)
        })
    }

    /// The first file named `name` in [`IndexStore::dirs`] that `read`
    /// accepts; why none was, otherwise.
    pub(crate) fn first_valid<T>(
        &self,
        name: &str,
        read: impl Fn(&Path) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut why = Vec::new();
        for dir in self.dirs() {
            match read(&dir.join(name)) {
                Ok(found) => return Ok(found),
                Err(e) => why.push(e),
            }
        }
        Err(why.join("; "))
    }

    /// Writes the index of `table`; where it went, or why it could not be
    /// written anywhere (the index then lives in memory only).
    pub(crate) fn save(
        &self,
        table: &TableFile,
        spec: &str,
        index: &KeyIndex,
    ) -> Result<PathBuf, String> {
        let name = Self::file_name(table, spec, "idx");
        let mut why = Vec::new();
        for dir in self.dirs() {
            match write_index(dir, &name, table, spec, index) {
                Ok(path) => return Ok(path),
                Err(e) => why.push(format!("{}: {e}", dir.display())),
            }
        }
        Err(why.join("; "))
    }
}

/// What a persisted file of `table` begins with: the format (`magic`),
/// the table's stamp and what was indexed; an index file adds its run
/// count (`runs`), a digest file does not (`None`).
pub(crate) fn header(magic: &[u8; 8], table: &TableFile, spec: &str, runs: Option<u64>) -> Vec<u8> {
    let s = table.stamp;
    let mut h = Vec::with_capacity(64 + spec.len());
    h.extend_from_slice(magic);
    for v in [s.len, s.mtime_s as u64, s.mtime_ns as u64, s.ino, s.dev] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&(spec.len() as u64).to_le_bytes());
    h.extend_from_slice(spec.as_bytes());
    if let Some(runs) = runs {
        h.extend_from_slice(&runs.to_le_bytes());
    }
    h
}

pub(crate) const RUN_BYTES: usize = 16;

pub(crate) fn run_bytes(r: &Run) -> [u8; RUN_BYTES] {
    let mut b = [0u8; RUN_BYTES];
    b[..4].copy_from_slice(&r.hash.to_le_bytes());
    b[4..8].copy_from_slice(&r.len.to_le_bytes());
    b[8..].copy_from_slice(&r.offset.to_le_bytes());
    b
}

fn run_from_bytes(b: &[u8; RUN_BYTES]) -> Run {
    let mut w4 = [0u8; 4];
    let mut w8 = [0u8; 8];
    w4.copy_from_slice(&b[..4]);
    let hash = u32::from_le_bytes(w4);
    w4.copy_from_slice(&b[4..8]);
    let len = u32::from_le_bytes(w4);
    w8.copy_from_slice(&b[8..]);
    let offset = u64::from_le_bytes(w8);
    Run { hash, offset, len }
}

/// A temporary file in `dir` (made if missing) for the file `name`, with
/// permission bits `mode`: renamed into place once complete.
pub(crate) fn temp_file(
    dir: &Path,
    name: &str,
    mode: u32,
) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(tmp)
}

/// Reads `count` runs (and adds their bytes to `sum`), each checked to
/// lie within `within` and to come in order: damage the checksum would
/// catch too, checked at no cost so that `runs()` stays sound whatever.
pub(crate) fn read_runs(
    r: &mut impl Read,
    count: u64,
    sum: &mut Mixer,
    within: std::ops::Range<u64>,
) -> Result<Vec<Run>, &'static str> {
    let mut runs = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut b = [0u8; RUN_BYTES];
    let mut prev: Option<Run> = None;
    for _ in 0..count {
        r.read_exact(&mut b).map_err(|_| "truncated")?;
        sum.write(&b);
        let run = run_from_bytes(&b);
        let end = run.offset.saturating_add(u64::from(run.len));
        if run.offset < within.start || end > within.end {
            return Err("a run lies outside the data");
        }
        if prev.is_some_and(|p| p > run) {
            return Err("runs out of order");
        }
        prev = Some(run);
        runs.push(run);
    }
    Ok(runs)
}

fn write_index(
    dir: &Path,
    name: &str,
    table: &TableFile,
    spec: &str,
    index: &KeyIndex,
) -> std::io::Result<PathBuf> {
    // Readable by all, as the tables are: another account serving the same
    // snapshot reads it too (temporary files start private).
    let tmp = temp_file(dir, name, 0o644)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let head = header(MAGIC, table, spec, Some(index.runs.len() as u64));
    let mut sum = Mixer::new(2);
    sum.write(&head);
    out.write_all(&head)?;
    for r in &index.runs {
        let b = run_bytes(r);
        sum.write(&b);
        out.write_all(&b)?;
    }
    out.write_all(&sum.finish().to_le_bytes())?;
    out.flush()?;
    drop(out);
    let path = dir.join(name);
    // Renamed into place only once complete (a reader never sees half).
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

fn read_index(path: &Path, table: &TableFile, spec: &str) -> Result<KeyIndex, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let file_len = file.metadata().map_err(|e| bad(&e.to_string()))?.len();
    let r = BufReader::with_capacity(1 << 20, file);
    let expected = header(MAGIC, table, spec, Some(0));
    parse_index(r, file_len, &expected, || {
        table.data_len().map_err(|e| e.to_string())
    })
    .map_err(|e| bad(&e))
}

/// Reads an index file of `file_len` bytes from `r` and checks it whole:
/// its header is `expected` but for the run count (the last 8 bytes of
/// `expected`), its length is what the count says, every run lies within
/// the table's `data_len` bytes (asked only once the header matched: a
/// gzip table is decompressed then) and comes in order, and the checksum
/// matches. Every byte of the file may be anything (damage, another
/// program's file, a file crafted with a right checksum): `Err` says what
/// was wrong; it never panics, and it allocates no more than `file_len`.
pub(crate) fn parse_index(
    mut r: impl Read,
    file_len: u64,
    expected: &[u8],
    data_len: impl FnOnce() -> Result<u64, String>,
) -> Result<KeyIndex, String> {
    let head_len = expected.len();
    let fixed = head_len
        .checked_sub(8)
        .ok_or("an index header holds its run count")?;
    let mut head = vec![0u8; head_len];
    r.read_exact(&mut head).map_err(|_| "truncated header")?;
    // Everything but the run count must match: format, stamp, spec.
    if head[..fixed] != expected[..fixed] {
        return Err("built from another version of the table, or another index".into());
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&head[fixed..]);
    let count = u64::from_le_bytes(n);
    let body = count
        .checked_mul(RUN_BYTES as u64)
        .and_then(|b| b.checked_add(head_len as u64 + 8));
    if body != Some(file_len) {
        return Err("truncated or overlong".into());
    }
    let mut sum = Mixer::new(2);
    sum.write(&head);
    let data_len = data_len()?;
    let runs = read_runs(&mut r, count, &mut sum, 0..data_len)?;
    r.read_exact(&mut n).map_err(|_| "truncated")?;
    if u64::from_le_bytes(n) != sum.finish() {
        return Err("checksum mismatch".into());
    }
    Ok(KeyIndex::from_sorted(runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable() {
        // Persisted indexes depend on these values: changing them needs a
        // new MAGIC.
        assert_eq!(key_hash(b""), 0);
        assert_eq!(
            [key_hash(b"user-001"), key_hash(b"0156132093238508567")],
            [2_565_522_067, 1_072_750_938]
        );
        assert_ne!(key_hash(b"user-001"), key_hash(b"user-002"));
        let mut split = Mixer::new(7);
        split.write(b"abc");
        split.write(b"defghijkl");
        let mut whole = Mixer::new(7);
        whole.write(b"abcdefghijkl");
        assert_eq!(split.finish(), whole.finish());
    }

    proptest::proptest! {
        /// The lookup of many keys at once finds, for each key, what a
        /// lookup of that key alone finds, and that is every run with the
        /// key's hash in file order: keys present once or several times
        /// (several runs of one hash), absent, asked twice, in indexes from
        /// empty to a few thousand runs (the bucket table's size follows).
        #[test]
        fn many_keys_at_once_find_what_each_key_finds(
            present in proptest::collection::vec(0u32..5_000, 0..3_000),
            asked in proptest::collection::vec(0u32..6_000, 0..400),
        ) {
            let name = |k: u32| format!("user-{k}");
            let runs: Vec<Run> = present
                .iter()
                .enumerate()
                .map(|(n, &k)| Run {
                    hash: key_hash(name(k).as_bytes()),
                    offset: n as u64 * 100,
                    len: 100,
                })
                .collect();
            let index = KeyIndex::from_runs(runs);
            let keys: Vec<String> = asked.iter().map(|&k| name(k)).collect();
            let mut expected = Vec::new();
            let mut one_by_one = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let h = key_hash(key.as_bytes());
                let with_hash = index.all_runs().iter().filter(|r| r.hash == h);
                expected.extend(with_hash.map(|r| (r.offset, r.len, i)));
                one_by_one.extend(index.runs(key).map(|(o, l)| (o, l, i)));
            }
            let mut many = Vec::new();
            index.runs_of_keys(keys.iter().map(String::as_str), &mut many);
            proptest::prop_assert_eq!(&many, &one_by_one);
            proptest::prop_assert_eq!(&many, &expected);
        }
    }
}
