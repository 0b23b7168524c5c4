//! Where recorded events come from: the `EventSource` seam, with the embedded file store,
//! PostgreSQL, ClickHouse and an in-memory store beside it. Every command takes a store URI; `open` picks the
//! implementation.

mod checksum;
#[cfg(feature = "databases")]
pub mod clickhouse;
mod dirs;
mod file;
pub mod fsck;
pub mod index;
mod index_instruments;
mod index_sort;
pub mod index_state;
pub mod index_view;
mod lock;
mod log;
mod memory;
#[cfg(feature = "databases")]
pub mod postgres;
pub mod uri;
mod verified;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "databases")]
pub use clickhouse::ChStore;
pub use file::{FileStore, FileStoreOptions};
pub use index_state::IndexState;
pub use lock::LOCK_FILE;
pub use memory::MemoryStore;
#[cfg(feature = "databases")]
pub use postgres::PgStore;
pub use uri::StoreUri;

use crate::error::{Error, Result};
use crate::event::Envelope;

/// What a store knows about one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub key: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_time: i64,
    pub last_time: i64,
    /// Events by `event_type`.
    pub counts: BTreeMap<String, u64>,
}

impl StreamInfo {
    fn new(e: &Envelope) -> Self {
        StreamInfo {
            key: e.stream_key.clone(),
            first_seq: e.seq,
            last_seq: e.seq,
            first_time: e.occurred_at,
            last_time: e.occurred_at,
            counts: BTreeMap::new(),
        }
    }

    fn add(&mut self, e: &Envelope) {
        self.last_seq = e.seq;
        self.first_time = self.first_time.min(e.occurred_at);
        self.last_time = self.last_time.max(e.occurred_at);
        *self
            .counts
            .entry(e.body.event_type().to_string())
            .or_default() += 1;
    }

    pub fn events(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// A stored projector state: a replay anchor and what replays are diffed against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub stream: String,
    pub seq: u64,
    pub projector: String,
    /// The projector's `state()`: what replays are diffed against.
    pub state: serde_json::Value,
    /// The projector's own `snapshot()`, when it differs from its state (a replay restores
    /// from it; without it, from `state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_snapshot: Option<serde_json::Value>,
}

/// An inclusive seq range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

impl SeqRange {
    pub const ALL: SeqRange = SeqRange {
        from: 1,
        to: u64::MAX,
    };

    pub fn contains(&self, seq: u64) -> bool {
        self.from <= seq && seq <= self.to
    }
}

/// Receives packed records: (seq, event time, record bytes).
pub type RecordSink<'a> = dyn FnMut(u64, i64, &[u8]) -> Result<()> + 'a;

/// Reads recorded streams.
pub trait EventSource: Send + Sync {
    /// Every stream, by key.
    fn streams(&self) -> Result<Vec<StreamInfo>>;

    /// The events of `stream` in `range`, in seq order, handed to `f` one at a time.
    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()>;

    /// Stored snapshots of `stream`, by seq then projector.
    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>>;

    /// A description for run cards and errors.
    fn describe(&self) -> String;

    /// The events of `stream` in `range` already packed as guest codec records (stream id 0,
    /// instrument ids from [`crate::event::instrument_id`]), in seq order: what replay feeds
    /// guests. Stores with a columnar index serve these without parsing envelopes.
    fn read_records(&self, stream: &str, range: SeqRange, f: &mut RecordSink<'_>) -> Result<()> {
        records_from_envelopes(self, stream, range, f)
    }

    /// The stream's instrument table: the symbol of each instrument its events name, by guest
    /// instrument id ([`crate::event::instrument_id`]). Guests get it
    /// ([`crate::event::instrument_table`]) to name what a person reads, and reports name
    /// instruments by it. Stores with an index answer from it; the default reads the stream.
    fn instruments(&self, stream: &str) -> Result<BTreeMap<u32, String>> {
        instruments_from_envelopes(self, stream)
    }

