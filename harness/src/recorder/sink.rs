//! A sink: one store fed from the WAL on a thread of its own.
//!
//! It tails the WAL from where the recorder started (the oldest record kept), collects a
//! micro-batch (flushed at `batch_events`, or when its oldest critical event has waited
//! `critical_flush_ms` since ingest, or its oldest market-data event `flush_ms`), and appends
//! it grouped by stream with the seqs the sequencer gave. Events at or below what the store
//! holds for their stream are skipped, so a batch replayed after a restart, or retried after
//! an append whose outcome was lost, is stored once. A failed append is retried with
//! exponential backoff (reconnecting) until it lands; the WAL keeps the events meanwhile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::config::SinkConfig;
use super::metrics::{Metrics, SinkMetrics};
use super::sequencer::Progress;
use super::wal::WalTail;
use super::{Class, now_ns};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::store::{FileStoreOptions, Store, StoreUri};

pub struct SinkWorker {
    pub index: usize,
    pub uri: StoreUri,
    pub cfg: SinkConfig,
    pub wal_dir: PathBuf,
    /// The first WAL record to read.
    pub from_lsn: u64,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<Progress>,
}

/// A batch being collected.
#[derive(Default)]
struct Batch {
    events: Vec<Envelope>,
    last_lsn: u64,
    oldest: [Option<i64>; 2],
}

struct Open {
    store: Box<dyn Store>,
    /// The last seq the store holds per stream (streams it does not hold: absent).
    last: HashMap<String, u64>,
}

impl SinkWorker {
    fn m(&self) -> &SinkMetrics {
        &self.metrics.sinks[self.index]
    }

