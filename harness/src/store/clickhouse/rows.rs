//! The rows of the ClickHouse tables in RowBinary, written and read by hand: one place states
//! each table's column order (it must match `migrations/clickhouse/`; validation is off on
//! 18.16, so a mismatch is not caught by the server, only by the round-trip tests here and
//! against the server). Appends become one RowBinary body per table; reads parse RowBinary as
//! it streams in, row by row, never holding more than a row and a chunk.
//!
//! RowBinary: integers little-endian; `String` a LEB128 length then bytes; `Nullable(T)` a byte
//! (1 = NULL) then `T` when 0; `Array(T)` a LEB128 count then the elements; `Decimal128(18)` an
//! i128 mantissa at scale 18.

use std::collections::BTreeMap;

use tapedeck_guest::codec::EventBatchWriter;

pub(super) use super::rowbinary::RowWriter;
use crate::error::Result;
use crate::event::{Body, Correlation, Dec, Envelope, LevelPair, StreamEncoder, Tenancy};

/// The `payload` of an event as JSON text: the body serialized (`{"event_type":..,"payload":
/// {..}}`) with the wrapper cut off.
pub(super) fn payload_text(body: &Body) -> String {
    let full = serde_json::to_string(body).expect("bodies serialize");
    let prefix = format!("{{\"event_type\":\"{}\",\"payload\":", body.event_type());
    match full.strip_prefix(&prefix).and_then(|p| p.strip_suffix('}')) {
        Some(p) => p.to_string(),
        None => {
            let mut v = serde_json::to_value(body).expect("bodies serialize");
            v.as_object_mut()
                .and_then(|m| m.remove("payload"))
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string()
        }
    }
}

/// The seed's typed tables, in the order their bodies are built.
pub(super) const TYPED: [&str; 8] = [
    "market_data",
    "orders",
    "fills",
    "positions_intraday",
    "account_state",
    "risk_decisions",
    "guardrail_transitions",
    "system_events",
];

/// Events in a replay run at most (a run never spans a day either).
pub(super) const RUN_EVENTS: usize = 4096;

/// The append id rows are encoded with before their append has one: as long as every append
/// id (lock owner ids are fixed-width), so [`Encoded::set_append_id`] patches it in place.
pub(super) const APPEND_ID_SLOT: &str = "-----------------------------------------";

/// One append as RowBinary bodies: `events`, `event_runs` and each typed table.
#[derive(Debug, Default)]
pub(super) struct Encoded {
    pub(super) events: RowWriter,
    pub(super) runs: RowWriter,
    pub(super) typed: [RowWriter; 8],
    /// Where the append id's bytes start in `events` and `runs` rows.
    id_at: (Vec<usize>, Vec<usize>),
}

impl Encoded {
    /// Writes `id` (as long as [`APPEND_ID_SLOT`]) over the append id of every row.
    pub(super) fn set_append_id(&mut self, id: &str) {
        assert_eq!(id.len(), APPEND_ID_SLOT.len(), "append ids are fixed-width");
        for (w, at) in [
            (&mut self.events, &self.id_at.0),
            (&mut self.runs, &self.id_at.1),
        ] {
            for &p in at {
                w.buf[p..p + id.len()].copy_from_slice(id.as_bytes());
            }
        }
    }

    /// Appends `other`'s rows to these (append ids set already: the patch positions of
    /// `other` are not kept).
    pub(super) fn absorb(&mut self, other: Encoded) {
        let pairs = [
            (&mut self.events, other.events),
            (&mut self.runs, other.runs),
        ];
        for (w, o) in pairs
            .into_iter()
            .chain(self.typed.iter_mut().zip(other.typed))
        {
            w.buf.extend_from_slice(&o.buf);
            w.rows += o.rows;
        }
    }
}

/// Encodes `events` (one stream, consecutive seqs) as the rows of append `append_id`.
/// Fails, before anything is written, on an event the codec cannot pack.
pub(super) fn encode(events: &[Envelope], append_id: &str) -> Result<Encoded> {
    let mut out = Encoded::default();
    let mut enc = StreamEncoder::new(0);
    let mut scratch = Vec::new();
    let mut run = RunBuilder::default();
    for e in events {
        let mut w = EventBatchWriter::new(std::mem::take(&mut scratch));
        enc.encode(e, &mut w)?;
        let rec = w.records().next().expect("one record");
        run.push(&mut out.runs, e, rec, append_id, &mut out.id_at.1);
        event_row(&mut out.events, e, append_id);
        out.id_at.0.push(out.events.buf.len() - append_id.len());
        typed_row(&mut out.typed, e);
        scratch = w.finish();
    }
    run.flush(&mut out.runs, append_id, &mut out.id_at.1);
    Ok(out)
}

