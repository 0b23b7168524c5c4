//! Writing to a PostgreSQL store: [`PgStore::append`] and its transaction, `append_exact` for
//! events that carry their seqs, and the `EventSink` impl (snapshots, quarantine).
//!
//! Invariants: one append (of one stream, or `append_exact` of a batch over several) is one
//! transaction holding the streams' `stream_state` row locks, so
//! seqs are gap-free and writers of one stream serialize; an event whose idempotency key is
//! stored already is reported as a duplicate, never stored twice; any error (a stale
//! `expected`, a seq that does not fit, a bad snapshot, a failed statement) drops the
//! transaction, so nothing of the batch is written. The transaction's steps are the private
//! fns below, in the order `append_steps` runs them.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgConnection, Row};

use super::connect::pg;
use super::projections::update_projections;
use super::rows::Rows;
use super::{AppendOptions, PgStore};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{AppendOutcome, AppendReport, Duplicate, EventSink, StoredSnapshot};

impl PgStore {
    /// Appends `events` (all of `stream`) in one transaction with the projection updates and
    /// the optional snapshot. Events whose idempotency key is stored already are not stored
    /// again: they are reported in [`AppendOutcome::duplicates`] with the stored id. A batch of
    /// nothing but duplicates succeeds whatever `expected` says (it is a retry of a committed
    /// batch); otherwise a stale `expected` is [`Error::Conflict`] and nothing is written.
    /// The others get the seqs after the stream's last, in order.
    pub fn append(
        &self,
        stream: &str,
        events: &[Envelope],
        opts: AppendOptions<'_>,
    ) -> Result<AppendOutcome> {
        let rows = Rows::new(stream, events)?;
        self.ensure_partitions(events)?;
        self.rt.block_on(async {
            let mut tx = self.pool.begin().await.map_err(pg(ctx(stream, "begin")))?;
            let outcome = append_steps(&mut tx, stream, events, rows, opts).await?;
            if outcome.appended == 0 {
                tx.rollback().await.map_err(pg(ctx(stream, "rollback")))?;
            } else {
                tx.commit().await.map_err(pg(ctx(stream, "commit")))?;
            }
            Ok(outcome)
        })
    }

    /// Appends events carrying their own seqs (copies, imports, `events append`), all in one
    /// transaction: each run of one stream must continue its stream exactly, or nothing of the
    /// batch is written. The batch's streams are locked first, in key order, so two writers of
    /// overlapping sets of streams queue instead of deadlocking.
    pub fn append_exact(&self, events: &[Envelope]) -> Result<Vec<AppendOutcome>> {
        let mut runs = Vec::new();
        let mut offset = 0;
        for run in events.chunk_by(|a, b| a.stream_key == b.stream_key) {
            runs.push((offset, run, Rows::new(&run[0].stream_key, run)?));
            offset += run.len();
        }
        let Some((_, first, _)) = runs.first() else {
            return Ok(Vec::new());
        };
        let what = format!("appending a batch of {} events", events.len());
        let tenant = first.iter().find_map(|e| e.tenancy.tenant_id.as_deref());
        self.ensure_partitions(events)?;
        self.rt.block_on(async {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(pg(format!("{what}: begin")))?;
            if runs.len() > 1 {
                let streams: BTreeSet<&str> = events.iter().map(|e| &*e.stream_key).collect();
                for stream in streams {
                    lock_stream(&mut tx, stream, tenant).await?;
                }
            }
            let mut out = Vec::with_capacity(runs.len());
            for (offset, run, rows) in runs {
                let opts = AppendOptions {
                    expected: Some(run[0].seq.saturating_sub(1)),
                    exact_seqs: true,
                    snapshot: None,
                };
                let mut outcome =
                    append_steps(&mut tx, &run[0].stream_key, run, rows, opts).await?;
                for d in &mut outcome.duplicates {
                    d.index += offset;
                }
                out.push(outcome);
            }
            tx.commit().await.map_err(pg(format!("{what}: commit")))?;
            Ok(out)
        })
    }
}

