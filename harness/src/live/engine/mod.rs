//! The live engine: one thread that reads the recorder's WAL (events are durable before any
//! module sees them), runs the active strategy per stream in batches, executes its decisions
//! on the paper venue, and submits what happened (orders, acks, cancels, fills) back through
//! the recorder into the exec streams. Control commands (swap, shadow, promote, rollback,
//! status) are applied between two batches, so no event is skipped or applied twice.
//!
//! A module's state moves to another module through `snapshot()` → `restore()`; when the new
//! module refuses the snapshot, its state is rebuilt by catch-up: the stream's events from
//! the store of the first sink and, past what that store holds, from the WAL, up to the last
//! event the old module saw. Decisions made while catching up are not executed (they were,
//! by the module that made them then).

mod read;
mod resume;
mod switch;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use tapedeck_guest::codec::EventBatchWriter;

use super::exec::{PaperAcks, audit_event, exec_events};
use crate::decision::decode_outputs;
use crate::error::{Error, Result};
use crate::event::{Body, Envelope, instrument_table};
use crate::glob::glob_match;
use crate::recorder::now_ns;
use crate::recorder::protocol::{Incoming, Reply};
use crate::recorder::wal::WalTail;
use crate::runtime::Instance;

use switch::compare;
use types::*;
pub use types::{Command, CommandReply, Engine, EngineParts, Handoff, Loaded, Request, SAVED};

impl Engine {
    pub fn new(p: EngineParts) -> Self {
        let active = p.active.clone();
        Engine {
            p,
            runs: BTreeMap::new(),
            active,
            previous: None,
            shadow: None,
            in_flight: VecDeque::new(),
            decided: Vec::new(),
            shadow_decided: Vec::new(),
            swaps: 0,
            rollbacks: 0,
            resume: Resume::default(),
        }
    }

