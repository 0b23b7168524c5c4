//! Events as PostgreSQL rows, both ways: a batch as column arrays for `unnest` ([`Rows`], and
//! the [`Projected`] subset projection updates read), and a selected row back to an
//! [`Envelope`] ([`ENVELOPE_COLUMNS`], [`envelope_of`]).
//!
//! Invariants: [`Rows::new`] validates and encodes the whole batch before any SQL runs, so bad
//! input writes nothing; every column array of a `Rows` has one entry per event, in batch
//! order; seqs are clamped to bigint ([`clamp`]) and months are UTC at the microsecond
//! precision of `ingested_at` ([`month_of`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tapedeck_guest::codec::EventBatchWriter;

use super::keys::{derive_key, payload_value};
use crate::error::{Error, Result};
use crate::event::{Body, Correlation, Envelope, StreamEncoder, Tenancy};

/// Event types some projection reads (`projections.rs` runs one statement per table over
/// the rows of these types).
pub(super) const PROJECTED: &[&str] = &[
    "order_submitted",
    "order_acked",
    "order_rejected",
    "order_cancelled",
    "fill",
    "position",
    "balance",
];

/// A seq as PostgreSQL's bigint (saturating).
pub(super) fn clamp(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

/// `YYYY-MM-01` of the UTC month holding `ns`, at the microsecond precision of `ingested_at`.
pub(super) fn month_of(ns: i64) -> String {
    let day = crate::time::day_of(ns.div_euclid(1000) * 1000);
    format!("{}-01", &day[..7])
}

/// The `ev` relation of the projection updates, as column arrays.
#[derive(Default)]
pub(super) struct Projected {
    pub(super) seq: Vec<i64>,
    pub(super) event_type: Vec<String>,
    pub(super) instrument: Vec<Option<String>>,
    pub(super) tenant_id: Vec<Option<String>>,
    pub(super) event_id: Vec<String>,
    pub(super) payload: Vec<String>,
    pub(super) occurred: Vec<i64>,
}

/// A batch as column arrays for `unnest`.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) event_id: Vec<String>,
    pub(super) seq: Vec<i64>,
    pub(super) event_type: Vec<String>,
    pub(super) instrument: Vec<Option<String>>,
    pub(super) occurred: Vec<i64>,
    pub(super) ingested: Vec<i64>,
    pub(super) tenant_id: Vec<Option<String>>,
    pub(super) owner_id: Vec<Option<String>>,
    pub(super) workspace_id: Vec<Option<String>>,
    pub(super) project_id: Vec<Option<String>>,
    pub(super) trace_id: Vec<Option<String>>,
    pub(super) causation_id: Vec<Option<String>>,
    pub(super) command_id: Vec<Option<String>>,
    pub(super) workflow_id: Vec<Option<String>>,
    /// SHA-256 of the idempotency key (given or derived).
    pub(super) key_hash: Vec<Vec<u8>>,
    /// The key as the writer gave it (NULL when derived).
    pub(super) given_key: Vec<Option<String>>,
    pub(super) payload: Vec<String>,
    pub(super) packed: Vec<Vec<u8>>,
}

/// Per month (first, last seq); per type (count, first, last time); per command (seqs).
pub(super) type Summaries = (
    (Vec<String>, Vec<i64>, Vec<i64>),
    (Vec<String>, Vec<i64>, Vec<i64>, Vec<i64>),
    (Vec<String>, Vec<i64>, Vec<i64>),
);

impl Rows {
    /// Validates and encodes a batch (before any SQL runs: bad input writes nothing).
    pub(super) fn new(stream: &str, events: &[Envelope]) -> Result<Rows> {
        let mut r = Rows::default();
        let mut enc = StreamEncoder::new(0);
        let mut scratch = Vec::new();
        for e in events {
            if e.stream_key != stream {
                return Err(Error::BadEvent {
                    stream: e.stream_key.clone(),
                    seq: e.seq,
                    message: format!("in a batch for stream {stream}"),
                });
            }
            let mut w = EventBatchWriter::new(std::mem::take(&mut scratch));
            enc.encode(e, &mut w)?;
            r.packed
                .push(w.records().next().expect("one record").to_vec());
            scratch = w.finish();
            let payload = payload_value(&e.body);
            let text = payload.to_string();
            let key = match &e.idempotency_key {
                Some(k) => k.clone(),
                None => derive_key(e, &payload, &text),
            };
            let Tenancy {
                tenant_id,
                owner_id,
                workspace_id,
                project_id,
            } = e.tenancy.clone();
            let Correlation {
                trace_id,
                causation_id,
                command_id,
                workflow_id,
            } = e.correlation.clone();
            r.event_id.push(e.event_id.clone());
            r.seq.push(clamp(e.seq));
            r.event_type.push(e.body.event_type().to_string());
            r.instrument.push(e.instrument.clone());
            r.occurred.push(e.occurred_at);
            r.ingested.push(e.ingested_at);
            r.tenant_id.push(tenant_id);
            r.owner_id.push(owner_id);
            r.workspace_id.push(workspace_id);
            r.project_id.push(project_id);
            r.trace_id.push(trace_id);
            r.causation_id.push(causation_id);
            r.command_id.push(command_id);
            r.workflow_id.push(workflow_id);
            r.key_hash.push(Sha256::digest(key.as_bytes()).to_vec());
            r.given_key.push(e.idempotency_key.clone());
            r.payload.push(text);
        }
        Ok(r)
    }

