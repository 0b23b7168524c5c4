//! The recorder: what a live bot writes every event through (`tapedeck record`).
//!
//! ```text
//!  inputs ──► sequencer ──► WAL (fsync, group commit) ──► ack to the sender
//!  (TCP, Unix,   (seq per stream,                 │
//!   HTTP,         dedup, classes)                 ├──► sink: file store   ─┐
//!   Binance)                                      │
//!                                                 ├──► sink: PostgreSQL    ├─► stored LSN
//!                                                 └──► sink: ClickHouse   ─┘      │
//!                                      WAL trimmed below the least stored LSN ◄───┘
//! ```
//!
//! - Inputs parse envelopes on their own tasks (the Binance client maps exchange messages to
//!   them, see [`binance`]) and hand them to the one sequencer thread,
//!   which alone assigns each stream's seq, appends the sequenced envelope to the WAL and
//!   acknowledges it once an fsync covers it (one fsync per group of what arrived meanwhile).
//! - Sinks tail the WAL, each on a thread of its own, and store micro-batches (by size, or by
//!   the age of their oldest critical or market-data event) with the seqs the sequencer gave,
//!   skipping what the store already holds: a retried or replayed batch is a no-op, and every
//!   sink ends up with the same seqs. A failed append is retried with backoff; meanwhile the
//!   WAL holds the events (no memory queue grows with an outage).
//! - Overload is a backlog in the WAL beyond `wal.max_backlog_events` not yet in every sink:
//!   inputs then wait (critical classes are never dropped), except that market data, when
//!   `market_data.lossy` is set, is held per stream and dropped oldest first before it gets a
//!   seq, each loss counted and marked in its stream by a `book_gap` event.
//! - On start the WAL is recovered (a torn tail quarantined), seqs continue from the WAL and
//!   the stores, and the sinks replay what they have not stored.

pub mod binance;
pub mod config;
pub mod files;
pub mod http;
pub mod ingress;
pub mod metrics;
pub mod protocol;
pub mod sequencer;
pub mod service;
pub mod sink;
pub mod wal;

pub use config::RecordConfig;
pub use service::{Recorder, RunningRecorder, Submitter, WalReader};

use crate::event::Body;

/// How the recorder treats an event under overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Quotes, trades, books: may be dropped under overload when configured.
    MarketData,
    /// Orders, fills, positions, balances, risk, guardrails, funding, audit (custom): never
    /// dropped.
    Critical,
}

impl Class {
    pub fn of(body: &Body) -> Class {
        match body {
            Body::Quote { .. }
            | Body::Trade { .. }
            | Body::BookSnapshot { .. }
            | Body::BookDelta { .. } => Class::MarketData,
            Body::Custom { type_name, .. } if type_name == "book_gap" => Class::MarketData,
            _ => Class::Critical,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::MarketData => "market_data",
            Class::Critical => "critical",
        }
    }

    pub const ALL: [Class; 2] = [Class::MarketData, Class::Critical];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The recorder's clock, for `ingested_at` and lag metrics: the wall clock (it stamps when an
/// event arrived; it reaches no guest and no report).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
