//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the snapshot
//! reader's decoding of one line, through the same row types and
//! conversions, and its reading of the files it persists beside a snapshot
//! (offset index files, digests), which anyone who can write the index
//! folder can place there. Not a stable API.

use crate::rows::{
    self, ActivityRow, AttemptRow, BatchRow, CacheRow, ContentRow, EnrolmentRow, HierarchyRow,
};

/// The snapshot's tables, in the order [`decode_line`] numbers them.
pub const TABLES: [&str; 8] = [
    "course_batch",
    "user_enrolments",
    "assessment_aggregator",
    "user_activity_agg",
    "content",
    "content_hierarchy",
    "relation_cache",
    "user_cache",
];

/// Decodes one line of `table` as the snapshot reader does: the key the
/// offset index takes from it, then the row and its conversion to the core
/// type. `Err` carries the reader's message; it never panics.
pub fn decode_line(table: &str, line: &[u8]) -> Result<(), String> {
    let e = |e: serde_json::Error| e.to_string();
    let key = |field: &str| {
        crate::snapshot::keyscan::top_level_str(line, field)
            .map(|_| ())
            .map_err(|e| e.0)
    };
    match table {
        "course_batch" => {
            serde_json::from_slice::<BatchRow>(line)
                .map_err(e)?
                .into_batch()?;
        }
        "user_enrolments" => {
            key("batchid")?;
            serde_json::from_slice::<EnrolmentRow>(line)
                .map_err(e)?
                .into_record()?;
        }
        "assessment_aggregator" => {
            key("user_id")?;
            serde_json::from_slice::<AttemptRow>(line)
                .map_err(e)?
                .into_attempt()?;
        }
        "user_activity_agg" => {
            key("user_id")?;
            serde_json::from_slice::<ActivityRow>(line)
                .map_err(e)?
                .into_aggregate()?;
        }
        "content" => {
            let raw: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(line).map_err(e)?;
            serde_json::from_value::<ContentRow>(serde_json::Value::Object(raw))
                .map_err(e)?
                .into_meta()?;
        }
        "content_hierarchy" => {
            key("identifier")?;
            let _ = serde_json::from_slice::<HierarchyRow>(line).map_err(e)?;
        }
        "relation_cache" => {
            let row: CacheRow = serde_json::from_slice(line).map_err(e)?;
            let _: Vec<String> = serde_json::from_value(row.value).map_err(e)?;
        }
        "user_cache" => {
            key("key")?;
            let row: CacheRow = serde_json::from_slice(line).map_err(e)?;
            let _ = rows::user_entry(row.value);
        }
        other => return Err(format!("no table {other}")),
    }
    Ok(())
}

/// Bytes of the fixed part of a persisted file's header: the format (8),
/// the table's stamp (5 words of 8) and the length of the spec (8).
const HEADER_FIXED: usize = 8 + 5 * 8 + 8;

/// The header a persisted file of format `magic` begins with, taken from
/// `file` itself when it has one (format, stamp, spec; then `extra` bytes,
/// an index's run count), else one for an empty stamp and spec. The stamp
/// a real file was written for (the table's size, modification time,
/// inode, device) is known only to the table it came from: taking it from
/// the file lets a real file read back here as it does beside its table,
/// and the fuzzer reach what follows the header.
fn own_header(file: &[u8], magic: &[u8; 8], extra: usize) -> Vec<u8> {
    let spec_len = file
        .get(HEADER_FIXED - 8..HEADER_FIXED)
        .filter(|_| file.starts_with(magic))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok());
    match spec_len
        .and_then(|n| n.checked_add(HEADER_FIXED + extra))
        .and_then(|end| file.get(..end))
    {
        Some(head) => head.to_vec(),
        None => {
            let mut head = magic.to_vec();
            head.resize(HEADER_FIXED + extra, 0);
            head
        }
    }
}