    /// Runs until the recorder stops and everything durable is stored (or, when the store
    /// cannot be reached at the stop, until the stop: the WAL keeps the rest for next time).
    pub fn run(self) -> Result<()> {
        let mut tail = WalTail::new(&self.wal_dir, self.from_lsn);
        self.m()
            .stored_lsn
            .store(self.from_lsn.saturating_sub(1), Relaxed);
        let mut open: Option<Open> = None;
        let mut batch = Batch::default();
        loop {
            let durable = self.progress.durable();
            while batch.events.len() < self.cfg.batch_events {
                let Some((lsn, bytes)) = tail.next(durable)? else {
                    break;
                };
                let e: Envelope = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
                    path: self.wal_dir.clone(),
                    line: lsn,
                    message: format!("WAL record {lsn} is not an envelope: {err}"),
                })?;
                let c = Class::of(&e.body).index();
                batch.oldest[c] =
                    Some(batch.oldest[c].map_or(e.ingested_at, |t| t.min(e.ingested_at)));
                batch.last_lsn = lsn;
                batch.events.push(e);
            }
            let caught_up = tail.next_lsn() > durable;
            let stopping = self.progress.stopping();
            let wait = self.wait_for(&batch);
            let due = batch.events.len() >= self.cfg.batch_events
                || wait.is_zero()
                || (stopping && caught_up);
            if due && !batch.events.is_empty() {
                let b = std::mem::take(&mut batch);
                if !self.flush(&mut open, b) {
                    // Stopped while the store was failing: the WAL keeps the batch.
                    return Ok(());
                }
                continue;
            }
            if stopping && caught_up && batch.events.is_empty() {
                return Ok(());
            }
            if caught_up {
                self.progress
                    .wait_past(tail.next_lsn() - 1, wait.min(Duration::from_millis(100)));
            }
        }
    }

    /// How long the batch may still wait (zero: flush now; long when empty).
    fn wait_for(&self, b: &Batch) -> Duration {
        let now = now_ns();
        let limits = [self.cfg.flush_ms, self.cfg.critical_flush_ms];
        Class::ALL
            .iter()
            .filter_map(|c| {
                let since = b.oldest[c.index()]?;
                let limit = limits[c.index()] as i64 * 1_000_000;
                Some(Duration::from_nanos((since + limit - now).max(0) as u64))
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Appends `b` until it lands; false if the recorder stopped first.
    fn flush(&self, open: &mut Option<Open>, b: Batch) -> bool {
        let mut backoff = Duration::from_millis(50);
        let max = Duration::from_millis(self.cfg.retry_max_ms.max(50));
        let mut events = b.events;
        // Grouped by stream (a stable sort keeps each stream's seq order): one run per stream
        // for the stores that write a row or a lock per run.
        events.sort_by(|x, y| x.stream_key.cmp(&y.stream_key));
        loop {
            match self.try_flush(open, &events) {
                Ok(()) => {
                    let m = self.m();
                    m.stored_lsn.store(b.last_lsn, Relaxed);
                    m.failing.store(0, Relaxed);
                    return true;
                }
                Err(err) => {
                    let m = self.m();
                    m.errors.fetch_add(1, Relaxed);
                    m.failing.store(1, Relaxed);
                    let msg = err.to_string();
                    tracing::warn!(sink = %m.name, error = %msg, retry_in_ms = backoff.as_millis() as u64, "append failed; retrying");
                    *m.last_error.lock().expect("metrics lock") = Some(msg);
                    // Reconnect, and re-read what the store holds: the append may have landed.
                    *open = None;
                    if self.progress.stopping() {
                        return false;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(max);
                    m.retries.fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn try_flush(&self, open: &mut Option<Open>, events: &[Envelope]) -> Result<()> {
        if open.is_none() {
            let store = self.uri.open_writable_with(FileStoreOptions {
                lock_timeout: Duration::from_secs(1),
                ..Default::default()
            })?;
            let last = store
                .streams()?
                .into_iter()
                .map(|s| (s.key, s.last_seq))
                .collect();
            *open = Some(Open { store, last });
        }
        let o = open.as_mut().expect("opened");
        // What the store does not hold yet (all of it, but for a replay after a restart or a
        // retry of an append that landed): copied only when some must be left out.
        let new = |e: &Envelope| e.seq > o.last.get(&e.stream_key).copied().unwrap_or(0);
        let fresh: std::borrow::Cow<'_, [Envelope]> = if events.iter().all(new) {
            events.into()
        } else {
            events
                .iter()
                .filter(|e| new(e))
                .cloned()
                .collect::<Vec<_>>()
                .into()
        };
        let t = Instant::now();
        if !fresh.is_empty() {
            // A stream the store holds less of than the batch continues is one the WAL no
            // longer has the start of (a new, empty store behind an old WAL): refuse rather
            // than store a stream with a hole.
            for run in fresh.chunk_by(|a, b| a.stream_key == b.stream_key) {
                let have = o.last.get(&run[0].stream_key).copied().unwrap_or(0);
                if run[0].seq != have + 1 {
                    return Err(Error::SeqGap {
                        stream: run[0].stream_key.clone(),
                        expected: have + 1,
                        got: run[0].seq,
                    });
                }
            }
            o.store.append(&fresh)?;
            for run in fresh.chunk_by(|a, b| a.stream_key == b.stream_key) {
                o.last
                    .insert(run[0].stream_key.clone(), run[run.len() - 1].seq);
            }
        }
        let m = self.m();
        m.insert_seconds.observe(t.elapsed().as_secs_f64());
        // Every event of the batch is in the store now (queue depths count them all); the
        // latencies are of the ones this append stored (not of a replay after a restart).
        for e in events {
            m.stored[Class::of(&e.body).index()].fetch_add(1, Relaxed);
        }
        let now = now_ns();
        let mut newest = i64::MIN;
        for e in fresh.iter() {
            m.ack_to_stored_seconds
                .observe((now - e.ingested_at).max(0) as f64 / 1e9);
            newest = newest.max(e.ingested_at);
        }
        if newest > i64::MIN {
            m.lag_us
                .store(((now - newest).max(0) / 1000) as u64, Relaxed);
        }
        Ok(())
    }
}
