//! The CSV sink: exact bytes, quoting, counting, and misuse.

use exhaust_core::report::RowSink;
use exhaust_writer::{AtomicFile, CsvSink, CsvStats, WriteError};
use proptest::prelude::*;
use std::io::{self, Write};

fn strings(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| (*s).to_owned()).collect()
}

/// Writes a header and rows, returning the bytes and stats.
fn write_table(header: &[&str], rows: &[&[&str]]) -> (Vec<u8>, CsvStats) {
    let mut sink = CsvSink::new(Vec::new());
    sink.begin(&strings(header), rows.len()).expect("begin");
    for row in rows {
        sink.row(&strings(row)).expect("row");
    }
    sink.finish().expect("finish")
}

fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn small_table_exact_bytes() {
    let (bytes, stats) = write_table(
        &["User ID", "Name", "Progress"],
        &[&["u-1", "Asha", "100"], &["u-2", "Ravi Kumar", "0"]],
    );
    assert_eq!(
        bytes,
        b"User ID,Name,Progress\r\nu-1,Asha,100\r\nu-2,Ravi Kumar,0\r\n"
    );
    assert_eq!(
        stats,
        CsvStats {
            rows: 2,
            bytes: bytes.len() as u64
        }
    );
}

#[test]
fn quotes_only_where_needed() {
    let (bytes, _) = write_table(
        &["a", "b", "c", "d"],
        &[
            &["x,y", "say \"hi\"", "plain text", " spaced "],
            &["line1\nline2", "cr\rhere", "crlf\r\nhere", "\""],
        ],
    );
    let expected = "a,b,c,d\r\n\
                    \"x,y\",\"say \"\"hi\"\"\",plain text, spaced \r\n\
                    \"line1\nline2\",\"cr\rhere\",\"crlf\r\nhere\",\"\"\"\"\r\n";
    assert_eq!(String::from_utf8(bytes.clone()).expect("utf-8"), expected);
    assert_eq!(
        read_back(&bytes)[2],
        strings(&["line1\nline2", "cr\rhere", "crlf\r\nhere", "\""])
    );
}

#[test]
fn unicode_is_plain_utf8_without_bom() {
    let (bytes, stats) = write_table(&["नाम", "प्रगति"], &[&["राम शर्मा", "५०%"], &["Zoë ✓", "😀"]]);
    let expected = "नाम,प्रगति\r\nराम शर्मा,५०%\r\nZoë ✓,😀\r\n";
    assert_eq!(bytes, expected.as_bytes());
    assert!(!bytes.starts_with(b"\xEF\xBB\xBF"));
    // fileSize is bytes, not characters.
    assert_eq!(stats.bytes, expected.len() as u64);
    assert!(stats.bytes > expected.chars().count() as u64);
}

#[test]
fn empty_fields() {
    let (bytes, _) = write_table(&["a", "b", "c"], &[&["", "", ""], &["", "x", ""]]);
    assert_eq!(bytes, b"a,b,c\r\n,,\r\n,x,\r\n");
    // A lone empty field must not become an empty line, which readers skip.
    let (bytes, _) = write_table(&["only"], &[&[""], &["v"]]);
    assert_eq!(bytes, b"only\r\n\"\"\r\nv\r\n");
    assert_eq!(
        read_back(&bytes),
        vec![strings(&["only"]), strings(&[""]), strings(&["v"])]
    );
}

#[test]
fn header_starting_with_bom_is_quoted_and_survives() {
    let (bytes, _) = write_table(&["\u{FEFF}id", "n"], &[&["1", "2"]]);
    assert_eq!(bytes, "\"\u{FEFF}id\",\"n\"\r\n1,2\r\n".as_bytes());
    assert_eq!(read_back(&bytes)[0], strings(&["\u{FEFF}id", "n"]));
}

#[test]
fn bytes_written_is_exact_after_every_row() {
    let mut sink = CsvSink::new(Vec::new());
    assert_eq!(sink.bytes_written(), 0);
    sink.begin(&strings(&["a", "b"]), 2).expect("begin");
    assert_eq!(sink.bytes_written(), 5);
    assert_eq!(sink.rows_written(), 0);
    sink.row(&strings(&["1", "x,y"])).expect("row");
    assert_eq!(sink.bytes_written(), 5 + 9);
    sink.row(&strings(&["नमस्ते", ""])).expect("row");
    assert_eq!(sink.bytes_written(), 5 + 9 + "नमस्ते".len() as u64 + 3);
    assert_eq!(sink.rows_written(), 2);
    let counted = sink.bytes_written();
    let (bytes, stats) = sink.finish().expect("finish");
    assert_eq!(bytes.len() as u64, counted);
    assert_eq!(stats.bytes, counted);
}

