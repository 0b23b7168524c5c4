//! Appends: under the stream's lock, compare what overlaps the committed end (duplicates or a
//! conflict), roll back a failed append's rows, write `events`, then the typed tables and
//! `event_runs`, then commit with a `batches` row (see the module doc of `clickhouse` for why
//! this is exactly-once). Also snapshots and quarantine, which are single inserts.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::ChStore;
use super::connect::{ch, exec, scalar};
use super::lock::Lock;
use super::rows::{self, RowWriter, TYPED};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{AppendOutcome, AppendReport, Duplicate, SeqRange, StoredSnapshot};

/// How long a rollback may wait for its deletes.
const ROLLBACK_WAIT: Duration = Duration::from_secs(120);

impl ChStore {
    /// Appends events carrying their own seqs, run by run of one stream (each run under that
    /// stream's lock, committed on its own). Events the stream holds already are reported as
    /// duplicates and not stored again; events that differ from what is stored at their seqs
    /// are [`Error::Conflict`]. Takes `&self`: writers may share a store across threads.
    pub fn append(&self, events: &[Envelope]) -> Result<AppendReport> {
        let mut streams = Vec::new();
        for run in events.chunk_by(|a, b| a.stream_key == b.stream_key) {
            streams.push(self.append_run(run)?);
        }
        Ok(AppendReport { streams })
    }

    pub(super) fn append_events(&self, events: &[Envelope]) -> Result<AppendReport> {
        self.append(events)
    }

    fn append_run(&self, run: &[Envelope]) -> Result<AppendOutcome> {
        let stream = run[0].stream_key.as_str();
        let mut prev = run[0].seq.checked_sub(1).ok_or_else(|| Error::SeqGap {
            stream: stream.to_string(),
            expected: 1,
            got: 0,
        })?;
        for e in run {
            if e.seq != prev + 1 {
                return Err(Error::SeqGap {
                    stream: stream.to_string(),
                    expected: prev + 1,
                    got: e.seq,
                });
            }
            prev = e.seq;
        }
        // Encoded before the lock (bad input writes nothing and holds nobody up); the append id
        // is set once the lock, whose owner id it is, is taken.
        let enc = rows::encode(run, rows::APPEND_ID_SLOT)?;
        self.rt.block_on(async {
            let lock = self.lock(stream).await?;
            let result = self.append_locked(stream, run, enc, &lock).await;
            let released = self.unlock(&lock).await;
            let outcome = result?;
            released?;
            Ok(outcome)
        })
    }

    /// The greatest committed seq of `stream` (0 when it has none).
    pub(super) async fn committed_last(&self, stream: &str) -> Result<u64> {
        scalar(
            self.client
                .query("SELECT max(last_seq) FROM batches WHERE stream_key = ?")
                .bind(stream),
            &format!("reading the end of stream {stream}"),
        )
        .await
    }

