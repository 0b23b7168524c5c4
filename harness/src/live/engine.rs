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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tapedeck_guest::codec::EventBatchWriter;

use super::exec::{ExecIds, audit_event, exec_events};
use super::metrics::LiveMetrics;
use crate::decision::{Decision, decode_outputs};
use crate::error::{Error, Result};
use crate::event::{Body, Envelope, StreamEncoder, instrument_table};
use crate::glob::glob_match;
use crate::recorder::protocol::{Incoming, Reply};
use crate::recorder::wal::WalTail;
use crate::recorder::{Submitter, WalReader, now_ns};
use crate::runtime::{Instance, Module, Runtime};
use crate::stats::StatsConfig;
use crate::store::{SeqRange, StoreUri};
use crate::venue::{Venue, VenueConfig};

/// A module ready to run: compiled, with the config it runs with.
#[derive(Debug)]
pub struct Loaded {
    pub module: Module,
    /// SHA-256 of the file as uploaded (what `/modules` pins).
    pub sha256: String,
    pub config: String,
}

impl Loaded {
    pub fn describe(&self) -> Value {
        let info = self.module.info();
        json!({
            "name": info.name,
            "version": info.version,
            "sha256": self.sha256,
            "config": self.config,
        })
    }
}

/// What the control API asks of the engine.
#[derive(Debug)]
pub enum Command {
    Status,
    /// Make this module the active one (state handed over or caught up).
    Swap(Arc<Loaded>),
    /// Run this module beside the active one, comparing decisions.
    Shadow(Arc<Loaded>),
    /// Make the shadow the active module (it already has the state).
    Promote,
    /// Back to the module active before the last swap.
    Rollback,
}

pub type CommandReply = std::result::Result<Value, String>;

/// A command and where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: tokio::sync::oneshot::Sender<CommandReply>,
}

/// What the engine needs from the process around it.
pub struct EngineParts {
    pub rt: Arc<Runtime>,
    pub session: String,
    pub streams: String,
    pub batch: usize,
    pub venue_name: String,
    pub venue: VenueConfig,
    pub active: Arc<Loaded>,
    pub reader: WalReader,
    pub submit: Submitter,
    /// The first sink's store: where catch-up reads what the WAL no longer holds.
    pub catch_up_store: StoreUri,
    pub wal_dir: std::path::PathBuf,
    /// Where the session's modules are kept by sha256 (a restart resumes with them).
    pub modules_dir: std::path::PathBuf,
    /// The settings the `live_started` audit event records.
    pub started: Value,
    /// Orders go to an executor through it instead of the paper venue.
    pub order_sink: Option<super::sink::OrderSink>,
    /// Events kept per stream for catch-ups (see `StreamRun::recent`).
    pub recent_events: usize,
    pub commands: std::sync::mpsc::Receiver<Request>,
    pub metrics: Arc<LiveMetrics>,
    pub stop: Arc<AtomicBool>,
}

/// One module running on one stream.
struct Slot {
    loaded: Arc<Loaded>,
    inst: Instance,
    /// The last seq before it took over on this stream.
    since: u64,
}

/// How a module got the state it took over a stream with: part of the session's record, so
/// a replay of the session does the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Handoff {
    /// `restore` of the module active until then's `snapshot`.
    Snapshot,
    /// Its own state from when it last left the stream (at `from_seq`), caught up since.
    Saved { from_seq: u64, events: u64 },
    /// Caught up from the stream's start.
    CatchUp { events: u64 },
}

/// A module's instance made ready to take over a stream.
struct Prepared {
    inst: Instance,
    handoff: Handoff,
    /// The active module's snapshot at the switch (what a rollback restores).
    snapshot: Option<Vec<u8>>,
}

/// A module's state on a stream when it stopped being active there: what a swap back to it
/// or a rollback restores, then catches up from `seq`.
struct Saved {
    sha256: String,
    config: String,
    snapshot: Vec<u8>,
    seq: u64,
}

/// Saved states kept per stream (the newest modules').
pub(super) const SAVED: usize = 4;

#[derive(Debug, Default, Clone, Serialize)]
struct Divergence {
    compared_batches: u64,
    divergent_batches: u64,
    /// The first divergent decision: its seq, and what each module decided there.
    first: Option<Value>,
}

