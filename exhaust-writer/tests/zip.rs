//! Zipping: plain and ZipCrypto round trips, through the zip crate and, when
//! installed, Info-ZIP's `unzip`.

use exhaust_writer::{WriteError, write_zip, zip_file};
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::process::Command;
use zip::{CompressionMethod, ZipArchive};

const ENTRY: &str = "batch-0130_progress.csv";

fn sample_csv() -> Vec<u8> {
    let mut csv = b"User ID,Name,Progress\r\n".to_vec();
    for i in 0..500 {
        csv.extend_from_slice(format!("u-{i},\"Doe, नमस्ते {i}\",{}\r\n", i % 101).as_bytes());
    }
    csv
}

fn zip_to_vec(csv: &[u8], password: Option<&str>) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let size = write_zip(&mut &csv[..], &mut out, ENTRY, password, at()).expect("write_zip");
    let bytes = out.into_inner();
    assert_eq!(size, bytes.len() as u64, "returned size is the zip's size");
    bytes
}

/// The time the tests give their zips' entries: 10:20:30 UTC, 5 March 2024.
fn at() -> chrono::DateTime<chrono::Utc> {
    chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2024, 3, 5, 10, 20, 30)
        .single()
        .expect("time")
}

#[test]
fn the_entry_time_is_the_one_given() {
    let zip = zip_to_vec(b"a\r\n", None);
    let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
    let entry = archive.by_index(0).expect("entry");
    let t = entry.last_modified().expect("a time");
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        (2024, 3, 5, 10, 20, 30)
    );
}

/// Bit 0 of the first local header's general purpose flags.
fn first_entry_encrypted_flag(zip: &[u8]) -> bool {
    assert_eq!(&zip[..4], b"PK\x03\x04", "starts with a local file header");
    zip[6] & 1 == 1
}

#[test]
fn plain_round_trip() {
    let csv = sample_csv();
    let zip = zip_to_vec(&csv, None);
    assert!(zip.len() < csv.len(), "deflated");
    assert!(!first_entry_encrypted_flag(&zip));

    let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
    assert_eq!(archive.len(), 1);
    let mut entry = archive.by_name(ENTRY).expect("entry");
    assert!(!entry.encrypted());
    assert_eq!(entry.compression(), CompressionMethod::Deflated);
    assert_eq!(entry.name().expect("entry name"), ENTRY);
    assert_eq!(entry.size(), csv.len() as u64);
    let mut back = Vec::new();
    entry.read_to_end(&mut back).expect("read");
    assert_eq!(back, csv);
}

#[test]
fn zipcrypto_round_trip() {
    let csv = sample_csv();
    let zip = zip_to_vec(&csv, Some("s3cret-batch"));
    assert!(first_entry_encrypted_flag(&zip));

    let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
    assert_eq!(archive.len(), 1);
    assert!(
        archive.by_name(ENTRY).is_err(),
        "an encrypted entry needs the password"
    );
    let mut entry = archive
        .by_name_decrypt(ENTRY, b"s3cret-batch")
        .expect("right password");
    assert!(entry.encrypted());
    assert_eq!(entry.compression(), CompressionMethod::Deflated);
    let mut back = Vec::new();
    entry.read_to_end(&mut back).expect("read");
    assert_eq!(back, csv);
}

#[test]
fn wrong_password_fails() {
    let csv = sample_csv();
    let zip = zip_to_vec(&csv, Some("right"));
    let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
    // ZipCrypto checks a password against one byte, so 1 in 256 wrong
    // passwords pass that check; they then fail on the data (CRC).
    for wrong in ["wrong", "Right", "right ", "x"] {
        match archive.by_name_decrypt(ENTRY, wrong.as_bytes()) {
            Err(_) => {}
            Ok(mut entry) => {
                let mut back = Vec::new();
                let read = entry.read_to_end(&mut back);
                assert!(read.is_err() || back != csv, "{wrong:?} decrypted the CSV");
            }
        }
    }
}

#[test]
fn empty_password_is_refused() {
    let mut out = Cursor::new(Vec::new());
    let err = write_zip(&mut &b"a\r\n"[..], &mut out, ENTRY, Some(""), at()).expect_err("empty");
    assert!(matches!(err, WriteError::EmptyPassword));
    assert!(out.into_inner().is_empty(), "nothing written");

    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("r.csv");
    std::fs::write(&csv_path, b"a\r\n").expect("write");
    let zip_path = dir.path().join("r.zip");
    let err = zip_file(&csv_path, &zip_path, ENTRY, Some(""), at()).expect_err("empty");
    assert!(matches!(err, WriteError::EmptyPassword));
    assert_eq!(dir_entries(dir.path()), vec!["r.csv".to_owned()]);
}

