//! The PostgreSQL store (seeds 000, 001, 003): `event_log` range-partitioned by month of
//! `ingested_at`, per-stream seqs under optimistic concurrency, globally unique idempotency
//! keys, snapshots as replay anchors, fills and current-state projections updated in the
//! append transaction. The schema is `migrations/` (sqlx, forward-only), embedded in the binary.
//!
//! The harness is synchronous (rayon for compute); this store owns a small tokio runtime and
//! blocks on it, so `EventSource` callers do not see async.
//!
//! Replay reads the `packed` column (each event as a guest codec record, written on append)
//! with `COPY ... TO STDOUT (FORMAT binary)`: no JSONB decoding on the replay path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};
use tapedeck_guest::codec::{EventBatchWriter, LAYOUT_VERSION};

use super::uri::redact;
use super::{
    AppendOutcome, AppendReport, Duplicate, EventQuery, EventSink, EventSource, RecordSink,
    SeqRange, StoredSnapshot, StreamInfo,
};
use crate::error::{Error, Result};
use crate::event::{Body, Correlation, Envelope, StreamEncoder, Tenancy};

/// The migrations in `migrations/`, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "event log",
    include_str!("../../../../migrations/0001_event_log.sql"),
)];

/// `tapedeck_meta` key recording the codec layout of the `packed` column.
const LAYOUT_KEY: &str = "packed_layout";

/// Drops (if present) and creates database `name` on the server `server_url` names; returns the
/// new database's URL. For benches and demos: it destroys what the database held.
pub fn recreate_database(server_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::BadStoreUri {
            uri: redact(server_url),
            reason: format!("database name {name:?}: use lowercase letters, digits and _"),
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(server_url)
            .await
            .map_err(pg(format!("connecting to {}", redact(server_url))))?;
        for stmt in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
                .execute(&mut c)
                .await
                .map_err(pg(stmt))?;
        }
        Ok::<_, Error>(())
    })?;
    let base = server_url.split('?').next().unwrap_or(server_url);
    let (host, _) = base.rsplit_once('/').ok_or_else(|| Error::BadStoreUri {
        uri: redact(server_url),
        reason: "want postgres://USER@HOST:PORT/DB".into(),
    })?;
    Ok(format!("{host}/{name}"))
}

/// How an append treats the stream's current last seq.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendOptions<'a> {
    /// The last seq the writer saw. `Some(n)` and the stream is elsewhere: [`Error::Conflict`]
    /// (retry with the actual seq). `None`: append after whatever is there.
    pub expected: Option<u64>,
    /// The events' own seqs must be the ones they get (copies and imports): refused otherwise.
    pub exact_seqs: bool,
    /// A snapshot to commit with the events, at a seq the stream has after them.
    pub snapshot: Option<&'a StoredSnapshot>,
}

impl<'a> AppendOptions<'a> {
    /// Optimistic concurrency: append only if the stream ends at `seq`.
    pub fn expecting(seq: u64) -> Self {
        AppendOptions {
            expected: Some(seq),
            ..Default::default()
        }
    }

    /// Commit `snapshot` with the events.
    pub fn with_snapshot(self, snapshot: &'a StoredSnapshot) -> Self {
        AppendOptions {
            snapshot: Some(snapshot),
            ..self
        }
    }
}

/// One month of the partition coverage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthCoverage {
    /// `YYYY-MM-01`.
    pub month: String,
    pub partition: String,
    pub present: bool,
}

/// The idempotency key of an event (seed 003): `idem_` + SHA-256 over tenant, stream, command
/// and the normalized payload. Normalizing drops `*_at` timestamps, `actor_id`, `actor_type` and
/// `request_id` at any depth and sorts keys. An event without a command id (market data) adds
/// its event type, instrument and event time: without them two equal quotes would be one.
pub fn idempotency_key(e: &Envelope) -> String {
    let payload = payload_value(&e.body);
    derive_key(e, &payload, &payload.to_string())
}

