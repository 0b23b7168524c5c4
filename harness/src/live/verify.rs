//! Replaying a live session as a backtest: the session's timeline (which module ran on which
//! stream from which seq, and how each got its state) read from its audit stream, the same
//! modules (by sha256, from the modules directory) run over the recorded streams doing what
//! the engine did at each switch, and every order and cancel they decide compared with what
//! the session recorded in its exec streams. Live == backtest when nothing differs.
//!
//! Batches are cut where the session's were (it records their ends, `live_batches`) and at
//! every switch; where it recorded none (the last batches of a process killed before it
//! recorded them), every `batch` events. Catch-ups are cut every `batch` events, as the
//! engine cuts them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use tapedeck_guest::codec::EventBatchWriter;

use super::engine::Handoff;
use super::exec::{ExecIds, exec_events};
use crate::decision::{Decision, decode_outputs};
use crate::error::{Error, Result};
use crate::event::{Body, instrument_table};
use crate::runtime::{Instance, Module, Runtime};
use crate::store::{EventSource, SeqRange};

/// One thing that happened to a stream's modules, at `seq` (after that event).
#[derive(Debug, Clone)]
enum Step {
    /// A process started running the stream.
    Start {
        module: Key,
        handoff: Handoff,
    },
    /// Another module became the active one; `save` says whether the one leaving kept its
    /// state (not after a trap).
    Switch {
        module: Key,
        handoff: Handoff,
        save: bool,
    },
    Shadow {
        module: Key,
        handoff: Handoff,
    },
    Promote,
}

/// A module with its config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    sha256: String,
    config: String,
}

/// The session's timeline: per stream, its steps in the order they happened.
#[derive(Debug, Default)]
pub struct Timeline {
    pub session: String,
    pub batch: usize,
    steps: BTreeMap<String, Vec<(u64, Step)>>,
    /// Per stream, where the session's batches ended.
    ends: BTreeMap<String, std::collections::BTreeSet<u64>>,
}

/// An order or cancel as the session recorded it (and as the replay's decisions become).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// The seq that caused it, and its index among that seq's outputs.
    pub seq: u64,
    pub index: usize,
    #[serde(flatten)]
    pub body: Body,
}

/// The order or cancel of an exec event whose order id is `<prefix>:<seq>:<index>` (prefix
/// `live:<session>:<stream>`); None for other events (other streams' among them, even a
/// stream whose key extends this one's).
fn order_of(prefix: &str, command_id: Option<&str>, body: &Body) -> Option<Order> {
    if !matches!(
        body,
        Body::OrderSubmitted { .. } | Body::OrderCancelled { .. }
    ) {
        return None;
    }
    let (head, index) = command_id?.rsplit_once(':')?;
    let (head, seq) = head.rsplit_once(':')?;
    if head != prefix {
        return None;
    }
    Some(Order {
        seq: seq.parse().ok()?,
        index: index.parse().ok()?,
        body: body.clone(),
    })
}

/// What the replay of one stream found.
#[derive(Debug, Serialize)]
pub struct StreamCheck {
    pub stream: String,
    pub events: u64,
    pub switches: usize,
    /// Orders and cancels the replay decided, and the session recorded.
    pub replayed: usize,
    pub recorded: usize,
    /// The first difference: the replay's and the session's (null where one has none).
    pub first_difference: Option<Value>,
}

