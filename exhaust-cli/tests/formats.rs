//! Choosing the file format: `exhaust report --format` writes Sunbird's
//! names with the format's extension, and `[job] format` makes `exhaust run`
//! build requests in that format, zipped and encrypted like the CSV and
//! restored by `exhaust decrypt`. The typed files' contents are checked
//! against the CSV in exhaust-writer's tests; here pyarrow and openpyxl only
//! confirm each file is what its name says and has the CSV's rows.

mod common;

use common::exhaust;
use std::path::{Path, PathBuf};

const BATCH: &str = "0135742803756164562";

fn reader() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../exhaust-writer/tests/read_typed.py")
}

/// Rows of a typed file by the independent reader (the header row of an
/// xlsx sheet not counted).
fn rows_read(kind: &str, file: &Path) -> usize {
    let out = std::process::Command::new("python3")
        .arg(reader())
        .arg(kind)
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python reader failed (CI needs `pip install pyarrow openpyxl`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    match kind {
        "xlsx" => v["sheets"][0]["rows"].as_array().expect("rows").len() - 1,
        _ => v["rows"].as_array().expect("rows").len(),
    }
}

fn report(dir: &Path, format: &str) -> std::process::Output {
    exhaust(dir)
        .args(["report", "--batch-id", BATCH, "--format", format, "--out"])
        .arg(dir)
        .output()
        .expect("report")
}

fn only_file(folder: &Path, ext: &str) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(folder)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().expect("one")
}

#[test]
fn an_unknown_format_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let out = report(dir.path(), "pdf");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'pdf' for '--format <FORMAT>'")
            && err.contains("[possible values: csv, parquet, arrow, xlsx]"),
        "{err}"
    );
}

#[test]
fn report_writes_each_format_under_sunbirds_name() {
    let dir = tempfile::tempdir().expect("dir");
    let out = report(dir.path(), "csv");
    assert!(out.status.success(), "{out:?}");
    let folder = dir.path().join("progress-exhaust");
    let csv = std::fs::read_to_string(only_file(&folder, "csv")).expect("csv");
    let csv_rows = csv.lines().count() - 1;
    for (format, magic) in [
        ("parquet", &b"PAR1"[..]),
        ("arrow", &b"ARROW1"[..]),
        ("xlsx", &b"PK"[..]),
    ] {
        let out = report(dir.path(), format);
        if !cfg!(feature = "typed") {
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not built in"), "{err}");
            continue;
        }
        assert!(out.status.success(), "{out:?}");
        let file = only_file(&folder, format);
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with(&format!("{BATCH}_progress_"))
                && name.len() == BATCH.len() + 19 + format.len(),
            "{name}"
        );
        let bytes = std::fs::read(&file).expect("file");
        assert!(bytes.starts_with(magic), "{name}");
        assert_eq!(rows_read(format, &file), csv_rows, "{name}");
    }
    // No temporary file is left behind.
    assert!(std::fs::read_dir(&folder).expect("folder").all(|e| {
        !e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".part")
    }));
}

/// Requests through `exhaust run`; the typed formats only.
#[cfg(feature = "typed")]
mod run {
    use super::*;

    const CHANNEL: &str = "0166646273726135492";
    const SUNBIRD_KEY: &str = "SunbirdSalt-1234";
    const PLAIN_KEY: &str = "report-Key-42";

    /// `[job] format = "parquet"` with the text-key level: the stored zip
    /// holds the envelope of a Parquet file, which `exhaust decrypt` restores.
    #[test]
    fn the_job_format_goes_through_the_run_the_zip_and_the_envelope() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("exhaust.toml"),
            format!(
                "[security]\nlevel = \"TEXT_KEY_ENCRYPTED_DATASET\"\n\
             sunbird_encryption_key = \"{SUNBIRD_KEY}\"\n[job]\nformat = \"parquet\"\n"
            ),
        )
        .expect("config");
        let stored = exhaust_writer::encode_encryption_key(PLAIN_KEY, SUNBIRD_KEY);
        let out = exhaust(dir.path())
            .args(["submit", "--batch-id", BATCH, "--requested-by", "u-1"])
            .args(["--channel", CHANNEL, "--encryption-key-env", "STORED_KEY"])
            .env("STORED_KEY", stored)
            .output()
            .expect("submit");
        assert!(out.status.success(), "{out:?}");
        let id = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("id")
            .to_string();
        let run = exhaust(dir.path()).arg("run").output().expect("run");
        assert!(run.status.success(), "{run:?}");
        let status = exhaust(dir.path())
            .args(["status", &id, "--json"])
            .output()
            .expect("status");
        let row: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
        assert_eq!(row["status"], "SUCCESS", "{row}");
        let zip = dir
            .path()
            .join("exhaust-files")
            .join(row["downloadUrls"][0].as_str().expect("url"));
        assert!(zip.to_string_lossy().ends_with(".zip"));

        let restored = dir.path().join("restored.parquet");
        let out = exhaust(dir.path())
            .arg("decrypt")
            .arg(&zip)
            .args(["--key-env", "PLAIN"])
            .env("PLAIN", PLAIN_KEY)
            .arg("--out")
            .arg(&restored)
            .output()
            .expect("decrypt");
        assert!(out.status.success(), "{out:?}");
        let bytes = std::fs::read(&restored).expect("restored");
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));

        let csv = report(dir.path(), "csv");
        assert!(csv.status.success());
        let csv = std::fs::read_to_string(only_file(&dir.path().join("progress-exhaust"), "csv"))
            .expect("csv");
        assert_eq!(rows_read("parquet", &restored), csv.lines().count() - 1);
    }
}
