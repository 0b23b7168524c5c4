//! Replay: strategy and projector modules over recorded streams.
//!
//! Streams are independent and replay in parallel (rayon, `jobs` threads); within a stream,
//! strictly by seq, in batches. A replay starts from the newest stored snapshot at or before
//! the requested start that every projector can restore, and applies only later events. At
//! every stored snapshot inside the range the projector's state is diffed against it. A
//! guest trap is a finding for its stream; the other modules and streams go on. Results are
//! ordered by stream key, so the output does not depend on `jobs`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tapedeck_guest::codec::EventBatchWriter;

use crate::decision::Decision;
use crate::diff::{Tolerances, diff};
use crate::error::{Error, Result};
use crate::glob::glob_match;
use crate::runtime::{Instance, Module, ModuleKind, Runtime};
use crate::store::{EventSource, SeqRange, StoredSnapshot};
use crate::time::parse_rfc3339;

/// Where a replay starts or stops: a seq, or an event time (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Point {
    Seq(u64),
    Time(i64),
}

impl std::str::FromStr for Point {
    type Err = String;

    /// A plain integer is a seq; `t:<ns>` or an RFC 3339 UTC time (`2024-08-08T23:55:00Z`) is a time.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(ns) = s.strip_prefix("t:") {
            return ns
                .parse()
                .map(Point::Time)
                .map_err(|_| format!("bad time {s:?}: want t:<ns since epoch>"));
        }
        if let Ok(seq) = s.parse() {
            return Ok(Point::Seq(seq));
        }
        parse_rfc3339(s).map(Point::Time).ok_or_else(|| {
            format!(
                "{s:?} is neither a seq, t:<ns>, nor a valid UTC time like 2024-08-08T23:55:00Z"
            )
        })
    }
}

/// A module to run, with its config (JSON; "" for defaults).
#[derive(Debug, Clone)]
pub struct Plugin {
    pub module: Module,
    pub config: String,
    /// What reports call it; defaults to the module's name (a regression run says
    /// "baseline" and "candidate", which may be two builds of one module).
    pub label: Option<String>,
}

impl Plugin {
    pub fn new(module: Module, config: impl Into<String>) -> Self {
        Plugin {
            module,
            config: config.into(),
            label: None,
        }
    }

    /// The name stored snapshots use: the module's own name.
    pub fn name(&self) -> &str {
        &self.module.info().name
    }

    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or_else(|| self.name())
    }
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub streams: String,
    pub from: Option<Point>,
    pub to: Option<Point>,
    pub jobs: usize,
    /// Events per guest call (batches also end at stored snapshots).
    pub batch: usize,
    pub tolerances: Tolerances,
    /// Keep every strategy output (decisions), not only counts.
    pub keep_outputs: bool,
    /// Counts events as batches complete, for a progress display (never for results).
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Diff projector state against the store's snapshots (off for snapshot tests, which
    /// compare against their own files).
    pub check_stored: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            streams: "*".into(),
            from: None,
            to: None,
            jobs: 1,
            batch: 1024,
            tolerances: Tolerances::default(),
            keep_outputs: false,
            progress: None,
            check_stored: true,
        }
    }
}

/// Something a replay found. Data, not an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum Finding {
    StateMismatch {
        stream: String,
        seq: u64,
        projector: String,
        path: String,
        expected: Value,
        actual: Value,
    },
    GuestTrap {
        stream: String,
        module: String,
        message: String,
        first_seq: u64,
        last_seq: u64,
    },
}

