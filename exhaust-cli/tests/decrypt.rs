//! `exhaust decrypt` end to end: text-key and public-key reports, plain
//! envelopes and report zips, stdout and --out, wrong keys and bad usage.

use assert_cmd::Command;
use exhaust_writer::envelope::{encrypt_public_key, encrypt_text_key};
use exhaust_writer::write_zip;
use std::fs::File;
use std::path::{Path, PathBuf};

const KEY: &str = "batch-0130 key";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../exhaust-writer/tests/fixtures")
        .join(name)
}

mod common;

/// `exhaust decrypt`, with none of the developer's settings.
fn decrypt() -> Command {
    let mut cmd = common::command();
    cmd.arg("decrypt");
    cmd
}

fn csv() -> Vec<u8> {
    let mut csv = b"User ID,Name,Progress\r\n".to_vec();
    for i in 0..3000 {
        csv.extend_from_slice(format!("u-{i:05},\"Doe, नमस्ते {i}\",{}\r\n", i % 101).as_bytes());
    }
    csv
}

fn text_envelope(dir: &Path) -> PathBuf {
    let path = dir.join("b1_progress_20240305.csv");
    encrypt_text_key(&csv()[..], File::create(&path).expect("create"), KEY).expect("encrypt");
    path
}

fn public_envelope(dir: &Path) -> PathBuf {
    let pem = std::fs::read_to_string(fixture("test-only-org-public.pem")).expect("pem");
    let path = dir.join("b2_progress_20240305.csv");
    encrypt_public_key(&csv()[..], File::create(&path).expect("create"), &pem).expect("encrypt");
    path
}

/// The envelope in a report zip, as the request runner uploads it.
fn zipped(envelope: &Path) -> PathBuf {
    let zip = envelope.with_extension("zip");
    let name = envelope.file_name().expect("name").to_string_lossy();
    write_zip(
        &mut File::open(envelope).expect("open"),
        File::create(&zip).expect("create"),
        &name,
        None,
        chrono::Utc::now(),
    )
    .expect("zip");
    zip
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_text_key_report_decrypts_to_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let envelope = text_envelope(dir.path());
    let out = decrypt()
        .arg(&envelope)
        .args(["--key-env", "REPORT_KEY"])
        .env("REPORT_KEY", KEY)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout == csv(), "the CSV comes back exactly");

    // The same from the report zip, with --key and --out.
    let zip = zipped(&envelope);
    let dest = dir.path().join("plain.csv");
    let out = decrypt()
        .arg(&zip)
        .args(["--key", KEY, "--out"])
        .arg(&dest)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty());
    assert!(std::fs::read(&dest).expect("out") == csv());
}

#[test]
fn a_public_key_report_decrypts_with_the_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip = zipped(&public_envelope(dir.path()));
    for private in [
        "test-only-org-private.pem",
        "test-only-org-private-pkcs1.pem",
    ] {
        let out = decrypt()
            .arg(&zip)
            .arg("--private-key")
            .arg(fixture(private))
            .output()
            .expect("run");
        assert!(out.status.success(), "{private}: {}", stderr_of(&out));
        assert!(out.stdout == csv(), "{private}: the CSV comes back exactly");
    }
}

#[test]
fn a_wrong_key_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = zipped(&text_envelope(dir.path()));
    let dest = dir.path().join("plain.csv");
    let out = decrypt()
        .arg(&text)
        .args(["--key", "not-the-key", "--out"])
        .arg(&dest)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("wrong key"), "{err}");
    assert!(
        !err.contains("not-the-key"),
        "the key is never printed: {err}"
    );
    assert!(!dest.exists(), "no output file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let public = public_envelope(dir.path());
    let out = decrypt()
        .arg(&public)
        .arg("--private-key")
        .arg(fixture("test-only-other-org-private.pem"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(stderr_of(&out).contains("wrong key"), "{}", stderr_of(&out));

    // A text key for a public-key report says what is needed.
    let out = decrypt()
        .arg(&public)
        .args(["--key", KEY])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("private key"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn damaged_and_plain_files_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let envelope = text_envelope(dir.path());
    let bytes = std::fs::read(&envelope).expect("read");
    let cut = dir.path().join("cut.csv");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write");
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, csv()).expect("write");
    for (file, says) in [(&cut, "damaged"), (&plain, "not an encrypted report")] {
        let out = decrypt()
            .arg(file)
            .args(["--key", KEY])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "no partial CSV on stdout");
        assert!(stderr_of(&out).contains(says), "{}", stderr_of(&out));
    }
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let envelope = text_envelope(dir.path());
    // No key, two keys, an unset variable, a missing input.
    let cases: [&[&str]; 3] = [
        &[],
        &["--key", KEY, "--private-key", "x.pem"],
        &["--key-env", "EXHAUST_TEST_UNSET_VARIABLE"],
    ];
    for args in cases {
        let out = decrypt()
            .arg(&envelope)
            .args(args)
            .env_remove("EXHAUST_TEST_UNSET_VARIABLE")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
    }
    let out = decrypt()
        .arg(dir.path().join("missing.zip"))
        .args(["--key", KEY])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("missing.zip"),
        "{}",
        stderr_of(&out)
    );
}