impl StreamCheck {
    pub fn identical(&self) -> bool {
        self.first_difference.is_none()
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::message(
        format!("reading the session's timeline: {what}"),
        e.to_string(),
    )
}

/// Reads the timeline from the audit stream `live:<session>`.
pub fn timeline(source: &dyn EventSource, session: &str) -> Result<Timeline> {
    let audit = format!("live:{session}");
    if !source.streams()?.iter().any(|s| s.key == audit) {
        return Err(bad(
            &audit,
            "no such stream in the store (is the session name right?)",
        ));
    }
    let mut t = Timeline {
        session: session.to_string(),
        batch: 0,
        steps: BTreeMap::new(),
        ends: BTreeMap::new(),
    };
    let key = |v: &Value, sha: &str, cfg: &str| Key {
        sha256: v[sha].as_str().unwrap_or_default().to_string(),
        config: v[cfg].as_str().unwrap_or_default().to_string(),
    };
    source.read(&audit, SeqRange::ALL, &mut |e| {
        let Body::Custom { type_name, data } = e.body else {
            return Ok(());
        };
        let per_stream = |t: &mut Timeline, make: &dyn Fn(&Value) -> Result<Step>| -> Result<()> {
            let streams = data["streams"].as_object().cloned().unwrap_or_default();
            for (stream, at) in streams {
                let seq = at["seq"].as_u64().ok_or_else(|| {
                    bad(
                        &type_name,
                        format!("no seq for {stream} at audit seq {}", e.seq),
                    )
                })?;
                t.steps.entry(stream).or_default().push((seq, make(&at)?));
            }
            Ok(())
        };
        let handoff = |at: &Value| -> Result<Handoff> {
            serde_json::from_value(at["handoff"].clone()).map_err(|err| bad("handoff", err))
        };
        match type_name.as_str() {
            "live_started" => t.batch = data["batch"].as_u64().unwrap_or(1024) as usize,
            "live_stream" => {
                let stream = data["stream"].as_str().unwrap_or_default().to_string();
                let seq = data["seq"].as_u64().unwrap_or(0);
                let step = Step::Start {
                    module: key(&data, "module", "config"),
                    handoff: handoff(&data)?,
                };
                let steps = t.steps.entry(stream).or_default();
                // A restart decides again from `seq`: what the process before did past it
                // was never recorded (it was killed before its orders were durable).
                steps.retain(|(s, _)| *s <= seq);
                steps.push((seq, step));
                if let Some(ends) = t.ends.get_mut(data["stream"].as_str().unwrap_or_default()) {
                    ends.retain(|e| *e <= seq);
                }
            }
            "live_swap" | "live_rollback" => {
                let module = key(&data, "to", "to_config");
                let save = !data["automatic"].as_bool().unwrap_or(false);
                per_stream(&mut t, &|at| {
                    Ok(Step::Switch {
                        module: module.clone(),
                        handoff: handoff(at)?,
                        save,
                    })
                })?;
            }
            "live_shadow" => {
                let module = key(&data, "shadow", "config");
                per_stream(&mut t, &|at| {
                    Ok(Step::Shadow {
                        module: module.clone(),
                        handoff: handoff(at)?,
                    })
                })?;
            }
            "live_promote" => per_stream(&mut t, &|_| Ok(Step::Promote))?,
            "live_batches" => {
                let stream = data["stream"].as_str().unwrap_or_default().to_string();
                let ends = data["ends"].as_array().cloned().unwrap_or_default();
                t.ends
                    .entry(stream)
                    .or_default()
                    .extend(ends.iter().filter_map(Value::as_u64));
            }
            _ => {}
        }
        Ok(())
    })?;
    if t.batch == 0 {
        return Err(bad(&audit, "no live_started event"));
    }
    Ok(t)
}

/// The orders and cancels a session recorded, by the stream that decided them, each in
/// decision order: every exec stream read once.
fn recorded(source: &dyn EventSource, session: &str) -> Result<BTreeMap<String, Vec<Order>>> {
    let prefix = format!("live:{session}:");
    let mut out: BTreeMap<String, Vec<Order>> = BTreeMap::new();
    for s in source.streams()? {
        if !s.key.starts_with("exec:") {
            continue;
        }
        source.read(&s.key, SeqRange::ALL, &mut |e| {
            let Some(id) = e.correlation.command_id.as_deref() else {
                return Ok(());
            };
            // `live:<session>:<stream>:<seq>:<index>`
            let Some(stream) = id
                .strip_prefix(&prefix)
                .and_then(|r| Some(r.rsplit_once(':')?.0.rsplit_once(':')?.0))
            else {
                return Ok(());
            };
            let head = &id[..prefix.len() + stream.len()];
            if let Some(o) = order_of(head, Some(id), &e.body) {
                out.entry(stream.to_string()).or_default().push(o);
            }
            Ok(())
        })?;
    }
    for v in out.values_mut() {
        v.sort_by_key(|o| (o.seq, o.index));
    }
    Ok(out)
}

/// The orders and cancels among `decisions`: the exec events the session would have
/// recorded for them.
fn orders_of(
    ids: &mut ExecIds,
    prefix: &str,
    stream: &str,
    decisions: &[Decision],
    symbols: &BTreeMap<u32, String>,
    into: &mut Vec<Order>,
) {
    for e in exec_events(ids, "replay", stream, decisions, &[], symbols, None) {
        into.extend(order_of(
            prefix,
            e.correlation.command_id.as_deref(),
            &e.body,
        ));
    }
}

/// Loads modules by sha256 from the session's modules directory.
pub struct Modules<'a> {
    pub rt: &'a Runtime,
    pub dir: PathBuf,
    loaded: BTreeMap<String, Module>,
}