/// A `batches` row (the commit of one run): stream, first and last seq, append id, events.
pub(super) fn batch_row(w: &mut RowWriter, stream: &str, first: u64, last: u64, append_id: &str) {
    w.str(stream);
    w.u64(first);
    w.u64(last);
    w.str(append_id);
    w.u64(last - first + 1);
    w.rows += 1;
}

pub(super) fn event_row(w: &mut RowWriter, e: &Envelope, append_id: &str) {
    let Tenancy {
        tenant_id,
        owner_id,
        workspace_id,
        project_id,
    } = &e.tenancy;
    let Correlation {
        trace_id,
        causation_id,
        command_id,
        workflow_id,
    } = &e.correlation;
    w.str(&e.stream_key);
    w.u64(e.seq);
    w.str(&e.event_id);
    w.str(e.body.event_type());
    w.opt_str(e.instrument.as_deref());
    w.i64(e.occurred_at);
    w.i64(e.ingested_at);
    for v in [
        tenant_id,
        owner_id,
        workspace_id,
        project_id,
        trace_id,
        causation_id,
        command_id,
        workflow_id,
        &e.idempotency_key,
    ] {
        w.opt_str(v.as_deref());
    }
    w.str(&payload_text(&e.body));
    w.str(append_id);
    w.rows += 1;
}

/// Packs consecutive records of a stream into `event_runs` rows.
#[derive(Default)]
struct RunBuilder {
    stream: String,
    first_seq: u64,
    last_seq: u64,
    first_time: i64,
    last_time: i64,
    day: i64,
    n: usize,
    records: Vec<u8>,
    /// Events per type in the run.
    types: BTreeMap<&'static str, u64>,
}

impl RunBuilder {
    fn push(
        &mut self,
        w: &mut RowWriter,
        e: &Envelope,
        rec: &[u8],
        append_id: &str,
        id_at: &mut Vec<usize>,
    ) {
        let day = e.occurred_at.div_euclid(86_400_000_000_000);
        if self.n > 0 && (self.n >= RUN_EVENTS || day != self.day) {
            self.flush(w, append_id, id_at);
        }
        if self.n == 0 {
            if self.stream != e.stream_key {
                self.stream = e.stream_key.clone();
            }
            self.first_seq = e.seq;
            self.first_time = e.occurred_at;
            self.day = day;
        }
        self.last_seq = e.seq;
        self.last_time = e.occurred_at;
        *self.types.entry(e.body.event_type()).or_default() += 1;
        self.n += 1;
        self.records.extend_from_slice(&e.occurred_at.to_le_bytes());
        self.records
            .extend_from_slice(&(rec.len() as u32).to_le_bytes());
        self.records.extend_from_slice(rec);
    }

    fn flush(&mut self, w: &mut RowWriter, append_id: &str, id_at: &mut Vec<usize>) {
        if self.n == 0 {
            return;
        }
        w.str(&self.stream);
        w.u64(self.first_seq);
        w.u64(self.last_seq);
        w.i64(self.first_time);
        w.bytes(&self.records);
        w.str(append_id);
        id_at.push(w.buf.len() - append_id.len());
        w.i64(self.last_time);
        w.len(self.types.len());
        for t in self.types.keys() {
            w.str(t);
        }
        w.len(self.types.len());
        for n in self.types.values() {
            w.u64(*n);
        }
        w.rows += 1;
        self.n = 0;
        self.records.clear();
        self.types.clear();
    }
}