    /// Events matching `q`, by stream then seq, at most `q.limit`. Stores with indexes
    /// (PostgreSQL) answer in SQL; the default reads the matching streams.
    fn query(&self, q: &EventQuery, f: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        let mut left = q.limit;
        for s in self.streams()? {
            if left == 0 {
                break;
            }
            if !q
                .stream
                .as_deref()
                .is_none_or(|g| crate::glob::glob_match(g, &s.key))
            {
                continue;
            }
            let range = SeqRange {
                from: q.from_seq.unwrap_or(1),
                to: u64::MAX,
            };
            self.read(&s.key, range, &mut |e| {
                if left > 0 && q.matches(&e) {
                    left -= 1;
                    f(e)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// A search over events (`tapedeck events list|show|search`). Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Stream key glob (`*`, `?`).
    pub stream: Option<String>,
    pub event_types: Vec<String>,
    /// Event time bounds (ns, inclusive).
    pub from_time: Option<i64>,
    pub to_time: Option<i64>,
    pub from_seq: Option<u64>,
    pub trace_id: Option<String>,
    pub event_id: Option<String>,
    /// The payload contains this JSON (PostgreSQL's `@>`: objects by subset, arrays by
    /// elements).
    pub contains: Option<serde_json::Value>,
    pub limit: usize,
}

impl EventQuery {
    /// Whether `e` matches (the stream glob is the caller's).
    pub fn matches(&self, e: &Envelope) -> bool {
        (self.event_types.is_empty() || self.event_types.iter().any(|t| t == e.body.event_type()))
            && self.from_time.is_none_or(|t| e.occurred_at >= t)
            && self.to_time.is_none_or(|t| e.occurred_at <= t)
            && self.from_seq.is_none_or(|s| e.seq >= s)
            && (self.trace_id.is_none() || self.trace_id == e.correlation.trace_id)
            && self.event_id.as_ref().is_none_or(|id| *id == e.event_id)
            && self.contains.as_ref().is_none_or(|c| {
                let v = serde_json::to_value(&e.body).expect("bodies serialize");
                v.get("payload").is_some_and(|p| json_contains(p, c))
            })
    }
}

/// PostgreSQL's jsonb `@>`: objects contain a subset of keys (recursively), arrays contain
/// every element of the other, scalars are equal.
pub fn json_contains(doc: &serde_json::Value, pat: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Object};
    match (doc, pat) {
        (Object(d), Object(p)) => p
            .iter()
            .all(|(k, pv)| d.get(k).is_some_and(|dv| json_contains(dv, pv))),
        (Array(d), Array(p)) => p.iter().all(|pv| d.iter().any(|dv| json_contains(dv, pv))),
        (d, p) => d == p,
    }
}

/// [`EventSource::instruments`] by reading the stream's envelopes.
pub fn instruments_from_envelopes<S: EventSource + ?Sized>(
    source: &S,
    stream: &str,
) -> Result<BTreeMap<u32, String>> {
    let mut out = BTreeMap::new();
    source.read(stream, SeqRange::ALL, &mut |e| {
        if let Some(sym) = e.instrument {
            out.insert(crate::event::instrument_id(&sym), sym);
        }
        Ok(())
    })?;
    Ok(out)
}

/// `read_records` by encoding each envelope `read` gives.
pub fn records_from_envelopes<S: EventSource + ?Sized>(
    source: &S,
    stream: &str,
    range: SeqRange,
    f: &mut RecordSink<'_>,
) -> Result<()> {
    let mut enc = crate::event::StreamEncoder::new(0);
    let mut buf = Vec::new();
    source.read(stream, range, &mut |e| {
        let mut w = tapedeck_guest::codec::EventBatchWriter::new(std::mem::take(&mut buf));
        enc.encode(&e, &mut w)?;
        f(
            e.seq,
            e.occurred_at,
            w.records().next().expect("one record"),
        )?;
        buf = w.finish();
        Ok(())
    })
}

/// What an append did to one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub stream: String,
    /// Events stored by this call.
    pub appended: u64,
    /// The seqs they got, when any.
    pub first_seq: Option<u64>,
    /// The stream's last seq after the call.
    pub last_seq: u64,
    /// Events already stored under the same idempotency key (not stored again). Only stores
    /// with idempotency keys (PostgreSQL) find any.
    pub duplicates: Vec<Duplicate>,
}

/// An event of a batch that was already stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// Its index in the batch.
    pub index: usize,
    /// The stored event's id and seq.
    pub event_id: String,
    pub seq: u64,
}

/// What [`EventSink::append`] did, per stream of the batch (in the batch's order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppendReport {
    pub streams: Vec<AppendOutcome>,
}

impl AppendReport {
    /// Events stored.
    pub fn appended(&self) -> u64 {
        self.streams.iter().map(|s| s.appended).sum()
    }

    /// Events not stored because the store held them already.
    pub fn duplicates(&self) -> usize {
        self.streams.iter().map(|s| s.duplicates.len()).sum()
    }