#[test]
fn empty_entry_name_is_refused() {
    let mut out = Cursor::new(Vec::new());
    let err = write_zip(&mut &b"a\r\n"[..], &mut out, "", None, at()).expect_err("empty name");
    assert!(matches!(err, WriteError::EmptyEntryName));
}

#[test]
fn empty_csv_zips() {
    let zip = zip_to_vec(b"", None);
    let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
    let mut back = Vec::new();
    archive
        .by_name(ENTRY)
        .expect("entry")
        .read_to_end(&mut back)
        .expect("read");
    assert!(back.is_empty());
}

/// Larger than the copy buffer and incompressible, so the streaming loop runs
/// many times and the deflater emits many blocks.
#[test]
fn large_input_streams_through() {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let csv: Vec<u8> = (0..3_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for password in [None, Some("pw")] {
        let zip = zip_to_vec(&csv, password);
        let mut archive = ZipArchive::new(Cursor::new(&zip)).expect("archive");
        let mut entry = match password {
            Some(p) => archive.by_name_decrypt(ENTRY, p.as_bytes()),
            None => archive.by_name(ENTRY),
        }
        .expect("entry");
        let mut back = Vec::new();
        entry.read_to_end(&mut back).expect("read");
        assert!(back == csv, "content differs (password {password:?})");
    }
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("source vanished"))
    }
}

#[test]
fn read_failure_says_it_was_the_csv() {
    let mut out = Cursor::new(Vec::new());
    let err = write_zip(&mut FailingReader, &mut out, ENTRY, None, at()).expect_err("fails");
    let msg = err.to_string();
    assert!(msg.contains("reading the CSV"), "{msg}");
    assert!(msg.contains("source vanished"), "{msg}");
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn zip_file_writes_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = sample_csv();
    let csv_path = dir.path().join("report.csv");
    std::fs::write(&csv_path, &csv).expect("write");
    let zip_path = dir.path().join("out").join("report.zip");

    let size = zip_file(&csv_path, &zip_path, ENTRY, Some("pw"), at()).expect("zip_file");
    assert_eq!(std::fs::metadata(&zip_path).expect("metadata").len(), size);
    assert_eq!(
        dir_entries(&dir.path().join("out")),
        vec!["report.zip".to_owned()]
    );

    let mut archive =
        ZipArchive::new(std::fs::File::open(&zip_path).expect("open")).expect("archive");
    let mut back = Vec::new();
    archive
        .by_name_decrypt(ENTRY, b"pw")
        .expect("entry")
        .read_to_end(&mut back)
        .expect("read");
    assert_eq!(back, csv);
}

#[test]
fn zip_file_of_missing_csv_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = zip_file(
        &dir.path().join("missing.csv"),
        &dir.path().join("report.zip"),
        ENTRY,
        None,
        at(),
    )
    .expect_err("missing");
    assert!(matches!(err, WriteError::Io { .. }));
    assert!(err.to_string().contains("missing.csv"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
}

/// Info-ZIP's `unzip` is what users open reports with; the zip crate reading
/// its own output back proves less.
fn unzip_available() -> bool {
    match Command::new("unzip").arg("-v").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipping the unzip check: `unzip -v` exited with {}",
                out.status
            );
            false
        }
        Err(e) => {
            eprintln!("skipping the unzip check: cannot run `unzip`: {e}");
            false
        }
    }
}

#[test]
fn unzip_command_opens_our_zips() {
    if !unzip_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = sample_csv();
    let csv_path = dir.path().join("report.csv");
    std::fs::write(&csv_path, &csv).expect("write");

    let plain = dir.path().join("plain.zip");
    zip_file(&csv_path, &plain, ENTRY, None, at()).expect("zip");
    let out = Command::new("unzip")
        .arg("-p")
        .arg(&plain)
        .output()
        .expect("unzip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == csv, "plain: unzip gave different bytes");

    let secret = dir.path().join("secret.zip");
    zip_file(&csv_path, &secret, ENTRY, Some("p@ss w0rd"), at()).expect("zip");
    let out = Command::new("unzip")
        .args(["-P", "p@ss w0rd", "-p"])
        .arg(&secret)
        .arg(ENTRY)
        .output()
        .expect("unzip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == csv, "ZipCrypto: unzip gave different bytes");

    let out = Command::new("unzip")
        .args(["-t", "-P", "p@ss w0rd"])
        .arg(&secret)
        .output()
        .expect("unzip -t");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    for wrong in ["wrong", "p@ss w0rd ", "P@ss w0rd"] {
        let out = Command::new("unzip")
            .args(["-P", wrong, "-p"])
            .arg(&secret)
            .output()
            .expect("unzip");
        assert!(
            !out.status.success() && out.stdout != csv,
            "wrong password {wrong:?} was accepted"
        );
    }
}