/// [`idempotency_key`] given the event's payload and its JSON text.
fn derive_key(e: &Envelope, payload: &serde_json::Value, text: &str) -> String {
    fn volatile(k: &str) -> bool {
        k.ends_with("_at") || k == "actor_id" || k == "actor_type" || k == "request_id"
    }
    fn any_volatile(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| volatile(k) || any_volatile(v)),
            serde_json::Value::Array(a) => a.iter().any(any_volatile),
            _ => false,
        }
    }
    fn normalize(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !volatile(k));
                m.values_mut().for_each(normalize);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(normalize),
            _ => {}
        }
    }
    // serde_json's map is ordered, so the text is the canonical form.
    let normalized;
    let text = if any_volatile(payload) {
        let mut p = payload.clone();
        normalize(&mut p);
        normalized = p.to_string();
        &normalized
    } else {
        text
    };
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    part(e.tenancy.tenant_id.as_deref().unwrap_or(""));
    part(&e.stream_key);
    match &e.correlation.command_id {
        Some(c) => part(c),
        None => {
            part("");
            part(e.body.event_type());
            part(e.instrument.as_deref().unwrap_or(""));
            part(&e.occurred_at.to_string());
        }
    }
    part(text);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(5 + 64);
    key.push_str("idem_");
    for b in h.finalize() {
        key.push(HEX[(b >> 4) as usize] as char);
        key.push(HEX[(b & 15) as usize] as char);
    }
    key
}

/// The `payload` object of an event body (`{}` for a body without fields).
fn payload_value(body: &Body) -> serde_json::Value {
    let mut v = serde_json::to_value(body).expect("bodies serialize");
    v.as_object_mut()
        .and_then(|m| m.remove("payload"))
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
}

/// `YYYY-MM-01` of the UTC month holding `ns`, at the microsecond precision of `ingested_at`.
fn month_of(ns: i64) -> String {
    let day = crate::time::day_of(ns.div_euclid(1000) * 1000);
    format!("{}-01", &day[..7])
}

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

/// Maps a sqlx error to [`Error::Postgres`] with what was being done.
/// (In a per-row loop, call it lazily, `map_err(|e| pg(..)(e))`: the context is a string.)
pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let context = context.into();
    move |e| Error::Postgres {
        context,
        message: match &e {
            sqlx::Error::Database(d) => match d.code() {
                Some(code) => format!("{} (SQLSTATE {code})", d.message()),
                None => d.message().to_string(),
            },
            other => other.to_string(),
        },
    }
}

/// A PostgreSQL event store.
pub struct PgStore {
    rt: tokio::runtime::Runtime,
    pool: PgPool,
    uri: String,
    /// Months whose event_log partition is known to exist.
    months: Mutex<BTreeSet<String>>,
    /// The `packed` column was written with this binary's codec layout.
    packed_current: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("uri", &self.uri).finish()
    }
}