/// The steps of an append to one stream, inside the caller's transaction. An error leaves the
/// transaction to be dropped: rolled back, nothing written.
async fn append_steps(
    tx: &mut PgConnection,
    stream: &str,
    events: &[Envelope],
    mut rows: Rows,
    opts: AppendOptions<'_>,
) -> Result<AppendOutcome> {
    let tenant = events.iter().find_map(|e| e.tenancy.tenant_id.as_deref());
    let last = lock_stream(tx, stream, tenant).await?;

    let (candidates, repeats) = first_of_each_key(&rows.key_hash);
    let stored = claim_keys(tx, stream, &rows, &candidates, last).await?;
    let plan = Plan::new(&rows, &candidates, &repeats, &stored, last);
    if plan.keep.is_empty() {
        // A retry of a committed batch: nothing to write.
        return Ok(plan.into_outcome(stream, last));
    }
    check_expected(stream, opts.expected, last)?;
    if opts.exact_seqs {
        check_exact_seqs(stream, events, &plan, last)?;
    }
    if !stored.is_empty() {
        renumber_keys(tx, stream, &rows, &plan.keep, last).await?;
    }

    rows.retain(&plan.keep, last);
    let new_last = last + plan.keep.len() as u64;
    insert_rows(tx, stream, &rows).await?;
    update_stream_state(tx, stream, new_last, tenant).await?;
    update_summaries(tx, stream, &rows, tenant).await?;
    update_projections(tx, stream, &rows, |what| ctx(stream, what)).await?;
    if let Some(s) = opts.snapshot {
        store_snapshot(tx, stream, s, new_last, tenant).await?;
    }
    Ok(plan.into_outcome(stream, last))
}

/// The error context of a step of an append to `stream`.
fn ctx(stream: &str, what: &str) -> String {
    format!("appending to stream {stream}: {what}")
}

/// Makes sure the stream has its `stream_state` row and locks it; returns the stream's last seq.
async fn lock_stream(tx: &mut PgConnection, stream: &str, tenant: Option<&str>) -> Result<u64> {
    sqlx::query(
        "INSERT INTO stream_state (stream_key, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(stream)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "stream state")))?;
    let last: i64 =
        sqlx::query_scalar("SELECT last_seq FROM stream_state WHERE stream_key = $1 FOR UPDATE")
            .bind(stream)
            .fetch_one(&mut *tx)
            .await
            .map_err(pg(ctx(stream, "locking the stream")))?;
    Ok(last as u64)
}

/// Repeats inside the batch: the first event with each key (ascending), and each later one
/// with the index of the first with its key.
fn first_of_each_key(key_hash: &[Vec<u8>]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut first_of: BTreeMap<&[u8], usize> = BTreeMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut candidates: Vec<usize> = Vec::with_capacity(key_hash.len());
    for (i, key) in key_hash.iter().enumerate() {
        match first_of.get(key.as_slice()) {
            Some(&j) => repeats.push((i, j)),
            None => {
                first_of.insert(key, i);
                candidates.push(i);
            }
        }
    }
    (candidates, repeats)
}

/// Claims the keys of `candidates` with the seqs they would get: a key that does not come back
/// was stored before. (A claim is an insert through the unique index, never a scan of the
/// table.) Returns the keys stored before, with the event id and seq they were stored with.
async fn claim_keys(
    tx: &mut PgConnection,
    stream: &str,
    rows: &Rows,
    candidates: &[usize],
    last: u64,
) -> Result<BTreeMap<Vec<u8>, (String, i64)>> {
    let claim_keys: Vec<&[u8]> = candidates.iter().map(|&i| &rows.key_hash[i][..]).collect();
    let claim_seqs: Vec<i64> = (1..=candidates.len() as i64)
        .map(|n| last as i64 + n)
        .collect();
    let claimed: BTreeSet<Vec<u8>> = sqlx::query_scalar(
        "INSERT INTO event_keys (key_hash, stream_key, seq)
         SELECT k, $1, s FROM unnest($2::bytea[], $3::bigint[]) AS u(k, s)
         ON CONFLICT (key_hash) DO NOTHING
         RETURNING key_hash",
    )
    .bind(stream)
    .bind(&claim_keys)
    .bind(&claim_seqs)
    .fetch_all(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "idempotency keys")))?
    .into_iter()
    .collect();
    let stored_before: Vec<&[u8]> = claim_keys
        .iter()
        .copied()
        .filter(|k| !claimed.contains(*k))
        .collect();
    if stored_before.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(sqlx::query(
        "SELECT k.key_hash, coalesce(e.event_id, ''), k.seq FROM event_keys k
         LEFT JOIN event_log e ON e.stream_key = k.stream_key AND e.seq = k.seq
         WHERE k.key_hash = ANY($1)",
    )
    .bind(&stored_before)
    .fetch_all(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "idempotency keys")))?
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2))))
    .collect())
}

