//! RowBinary read back: a cursor over rows as they stream in (a row cut by a chunk boundary
//! reads as "need more", never as a row), the envelope rows of `events` and the packed records
//! of an `event_runs` row. The column order is `rows`' (the writing side).

use crate::error::{Error, Result};
use crate::event::{Body, Correlation, Envelope, Tenancy};

/// A RowBinary reader over what has arrived so far. Every method returns `None` when the
/// data ends first: the caller keeps the bytes of the unfinished row and waits for more.
#[derive(Debug)]
pub(super) struct Cur<'a> {
    pub(super) b: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cur<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Cur { b, pos: 0 }
    }
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    pub(super) fn len(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        Some(usize::MAX)
    }
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    pub(super) fn str(&mut self) -> Option<&'a str> {
        // Our own columns hold UTF-8 only; anything else reads as empty and fails upstream.
        self.bytes().map(|b| std::str::from_utf8(b).unwrap_or(""))
    }
    pub(super) fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.u8()? {
            0 => self.str().map(Some),
            _ => Some(None),
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// The columns [`envelope_row`] reads, in order.
pub(super) const ENVELOPE_COLUMNS: &str = "stream_key, seq, event_id, event_type, instrument, \
    occurred_at_ns, ingested_at_ns, tenant_id, owner_id, workspace_id, project_id, trace_id, \
    causation_id, command_id, workflow_id, idempotency_key, payload";

/// One `events` row of [`ENVELOPE_COLUMNS`]; `None` when the data ends inside it.
pub(super) fn envelope_row(c: &mut Cur<'_>) -> Option<Result<Envelope>> {
    let stream = c.str()?;
    let seq = c.u64()?;
    let event_id = c.str()?;
    let event_type = c.str()?;
    let instrument = c.opt_str()?;
    let occurred_at = c.i64()?;
    let ingested_at = c.i64()?;
    let mut opt = [None; 9];
    for o in &mut opt {
        *o = c.opt_str()?;
    }
    let payload = c.str()?;
    let own = |o: Option<&str>| o.map(str::to_string);
    let body = serde_json::from_str::<Body>(&format!(
        "{{\"event_type\":{},\"payload\":{payload}}}",
        serde_json::Value::String(event_type.to_string())
    ))
    .map_err(|e| Error::BadEvent {
        stream: stream.to_string(),
        seq,
        message: format!("stored payload does not parse: {e}"),
    });
    Some(body.map(|body| Envelope {
        event_id: event_id.to_string(),
        stream_key: stream.to_string(),
        seq,
        occurred_at,
        ingested_at,
        instrument: own(instrument),
        tenancy: Tenancy {
            tenant_id: own(opt[0]),
            owner_id: own(opt[1]),
            workspace_id: own(opt[2]),
            project_id: own(opt[3]),
        },
        correlation: Correlation {
            trace_id: own(opt[4]),
            causation_id: own(opt[5]),
            command_id: own(opt[6]),
            workflow_id: own(opt[7]),
        },
        idempotency_key: own(opt[8]),
        body,
    }))
}

/// The records of one `event_runs` row (`first_seq`, `records`): (seq, time, record) each.
pub(super) fn run_records(
    first_seq: u64,
    records: &[u8],
    f: &mut crate::store::RecordSink<'_>,
) -> Result<u64> {
    let mut c = Cur::new(records);
    let mut seq = first_seq;
    while !c.is_empty() {
        let (Some(time), Some(len)) = (c.i64(), c.u32()) else {
            return Err(malformed_run(first_seq));
        };
        let Some(rec) = c.take(len as usize) else {
            return Err(malformed_run(first_seq));
        };
        f(seq, time, rec)?;
        seq += 1;
    }
    Ok(seq - first_seq)
}

fn malformed_run(first_seq: u64) -> Error {
    Error::ClickHouse {
        context: "reading packed events".into(),
        message: format!("the run from seq {first_seq} is malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Dec, VerdictName};
    use crate::store::clickhouse::rows::{RowWriter, encode, event_row};

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
    fn envelope_rows_read_back_whole_and_only_whole() {
        let events = vec![
            quote(1, 1_000),
            Envelope::new(
                "md:x",
                2,
                2_000,
                None,
                Body::RiskDecision {
                    client_order_id: 3,
                    decision: VerdictName::Deny,
                    reason_code: "limit".into(),
                },
            ),
        ];
        let enc = encode(&events, "a1").unwrap();
        assert_eq!(enc.events.rows, 2);
        assert_eq!(enc.typed[0].rows, 1);
        assert_eq!(enc.typed[5].rows, 1);
        // Drop the trailing append id of each row: what `read` selects.
        let mut body = Vec::new();
        for e in &events {
            let mut w = RowWriter::default();
            event_row(&mut w, e, "a1");
            let mut c = Cur::new(&w.buf);
            envelope_row(&mut c).unwrap().unwrap();
            body.extend_from_slice(&w.buf[..c.pos]);
        }
        let mut c = Cur::new(&body);
        let mut got = Vec::new();
        while !c.is_empty() {
            got.push(envelope_row(&mut c).unwrap().unwrap());
        }
        assert_eq!(got, events);
        // A row cut anywhere reads as "need more", never as a row.
        for cut in 0..body.len() / 2 {
            let mut c = Cur::new(&body[..cut]);
            assert!(envelope_row(&mut c).is_none(), "cut at {cut}");
        }
    }
}
