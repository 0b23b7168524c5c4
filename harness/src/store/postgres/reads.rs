//! Reading a PostgreSQL store: the `EventSource` impl. Stream listings come from the summary
//! tables; `read` and `query` select envelope rows; `read_records`, the replay path, streams
//! the `packed` column with `COPY ... TO STDOUT (FORMAT binary)` and parses it as it arrives
//! ([`CopyRows`]), so no JSONB is decoded.
//!
//! Invariants: reads of a stream filter `ingested_at` by the month bounds `stream_months`
//! gives ([`PgStore::month_bounds`]), so the planner prunes the other partitions; seqs read
//! must be consecutive ([`check_next`]): a hole is a damaged store, an error, never replayed
//! over; a store whose `packed` column has another codec layout is read through envelopes.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};

use super::PgStore;
use super::connect::pg;
use super::rows::{ENVELOPE_COLUMNS, clamp, envelope_of};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{EventQuery, EventSource, RecordSink, SeqRange, StoredSnapshot, StreamInfo};

/// A SQL string literal (connections set standard_conforming_strings on: no backslash escapes).
fn literal(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(Error::BadEvent {
            stream: s.replace('\0', "\\0"),
            seq: 0,
            message: "stream keys cannot contain NUL".into(),
        });
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// Seqs read must be consecutive: a hole is a damaged store, not something to replay over.
fn check_next(stream: &str, expect: &mut Option<u64>, seq: u64) -> Result<()> {
    if let Some(want) = *expect
        && seq != want
    {
        return Err(Error::SeqGap {
            stream: stream.to_string(),
            expected: want,
            got: seq,
        });
    }
    *expect = Some(seq + 1);
    Ok(())
}

impl PgStore {
    /// The bounds `[lo, hi)` (seconds since the epoch) of the months holding `range` of
    /// `stream`; `None` when it holds none of it. Reads filter `ingested_at` by them through
    /// `to_timestamp` (immutable, so the planner prunes the other partitions without opening
    /// them).
    async fn month_bounds(&self, stream: &str, range: SeqRange) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT extract(epoch FROM min(month)::timestamp)::bigint,
                    extract(epoch FROM (max(month) + interval '1 month')::timestamp)::bigint
             FROM stream_months WHERE stream_key = $1 AND last_seq >= $2 AND first_seq <= $3",
        )
        .bind(stream)
        .bind(clamp(range.from))
        .bind(clamp(range.to))
        .fetch_one(&self.pool)
        .await
        .map_err(pg(format!("locating stream {stream}")))?;
        let lo: Option<i64> = row.get(0);
        let hi: Option<i64> = row.get(1);
        Ok(lo.zip(hi))
    }
}

/// Parses `COPY ... (FORMAT binary)` output of `(seq bigint, occurred_at_ns bigint, packed bytea)`
/// rows as chunks arrive.
#[derive(Default)]
struct CopyRows {
    buf: Vec<u8>,
    header_done: bool,
    done: bool,
}

impl CopyRows {
    const SIGNATURE: &'static [u8] = b"PGCOPY\n\xff\r\n\0";