#[test]
fn bytes_written_matches_the_file_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("report.csv");
    let mut sink = CsvSink::new(AtomicFile::create(&dest).expect("create"));
    sink.begin(&strings(&["id", "text"]), 3000).expect("begin");
    for i in 0..3000 {
        sink.row(&[i.to_string(), format!("row {i}, \"quoted\"\nनमस्ते")])
            .expect("row");
    }
    let (file, stats) = sink.finish().expect("finish");
    let path = file.commit().expect("commit");
    assert_eq!(stats.rows, 3000);
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        stats.bytes
    );
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(read_back(&bytes).len(), 3001);
}

#[test]
fn field_count_mismatch_is_an_error_and_writes_nothing() {
    let mut sink = CsvSink::new(Vec::new());
    sink.begin(&strings(&["a", "b", "c"]), 2).expect("begin");
    sink.row(&strings(&["1", "2", "3"])).expect("row");
    let before = sink.bytes_written();
    let err = sink.row(&strings(&["1", "2"])).expect_err("short row");
    assert!(
        matches!(
            err,
            WriteError::FieldCount {
                row: 2,
                expected: 3,
                found: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "row 2 has 2 fields but the header has 3");
    assert!(matches!(
        sink.row(&strings(&["1", "2", "3", "4"])),
        Err(WriteError::FieldCount { found: 4, .. })
    ));
    assert_eq!(sink.bytes_written(), before);
    assert_eq!(sink.rows_written(), 1);
    sink.row(&strings(&["4", "5", "6"])).expect("row");
    let (bytes, _) = sink.finish().expect("finish");
    assert_eq!(bytes, b"a,b,c\r\n1,2,3\r\n4,5,6\r\n");
}

#[test]
fn misuse_is_an_error() {
    let mut sink = CsvSink::new(Vec::new());
    assert!(matches!(
        sink.row(&strings(&["x"])),
        Err(WriteError::NotBegun(_))
    ));
    assert!(matches!(sink.begin(&[], 0), Err(WriteError::EmptyHeader)));
    sink.begin(&strings(&["a"]), 0)
        .expect("begin after refused empty header");
    assert!(matches!(
        sink.begin(&strings(&["a"]), 0),
        Err(WriteError::HeaderTwice)
    ));
    let (bytes, stats) = sink.finish().expect("finish");
    assert_eq!(bytes, b"a\r\n");
    assert_eq!(stats.rows, 0);

    let unbegun = CsvSink::new(Vec::new());
    assert!(matches!(unbegun.finish(), Err(WriteError::NotBegun(_))));
}

/// Accepts `limit` bytes, then fails.
#[derive(Debug)]
struct Full {
    taken: usize,
    limit: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.taken >= self.limit {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.limit - self.taken);
        self.taken += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_failures_are_reported_not_swallowed() {
    let mut sink = CsvSink::new(Full {
        taken: 0,
        limit: 100,
    });
    sink.begin(&strings(&["a"]), 10).expect("begin is buffered");
    let mut failed = None;
    for i in 0..100_000 {
        if let Err(e) = sink.row(&[format!("row {i}")]) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => sink.finish().expect_err("finish must fail"),
    };
    assert!(matches!(err, WriteError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
}

fn table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    (1usize..6).prop_flat_map(|cols| {
        (
            prop::collection::vec(any::<String>(), cols),
            prop::collection::vec(prop::collection::vec(any::<String>(), cols), 0..12),
        )
    })
}

/// Strings biased towards what needs quoting.
fn tricky() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(",".to_owned()),
            Just("\"".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just(" ".to_owned()),
            Just("\u{FEFF}".to_owned()),
            Just("हिंदी".to_owned()),
            "[a-z]{0,3}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn tricky_table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    (1usize..5).prop_flat_map(|cols| {
        (
            prop::collection::vec(tricky(), cols),
            prop::collection::vec(prop::collection::vec(tricky(), cols), 0..12),
        )
    })
}

fn check_round_trip(header: &[String], rows: &[Vec<String>]) -> Result<(), TestCaseError> {
    let mut sink = CsvSink::new(Vec::new());
    sink.begin(header, rows.len()).expect("begin");
    for row in rows {
        sink.row(row).expect("row");
    }
    let counted = sink.bytes_written();
    let (bytes, stats) = sink.finish().expect("finish");
    prop_assert_eq!(counted, bytes.len() as u64);
    prop_assert_eq!(stats.bytes, bytes.len() as u64);
    prop_assert_eq!(stats.rows, rows.len() as u64);
    prop_assert!(!bytes.starts_with(b"\xEF\xBB\xBF"));
    let back = read_back(&bytes);
    prop_assert_eq!(back.len(), rows.len() + 1);
    prop_assert_eq!(&back[0], header);
    for (got, want) in back[1..].iter().zip(rows) {
        prop_assert_eq!(got, want);
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_tables_round_trip((header, rows) in table()) {
        check_round_trip(&header, &rows)?;
    }

    #[test]
    fn tricky_tables_round_trip((header, rows) in tricky_table()) {
        check_round_trip(&header, &rows)?;
    }
}