impl Finding {
    pub fn stream(&self) -> &str {
        match self {
            Finding::StateMismatch { stream, .. } | Finding::GuestTrap { stream, .. } => stream,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub stream: String,
    /// The first seq replayed (after the anchor, if one was used).
    pub start_seq: u64,
    /// The stored snapshot the replay started from, if any.
    pub anchor_seq: Option<u64>,
    pub last_seq: u64,
    pub events: u64,
    /// Stored snapshots diffed.
    pub snapshots_checked: u64,
    pub findings: Vec<Finding>,
    /// Per strategy label: outputs emitted.
    pub output_counts: BTreeMap<String, u64>,
    /// Per strategy label, when `keep_outputs`: every output.
    #[serde(skip)]
    pub outputs: BTreeMap<String, Vec<Decision>>,
    /// Per projector: state at the end of the range.
    pub final_states: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub streams: Vec<StreamReport>,
}

impl ReplayReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.streams.iter().flat_map(|s| &s.findings)
    }

    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }

    pub fn events(&self) -> u64 {
        self.streams.iter().map(|s| s.events).sum()
    }
}

/// Replays every stream matching `opts.streams`.
pub fn replay(
    rt: &Runtime,
    source: &dyn EventSource,
    plugins: &[Plugin],
    opts: &ReplayOptions,
) -> Result<ReplayReport> {
    let keys: Vec<String> = source
        .streams()?
        .into_iter()
        .map(|s| s.key)
        .filter(|k| glob_match(&opts.streams, k))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::engine("starting the replay thread pool", e))?;
    let results: Vec<Result<StreamReport>> = pool.install(|| {
        use rayon::prelude::*;
        keys.par_iter()
            .enumerate()
            .map(|(i, key)| replay_stream(rt, source, plugins, opts, key, i as u32 + 1))
            .collect()
    });
    let mut streams = results.into_iter().collect::<Result<Vec<_>>>()?;
    streams.sort_by(|a, b| a.stream.cmp(&b.stream));
    Ok(ReplayReport { streams })
}

struct Live<'p> {
    plugin: &'p Plugin,
    inst: Option<Instance>,
}

