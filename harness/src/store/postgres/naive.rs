//! The naive reader `tapedeck bench postgres` measures the COPY path against: what reading the
//! log with sqlx costs when done the obvious way. Replay uses the store itself; this exists so
//! the bench's ratio is measured in the same run against a real peer.
//!
//! What it does: the rows `read` selects (one stream, a seq range, in seq order), without the
//! month pruning and the seq-gap check, row by row, each JSONB payload decoded into a
//! `serde_json::Value` and from that into the typed body; only the fields replay uses are
//! filled (ids, seq, times, instrument, body). Everything but `read` is delegated to the store.

use futures_util::TryStreamExt;
use sqlx::Row;

use super::PgStore;
use super::connect::pg;
use super::rows::clamp;
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{EventSource, SeqRange, StoredSnapshot, StreamInfo};

/// The baseline `tapedeck bench postgres` compares the COPY path against: sqlx row by row, the
/// payload decoded from JSONB into a `serde_json::Value` and from that into the typed body;
/// everything else delegated to the store it wraps.
pub struct NaiveReader<'a>(pub &'a PgStore);

impl EventSource for NaiveReader<'_> {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        self.0.streams()
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        use sqlx::types::Json;
        self.0.rt.block_on(async {
            let mut rows = sqlx::query(
                "SELECT event_id, seq, occurred_at_ns, ingested_at_ns, instrument, event_type, payload
                 FROM event_log WHERE stream_key = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            )
            .bind(stream)
            .bind(clamp(range.from))
            .bind(clamp(range.to))
            .fetch(&self.0.pool);
            while let Some(r) = rows
                .try_next()
                .await
                .map_err(|e| pg(format!("naive read of {stream}"))(e))?
            {
                let Json(payload): Json<serde_json::Value> = r.get(6);
                let event_type: String = r.get(5);
                let seq = r.get::<i64, _>(1) as u64;
                let body = serde_json::from_value(serde_json::json!({
                    "event_type": event_type, "payload": payload
                }))
                .map_err(|e| Error::BadEvent {
                    stream: stream.to_string(),
                    seq,
                    message: e.to_string(),
                })?;
                let mut e = Envelope::new(
                    stream,
                    seq,
                    r.get(2),
                    r.get::<Option<&str>, _>(4),
                    body,
                );
                e.event_id = r.get(0);
                e.ingested_at = r.get(3);
                f(e)?;
            }
            Ok(())
        })
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        self.0.snapshots(stream)
    }

    fn describe(&self) -> String {
        format!("{} (naive reader)", self.0.describe())
    }
}