impl PgStore {
    fn pool(uri: &str) -> Result<(tokio::runtime::Runtime, PgPool)> {
        let bad = |reason: String| Error::BadStoreUri {
            uri: redact(uri),
            reason,
        };
        let opts: PgConnectOptions = uri.parse().map_err(|e| bad(format!("{e}")))?;
        // Partition bounds and months are UTC whatever the server's zone. Custom plans always:
        // a generic plan prunes partitions only at executor start, after locking them all.
        // `literal` relies on standard_conforming_strings (on by default; forced here).
        let opts = opts.options([
            ("timezone", "UTC"),
            ("plan_cache_mode", "force_custom_plan"),
            ("standard_conforming_strings", "on"),
        ]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tapedeck-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let pool = rt
            .block_on(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(std::time::Duration::from_secs(30))
                    .connect_with(opts),
            )
            .map_err(|e| bad(format!("cannot connect: {e}")))?;
        Ok((rt, pool))
    }

    /// Connects to a migrated store; a database without the schema is an error that says to
    /// run `tapedeck migrate`.
    pub fn connect(uri: &str) -> Result<Self> {
        let (rt, pool) = Self::pool(uri)?;
        let schema: Option<(Option<i64>, Option<String>)> = rt
            .block_on(async {
                let present: bool = sqlx::query_scalar(
                    "SELECT to_regclass('tapedeck_meta') IS NOT NULL
                         AND to_regclass('_sqlx_migrations') IS NOT NULL",
                )
                .fetch_one(&pool)
                .await?;
                if !present {
                    return Ok(None);
                }
                let version =
                    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&pool)
                        .await?;
                let layout = sqlx::query_scalar("SELECT value FROM tapedeck_meta WHERE key = $1")
                    .bind(LAYOUT_KEY)
                    .fetch_optional(&pool)
                    .await?;
                Ok(Some((version, layout)))
            })
            .map_err(pg("reading the schema version"))?;
        let refuse = |reason: String| Error::BadStoreUri {
            uri: redact(uri),
            reason,
        };
        let ours = MIGRATIONS.last().map_or(0, |m| m.0);
        let layout = match schema {
            None => {
                return Err(refuse(format!(
                    "no tapedeck schema in this database; run `tapedeck migrate --store {}`",
                    redact(uri)
                )));
            }
            Some((version, _)) if version.unwrap_or(0) < ours => {
                return Err(refuse(format!(
                    "the schema is at migration {}, this tapedeck needs {ours}; run `tapedeck migrate --store {}`",
                    version.unwrap_or(0),
                    redact(uri)
                )));
            }
            Some((Some(version), _)) if version > ours => {
                return Err(refuse(format!(
                    "the schema is at migration {version}, newer than this tapedeck knows ({ours}); use a newer tapedeck"
                )));
            }
            Some((_, layout)) => layout,
        };
        Ok(PgStore {
            rt,
            pool,
            uri: redact(uri),
            months: Mutex::new(BTreeSet::new()),
            packed_current: layout.as_deref() == Some(&LAYOUT_VERSION.to_string()),
        })
    }

