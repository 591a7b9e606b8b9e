//! The files written: JSON Lines, one row a line.

use super::*;

/// One JSON Lines file, streamed.
pub(super) struct Jsonl {
    pub(super) name: &'static str,
    pub(super) out: BufWriter<File>,
    pub(super) rows: u64,
}

impl Jsonl {
    pub(super) fn create(dir: &Path, name: &'static str) -> io::Result<Jsonl> {
        let file = File::create(dir.join(name))?;
        Ok(Jsonl {
            name,
            out: BufWriter::with_capacity(1 << 20, file),
            rows: 0,
        })
    }

    pub(super) fn row<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, row)?;
        self.out.write_all(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    pub(super) fn finish(mut self, summary: &mut GenSummary) -> io::Result<()> {
        self.out.flush()?;
        summary
            .rows_per_file
            .push((self.name.to_string(), self.rows));
        Ok(())
    }
}
