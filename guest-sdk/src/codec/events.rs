//! Event batches: the writer the host uses and the zero-copy reader guests use.

use super::wire::{
    Cursor, Reader, Writer, le_i64, next_record, put_bytes, put_dec, put_i64, put_levels, put_u8,
    put_u32, put_u64,
};
use super::*;

/// Builds an event batch in a caller-owned buffer (reuse it across batches).
pub struct EventBatchWriter {
    w: Writer,
}

impl EventBatchWriter {
    /// Starts a batch in `buf`, clearing it (pass back a finished batch's buffer to reuse it).
    pub fn new(buf: Vec<u8>) -> Self {
        Self {
            w: Writer::begin(buf, EVENT_MAGIC),
        }
    }

    /// The batch so far: always a complete, valid batch.
    pub fn as_bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.buf
    }

    pub fn count(&self) -> u32 {
        self.w.count
    }

    /// Appends a record encoded earlier (by `push` into another batch, as a store index keeps
    /// them), setting its stream id. The record is checked as a whole: its length field, and
    /// that it decodes (kind, enums, UTF-8, payload filling it exactly), so the batch stays one
    /// a guest can read: a guest's driver traps on a batch that does not decode.
    pub fn push_record(&mut self, record: &[u8], stream: u32) -> Result<(), CodecError> {
        if record.len() < EVENT_HEADER_LEN
            || u32::from_le_bytes(record[0..4].try_into().unwrap()) as usize != record.len()
        {
            return Err(CodecError::BadLength {
                at: 0,
                len: record.len() as u32,
            });
        }
        decode_event(record, 0)?;
        let start = self.w.buf.len();
        self.w.buf.extend_from_slice(record);
        self.w.buf[start + 8..start + 12].copy_from_slice(&stream.to_le_bytes());
        self.w.count += 1;
        let count = self.w.count;
        self.w.buf[8..12].copy_from_slice(&count.to_le_bytes());
        Ok(())
    }

    /// The bytes of each record pushed so far (header excluded), in order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let buf = &self.w.buf;
        let mut pos = BATCH_HEADER_LEN;
        std::iter::from_fn(move || {
            let len = u32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().unwrap()) as usize;
            let rec = &buf[pos..pos + len];
            pos += len;
            Some(rec)
        })
    }

    pub fn push(&mut self, header: &EventHeader, payload: &Payload<'_>) {
        let start = self.w.buf.len();
        let b = &mut self.w.buf;
        put_u32(b, 0);
        put_u8(b, payload.kind() as u8);
        put_u8(b, header.px_scale);
        put_u8(b, header.qty_scale);
        put_u8(b, 0);
        put_u32(b, header.stream);
        put_u32(b, header.instrument);
        put_u64(b, header.seq);
        put_i64(b, header.time_ns);
        match payload {
            Payload::Quote(q) => {
                put_i64(b, q.bid_px);
                put_i64(b, q.bid_qty);
                put_i64(b, q.ask_px);
                put_i64(b, q.ask_qty);
            }
            Payload::Trade(t) => {
                put_i64(b, t.price);
                put_i64(b, t.qty);
                put_u64(b, t.trade_id);
                put_u8(b, t.aggressor as u8);
            }
            Payload::BookSnapshot(s) => {
                put_u64(b, s.update_id);
                put_levels(b, &s.bids);
                put_levels(b, &s.asks);
            }
            Payload::BookDelta(d) => {
                put_u64(b, d.first_update_id);
                put_u64(b, d.final_update_id);
                put_u64(b, d.prev_final_update_id);
                put_levels(b, &d.bids);
                put_levels(b, &d.asks);
            }
            Payload::OrderSubmitted(o) => {
                put_u64(b, o.client_order_id);
                put_u8(b, o.side as u8);
                put_u8(b, o.order_type as u8);
                put_u8(b, o.tif as u8);
                put_i64(b, o.price);
                put_i64(b, o.qty);
            }
            Payload::OrderAcked(o) => {
                put_u64(b, o.client_order_id);
                put_u64(b, o.venue_order_id);
            }
            Payload::OrderRejected(o) => {
                put_u64(b, o.client_order_id);
                put_bytes(b, o.reason.as_bytes());
            }
            Payload::OrderCancelled(o) => put_u64(b, o.client_order_id),
            Payload::Fill(f) => {
                put_u64(b, f.client_order_id);
                put_u64(b, f.trade_id);
                put_u8(b, f.side as u8);
                put_u8(b, f.liquidity as u8);
                put_u8(b, f.is_final as u8);
                put_i64(b, f.price);
                put_i64(b, f.qty);
                put_dec(b, f.fee);
            }
            Payload::Position(p) => {
                put_i64(b, p.qty);
                put_i64(b, p.avg_price);
                put_dec(b, p.realized_pnl);
            }
            Payload::Balance(x) => {
                put_dec(b, x.total);
                put_dec(b, x.free);
                put_dec(b, x.locked);
            }
            Payload::RiskDecision(r) => {
                put_u64(b, r.client_order_id);
                put_u8(b, r.verdict as u8);
                put_bytes(b, r.reason_code.as_bytes());
            }
            Payload::GuardrailTransition(g) => {
                put_bytes(b, g.prev_mode.as_bytes());
                put_bytes(b, g.next_mode.as_bytes());
                put_bytes(b, g.trigger_metric.as_bytes());
                put_dec(b, g.value);
                put_bytes(b, g.reason.as_bytes());
            }
            Payload::Funding(f) => {
                put_dec(b, f.rate);
                put_i64(b, f.mark_price);
                put_dec(b, f.payment);
            }
            Payload::Custom(c) => {
                put_bytes(b, c.type_name.as_bytes());
                put_bytes(b, c.json);
            }
        }
        self.w.finish_record(start);
    }
}

