//! `tapedeck merge`: the partial run directories of a sharded run ([`super::shard`]) into the
//! run directory the single process would have written, byte for byte but for
//! `summary.json`'s wall-clock `timing`.
//!
//! Checks, each refusal naming the directories concerned: every directory is a shard's
//! (`config.json` has a `shard`, `shard.json` is of this [`FORMAT`]); all are shards of one
//! work (same [`RunCard::work`], same count, same kind); every shard `0..count` is there
//! exactly once; no stream is in two shards, and each is in the shard its key hashes to.
//!
//! Then the streams of all shards, in key order, go to the single run's own functions:
//! [`RegressReport::sum`], [`crate::backtest::summarize`] (totals, statistics over streams,
//! the summed equity's drawdown from the shards' equity logs), the report writers, and
//! [`super::artifacts::assemble`] over the shards' part files. The merged card is the shards'
//! without `shard`, with every stream's data pin, by key. `timing` starts at the earliest
//! shard's start and lasts as long as the longest shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::shard::{FORMAT, Partial, SHARD_FILE, ShardFile, side_files};
use super::{RunCard, Timing};
use crate::backtest::StreamBacktest;
use crate::error::{Error, Result};
use crate::fs::ScratchDir;
use crate::regress::{RegressReport, StreamRegress, verdict};
use crate::replay::ReplayReport;
use crate::shard::Shard;

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// `replay`, `regress` or `backtest`.
    pub kind: &'static str,
    pub shards: u32,
    pub streams: usize,
    /// No findings (and, for a regression, its `--fail-on` rules passed): the exit code the
    /// single run would have had is 0.
    pub passed: bool,
}

fn refuse(reason: impl Into<String>) -> Error {
    Error::Merge {
        reason: reason.into(),
    }
}

struct Loaded {
    dir: PathBuf,
    card: RunCard,
    shard: Shard,
    file: ShardFile,
}

fn load(dir: &Path) -> Result<Loaded> {
    let d = dir.display();
    let read = |name: &str| -> Result<Vec<u8>> {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| {
            refuse(format!(
                "{d} is not a shard's run directory: reading {name}: {e} (was it run with --shard and --out?)"
            ))
        })
    };
    let card: RunCard = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| refuse(format!("{d}/config.json is not a run card: {e}")))?;
    let sc = card.shard.clone().ok_or_else(|| {
        refuse(format!(
            "{d} is a whole run, not a shard's (its config.json names no shard)"
        ))
    })?;
    let shard =
        Shard::new(sc.index, sc.count).map_err(|e| refuse(format!("{d}/config.json: {e}")))?;
    if card.work() != sc.work {
        return Err(refuse(format!(
            "{d}/config.json: its work id {} is not its card's ({}): the card was edited or written by another version",
            sc.work,
            card.work()
        )));
    }
    let text = read(SHARD_FILE)?;
    let format: Value =
        serde_json::from_slice(&text).map_err(|e| refuse(format!("{d}/{SHARD_FILE}: {e}")))?;
    if format.get("format").and_then(Value::as_u64) != Some(u64::from(FORMAT)) {
        return Err(refuse(format!(
            "{d}/{SHARD_FILE} is of format {}, this tapedeck merges format {FORMAT}: merge with the version that ran the shards",
            format.get("format").unwrap_or(&Value::Null)
        )));
    }
    let file: ShardFile =
        serde_json::from_slice(&text).map_err(|e| refuse(format!("{d}/{SHARD_FILE}: {e}")))?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        card,
        shard,
        file,
    })
}

/// The top-level keys where two cards differ (data pins and shard aside).
fn differences(a: &RunCard, b: &RunCard) -> Vec<String> {
    let strip = |c: &RunCard| {
        let mut v = RunCard {
            data: Vec::new(),
            shard: None,
            ..c.clone()
        }
        .to_json();
        std::mem::take(v.as_object_mut().expect("a card is an object"))
    };
    let (a, b) = (strip(a), strip(b));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| a.get(k) != b.get(k));
    keys
}

