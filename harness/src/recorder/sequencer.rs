//! The sequencer: the one thread that gives events their seqs and makes them durable.
//!
//! It takes submissions (a connection's lines, an HTTP batch) from the inputs, drains what
//! else is waiting (group commit), assigns each event the next seq of its stream (or, for a
//! resend of an event id it recorded, the seq it got then), appends the sequenced envelopes to
//! the WAL, fsyncs once, and only then replies. Malformed input is quarantined (a line in
//! `<wal>/quarantine/input.jsonl`, synced with the same group) and nacked with its reason.
//!
//! Overload (the WAL holds more than `max_backlog_events` not yet in every sink): critical
//! events wait, and so do their senders; market data, when lossy, is held per stream and the
//! oldest dropped (nacked as dropped) beyond `queue_per_stream`. When the backlog is back
//! under the limit, what was held is sequenced in arrival order, each stream that lost events
//! first getting a `book_gap` event that counts them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::config::RecordConfig;
use super::files::{Quarantine, write_checkpoint};
use super::metrics::Metrics;
use super::protocol::{AckId, Incoming, Reply};
use super::wal::Wal;
use super::{Class, now_ns};
use crate::error::{Error, Result};
use crate::event::Envelope;

/// What an input hands the sequencer: events in the order they arrived, one reply each.
#[derive(Debug)]
pub struct Submission {
    pub items: Vec<Item>,
    pub reply: oneshot::Sender<Vec<Reply>>,
}

#[derive(Debug)]
pub enum Item {
    Event {
        id: AckId,
        event: Box<Incoming>,
    },
    /// Input that is not an event: quarantined and nacked.
    Bad {
        id: AckId,
        error: String,
        /// Where it came from (`tcp 127.0.0.1:40112 line 7`).
        origin: String,
        /// The input as received (at most [`QUARANTINE_KEEP`] bytes of it).
        raw: Vec<u8>,
        /// Its full length.
        len: usize,
    },
}

impl Item {
    /// Bad input from `origin`: quarantined (its first [`QUARANTINE_KEEP`] bytes) and nacked.
    pub fn bad(id: AckId, error: String, origin: String, raw: &[u8]) -> Item {
        Item::Bad {
            id,
            error,
            origin,
            raw: raw[..raw.len().min(QUARANTINE_KEEP)].to_vec(),
            len: raw.len(),
        }
    }
}

/// The most of one bad input kept in quarantine (an oversized line is cut here; its length is
/// recorded).
pub const QUARANTINE_KEEP: usize = 64 << 10;

/// What the sequencer and the sinks share: the durable end of the WAL and a stop flag.
#[derive(Debug, Default)]
pub struct Progress {
    durable: Mutex<u64>,
    moved: Condvar,
    stop: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub fn durable(&self) -> u64 {
        *self.durable.lock().expect("progress lock")
    }

    pub fn set_durable(&self, lsn: u64) {
        *self.durable.lock().expect("progress lock") = lsn;
        self.moved.notify_all();
    }

    /// Waits until the durable end passes `lsn`, at most `timeout`; returns the durable end.
    pub fn wait_past(&self, lsn: u64, timeout: Duration) -> u64 {
        let g = self.durable.lock().expect("progress lock");
        let (g, _) = self
            .moved
            .wait_timeout_while(g, timeout, |d| *d <= lsn && !self.stopping())
            .expect("progress lock");
        *g
    }

    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
        self.moved.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// What the sequencer starts from: each stream's last seq and the recent events' dedup keys
/// ((stream, idempotency key) → seq).
#[derive(Debug, Default)]
pub struct Recovered {
    pub last_seq: HashMap<String, u64>,
    pub recent_ids: VecDeque<((String, String), u64)>,
}

/// Held while overloaded: an event and where its reply goes.
#[derive(Debug)]
struct Held {
    arrival: u64,
    sub: u64,
    slot: usize,
    id: AckId,
    event: Box<Incoming>,
}

#[derive(Debug, Default)]
struct Dropped {
    count: u64,
    first_at: i64,
    last_at: i64,
    instrument: Option<String>,
}

struct PendingReply {
    replies: Vec<Option<Reply>>,
    left: usize,
    tx: oneshot::Sender<Vec<Reply>>,
}

/// The dedup window: the seqs of the last `window` events that had a dedup key, by (stream,
/// key), so a resend is acknowledged with the seq it got the first time. Runs per event: one
/// allocation per key, shared by the map and the eviction order.
struct Recent {
    seqs: HashMap<Arc<str>, u64>,
    order: VecDeque<Arc<str>>,
    window: u64,
}

impl Recent {
    fn new(window: u64) -> Self {
        Recent {
            seqs: HashMap::new(),
            order: VecDeque::new(),
            window,
        }
    }

