//! The bundled sample snapshot, carried inside the binary: `exhaust report
//! --batch-id 0135742803756164562` works from a copy of the binary on any
//! machine, with no snapshot configured. The snapshot reader reads folders,
//! so the tables (380 KB) are written once to a folder of the user's cache
//! (`$XDG_CACHE_HOME/exhaust`, else `$HOME/.cache/exhaust`, else the
//! temporary folder) named by their digest, and checked byte for byte
//! before every use: a stale or altered copy is replaced, never read.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

macro_rules! table {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../examples/sample-snapshot/",
                $name
            )),
        )
    };
}

/// The sample's tables: file name and contents.
const TABLES: &[(&str, &[u8])] = &[
    table!("assessment_aggregator.jsonl"),
    table!("content.jsonl"),
    table!("content_hierarchy.jsonl"),
    table!("course_batch.jsonl"),
    table!("relation_cache.jsonl"),
    table!("system_settings.jsonl"),
    table!("user_activity_agg.jsonl"),
    table!("user_cache.jsonl"),
    table!("user_enrolments.jsonl"),
];

/// The sample's folder, written when missing or not the embedded tables.
pub fn sample_snapshot() -> anyhow::Result<PathBuf> {
    sample_snapshot_under(&cache_base())
}

/// Where the copy goes: the user's cache folder, else the temporary one.
fn cache_base() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("exhaust")
}

/// [`sample_snapshot`] under `base`.
pub fn sample_snapshot_under(base: &Path) -> anyhow::Result<PathBuf> {
    let dir = base.join(format!("sample-{}", digest()));
    if holds_the_sample(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(base)
        .with_context(|| format!("cannot create {} for the sample snapshot", base.display()))?;
    // Written whole in a folder of its own, then renamed into place: a
    // concurrent run sees the old folder, the new one or none, never a part.
    let staging = tempfile::Builder::new()
        .prefix(".sample-")
        .tempdir_in(base)
        .with_context(|| format!("cannot write the sample snapshot under {}", base.display()))?;
    for (name, bytes) in TABLES {
        let path = staging.path().join(name);
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if dir.exists() {
        // Another run may have written it since the check above; a true
        // copy is never moved, as other runs may be reading it.
        if holds_the_sample(&dir) {
            return Ok(dir);
        }
        // Stale or altered: set aside first (a rename cannot replace a
        // folder that has files), then dropped.
        let old = tempfile::Builder::new()
            .prefix(".stale-sample-")
            .tempdir_in(base)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
        let aside = old.path().join("sample");
        if std::fs::rename(&dir, &aside).is_err() && holds_the_sample(&dir) {
            // Another run replaced it meanwhile.
            return Ok(dir);
        }
    }
    let staged = staging.keep();
    match std::fs::rename(&staged, &dir) {
        Ok(()) => {}
        // Another run put its copy in place first; ours is not needed.
        Err(_) if holds_the_sample(&dir) => {
            let _ = std::fs::remove_dir_all(&staged);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e).with_context(|| format!("cannot write {}", dir.display()));
        }
    }
    anyhow::ensure!(
        holds_the_sample(&dir),
        "the sample snapshot at {} changed while it was written",
        dir.display()
    );
    Ok(dir)
}

/// Whether `dir` has every table with exactly the embedded bytes (other
/// files, the reader's indexes and digests, may be there too).
fn holds_the_sample(dir: &Path) -> bool {
    TABLES
        .iter()
        .all(|(name, bytes)| std::fs::read(dir.join(name)).is_ok_and(|b| b == *bytes))
}

/// The tables' digest, 16 hex digits: a new sample gets a new folder.
fn digest() -> String {
    let mut hash = Sha256::new();
    for (name, bytes) in TABLES {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_written_once_and_restored_when_altered() {
        let base = tempfile::tempdir().expect("dir");
        let dir = sample_snapshot_under(base.path()).expect("written");
        for (name, bytes) in TABLES {
            assert_eq!(std::fs::read(dir.join(name)).expect("table"), *bytes);
        }
        // The reader's own files beside the tables are kept.
        std::fs::write(dir.join("reader-index"), b"kept").expect("write");
        assert_eq!(sample_snapshot_under(base.path()).expect("again"), dir);
        assert!(dir.join("reader-index").exists());

        // An altered table: the folder is replaced by a true copy.
        std::fs::write(dir.join("user_cache.jsonl"), b"{}\n").expect("alter");
        std::fs::remove_file(dir.join("content.jsonl")).expect("remove");
        assert_eq!(sample_snapshot_under(base.path()).expect("restored"), dir);
        assert!(holds_the_sample(&dir));
        // Nothing else left behind: no staging or stale folders.
        let names: Vec<String> = std::fs::read_dir(base.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("sample-{}", digest())]);
    }

    #[test]
    fn every_table_of_the_example_folder_is_embedded() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot");
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .expect("sample folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".jsonl"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = TABLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded);
    }
}