/// Checks that `shards` are all of one work, each once; sorted by index.
fn check(mut shards: Vec<Loaded>) -> Result<Vec<Loaded>> {
    let first = shards
        .first()
        .ok_or_else(|| refuse("no run directories given"))?;
    let (count, work) = (first.shard.count, first.card.work());
    for s in &shards[1..] {
        if s.card.work() != work {
            return Err(refuse(format!(
                "{} and {} are shards of different runs: their run cards differ in {}",
                first.dir.display(),
                s.dir.display(),
                differences(&first.card, &s.card).join(", ")
            )));
        }
        if s.shard.count != count {
            return Err(refuse(format!(
                "{} is shard {} but {} is shard {}: one run has one shard count",
                s.dir.display(),
                s.shard,
                first.dir.display(),
                first.shard
            )));
        }
    }
    shards.sort_by_key(|s| s.shard.index);
    let set: Vec<_> = shards.iter().map(|s| (s.shard, s.dir.as_path())).collect();
    crate::shard::whole_set(&set, count).map_err(refuse)?;
    let kind = shards[0].file.results.kind();
    let mut owner: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in &shards {
        if s.file.results.kind() != kind {
            return Err(refuse(format!(
                "{} holds a {} but {} a {}",
                s.dir.display(),
                s.file.results.kind(),
                shards[0].dir.display(),
                kind
            )));
        }
        for key in s.file.results.streams() {
            if !s.shard.takes_stream(key) {
                return Err(refuse(format!(
                    "{}: stream {key:?} is not shard {}'s (it hashes to shard {})",
                    s.dir.display(),
                    s.shard,
                    Shard::of_stream(key, count)
                )));
            }
            if let Some(other) = owner.insert(key, &s.dir) {
                return Err(refuse(format!(
                    "stream {key:?} is in both {} and {}",
                    other.display(),
                    s.dir.display()
                )));
            }
        }
    }
    Ok(shards)
}

/// The shards' run directories directly under `dir` (those holding a `shard.json`), sorted.
pub fn shard_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.join(SHARD_FILE).is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Merges the shards' directories `dirs` into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged> {
    for d in dirs {
        if d.canonicalize().ok() == out.canonicalize().ok() && out.exists() {
            return Err(refuse(format!(
                "--out {} is one of the shards: write the merged run elsewhere",
                out.display()
            )));
        }
    }
    let shards = check(dirs.iter().map(|d| load(d)).collect::<Result<Vec<_>>>()?)?;
    let count = shards[0].shard.count;
    let mut pins: Vec<_> = shards.iter().flat_map(|s| s.card.data.clone()).collect();
    pins.sort_by(|a, b| a.stream.cmp(&b.stream));
    let card = RunCard {
        shard: None,
        ..shards[0].card.clone()
    }
    .pin_data(pins);
    let timing = Timing::merged(shards.iter().map(|s| &s.file.timing));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let kind = shards[0].file.results.kind();
    let (streams, passed) = match kind {
        "replay" => replay(shards, out, &card, &timing)?,
        "regress" => regress(shards, out, &card, &timing)?,
        _ => backtest(shards, out, &card, &timing)?,
    };
    Ok(Merged {
        kind,
        shards: count,
        streams,
        passed,
    })
}

/// Each shard's streams with its directory, all in key order.
fn by_key<T>(
    shards: Vec<Loaded>,
    take: impl Fn(Partial) -> Vec<T>,
    key: impl Fn(&T) -> &str,
) -> Vec<(PathBuf, T)> {
    let mut all: Vec<(PathBuf, T)> = Vec::new();
    for s in shards {
        let dir = s.dir;
        all.extend(take(s.file.results).into_iter().map(|t| (dir.clone(), t)));
    }
    all.sort_by(|a, b| key(&a.1).cmp(key(&b.1)));
    all
}

