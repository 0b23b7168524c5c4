//! The byte-level pieces both batch kinds share: an owned writer with the count in its
//! header, a bounds-checked field reader, and the record cursor.

use super::{BATCH_HEADER_LEN, CodecError, Decimal, LAYOUT_VERSION, Levels, WireEnum};

/// Appends records to an owned byte buffer and keeps the header's count current.
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
    pub(super) count: u32,
}

impl Writer {
    pub(super) fn begin(mut buf: Vec<u8>, magic: [u8; 4]) -> Self {
        buf.clear();
        buf.extend_from_slice(&magic);
        buf.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Self { buf, count: 0 }
    }

    pub(super) fn finish_record(&mut self, record_start: usize) {
        let len = (self.buf.len() - record_start) as u32;
        self.buf[record_start..record_start + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        self.buf[8..12].copy_from_slice(&self.count.to_le_bytes());
    }
}

pub(super) fn put_u8(b: &mut Vec<u8>, v: u8) {
    b.push(v);
}
pub(super) fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub(super) fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub(super) fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub(super) fn put_f64(b: &mut Vec<u8>, v: f64) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub(super) fn put_dec(b: &mut Vec<u8>, d: Decimal) {
    put_i64(b, d.mantissa);
    put_u8(b, d.scale);
}
pub(super) fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s);
}
pub(super) fn put_levels(b: &mut Vec<u8>, l: &Levels<'_>) {
    put_u32(b, l.len() as u32);
    match l {
        Levels::Wire(w) => b.extend_from_slice(w),
        Levels::Slice(s) => {
            for lv in s.iter() {
                put_i64(b, lv.price);
                put_i64(b, lv.qty);
            }
        }
    }
}

#[inline]
pub(super) fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes(b[..8].try_into().unwrap())
}

/// A bounds-checked cursor over one record.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Offset of the record in the whole batch, for error messages.
    pub(super) base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(CodecError::Truncated {
                at: self.base + self.pos,
                needed: n,
                len: self.base + self.buf.len(),
            }),
        }
    }
    #[inline]
    pub(super) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    pub(super) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    #[inline]
    pub(super) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    #[inline]
    pub(super) fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(le_i64(self.take(8)?))
    }
    pub(super) fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub(super) fn dec(&mut self) -> Result<Decimal, CodecError> {
        Ok(Decimal {
            mantissa: self.i64()?,
            scale: self.u8()?,
        })
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(super) fn str(&mut self) -> Result<&'a str, CodecError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| CodecError::BadUtf8 { at: self.base })
    }
    pub(super) fn levels(&mut self) -> Result<Levels<'a>, CodecError> {
        let n = self.u32()? as usize;
        let bytes = n.checked_mul(16).ok_or(CodecError::BadLength {
            at: self.base,
            len: n as u32,
        })?;
        Ok(Levels::Wire(self.take(bytes)?))
    }
    pub(super) fn enum_byte<T: WireEnum>(&mut self) -> Result<T, CodecError> {
        let v = self.u8()?;
        T::from_wire(v).ok_or(CodecError::BadEnum {
            at: self.base,
            field: T::FIELD,
            value: v,
        })
    }
}

/// Checks a batch header; returns the record count.
pub(super) fn read_header(buf: &[u8], magic: [u8; 4]) -> Result<u32, CodecError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(CodecError::Truncated {
            at: 0,
            needed: BATCH_HEADER_LEN,
            len: buf.len(),
        });
    }
    let found: [u8; 4] = buf[0..4].try_into().unwrap();
    if found != magic {
        return Err(CodecError::BadMagic {
            found,
            expected: magic,
        });
    }
    let layout = u16::from_le_bytes([buf[4], buf[5]]);
    if layout != LAYOUT_VERSION {
        return Err(CodecError::LayoutVersion {
            found: layout,
            expected: LAYOUT_VERSION,
        });
    }
    Ok(u32::from_le_bytes(buf[8..12].try_into().unwrap()))
}

/// Splits the next length-prefixed record off `buf[pos..]`.
#[inline(always)]
pub(super) fn next_record(buf: &[u8], pos: usize) -> Result<&[u8], CodecError> {
    if buf.len() - pos < 4 {
        return Err(CodecError::Truncated {
            at: pos,
            needed: 4,
            len: buf.len(),
        });
    }
    let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
    let l = len as usize;
    if l < 4 {
        return Err(CodecError::BadLength { at: pos, len });
    }
    if buf.len() - pos < l {
        return Err(CodecError::Truncated {
            at: pos,
            needed: l,
            len: buf.len(),
        });
    }
    Ok(&buf[pos..pos + l])
}

/// Walks the records of a batch: at most `count`, stopping after the first error, and
/// reporting a count that disagrees with the buffer.
#[derive(Clone)]
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) count: u32,
    pub(super) seen: u32,
    pub(super) done: bool,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8], magic: [u8; 4]) -> Result<Self, CodecError> {
        let count = read_header(buf, magic)?;
        Ok(Self {
            buf,
            pos: BATCH_HEADER_LEN,
            count,
            seen: 0,
            done: false,
        })
    }

    /// Generic over the decoder (not a fn pointer) so it is inlined into the hot loop.
    #[inline(always)]
    pub(super) fn step<T>(
        &mut self,
        decode: impl FnOnce(&'a [u8], usize) -> Result<T, CodecError>,
    ) -> Option<Result<T, CodecError>> {
        if self.done {
            return None;
        }
        let at_end = self.pos == self.buf.len();
        if self.seen == self.count || at_end {
            self.done = true;
            return match (self.seen == self.count, at_end) {
                (true, true) => None,
                (true, false) => Some(Err(CodecError::CountMismatch {
                    header: self.count,
                    found: self.count + 1,
                })),
                _ => Some(Err(CodecError::CountMismatch {
                    header: self.count,
                    found: self.seen,
                })),
            };
        }
        self.seen += 1;
        let item = next_record(self.buf, self.pos).and_then(|rec| {
            let at = self.pos;
            self.pos += rec.len();
            decode(rec, at)
        });
        self.done = item.is_err();
        Some(item)
    }
}
