//! The RowBinary writer: ClickHouse's row format, as the ClickHouse store's appends build it
//! by hand (`rows` lays out each table's columns with it). Integers little-endian; `String` a
//! LEB128 length then bytes; `Nullable(T)` a byte (1 = NULL) then `T` when 0; `Array(T)` a
//! LEB128 count then the elements; `Decimal128(18)` an i128 mantissa at scale 18.

use crate::event::Dec;

/// A RowBinary body under construction.
#[derive(Debug, Default)]
pub(super) struct RowWriter {
    pub(super) buf: Vec<u8>,
    pub(super) rows: u64,
}

impl RowWriter {
    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn len(&mut self, mut n: usize) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }
    pub(super) fn bytes(&mut self, s: &[u8]) {
        self.len(s.len());
        self.buf.extend_from_slice(s);
    }
    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(super) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(0);
                self.str(s);
            }
            None => self.u8(1),
        }
    }
    pub(super) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(0);
                self.u64(v);
            }
            None => self.u8(1),
        }
    }
    pub(super) fn dec(&mut self, d: Dec) {
        self.buf.extend_from_slice(&dec18(d).to_le_bytes());
    }
    pub(super) fn opt_dec(&mut self, d: Option<Dec>) {
        match d {
            Some(d) => {
                self.u8(0);
                self.dec(d);
            }
            None => self.u8(1),
        }
    }
    pub(super) fn decs(&mut self, it: impl ExactSizeIterator<Item = Dec>) {
        self.len(it.len());
        for d in it {
            self.dec(d);
        }
    }
}

/// `d` at scale 18 (Decimal128(18)); finer decimals are cut to 18 places (the typed tables are
/// for analysis; `events.payload` keeps every digit).
pub(super) fn dec18(d: Dec) -> i128 {
    let (m, s) = (d.0.mantissa as i128, d.0.scale as u32);
    if s <= 18 {
        m * 10i128.pow(18 - s)
    } else {
        m / 10i128.pow(s - 18)
    }
}
