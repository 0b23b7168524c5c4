//! Where recorded events come from: the `EventSource` seam, with the embedded file store and
//! an in-memory store beside it. Every command takes a store URI; `open` picks the
//! implementation.

mod file;
pub mod index;
mod memory;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use file::{FileStore, FileStoreOptions};
pub use memory::MemoryStore;

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
    /// instrument ids from [`crate::replay::instrument_id`]), in seq order: what replay feeds
    /// guests. Stores with a columnar index serve these without parsing envelopes.
    fn read_records(&self, stream: &str, range: SeqRange, f: &mut RecordSink<'_>) -> Result<()> {
        records_from_envelopes(self, stream, range, f)
    }
}

/// `read_records` by encoding each envelope `read` gives.
pub fn records_from_envelopes<S: EventSource + ?Sized>(
    source: &S,
    stream: &str,
    range: SeqRange,
    f: &mut RecordSink<'_>,
) -> Result<()> {
    let mut enc = crate::replay::StreamEncoder::new(0);
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

/// Appends to a store.
pub trait EventSink {
    /// Appends events; per stream each seq must be the last one + 1 (from 1). A batch that
    /// breaks that is refused whole.
    fn append(&mut self, events: &[Envelope]) -> Result<()>;

    fn put_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()>;
}

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

/// Opens a store by URI: a directory path (or `file://DIR`) is the file store.
pub fn open(uri: &str) -> Result<Box<dyn EventSource>> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if uri.contains("://") && !uri.starts_with("file://") {
        return Err(Error::BadStoreUri {
            uri: uri.to_string(),
            reason: "only file stores (a directory, or file://DIR) are supported so far".into(),
        });
    }
    Ok(Box::new(FileStore::open(path)?))
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for a time in ns since the epoch.
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sod = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{:09}Z",
        file::day_of(ns),
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ns.rem_euclid(1_000_000_000)
    )
}

/// Matches a stream key against a glob with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, key: &str) -> bool {
    fn m(p: &[u8], k: &[u8]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], k) || (!k.is_empty() && m(p, &k[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &k[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("md:*", "md:binance-spot:BTCUSDT"));
        assert!(glob_match("*BTC*", "md:binance-spot:BTCUSDT"));
        assert!(glob_match("md:binance-?pot:*", "md:binance-spot:X"));
        assert!(!glob_match("md:*", "orders:1"));
        assert!(glob_match("*", ""));
    }
}
