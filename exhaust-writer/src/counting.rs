//! A writer that counts the bytes its inner writer accepted.

use std::io::{self, IoSlice, Write};

/// Wraps a writer and counts the bytes the inner writer reported as written.
///
/// Only bytes the inner writer accepted are counted (the `Ok(n)` of each
/// `write`), so after a flush the count equals the size of what reached the
/// destination; a failed or short write is not over-counted.
#[derive(Debug)]
pub struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W> CountingWriter<W> {
    /// Wraps `inner`, starting the count at zero.
    pub fn new(inner: W) -> Self {
        Self { inner, bytes: 0 }
    }

    /// Bytes accepted by the inner writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// The inner writer. There is deliberately no `get_mut`: writing around
    /// the counter would make the count wrong.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Unwraps the inner writer (without flushing it).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `cap` bytes per call, then fails once `limit` is reached.
    struct Stingy {
        data: Vec<u8>,
        cap: usize,
        limit: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.data.len() >= self.limit {
                return Err(io::Error::other("full"));
            }
            let n = buf.len().min(self.cap).min(self.limit - self.data.len());
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counts_short_writes_exactly() {
        let mut w = CountingWriter::new(Stingy {
            data: Vec::new(),
            cap: 3,
            limit: usize::MAX,
        });
        w.write_all(b"hello, world").expect("write");
        assert_eq!(w.bytes_written(), 12);
        assert_eq!(w.into_inner().data, b"hello, world");
    }

    #[test]
    fn failed_write_counts_only_accepted_bytes() {
        let mut w = CountingWriter::new(Stingy {
            data: Vec::new(),
            cap: 4,
            limit: 6,
        });
        assert!(w.write_all(b"0123456789").is_err());
        assert_eq!(w.bytes_written(), 6);
        assert_eq!(w.get_ref().data.len(), 6);
    }

    #[test]
    fn vectored_writes_are_counted() {
        let mut w = CountingWriter::new(Vec::new());
        let n = w
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cde")])
            .expect("write");
        assert_eq!(w.bytes_written(), n as u64);
        assert_eq!(w.get_ref().len(), n);
    }
}
