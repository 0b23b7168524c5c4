//! Replay: strategy and projector modules over recorded streams.
//!
//! Streams are independent and replay in parallel (rayon, `jobs` threads); within a stream,
//! strictly by seq, in batches. A replay starts from the newest stored snapshot at or before
//! the requested start that every projector can restore, and applies only later events. At
//! every stored snapshot inside the range the projector's state is diffed against it. A
//! guest trap is a finding for its stream; the other modules and streams go on. Results are
//! ordered by stream key, so the output does not depend on `jobs`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::runtime::{ModuleKind, Runtime};
use crate::store::{EventSource, SeqRange, StoredSnapshot};

mod batch;
mod read_ahead;
mod types;
use batch::{Live, check_snapshots, run_batch, trap_finding};
use read_ahead::{ReadPlan, read_batches};
pub use types::{DataPin, Finding, Plugin, Point, ReplayOptions, ReplayReport, StreamReport};

/// Sees every batch of a stream right after the modules ran it, with each plugin's decisions
/// on it (empty for projectors), in plugin order: how the venue runs inside the replay loop.
pub trait BatchObserver: Send {
    fn on_batch(&mut self, batch: &[u8], decisions: &[Vec<Decision>]);
}

/// Makes a stream's observer from its key and instrument table (guest id to symbol).
pub type MakeObserver<'a, O> = dyn Fn(&str, &BTreeMap<u32, String>) -> Result<O> + Sync + 'a;

/// Observes nothing.
#[derive(Debug)]
pub struct NoObserver;

impl BatchObserver for NoObserver {
    fn on_batch(&mut self, _: &[u8], _: &[Vec<Decision>]) {}
}

/// Replays every stream matching `opts.streams`.
pub fn replay(
    rt: &Runtime,
    source: &dyn EventSource,
    plugins: &[Plugin],
    opts: &ReplayOptions,
) -> Result<ReplayReport> {
    let streams = replay_observed(rt, source, plugins, opts, None, &|_, _| Ok(NoObserver))?;
    Ok(ReplayReport {
        streams: streams.into_iter().map(|s| s.0).collect(),
    })
}

pub use crate::store::matching_streams;

/// [`replay`] with an observer per stream, made by `observer(stream key, its instrument
/// table)` when the stream starts (the table is read once per stream, and is the report's
/// `instruments`); each stream's report comes back with its observer, by stream key. `only`
/// replays those streams instead of the ones `opts.streams` matches.
pub fn replay_observed<O: BatchObserver>(
    rt: &Runtime,
    source: &dyn EventSource,
    plugins: &[Plugin],
    opts: &ReplayOptions,
    only: Option<&[String]>,
    observer: &MakeObserver<'_, O>,
) -> Result<Vec<(StreamReport, O)>> {
    let all: Vec<String> = match only {
        Some(k) => k.to_vec(),
        None => matching_streams(source, &opts.streams)?,
    };
    // Numbered in the whole selection, then cut to the shard: a stream's number (its id in
    // the guest batches) is the same in every shard and in the single run.
    let keys: Vec<(u32, String)> = all
        .into_iter()
        .enumerate()
        .map(|(i, k)| (i as u32 + 1, k))
        .filter(|(_, k)| opts.shard.is_none_or(|s| s.takes_stream(k)))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::engine("starting the replay thread pool", e))?;
    let results: Vec<Result<(StreamReport, O)>> = pool.install(|| {
        use rayon::prelude::*;
        keys.par_iter()
            .map(|(id, key)| replay_stream(rt, source, plugins, opts, key, *id, observer))
            .collect()
    });
    let mut streams = results.into_iter().collect::<Result<Vec<_>>>()?;
    streams.sort_by(|a, b| a.0.stream.cmp(&b.0.stream));
    Ok(streams)
}

fn replay_stream<O: BatchObserver>(
    rt: &Runtime,
    source: &dyn EventSource,
    plugins: &[Plugin],
    opts: &ReplayOptions,
    key: &str,
    stream_id: u32,
    make_observer: &MakeObserver<'_, O>,
) -> Result<(StreamReport, O)> {
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
        // The stream's instrument table, read once: guests name instruments by symbol where
        // a person reads, the venue and the reports too.
        instruments: source.instruments(key)?,
        digest: String::new(),
    };
    let mut observer = make_observer(key, &report.instruments)?;
    let instruments = crate::event::instrument_table(&report.instruments);
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
    let first = report
        .anchor_seq
        .map_or(opts.cold_start.unwrap_or(1).max(1), |s| s + 1);
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

    let mut decided: Vec<Vec<Decision>> = vec![Vec::new(); live.len()];
    // Reading, digesting and packing run a few batches ahead, on a thread of their own.
    let plan = ReadPlan {
        key,
        stream_id,
        range: SeqRange { from: first, to },
        end_time,
        batch: opts.batch,
        cut_after: &snap_seqs,
    };
    report.digest = read_batches(source, &plan, &mut |b| {
        report.events += b.times.len() as u64;
        report.last_seq = b.last_seq;
        run_batch(
            &mut live,
            &b.bytes,
            key,
            b.first_seq,
            &b.times,
            opts,
            &mut report,
            &mut decided,
        );
        observer.on_batch(&b.bytes, &decided);
        if b.at_cut {
            check_snapshots(&mut live, &snapshots, b.last_seq, key, opts, &mut report);
        }
    })?;
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
    Ok((report, observer))
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
