//! Writes the seeds of the fuzz targets `index_file` and `digest_file`
//! (`fuzz/corpus/<target>/`): the offset index and digest files the
//! snapshot reader persists for a small generated snapshot, each behind the
//! mode byte the targets read first (see `exhaust_sources::fuzzing`).
//!
//! ```sh
//! cargo run -p exhaust-sources --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! The generator is deterministic, but a file's header holds its table's
//! stamp (modification time, inode), so each run writes seeds of new names;
//! the committed ones are enough. Files over 16 KiB are left out: libFuzzer
//! takes the longest seed as the longest input it makes.

use exhaust_core::BatchId;
use exhaust_core::report::{ReportOptions, VecSink, build_report};
use exhaust_sources::generate::{GenParams, generate};
use exhaust_sources::{Snapshot, SnapshotOptions};
use std::path::{Path, PathBuf};

/// The largest seed written.
const MAX_SEED: u64 = 16 << 10;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fuzz_seeds <corpus folder, e.g. fuzz/corpus>")?,
    );
    let dir = tempfile::tempdir()?;
    let params = GenParams {
        batches: 1,
        enrolments_per_batch: 6,
        users: 8,
        units: 2,
        leaves_per_unit: 2,
        assessments: 1,
        attempts: 2,
        ..GenParams::default()
    };
    let summary = generate(dir.path(), &params)?;
    let batch = BatchId::new(summary.batch_ids.first().ok_or("no batch")?.clone());
    let index_dir = dir.path().join(".exhaust-index");
    let mut written = 0;
    // With digests (the four large tables' digests, the others' indexes),
    // then without (every table's offset index).
    for digest in [true, false] {
        if index_dir.exists() {
            std::fs::remove_dir_all(&index_dir)?;
        }
        let opts = SnapshotOptions {
            // Every table is persisted, however small.
            persist_index_min_bytes: Some(0),
            digest,
            digest_min_percent: 0,
            ..SnapshotOptions::default()
        };
        let snapshot = Snapshot::open(dir.path(), opts)?;
        let mut sink = VecSink::default();
        build_report(
            &snapshot,
            &batch,
            None,
            &ReportOptions::default(),
            &mut sink,
        )
        .await?;
        drop(snapshot);
        written += write_seeds(&index_dir, &corpus)?;
    }
    println!("{written} seeds written under {}", corpus.display());
    Ok(())
}

/// Writes the files of `index_dir` as seeds under `corpus`; how many.
fn write_seeds(index_dir: &Path, corpus: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for entry in std::fs::read_dir(index_dir)? {
        let path = entry?.path();
        let (target, modes): (&str, &[u8]) = match path.extension().and_then(|e| e.to_str()) {
            // As written; and with the checksum put right after mutation.
            Some("idx") => ("index_file", &[0, 1]),
            // As written; and with both checksums put right.
            Some("dig") => ("digest_file", &[0, 3]),
            _ => continue,
        };
        if std::fs::metadata(&path)?.len() > MAX_SEED {
            continue;
        }
        let file = std::fs::read(&path)?;
        for &mode in modes {
            let mut seed = vec![mode];
            seed.extend_from_slice(&file);
            write_seed(&corpus.join(target), &seed)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Writes `seed` into `folder` under the hex MD5 of its bytes.
fn write_seed(folder: &Path, seed: &[u8]) -> std::io::Result<()> {
    use md5::{Digest, Md5};
    std::fs::create_dir_all(folder)?;
    let name: String = Md5::digest(seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(folder.join(name), seed)
}