impl<'a> Modules<'a> {
    pub fn new(rt: &'a Runtime, dir: &Path) -> Self {
        Modules {
            rt,
            dir: dir.to_path_buf(),
            loaded: BTreeMap::new(),
        }
    }

    fn get(&mut self, sha256: &str) -> Result<Module> {
        if let Some(m) = self.loaded.get(sha256) {
            return Ok(m.clone());
        }
        let path = self.dir.join(format!("{sha256}.wasm"));
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let got = crate::hash::ModuleHash::of(&bytes).hex();
        if got != sha256 {
            return Err(Error::message(
                format!("loading {}", path.display()),
                format!("its sha256 is {got}, not the {sha256} the session ran"),
            ));
        }
        let m = self.rt.load_bytes(&bytes, &path.display().to_string())?;
        self.loaded.insert(sha256.to_string(), m.clone());
        Ok(m)
    }
}

/// Replays `stream` along the timeline and compares its orders with `recorded` (the
/// session's for that stream).
fn check_stream(
    source: &dyn EventSource,
    t: &Timeline,
    modules: &mut Modules<'_>,
    stream: &str,
    recorded: &[Order],
) -> Result<StreamCheck> {
    let steps = t.steps.get(stream).cloned().unwrap_or_default();
    let no_ends = std::collections::BTreeSet::new();
    let ends = t.ends.get(stream).unwrap_or(&no_ends);
    let symbols = source.instruments(stream)?;
    let table = instrument_table(&symbols);
    let mut r = Replayer {
        source,
        stream,
        batch: t.batch.max(1),
        table: &table,
        active: None,
        shadow: None,
        saved: Vec::new(),
    };
    let mut replayed = Vec::new();
    let mut decided = Vec::new();
    let mut ids = ExecIds::new(&t.session, stream);
    let prefix = format!("live:{}:{stream}", t.session);
    let mut steps = steps.into_iter().peekable();
    let mut writer = EventBatchWriter::new(Vec::new());
    let mut times = Vec::new();
    let mut first = 1;
    let mut events = 0u64;
    let mut switches = 0;
    let mut trap: Option<String> = None;
    // Steps at seq 0 come before any event.
    let mut apply_due = |r: &mut Replayer,
                         at: u64,
                         steps: &mut std::iter::Peekable<std::vec::IntoIter<(u64, Step)>>,
                         modules: &mut Modules|
     -> Result<()> {
        while let Some((seq, _)) = steps.peek() {
            if *seq != at {
                break;
            }
            let (seq, step) = steps.next().expect("peeked");
            r.apply(seq, step, modules)?;
            switches += 1;
        }
        Ok(())
    };
    apply_due(&mut r, 0, &mut steps, modules)?;
    let mut run = |r: &mut Replayer,
                   writer: EventBatchWriter,
                   times: &mut Vec<i64>,
                   first: u64|
     -> Result<()> {
        let batch = writer.finish();
        decided.clear();
        if let Some((_, inst)) = r.active.as_mut() {
            match inst.on_events(&batch) {
                Ok(out) => decode_outputs(&out, first, times, &mut decided),
                Err(e) => {
                    trap.get_or_insert_with(|| {
                        format!("the module trapped on seqs from {first}: {e}")
                    });
                    r.active = None;
                }
            }
        }
        if let Some((_, inst)) = r.shadow.as_mut()
            && inst.on_events(&batch).is_err()
        {
            r.shadow = None;
        }
        orders_of(&mut ids, &prefix, stream, &decided, &symbols, &mut replayed);
        times.clear();
        Ok(())
    };
    let mut next_step = steps.peek().map(|s| s.0);
    source.read_records(stream, SeqRange::ALL, &mut |seq, time, record| {
        writer.push_record(record, 1).map_err(|e| Error::BadEvent {
            stream: stream.to_string(),
            seq,
            message: e.to_string(),
        })?;
        if writer.count() == 1 {
            first = seq;
        }
        times.push(time);
        events += 1;
        if writer.count() as usize >= r.batch || next_step == Some(seq) || ends.contains(&seq) {
            let w = std::mem::replace(&mut writer, EventBatchWriter::new(Vec::new()));
            run(&mut r, w, &mut times, first)?;
            if next_step == Some(seq) {
                apply_due(&mut r, seq, &mut steps, modules)?;
                next_step = steps.peek().map(|s| s.0);
            }
        }
        Ok(())
    })?;
    if writer.count() > 0 {
        run(&mut r, writer, &mut times, first)?;
    }
    let first_difference = match replayed.iter().zip(recorded).position(|(a, b)| a != b) {
        Some(i) => Some(json!({ "replayed": replayed[i], "recorded": recorded[i] })),
        None if replayed.len() != recorded.len() => {
            let i = replayed.len().min(recorded.len());
            Some(json!({ "replayed": replayed.get(i), "recorded": recorded.get(i) }))
        }
        None => None,
    };
    let first_difference = match (first_difference, trap) {
        (Some(mut d), Some(trap)) => {
            d["trap"] = json!(trap);
            Some(d)
        }
        (d, _) => d,
    };
    Ok(StreamCheck {
        stream: stream.to_string(),
        events,
        switches,
        replayed: replayed.len(),
        recorded: recorded.len(),
        first_difference,
    })
}