fn replay(
    shards: Vec<Loaded>,
    out: &Path,
    card: &RunCard,
    timing: &Timing,
) -> Result<(usize, bool)> {
    let streams = by_key(
        shards,
        |p| match p {
            Partial::Replay { streams } => streams,
            _ => unreachable!("checked: one kind"),
        },
        |s| &s.stream,
    );
    let report = ReplayReport {
        streams: streams.into_iter().map(|(_, s)| s).collect(),
    };
    super::write_run_dir(out, card, &report, timing)?;
    Ok((report.streams.len(), report.is_clean()))
}

fn regress(
    shards: Vec<Loaded>,
    out: &Path,
    card: &RunCard,
    timing: &Timing,
) -> Result<(usize, bool)> {
    let parts = by_key(
        shards,
        |p| match p {
            Partial::Regress { streams } => streams,
            _ => unreachable!("checked: one kind"),
        },
        |s| &s.stream,
    );
    let mut sides = Vec::with_capacity(parts.len() * 2);
    let mut streams = Vec::with_capacity(parts.len());
    for (dir, p) in parts {
        sides.push(side_files(&dir, &p.parts[0]));
        sides.push(side_files(&dir, &p.parts[1]));
        let [be, ce] = p.equity;
        streams.push(StreamRegress {
            stream: p.stream,
            events: p.events,
            first_divergence: p.first_divergence,
            baseline: crate::venue::Performance {
                equity: be,
                ..p.baseline
            },
            candidate: crate::venue::Performance {
                equity: ce,
                ..p.candidate
            },
            findings: p.findings,
            decisions: Default::default(),
            instruments: Default::default(),
            data: p.data,
        });
    }
    let report = RegressReport::sum(streams);
    let rules = card.fail_on.clone().unwrap_or_default();
    let verdict = verdict(&rules, &report);
    super::write_regress_reports(out, card, &report, &verdict, timing)?;
    super::artifacts::assemble(out, &sides)?;
    Ok((report.streams.len(), verdict.is_empty()))
}

fn backtest(
    shards: Vec<Loaded>,
    out: &Path,
    card: &RunCard,
    timing: &Timing,
) -> Result<(usize, bool)> {
    let stats = card
        .stats
        .ok_or_else(|| refuse("a backtest's run card without its stats settings"))?;
    let parts = by_key(
        shards,
        |p| match p {
            Partial::Backtest { streams } => streams,
            _ => unreachable!("checked: one kind"),
        },
        |s| &s.stream,
    );
    let several = parts.len() > 1;
    let mut sides = Vec::with_capacity(parts.len());
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut streams = Vec::with_capacity(parts.len());
    for (dir, p) in parts {
        sides.push(side_files(&dir, &p.parts));
        match (several, &p.equity_log) {
            (true, Some(name)) => logs.push(dir.join(super::shard::PARTS).join(name)),
            (true, None) => {
                return Err(refuse(format!(
                    "{}: stream {:?} has no equity log, which a run of several streams keeps",
                    dir.display(),
                    p.stream
                )));
            }
            (false, _) => {}
        }
        let mut performance = p.performance;
        performance.stats = crate::stats::Stats {
            period_equity: p.period_equity,
            ..p.stats
        };
        streams.push(StreamBacktest {
            stream: p.stream,
            events: p.events,
            performance,
            findings: p.findings,
            instruments: Default::default(),
            equity_curve: p.equity_curve,
            position_curve: p.position_curve,
            data: p.data,
        });
    }
    let scratch = Arc::new(ScratchDir::new(Some(out), "tapedeck-merge")?);
    let paths: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let report = crate::backtest::summarize(streams, &paths, sides, Some(scratch), true, &stats)?;
    super::backtest::write_backtest_dir(out, card, &report, timing)?;
    Ok((report.streams.len(), report.is_clean()))
}
