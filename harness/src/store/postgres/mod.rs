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

use sqlx::postgres::PgPool;

pub use append::AppendOptions;
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
