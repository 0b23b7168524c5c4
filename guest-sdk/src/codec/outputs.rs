//! Output batches: what guests emit (order intents, cancels, logs, metrics), each with the seq
//! of the event that caused it.

use super::wire::{Cursor, Reader, Writer, put_bytes, put_f64, put_i64, put_u8, put_u32, put_u64};
use super::*;

/// A new order a strategy wants placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    pub instrument: u32,
    pub client_order_id: u64,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// Limit price mantissa at `px_scale` (0 for market orders).
    pub price: i64,
    pub qty: i64,
    pub px_scale: u8,
    pub qty_scale: u8,
}

/// What a guest emits, each tagged with the seq of the event that caused it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output<'a> {
    NewOrder(NewOrder),
    Cancel {
        instrument: u32,
        client_order_id: u64,
    },
    Log {
        level: LogLevel,
        message: &'a str,
    },
    Metric {
        name: &'a str,
        value: f64,
    },
}

/// An output record with its cause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputRecord<'a> {
    pub cause_seq: u64,
    pub output: Output<'a>,
}

const OUT_NEW_ORDER: u8 = 1;
const OUT_CANCEL: u8 = 2;
const OUT_LOG: u8 = 3;
const OUT_METRIC: u8 = 4;

/// Builds an output batch in a caller-owned buffer.
pub struct OutputBatchWriter {
    w: Writer,
}

impl OutputBatchWriter {
    /// Starts a batch in `buf`, clearing it.
    pub fn new(buf: Vec<u8>) -> Self {
        Self {
            w: Writer::begin(buf, OUTPUT_MAGIC),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.buf
    }

    pub fn count(&self) -> u32 {
        self.w.count
    }

    pub fn push(&mut self, cause_seq: u64, output: &Output<'_>) {
        let start = self.w.buf.len();
        let b = &mut self.w.buf;
        put_u32(b, 0);
        let kind = match output {
            Output::NewOrder(_) => OUT_NEW_ORDER,
            Output::Cancel { .. } => OUT_CANCEL,
            Output::Log { .. } => OUT_LOG,
            Output::Metric { .. } => OUT_METRIC,
        };
        b.extend_from_slice(&[kind, 0, 0, 0]);
        put_u64(b, cause_seq);
        match output {
            Output::NewOrder(o) => {
                put_u32(b, o.instrument);
                put_u64(b, o.client_order_id);
                b.extend_from_slice(&[
                    o.side as u8,
                    o.order_type as u8,
                    o.tif as u8,
                    o.px_scale,
                    o.qty_scale,
                ]);
                put_i64(b, o.price);
                put_i64(b, o.qty);
            }
            Output::Cancel {
                instrument,
                client_order_id,
            } => {
                put_u32(b, *instrument);
                put_u64(b, *client_order_id);
            }
            Output::Log { level, message } => {
                put_u8(b, *level as u8);
                put_bytes(b, message.as_bytes());
            }
            Output::Metric { name, value } => {
                put_bytes(b, name.as_bytes());
                put_f64(b, *value);
            }
        }
        self.w.finish_record(start);
    }
}

/// Iterates the records of an output batch.
#[derive(Clone)]
pub struct OutputBatch<'a> {
    cur: Cursor<'a>,
}

impl<'a> OutputBatch<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, CodecError> {
        Ok(Self {
            cur: Cursor::new(buf, OUTPUT_MAGIC)?,
        })
    }

    /// Number of records the header announces.
    pub fn announced(&self) -> u32 {
        self.cur.count
    }
}

/// Decodes one output record found at offset `base` of its batch.
fn decode_output(rec: &[u8], base: usize) -> Result<OutputRecord<'_>, CodecError> {
    if rec.len() < OUTPUT_HEADER_LEN {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    let cause_seq = u64::from_le_bytes(rec[8..16].try_into().unwrap());
    let mut r = Reader {
        buf: rec,
        pos: OUTPUT_HEADER_LEN,
        base,
    };
    let output = match rec[4] {
        OUT_NEW_ORDER => {
            let instrument = r.u32()?;
            let client_order_id = r.u64()?;
            let side = r.enum_byte::<Side>()?;
            let order_type = r.enum_byte::<OrderType>()?;
            let tif = r.enum_byte::<TimeInForce>()?;
            let px_scale = r.u8()?;
            let qty_scale = r.u8()?;
            Output::NewOrder(NewOrder {
                instrument,
                client_order_id,
                side,
                order_type,
                tif,
                price: r.i64()?,
                qty: r.i64()?,
                px_scale,
                qty_scale,
            })
        }
        OUT_CANCEL => Output::Cancel {
            instrument: r.u32()?,
            client_order_id: r.u64()?,
        },
        OUT_LOG => Output::Log {
            level: r.enum_byte::<LogLevel>()?,
            message: r.str()?,
        },
        OUT_METRIC => Output::Metric {
            name: r.str()?,
            value: r.f64()?,
        },
        kind => return Err(CodecError::UnknownKind { at: base, kind }),
    };
    if r.pos != rec.len() {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    Ok(OutputRecord { cause_seq, output })
}

impl<'a> Iterator for OutputBatch<'a> {
    type Item = Result<OutputRecord<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.cur.step(decode_output)
    }
}
