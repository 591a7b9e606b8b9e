//! The digest's record codec: the field encoder and decoder (varints,
//! strings into one text area per run), the `Codec` each table implements
//! (`tables.rs`), and a record: a decoded row or a line kept as JSON.

/// A record or run that does not decode although written by this code:
/// damage the checksums missed, or a bug. Says what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damaged(pub(crate) &'static str);

/// Writes a record's fields (`out`) and its strings' text (`text`).
pub(crate) struct Encoder<'a> {
    pub(super) out: &'a mut Vec<u8>,
    pub(super) text: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    pub(crate) fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    /// LEB128: small numbers (lengths, most offsets' high bytes) in few bytes.
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// Its length among the fields, its bytes in the text area.
    pub(crate) fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.text.extend_from_slice(s.as_bytes());
    }

    /// `None` as 0, text as its length + 1 (and its bytes).
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.varint(s.len() as u64 + 1);
                self.text.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// The bits, so every value (signed zeros, NaN payloads) comes back.
    pub(crate) fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }

    pub(crate) fn opt_bool(&mut self, v: Option<bool>) {
        self.u8(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    /// Zigzag: small negative numbers stay short.
    pub(crate) fn i32(&mut self, v: i32) {
        self.varint(u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    pub(crate) fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i32(v);
            }
        }
    }
}

/// Reads a record's fields; strings are borrowed from the run's text
/// area, taken in the order they were written.
pub(crate) struct Decoder<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) text: &'a str,
}

impl<'a> Decoder<'a> {
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Damaged> {
        if n > self.bytes.len() {
            return Err(Damaged("a record runs past its run"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, Damaged> {
        // Most numbers (lengths, statuses, tags) fit in one byte: that case
        // is inlined where a record is decoded (a varint per field, two per
        // content id: a call each was 5% of a later run's instructions).
        if let Some((&b, rest)) = self.bytes.split_first()
            && b < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    // Not rare (a record's line offset is one), but kept out of line so
    // the one-byte case stays small where it is inlined.
    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, Damaged> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Damaged("a number is too long"))
    }

    #[inline]
    pub(super) fn len(&mut self) -> Result<usize, Damaged> {
        usize::try_from(self.varint()?).map_err(|_| Damaged("a length is too large"))
    }

    #[inline]
    pub(super) fn text(&mut self, n: usize) -> Result<&'a str, Damaged> {
        // `get` also refuses a cut inside a character.
        let s = self
            .text
            .get(..n)
            .ok_or(Damaged("a string runs past the text area"))?;
        self.text = &self.text[n..];
        Ok(s)
    }

    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, Damaged> {
        let n = self.len()?;
        self.text(n)
    }

    #[inline]
    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>, Damaged> {
        match self.len()? {
            0 => Ok(None),
            n => self.text(n - 1).map(Some),
        }
    }

    #[inline]
    pub(crate) fn opt_f64(&mut self) -> Result<Option<f64>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                Ok(Some(f64::from_bits(u64::from_le_bytes(b))))
            }
            _ => Err(Damaged("a bad number tag")),
        }
    }

    #[inline]
    pub(crate) fn opt_bool(&mut self) -> Result<Option<bool>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(Damaged("a bad boolean")),
        }
    }

    #[inline]
    pub(crate) fn i32(&mut self) -> Result<i32, Damaged> {
        let z = u32::try_from(self.varint()?).map_err(|_| Damaged("a bad integer"))?;
        Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    #[inline]
    pub(crate) fn opt_i32(&mut self) -> Result<Option<i32>, Damaged> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i32().map(Some),
            _ => Err(Damaged("a bad integer tag")),
        }
    }

    /// A length that counts items of at least one byte each: never more
    /// than the bytes left, so a damaged count cannot ask for a huge
    /// allocation.
    #[inline]
    pub(crate) fn count(&mut self) -> Result<usize, Damaged> {
        let n = self.len()?;
        if n > self.bytes.len() {
            return Err(Damaged("a count exceeds the record"));
        }
        Ok(n)
    }
}

/// How one table's row type is kept in a digest. `decode` must give back
/// the row `encode` was given, field for field: a lookup through the digest
/// then cannot differ from one through the JSON lines.
pub(crate) trait Codec {
    /// The row as read from a JSON line (borrowing from it) and from a
    /// record (borrowing from the digest's bytes).
    type Row<'a>: serde::Deserialize<'a>;
    fn encode(row: &Self::Row<'_>, e: &mut Encoder<'_>);
    fn decode<'a>(d: &mut Decoder<'a>) -> Result<Self::Row<'a>, Damaged>;
}

/// One line of the table as its digest record has it.
pub(crate) enum Record<R> {
    /// A line kept as JSON: read it from the table (`offset`, `len`).
    Line { offset: u64, len: u32 },
    /// A line's row; `offset` is where the line starts in the table (for
    /// messages that name its line number).
    Row { offset: u64, row: R },
}

/// A run's records, in line order.
pub(crate) type Records<'b, C> = Vec<Record<<C as Codec>::Row<'b>>>;

pub(super) const RECORD_LINE: u8 = 0;
pub(super) const RECORD_ROW: u8 = 1;
