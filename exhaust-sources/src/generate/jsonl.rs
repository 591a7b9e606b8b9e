//! Serialization helpers.

use super::*;

/// A column that can be left out, be `null`, or hold a value: the three
/// shapes real exports have.
pub(super) enum Cell<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Cell<T> {
    pub(super) fn is_absent(&self) -> bool {
        matches!(self, Cell::Absent)
    }
}

impl<T: Serialize> Serialize for Cell<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Absent | Cell::Null => s.serialize_none(),
            Cell::Value(v) => v.serialize(s),
        }
    }
}

/// A one-entry map, without allocating a map per row.
pub(super) struct Entry<'a, V>(pub(super) &'a str, pub(super) V);

impl<V: Serialize> Serialize for Entry<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

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