/// Iterates the events of a batch without copying.
#[derive(Clone)]
pub struct EventBatch<'a> {
    cur: Cursor<'a>,
}

impl<'a> EventBatch<'a> {
    /// Checks the header. Records are checked as they are read.
    pub fn new(buf: &'a [u8]) -> Result<Self, CodecError> {
        Ok(Self {
            cur: Cursor::new(buf, EVENT_MAGIC)?,
        })
    }

    /// Number of events the header announces (`count()` would consume the iterator).
    pub fn announced(&self) -> u32 {
        self.cur.count
    }

    /// Decodes the whole batch, failing on the first bad record.
    pub fn collect_all(self) -> Result<Vec<Event<'a>>, CodecError> {
        self.collect()
    }

    /// Calls `f` on each event in order; stops at the first bad record. The hot path: no
    /// `Option<Result<Event>>` per event, each event decoded in place.
    #[inline(always)]
    pub fn for_each_event(self, mut f: impl FnMut(&Event<'a>)) -> Result<(), CodecError> {
        let Cursor {
            buf,
            mut pos,
            count,
            ..
        } = self.cur;
        for found in 0..count {
            if pos == buf.len() {
                return Err(CodecError::CountMismatch {
                    header: count,
                    found,
                });
            }
            let rec = next_record(buf, pos)?;
            // Quotes are built right here, as a local handed to `f` by reference: returning
            // them through `Result` costs a struct copy that, in Wasm, stalls on
            // store-to-load forwarding.
            match quote_fast(rec) {
                Some(q) => f(&Event {
                    header: decode_header(rec),
                    payload: Payload::Quote(q),
                }),
                None => f(&decode_event(rec, pos)?),
            }
            pos += rec.len();
        }
        match pos == buf.len() {
            true => Ok(()),
            false => Err(CodecError::CountMismatch {
                header: count,
                found: count + 1,
            }),
        }
    }
}

/// The fixed header of a record at least `EVENT_HEADER_LEN` long.
#[inline(always)]
fn decode_header(rec: &[u8]) -> EventHeader {
    EventHeader {
        px_scale: rec[5],
        qty_scale: rec[6],
        stream: u32::from_le_bytes(rec[8..12].try_into().unwrap()),
        instrument: u32::from_le_bytes(rec[12..16].try_into().unwrap()),
        seq: u64::from_le_bytes(rec[16..24].try_into().unwrap()),
        time_ns: le_i64(&rec[24..32]),
    }
}

/// The most common record: a quote has a fixed size, so one length check covers every field.
#[inline(always)]
fn quote_fast(rec: &[u8]) -> Option<Quote> {
    if rec.len() != EVENT_HEADER_LEN + 32 || rec[4] != EventKind::Quote as u8 {
        return None;
    }
    let q = &rec[EVENT_HEADER_LEN..];
    Some(Quote {
        bid_px: le_i64(&q[0..8]),
        bid_qty: le_i64(&q[8..16]),
        ask_px: le_i64(&q[16..24]),
        ask_qty: le_i64(&q[24..32]),
    })
}