    async fn append_locked(
        &self,
        stream: &str,
        run: &[Envelope],
        enc: rows::Encoded,
        lock: &Lock,
    ) -> Result<AppendOutcome> {
        let last = self.committed_last(stream).await?;
        let first = run[0].seq;
        if first > last + 1 {
            return Err(Error::SeqGap {
                stream: stream.to_string(),
                expected: last + 1,
                got: first,
            });
        }
        let conflict = || Error::Conflict {
            stream: stream.to_string(),
            expected: first - 1,
            actual: last,
        };
        // What overlaps the committed end must be exactly what is stored.
        let overlap = (last.min(run[run.len() - 1].seq) + 1).saturating_sub(first) as usize;
        let mut duplicates = Vec::with_capacity(overlap);
        if overlap > 0 {
            let range = SeqRange {
                from: first,
                to: first + overlap as u64 - 1,
            };
            let mut same = true;
            self.envelopes(stream, range, &mut |e| {
                let i = (e.seq - first) as usize;
                same &= run.get(i) == Some(&e);
                duplicates.push(Duplicate {
                    index: i,
                    event_id: e.event_id,
                    seq: e.seq,
                });
                Ok(())
            })
            .await?;
            if !same || duplicates.len() != overlap {
                return Err(conflict());
            }
        }
        let fresh = &run[overlap..];
        if fresh.is_empty() {
            return Ok(AppendOutcome {
                stream: stream.to_string(),
                appended: 0,
                first_seq: None,
                last_seq: last,
                duplicates,
            });
        }
        let mut enc = if overlap > 0 {
            rows::encode(fresh, rows::APPEND_ID_SLOT)?
        } else {
            enc
        };
        enc.set_append_id(&lock.owner);
        if self.rows_past(stream, last).await? > 0 {
            self.rollback(stream, last).await?;
        }
        // `events` first: a failed append's rows elsewhere imply rows here (what `rows_past`
        // looks for).
        self.insert("events", enc.events).await?;
        let mut rest: Vec<_> = TYPED
            .iter()
            .zip(enc.typed)
            .filter(|(_, w)| w.rows > 0)
            .map(|(t, w)| self.insert(t, w))
            .collect();
        rest.push(self.insert("event_runs", enc.runs));
        try_join_all(rest).await?;
        if !self.still_held(lock).await? {
            return Err(Error::ClickHouse {
                context: format!("appending to stream {stream}"),
                message: format!(
                    "this append outlived its {} s lease and another writer took the stream; nothing was committed: re-read and retry",
                    self.lease_secs
                ),
            });
        }
        let new_last = fresh[fresh.len() - 1].seq;
        self.client
            .query(
                "INSERT INTO batches (stream_key, first_seq, last_seq, append_id, events) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(stream)
            .bind(fresh[0].seq)
            .bind(new_last)
            .bind(&lock.owner)
            .bind(fresh.len() as u64)
            .execute()
            .await
            .map_err(ch(format!("committing the append to stream {stream}")))?;
        Ok(AppendOutcome {
            stream: stream.to_string(),
            appended: fresh.len() as u64,
            first_seq: Some(fresh[0].seq),
            last_seq: new_last,
            duplicates,
        })
    }

    /// Inserts a RowBinary body into `table`.
    async fn insert(&self, table: &str, w: RowWriter) -> Result<()> {
        if w.rows == 0 {
            return Ok(());
        }
        let ctx = || format!("inserting {} rows into {table}", w.rows);
        let mut ins = self
            .client
            .insert_formatted_with(format!("INSERT INTO {table} FORMAT RowBinary"));
        ins.send(bytes::Bytes::from(w.buf))
            .await
            .map_err(ch(ctx()))?;
        ins.end().await.map_err(ch(ctx()))
    }

    /// Deletes the rows of `stream` past `last` (a failed append's) from every table and waits
    /// until they are gone. `events` goes last: while any table still holds such rows, so does
    /// `events`, where the next writer looks.
    async fn rollback(&self, stream: &str, last: u64) -> Result<()> {
        let ctx = format!("rolling back a failed append to stream {stream}");
        let mut tables: Vec<(&str, &str)> = TYPED.iter().map(|t| (*t, "seq")).collect();
        tables.push(("event_runs", "last_seq"));
        tables.push(("events", "seq"));
        for (table, col) in tables {
            self.client
                .query(&format!(
                    "ALTER TABLE {table} DELETE WHERE stream_key = ? AND {col} > ?"
                ))
                .bind(stream)
                .bind(last)
                .execute()
                .await
                .map_err(ch(ctx.clone()))?;
            self.wait_for_mutations(&ctx).await?;
        }
        Ok(())
    }

    async fn wait_for_mutations(&self, ctx: &str) -> Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            let pending = scalar(
                self.client.query(
                    "SELECT count() FROM system.mutations \
                     WHERE database = currentDatabase() AND is_done = 0",
                ),
                ctx,
            )
            .await?;
            if pending == 0 {
                return Ok(());
            }
            if start.elapsed() > ROLLBACK_WAIT {
                return Err(Error::ClickHouse {
                    context: ctx.to_string(),
                    message: format!(
                        "deletes still pending after {} s (see system.mutations)",
                        ROLLBACK_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn store_snapshot(&self, s: &StoredSnapshot) -> Result<()> {
        self.rt.block_on(async {
            let last = self.committed_last(&s.stream).await?;
            if s.seq == 0 || s.seq > last {
                return Err(Error::BadEvent {
                    stream: s.stream.clone(),
                    seq: s.seq,
                    message: format!("snapshot past the end of the stream (last seq {last})"),
                });
            }
            self.client
                .query(
                    "INSERT INTO snapshots (stream_key, seq, projector, state, guest_snapshot) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&s.stream)
                .bind(s.seq)
                .bind(&s.projector)
                .bind(s.state.to_string())
                .bind(s.guest_snapshot.as_ref().map(|g| g.to_string()))
                .execute()
                .await
                .map_err(ch(format!(
                    "storing the {} snapshot of {} at seq {}",
                    s.projector, s.stream, s.seq
                )))
        })
    }

    pub(super) fn store_quarantine(
        &self,
        source: &str,
        record: &serde_json::Value,
    ) -> Result<String> {
        self.rt
            .block_on(
                self.client
                    .query("INSERT INTO quarantine (source, record) VALUES (?, ?)")
                    .bind(source)
                    .bind(record.to_string())
                    .execute(),
            )
            .map_err(ch(format!("quarantining a {source} record")))?;
        Ok(format!(
            "table quarantine of {} (source {source})",
            self.uri
        ))
    }

    /// Runs one statement on this store's database (tests and benches).
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.rt.block_on(exec(&self.client, sql))
    }
}