    /// The report of a store without idempotency keys that stored every event of `events`.
    pub(crate) fn all_stored(events: &[Envelope]) -> Self {
        let streams = events
            .chunk_by(|a, b| a.stream_key == b.stream_key)
            .map(|run| AppendOutcome {
                stream: run[0].stream_key.clone(),
                appended: run.len() as u64,
                first_seq: Some(run[0].seq),
                last_seq: run[run.len() - 1].seq,
                duplicates: Vec::new(),
            })
            .collect();
        AppendReport { streams }
    }
}

/// Appends to a store.
pub trait EventSink {
    /// Appends events; per stream each seq must be the last one + 1 (from 1). A batch that
    /// breaks that is refused whole. Stores with idempotency keys skip events they hold
    /// already and report them as duplicates.
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport>;

    fn put_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()>;

    /// Sets aside what could not become an event (an unparseable line of a capture, say)
    /// instead of dropping it; `source` names what produced it (`import-binance`). Durable when
    /// it returns. Returns where it went, for summaries.
    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String>;
}

/// A store that is read and written (imports continue what it holds).
pub trait Store: EventSource + EventSink {}

impl<T: EventSource + EventSink> Store for T {}

/// Checks that `events` continue each stream gaplessly from `last` (updated on success only).
pub(crate) fn check_seqs(
    last: &BTreeMap<String, u64>,
    events: &[Envelope],
) -> Result<BTreeMap<String, u64>> {
    let mut next = BTreeMap::new();
    for e in events {
        let prev = next
            .get(&e.stream_key)
            .or_else(|| last.get(&e.stream_key))
            .copied()
            .unwrap_or(0);
        if e.seq != prev + 1 {
            return Err(Error::SeqGap {
                stream: e.stream_key.clone(),
                expected: prev + 1,
                got: e.seq,
            });
        }
        next.insert(e.stream_key.clone(), e.seq);
    }
    Ok(next)
}

/// What [`copy`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopySummary {
    pub streams: u64,
    pub events: u64,
    pub snapshots: u64,
}

/// Copies `streams` of `from` (events, then stored snapshots) to another store, in batches of
/// `batch` events; `progress` hears (stream, events copied so far). Seqs, ids and every
/// envelope field are kept: the copy reads back identical.
///
/// The source is read on a thread of its own and hands batches over a channel of two, so the
/// sink never runs inside the source's read (a database store reads inside its own async
/// runtime, and a database sink cannot block on its runtime from there), reading and writing
/// overlap, and memory stays at a few batches.
pub fn copy(
    from: &dyn EventSource,
    to: &mut dyn EventSink,
    streams: &[StreamInfo],
    batch: usize,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<CopySummary> {
    let batch = batch.max(1);
    let mut sum = CopySummary::default();
    for s in streams {
        sum.streams += 1;
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Envelope>>(2);
            let reader = scope.spawn(move || {
                let mut buf = Vec::with_capacity(batch);
                from.read(&s.key, SeqRange::ALL, &mut |e| {
                    buf.push(e);
                    if buf.len() >= batch {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                        // The writer hangs up only after an error of its own, which is the one
                        // reported: stop reading.
                        tx.send(full).map_err(|_| {
                            Error::io(&s.key, std::io::Error::other("the copy's writer stopped"))
                        })?;
                    }
                    Ok(())
                })?;
                if !buf.is_empty() {
                    let _ = tx.send(buf);
                }
                Ok(())
            });
            let written = rx.iter().try_for_each(|events| {
                to.append(&events)?;
                sum.events += events.len() as u64;
                progress(&s.key, sum.events);
                Ok(())
            });
            drop(rx);
            let read = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            written.and(read)
        })?;
        for snap in from.snapshots(&s.key)? {
            to.put_snapshot(&snap)?;
            sum.snapshots += 1;
        }
    }
    Ok(sum)
}

/// Opens a store by URI to read (see [`StoreUri`]).
pub fn open(uri: &str) -> Result<Box<dyn EventSource>> {
    uri.parse::<StoreUri>()?.open()
}

/// Opens a store by URI to read and write (see [`StoreUri::open_writable`]).
pub fn open_writable(uri: &str) -> Result<Box<dyn Store>> {
    uri.parse::<StoreUri>()?.open_writable()
}

/// The keys of the streams `glob` matches, as a replay takes them.
pub fn matching_streams(source: &dyn EventSource, glob: &str) -> Result<Vec<String>> {
    Ok(source
        .streams()?
        .into_iter()
        .map(|s| s.key)
        .filter(|k| crate::glob::glob_match(glob, k))
        .collect())
}