/// What the append stores and what it reports as duplicates.
struct Plan {
    /// The events to store (ascending): they get the seqs after `last`, in order.
    keep: Vec<usize>,
    /// The others, by index: stored before, or a repeat of one earlier in the batch.
    duplicates: Vec<Duplicate>,
}

impl Plan {
    fn new(
        rows: &Rows,
        candidates: &[usize],
        repeats: &[(usize, usize)],
        stored: &BTreeMap<Vec<u8>, (String, i64)>,
        last: u64,
    ) -> Plan {
        let keep: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| !stored.contains_key(&rows.key_hash[i]))
            .collect();
        // Where each kept event goes, and so what a repeat of it points at.
        let placed: BTreeMap<usize, u64> = keep
            .iter()
            .enumerate()
            .map(|(n, &i)| (i, last + 1 + n as u64))
            .collect();
        // (event, the first event with its key): stored before, or a repeat in this batch.
        let mut duplicates: Vec<Duplicate> = candidates
            .iter()
            .map(|&i| (i, i))
            .chain(repeats.iter().copied())
            .filter_map(|(i, j)| {
                let (event_id, seq) = match stored.get(&rows.key_hash[j]) {
                    Some((id, seq)) => (id.clone(), *seq as u64),
                    None if i != j => (rows.event_id[j].clone(), placed[&j]),
                    None => return None,
                };
                Some(Duplicate {
                    index: i,
                    event_id,
                    seq,
                })
            })
            .collect();
        duplicates.sort_by_key(|d| d.index);
        Plan { keep, duplicates }
    }

    /// The outcome once the kept events follow `last` (none kept: nothing appended).
    fn into_outcome(self, stream: &str, last: u64) -> AppendOutcome {
        let appended = self.keep.len() as u64;
        AppendOutcome {
            stream: stream.to_string(),
            appended,
            first_seq: (appended > 0).then_some(last + 1),
            last_seq: last + appended,
            duplicates: self.duplicates,
        }
    }
}

/// Optimistic concurrency: the writer's `expected` last seq must be the stream's.
fn check_expected(stream: &str, expected: Option<u64>, last: u64) -> Result<()> {
    if let Some(expected) = expected
        && expected != last
    {
        return Err(Error::Conflict {
            stream: stream.to_string(),
            expected,
            actual: last,
        });
    }
    Ok(())
}

/// Events with fixed seqs: none may be skipped as a duplicate, and each kept one must get its
/// own seq.
fn check_exact_seqs(stream: &str, events: &[Envelope], plan: &Plan, last: u64) -> Result<()> {
    if let Some(d) = plan.duplicates.first() {
        return Err(Error::BadEvent {
            stream: stream.to_string(),
            seq: events[d.index].seq,
            message: format!(
                "has the idempotency key of the event at seq {} ({}) (stored, or earlier in this batch) while others of its \
                 batch are new, and a batch with fixed seqs cannot skip it: if this re-imports data \
                 the store holds, it has nothing to add; otherwise give such events distinct \
                 `idempotency_key`s. Nothing was written",
                d.seq, d.event_id
            ),
        });
    }
    for (n, &i) in plan.keep.iter().enumerate() {
        let got = last + 1 + n as u64;
        if events[i].seq != got {
            return Err(Error::SeqGap {
                stream: stream.to_string(),
                expected: got,
                got: events[i].seq,
            });
        }
    }
    Ok(())
}