fn replay_stream(
    rt: &Runtime,
    source: &dyn EventSource,
    plugins: &[Plugin],
    opts: &ReplayOptions,
    key: &str,
    stream_id: u32,
) -> Result<StreamReport> {
    let snapshots = if opts.check_stored {
        source.snapshots(key)?
    } else {
        Vec::new()
    };
    let mut report = StreamReport {
        stream: key.to_string(),
        start_seq: 1,
        anchor_seq: None,
        last_seq: 0,
        events: 0,
        snapshots_checked: 0,
        findings: Vec::new(),
        output_counts: BTreeMap::new(),
        outputs: BTreeMap::new(),
        final_states: BTreeMap::new(),
    };
    // The stream's instrument table: guests name instruments by symbol where a person reads.
    let instruments = crate::event::instrument_table(&source.instruments(key)?);
    let mut live: Vec<Live> = Vec::new();
    for p in plugins {
        let mut inst = rt.instantiate(&p.module)?;
        inst.init(&p.config)?;
        inst.set_instruments(&instruments)?;
        live.push(Live {
            plugin: p,
            inst: Some(inst),
        });
    }

    // The anchor: the newest seq before the start where every projector has a snapshot it
    // restores from.
    let start_seq = match opts.from {
        Some(Point::Seq(s)) => s.max(1),
        Some(Point::Time(t)) => first_seq_at(source, key, t)?,
        None => 1,
    };
    let projectors: Vec<&str> = live
        .iter()
        .filter(|l| l.plugin.module.kind() == ModuleKind::Projector)
        .map(|l| l.plugin.name())
        .collect();
    if !projectors.is_empty() && start_seq > 1 {
        let mut candidates: Vec<u64> = snapshots
            .iter()
            .map(|s| s.seq)
            .filter(|s| *s < start_seq)
            .collect();
        candidates.dedup();
        for seq in candidates.into_iter().rev() {
            let at: Vec<&StoredSnapshot> = snapshots.iter().filter(|s| s.seq == seq).collect();
            if projectors
                .iter()
                .all(|p| at.iter().any(|s| s.projector == *p))
                && restore_all(&mut live, &at, rt, &instruments)?
            {
                report.anchor_seq = Some(seq);
                break;
            }
        }
    }
    let first = report.anchor_seq.map_or(1, |s| s + 1);
    report.start_seq = first;
    let to = match opts.to {
        Some(Point::Seq(s)) => s,
        _ => u64::MAX,
    };
    let end_time = match opts.to {
        Some(Point::Time(t)) => Some(t),
        _ => None,
    };
    let snap_seqs: Vec<u64> = {
        let mut v: Vec<u64> = snapshots
            .iter()
            .map(|s| s.seq)
            .filter(|s| *s >= first && *s <= to)
            .collect();
        v.dedup();
        v
    };

    let mut writer = EventBatchWriter::new(Vec::new());
    let mut times: Vec<i64> = Vec::new();
    let mut first_in_batch = 0;
    let mut pending_snaps = snap_seqs.iter().peekable();
    let mut done = false;
    source.read_records(
        key,
        SeqRange { from: first, to },
        &mut |seq, time, record| {
            if done || end_time.is_some_and(|t| time > t) {
                done = true;
                return Ok(());
            }
            writer
                .push_record(record, stream_id)
                .map_err(|err| Error::BadEvent {
                    stream: key.to_string(),
                    seq,
                    message: format!("store gave a bad record: {err}"),
                })?;
            if writer.count() == 1 {
                first_in_batch = seq;
            }
            times.push(time);
            report.events += 1;
            report.last_seq = seq;
            let at_snapshot = pending_snaps.peek().is_some_and(|s| **s == seq);
            if at_snapshot || writer.count() as usize >= opts.batch {
                let batch =
                    std::mem::replace(&mut writer, EventBatchWriter::new(Vec::new())).finish();
                run_batch(
                    &mut live,
                    &batch,
                    key,
                    first_in_batch,
                    &times,
                    opts,
                    &mut report,
                );
                times.clear();
                if at_snapshot {
                    pending_snaps.next();
                    check_snapshots(&mut live, &snapshots, seq, key, opts, &mut report);
                }
            }
            Ok(())
        },
    )?;
    if writer.count() > 0 {
        let batch = writer.finish();
        run_batch(
            &mut live,
            &batch,
            key,
            first_in_batch,
            &times,
            opts,
            &mut report,
        );
    }
    for l in live.iter_mut() {
        if l.plugin.module.kind() != ModuleKind::Projector {
            continue;
        }
        if let Some(inst) = l.inst.as_mut() {
            match inst.state() {
                Ok(bytes) => {
                    report.final_states.insert(
                        l.plugin.name().to_string(),
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    );
                }
                Err(e) => {
                    let last = report.last_seq;
                    trap_finding(&mut report, key, l, &e, last, last)
                }
            }
        }
    }
    Ok(report)
}

/// The first seq of `key` at or after time `t` (one past the end if none).
fn first_seq_at(source: &dyn EventSource, key: &str, t: i64) -> Result<u64> {
    let mut found = None;
    let mut last = 0;
    // Records carry seq and time: with an index this parses no envelope.
    source.read_records(key, SeqRange::ALL, &mut |seq, time, _| {
        last = seq;
        if found.is_none() && time >= t {
            found = Some(seq);
        }
        Ok(())
    })?;
    Ok(found.unwrap_or(last + 1))
}

/// Restores every projector from the snapshots at one seq; false if any refuses.
fn restore_all(
    live: &mut [Live],
    at: &[&StoredSnapshot],
    rt: &Runtime,
    instruments: &tapedeck_guest::Instruments,
) -> Result<bool> {
    for l in live
        .iter_mut()
        .filter(|l| l.plugin.module.kind() == ModuleKind::Projector)
    {
        let snap = at
            .iter()
            .find(|s| s.projector == l.plugin.name())
            .expect("checked by the caller");
        let bytes = match &snap.guest_snapshot {
            Some(v) => serde_json::to_vec(v).expect("JSON"),
            None => serde_json::to_vec(&snap.state).expect("JSON"),
        };
        let inst = l.inst.as_mut().expect("fresh instances");
        if inst.restore(&bytes).is_err() {
            // Undo: fresh instances for everyone, and no anchor here.
            for l in live.iter_mut() {
                let mut fresh = rt.instantiate(&l.plugin.module)?;
                fresh.init(&l.plugin.config)?;
                fresh.set_instruments(instruments)?;
                l.inst = Some(fresh);
            }
            return Ok(false);
        }
        inst.set_instruments(instruments)?;
    }
    Ok(true)
}