fn typed_row(t: &mut [RowWriter; 8], e: &Envelope) {
    let sym = e.instrument.as_deref().unwrap_or("");
    let account = e.tenancy.tenant_id.as_deref().unwrap_or("");
    let tail = |w: &mut RowWriter| {
        w.str(&e.stream_key);
        w.u64(e.seq);
        w.rows += 1;
    };
    let top = |levels: &[LevelPair], i: usize| -> Vec<Dec> {
        levels.iter().take(5).map(|l| l[i]).collect()
    };
    match &e.body {
        Body::Quote { .. }
        | Body::Trade { .. }
        | Body::BookSnapshot { .. }
        | Body::BookDelta { .. } => {
            let w = &mut t[0];
            w.i64(e.occurred_at);
            w.i64(e.ingested_at);
            w.str(sym);
            w.str(e.body.event_type());
            let (l1, levels, last) = match &e.body {
                Body::Quote {
                    bid_px,
                    bid_qty,
                    ask_px,
                    ask_qty,
                    ..
                } => (Some([*bid_px, *bid_qty, *ask_px, *ask_qty]), None, None),
                Body::Trade { price, qty, .. } => (None, None, Some((*price, *qty))),
                Body::BookSnapshot { bids, asks, .. } | Body::BookDelta { bids, asks, .. } => {
                    let l1 = bids
                        .first()
                        .zip(asks.first())
                        .map(|(b, a)| [b[0], b[1], a[0], a[1]]);
                    (l1, Some((bids, asks)), None)
                }
                _ => unreachable!(),
            };
            for i in 0..4 {
                w.opt_dec(l1.map(|l| l[i]));
            }
            let empty: &Vec<LevelPair> = &Vec::new();
            let (bids, asks) = levels.unwrap_or((empty, empty));
            for (side, i) in [(bids, 0), (bids, 1), (asks, 0), (asks, 1)] {
                w.decs(top(side, i).into_iter());
            }
            w.opt_dec(last.map(|l| l.0));
            w.opt_dec(last.map(|l| l.1));
            w.str(&e.stream_key);
            tail(w);
        }
        Body::OrderSubmitted { .. }
        | Body::OrderAcked { .. }
        | Body::OrderRejected { .. }
        | Body::OrderCancelled { .. } => {
            let w = &mut t[1];
            w.i64(e.occurred_at);
            w.i64(e.ingested_at);
            let (coid, broker, status, reject) = match &e.body {
                Body::OrderSubmitted {
                    client_order_id, ..
                } => (*client_order_id, None, "submitted", None),
                Body::OrderAcked {
                    client_order_id,
                    venue_order_id,
                } => (*client_order_id, Some(*venue_order_id), "acked", None),
                Body::OrderRejected {
                    client_order_id,
                    reason,
                } => (*client_order_id, None, "rejected", Some(reason.as_str())),
                Body::OrderCancelled { client_order_id } => {
                    (*client_order_id, None, "cancelled", None)
                }
                _ => unreachable!(),
            };
            w.u64(coid);
            w.opt_u64(broker);
            w.str(sym);
            match &e.body {
                Body::OrderSubmitted {
                    side,
                    order_type,
                    tif,
                    price,
                    qty,
                    ..
                } => {
                    w.opt_str(Some(&name(side)));
                    w.opt_dec(Some(*qty));
                    w.opt_dec(*price);
                    w.opt_str(Some(&name(order_type)));
                    w.opt_str(Some(&name(tif)));
                }
                _ => (0..5).for_each(|_| w.u8(1)),
            }
            w.str(status);
            w.opt_str(reject);
            tail(w);
        }
        Body::Fill {
            client_order_id,
            trade_id,
            side,
            liquidity,
            is_final,
            price,
            qty,
            fee,
        } => {
            let w = &mut t[2];
            w.i64(e.occurred_at);
            w.i64(e.ingested_at);
            w.u64(*client_order_id);
            w.u64(*trade_id);
            w.str(sym);
            w.str(&name(side));
            w.opt_str(liquidity.as_ref().map(name).as_deref());
            w.u8(u8::from(*is_final));
            w.dec(*qty);
            w.dec(*price);
            w.dec(*fee);
            w.str(&e.stream_key);
            tail(w);
        }
        Body::Position {
            qty,
            avg_price,
            realized_pnl,
        } => {
            let w = &mut t[3];
            w.i64(e.occurred_at);
            w.str(account);
            w.str(sym);
            w.dec(*qty);
            w.dec(*avg_price);
            w.dec(*realized_pnl);
            tail(w);
        }
        Body::Balance {
            total,
            free,
            locked,
        } => {
            let w = &mut t[4];
            w.i64(e.occurred_at);
            w.str(account);
            w.str(sym);
            w.dec(*total);
            w.dec(*free);
            w.dec(*locked);
            tail(w);
        }
        Body::RiskDecision {
            client_order_id,
            decision,
            reason_code,
        } => {
            let w = &mut t[5];
            w.i64(e.occurred_at);
            w.str(sym);
            w.u64(*client_order_id);
            w.str(&name(decision));
            w.str(reason_code);
            tail(w);
        }
        Body::GuardrailTransition {
            prev_mode,
            next_mode,
            trigger_metric,
            value,
            reason,
        } => {
            let w = &mut t[6];
            w.i64(e.occurred_at);
            w.str(prev_mode);
            w.str(next_mode);
            w.str(trigger_metric);
            w.dec(*value);
            w.str(reason);
            tail(w);
        }
        Body::Funding { .. } | Body::Custom { .. } => {
            let w = &mut t[7];
            w.i64(e.occurred_at);
            w.str(e.body.event_type());
            w.str(sym);
            w.str(&payload_text(&e.body));
            tail(w);
        }
    }
}

