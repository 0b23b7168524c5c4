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
//!
//! The module's rooms: `connect` (migrations, pool, partitions, the `pg`
//! error helper), `keys` (idempotency keys), `rows` (events as column arrays and back),
//! `append` (the append transaction, step by step, and `EventSink`), `projections` (their SQL
//! in `sql/`), `reads` (`EventSource`, the COPY reader) and `naive` (the bench's baseline).

mod append;
mod connect;
mod keys;
mod naive;
mod projections;
mod reads;
mod rows;

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::store::StoredSnapshot;
use sqlx::postgres::PgPool;

pub use connect::{MonthCoverage, recreate_database};
pub use keys::idempotency_key;
pub use naive::NaiveReader;

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