/// The claims assumed no event was stored before; renumbers the kept ones' keys to the seqs
/// they get.
async fn renumber_keys(
    tx: &mut PgConnection,
    stream: &str,
    rows: &Rows,
    keep: &[usize],
    last: u64,
) -> Result<()> {
    let keys: Vec<&[u8]> = keep.iter().map(|&i| &rows.key_hash[i][..]).collect();
    let seqs: Vec<i64> = (1..=keep.len() as u64).map(|n| (last + n) as i64).collect();
    sqlx::query(
        "UPDATE event_keys k SET seq = u.s
         FROM unnest($1::bytea[], $2::bigint[]) AS u(h, s) WHERE k.key_hash = u.h",
    )
    .bind(&keys)
    .bind(&seqs)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "idempotency keys")))?;
    Ok(())
}

/// Inserts the kept rows into `event_log` (one statement, column arrays through `unnest`).
async fn insert_rows(tx: &mut PgConnection, stream: &str, rows: &Rows) -> Result<()> {
    sqlx::query(
        "INSERT INTO event_log (event_id, stream_key, seq, event_type, instrument, occurred_at_ns,
             ingested_at_ns, ingested_at, tenant_id, owner_id, workspace_id, project_id,
             trace_id, causation_id, command_id, workflow_id, idempotency_key, payload, packed)
         SELECT u.event_id, $1, u.seq, u.event_type, u.instrument, u.occ, u.ing,
             to_timestamp(0) + (u.ing / 1000) * interval '1 microsecond',
             u.tenant_id, u.owner_id, u.workspace_id, u.project_id,
             u.trace_id, u.causation_id, u.command_id, u.workflow_id, u.key,
             u.payload::jsonb, u.packed
         FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
             $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::bytea[])
         AS u(event_id, seq, event_type, instrument, occ, ing, tenant_id, owner_id,
             workspace_id, project_id, trace_id, causation_id, command_id, workflow_id, key,
             payload, packed)",
    )
    .bind(stream)
    .bind(&rows.event_id)
    .bind(&rows.seq)
    .bind(&rows.event_type)
    .bind(&rows.instrument)
    .bind(&rows.occurred)
    .bind(&rows.ingested)
    .bind(&rows.tenant_id)
    .bind(&rows.owner_id)
    .bind(&rows.workspace_id)
    .bind(&rows.project_id)
    .bind(&rows.trace_id)
    .bind(&rows.causation_id)
    .bind(&rows.command_id)
    .bind(&rows.workflow_id)
    .bind(&rows.given_key)
    .bind(&rows.payload)
    .bind(&rows.packed)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "inserting events")))?;
    Ok(())
}

/// Moves the stream's last seq to `new_last` (and records its tenant if it had none).
async fn update_stream_state(
    tx: &mut PgConnection,
    stream: &str,
    new_last: u64,
    tenant: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE stream_state SET last_seq = $2, tenant_id = coalesce(tenant_id, $3),
             updated_at = now() WHERE stream_key = $1",
    )
    .bind(stream)
    .bind(new_last as i64)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "stream state")))?;
    Ok(())
}

/// The summaries reads and listings use: seqs per month (`stream_months`, which read bounds
/// come from), counts and times per event type (`stream_counts`), seqs per command.
async fn update_summaries(
    tx: &mut PgConnection,
    stream: &str,
    rows: &Rows,
    tenant: Option<&str>,
) -> Result<()> {
    let (months, counts, commands) = rows.summaries();
    sqlx::query(
        "INSERT INTO stream_months (stream_key, month, first_seq, last_seq)
         SELECT $1, m::date, f, l FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(m, f, l)
         ON CONFLICT (stream_key, month) DO UPDATE SET
             first_seq = least(stream_months.first_seq, excluded.first_seq),
             last_seq = greatest(stream_months.last_seq, excluded.last_seq)",
    )
    .bind(stream)
    .bind(&months.0)
    .bind(&months.1)
    .bind(&months.2)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "stream months")))?;
    sqlx::query(
        "INSERT INTO stream_counts (stream_key, event_type, events, first_time, last_time)
         SELECT $1, t, n, f, l FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
             AS u(t, n, f, l)
         ON CONFLICT (stream_key, event_type) DO UPDATE SET
             events = stream_counts.events + excluded.events,
             first_time = least(stream_counts.first_time, excluded.first_time),
             last_time = greatest(stream_counts.last_time, excluded.last_time)",
    )
    .bind(stream)
    .bind(&counts.0)
    .bind(&counts.1)
    .bind(&counts.2)
    .bind(&counts.3)
    .execute(&mut *tx)
    .await
    .map_err(pg(ctx(stream, "stream counts")))?;
    if !commands.0.is_empty() {
        sqlx::query(
            "INSERT INTO commands (command_id, tenant_id, stream_key, first_seq, last_seq)
             SELECT c, $2, $1, f, l FROM unnest($3::text[], $4::bigint[], $5::bigint[]) AS u(c, f, l)
             ON CONFLICT (command_id) DO NOTHING",
        )
        .bind(stream)
        .bind(tenant)
        .bind(&commands.0)
        .bind(&commands.1)
        .bind(&commands.2)
        .execute(&mut *tx)
        .await
        .map_err(pg(ctx(stream, "commands")))?;
    }
    Ok(())
}