    /// Applies the migrations not yet applied; returns their versions.
    pub fn migrate(uri: &str) -> Result<Vec<i64>> {
        let (rt, pool) = Self::pool(uri)?;
        let migrations = MIGRATIONS
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        rt.block_on(async {
            let before: Vec<i64> = if sqlx::query_scalar::<_, bool>(
                "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .map_err(pg("reading applied migrations"))?
            {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&pool)
                    .await
                    .map_err(pg("reading applied migrations"))?
            } else {
                Vec::new()
            };
            migrator.run(&pool).await.map_err(|e| Error::Postgres {
                context: "migrating".into(),
                message: e.to_string(),
            })?;
            sqlx::query("INSERT INTO tapedeck_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(LAYOUT_KEY)
                .bind(LAYOUT_VERSION.to_string())
                .execute(&pool)
                .await
                .map_err(pg("recording the codec layout"))?;
            Ok(MIGRATIONS
                .iter()
                .map(|m| m.0)
                .filter(|v| !before.contains(v))
                .collect())
        })
    }

    /// The pool, for benches and tests that measure or check SQL directly.
    pub fn pg_pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs a future on this store's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Creates the event_log partitions of this month and the next `months_ahead`; returns
    /// their names.
    pub fn create_partitions(&self, months_ahead: u32) -> Result<Vec<String>> {
        self.rt
            .block_on(
                sqlx::query_scalar("SELECT create_event_log_partitions($1)")
                    .bind(months_ahead as i32)
                    .fetch_all(&self.pool),
            )
            .map_err(pg("creating partitions"))
    }

    /// This month and the next `months_ahead`: which have a partition.
    pub fn partition_coverage(&self, months_ahead: u32) -> Result<Vec<MonthCoverage>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT month::text, partition_name, present FROM check_partition_coverage($1)",
                )
                .bind(months_ahead as i32)
                .fetch_all(&self.pool),
            )
            .map_err(pg("checking partition coverage"))?;
        Ok(rows
            .iter()
            .map(|r| MonthCoverage {
                month: r.get(0),
                partition: r.get(1),
                present: r.get(2),
            })
            .collect())
    }

    /// Creates the partitions the months of `events` need (outside the append transaction:
    /// the DDL locks the parent table).
    fn ensure_partitions(&self, events: &[Envelope]) -> Result<()> {
        let needed: BTreeSet<String> = events.iter().map(|e| month_of(e.ingested_at)).collect();
        let missing: Vec<String> = {
            let known = self.months.lock().expect("months lock");
            needed.difference(&known).cloned().collect()
        };
        for m in missing {
            self.rt
                .block_on(
                    sqlx::query("SELECT create_event_log_partition($1::date)")
                        .bind(&m)
                        .execute(&self.pool),
                )
                .map_err(pg(format!("creating the event_log partition for {m}")))?;
            self.months.lock().expect("months lock").insert(m);
        }
        Ok(())
    }

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
        self.rt.block_on(self.append_tx(stream, events, rows, opts))
    }

    async fn append_tx(
        &self,
        stream: &str,
        events: &[Envelope],
        mut rows: Rows,
        opts: AppendOptions<'_>,
    ) -> Result<AppendOutcome> {
        let ctx = |what: &str| format!("appending to stream {stream}: {what}");
        let mut tx = self.pool.begin().await.map_err(pg(ctx("begin")))?;
        let tenant = events.iter().find_map(|e| e.tenancy.tenant_id.clone());
        sqlx::query(
            "INSERT INTO stream_state (stream_key, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(stream)
        .bind(&tenant)
        .execute(&mut *tx)
        .await
        .map_err(pg(ctx("stream state")))?;
        let last: i64 = sqlx::query_scalar(
            "SELECT last_seq FROM stream_state WHERE stream_key = $1 FOR UPDATE",
        )
        .bind(stream)
        .fetch_one(&mut *tx)
        .await
        .map_err(pg(ctx("locking the stream")))?;
        let last = last as u64;

        // Idempotency. Repeats inside the batch are found here; then the others' keys are
        // claimed with the seqs they would get: a key that does not come back was stored
        // before. (A claim is an insert through the unique index, never a scan of the table.)
        let mut first_of: BTreeMap<&[u8], usize> = BTreeMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut candidates: Vec<usize> = Vec::with_capacity(events.len());
        for (i, key) in rows.key_hash.iter().enumerate() {
            match first_of.get(key.as_slice()) {
                Some(&j) => repeats.push((i, j)),
                None => {
                    first_of.insert(key, i);
                    candidates.push(i);
                }
            }
        }
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
        .map_err(pg(ctx("idempotency keys")))?
        .into_iter()
        .collect();
        let stored_before: Vec<&[u8]> = claim_keys
            .iter()
            .copied()
            .filter(|k| !claimed.contains(*k))
            .collect();
        let stored: BTreeMap<Vec<u8>, (String, i64)> = if stored_before.is_empty() {
            BTreeMap::new()
        } else {
            sqlx::query(
                "SELECT k.key_hash, coalesce(e.event_id, ''), k.seq FROM event_keys k
                 LEFT JOIN event_log e ON e.stream_key = k.stream_key AND e.seq = k.seq
                 WHERE k.key_hash = ANY($1)",
            )
            .bind(&stored_before)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg(ctx("idempotency keys")))?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
        };
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
        if keep.is_empty() {
            tx.rollback().await.map_err(pg(ctx("rollback")))?;
            return Ok(AppendOutcome {
                stream: stream.to_string(),
                appended: 0,
                first_seq: None,
                last_seq: last,
                duplicates,
            });
        }
        if let Some(expected) = opts.expected
            && expected != last
        {
            return Err(Error::Conflict {
                stream: stream.to_string(),
                expected,
                actual: last,
            });
        }
        if opts.exact_seqs {
            if let Some(d) = duplicates.first() {
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
            for (n, &i) in keep.iter().enumerate() {
                let got = last + 1 + n as u64;
                if events[i].seq != got {
                    return Err(Error::SeqGap {
                        stream: stream.to_string(),
                        expected: got,
                        got: events[i].seq,
                    });
                }
            }
        }
        if !stored.is_empty() {
            // The claims assumed no event was stored before; renumber the kept ones.
            let keys: Vec<&[u8]> = keep.iter().map(|&i| &rows.key_hash[i][..]).collect();
            let seqs: Vec<i64> = keep.iter().map(|i| placed[i] as i64).collect();
            sqlx::query(
                "UPDATE event_keys k SET seq = u.s
                 FROM unnest($1::bytea[], $2::bigint[]) AS u(h, s) WHERE k.key_hash = u.h",
            )
            .bind(&keys)
            .bind(&seqs)
            .execute(&mut *tx)
            .await
            .map_err(pg(ctx("idempotency keys")))?;
        }
        rows.retain(&keep, last);
        let first = last + 1;
        let new_last = last + keep.len() as u64;

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
        .map_err(pg(ctx("inserting events")))?;

        sqlx::query(
            "UPDATE stream_state SET last_seq = $2, tenant_id = coalesce(tenant_id, $3),
                 updated_at = now() WHERE stream_key = $1",
        )
        .bind(stream)
        .bind(new_last as i64)
        .bind(&tenant)
        .execute(&mut *tx)
        .await
        .map_err(pg(ctx("stream state")))?;

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
        .map_err(pg(ctx("stream months")))?;
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
        .map_err(pg(ctx("stream counts")))?;
        if !commands.0.is_empty() {
            sqlx::query(
                "INSERT INTO commands (command_id, tenant_id, stream_key, first_seq, last_seq)
                 SELECT c, $2, $1, f, l FROM unnest($3::text[], $4::bigint[], $5::bigint[]) AS u(c, f, l)
                 ON CONFLICT (command_id) DO NOTHING",
            )
            .bind(stream)
            .bind(&tenant)
            .bind(&commands.0)
            .bind(&commands.1)
            .bind(&commands.2)
            .execute(&mut *tx)
            .await
            .map_err(pg(ctx("commands")))?;
        }

        let ev = rows.projected();
        let types: BTreeSet<&str> = ev.event_type.iter().map(String::as_str).collect();
        for (touches, sql, what) in PROJECTIONS {
            if touches.iter().any(|t| types.contains(t)) {
                sqlx::query(*sql)
                    .bind(stream)
                    .bind(&ev.seq)
                    .bind(&ev.event_type)
                    .bind(&ev.instrument)
                    .bind(&ev.tenant_id)
                    .bind(&ev.event_id)
                    .bind(&ev.payload)
                    .bind(&ev.occurred)
                    .execute(&mut *tx)
                    .await
                    .map_err(pg(ctx(what)))?;
            }
        }

        if let Some(s) = opts.snapshot {
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
            insert_snapshot(&mut tx, s, tenant.as_deref()).await?;
        }
        tx.commit().await.map_err(pg(ctx("commit")))?;
        Ok(AppendOutcome {
            stream: stream.to_string(),
            appended: keep.len() as u64,
            first_seq: Some(first),
            last_seq: new_last,
            duplicates,
        })
    }

    /// Appends events carrying their own seqs (copies, imports, `events append`): one
    /// transaction per run of one stream, each expecting the stream to end just before it.
    pub fn append_exact(&self, events: &[Envelope]) -> Result<Vec<AppendOutcome>> {
        let mut out = Vec::new();
        for run in events.chunk_by(|a, b| a.stream_key == b.stream_key) {
            let opts = AppendOptions {
                expected: Some(run[0].seq.saturating_sub(1)),
                exact_seqs: true,
                snapshot: None,
            };
            out.push(self.append(&run[0].stream_key, run, opts)?);
        }
        Ok(out)
    }

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

/// A seq as PostgreSQL's bigint (saturating).
pub(crate) fn clamp(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

async fn insert_snapshot(
    tx: &mut sqlx::PgConnection,
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

/// The batch's projection-relevant events as a relation `ev` (binds $2..$8), so projection
/// updates read the rows in hand rather than the log.
macro_rules! ev_cte {
    () => {
        "WITH ev AS (
             SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::text[]::jsonb[], $8::bigint[])
             AS u(seq, event_type, instrument, tenant_id, event_id, payload, occurred_at_ns)) "
    };
}

/// Projection updates from the events just inserted: (event types that touch it, SQL, name).
/// Binds: $1 stream, then the `ev` columns.
const PROJECTIONS: &[(&[&str], &str, &str)] = &[
    (
        &["fill"],
        concat!(
            ev_cte!(),
            "INSERT INTO fills (tenant_id, instrument, exchange_trade_id, stream_key, seq, event_id,
                 client_order_id, side, price, qty, fee, occurred_at_ns)
             SELECT DISTINCT ON (coalesce(tenant_id, ''), coalesce(instrument, ''),
                     (payload->>'trade_id')::bigint)
                 coalesce(tenant_id, ''), coalesce(instrument, ''), (payload->>'trade_id')::bigint,
                 $1, seq, event_id, (payload->>'client_order_id')::bigint, payload->>'side',
                 (payload->>'price')::numeric, (payload->>'qty')::numeric,
                 coalesce((payload->>'fee')::numeric, 0), occurred_at_ns
             FROM ev WHERE event_type = 'fill'
             ORDER BY coalesce(tenant_id, ''), coalesce(instrument, ''),
                 (payload->>'trade_id')::bigint, seq
             ON CONFLICT (tenant_id, instrument, exchange_trade_id) DO NOTHING"
        ),
        "fills",
    ),
    (
        &[
            "order_submitted",
            "order_acked",
            "order_rejected",
            "order_cancelled",
            "fill",
        ],
        concat!(
            ev_cte!(),
            ", orders AS (
                 SELECT seq, event_type, instrument, tenant_id, payload,
                     (payload->>'client_order_id')::bigint AS coid
                 FROM ev WHERE event_type IN ('order_submitted', 'order_acked', 'order_rejected',
                                              'order_cancelled', 'fill')),
             last AS (
                 SELECT DISTINCT ON (coid) coid, seq, tenant_id, instrument,
                     CASE event_type
                         WHEN 'order_submitted' THEN 'submitted'
                         WHEN 'order_acked' THEN 'acked'
                         WHEN 'order_rejected' THEN 'rejected'
                         WHEN 'order_cancelled' THEN 'cancelled'
                         ELSE CASE WHEN (payload->>'is_final')::boolean THEN 'filled'
                                   ELSE 'partially_filled' END
                     END AS status
                 FROM orders ORDER BY coid, seq DESC),
             sub AS (
                 SELECT DISTINCT ON (coid) coid, payload FROM orders
                 WHERE event_type = 'order_submitted' ORDER BY coid, seq DESC),
             agg AS (
                 SELECT coid,
                     max((payload->>'venue_order_id')::bigint)
                         FILTER (WHERE event_type = 'order_acked') AS venue,
                     max(payload->>'reason') FILTER (WHERE event_type = 'order_rejected') AS reason
                 FROM orders GROUP BY coid)
             INSERT INTO orders_current AS o (stream_key, client_order_id, tenant_id, instrument,
                 side, order_type, price, qty, filled_qty, venue_order_id, status, reason, last_seq)
             SELECT $1, l.coid, l.tenant_id, l.instrument, s.payload->>'side',
                 s.payload->>'order_type', (s.payload->>'price')::numeric,
                 (s.payload->>'qty')::numeric,
                 coalesce((SELECT sum(f.qty) FROM fills f
                           WHERE f.stream_key = $1 AND f.client_order_id = l.coid), 0),
                 a.venue, l.status, a.reason, l.seq
             FROM last l JOIN agg a USING (coid) LEFT JOIN sub s USING (coid)
             ON CONFLICT (stream_key, client_order_id) DO UPDATE SET
                 tenant_id = coalesce(excluded.tenant_id, o.tenant_id),
                 instrument = coalesce(excluded.instrument, o.instrument),
                 side = coalesce(excluded.side, o.side),
                 order_type = coalesce(excluded.order_type, o.order_type),
                 price = coalesce(excluded.price, o.price),
                 qty = coalesce(excluded.qty, o.qty),
                 filled_qty = excluded.filled_qty,
                 venue_order_id = coalesce(excluded.venue_order_id, o.venue_order_id),
                 status = excluded.status,
                 reason = coalesce(excluded.reason, o.reason),
                 last_seq = excluded.last_seq"
        ),
        "orders_current",
    ),
    (
        &["position"],
        concat!(
            ev_cte!(),
            "INSERT INTO positions_current (stream_key, instrument, tenant_id, qty, avg_price,
                 realized_pnl, last_seq)
             SELECT DISTINCT ON (coalesce(instrument, '')) $1, coalesce(instrument, ''),
                 tenant_id, (payload->>'qty')::numeric, (payload->>'avg_price')::numeric,
                 coalesce((payload->>'realized_pnl')::numeric, 0), seq
             FROM ev WHERE event_type = 'position'
             ORDER BY coalesce(instrument, ''), seq DESC
             ON CONFLICT (stream_key, instrument) DO UPDATE SET
                 tenant_id = excluded.tenant_id, qty = excluded.qty,
                 avg_price = excluded.avg_price, realized_pnl = excluded.realized_pnl,
                 last_seq = excluded.last_seq"
        ),
        "positions_current",
    ),
    (
        &["balance"],
        concat!(
            ev_cte!(),
            "INSERT INTO balances_current (stream_key, asset, tenant_id, total, free, locked,
                 last_seq)
             SELECT DISTINCT ON (coalesce(instrument, '')) $1, coalesce(instrument, ''),
                 tenant_id, (payload->>'total')::numeric, (payload->>'free')::numeric,
                 coalesce((payload->>'locked')::numeric, 0), seq
             FROM ev WHERE event_type = 'balance'
             ORDER BY coalesce(instrument, ''), seq DESC
             ON CONFLICT (stream_key, asset) DO UPDATE SET
                 tenant_id = excluded.tenant_id, total = excluded.total, free = excluded.free,
                 locked = excluded.locked, last_seq = excluded.last_seq"
        ),
        "balances_current",
    ),
];

