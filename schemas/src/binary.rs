//! Hand-written Avro binary reading and writing for the two records on the scoring hot path
//! (PatientRecord in, Prediction out).
//!
//! apache-avro decodes through a generic `Value` tree, which costs microseconds per record; these
//! straight-line codecs cost a few hundred nanoseconds. They follow the same schemas field by
//! field, and the unit tests check them byte for byte against apache-avro in both directions.

use crate::error::DecodeError;

/// Reads Avro primitives from a byte slice, naming the field that failed.
pub(crate) struct Reader<'a> {
    record: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(record: &'static str, bytes: &'a [u8]) -> Self {
        Self { record, bytes }
    }

    pub(crate) fn malformed(&self, field: &str, what: &str) -> DecodeError {
        DecodeError::Malformed {
            record: self.record,
            detail: format!("field {field}: {what}"),
        }
    }

    /// A zigzag varint of at most `max_bytes` bytes.
    fn varint(&mut self, field: &str, max_bytes: usize) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some((&b, rest)) = self.bytes.split_first() else {
                return Err(self.malformed(field, "truncated"));
            };
            self.bytes = rest;
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(self.malformed(field, "varint too long"))
    }

    pub(crate) fn long(&mut self, field: &str) -> Result<i64, DecodeError> {
        self.varint(field, 10)
    }

    pub(crate) fn int(&mut self, field: &str) -> Result<i32, DecodeError> {
        let v = self.varint(field, 5)?;
        i32::try_from(v).map_err(|_| self.malformed(field, "int out of range"))
    }

    pub(crate) fn double(&mut self, field: &str) -> Result<f64, DecodeError> {
        if self.bytes.len() < 8 {
            return Err(self.malformed(field, "truncated"));
        }
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        Ok(f64::from_le_bytes(b))
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<String, DecodeError> {
        let len = self.long(field)?;
        let len = usize::try_from(len).map_err(|_| self.malformed(field, "negative length"))?;
        if self.bytes.len() < len {
            return Err(self.malformed(field, "truncated"));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(head.to_vec()).map_err(|_| self.malformed(field, "not UTF-8"))
    }

    /// A `["null", "int"]` union.
    pub(crate) fn opt_int(&mut self, field: &str) -> Result<Option<i32>, DecodeError> {
        match self.long(field)? {
            0 => Ok(None),
            1 => self.int(field).map(Some),
            _ => Err(self.malformed(field, "bad union branch")),
        }
    }

    /// A `["null", "double"]` union.
    pub(crate) fn opt_double(&mut self, field: &str) -> Result<Option<f64>, DecodeError> {
        match self.long(field)? {
            0 => Ok(None),
            1 => self.double(field).map(Some),
            _ => Err(self.malformed(field, "bad union branch")),
        }
    }

    /// An array of attribute names.
    pub(crate) fn field_set(&mut self, field: &str) -> Result<crate::FieldSet, DecodeError> {
        let mut set = crate::FieldSet::EMPTY;
        self.blocks(field, |r| {
            let name = r.string(field)?;
            set = set.union(
                crate::FieldSet::from_names([name.as_str()])
                    .map_err(|_| r.malformed(field, "not a UCI attribute name"))?,
            );
            Ok(())
        })?;
        Ok(set)
    }

    /// The items of an array, each read by `item` (Avro blocks; a negative count carries a
    /// byte size).
    pub(crate) fn blocks(
        &mut self,
        field: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        loop {
            let mut count = self.long(field)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count
                    .checked_neg()
                    .ok_or_else(|| self.malformed(field, "bad block"))?;
                self.long(field)?;
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// An enum symbol index below `symbols`.
    pub(crate) fn enum_index(&mut self, field: &str, symbols: usize) -> Result<usize, DecodeError> {
        let i = self.int(field)?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < symbols)
            .ok_or_else(|| self.malformed(field, "enum index out of range"))
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                record: self.record,
                extra: self.bytes.len(),
            })
        }
    }
}

/// Appends Avro primitives to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    pub(crate) fn int(&mut self, v: i32) {
        self.long(i64::from(v));
    }

    pub(crate) fn double(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn string(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn opt_int(&mut self, v: Option<i32>) {
        match v {
            None => self.long(0),
            Some(x) => {
                self.long(1);
                self.int(x);
            }
        }
    }

    pub(crate) fn field_set(&mut self, set: crate::FieldSet) {
        if !set.is_empty() {
            self.long(set.len() as i64);
            for name in set.names() {
                self.string(name);
            }
        }
        self.long(0);
    }

    pub(crate) fn opt_double(&mut self, v: Option<f64>) {
        match v {
            None => self.long(0),
            Some(x) => {
                self.long(1);
                self.double(x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints_match_the_avro_spec() {
        // Examples from the Avro specification.
        for (v, bytes) in [
            (0i64, vec![0x00u8]),
            (-1, vec![0x01]),
            (1, vec![0x02]),
            (-2, vec![0x03]),
            (2, vec![0x04]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
        ] {
            let mut buf = Vec::new();
            Writer(&mut buf).long(v);
            assert_eq!(buf, bytes, "{v}");
            assert_eq!(Reader::new("t", &bytes).long("f").unwrap(), v);
        }
        for v in [i64::MIN, i64::MAX, i64::from(i32::MIN), 1 << 40] {
            let mut buf = Vec::new();
            Writer(&mut buf).long(v);
            assert_eq!(Reader::new("t", &buf).long("f").unwrap(), v);
        }
    }

    #[test]
    fn overlong_and_truncated_varints_fail() {
        assert!(Reader::new("t", &[0x80; 11]).long("f").is_err());
        assert!(Reader::new("t", &[0x80]).long("f").is_err());
        assert!(
            Reader::new("t", &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
                .int("f")
                .is_err()
        );
    }
}