/// Decodes one event record found at offset `base` of its batch.
#[inline(always)]
fn decode_event(rec: &[u8], base: usize) -> Result<Event<'_>, CodecError> {
    if rec.len() < EVENT_HEADER_LEN {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    let kind_byte = rec[4];
    let header = decode_header(rec);
    if let Some(q) = quote_fast(rec) {
        return Ok(Event {
            header,
            payload: Payload::Quote(q),
        });
    }
    let mut r = Reader {
        buf: rec,
        pos: EVENT_HEADER_LEN,
        base,
    };
    let kind = EventKind::from_u8(kind_byte).ok_or(CodecError::UnknownKind {
        at: base,
        kind: kind_byte,
    })?;
    let payload = match kind {
        EventKind::Quote => Payload::Quote(Quote {
            bid_px: r.i64()?,
            bid_qty: r.i64()?,
            ask_px: r.i64()?,
            ask_qty: r.i64()?,
        }),
        EventKind::Trade => Payload::Trade(Trade {
            price: r.i64()?,
            qty: r.i64()?,
            trade_id: r.u64()?,
            aggressor: r.enum_byte::<Aggressor>()?,
        }),
        EventKind::BookSnapshot => Payload::BookSnapshot(BookSnapshot {
            update_id: r.u64()?,
            bids: r.levels()?,
            asks: r.levels()?,
        }),
        EventKind::BookDelta => Payload::BookDelta(BookDelta {
            first_update_id: r.u64()?,
            final_update_id: r.u64()?,
            prev_final_update_id: r.u64()?,
            bids: r.levels()?,
            asks: r.levels()?,
        }),
        EventKind::OrderSubmitted => Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: r.u64()?,
            side: r.enum_byte::<Side>()?,
            order_type: r.enum_byte::<OrderType>()?,
            tif: r.enum_byte::<TimeInForce>()?,
            price: r.i64()?,
            qty: r.i64()?,
        }),
        EventKind::OrderAcked => Payload::OrderAcked(OrderAcked {
            client_order_id: r.u64()?,
            venue_order_id: r.u64()?,
        }),
        EventKind::OrderRejected => Payload::OrderRejected(OrderRejected {
            client_order_id: r.u64()?,
            reason: r.str()?,
        }),
        EventKind::OrderCancelled => Payload::OrderCancelled(OrderCancelled {
            client_order_id: r.u64()?,
        }),
        EventKind::Fill => Payload::Fill(Fill {
            client_order_id: r.u64()?,
            trade_id: r.u64()?,
            side: r.enum_byte::<Side>()?,
            liquidity: r.enum_byte::<Liquidity>()?,
            is_final: match r.u8()? {
                0 => false,
                1 => true,
                v => {
                    return Err(CodecError::BadEnum {
                        at: base,
                        field: "is_final",
                        value: v,
                    });
                }
            },
            price: r.i64()?,
            qty: r.i64()?,
            fee: r.dec()?,
        }),
        EventKind::Position => Payload::Position(Position {
            qty: r.i64()?,
            avg_price: r.i64()?,
            realized_pnl: r.dec()?,
        }),
        EventKind::Balance => Payload::Balance(Balance {
            total: r.dec()?,
            free: r.dec()?,
            locked: r.dec()?,
        }),
        EventKind::RiskDecision => Payload::RiskDecision(RiskDecision {
            client_order_id: r.u64()?,
            verdict: r.enum_byte::<RiskVerdict>()?,
            reason_code: r.str()?,
        }),
        EventKind::GuardrailTransition => Payload::GuardrailTransition(GuardrailTransition {
            prev_mode: r.str()?,
            next_mode: r.str()?,
            trigger_metric: r.str()?,
            value: r.dec()?,
            reason: r.str()?,
        }),
        EventKind::Funding => Payload::Funding(Funding {
            rate: r.dec()?,
            mark_price: r.i64()?,
            payment: r.dec()?,
        }),
        EventKind::Custom => Payload::Custom(Custom {
            type_name: r.str()?,
            json: r.bytes()?,
        }),
    };
    if r.pos != rec.len() {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    Ok(Event { header, payload })
}

impl<'a> Iterator for EventBatch<'a> {
    type Item = Result<Event<'a>, CodecError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.cur.step(decode_event)
    }
}