/// Event types some projection reads.
const PROJECTED: &[&str] = &[
    "order_submitted",
    "order_acked",
    "order_rejected",
    "order_cancelled",
    "fill",
    "position",
    "balance",
];

/// The `ev` relation of the projection updates, as column arrays.
#[derive(Default)]
struct Projected {
    seq: Vec<i64>,
    event_type: Vec<String>,
    instrument: Vec<Option<String>>,
    tenant_id: Vec<Option<String>>,
    event_id: Vec<String>,
    payload: Vec<String>,
    occurred: Vec<i64>,
}

/// A batch as column arrays for `unnest`.
#[derive(Default)]
struct Rows {
    event_id: Vec<String>,
    seq: Vec<i64>,
    event_type: Vec<String>,
    instrument: Vec<Option<String>>,
    occurred: Vec<i64>,
    ingested: Vec<i64>,
    tenant_id: Vec<Option<String>>,
    owner_id: Vec<Option<String>>,
    workspace_id: Vec<Option<String>>,
    project_id: Vec<Option<String>>,
    trace_id: Vec<Option<String>>,
    causation_id: Vec<Option<String>>,
    command_id: Vec<Option<String>>,
    workflow_id: Vec<Option<String>>,
    /// SHA-256 of the idempotency key (given or derived).
    key_hash: Vec<Vec<u8>>,
    /// The key as the writer gave it (NULL when derived).
    given_key: Vec<Option<String>>,
    payload: Vec<String>,
    packed: Vec<Vec<u8>>,
}