/// The snake_case name an enum serializes to.
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SideName;
    use crate::store::clickhouse::decode::{Cur, run_records};
    use crate::store::clickhouse::rowbinary::dec18;

    fn quote(seq: u64, t: i64) -> Envelope {
        let mut e = Envelope::new(
            "md:x",
            seq,
            t,
            Some("BTCUSDT"),
            Body::Quote {
                bid_px: Dec::new(10_050, 2),
                bid_qty: Dec::new(15, 1),
                ask_px: Dec::new(10_051, 2),
                ask_qty: Dec::new(2, 0),
                update_id: Some(7),
            },
        );
        e.tenancy.tenant_id = Some("t'1".into());
        e.correlation.trace_id = Some("tr".into());
        e
    }

    #[test]
    fn runs_hold_consecutive_records_and_split_at_days_and_size() {
        let day = 86_400_000_000_000;
        let mut events: Vec<Envelope> = (1..=RUN_EVENTS as u64 + 10)
            .map(|s| quote(s, day + s as i64))
            .collect();
        let n = events.len() as u64;
        events.push(quote(n + 1, 2 * day));
        let mut enc = encode(&events, APPEND_ID_SLOT).unwrap();
        let id = "a".repeat(APPEND_ID_SLOT.len());
        enc.set_append_id(&id);
        assert_eq!(enc.runs.rows, 3);
        let mut c = Cur::new(&enc.runs.buf);
        let mut seqs = Vec::new();
        while !c.is_empty() {
            assert_eq!(c.str(), Some("md:x"));
            let first = c.u64().unwrap();
            let last = c.u64().unwrap();
            c.i64().unwrap();
            let recs = c.bytes().unwrap();
            assert_eq!(c.str(), Some(id.as_str()));
            let got = run_records(first, recs, &mut |s, t, r| {
                assert_eq!(t, events[s as usize - 1].occurred_at);
                assert!(!r.is_empty());
                seqs.push(s);
                Ok(())
            })
            .unwrap();
            assert_eq!(first + got - 1, last);
            // The run's summary: its last time, events per type.
            assert_eq!(c.i64(), Some(events[last as usize - 1].occurred_at));
            assert_eq!(
                (c.len(), c.str(), c.len(), c.u64()),
                (Some(1), Some("quote"), Some(1), Some(got))
            );
        }
        assert_eq!(seqs, (1..=n + 1).collect::<Vec<_>>());
    }

    #[test]
    fn decimals_and_payloads() {
        assert_eq!(dec18(Dec::new(15, 1)), 1_500_000_000_000_000_000);
        assert_eq!(dec18(Dec::new(-1, 0)), -1_000_000_000_000_000_000);
        assert_eq!(dec18(Dec::new(123, 20)), 1);
        let b = Body::Fill {
            client_order_id: 1,
            trade_id: 2,
            side: SideName::Buy,
            liquidity: None,
            is_final: true,
            price: Dec::new(1, 0),
            qty: Dec::new(2, 0),
            fee: Dec::new(0, 0),
        };
        let p = payload_text(&b);
        assert!(p.starts_with("{\"client_order_id\":1"), "{p}");
        assert_eq!(name(&SideName::Sell), "sell");
    }
}
