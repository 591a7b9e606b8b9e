//! Zipping the report's CSV, optionally with a ZipCrypto password.

use crate::atomic::AtomicFile;
use crate::error::WriteError;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;
use zip::unstable::write::FileOptionsExt;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// Above this CSV size the entry is written with Zip64 sizes. Deflate can
/// grow incompressible data slightly and ZipCrypto adds a 12-byte header,
/// hence the margin below 4 GiB.
const ZIP64_THRESHOLD: u64 = u32::MAX as u64 - (16 << 20);

const COPY_BUFFER: usize = 64 * 1024;

/// How an entry is written, beyond the public arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntrySettings {
    /// Write Zip64 sizes (needed for entries of 4 GiB or more).
    pub large: bool,
    /// The entry's modification time.
    pub modified: DateTime,
}

impl EntrySettings {
    fn at(large: bool, modified: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            large,
            modified: dos_from_unix(u64::try_from(modified.timestamp()).unwrap_or(0)),
        }
    }
}

/// Zips the CSV read from `csv` into `out` as one deflated entry named
/// `entry_name`, encrypted with ZipCrypto when `password` is given, and
/// returns the size of the zip in bytes (from `out`'s position on entry).
/// The entry's time is `modified` (in UTC: zip has no time zone), given by
/// the caller: this crate reads no clock for it.
///
/// ZipCrypto is weak, but it is what Sunbird's reports use and what every
/// desktop unzip tool opens. The CSV is streamed, never held in memory.
/// The entry is written without Zip64 sizes (most compatible), so a CSV of
/// 4 GiB or more fails; [`zip_file`] picks Zip64 from the file's size.
///
/// # Errors
/// [`WriteError::EmptyPassword`] for `Some("")`: an empty password is a
/// caller bug, not a request for an unencrypted zip. I/O and zip failures
/// otherwise.
pub fn write_zip<R, W>(
    csv: &mut R,
    out: W,
    entry_name: &str,
    password: Option<&str>,
    modified: chrono::DateTime<chrono::Utc>,
) -> Result<u64, WriteError>
where
    R: Read + ?Sized,
    W: Write + Seek,
{
    write_zip_with(
        csv,
        out,
        entry_name,
        password,
        EntrySettings::at(false, modified),
    )
}

pub(crate) fn write_zip_with<R, W>(
    csv: &mut R,
    out: W,
    entry_name: &str,
    password: Option<&str>,
    settings: EntrySettings,
) -> Result<u64, WriteError>
where
    R: Read + ?Sized,
    W: Write + Seek,
{
    let password = check_args(entry_name, password)?;
    // The zip writer emits many small writes (headers, encrypted chunks).
    let mut out = BufWriter::new(out);
    let start = out
        .stream_position()
        .map_err(|e| WriteError::io("finding the zip's start position", e))?;

    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(settings.large)
        .last_modified_time(settings.modified)
        .unix_permissions(0o644);
    if let Some(pw) = password {
        options = FileOptionsExt::with_deprecated_encryption(options, pw.as_bytes())
            .map_err(|e| WriteError::zip("setting the zip password", e))?;
    }

    let mut zip = ZipWriter::new(out);
    zip.start_file(entry_name, options)
        .map_err(|e| WriteError::zip(format!("starting zip entry {entry_name:?}"), e))?;
    copy(csv, &mut zip, entry_name)?;
    let out = zip
        .finish()
        .map_err(|e| WriteError::zip("finishing the zip", e))?;
    let mut out = out
        .into_inner()
        .map_err(|e| WriteError::io("flushing the zip", e.into_error()))?;
    out.flush()
        .map_err(|e| WriteError::io("flushing the zip", e))?;
    let end = out
        .seek(SeekFrom::End(0))
        .map_err(|e| WriteError::io("finding the zip's size", e))?;
    Ok(end.saturating_sub(start))
}