    /// One key for (stream, dedup key): stream keys hold no control character, so the NUL
    /// between them keeps two pairs from making the same key.
    fn key(stream: &str, key: &str) -> Arc<str> {
        let mut k = String::with_capacity(stream.len() + 1 + key.len());
        k.push_str(stream);
        k.push('\0');
        k.push_str(key);
        k.into()
    }

    fn get(&self, k: &str) -> Option<u64> {
        self.seqs.get(k).copied()
    }

    fn remember(&mut self, k: Arc<str>, seq: u64) {
        self.seqs.insert(k.clone(), seq);
        self.order.push_back(k);
        while self.order.len() as u64 > self.window {
            if let Some(old) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
    }
}

/// Held critical events beyond this stop the sequencer from taking more input while
/// overloaded (the senders wait).
const HOLD_CRITICAL: usize = 10_000;

pub struct Sequencer {
    wal: Wal,
    cfg: RecordConfig,
    rx: mpsc::Receiver<Submission>,
    rt: tokio::runtime::Runtime,
    metrics: Arc<Metrics>,
    progress: Arc<Progress>,
    last_seq: HashMap<String, u64>,
    recent: Recent,
    /// The WAL record being written (one buffer, reused).
    record: Vec<u8>,
    quarantine: Quarantine,
    pending: HashMap<u64, PendingReply>,
    next_sub: u64,
    arrival: u64,
    held_critical: VecDeque<Held>,
    held_market: BTreeMap<String, VecDeque<Held>>,
    dropped: BTreeMap<String, Dropped>,
    overloaded: bool,
    last_trim: Instant,
    /// The WAL is trimmed up to here.
    trimmed: u64,
}

impl Sequencer {
    pub fn new(
        wal: Wal,
        cfg: RecordConfig,
        rx: mpsc::Receiver<Submission>,
        metrics: Arc<Metrics>,
        progress: Arc<Progress>,
        recovered: Recovered,
    ) -> Result<Self> {
        let quarantine = Quarantine::open(&cfg.wal.dir)?;
        // Its own clock for waiting on input with a timeout: the inputs' runtime may shut down
        // first at a stop, and the sequencer must still commit what it took.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::message("starting the sequencer", e.to_string()))?;
        let mut recent = Recent::new(cfg.wal.dedup_window);
        for ((stream, key), seq) in recovered.recent_ids {
            recent.remember(Recent::key(&stream, &key), seq);
        }
        Ok(Sequencer {
            wal,
            cfg,
            rx,
            rt,
            metrics,
            progress,
            last_seq: recovered.last_seq,
            recent,
            record: Vec::new(),
            quarantine,
            pending: HashMap::new(),
            next_sub: 0,
            arrival: 0,
            held_critical: VecDeque::new(),
            held_market: BTreeMap::new(),
            dropped: BTreeMap::new(),
            overloaded: false,
            last_trim: Instant::now(),
            trimmed: 0,
        })
    }