fn trap_finding(report: &mut StreamReport, key: &str, l: &Live, e: &Error, first: u64, last: u64) {
    let (first_seq, last_seq) = match e {
        Error::GuestTrap {
            first_seq,
            last_seq,
            ..
        } => (*first_seq, *last_seq),
        _ => (first, last),
    };
    report.findings.push(Finding::GuestTrap {
        stream: key.to_string(),
        module: l.plugin.label().to_string(),
        message: e.to_string(),
        first_seq,
        last_seq,
    });
}

fn run_batch(
    live: &mut [Live],
    batch: &[u8],
    key: &str,
    first_seq: u64,
    times: &[i64],
    opts: &ReplayOptions,
    report: &mut StreamReport,
) {
    if let Some(p) = &opts.progress {
        let n = batch
            .get(8..12)
            .map_or(0, |c| u32::from_le_bytes(c.try_into().unwrap()));
        p.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let last_seq = report.last_seq;
    for l in live.iter_mut() {
        let Some(inst) = l.inst.as_mut() else {
            continue;
        };
        match inst.on_events(batch) {
            Ok(out) => {
                if l.plugin.module.kind() != ModuleKind::Strategy {
                    continue;
                }
                let name = l.plugin.label().to_string();
                let records = tapedeck_guest::codec::OutputBatch::new(&out)
                    .expect("validated by the runtime");
                let n = records.announced() as u64;
                *report.output_counts.entry(name.clone()).or_default() += n;
                if opts.keep_outputs && n > 0 {
                    let v = report.outputs.entry(name).or_default();
                    for r in records.flatten() {
                        let idx = r.cause_seq.saturating_sub(first_seq) as usize;
                        v.push(Decision {
                            seq: r.cause_seq,
                            time_ns: times.get(idx).copied().unwrap_or(0),
                            output: (&r.output).into(),
                        });
                    }
                }
            }
            Err(e) => {
                trap_finding(report, key, l, &e, first_seq, last_seq);
                l.inst = None;
            }
        }
    }
}

fn check_snapshots(
    live: &mut [Live],
    snapshots: &[StoredSnapshot],
    seq: u64,
    key: &str,
    opts: &ReplayOptions,
    report: &mut StreamReport,
) {
    for snap in snapshots.iter().filter(|s| s.seq == seq) {
        let Some(l) = live.iter_mut().find(|l| {
            l.plugin.name() == snap.projector && l.plugin.module.kind() == ModuleKind::Projector
        }) else {
            continue;
        };
        let Some(inst) = l.inst.as_mut() else {
            continue;
        };
        report.snapshots_checked += 1;
        match inst.state() {
            Ok(bytes) => {
                let actual: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                for d in diff(&snap.state, &actual, &opts.tolerances) {
                    report.findings.push(Finding::StateMismatch {
                        stream: key.to_string(),
                        seq,
                        projector: snap.projector.clone(),
                        path: d.path,
                        expected: d.expected,
                        actual: d.actual,
                    });
                }
            }
            Err(e) => {
                trap_finding(report, key, l, &e, seq, seq);
                l.inst = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse() {
        assert_eq!("42".parse::<Point>().unwrap(), Point::Seq(42));
        assert_eq!("t:5".parse::<Point>().unwrap(), Point::Time(5));
        assert_eq!(
            "1970-01-01T00:00:01Z".parse::<Point>().unwrap(),
            Point::Time(1_000_000_000)
        );
        assert_eq!(
            "2024-08-08T23:54:14.5Z".parse::<Point>().unwrap(),
            Point::Time(1_723_161_254_500_000_000)
        );
        assert!("yesterday".parse::<Point>().is_err());
    }
}
