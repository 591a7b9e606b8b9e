//! The digest in key order: a key scan cuts the table into key ranges of
//! about equal size, the table is decoded once in line order into one
//! temporary part file per range, and each part is sorted in memory and
//! written out as runs. Every read is sequential.

use super::*;

/// A key-order build decodes a table's records into parts by key range,
/// one part per this many bytes of the table (a part's records are sorted
/// in memory: about half as many bytes; three tables are digested at
/// once).
pub(super) const PART_BYTES: u64 = if cfg!(test) { 64 } else { 8 << 20 };

/// At most this many parts (temporary files, open at once) per table:
/// three tables at once stay well under the usual limit of 1,024 open
/// files. Past 1 GB of table, parts grow instead.
pub(super) const MAX_PARTS: usize = 128;

/// What precedes a record's fields and text in a part file.
pub(super) struct PartHead {
    pub(super) order: u64,
    /// Its line's offset in the table.
    pub(super) offset: u64,
    pub(super) hash: u32,
    pub(super) fields_len: u32,
    pub(super) text_len: u32,
}

impl PartHead {
    const LEN: usize = 8 + 8 + 4 + 4 + 4;

    pub(super) fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.order.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.hash.to_le_bytes());
        b[20..24].copy_from_slice(&self.fields_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.text_len.to_le_bytes());
        b
    }

    /// The head at the front of `b`, if `b` holds one.
    pub(super) fn from_bytes(b: &[u8]) -> Option<Self> {
        let (order, b) = b.split_first_chunk::<8>()?;
        let (offset, b) = b.split_first_chunk::<8>()?;
        let (hash, b) = b.split_first_chunk::<4>()?;
        let (fields_len, b) = b.split_first_chunk::<4>()?;
        let (text_len, _) = b.split_first_chunk::<4>()?;
        Some(Self {
            order: u64::from_le_bytes(*order),
            offset: u64::from_le_bytes(*offset),
            hash: u32::from_le_bytes(*hash),
            fields_len: u32::from_le_bytes(*fields_len),
            text_len: u32::from_le_bytes(*text_len),
        })
    }

    /// Bytes of the record it heads, itself included.
    pub(super) fn record_len(&self) -> usize {
        Self::LEN + self.fields_len as usize + self.text_len as usize
    }
}

/// The second pass of a key-order build. The table is read again in line
/// order; each indexed line is decoded and its record appended to the
/// temporary file of its part (its key's order between two `bounds`).
/// Then each part is read back whole, its records sorted by key order and
/// line offset, and handed to `w` in that order. Every read is sequential:
/// a read per key, in key order, cost a system call per key, most of what
/// the build added to indexing. `Ok(Err(why))`: a temporary file could not
/// be written or read back (no digest is written).
pub(super) fn write_in_key_order<C: Codec>(
    table: &TableFile,
    dir: &Path,
    bounds: &[u64],
    key_of: &mut impl FnMut(&[u8], usize) -> Result<Option<LineKey>, SourceError>,
    w: &mut RunWriter,
) -> Result<Result<(), String>, SourceError> {
    let why = |e: std::io::Error| format!("{}: a temporary file: {e}", dir.display());
    let mut parts = Vec::with_capacity(bounds.len() + 1);
    for _ in 0..=bounds.len() {
        match tempfile::tempfile_in(dir) {
            Ok(f) => parts.push(BufWriter::with_capacity(16 << 10, f)),
            Err(e) => return Ok(Err(why(e))),
        }
    }
    let mut failed: Option<std::io::Error> = None;
    let (mut fields, mut text) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    table.scan(|offset, line_no, line| {
        let Some(key) = key_of(line, line_no)? else {
            return Ok(());
        };
        encode_record::<C>(offset, line, key, &mut fields, &mut text);
        let part = &mut parts[bounds.partition_point(|&b| b <= key.order)];
        let head = PartHead {
            order: key.order,
            offset,
            hash: key.hash,
            fields_len: fields.len() as u32,
            text_len: text.len() as u32,
        }
        .to_bytes();
        for bytes in [&head[..], &fields, &text] {
            if failed.is_none()
                && let Err(e) = part.write_all(bytes)
            {
                failed = Some(e);
            }
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Ok(Err(why(e)));
    }
    let mut bytes = Vec::new();
    for part in parts {
        let mut file = match part.into_inner() {
            Ok(f) => f,
            Err(e) => return Ok(Err(why(e.into_error()))),
        };
        bytes.clear();
        // Room for the whole part at once: no doubling while it is read.
        let read = file.metadata().and_then(|m| {
            bytes.reserve(usize::try_from(m.len()).unwrap_or(0));
            file.rewind()?;
            std::io::Read::read_to_end(&mut file, &mut bytes)
        });
        if let Err(e) = read {
            return Ok(Err(why(e)));
        }
        // (order, line offset, key hash, fields, text) of each record.
        let mut records = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let record = PartHead::from_bytes(rest)
                .and_then(|h| Some((rest.get(PartHead::LEN..h.record_len())?, h)));
            let Some((body, head)) = record else {
                return Ok(Err(format!(
                    "{}: a temporary file came back cut",
                    dir.display()
                )));
            };
            let (fields, text) = body.split_at(head.fields_len as usize);
            records.push((head.order, head.offset, head.hash, fields, text));
            rest = &rest[head.record_len()..];
        }
        // By key, a key's lines in file order (offsets are unique).
        records.sort_unstable_by_key(|&(order, offset, ..)| (order, offset));
        for (_, _, hash, fields, text) in records {
            w.add(hash, fields, text);
        }
    }
    Ok(Ok(()))
}
