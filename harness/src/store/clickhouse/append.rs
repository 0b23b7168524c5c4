//! Appends: under the stream's lock, compare what overlaps the committed end (duplicates or a
//! conflict), roll back a failed append's rows, write `events`, then the typed tables and
//! `event_runs`, then commit with a `batches` row (see the module doc of `clickhouse` for why
//! this is exactly-once). Also snapshots and quarantine, which are single inserts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::future::try_join_all;

use super::ChStore;
use super::connect::{ch, exec, scalar};
use super::lock::Lock;
use super::rows::{self, RowWriter, TYPED};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{AppendOutcome, AppendReport, Duplicate, SeqRange, StoredSnapshot};

/// Seqs of a run follow one another (from 1).
fn check_consecutive(run: &[Envelope]) -> Result<()> {
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
    Ok(())
}

/// When a record is quarantined, in ns: the wall clock (it orders quarantined records, reaches
/// no report), kept strictly increasing within this process.
fn received_ns() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}

/// How long a rollback may wait for its deletes.
const ROLLBACK_WAIT: Duration = Duration::from_secs(120);

/// What an append does with events at or below a stream's committed end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overlap {
    /// A run may overlap the end: its stored part is reported as duplicates, the rest stored
    /// (a writer's retry that also carries new events). [`ChStore::append`].
    Skip,
    /// A run is all duplicates, or starts right after the end: anything else is refused, as
    /// PostgreSQL's exact append does. The `EventSink` append (copies, imports).
    WholeRuns,
}

/// One run of one stream in a batch, planned under the locks.
struct Planned {
    outcome: AppendOutcome,
    /// The run's new events, encoded (none: all duplicates).
    fresh: Option<rows::Encoded>,
}

impl ChStore {
    /// Appends events carrying their own seqs. A run that overlaps its stream's committed end
    /// reports what is stored as duplicates and stores the rest; events that differ from what
    /// is stored at their seqs are [`Error::Conflict`] (another writer got there first:
    /// renumber and retry). The batch is all or nothing, over all its streams. Takes `&self`:
    /// writers may share a store across threads.
    pub fn append(&self, events: &[Envelope]) -> Result<AppendReport> {
        self.append_batch(events, Overlap::Skip)
    }

    /// [`ChStore::append`] where each run is either all stored already (duplicates) or
    /// continues its stream exactly: a run overlapping the end only in part is
    /// [`Error::Conflict`], as in PostgreSQL's `append_exact`. What `EventSink::append` does.
    pub fn append_exact(&self, events: &[Envelope]) -> Result<AppendReport> {
        self.append_batch(events, Overlap::WholeRuns)
    }

    pub(super) fn append_events(&self, events: &[Envelope]) -> Result<AppendReport> {
        self.append_exact(events)
    }

