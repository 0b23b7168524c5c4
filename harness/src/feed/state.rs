//! What the simulator's player and its sockets share: the capture's books (the oracle), the
//! frames sent, the counters `/sim/status` reports, the REST limit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::import::binance::book::Book;
use crate::import::binance::message::Snapshot;
use crate::import::binance::sync::{Diff, Step, SyncState};

/// Messages a connection may fall behind before it is closed.
pub const BACKLOG: usize = 1 << 16;
/// How long a depth request waits for a book the capture has not reached yet.
pub(super) const BOOK_WAIT: Duration = Duration::from_secs(5);
/// Binance's largest depth `limit`.
pub(super) const MAX_LIMIT: usize = 5000;

/// What the simulator has done, as `GET /sim/status` says it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Capture messages sent (to whoever was connected).
    pub sent: u64,
    /// Connections dropped by `disconnect_every`.
    pub disconnects: u64,
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Depth snapshots served.
    pub snapshots_served: u64,
    /// Capture lines that could not be served (not `<ts> <json>`, or not a stream message).
    pub skipped_lines: u64,
    /// Pings sent, and pongs that answered one.
    pub pings: u64,
    pub pongs: u64,
    /// Connections closed for not answering a ping in time.
    pub pong_timeouts: u64,
    /// REST requests answered 429 (over the limit) and 418 (sent during a 429's wait).
    pub rate_limited: u64,
    pub banned: u64,
    /// The whole capture has been sent.
    pub done: bool,
}

/// The capture's book of one symbol, kept in sync the documented way, and the same book
/// `lag` applied diffs behind (what the depth endpoint serves).
#[derive(Debug, Default)]
pub(super) struct Oracle {
    pub(super) sync: SyncState,
    pub(super) book: Book,
    pub(super) lag: usize,
    /// The last `lag` applied diffs, oldest first: not yet in `lagged`.
    pub(super) behind: std::collections::VecDeque<Diff>,
    pub(super) lagged: Book,
}

impl Oracle {
    pub(super) fn snapshot(&mut self, s: Snapshot) {
        self.book = Book::from_levels(s.last_update_id, &s.bids, &s.asks);
        self.lagged = self.book.clone();
        self.behind.clear();
        for p in self.sync.snapshot(s.last_update_id) {
            self.diff(p.diff);
        }
    }

    pub(super) fn diff(&mut self, d: Diff) {
        if let Step::Apply(d) = self.sync.diff(d, 0, 0) {
            self.book.apply(d.last, &d.bids, &d.asks);
            self.behind.push_back(d);
            while self.behind.len() > self.lag {
                let d = self.behind.pop_front().expect("not empty");
                self.lagged.apply(d.last, &d.bids, &d.asks);
            }
        }
    }

    /// Whether the book is known (a snapshot, or in sync since).
    pub(super) fn known(&self) -> bool {
        self.sync.last_u.is_some() || self.sync.snapshot_id.is_some()
    }
}

#[derive(Debug, Clone)]
pub(super) enum Frame {
    Msg { stream: Arc<str>, text: Utf8Bytes },
    Disconnect,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) books: Mutex<BTreeMap<String, Oracle>>,
    /// Woken when a book becomes known.
    pub(super) book_known: Notify,
    pub(super) tx: broadcast::Sender<Frame>,
    /// Taken by the first WebSocket connection to start the playback.
    pub(super) start: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    pub(super) sent: AtomicU64,
    pub(super) disconnects: AtomicU64,
    pub(super) connections: AtomicU64,
    pub(super) snapshots_served: AtomicU64,
    pub(super) skipped_lines: AtomicU64,
    pub(super) done: AtomicBool,
    pub(super) pings: AtomicU64,
    pub(super) pongs: AtomicU64,
    pub(super) pong_timeouts: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) banned: AtomicU64,
    pub(super) ping_every: Option<Duration>,
    pub(super) pong_timeout: Duration,
    pub(super) rest: Option<Mutex<RestLimit>>,
}

impl Shared {
    pub(super) fn status(&self) -> Status {
        Status {
            sent: self.sent.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            connections: self.connections.load(Relaxed),
            snapshots_served: self.snapshots_served.load(Relaxed),
            skipped_lines: self.skipped_lines.load(Relaxed),
            pings: self.pings.load(Relaxed),
            pongs: self.pongs.load(Relaxed),
            pong_timeouts: self.pong_timeouts.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            banned: self.banned.load(Relaxed),
            done: self.done.load(Relaxed),
        }
    }
}

/// The REST limit's window: requests counted since `start`; past the limit, none may come
/// before `blocked_until`.
#[derive(Debug)]
pub(super) struct RestLimit {
    pub(super) limit: u32,
    pub(super) window: Duration,
    pub(super) start: Instant,
    pub(super) count: u32,
    pub(super) blocked_until: Option<Instant>,
}

impl RestLimit {
    pub(super) fn new(limit: u32, window: Duration) -> Self {
        RestLimit {
            limit,
            window,
            start: Instant::now(),
            count: 0,
            blocked_until: None,
        }
    }

    /// None: the request at `now` may go through; else its refusal.
    pub(super) fn check(&mut self, now: Instant) -> Option<Refusal> {
        let retry_after = |until: Instant| {
            // Whole seconds, rounded up: a client that waits them is past the block.
            let left = until.saturating_duration_since(now);
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        };
        if let Some(until) = self.blocked_until.filter(|u| now < *u) {
            return Some(Refusal::Banned {
                retry_after: retry_after(until),
            });
        }
        if now.duration_since(self.start) >= self.window {
            self.start = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count <= self.limit {
            return None;
        }
        let until = self.start + self.window;
        self.blocked_until = Some(until);
        Some(Refusal::TooMany {
            retry_after: retry_after(until),
        })
    }
}

/// Why a REST request is refused, and the whole seconds to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Over the limit: HTTP 429.
    TooMany { retry_after: u64 },
    /// Sent during a 429's wait: HTTP 418, as Binance bans such an IP.
    Banned { retry_after: u64 },
}