    fn feed(&mut self, chunk: &[u8], f: &mut RecordSink<'_>) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        let bad = |m: &str| Error::Postgres {
            context: "reading packed events".into(),
            message: format!("malformed COPY data: {m}"),
        };
        let mut pos = 0;
        let b = &self.buf;
        let i32_at = |p: usize| i32::from_be_bytes(b[p..p + 4].try_into().expect("4 bytes"));
        if !self.header_done {
            if b.len() < 19 {
                return Ok(());
            }
            if &b[..11] != Self::SIGNATURE {
                return Err(bad("signature"));
            }
            let ext = i32_at(15) as usize;
            if b.len() < 19 + ext {
                return Ok(());
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        loop {
            if b.len() < pos + 2 {
                break;
            }
            let fields = i16::from_be_bytes([b[pos], b[pos + 1]]);
            if fields == -1 {
                self.done = true;
                pos += 2;
                break;
            }
            if fields != 3 {
                return Err(bad("field count"));
            }
            // seq and time: length 8 each; packed: any length.
            if b.len() < pos + 2 + 24 + 4 {
                break;
            }
            if i32_at(pos + 2) != 8 || i32_at(pos + 14) != 8 {
                return Err(bad("integer width"));
            }
            let seq = i64::from_be_bytes(b[pos + 6..pos + 14].try_into().expect("8 bytes"));
            let time = i64::from_be_bytes(b[pos + 18..pos + 26].try_into().expect("8 bytes"));
            let len = i32_at(pos + 26);
            if len < 0 {
                return Err(bad("null record"));
            }
            let end = pos + 30 + len as usize;
            if b.len() < end {
                break;
            }
            f(seq as u64, time, &b[pos + 30..end])?;
            pos = end;
        }
        self.buf.drain(..pos);
        Ok(())
    }
}

impl EventSource for PgStore {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT c.stream_key, c.event_type, c.events, c.first_time, c.last_time,
                         s.last_seq,
                         (SELECT min(first_seq) FROM stream_months m WHERE m.stream_key = c.stream_key)
                     FROM stream_counts c JOIN stream_state s USING (stream_key)
                     ORDER BY c.stream_key, c.event_type",
                )
                .fetch_all(&self.pool),
            )
            .map_err(pg("listing streams"))?;
        let mut out: Vec<StreamInfo> = Vec::new();
        for r in rows {
            let key: String = r.get(0);
            let (first_time, last_time): (i64, i64) = (r.get(3), r.get(4));
            if out.last().is_none_or(|s| s.key != key) {
                out.push(StreamInfo {
                    key,
                    first_seq: r.get::<Option<i64>, _>(6).unwrap_or(1) as u64,
                    last_seq: r.get::<i64, _>(5) as u64,
                    first_time,
                    last_time,
                    counts: BTreeMap::new(),
                });
            }
            let s = out.last_mut().expect("pushed");
            s.first_time = s.first_time.min(first_time);
            s.last_time = s.last_time.max(last_time);
            s.counts.insert(r.get(1), r.get::<i64, _>(2) as u64);
        }
        Ok(out)
    }

    fn instruments(&self, stream: &str) -> Result<BTreeMap<u32, String>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT DISTINCT instrument FROM event_log
                     WHERE stream_key = $1 AND instrument IS NOT NULL ORDER BY 1",
                )
                .bind(stream)
                .fetch_all(&self.pool),
            )
            .map_err(pg(format!("listing the instruments of {stream}")))?;
        Ok(rows
            .iter()
            .map(|r| {
                let sym: String = r.get(0);
                (crate::event::instrument_id(&sym), sym)
            })
            .collect())
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        self.rt.block_on(async {
            let Some((lo, hi)) = self.month_bounds(stream, range).await? else {
                return Ok(());
            };
            let sql = format!(
                "SELECT {ENVELOPE_COLUMNS} FROM event_log
                 WHERE stream_key = $1 AND seq BETWEEN $2 AND $3
                     AND ingested_at >= to_timestamp($4) AND ingested_at < to_timestamp($5)
                 ORDER BY seq"
            );
            let mut rows = sqlx::query(AssertSqlSafe(sql))
                .bind(stream)
                .bind(clamp(range.from))
                .bind(clamp(range.to))
                .bind(lo as f64)
                .bind(hi as f64)
                .fetch(&self.pool);
            let mut expect: Option<u64> = None;
            while let Some(r) = rows
                .try_next()
                .await
                .map_err(|e| pg(format!("reading stream {stream}"))(e))?
            {
                let e = envelope_of(&r)?;
                check_next(stream, &mut expect, e.seq)?;
                f(e)?;
            }
            Ok(())
        })
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT seq, projector, state::text, guest_snapshot::text FROM snapshots
                     WHERE stream_key = $1 ORDER BY seq, projector",
                )
                .bind(stream)
                .fetch_all(&self.pool),
            )
            .map_err(pg(format!("reading snapshots of {stream}")))?;
        rows.iter()
            .map(|r| {
                let seq = r.get::<i64, _>(0) as u64;
                let parse = |s: &str| {
                    serde_json::from_str(s).map_err(|e| Error::BadEvent {
                        stream: stream.to_string(),
                        seq,
                        message: format!("stored snapshot does not parse: {e}"),
                    })
                };
                Ok(StoredSnapshot {
                    stream: stream.to_string(),
                    seq,
                    projector: r.get(1),
                    state: parse(r.get(2))?,
                    guest_snapshot: r.get::<Option<&str>, _>(3).map(parse).transpose()?,
                })
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }

    fn read_records(&self, stream: &str, range: SeqRange, f: &mut RecordSink<'_>) -> Result<()> {
        if !self.packed_current {
            return crate::store::records_from_envelopes(self, stream, range, f);
        }
        self.rt.block_on(async {
            let Some((lo, hi)) = self.month_bounds(stream, range).await? else {
                return Ok(());
            };
            // COPY takes no parameters: the values are literals (the key quoted, the rest
            // numbers and dates this code formatted).
            let sql = format!(
                "COPY (SELECT seq, occurred_at_ns, packed FROM event_log
                       WHERE stream_key = {} AND seq BETWEEN {} AND {}
                           AND ingested_at >= to_timestamp({lo}) AND ingested_at < to_timestamp({hi})
                       ORDER BY seq) TO STDOUT (FORMAT binary)",
                literal(stream)?,
                clamp(range.from),
                clamp(range.to),
            );
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(pg(format!("reading stream {stream}")))?;
            let mut chunks = conn
                .copy_out_raw(&sql)
                .await
                .map_err(pg(format!("reading stream {stream}")))?;
            let mut rows = CopyRows::default();
            let mut expect: Option<u64> = None;
            while let Some(chunk) = chunks
                .try_next()
                .await
                .map_err(|e| pg(format!("reading stream {stream}"))(e))?
            {
                rows.feed(&chunk, &mut |seq, time, rec| {
                    check_next(stream, &mut expect, seq)?;
                    f(seq, time, rec)
                })?;
            }
            if !rows.done {
                return Err(Error::Postgres {
                    context: format!("reading stream {stream}"),
                    message: "COPY data ended early".into(),
                });
            }
            Ok(())
        })
    }

    fn query(&self, q: &EventQuery, f: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        let like = q.stream.as_deref().map(|g| {
            let mut s = String::new();
            for c in g.chars() {
                match c {
                    '*' => s.push('%'),
                    '?' => s.push('_'),
                    '%' | '_' | '\\' => {
                        s.push('\\');
                        s.push(c);
                    }
                    c => s.push(c),
                }
            }
            s
        });
        let sql = format!(
            "SELECT {ENVELOPE_COLUMNS} FROM event_log
             WHERE ($1::text IS NULL OR stream_key LIKE $1)
               AND (cardinality($2::text[]) = 0 OR event_type = ANY($2))
               AND ($3::bigint IS NULL OR occurred_at_ns >= $3)
               AND ($4::bigint IS NULL OR occurred_at_ns <= $4)
               AND ($5::text IS NULL OR trace_id = $5)
               AND ($6::text IS NULL OR event_id = $6)
               AND ($7::jsonb IS NULL OR payload @> $7::jsonb)
               AND ($8::bigint IS NULL OR seq >= $8)
             ORDER BY stream_key, seq
             LIMIT $9"
        );
        self.rt.block_on(async {
            let mut rows = sqlx::query(AssertSqlSafe(sql))
                .bind(like)
                .bind(&q.event_types)
                .bind(q.from_time)
                .bind(q.to_time)
                .bind(&q.trace_id)
                .bind(&q.event_id)
                .bind(q.contains.as_ref().map(|c| c.to_string()))
                .bind(q.from_seq.map(clamp))
                .bind(clamp(q.limit as u64))
                .fetch(&self.pool);
            while let Some(r) = rows
                .try_next()
                .await
                .map_err(|e| pg("searching events")(e))?
            {
                f(envelope_of(&r)?)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal("a'b").unwrap(), "'a''b'");
        assert!(literal("a\0").is_err());
    }

    #[test]
    fn copy_rows_parse_across_chunk_boundaries() {
        let mut data = CopyRows::SIGNATURE.to_vec();
        data.extend(0i32.to_be_bytes());
        data.extend(0i32.to_be_bytes());
        for (seq, rec) in [(1i64, &b"abc"[..]), (2, &b""[..]), (3, &b"xyzw"[..])] {
            data.extend(3i16.to_be_bytes());
            data.extend(8i32.to_be_bytes());
            data.extend(seq.to_be_bytes());
            data.extend(8i32.to_be_bytes());
            data.extend((seq * 10).to_be_bytes());
            data.extend((rec.len() as i32).to_be_bytes());
            data.extend(rec);
        }
        data.extend((-1i16).to_be_bytes());
        for step in [1, 2, 7, data.len()] {
            let mut rows = CopyRows::default();
            let mut got = Vec::new();
            for chunk in data.chunks(step) {
                rows.feed(chunk, &mut |s, t, r| {
                    got.push((s, t, r.to_vec()));
                    Ok(())
                })
                .unwrap();
            }
            assert!(rows.done);
            assert_eq!(
                got,
                vec![
                    (1, 10, b"abc".to_vec()),
                    (2, 20, vec![]),
                    (3, 30, b"xyzw".to_vec())
                ]
            );
        }
    }
}