impl Rows {
    /// Validates and encodes a batch (before any SQL runs: bad input writes nothing).
    fn new(stream: &str, events: &[Envelope]) -> Result<Rows> {
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
    fn retain(&mut self, keep: &[usize], last: u64) {
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
    fn projected(&self) -> Projected {
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
    #[allow(clippy::type_complexity)]
    fn summaries(
        &self,
    ) -> (
        (Vec<String>, Vec<i64>, Vec<i64>),
        (Vec<String>, Vec<i64>, Vec<i64>, Vec<i64>),
        (Vec<String>, Vec<i64>, Vec<i64>),
    ) {
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
const ENVELOPE_COLUMNS: &str = "event_id, stream_key, seq, event_type, instrument, occurred_at_ns, \
    ingested_at_ns, tenant_id, owner_id, workspace_id, project_id, trace_id, causation_id, \
    command_id, workflow_id, idempotency_key, payload::text";

fn envelope_of(r: &PgRow) -> Result<Envelope> {
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
            return super::records_from_envelopes(self, stream, range, f);
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

/// The baseline `tapedeck bench postgres` compares the COPY path against: sqlx row by row, the payload decoded from JSONB into a
/// `serde_json::Value` and from that into the typed body; everything else delegated.
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
        self.0.block_on(async {
            let mut rows = sqlx::query(
                "SELECT event_id, seq, occurred_at_ns, ingested_at_ns, instrument, event_type, payload
                 FROM event_log WHERE stream_key = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            )
            .bind(stream)
            .bind(clamp(range.from))
            .bind(clamp(range.to))
            .fetch(self.0.pg_pool());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Dec;

    fn quote(seq: u64, t: i64, bid: i64) -> Envelope {
        Envelope::new(
            "md:x",
            seq,
            t,
            Some("BTCUSDT"),
            Body::Quote {
                bid_px: Dec::new(bid, 2),
                bid_qty: Dec::new(1, 0),
                ask_px: Dec::new(bid + 1, 2),
                ask_qty: Dec::new(1, 0),
                update_id: None,
            },
        )
    }

    #[test]
    fn idempotency_keys_ignore_seq_and_wall_clock_but_not_content() {
        let a = quote(1, 1_000, 100);
        let mut b = quote(7, 1_000, 100);
        b.ingested_at = 99;
        b.event_id = "other".into();
        assert_eq!(idempotency_key(&a), idempotency_key(&b));
        assert_ne!(idempotency_key(&a), idempotency_key(&quote(1, 1_001, 100)));
        assert_ne!(idempotency_key(&a), idempotency_key(&quote(1, 1_000, 101)));
        let mut c = a.clone();
        c.tenancy.tenant_id = Some("t1".into());
        assert_ne!(idempotency_key(&a), idempotency_key(&c));
        // With a command id, event time is not part of it; `*_at` payload fields never are.
        let cmd = |t: i64, at: i64| {
            let mut e = Envelope::new(
                "orders:x",
                1,
                t,
                None,
                Body::Custom {
                    type_name: "note".into(),
                    data: serde_json::json!({"text": "hi", "sent_at": at, "actor_id": at}),
                },
            );
            e.correlation.command_id = Some("cmd-1".into());
            e
        };
        assert_eq!(idempotency_key(&cmd(1, 5)), idempotency_key(&cmd(2, 6)));
        assert!(idempotency_key(&a).starts_with("idem_") && idempotency_key(&a).len() == 69);
    }

    #[test]
    fn months_and_literals() {
        assert_eq!(month_of(0), "1970-01-01");
        // 2024-02-29T23:59:59.9999995Z is still February at microsecond precision.
        assert_eq!(month_of(1_709_251_199_999_999_500), "2024-02-01");
        assert_eq!(month_of(1_709_251_200_000_000_000), "2024-03-01");
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