struct StreamRun {
    key: String,
    id: u32,
    encoder: StreamEncoder,
    writer: EventBatchWriter,
    spare: Vec<u8>,
    times: Vec<i64>,
    first_in_batch: u64,
    /// The batch's first event's ingest time (for input-to-decision latency).
    first_ingest: i64,
    symbols: BTreeMap<u32, String>,
    /// A symbol arrived the modules do not know yet.
    new_symbols: bool,
    /// None: the strategy is down here (it trapped and there was nothing to roll back to).
    active: Option<Slot>,
    shadow: Option<Slot>,
    shadow_seen: Divergence,
    saved: Vec<Saved>,
    venue: Venue,
    ids: ExecIds,
    /// The last seq the modules have been given (or caught up to).
    applied: u64,
    /// Decisions on events up to here were executed before a restart: they are not again.
    silent_until: u64,
    /// The last events applied, as guest records (seq, time, record): a catch-up over them
    /// (a swap back to a module that left the stream recently) reads no store.
    recent: VecDeque<(u64, i64, Box<[u8]>)>,
    events: u64,
    decisions: u64,
    orders: u64,
    fills: u64,
    findings: Vec<Value>,
}

pub struct Engine {
    p: EngineParts,
    runs: BTreeMap<String, StreamRun>,
    /// The module active now (new streams start with it), the one before (rollbacks go to
    /// it), the shadow.
    active: Arc<Loaded>,
    previous: Option<Arc<Loaded>>,
    shadow: Option<Arc<Loaded>>,
    /// Exec events submitted and not yet acknowledged, with the order sink's line for each
    /// (sent once its event is durable).
    in_flight: VecDeque<InFlight>,
    decided: Vec<Decision>,
    shadow_decided: Vec<Decision>,
    swaps: u64,
    rollbacks: u64,
    resume: Resume,
}

/// What the session did before this process started (it may have been killed): per stream,
/// the last seq whose decisions were executed and the module it ran last; the module active
/// last. Read from the session's audit and exec streams in the store and the WAL.
#[derive(Debug, Default)]
struct Resume {
    executed: std::collections::HashMap<String, u64>,
    module: std::collections::HashMap<String, (String, String)>,
    active: Option<(String, String)>,
}

impl Resume {
    fn visit(&mut self, session: &str, e: &Envelope) {
        if e.stream_key.starts_with("exec:") {
            let ours = e
                .correlation
                .command_id
                .as_deref()
                .is_some_and(|c| c.starts_with(&format!("live:{session}:")));
            let cause = e.correlation.causation_id.as_deref().and_then(|c| {
                let (stream, seq) = c.rsplit_once(':')?;
                Some((stream, seq.parse::<u64>().ok()?))
            });
            if let (true, Some((stream, seq))) = (ours, cause) {
                let v = self.executed.entry(stream.to_string()).or_insert(0);
                *v = (*v).max(seq);
            }
            return;
        }
        let Body::Custom { type_name, data } = &e.body else {
            return;
        };
        let pair = |sha: &str, cfg: &str| {
            (
                data[sha].as_str().unwrap_or_default().to_string(),
                data[cfg].as_str().unwrap_or_default().to_string(),
            )
        };
        match type_name.as_str() {
            "live_started" => {
                let s = &data["strategy"];
                self.active = Some((
                    s["sha256"].as_str().unwrap_or_default().to_string(),
                    s["config"].as_str().unwrap_or_default().to_string(),
                ));
            }
            "live_stream" => {
                if let Some(k) = data["stream"].as_str() {
                    self.module.insert(k.to_string(), pair("module", "config"));
                }
            }
            "live_swap" | "live_promote" | "live_rollback" => {
                let to = pair("to", "to_config");
                if let Some(streams) = data["streams"].as_object() {
                    for k in streams.keys() {
                        self.module.insert(k.clone(), to.clone());
                    }
                }
                if data["automatic"].as_bool() != Some(true) {
                    self.active = Some(to);
                }
            }
            _ => {}
        }
    }
}

struct InFlight {
    replies: tokio::sync::oneshot::Receiver<Vec<Reply>>,
    lines: Vec<Option<Vec<u8>>>,
}