    /// Runs until every input has hung up (the service drops the senders to stop). A WAL
    /// write or fsync error ends it with that error: nothing more can be acknowledged.
    pub fn run(mut self) -> Result<()> {
        let delay = Duration::from_micros(self.cfg.wal.sync_delay_us);
        let mut closed = false;
        loop {
            self.update_overload();
            let taking = !closed
                && (!self.overloaded
                    || (self.cfg.market_data.lossy && self.held_critical.len() < HOLD_CRITICAL));
            let mut got: Vec<Submission> = Vec::new();
            if taking {
                match self.recv(Duration::from_millis(50)) {
                    Some(Some(s)) => got.push(s),
                    Some(None) => closed = true,
                    None => {}
                }
                if !got.is_empty() {
                    let deadline = Instant::now() + delay;
                    let mut bytes = 0usize;
                    loop {
                        match self.rx.try_recv() {
                            Ok(s) => {
                                bytes += s.items.len() * 256;
                                got.push(s);
                                if bytes >= self.cfg.wal.sync_bytes {
                                    break;
                                }
                            }
                            Err(mpsc::error::TryRecvError::Empty) => {
                                let left = deadline.saturating_duration_since(Instant::now());
                                if left.is_zero() {
                                    break;
                                }
                                match self.recv(left) {
                                    Some(Some(s)) => got.push(s),
                                    Some(None) => {
                                        closed = true;
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                }
            } else {
                // Overloaded and holding, or the inputs are gone with events still held: wait
                // for the sinks to catch up.
                std::thread::sleep(Duration::from_millis(20));
            }
            let now = now_ns();
            if !self.overloaded {
                self.release_held(now)?;
            }
            for s in got {
                self.take(s, now)?;
            }
            self.commit()?;
            self.housekeeping()?;
            if closed && self.pending.is_empty() {
                return Ok(());
            }
        }
    }

    /// One submission: `None` on timeout, `Some(None)` once every sender is gone.
    fn recv(&mut self, timeout: Duration) -> Option<Option<Submission>> {
        let rx = &mut self.rx;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, rx.recv()).await })
            .ok()
    }

    fn update_overload(&mut self) {
        let durable = self.wal.durable_lsn();
        let stored = self.metrics.least_stored_lsn().unwrap_or(durable);
        let backlog = durable.saturating_sub(stored);
        let limit = self.cfg.wal.max_backlog_events;
        // Hysteresis: out of overload only below 90% of the limit.
        self.overloaded = if self.overloaded {
            backlog > limit / 10 * 9
        } else {
            backlog >= limit
        };
        self.metrics
            .overloaded
            .store(u64::from(self.overloaded), Relaxed);
    }

    /// Registers `s`'s reply and sequences (or holds, or quarantines) its items.
    fn take(&mut self, s: Submission, now: i64) -> Result<()> {
        let sub = self.next_sub;
        self.next_sub += 1;
        let n = s.items.len();
        self.pending.insert(
            sub,
            PendingReply {
                replies: vec![None; n],
                left: n,
                tx: s.reply,
            },
        );
        for (slot, item) in s.items.into_iter().enumerate() {
            match item {
                Item::Bad {
                    id,
                    error,
                    origin,
                    raw,
                    len,
                } => {
                    self.quarantine.add(&origin, &error, &raw, len)?;
                    self.metrics.rejected.fetch_add(1, Relaxed);
                    self.resolve(sub, slot, Reply::nack(id, error));
                }
                Item::Event { id, event } => {
                    let arrival = self.arrival;
                    self.arrival += 1;
                    let held = Held {
                        arrival,
                        sub,
                        slot,
                        id,
                        event,
                    };
                    if self.overloaded {
                        self.hold(held);
                    } else {
                        self.sequence(held, now)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn hold(&mut self, h: Held) {
        if Class::of(&h.event.body) == Class::Critical || !self.cfg.market_data.lossy {
            self.held_critical.push_back(h);
            return;
        }
        let stream = h.event.stream_key.clone();
        let q = self.held_market.entry(stream.clone()).or_default();
        q.push_back(h);
        if q.len() > self.cfg.market_data.queue_per_stream.max(1) {
            let old = q.pop_front().expect("over capacity");
            let d = self.dropped.entry(stream).or_default();
            if d.count == 0 {
                d.first_at = old.event.occurred_at;
            }
            d.count += 1;
            d.last_at = old.event.occurred_at;
            d.instrument = old.event.instrument.clone();
            self.metrics.dropped.fetch_add(1, Relaxed);
            self.resolve(
                old.sub,
                old.slot,
                Reply::nack(
                    old.id,
                    "dropped: the recorder is overloaded and market data is lossy",
                ),
            );
        }
    }

    /// Sequences what was held, in arrival order, gap markers first in their streams.
    fn release_held(&mut self, now: i64) -> Result<()> {
        if self.held_critical.is_empty() && self.held_market.is_empty() {
            return Ok(());
        }
        let mut all: Vec<Held> = self.held_critical.drain(..).collect();
        for (_, q) in std::mem::take(&mut self.held_market) {
            all.extend(q);
        }
        all.sort_by_key(|h| h.arrival);
        for h in all {
            if let Some(d) = self.dropped.remove(&h.event.stream_key) {
                self.gap_marker(&h.event.stream_key, d, now)?;
            }
            self.sequence(h, now)?;
        }
        // Streams whose every held event was dropped cannot exist (the newest are kept), but
        // a marker is never lost either.
        for (stream, d) in std::mem::take(&mut self.dropped) {
            self.gap_marker(&stream, d, now)?;
        }
        Ok(())
    }

    fn gap_marker(&mut self, stream: &str, d: Dropped, now: i64) -> Result<()> {
        let seq = self.next_seq(stream);
        let body = crate::import::binance::message::book_gap(serde_json::json!({
            "reason": "recorder_overload",
            "dropped": d.count,
            "first_dropped_at": d.first_at,
            "last_dropped_at": d.last_at,
        }));
        let mut e = Envelope::new(stream, seq, d.last_at, d.instrument.as_deref(), body);
        e.ingested_at = now;
        self.append(&e)?;
        self.metrics.gaps.fetch_add(1, Relaxed);
        Ok(())
    }

    fn next_seq(&self, stream: &str) -> u64 {
        self.last_seq.get(stream).copied().unwrap_or(0) + 1
    }

    /// Gives `h` its seq (or the one it got before, for a resend) and appends it to the WAL.
    fn sequence(&mut self, h: Held, now: i64) -> Result<()> {
        let dedup = h.event.dedup_key();
        let key = dedup
            .as_deref()
            .map(|k| Recent::key(&h.event.stream_key, k));
        if let Some(k) = &key
            && let Some(seq) = self.recent.get(k)
        {
            self.metrics.deduplicated.fetch_add(1, Relaxed);
            self.resolve(h.sub, h.slot, Reply::Ack { ack: h.id, seq });
            return Ok(());
        }
        let seq = self.next_seq(&h.event.stream_key);
        let e = h.event.into_envelope(seq, now, dedup);
        self.append(&e)?;
        self.metrics.acked[Class::of(&e.body).index()].fetch_add(1, Relaxed);
        if let Some(k) = key {
            self.recent.remember(k, seq);
        }
        self.resolve(h.sub, h.slot, Reply::Ack { ack: h.id, seq });
        Ok(())
    }

    fn append(&mut self, e: &Envelope) -> Result<()> {
        self.record.clear();
        serde_json::to_writer(&mut self.record, e).expect("envelopes serialize");
        self.wal.append(&self.record)?;
        // The stream's key is copied only the first time it is seen (this runs per event).
        match self.last_seq.get_mut(&e.stream_key) {
            Some(last) => *last = e.seq,
            None => {
                self.last_seq.insert(e.stream_key.clone(), e.seq);
            }
        }
        self.metrics.sequenced[Class::of(&e.body).index()].fetch_add(1, Relaxed);
        Ok(())
    }

    fn resolve(&mut self, sub: u64, slot: usize, r: Reply) {
        let p = self.pending.get_mut(&sub).expect("pending submission");
        debug_assert!(p.replies[slot].is_none());
        p.replies[slot] = Some(r);
        p.left -= 1;
    }

    /// One fsync for everything appended since the last, then the replies that waited on it.
    fn commit(&mut self) -> Result<()> {
        if self.wal.next_lsn() > self.wal.durable_lsn() + 1 {
            let t = Instant::now();
            let durable = self.wal.sync()?;
            self.metrics.wal_fsyncs.fetch_add(1, Relaxed);
            self.metrics
                .wal_fsync_seconds
                .observe(t.elapsed().as_secs_f64());
            self.metrics.wal_durable_lsn.store(durable, Relaxed);
            self.progress.set_durable(durable);
        }
        self.quarantine.sync()?;
        let done: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.left == 0)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            let p = self.pending.remove(&k).expect("listed");
            // A sender that hung up gets no reply; what it sent is recorded all the same.
            let _ = p.tx.send(
                p.replies
                    .into_iter()
                    .map(|r| r.expect("resolved"))
                    .collect(),
            );
        }
        Ok(())
    }

    /// WAL size figures, and trimming below what every sink stored and every reader took
    /// (keeping the dedup window).
    fn housekeeping(&mut self) -> Result<()> {
        self.metrics.wal_bytes.store(self.wal.bytes(), Relaxed);
        self.metrics
            .wal_segments
            .store(self.wal.segments() as u64, Relaxed);
        if self.last_trim.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.last_trim = Instant::now();
        let stored = self.metrics.least_read_lsn().unwrap_or(0);
        let keep_from = self
            .wal
            .durable_lsn()
            .saturating_sub(self.cfg.wal.dedup_window);
        let upto = stored.min(keep_from);
        if upto > self.trimmed {
            // Seqs outlive the records trimmed away: each stream's last seq is written down
            // (durably) before the records that held it may go.
            write_checkpoint(&self.cfg.wal.dir, &self.last_seq)?;
            self.wal.trim(upto)?;
            self.trimmed = upto;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn the_dedup_window_keeps_the_newest_keys_per_stream() {
        let mut r = Recent::new(2);
        r.remember(Recent::key("a", "k1"), 1);
        // The same key in another stream is another event; a stream and key that concatenate
        // alike are too.
        r.remember(Recent::key("b", "k1"), 7);
        assert_eq!(r.get(&Recent::key("a", "k1")), Some(1));
        assert_eq!(r.get(&Recent::key("b", "k1")), Some(7));
        assert_eq!(r.get(&Recent::key("a:b", "k1")), None);
        assert_eq!(r.get(&Recent::key("a", "\0k1")), None);
        // A third key pushes the oldest out of a window of two.
        r.remember(Recent::key("a", "k2"), 2);
        assert_eq!(r.get(&Recent::key("a", "k1")), None);
        assert_eq!(r.get(&Recent::key("b", "k1")), Some(7));
        assert_eq!(r.get(&Recent::key("a", "k2")), Some(2));
    }
}