    /// The batch's runs are checked (consecutive seqs) and encoded before any lock, so bad
    /// input writes nothing and holds nobody up; then every stream of the batch is locked, in
    /// key order (two writers of overlapping sets queue instead of deadlocking), planned,
    /// written, and committed by one insert into `batches`.
    fn append_batch(&self, events: &[Envelope], mode: Overlap) -> Result<AppendReport> {
        let mut runs = Vec::new();
        let mut offset = 0;
        for run in events.chunk_by(|a, b| a.stream_key == b.stream_key) {
            check_consecutive(run)?;
            runs.push((offset, run, rows::encode(run, rows::APPEND_ID_SLOT)?));
            offset += run.len();
        }
        if runs.is_empty() {
            return Ok(AppendReport::default());
        }
        let streams: BTreeSet<&str> = events.iter().map(|e| e.stream_key.as_str()).collect();
        self.rt.block_on(async {
            let mut locks = BTreeMap::new();
            let mut result = Ok(AppendReport::default());
            for stream in streams {
                match self.lock(stream).await {
                    Ok(l) => {
                        locks.insert(stream, l);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_ok() {
                result = self.append_locked(runs, &locks, mode).await;
            }
            let mut released = Ok(());
            for lock in locks.values() {
                let r = self.unlock(lock).await;
                released = released.and(r);
            }
            let report = result?;
            released?;
            Ok(report)
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
        runs: Vec<(usize, &[Envelope], rows::Encoded)>,
        locks: &BTreeMap<&str, Lock>,
        mode: Overlap,
    ) -> Result<AppendReport> {
        let mut committed = BTreeMap::new();
        for &stream in locks.keys() {
            committed.insert(stream, self.committed_last(stream).await?);
        }
        // Each stream's end as the batch's earlier runs leave it.
        let mut end = committed.clone();
        let mut planned = Vec::with_capacity(runs.len());
        for (offset, run, enc) in runs {
            let stream = run[0].stream_key.as_str();
            let last = end[stream];
            let p = self
                .plan(
                    run,
                    offset,
                    enc,
                    last,
                    committed[stream],
                    mode,
                    &locks[stream],
                )
                .await?;
            end.insert(stream, p.outcome.last_seq);
            planned.push(p);
        }
        let mut all = rows::Encoded::default();
        let mut commits = Vec::new();
        for p in &mut planned {
            if let Some(enc) = p.fresh.take() {
                all.absorb(enc);
                commits.push(&p.outcome);
            }
        }
        if commits.is_empty() {
            return Ok(AppendReport {
                streams: planned.into_iter().map(|p| p.outcome).collect(),
            });
        }
        for (&stream, &last) in &committed {
            if end[stream] > last && self.rows_past(stream, last).await? > 0 {
                self.rollback(stream, last).await?;
            }
        }
        // `events` first: a failed append's rows elsewhere imply rows here (what `rows_past`
        // looks for).
        self.insert("events", all.events).await?;
        let mut rest: Vec<_> = TYPED
            .iter()
            .zip(all.typed)
            .filter(|(_, w)| w.rows > 0)
            .map(|(t, w)| self.insert(t, w))
            .collect();
        rest.push(self.insert("event_runs", all.runs));
        try_join_all(rest).await?;
        for (stream, lock) in locks {
            if !self.still_held(lock).await? {
                return Err(Error::ClickHouse {
                    context: format!("appending to stream {stream}"),
                    message: format!(
                        "this append outlived its {} s lease and another writer took the stream; nothing was committed: re-read and retry",
                        self.lease_secs
                    ),
                });
            }
        }
        self.commit(&commits, locks).await?;
        Ok(AppendReport {
            streams: planned.into_iter().map(|p| p.outcome).collect(),
        })
    }

    /// Plans one run against its stream's end `last` (`committed` of it is stored): which
    /// events are duplicates (indexed from the batch's start, `offset`), which are new, or why
    /// the run is refused.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        run: &[Envelope],
        offset: usize,
        enc: rows::Encoded,
        last: u64,
        committed: u64,
        mode: Overlap,
        lock: &Lock,
    ) -> Result<Planned> {
        let stream = run[0].stream_key.as_str();
        let first = run[0].seq;
        let run_last = run[run.len() - 1].seq;
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
        // What overlaps the end must be exactly what is stored.
        let overlap = (last.min(run_last) + 1).saturating_sub(first) as usize;
        let partial = overlap > 0 && overlap < run.len();
        if (partial && mode == Overlap::WholeRuns)
            || (overlap > 0 && first + overlap as u64 - 1 > committed)
        {
            // Part of the run over, part not; or it overlaps what this batch itself adds.
            return Err(conflict());
        }
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
                    index: offset + i,
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
            return Ok(Planned {
                outcome: AppendOutcome {
                    stream: stream.to_string(),
                    appended: 0,
                    first_seq: None,
                    last_seq: last,
                    duplicates,
                },
                fresh: None,
            });
        }
        let mut enc = if overlap > 0 {
            rows::encode(fresh, rows::APPEND_ID_SLOT)?
        } else {
            enc
        };
        enc.set_append_id(&lock.owner);
        Ok(Planned {
            outcome: AppendOutcome {
                stream: stream.to_string(),
                appended: fresh.len() as u64,
                first_seq: Some(fresh[0].seq),
                last_seq: fresh[fresh.len() - 1].seq,
                duplicates,
            },
            fresh: Some(enc),
        })
    }

    /// Commits the batch: one insert (one block, written whole or not at all) of a `batches`
    /// row per stored run.
    async fn commit(&self, stored: &[&AppendOutcome], locks: &BTreeMap<&str, Lock>) -> Result<()> {
        let mut w = rows::RowWriter::default();
        for o in stored {
            let first = o.first_seq.expect("a stored run has a first seq");
            rows::batch_row(
                &mut w,
                &o.stream,
                first,
                o.last_seq,
                &locks[o.stream.as_str()].owner,
            );
        }
        let streams: Vec<&str> = stored.iter().map(|o| o.stream.as_str()).collect();
        let ctx = || format!("committing the append to {}", streams.join(", "));
        let mut ins = self.client.insert_formatted_with(
            "INSERT INTO batches (stream_key, first_seq, last_seq, append_id, events) FORMAT RowBinary",
        );
        ins.send(bytes::Bytes::from(w.buf))
            .await
            .map_err(ch(ctx()))?;
        ins.end().await.map_err(ch(ctx()))
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
                    .query("INSERT INTO quarantine (source, record, received_ns) VALUES (?, ?, ?)")
                    .bind(source)
                    .bind(record.to_string())
                    .bind(received_ns())
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