/// The streams a session ran on (those its timeline names), each checked.
pub fn check(
    source: &dyn EventSource,
    t: &Timeline,
    modules: &mut Modules<'_>,
) -> Result<Vec<StreamCheck>> {
    let recorded = recorded(source, &t.session)?;
    t.steps
        .keys()
        .map(|s| {
            let r = recorded.get(s).map_or(&[][..], Vec::as_slice);
            check_stream(source, t, modules, s, r)
        })
        .collect()
}

/// The replay's modules on one stream.
struct Replayer<'s> {
    source: &'s dyn EventSource,
    stream: &'s str,
    batch: usize,
    table: &'s tapedeck_guest::Instruments,
    active: Option<(Key, Instance)>,
    shadow: Option<(Key, Instance)>,
    /// What the engine kept: a module's state when it left the stream.
    saved: Vec<(Key, Vec<u8>, u64)>,
}

impl Replayer<'_> {
    fn fresh(&self, k: &Key, modules: &mut Modules) -> Result<Instance> {
        let m = modules.get(&k.sha256)?;
        let mut inst = modules.rt.instantiate(&m)?;
        inst.init(&k.config)?;
        inst.set_instruments(self.table)?;
        Ok(inst)
    }

    /// An instance of `k` with the state the session's engine gave it at `seq`.
    fn state(
        &mut self,
        seq: u64,
        k: &Key,
        handoff: &Handoff,
        modules: &mut Modules,
    ) -> Result<Instance> {
        let mut inst = self.fresh(k, modules)?;
        let restore = |inst: &mut Instance, bytes: &[u8], what: &str| -> Result<()> {
            inst.restore(bytes).map_err(|e| {
                Error::message(
                    format!("replaying {} at seq {seq}", self.stream),
                    format!("the session handed state over by {what}, but here the module refuses it: {e}"),
                )
            })?;
            inst.set_instruments(self.table)
        };
        match handoff {
            Handoff::Snapshot => {
                let (_, active) = self.active.as_mut().ok_or_else(|| {
                    Error::message(
                        format!("replaying {} at seq {seq}", self.stream),
                        "the session handed a snapshot over, but here no module is active",
                    )
                })?;
                let bytes = active.snapshot()?;
                restore(&mut inst, &bytes, "snapshot")?;
            }
            Handoff::Saved { from_seq, .. } => {
                let bytes = self
                    .saved
                    .iter()
                    .find(|(sk, _, s)| sk == k && s == from_seq)
                    .map(|x| x.1.clone())
                    .ok_or_else(|| {
                        Error::message(
                            format!("replaying {} at seq {seq}", self.stream),
                            format!("the session restored the module's state of seq {from_seq}, which this replay did not keep"),
                        )
                    })?;
                restore(&mut inst, &bytes, "its saved state")?;
                self.catch_up(&mut inst, *from_seq, seq)?;
            }
            Handoff::CatchUp { .. } => self.catch_up(&mut inst, 0, seq)?,
        }
        Ok(inst)
    }

    fn catch_up(&self, inst: &mut Instance, after: u64, through: u64) -> Result<()> {
        if through <= after {
            return Ok(());
        }
        let mut w = EventBatchWriter::new(Vec::new());
        self.source.read_records(
            self.stream,
            SeqRange {
                from: after + 1,
                to: through,
            },
            &mut |seq, _, record| {
                w.push_record(record, 1).map_err(|e| Error::BadEvent {
                    stream: self.stream.to_string(),
                    seq,
                    message: e.to_string(),
                })?;
                if w.count() as usize >= self.batch {
                    let full = std::mem::replace(&mut w, EventBatchWriter::new(Vec::new()));
                    inst.on_events(&full.finish())?;
                }
                Ok(())
            },
        )?;
        if w.count() > 0 {
            inst.on_events(&w.finish())?;
        }
        Ok(())
    }

    fn save(&mut self, seq: u64) {
        if let Some((k, inst)) = self.active.as_mut() {
            let k = k.clone();
            self.saved.retain(|(sk, _, _)| *sk != k);
            if let Ok(bytes) = inst.snapshot() {
                self.saved.push((k, bytes, seq));
                if self.saved.len() > super::engine::SAVED {
                    self.saved.remove(0);
                }
            }
        }
    }

    fn apply(&mut self, seq: u64, step: Step, modules: &mut Modules) -> Result<()> {
        match step {
            Step::Start { module, handoff } => {
                // A new process: nothing kept from before.
                self.saved.clear();
                self.shadow = None;
                let inst = self.state(seq, &module, &handoff, modules)?;
                self.active = Some((module, inst));
            }
            Step::Switch {
                module,
                handoff,
                save,
            } => {
                let inst = self.state(seq, &module, &handoff, modules)?;
                if save {
                    self.save(seq);
                }
                self.active = Some((module, inst));
            }
            Step::Shadow { module, handoff } => {
                let inst = self.state(seq, &module, &handoff, modules)?;
                self.shadow = Some((module, inst));
            }
            Step::Promote => {
                let shadow = self.shadow.take();
                self.save(seq);
                self.active = shadow;
            }
        }
        Ok(())
    }
}