/// The table's size in a header (the first word of its stamp).
fn stamped_len(header: &[u8]) -> u64 {
    header
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Keys looked up in a persisted file read back: the bundled sample's (a
/// batch, a user, a course) and the empty key. A lookup goes by the key's
/// hash, which the fuzzer can write into any run.
const LOOKUP_KEYS: [&str; 4] = [
    "",
    "0135742803756164562",
    "2f011690-14e7-4fff-8b5b-215d4f91532a",
    "do_111619594813120048361",
];

/// What [`index_file`] read.
#[derive(Debug)]
pub struct IndexRead {
    /// The table's size as the header says it: every run must lie within.
    pub data_len: u64,
    /// Runs in the index.
    pub runs: usize,
    /// The runs lookups of a few keys found (offset, length).
    pub found: Vec<(u64, u32)>,
}

/// Reads `data` as a persisted offset index file, as the snapshot reader
/// reads one back (`index::parse_index`), with the header it expects taken
/// from the file (see `own_header`) and the table's size from that header;
/// then looks a few keys up. The first byte is not part of the file: with
/// its low bit set, the file's checksum is put right first, as a file
/// crafted on purpose would have it, so the checks behind it are reached.
/// `Err` carries the reader's message; it never panics.
pub fn index_file(data: &[u8]) -> Result<IndexRead, String> {
    let (&mode, file) = data.split_first().ok_or("no mode byte")?;
    let mut file = file.to_vec();
    if mode & 1 == 1
        && let Some(n) = file.len().checked_sub(8)
    {
        let mut sum = crate::snapshot::index::Mixer::new(2);
        sum.write(&file[..n]);
        file[n..].copy_from_slice(&sum.finish().to_le_bytes());
    }
    let expected = own_header(&file, crate::snapshot::index::MAGIC, 8);
    let data_len = stamped_len(&expected);
    let index =
        crate::snapshot::index::parse_index(&file[..], file.len() as u64, &expected, || {
            Ok(data_len)
        })?;
    let found = LOOKUP_KEYS.iter().flat_map(|k| index.runs(k)).collect();
    Ok(IndexRead {
        data_len,
        runs: index.len(),
        found,
    })
}

/// What [`digest_file`] read.
#[derive(Debug, Default)]
pub struct DigestRead {
    /// Runs in the run index.
    pub runs: usize,
    /// Runs decoded (each as the four tables' records).
    pub decoded: usize,
    /// Records that decoded, over all four tables.
    pub records: usize,
    /// Runs found damaged.
    pub damaged: usize,
}

/// Runs decoded by [`digest_file`] at most: runs may overlap, so decoding
/// them all could cost the square of the file's size.
const MAX_DECODED_RUNS: usize = 64;

/// Reads `data` as a persisted digest file, as the snapshot reader reads
/// one back (`digest::parse_digest_index`, the header taken from the file
/// as [`index_file`] does), then decodes its runs (the first
/// [`MAX_DECODED_RUNS`]) as each of the four digested tables' records
/// (`Digest::decode_run`), converting each row as a lookup does. The first
/// byte is not part of the file: its low bit puts the file's checksum
/// right first, its second bit each run's checksum before the run is
/// decoded, as a file crafted on purpose would have them. `Err` carries
/// the reader's message; a damaged run is counted. It panics only when the
/// reader breaks its promise of runs within the file: a finding.
pub fn digest_file(data: &[u8]) -> Result<DigestRead, String> {
    use crate::snapshot::digest::tables::{Activities, Attempts, Enrolments, Users};
    use crate::snapshot::digest::{Digest, MAGIC, Record, parse_digest_index};
    use crate::snapshot::index::Mixer;
    let (&mode, file) = data.split_first().ok_or("no mode byte")?;
    let mut file = file.to_vec();
    let expected = own_header(&file, MAGIC, 0);
    if mode & 1 == 1 {
        // The checksum (the last 8 bytes) is over the header and the run
        // index (the 16 bytes of each of `count` runs before the trailer).
        let len = file.len();
        let count = len
            .checked_sub(16)
            .and_then(|at| file.get(at..at + 8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes);
        let index_start = count
            .and_then(|c| usize::try_from(c).ok())
            .and_then(|c| c.checked_mul(16))
            .and_then(|b| (len - 16).checked_sub(b))
            .filter(|start| *start >= expected.len());
        if let Some(start) = index_start {
            let mut sum = Mixer::new(2);
            sum.write(&file[..expected.len()]);
            sum.write(&file[start..len - 16]);
            file[len - 8..].copy_from_slice(&sum.finish().to_le_bytes());
        }
    }
    let index = parse_digest_index(&file[..], file.len() as u64, &expected)?;
    let mut read = DigestRead {
        runs: index.len(),
        ..DigestRead::default()
    };
    for run in index.all_runs().iter().take(MAX_DECODED_RUNS) {
        let start = usize::try_from(run.offset).unwrap_or(usize::MAX);
        // The reader promises every run within the file: a panic here is
        // a finding (a run read past the file would fail every lookup).
        let Some(bytes) = start
            .checked_add(run.len as usize)
            .and_then(|end| file.get(start..end))
        else {
            panic!("the run index holds a run outside the file: {run:?}");
        };
        let mut bytes = bytes.to_vec();
        if mode & 2 == 2
            && let Some(n) = bytes.len().checked_sub(4)
        {
            let mut sum = Mixer::new(3);
            sum.write(&bytes[..n]);
            bytes[n..].copy_from_slice(&(sum.finish() as u32).to_le_bytes());
        }
        read.decoded += 1;
        macro_rules! decode {
            ($codec:ty, $convert:expr) => {
                match Digest::decode_run::<$codec>(&bytes) {
                    Ok(records) => {
                        for record in records {
                            read.records += 1;
                            if let Record::Row { row, .. } = record {
                                let _ = $convert(row);
                            }
                        }
                    }
                    Err(_) => read.damaged += 1,
                }
            };
        }
        decode!(Enrolments, |r: crate::rows::EnrolmentRow| r.into_record());
        decode!(Users, |r: crate::rows::UserCacheRow<'_>| r.value.0);
        decode!(Attempts, |r: crate::rows::AttemptRow<'_>| r.into_attempt());
        decode!(Activities, |r: crate::rows::ActivityRow<'_>| r
            .into_aggregate());
    }
    Ok(read)
}

/// Reads a user cache value (a Redis hash as JSON) as both the snapshot
/// reader and the Redis adapter do.
pub fn user_entry(value: serde_json::Value) -> exhaust_core::model::UserEntry {
    rows::user_entry(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_sample_lines_and_refuses_garbage() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sample-snapshot");
        for table in TABLES {
            let text = std::fs::read_to_string(format!("{sample}/{table}.jsonl")).expect("table");
            let line = text.lines().next().expect("a line");
            assert_eq!(decode_line(table, line.as_bytes()), Ok(()), "{table}");
            assert!(decode_line(table, b"{\"").is_err(), "{table}");
        }
        assert!(decode_line("nothing", b"{}").is_err());
    }

    /// The index (`idx`) and digest (`dig`) files the snapshot reader
    /// persists for a small generated snapshot, with digests or without.
    fn persisted_files(digest: bool) -> Vec<(String, Vec<u8>)> {
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
        let opts = crate::SnapshotOptions {
            persist_index_min_bytes: Some(0),
            digest,
            digest_min_percent: 0,
            ..crate::SnapshotOptions::default()
        };
        let snapshot = crate::Snapshot::open(dir.path(), opts).expect("opens");
        let batch = exhaust_core::BatchId::new(summary.batch_ids[0].clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime
            .block_on(build_report(
                &snapshot,
                &batch,
                None,
                &ReportOptions::default(),
                &mut VecSink::default(),
            ))
            .expect("builds");
        let mut files: Vec<(String, Vec<u8>)> =
            std::fs::read_dir(dir.path().join(".exhaust-index"))
                .expect("index folder")
                .map(|e| e.expect("entry").path())
                .filter_map(|p| {
                    let ext = p.extension()?.to_str()?.to_owned();
                    Some((ext, std::fs::read(&p).expect("read")))
                })
                .collect();
        files.sort();
        files
    }

    fn with_mode(mode: u8, file: &[u8]) -> Vec<u8> {
        let mut data = vec![mode];
        data.extend_from_slice(file);
        data
    }

    #[test]
    fn persisted_index_files_read_back_and_damage_is_refused() {
        let files = persisted_files(false);
        let indexes: Vec<&Vec<u8>> = files
            .iter()
            .filter(|(ext, _)| ext == "idx")
            .map(|(_, f)| f)
            .collect();
        assert!(indexes.len() >= 5, "every table's index: {}", indexes.len());
        for file in indexes {
            let read = index_file(&with_mode(0, file)).expect("a real index reads back");
            assert!(read.runs > 0);
            for (offset, len) in &read.found {
                assert!(offset + u64::from(*len) <= read.data_len);
            }
            // The checksum changed: the checksum says so; put right again
            // (mode 1), the file reads.
            let mut damaged = file.clone();
            let last = damaged.len() - 1;
            damaged[last] ^= 0x55;
            assert_eq!(
                index_file(&with_mode(0, &damaged)).map(|r| r.runs),
                Err("checksum mismatch".into())
            );
            assert_eq!(
                index_file(&with_mode(1, &damaged)).map(|r| r.runs),
                Ok(read.runs)
            );
            // The last run's offset moved past the table, the checksum put
            // right: the range check finds it.
            let mut damaged = file.clone();
            let last_run_offset_top = damaged.len() - 8 - 1;
            damaged[last_run_offset_top] = 0x7f;
            assert_eq!(
                index_file(&with_mode(1, &damaged)).map(|r| r.runs),
                Err("a run lies outside the data".into())
            );
            // Cut short.
            let cut = &file[..file.len() - 1];
            assert!(index_file(&with_mode(1, cut)).is_err());
        }
        assert!(index_file(b"").is_err());
        assert!(index_file(b"\x01EXHIDX02").is_err());
    }

    #[test]
    fn persisted_digests_read_back_and_a_damaged_run_is_found() {
        let files = persisted_files(true);
        let digests: Vec<&Vec<u8>> = files
            .iter()
            .filter(|(ext, _)| ext == "dig")
            .map(|(_, f)| f)
            .collect();
        assert_eq!(digests.len(), 4, "the four large tables");
        for file in digests {
            let read = digest_file(&with_mode(0, file)).expect("a real digest reads back");
            assert!(read.runs > 0 && read.decoded > 0);
            // Each run decodes as its own table's records (and maybe as
            // another's): never damaged as all four.
            assert!(read.records > 0);
            assert!(read.damaged < 4 * read.decoded, "{read:?}");
            // A byte of the first run's records changed (the run after the
            // header: its fields' length, then its first record): the run
            // index still reads, the run's checksum finds the damage.
            assert!(read.runs <= MAX_DECODED_RUNS, "every run is decoded");
            let mut spec_len = [0u8; 8];
            spec_len.copy_from_slice(&file[HEADER_FIXED - 8..HEADER_FIXED]);
            let first_run = HEADER_FIXED + u64::from_le_bytes(spec_len) as usize;
            let mut damaged = file.clone();
            damaged[first_run + 5] ^= 0x55;
            let read_damaged = digest_file(&with_mode(0, &damaged)).expect("the index reads");
            assert!(read_damaged.damaged > read.damaged, "{read_damaged:?}");
        }
        assert!(digest_file(b"").is_err());
        assert!(digest_file(&with_mode(3, b"EXHDIG03")).is_err());
    }
}
