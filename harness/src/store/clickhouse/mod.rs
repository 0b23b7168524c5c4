//! The ClickHouse store (seed 004): the recorder's cold path as a replay source. `events` holds
//! every envelope, `event_runs` the events as packed guest records in runs for replay, and the seed's typed tables (`market_data`, `orders`, `fills`, ...) are filled
//! from the same appends for analysts. Tables are partitioned by UTC day of event time;
//! retention drops expired day partitions (`retention`). The schema is
//! `migrations/clickhouse/`, embedded and applied by [`migrate`].
//!
//! # Invariants, with no transactions
//!
//! ClickHouse 18.16 has no transactions, no unique keys, no insert deduplication outside
//! Replicated tables. What makes appends exactly-once and seqs gapless here:
//!
//! - **One writer per stream, by a lock table.** `CREATE TABLE` of an existing name fails, on
//!   one server, atomically: it is the only compare-and-set 18.16 offers (appends and reads alone
//!   cannot elect a winner between racing writers, whatever the protocol). An append first
//!   creates `lock_<hash of the stream>` for each of its streams, in key order (two writers of
//!   overlapping sets queue instead of deadlocking; the owner is the table's column default,
//!   so a lock is one statement), drops them when done. A writer that finds the lock
//!   taken waits; a lock older than its lease (60 s) or older than the server's uptime (its
//!   holder's connection died with the server), or held by a process of this machine that has
//!   exited (a writer restarted after SIGKILL), is broken by renaming it to a tombstone named
//!   after its owner, which only one breaker can do. Writers in one process and in many are
//!   treated alike.
//! - **A commit log.** Under the locks, an append reads each stream's committed end `L` (the
//!   greatest `last_seq` in `batches`), checks every run of the batch, writes `events`, the
//!   typed tables and `event_runs` (each row tagged with its stream lock's owner id as
//!   `append_id`), and only then inserts one `batches` row per run, in one insert (one block,
//!   stored whole or not at all): the commit, so a batch over several streams is all or
//!   nothing. Readers see the rows of committed appends only (`append_id` in `batches`, seq at
//!   most `L`), so a half-written append (the server stopped mid-way) is never visible.
//! - **Roll back before writing.** Rows past `L` are an append that failed; the next writer of
//!   the stream deletes them (`ALTER TABLE .. DELETE`, waited for) before it writes, so the typed
//!   tables analysts query hold them only between a failure and the next append.
//! - **Retries store once.** Events carry their seqs. Events at or below `L` are compared
//!   with what is stored: the same events are reported as duplicates and not stored again (a
//!   retry after a lost reply, a second `copy`); different ones are [`Error::Conflict`] (another
//!   writer got there first: renumber and retry from `L`). `EventSink::append`
//!   ([`ChStore::append_exact`]) takes a run that is all duplicates or starts at `L + 1`, as
//!   PostgreSQL's does; [`ChStore::append`] also stores the new tail of a run that overlaps `L`.
//!
//! A lock holder that stalls past its lease may lose its append (it checks its lock before
//! committing, which narrows but does not close that window); PostgreSQL is the transactional
//! store.
//!
//! # Replay
//!
//! `read_records` reads `event_runs` (runs of up to 4096 records of one stream and day) in
//! RowBinary with `wait_end_of_query=1`, so a server error mid-result is an error; seqs are
//! checked to be consecutive and to reach the end of the range, so a broken connection is never
//! a short replay. A stream is read in slices of runs, the next fetched while the current one
//! is replayed: memory is bounded by two slices.
//!
//! The harness is synchronous; the store owns a small tokio runtime and blocks on it.

mod append;
mod connect;
mod decode;
mod lock;
mod reads;
pub mod retention;
mod rowbinary;
mod rows;

use crate::error::Result;
use crate::event::Envelope;

use super::{
    AppendReport, EventSink, EventSource, RecordSink, SeqRange, StoredSnapshot, StreamInfo,
};

pub use connect::{migrate, recreate_database};
pub use lock::lock_table;
pub use retention::{ExpiredPartition, RetentionPolicy, RetentionReport, apply_retention};

/// A ClickHouse event store.
pub struct ChStore {
    rt: tokio::runtime::Runtime,
    client: ::clickhouse::Client,
    /// The URI, redacted.
    uri: String,
    /// The packed columns were written with this binary's codec layout.
    packed_current: bool,
    /// How long a stream lock holds before others may break it.
    lease_secs: u64,
}

impl std::fmt::Debug for ChStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChStore").field("uri", &self.uri).finish()
    }
}

impl ChStore {
    /// Sets how long a stream lock holds before other writers may break it (tests shorten it).
    pub fn with_lease_secs(mut self, secs: u64) -> Self {
        self.lease_secs = secs;
        self
    }

    /// Runs a future on this store's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The client (of this store's database), for benches and tests that check SQL directly.
    pub fn client(&self) -> &::clickhouse::Client {
        &self.client
    }
}

impl EventSource for ChStore {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        self.list_streams()
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        self.read_envelopes(stream, range, f)
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        self.read_snapshots(stream)
    }

    fn instruments(&self, stream: &str) -> Result<std::collections::BTreeMap<u32, String>> {
        self.read_instruments(stream)
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }

    fn read_records(&self, stream: &str, range: SeqRange, f: &mut RecordSink<'_>) -> Result<()> {
        if !self.packed_current {
            return super::records_from_envelopes(self, stream, range, f);
        }
        self.read_runs(stream, range, f)
    }
}

impl EventSink for ChStore {
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport> {
        self.append_events(events)
    }

    fn put_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()> {
        self.store_snapshot(snapshot)
    }

    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String> {
        self.store_quarantine(source, record)
    }
}