    /// Runs until the stop flag is set; then runs what it has read and returns.
    pub fn run(mut self) -> Result<()> {
        let mut tail = std::mem::replace(
            &mut self.p.reader.tail,
            WalTail::new(&self.p.wal_dir, u64::MAX),
        );
        self.resume(tail.next_lsn())?;
        let mut stop_at: Option<u64> = None;
        let mut started = self.p.started.clone();
        started["strategy"] = self.active.describe();
        self.audit("live_started", started);
        loop {
            self.commands(&tail);
            let durable = self.p.reader.progress.durable();
            let mut read = 0;
            while read < BURST {
                let Some((lsn, bytes)) = tail.next(durable)? else {
                    break;
                };
                read += 1;
                let e: Envelope = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
                    path: self.p.wal_dir.clone(),
                    line: lsn,
                    message: format!("WAL record {lsn} is not an envelope: {err}"),
                })?;
                // Never the session's own streams (its exec and audit events).
                let own = e.stream_key.starts_with("exec:") || e.stream_key.starts_with("live:");
                if !own && glob_match(&self.p.streams, &e.stream_key) {
                    self.take(e, &tail)?;
                }
            }
            // Every event read is run before the next read: a batch ends where the durable
            // events ran out (or at `batch` events).
            let keys: Vec<String> = self
                .runs
                .iter()
                .filter(|(_, r)| r.writer.count() > 0)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.run_batch(&k, &tail)?;
            }
            self.p.reader.taken(tail.next_lsn() - 1);
            self.reap(false);
            // Stopping: what was durable when asked is run, then no more (inputs may go on).
            if self.p.stop.load(Relaxed) {
                let end = *stop_at.get_or_insert(durable);
                if read == 0 || tail.next_lsn() > end {
                    self.record_all_batches();
                    self.reap(true);
                    return Ok(());
                }
            }
            if read == 0 {
                // Briefly while acknowledgements are due (orders wait for them).
                let wait = if self.in_flight.is_empty() { 20 } else { 1 };
                self.p
                    .reader
                    .progress
                    .wait_past(tail.next_lsn() - 1, Duration::from_millis(wait));
            }
        }
    }

    /// Adds one durable event to its stream's batch (running the batch when full).
    fn take(&mut self, e: Envelope, tail: &WalTail) -> Result<()> {
        if !self.runs.contains_key(&e.stream_key) {
            let run = self.new_run(&e.stream_key, e.seq, tail)?;
            self.runs.insert(e.stream_key.clone(), run);
        }
        let run = self.runs.get_mut(&e.stream_key).expect("inserted");
        let pending = run.writer.count() as u64;
        if e.seq <= run.applied + pending {
            // Caught up past it already.
            return Ok(());
        }
        if e.seq != run.applied + pending + 1 {
            return Err(Error::SeqGap {
                stream: e.stream_key,
                expected: run.applied + pending + 1,
                got: e.seq,
            });
        }
        run.learn(&e);
        run.encoder.encode(&e, &mut run.writer)?;
        if run.writer.count() == 1 {
            run.first_in_batch = e.seq;
            run.first_ingest = e.ingested_at;
        }
        run.times.push(e.occurred_at);
        // A batch also ends where decisions start to be executed again after a restart.
        if run.writer.count() as usize >= self.p.batch || e.seq == run.silent_until {
            let key = e.stream_key;
            self.run_batch(&key, tail)?;
        }
        Ok(())
    }

    /// A new instance of `loaded`, initialized with its config and the stream's instruments.
    fn fresh(&self, loaded: &Arc<Loaded>, run: &StreamRun) -> Result<Instance> {
        let mut inst = self.p.rt.instantiate(&loaded.module)?;
        inst.init(&loaded.config)?;
        inst.set_instruments(&instrument_table(&run.symbols))?;
        Ok(inst)
    }

    /// Runs the stream's pending batch through the active module (and the shadow), the
    /// venue, and submits what the venue did.
    fn run_batch(&mut self, key: &str, tail: &WalTail) -> Result<()> {
        let mut run = self.runs.remove(key).expect("a stream with a batch");
        let r = self.run_batch_of(&mut run, tail);
        self.runs.insert(key.to_string(), run);
        r
    }

    fn run_batch_of(&mut self, run: &mut StreamRun, tail: &WalTail) -> Result<()> {
        let n = run.writer.count() as u64;
        if self.p.recent_events > 0 {
            let first = run.first_in_batch;
            for (i, (r, t)) in run.writer.records().zip(&run.times).enumerate() {
                run.recent.push_back((first + i as u64, *t, r.into()));
            }
            while run.recent.len() > self.p.recent_events {
                run.recent.pop_front();
            }
        }
        let spare = std::mem::take(&mut run.spare);
        let batch = std::mem::replace(&mut run.writer, EventBatchWriter::new(spare)).finish();
        let first = run.first_in_batch;
        if run.new_symbols {
            run.new_symbols = false;
            let table = instrument_table(&run.symbols);
            for slot in run.active.iter_mut().chain(run.shadow.iter_mut()) {
                slot.inst.set_instruments(&table)?;
            }
        }
        self.decided.clear();
        if let Some(slot) = run.active.as_mut() {
            match slot.inst.on_events(&batch) {
                Ok(out) => decode_outputs(&out, first, &run.times, &mut self.decided),
                Err(e) => {
                    self.trapped(run, &e, first, &batch, tail)?;
                }
            }
        }
        if let Some(slot) = run.shadow.as_mut() {
            self.shadow_decided.clear();
            match slot.inst.on_events(&batch) {
                Ok(out) => {
                    decode_outputs(&out, first, &run.times, &mut self.shadow_decided);
                    let names = instrument_table(&run.symbols);
                    if compare(
                        &mut run.shadow_seen,
                        &self.decided,
                        &self.shadow_decided,
                        &names,
                    ) {
                        self.p.metrics.shadow_divergent.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => {
                    run.findings.push(json!({
                        "kind": "shadow_trap",
                        "module": slot.loaded.sha256,
                        "message": e.to_string(),
                        "first_seq": first,
                        "last_seq": first + n - 1,
                    }));
                    tracing::warn!(stream = %run.key, error = %e, "the shadow module trapped; it is dropped");
                    run.shadow = None;
                }
            }
        }
        let paper = self.p.order_sink.is_none();
        let (fills, arrivals) = if paper {
            run.venue.on_batch(&batch, &self.decided);
            (run.venue.take_fills(), run.venue.take_arrivals())
        } else {
            Default::default()
        };
        run.events += n;
        run.decisions += self.decided.len() as u64;
        run.fills += fills.len() as u64;
        let events = exec_events(
            &mut run.ids,
            &self.p.venue_name,
            &run.key,
            &self.decided,
            &fills,
            &run.symbols,
            paper.then_some(PaperAcks {
                latency_ns: self.p.venue.latency_ns,
                arrivals: &arrivals,
            }),
        );
        run.orders += events
            .iter()
            .filter(|e| matches!(e.body, Body::OrderSubmitted { .. }))
            .count() as u64;
        let m = &self.p.metrics;
        m.events.fetch_add(n, Relaxed);
        m.batches.fetch_add(1, Relaxed);
        m.decisions.fetch_add(self.decided.len() as u64, Relaxed);
        m.fills.fetch_add(fills.len() as u64, Relaxed);
        let waited = (now_ns() - run.first_ingest).max(0);
        m.input_to_decision.observe(waited as f64 / 1e9);
        m.record_latency(std::time::Duration::from_nanos(waited as u64));
        run.applied = first + n - 1;
        run.times.clear();
        run.spare = batch;
        if run.applied <= run.silent_until {
            // Executed before the restart.
            return Ok(());
        }
        run.batch_ends.push(run.applied);
        if run.batch_ends.len() >= BATCH_ENDS {
            self.record_batches(run);
        }
        if !events.is_empty() {
            self.submit(events);
        }
        Ok(())
    }

    /// Sends exec events to the recorder; waits for the oldest acknowledgement when too many
    /// are in flight.
    fn submit(&mut self, events: Vec<Incoming>) {
        if self.in_flight.len() >= IN_FLIGHT {
            self.reap(true);
        }
        // Orders reach an executor only once recorded: after a crash, what was sent is what
        // the session holds.
        let lines = match &self.p.order_sink {
            Some(_) => events.iter().map(super::sink::line).collect(),
            None => Vec::new(),
        };
        match self.p.submit.submit_blocking(events) {
            Some(replies) => self.in_flight.push_back(InFlight { replies, lines }),
            None => tracing::warn!("the recorder is stopping: exec events not recorded"),
        }
    }

    /// Collects acknowledgements of exec events (all of them with `wait`).
    fn reap(&mut self, wait: bool) {
        while let Some(f) = self.in_flight.front_mut() {
            let replies = if wait {
                let f = self.in_flight.pop_front().expect("front");
                match f.replies.blocking_recv() {
                    Ok(r) => (r, f.lines),
                    Err(_) => continue,
                }
            } else {
                match f.replies.try_recv() {
                    Ok(r) => {
                        let f = self.in_flight.pop_front().expect("front");
                        (r, f.lines)
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
                    Err(_) => {
                        self.in_flight.pop_front();
                        continue;
                    }
                }
            };
            let (replies, mut lines) = replies;
            lines.resize(replies.len(), None);
            for (r, line) in replies.into_iter().zip(lines) {
                match r {
                    Reply::Nack { error, .. } => {
                        self.p.metrics.exec_refused.fetch_add(1, Relaxed);
                        tracing::error!(error = %error, "ALERT: the recorder refused an exec event");
                    }
                    Reply::Ack { .. } => {
                        if let (Some(sink), Some(line)) = (&self.p.order_sink, line) {
                            sink.send(line, &self.p.stop);
                        }
                    }
                }
            }
        }
    }

    /// An audit event in `live:<session>`.
    fn audit(&mut self, kind: &str, data: Value) {
        let e = audit_event(&self.p.session, kind, data);
        self.submit(vec![e]);
    }

    /// Records where the stream's last batches ended (`live_batches` in the audit stream).
    fn record_batches(&mut self, run: &mut StreamRun) {
        if run.batch_ends.is_empty() {
            return;
        }
        let ends = std::mem::take(&mut run.batch_ends);
        self.audit("live_batches", json!({ "stream": run.key, "ends": ends }));
    }

    /// [`Engine::record_batches`] for every stream: before a control action (a replay of the
    /// session meets the batch ends before the switch) and at the stop.
    fn record_all_batches(&mut self) {
        let mut runs = std::mem::take(&mut self.runs);
        for run in runs.values_mut() {
            self.record_batches(run);
        }
        self.runs = runs;
    }
}

impl StreamRun {
    /// Learns the symbol of an event's instrument (the modules get the table again before
    /// the next batch).
    fn learn(&mut self, e: &Envelope) {
        if let Some(sym) = &e.instrument {
            let id = crate::event::instrument_id(sym);
            if let std::collections::btree_map::Entry::Vacant(v) = self.symbols.entry(id) {
                v.insert(sym.clone());
                self.new_symbols = true;
                self.venue.add_symbol(id, sym);
            }
        }
    }

    /// Keeps `loaded`'s state at `seq` (replacing what was kept of it; the oldest of
    /// [`SAVED`] goes).
    fn save(&mut self, loaded: &Loaded, snapshot: Option<Vec<u8>>, seq: u64) {
        self.saved
            .retain(|s| !(s.sha256 == loaded.sha256 && s.config == loaded.config));
        if let Some(snapshot) = snapshot {
            self.saved.push(Saved {
                sha256: loaded.sha256.clone(),
                config: loaded.config.clone(),
                snapshot,
                seq,
            });
            if self.saved.len() > SAVED {
                self.saved.remove(0);
            }
        }
    }
}