    /// Keeps the rows at `keep` (ascending), numbering them from `last + 1`.
    pub(super) fn retain(&mut self, keep: &[usize], last: u64) {
        fn pick<T>(v: &mut Vec<T>, keep: &[usize]) {
            let mut i = 0;
            let mut k = keep.iter().peekable();
            v.retain(|_| {
                let hit = k.peek() == Some(&&i);
                if hit {
                    k.next();
                }
                i += 1;
                hit
            });
        }
        pick(&mut self.event_id, keep);
        pick(&mut self.event_type, keep);
        pick(&mut self.instrument, keep);
        pick(&mut self.occurred, keep);
        pick(&mut self.ingested, keep);
        pick(&mut self.tenant_id, keep);
        pick(&mut self.owner_id, keep);
        pick(&mut self.workspace_id, keep);
        pick(&mut self.project_id, keep);
        pick(&mut self.trace_id, keep);
        pick(&mut self.causation_id, keep);
        pick(&mut self.command_id, keep);
        pick(&mut self.workflow_id, keep);
        pick(&mut self.key_hash, keep);
        pick(&mut self.given_key, keep);
        pick(&mut self.payload, keep);
        pick(&mut self.packed, keep);
        self.seq = (1..=keep.len() as i64).map(|n| last as i64 + n).collect();
    }

    /// The rows projections read, as the `ev` columns.
    pub(super) fn projected(&self) -> Projected {
        let mut ev = Projected::default();
        for i in 0..self.seq.len() {
            if PROJECTED.contains(&self.event_type[i].as_str()) {
                ev.seq.push(self.seq[i]);
                ev.event_type.push(self.event_type[i].clone());
                ev.instrument.push(self.instrument[i].clone());
                ev.tenant_id.push(self.tenant_id[i].clone());
                ev.event_id.push(self.event_id[i].clone());
                ev.payload.push(self.payload[i].clone());
                ev.occurred.push(self.occurred[i]);
            }
        }
        ev
    }

    /// Per month (first, last seq); per type (count, first, last time); per command (seqs).
    pub(super) fn summaries(&self) -> Summaries {
        let mut months: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut types: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        let mut commands: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for i in 0..self.seq.len() {
            let seq = self.seq[i];
            let m = months
                .entry(month_of(self.ingested[i]))
                .or_insert((seq, seq));
            m.1 = seq;
            let t = self.occurred[i];
            let c = types
                .entry(&self.event_type[i])
                .or_insert((0, i64::MAX, i64::MIN));
            *c = (c.0 + 1, c.1.min(t), c.2.max(t));
            if let Some(cmd) = &self.command_id[i] {
                commands.entry(cmd).or_insert((seq, seq)).1 = seq;
            }
        }
        let mut m = (Vec::new(), Vec::new(), Vec::new());
        for (k, (f, l)) in months {
            m.0.push(k);
            m.1.push(f);
            m.2.push(l);
        }
        let mut t = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (k, (n, f, l)) in types {
            t.0.push(k.to_string());
            t.1.push(n);
            t.2.push(f);
            t.3.push(l);
        }
        let mut c = (Vec::new(), Vec::new(), Vec::new());
        for (k, (f, l)) in commands {
            c.0.push(k.to_string());
            c.1.push(f);
            c.2.push(l);
        }
        (m, t, c)
    }
}

/// The envelope columns, in the order [`envelope_of`] reads them.
pub(super) const ENVELOPE_COLUMNS: &str = "event_id, stream_key, seq, event_type, instrument, occurred_at_ns, \
    ingested_at_ns, tenant_id, owner_id, workspace_id, project_id, trace_id, causation_id, \
    command_id, workflow_id, idempotency_key, payload::text";

/// The event a row of [`ENVELOPE_COLUMNS`] holds.
pub(super) fn envelope_of(r: &PgRow) -> Result<Envelope> {
    let stream: String = r.get(1);
    let seq = r.get::<i64, _>(2) as u64;
    let event_type: String = r.get(3);
    let payload: String = r.get(16);
    let body: Body = serde_json::from_str(&format!(
        "{{\"event_type\":{},\"payload\":{payload}}}",
        serde_json::Value::String(event_type)
    ))
    .map_err(|e| Error::BadEvent {
        stream: stream.clone(),
        seq,
        message: format!("stored payload does not parse: {e}"),
    })?;
    Ok(Envelope {
        event_id: r.get(0),
        stream_key: stream,
        seq,
        occurred_at: r.get(5),
        ingested_at: r.get(6),
        instrument: r.get(4),
        tenancy: Tenancy {
            tenant_id: r.get(7),
            owner_id: r.get(8),
            workspace_id: r.get(9),
            project_id: r.get(10),
        },
        correlation: Correlation {
            trace_id: r.get(11),
            causation_id: r.get(12),
            command_id: r.get(13),
            workflow_id: r.get(14),
        },
        idempotency_key: r.get(15),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        assert_eq!(month_of(0), "1970-01-01");
        // 2024-02-29T23:59:59.9999995Z is still February at microsecond precision.
        assert_eq!(month_of(1_709_251_199_999_999_500), "2024-02-01");
        assert_eq!(month_of(1_709_251_200_000_000_000), "2024-03-01");
    }
}