/// Exec submissions waiting for their acknowledgement, at most (then the engine waits).
const IN_FLIGHT: usize = 256;
/// WAL records read before the pending batches are run, at most.
const BURST: usize = 8192;

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

    /// Reads what the session did before this process (see [`Resume`]) and resumes with the
    /// module that was active last.
    fn resume(&mut self, from_lsn: u64) -> Result<()> {
        let session = self.p.session.clone();
        let audit = format!("live:{session}");
        let mut r = Resume::default();
        let mut stored: std::collections::HashMap<String, u64> = Default::default();
        let source = self.p.catch_up_store.open()?;
        for s in source.streams()? {
            if s.key != audit && !s.key.starts_with("exec:") {
                continue;
            }
            source.read(&s.key, SeqRange::ALL, &mut |e| {
                r.visit(&session, &e);
                Ok(())
            })?;
            stored.insert(s.key, s.last_seq);
        }
        drop(source);
        // What the WAL holds past the store.
        let mut wal = WalTail::new(&self.p.wal_dir, from_lsn);
        let durable = self.p.reader.progress.durable();
        while let Some((lsn, bytes)) = wal.next(durable)? {
            let e: Envelope = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
                path: self.p.wal_dir.clone(),
                line: lsn,
                message: format!("WAL record {lsn} is not an envelope: {err}"),
            })?;
            if (e.stream_key == audit || e.stream_key.starts_with("exec:"))
                && e.seq > stored.get(&e.stream_key).copied().unwrap_or(0)
            {
                r.visit(&session, &e);
            }
        }
        if let Some((sha, config)) = r.active.clone()
            && (sha != self.active.sha256 || config != self.active.config)
        {
            match self.load_kept(&sha, &config) {
                Ok(m) => {
                    tracing::info!(module = %sha, "resuming with the module active before the restart");
                    self.active = m;
                }
                Err(e) => {
                    tracing::warn!(module = %sha, error = %e, "the module active before the restart cannot be loaded; starting with live.strategy")
                }
            }
        }
        self.resume = r;
        Ok(())
    }

    /// A module kept in the modules directory.
    fn load_kept(&self, sha256: &str, config: &str) -> Result<Arc<Loaded>> {
        if sha256 == self.active.sha256 && config == self.active.config {
            return Ok(self.active.clone());
        }
        let path = self.p.modules_dir.join(format!("{sha256}.wasm"));
        Ok(Arc::new(Loaded {
            module: self.p.rt.load(&path)?,
            sha256: sha256.to_string(),
            config: config.to_string(),
        }))
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

    /// A stream seen for the first time at `seq`: the active module, caught up over what
    /// came before (a restart, or a stream older than this process).
    fn new_run(&mut self, key: &str, seq: u64, tail: &WalTail) -> Result<StreamRun> {
        let id = self.runs.len() as u32 + 1;
        let symbols = BTreeMap::new();
        let mut run = StreamRun {
            key: key.to_string(),
            id,
            encoder: StreamEncoder::new(id),
            writer: EventBatchWriter::new(Vec::new()),
            spare: Vec::new(),
            times: Vec::new(),
            first_in_batch: 0,
            first_ingest: 0,
            symbols: symbols.clone(),
            new_symbols: false,
            active: None,
            shadow: None,
            shadow_seen: Divergence::default(),
            saved: Vec::new(),
            venue: Venue::new(&self.p.venue, symbols, StatsConfig::default()),
            ids: ExecIds::new(&self.p.session, key),
            applied: 0,
            silent_until: 0,
            recent: VecDeque::new(),
            events: 0,
            decisions: 0,
            orders: 0,
            fills: 0,
            findings: Vec::new(),
        };
        let module = match self.resume.module.get(key).cloned() {
            Some((sha, config)) => self.load_kept(&sha, &config).unwrap_or_else(|e| {
                tracing::warn!(stream = key, module = %sha, error = %e, "the stream's module before the restart cannot be loaded");
                self.active.clone()
            }),
            None => self.active.clone(),
        };
        // Decided on from here: past the last seq whose orders this session recorded, if it
        // ran the stream before (a restart); else from the first event seen (a stream older
        // than the session is history, not orders to send now).
        let from = match self.resume.module.contains_key(key) {
            true => self.resume.executed.get(key).copied().unwrap_or(0),
            false => seq - 1,
        };
        run.silent_until = from;
        // The symbols the store knows of the stream (events read back name instruments by id).
        if seq > 1 {
            for (id, sym) in self.p.catch_up_store.open()?.instruments(key)? {
                run.venue.add_symbol(id, &sym);
                run.symbols.insert(id, sym);
            }
        }
        let mut inst = self.fresh(&module, &run)?;
        let t = Instant::now();
        // The state up to there is rebuilt silently...
        let silently = (seq - 1).min(from);
        let n = self.catch_up(&run, &mut inst, 0, silently, tail)?;
        if n > 0 {
            tracing::info!(
                stream = key,
                events = n,
                ms = t.elapsed().as_millis() as u64,
                "caught up a stream first seen mid-way"
            );
        }
        self.audit(
            "live_stream",
            json!({
                "stream": key,
                "seq": from,
                "module": module.sha256,
                "config": module.config,
                "handoff": Handoff::CatchUp { events: silently },
            }),
        );
        run.applied = silently;
        run.active = Some(Slot {
            loaded: module,
            inst,
            since: silently,
        });
        // ...and what came after it, before this process first saw the stream, is decided on
        // now (read back from the store and the WAL).
        if silently < seq - 1 {
            tracing::info!(
                stream = key,
                from = silently + 1,
                to = seq - 1,
                "deciding on events recorded before the restart and never decided on"
            );
            self.decide_read_back(&mut run, silently, seq - 1, tail)?;
        }
        run.applied = seq - 1;
        Ok(run)
    }

    /// A new instance of `loaded`, initialized with its config and the stream's instruments.
    fn fresh(&self, loaded: &Arc<Loaded>, run: &StreamRun) -> Result<Instance> {
        let mut inst = self.p.rt.instantiate(&loaded.module)?;
        inst.init(&loaded.config)?;
        inst.set_instruments(&instrument_table(&run.symbols))?;
        Ok(inst)
    }

    /// Feeds `inst` the stream's events `after+1 ..= through` from the store and the WAL, in
    /// batches of the configured size; their decisions are dropped. Returns the events fed.
    fn catch_up(
        &self,
        run: &StreamRun,
        inst: &mut Instance,
        after: u64,
        through: u64,
        tail: &WalTail,
    ) -> Result<u64> {
        let mut feed = Feeder::new(self.p.batch, run);
        let in_memory = run.recent.front().is_some_and(|r| r.0 <= after + 1)
            && run.recent.back().is_some_and(|r| r.0 >= through);
        if in_memory {
            for (seq, _, record) in run.recent.iter().filter(|r| r.0 > after && r.0 <= through) {
                feed.push_record(record, *seq, inst)?;
            }
        } else {
            self.read_stream(&run.key, after, through, tail, &mut |r| match r {
                Rec::Packed(seq, _, record) => feed.push_record(record, seq, inst),
                Rec::Envelope(e) => feed.push_envelope(e, inst),
            })?;
        }
        feed.flush(inst)?;
        self.p
            .metrics
            .catch_up_events
            .fetch_add(feed.events, Relaxed);
        Ok(feed.events)
    }

    /// The stream's events `after+1 ..= through`, in order: from the store of the first sink,
    /// then (past what it holds) from the WAL up to what the engine has read.
    fn read_stream(
        &self,
        key: &str,
        after: u64,
        through: u64,
        tail: &WalTail,
        f: &mut dyn FnMut(Rec<'_>) -> Result<()>,
    ) -> Result<()> {
        if through <= after {
            return Ok(());
        }
        let metrics = &self.p.reader.metrics;
        // Everything the sink had stored by now is in its store; the rest is still in the
        // WAL: it is not trimmed past what every sink stored, and not at all while this
        // reader says it has taken nothing (the run loop says again what it took).
        self.p.reader.taken(0);
        let stored_lsn = metrics.sinks[0].stored_lsn.load(Relaxed);
        let mut next = after + 1;
        let gap = |expected, got| Error::SeqGap {
            stream: key.to_string(),
            expected,
            got,
        };
        let source = self.p.catch_up_store.open()?;
        source.read_records(
            key,
            SeqRange {
                from: next,
                to: through,
            },
            &mut |seq, time, record| {
                if seq != next {
                    return Err(gap(next, seq));
                }
                next += 1;
                f(Rec::Packed(seq, time, record))
            },
        )?;
        drop(source);
        if next <= through {
            let mut wal = WalTail::new(&self.p.wal_dir, stored_lsn + 1);
            let end = tail.next_lsn();
            while wal.next_lsn() < end && next <= through {
                let Some((lsn, bytes)) = wal.next(end - 1)? else {
                    break;
                };
                let e = self.envelope(lsn, &bytes)?;
                if e.stream_key != key || e.seq < next {
                    continue;
                }
                if e.seq != next {
                    return Err(gap(next, e.seq));
                }
                next += 1;
                f(Rec::Envelope(&e))?;
            }
        }
        if next <= through {
            return Err(Error::message(
                format!("reading {key} back"),
                format!(
                    "the store and the WAL end at seq {}, the stream was at {through}",
                    next - 1
                ),
            ));
        }
        Ok(())
    }

    /// A WAL record as the envelope it holds.
    fn envelope(&self, lsn: u64, bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).map_err(|err| Error::Corrupt {
            path: self.p.wal_dir.clone(),
            line: lsn,
            message: format!("WAL record {lsn} is not an envelope: {err}"),
        })
    }

    /// Decides on the stream's events `after+1 ..= through` read back from the store and the
    /// WAL, as if they had just arrived (after a restart, past what was executed before it),
    /// a batch at a time.
    fn decide_read_back(
        &mut self,
        run: &mut StreamRun,
        after: u64,
        through: u64,
        tail: &WalTail,
    ) -> Result<()> {
        let key = run.key.clone();
        let mut from = after;
        while from < through {
            let to = through.min(from + self.p.batch as u64);
            self.read_stream(&key, from, to, tail, &mut |r| {
                let (seq, time, ingested) = match r {
                    Rec::Packed(seq, time, record) => {
                        run.writer
                            .push_record(record, run.id)
                            .map_err(|err| Error::BadEvent {
                                stream: run.key.clone(),
                                seq,
                                message: format!("store gave a bad record: {err}"),
                            })?;
                        (seq, time, now_ns())
                    }
                    Rec::Envelope(e) => {
                        run.learn(e);
                        run.encoder.encode(e, &mut run.writer)?;
                        (e.seq, e.occurred_at, e.ingested_at)
                    }
                };
                if run.writer.count() == 1 {
                    run.first_in_batch = seq;
                    run.first_ingest = ingested;
                }
                run.times.push(time);
                Ok(())
            })?;
            self.run_batch_of(run, tail)?;
            from = to;
        }
        Ok(())
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
        let fills = if paper {
            run.venue.on_batch(&batch, &self.decided);
            run.venue.take_fills()
        } else {
            Vec::new()
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
            paper.then_some(self.p.venue.latency_ns),
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
        if !events.is_empty() {
            self.submit(events);
        }
        Ok(())
    }

    /// The active module trapped on the batch starting at `first`: roll back to the
    /// previous module (its state at the swap, caught up to just before the batch) and run
    /// the batch with it; with nothing to roll back to, the strategy is down on the stream.
    fn trapped(
        &mut self,
        run: &mut StreamRun,
        e: &Error,
        first: u64,
        batch: &[u8],
        tail: &WalTail,
    ) -> Result<()> {
        let slot = run.active.take().expect("the active module trapped");
        let (first_seq, last_seq) = match e {
            Error::GuestTrap {
                first_seq,
                last_seq,
                ..
            } => (*first_seq, *last_seq),
            _ => (first, first),
        };
        self.p.metrics.traps.fetch_add(1, Relaxed);
        let finding = json!({
            "kind": "guest_trap",
            "stream": run.key,
            "module": slot.loaded.sha256,
            "message": e.to_string(),
            "first_seq": first_seq,
            "last_seq": last_seq,
        });
        tracing::error!(stream = %run.key, module = %slot.loaded.sha256, error = %e, "ALERT: the active module trapped");
        run.findings.push(finding.clone());
        let Some(prev) = self.previous.clone() else {
            self.audit(
                "live_finding",
                json!({ "finding": finding, "rolled_back": false }),
            );
            return Ok(());
        };
        let t = Instant::now();
        let inst = self.rolled_back(run, &prev, first - 1, tail);
        match inst {
            Ok((mut inst, handoff)) => {
                let out = inst.on_events(batch);
                match out {
                    Ok(out) => decode_outputs(&out, first, &run.times, &mut self.decided),
                    Err(e2) => {
                        run.findings.push(json!({
                            "kind": "guest_trap",
                            "stream": run.key,
                            "module": prev.sha256,
                            "message": e2.to_string(),
                            "first_seq": first,
                        }));
                        self.audit("live_finding", json!({ "finding": finding, "rolled_back": false, "previous_trapped": e2.to_string() }));
                        return Ok(());
                    }
                }
                run.active = Some(Slot {
                    loaded: prev.clone(),
                    inst,
                    since: first - 1,
                });
                self.rollbacks += 1;
                self.p.metrics.rollbacks.fetch_add(1, Relaxed);
                self.audit(
                    "live_rollback",
                    json!({
                        "automatic": true,
                        "finding": finding,
                        "from": slot.loaded.sha256,
                        "to": prev.sha256,
                        "to_config": prev.config,
                        "streams": { run.key.clone(): { "seq": first - 1, "handoff": handoff } },
                        "pause_us": t.elapsed().as_micros() as u64,
                    }),
                );
            }
            Err(err) => {
                tracing::error!(stream = %run.key, error = %err, "ALERT: rollback failed; the strategy is down on this stream");
                self.audit(
                    "live_finding",
                    json!({ "finding": finding, "rolled_back": false, "error": err.to_string() }),
                );
            }
        }
        Ok(())
    }

    /// An instance of `prev` with its state as of `through` (see [`Engine::state_for`]).
    fn rolled_back(
        &self,
        run: &StreamRun,
        prev: &Arc<Loaded>,
        through: u64,
        tail: &WalTail,
    ) -> Result<(Instance, Handoff)> {
        self.state_for(run, prev, None, through, tail)
    }

    /// An instance of `to` with the state of the stream as of `through`, and how it got it:
    /// from `handoff` (the active module's snapshot) if `to` restores it; else from the
    /// state `to` had when it last left this stream, caught up since; else caught up from
    /// the stream's start.
    fn state_for(
        &self,
        run: &StreamRun,
        to: &Arc<Loaded>,
        handoff: Option<&[u8]>,
        through: u64,
        tail: &WalTail,
    ) -> Result<(Instance, Handoff)> {
        let table = instrument_table(&run.symbols);
        let mut inst = self.fresh(to, run)?;
        if let Some(b) = handoff {
            if inst.restore(b).is_ok() {
                inst.set_instruments(&table)?;
                return Ok((inst, Handoff::Snapshot));
            }
            inst = self.fresh(to, run)?;
        }
        let saved = run
            .saved
            .iter()
            .find(|s| s.sha256 == to.sha256 && s.config == to.config);
        if let Some(saved) = saved {
            if inst.restore(&saved.snapshot).is_ok() {
                inst.set_instruments(&table)?;
                let n = self.catch_up(run, &mut inst, saved.seq, through, tail)?;
                return Ok((
                    inst,
                    Handoff::Saved {
                        from_seq: saved.seq,
                        events: n,
                    },
                ));
            }
            inst = self.fresh(to, run)?;
        }
        let n = self.catch_up(run, &mut inst, 0, through, tail)?;
        Ok((inst, Handoff::CatchUp { events: n }))
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

    fn commands(&mut self, tail: &WalTail) {
        while let Ok(req) = self.p.commands.try_recv() {
            let answer = match req.command {
                Command::Status => Ok(self.status()),
                Command::Swap(to) => self.swap(to, tail),
                Command::Shadow(m) => self.start_shadow(m, tail),
                Command::Promote => self.promote(),
                Command::Rollback => self.rollback(tail),
            };
            let _ = req.reply.send(answer);
        }
    }

    fn status(&self) -> Value {
        let streams: BTreeMap<&str, Value> = self
            .runs
            .iter()
            .map(|(k, r)| {
                (
                    k.as_str(),
                    json!({
                        "applied_seq": r.applied,
                        "events": r.events,
                        "decisions": r.decisions,
                        "orders": r.orders,
                        "fills": r.fills,
                        "pnl": r.venue.pnl(),
                        "module": r.active.as_ref().map(|s| s.loaded.sha256.clone()),
                        "since_seq": r.active.as_ref().map(|s| s.since),
                        "shadow": r.shadow.as_ref().map(|s| json!({
                            "module": s.loaded.sha256,
                            "since_seq": s.since,
                            "divergence": r.shadow_seen,
                        })),
                        "findings": r.findings,
                    }),
                )
            })
            .collect();
        json!({
            "session": self.p.session,
            "active": self.active.describe(),
            "previous": self.previous.as_ref().map(|m| m.describe()),
            "shadow": self.shadow.as_ref().map(|m| m.describe()),
            "swaps": self.swaps,
            "rollbacks": self.rollbacks,
            "streams": streams,
        })
    }

    /// Every stream to `to`: state from the active module's snapshot when `to` restores it,
    /// else caught up. Prepared for every stream first: if one fails, nothing changes.
    fn swap(&mut self, to: Arc<Loaded>, tail: &WalTail) -> CommandReply {
        let from = self.active.clone();
        let t0 = Instant::now();
        let ready = self.prepare_all(&to, tail)?;
        let mut done = BTreeMap::new();
        for (k, p) in ready {
            let run = self.runs.get_mut(&k).expect("prepared");
            let at = run.applied;
            let old = run.active.replace(Slot {
                loaded: to.clone(),
                inst: p.inst,
                since: at,
            });
            if let Some(old) = old {
                run.save(&old.loaded, p.snapshot, at);
            }
            done.insert(k, json!({ "seq": at, "handoff": p.handoff }));
        }
        self.previous = Some(from.clone());
        self.active = to.clone();
        self.swaps += 1;
        self.p.metrics.swaps.fetch_add(1, Relaxed);
        let pause = t0.elapsed();
        self.p.metrics.record_pause(pause);
        let answer = json!({
            "from": from.sha256,
            "to": to.sha256,
            "to_config": to.config,
            "streams": done,
            "pause_us": pause.as_micros() as u64,
        });
        self.audit("live_swap", answer.clone());
        Ok(answer)
    }

    /// For every stream, an instance of `to` holding the state the active module has now;
    /// the first failure (naming its stream) instead.
    fn prepare_all(
        &mut self,
        to: &Arc<Loaded>,
        tail: &WalTail,
    ) -> std::result::Result<Vec<(String, Prepared)>, String> {
        let mut runs = std::mem::take(&mut self.runs);
        let mut ready = Vec::new();
        let mut failed = None;
        for (k, run) in runs.iter_mut() {
            match self.prepare(run, to, tail) {
                Ok(p) => ready.push((k.clone(), p)),
                Err(e) => {
                    failed = Some(format!("{k}: {e}"));
                    break;
                }
            }
        }
        self.runs = runs;
        match failed {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }

    /// An instance of `to` with the state the stream's active module has: handed over
    /// through its snapshot, or (refused, or no module active) caught up from the start.
    fn prepare(&self, run: &mut StreamRun, to: &Arc<Loaded>, tail: &WalTail) -> Result<Prepared> {
        let at = run.applied;
        let snapshot = run.active.as_mut().and_then(|s| s.inst.snapshot().ok());
        let (inst, handoff) = self.state_for(run, to, snapshot.as_deref(), at, tail)?;
        Ok(Prepared {
            inst,
            handoff,
            snapshot,
        })
    }

    fn start_shadow(&mut self, m: Arc<Loaded>, tail: &WalTail) -> CommandReply {
        let ready = self.prepare_all(&m, tail)?;
        let mut done = BTreeMap::new();
        for (k, p) in ready {
            let run = self.runs.get_mut(&k).expect("prepared");
            let at = run.applied;
            run.shadow = Some(Slot {
                loaded: m.clone(),
                inst: p.inst,
                since: at,
            });
            run.shadow_seen = Divergence::default();
            done.insert(k, json!({ "seq": at, "handoff": p.handoff }));
        }
        self.shadow = Some(m.clone());
        let answer = json!({ "shadow": m.sha256, "config": m.config, "streams": done });
        self.audit("live_shadow", answer.clone());
        Ok(answer)
    }

    fn promote(&mut self) -> CommandReply {
        let Some(m) = self.shadow.take() else {
            return Err("no shadow module to promote: POST /shadow first".into());
        };
        let from = self.active.clone();
        let mut done = BTreeMap::new();
        for (k, run) in self.runs.iter_mut() {
            let Some(shadow) = run.shadow.take() else {
                continue;
            };
            let at = run.applied;
            let old = run.active.replace(Slot {
                since: at,
                ..shadow
            });
            if let Some(mut old) = old {
                let snapshot = old.inst.snapshot().ok();
                run.save(&old.loaded, snapshot, at);
            }
            done.insert(
                k.clone(),
                json!({ "seq": at, "divergence": run.shadow_seen }),
            );
        }
        self.previous = Some(from.clone());
        self.active = m.clone();
        self.swaps += 1;
        self.p.metrics.swaps.fetch_add(1, Relaxed);
        let answer =
            json!({ "from": from.sha256, "to": m.sha256, "to_config": m.config, "streams": done });
        self.audit("live_promote", answer.clone());
        Ok(answer)
    }

    fn rollback(&mut self, tail: &WalTail) -> CommandReply {
        let Some(prev) = self.previous.clone() else {
            return Err("nothing to roll back to: no swap has happened".into());
        };
        let from = self.active.clone();
        let t0 = Instant::now();
        let mut ready = Vec::new();
        for (k, run) in &self.runs {
            let r = self
                .rolled_back(run, &prev, run.applied, tail)
                .map_err(|e| format!("{k}: {e}"))?;
            ready.push((k.clone(), r));
        }
        let mut done = BTreeMap::new();
        for (k, (inst, handoff)) in ready {
            let run = self.runs.get_mut(&k).expect("listed");
            let at = run.applied;
            let old = run.active.replace(Slot {
                loaded: prev.clone(),
                inst,
                since: at,
            });
            if let Some(mut old) = old {
                let snapshot = old.inst.snapshot().ok();
                run.save(&old.loaded, snapshot, at);
            }
            done.insert(k, json!({ "seq": at, "handoff": handoff }));
        }
        self.active = prev.clone();
        self.previous = None;
        self.rollbacks += 1;
        self.p.metrics.rollbacks.fetch_add(1, Relaxed);
        let answer = json!({
            "automatic": false,
            "from": from.sha256,
            "to": prev.sha256,
            "to_config": prev.config,
            "streams": done,
            "pause_us": t0.elapsed().as_micros() as u64,
        });
        self.audit("live_rollback", answer.clone());
        Ok(answer)
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

/// Compares the active module's decisions on a batch with the shadow's; whether they differ.
fn compare(
    seen: &mut Divergence,
    active: &[Decision],
    shadow: &[Decision],
    names: &tapedeck_guest::Instruments,
) -> bool {
    seen.compared_batches += 1;
    if active == shadow {
        return false;
    }
    seen.divergent_batches += 1;
    if seen.first.is_none() {
        let i = active
            .iter()
            .zip(shadow)
            .position(|(a, s)| a != s)
            .unwrap_or(active.len().min(shadow.len()));
        let side = |d: Option<&Decision>| {
            d.map_or(
                Value::Null,
                |d| json!({ "seq": d.seq, "output": d.output.to_json_named(names) }),
            )
        };
        let seq = active.get(i).or(shadow.get(i)).map_or(0, |d| d.seq);
        seen.first = Some(json!({
            "seq": seq,
            "active": side(active.get(i)),
            "shadow": side(shadow.get(i)),
        }));
    }
    true
}

/// An event read back: a packed record from a store (seq, time, record), or a WAL envelope.
enum Rec<'a> {
    Packed(u64, i64, &'a [u8]),
    Envelope(&'a Envelope),
}

/// Builds catch-up batches and runs them, dropping their decisions.
struct Feeder {
    batch: usize,
    key: String,
    stream_id: u32,
    writer: EventBatchWriter,
    encoder: StreamEncoder,
    events: u64,
}

impl Feeder {
    fn new(batch: usize, run: &StreamRun) -> Self {
        Feeder {
            batch,
            key: run.key.clone(),
            stream_id: run.id,
            writer: EventBatchWriter::new(Vec::new()),
            encoder: StreamEncoder::new(run.id),
            events: 0,
        }
    }

    fn push_record(&mut self, record: &[u8], seq: u64, inst: &mut Instance) -> Result<()> {
        self.writer
            .push_record(record, self.stream_id)
            .map_err(|err| Error::BadEvent {
                stream: self.key.clone(),
                seq,
                message: format!("store gave a bad record: {err}"),
            })?;
        self.after_push(inst)
    }

    fn push_envelope(&mut self, e: &Envelope, inst: &mut Instance) -> Result<()> {
        self.encoder.encode(e, &mut self.writer)?;
        self.after_push(inst)
    }

    fn after_push(&mut self, inst: &mut Instance) -> Result<()> {
        self.events += 1;
        if self.writer.count() as usize >= self.batch {
            self.flush(inst)?;
        }
        Ok(())
    }

    fn flush(&mut self, inst: &mut Instance) -> Result<()> {
        if self.writer.count() == 0 {
            return Ok(());
        }
        let w = std::mem::replace(&mut self.writer, EventBatchWriter::new(Vec::new()));
        inst.on_events(&w.finish())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Output;
    use crate::event::Correlation;

    fn exec(command: &str, cause: &str) -> Envelope {
        let mut e = Envelope::new(
            "exec:paper:BTCUSDT",
            1,
            0,
            Some("BTCUSDT"),
            Body::OrderCancelled { client_order_id: 1 },
        );
        e.correlation = Correlation {
            causation_id: Some(cause.into()),
            command_id: Some(command.into()),
            ..Default::default()
        };
        e
    }

    fn audit(kind: &str, data: Value) -> Envelope {
        Envelope::new(
            "live:s",
            1,
            0,
            None,
            Body::Custom {
                type_name: kind.into(),
                data,
            },
        )
    }

    #[test]
    fn a_restart_resumes_from_what_the_session_recorded() {
        let mut r = Resume::default();
        r.visit("s", &exec("live:s:md:x:A:40:0", "md:x:A:41"));
        r.visit("s", &exec("live:s:md:x:A:12:0", "md:x:A:12"));
        // Another session's orders, and events without ids, are not this session's.
        r.visit("s", &exec("live:other:md:x:A:90:0", "md:x:A:90"));
        r.visit("s", &exec("manual-7", "md:x:A:95"));
        assert_eq!(r.executed.get("md:x:A"), Some(&41));

        r.visit(
            "s",
            &audit(
                "live_started",
                json!({ "strategy": { "sha256": "a", "config": "" } }),
            ),
        );
        r.visit(
            "s",
            &audit(
                "live_stream",
                json!({ "stream": "md:x:A", "module": "a", "config": "" }),
            ),
        );
        r.visit(
            "s",
            &audit(
                "live_swap",
                json!({ "to": "b", "to_config": "{}", "streams": { "md:x:A": { "seq": 5 } } }),
            ),
        );
        assert_eq!(r.active, Some(("b".into(), "{}".into())));
        // A rollback after a trap changes the stream's module, not the session's.
        r.visit("s", &audit("live_rollback", json!({ "automatic": true, "to": "a", "to_config": "", "streams": { "md:x:A": { "seq": 9 } } })));
        assert_eq!(r.module.get("md:x:A"), Some(&("a".into(), "".into())));
        assert_eq!(r.active, Some(("b".into(), "{}".into())));
    }

    #[test]
    fn the_first_divergence_names_both_decisions() {
        let d = |seq, id| Decision {
            seq,
            time_ns: 0,
            output: Output::Cancel {
                instrument: 0,
                client_order_id: id,
            },
        };
        let mut seen = Divergence::default();
        let names = tapedeck_guest::Instruments::default();
        assert!(!compare(&mut seen, &[d(1, 1)], &[d(1, 1)], &names));
        assert!(compare(&mut seen, &[d(3, 1), d(4, 2)], &[d(3, 1)], &names));
        assert!(compare(&mut seen, &[], &[d(9, 9)], &names));
        assert_eq!((seen.compared_batches, seen.divergent_batches), (3, 2));
        let first = seen.first.unwrap();
        assert_eq!(first["seq"], 4);
        assert_eq!(first["active"]["output"]["client_order_id"], 2);
        assert_eq!(first["shadow"], Value::Null);
    }
}
