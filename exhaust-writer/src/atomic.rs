//! Files that appear under their final name only once complete.

use crate::error::WriteError;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Prefix and suffix of temporary files: hidden, and never ending in `.csv`
/// or `.zip`, so a partial file cannot be mistaken for a finished report.
pub const TEMP_PREFIX: &str = ".";
/// See [`TEMP_PREFIX`].
pub const TEMP_SUFFIX: &str = ".part";

/// A file written under a temporary name in its destination's directory and
/// renamed to the destination by [`commit`](Self::commit).
///
/// Readers of the destination therefore see either nothing (or the previous
/// file) or the complete new file, never a partial one. Dropping without
/// committing deletes the temporary file. The temporary file lives in the
/// destination's directory because a rename is only atomic within one file
/// system.
#[derive(Debug)]
pub struct AtomicFile {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file for `dest`, creating missing parent
    /// directories. Temporary names look like `.report.csv.X7fq2a.part`.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self, WriteError> {
        let dest = dest.as_ref();
        let Some(name) = dest.file_name() else {
            return Err(WriteError::InvalidDestination(dest.to_path_buf()));
        };
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| WriteError::io(format!("creating directory {}", dir.display()), e))?;
        let mut prefix = OsString::from(TEMP_PREFIX);
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        {
            // tempfile's default is 0600; a report should get the same mode
            // as any file the process creates (0666 less the umask).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(dir).map_err(|e| {
            WriteError::io(format!("creating a temporary file in {}", dir.display()), e)
        })?;
        Ok(Self {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// Where the file goes on commit.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file's current path.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// The open temporary file, for writing.
    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Syncs the data and renames the temporary file to the destination,
    /// replacing any file there; returns the destination.
    pub fn commit(self) -> Result<PathBuf, WriteError> {
        let Self { temp, dest } = self;
        // Without the sync a crash soon after the rename can leave the final
        // name pointing at an empty or partial file on some file systems.
        temp.as_file()
            .sync_all()
            .map_err(|e| WriteError::io(format!("syncing {}", temp.path().display()), e))?;
        let temp_path = temp.path().to_path_buf();
        temp.persist(&dest).map_err(|e| {
            // e.file drops here, deleting the temporary file.
            WriteError::io(
                format!("renaming {} to {}", temp_path.display(), dest.display()),
                e.error,
            )
        })?;
        sync_parent(&dest);
        Ok(dest)
    }
}

/// Makes the rename itself durable. Best effort: the file is already in
/// place, and some platforms cannot open or sync directories.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.temp.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.temp.seek(pos)
    }
}