/// The snapshot committed with the batch: of this stream, at a seq it has once the batch is in.
async fn store_snapshot(
    tx: &mut PgConnection,
    stream: &str,
    s: &StoredSnapshot,
    new_last: u64,
    tenant: Option<&str>,
) -> Result<()> {
    if s.stream != stream || s.seq == 0 || s.seq > new_last {
        return Err(Error::BadEvent {
            stream: stream.to_string(),
            seq: s.seq,
            message: format!(
                "snapshot of {} at seq {} does not belong to this batch (stream {stream} ends at {new_last}); nothing was written",
                s.stream, s.seq
            ),
        });
    }
    insert_snapshot(tx, s, tenant).await
}

/// Stores (or replaces) a snapshot; shared by appends and [`EventSink::put_snapshot`].
async fn insert_snapshot(
    tx: &mut PgConnection,
    s: &StoredSnapshot,
    tenant: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO snapshots (stream_key, seq, projector, tenant_id, state, guest_snapshot)
         VALUES ($1, $2, $3, $4, $5::json, $6::json)
         ON CONFLICT (stream_key, seq, projector) DO UPDATE
             SET state = excluded.state, guest_snapshot = excluded.guest_snapshot",
    )
    .bind(&s.stream)
    .bind(s.seq as i64)
    .bind(&s.projector)
    .bind(tenant)
    .bind(s.state.to_string())
    .bind(s.guest_snapshot.as_ref().map(|g| g.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(pg(format!(
        "storing the {} snapshot of {} at seq {}",
        s.projector, s.stream, s.seq
    )))?;
    Ok(())
}

impl EventSink for PgStore {
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport> {
        self.append_exact(events)
            .map(|streams| AppendReport { streams })
    }

    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<()> {
        self.rt.block_on(async {
            let ctx = format!(
                "storing the {} snapshot of {} at seq {}",
                s.projector, s.stream, s.seq
            );
            let mut tx = self.pool.begin().await.map_err(pg(ctx.clone()))?;
            let row =
                sqlx::query("SELECT last_seq, tenant_id FROM stream_state WHERE stream_key = $1")
                    .bind(&s.stream)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(pg(ctx.clone()))?;
            let (last, tenant): (i64, Option<String>) =
                row.map_or((0, None), |r| (r.get(0), r.get(1)));
            if s.seq == 0 || s.seq > last as u64 {
                return Err(Error::BadEvent {
                    stream: s.stream.clone(),
                    seq: s.seq,
                    message: format!("snapshot past the end of the stream (last seq {last})"),
                });
            }
            insert_snapshot(&mut tx, s, tenant.as_deref()).await?;
            tx.commit().await.map_err(pg(ctx))
        })
    }

    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String> {
        self.rt
            .block_on(
                sqlx::query("INSERT INTO quarantine (source, record) VALUES ($1, $2::jsonb)")
                    .bind(source)
                    .bind(record.to_string())
                    .execute(&self.pool),
            )
            .map_err(pg(format!("quarantining a {source} record")))?;
        Ok(format!(
            "table quarantine of {} (source {source})",
            self.uri
        ))
    }
}
