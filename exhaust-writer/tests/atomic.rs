//! Atomic files: the final name appears only on commit.

use exhaust_writer::{AtomicFile, TEMP_PREFIX, TEMP_SUFFIX, WriteError};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn commit_moves_the_content_into_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("nested").join("deeper").join("report.csv");
    let mut file = AtomicFile::create(&dest).expect("create");
    assert_eq!(file.dest(), dest);

    let temp = file.temp_path().to_path_buf();
    let temp_name = temp
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        temp_name.starts_with(&format!("{TEMP_PREFIX}report.csv.")),
        "{temp_name}"
    );
    assert!(temp_name.ends_with(TEMP_SUFFIX), "{temp_name}");
    assert_eq!(
        temp.parent(),
        dest.parent(),
        "same directory, so rename is atomic"
    );

    file.write_all(b"a,b\r\n1,2\r\n").expect("write");
    assert!(!dest.exists(), "no final file before commit");
    assert_eq!(
        dir_entries(&dir.path().join("nested/deeper")),
        vec![temp_name]
    );

    let path = file.commit().expect("commit");
    assert_eq!(path, dest);
    assert_eq!(std::fs::read(&dest).expect("read"), b"a,b\r\n1,2\r\n");
    assert!(!temp.exists());
    assert_eq!(
        dir_entries(&dir.path().join("nested/deeper")),
        vec!["report.csv".to_owned()]
    );
}

#[test]
fn commit_replaces_an_existing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("report.csv");
    std::fs::write(&dest, b"old report, much longer than the new one").expect("write");
    let mut file = AtomicFile::create(&dest).expect("create");
    file.write_all(b"new").expect("write");
    assert_eq!(
        std::fs::read(&dest).expect("read"),
        b"old report, much longer than the new one",
        "the old file stays intact until commit"
    );
    file.commit().expect("commit");
    assert_eq!(std::fs::read(&dest).expect("read"), b"new");
    assert_eq!(dir_entries(dir.path()), vec!["report.csv".to_owned()]);
}

#[test]
fn drop_without_commit_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("report.zip");
    {
        let mut file = AtomicFile::create(&dest).expect("create");
        file.write_all(b"partial").expect("write");
        file.file_mut().sync_all().expect("sync");
        assert_eq!(dir_entries(dir.path()).len(), 1);
    }
    assert!(!dest.exists());
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn seek_and_file_access_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("x.bin");
    let mut file = AtomicFile::create(&dest).expect("create");
    file.write_all(b"hello world").expect("write");
    file.seek(SeekFrom::Start(0)).expect("seek");
    file.write_all(b"J").expect("write");
    assert_eq!(file.file().metadata().expect("metadata").len(), 11);
    file.commit().expect("commit");
    assert_eq!(std::fs::read(&dest).expect("read"), b"Jello world");
}

#[cfg(unix)]
#[test]
fn committed_file_is_not_private_to_the_process() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("r.csv");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"").expect("write");
    let file = AtomicFile::create(&dest).expect("create");
    file.commit().expect("commit");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    // Same mode as any newly created file under the current umask.
    assert_eq!(mode(&dest), mode(&plain));
}

#[test]
fn destination_without_a_file_name_is_refused() {
    assert!(matches!(
        AtomicFile::create("/"),
        Err(WriteError::InvalidDestination(_))
    ));
    assert!(matches!(
        AtomicFile::create("some/dir/.."),
        Err(WriteError::InvalidDestination(_))
    ));
}

#[test]
fn failed_commit_removes_the_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("taken");
    // A non-empty directory cannot be replaced by a file.
    std::fs::create_dir(&dest).expect("mkdir");
    std::fs::write(dest.join("inside"), b"x").expect("write");
    let file = AtomicFile::create(&dest).expect("create");
    let err = file.commit().expect_err("rename onto a directory");
    assert!(err.to_string().contains("renaming"), "{err}");
    assert_eq!(dir_entries(dir.path()), vec!["taken".to_owned()]);
}