/// Zips the CSV file at `csv_path` into `zip_path` (see [`write_zip`]),
/// through a temporary file renamed into place only when complete, so
/// `zip_path` never holds a partial zip. Returns the zip's size in bytes.
///
/// # Errors
/// As [`write_zip`]; nothing is created when the arguments are refused.
pub fn zip_file(
    csv_path: &Path,
    zip_path: &Path,
    entry_name: &str,
    password: Option<&str>,
    modified: chrono::DateTime<chrono::Utc>,
) -> Result<u64, WriteError> {
    check_args(entry_name, password)?;
    let mut csv = File::open(csv_path)
        .map_err(|e| WriteError::io(format!("opening {}", csv_path.display()), e))?;
    let size = csv
        .metadata()
        .map_err(|e| WriteError::io(format!("reading the size of {}", csv_path.display()), e))?
        .len();
    let mut dest = AtomicFile::create(zip_path)?;
    let bytes = write_zip_with(
        &mut csv,
        &mut dest,
        entry_name,
        password,
        EntrySettings::at(size >= ZIP64_THRESHOLD, modified),
    )?;
    dest.commit()?;
    Ok(bytes)
}

/// Opens the one file of a report zip (as [`write_zip`] makes them) and
/// calls `read` with its name and a reader of its (inflated) content;
/// returns what `read` returns. Directory entries are ignored.
///
/// # Errors
/// [`WriteError::NotSingleEntry`] when the zip holds no file or several;
/// [`WriteError::Zip`] when it is not a zip, or the entry is
/// password-protected or cannot be read.
pub fn read_single_entry<R, T, F>(zip: R, read: F) -> Result<T, WriteError>
where
    R: Read + Seek,
    F: FnOnce(&str, &mut dyn Read) -> T,
{
    let mut archive = ZipArchive::new(zip).map_err(|e| WriteError::zip("opening the zip", e))?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| WriteError::zip("reading the zip's directory", e))?;
        if !entry.is_dir() {
            files.push(i);
        }
    }
    let [index] = files[..] else {
        return Err(WriteError::NotSingleEntry(files.len()));
    };
    let mut entry = archive
        .by_index(index)
        .map_err(|e| WriteError::zip("opening the zip's entry", e))?;
    let name = entry
        .name()
        .map_err(|e| WriteError::zip("reading the zip entry's name", e))?
        .into_owned();
    Ok(read(&name, &mut entry))
}

fn check_args<'p>(
    entry_name: &str,
    password: Option<&'p str>,
) -> Result<Option<&'p str>, WriteError> {
    if entry_name.is_empty() {
        return Err(WriteError::EmptyEntryName);
    }
    match password {
        Some("") => Err(WriteError::EmptyPassword),
        p => Ok(p),
    }
}

/// `io::copy` would not say whether the CSV or the zip failed.
fn copy<R: Read + ?Sized, W: Write>(
    csv: &mut R,
    zip: &mut W,
    entry_name: &str,
) -> Result<u64, WriteError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match csv.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::io("reading the CSV to zip", e)),
        };
        zip.write_all(&buf[..n])
            .map_err(|e| WriteError::io(format!("writing zip entry {entry_name:?}"), e))?;
        total += n as u64;
    }
}

/// A time in UTC as a zip timestamp. Zip has no time zone; UTC keeps
/// reports from different servers comparable. Falls back to the zip epoch
/// (1980-01-01) when the time is outside zip's range.
fn dos_from_unix(secs: u64) -> DateTime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (Ok(y), Ok(m), Ok(d)) = (u16::try_from(y), u8::try_from(m), u8::try_from(d)) else {
        return DateTime::default();
    };
    // rem < 86 400, so these fit in u8.
    let (hh, mm, ss) = ((rem / 3600) as u8, (rem / 60 % 60) as u8, (rem % 60) as u8);
    DateTime::from_date_and_time(y, m, d, hh, mm, ss).unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn dos_time_from_unix() {
        // 2024-03-05 13:45:30 UTC
        let t = dos_from_unix(1_709_646_330);
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2024, 3, 5, 13, 45, 30)
        );
        // Before 1980 zip cannot say; the zip epoch stands in.
        assert_eq!(dos_from_unix(0), DateTime::default());
    }
}
