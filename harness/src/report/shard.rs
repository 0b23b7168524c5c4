//! A shard's partial run directory: what one process of a sharded run (`--shard I/N --out
//! DIR`) writes, so that `tapedeck merge` ([`super::merge`]) can write the run directory the
//! single process would have written.
//!
//! Layout:
//! - `config.json`: the run card, with `shard` (`index`, `count` and `work`, the identity of
//!   the whole run: [`RunCard::work`]) and the data pins of this shard's streams.
//! - `shard.json`: [`ShardFile`], every per-stream result the single run's report writer
//!   reads, in stream-key order, with the statistics' inputs that reports do not show (a
//!   backtest's period equity) and the names of the stream's files under `parts/`.
//! - `parts/`: the Parquet part files of each (stream, role) (regress, backtest), written by
//!   the same [`SideParts`] as a single run's, and each stream's equity log (a backtest of
//!   several streams: the summed equity's drawdown needs every stream's, event by event).
//!
//! Invariants: per-stream results are numbers the single run computes the same way (the
//! shard replays a stream exactly as the whole run does); they go through JSON with
//! `float_roundtrip`, so every f64 comes back bit for bit. What combines streams (totals,
//! statistics over streams, the summed drawdown, artifacts) is computed by the merge with
//! the single run's own functions, over the streams in key order.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::artifacts::{SideFiles, SideParts};
use super::{RunCard, Timing, pretty};
use crate::backtest::StreamsRun;
use crate::error::{Error, Result};
use crate::regress::{BASELINE, CANDIDATE, Divergence, RegressReport};
use crate::replay::{DataPin, Finding, ReplayReport, StreamReport};
use crate::stats::Stats;
use crate::venue::{EquityPoint, Performance};

/// The per-stream results of a shard, `shard.json`.
pub const SHARD_FILE: &str = "shard.json";
/// The directory of a shard's part files and equity logs.
pub const PARTS: &str = "parts";
/// The version of `shard.json`'s layout; a merge refuses another.
pub const FORMAT: u32 = 1;

/// `shard.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: u32,
    /// The shard's own wall clock (the merged run's `timing` spans its shards').
    pub timing: Timing,
    pub results: Partial,
}

/// A shard's streams, by key, as each command's report writer needs them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Partial {
    Replay { streams: Vec<StreamReport> },
    Regress { streams: Vec<RegressPart> },
    Backtest { streams: Vec<BacktestPart> },
}

impl Partial {
    pub fn kind(&self) -> &'static str {
        match self {
            Partial::Replay { .. } => "replay",
            Partial::Regress { .. } => "regress",
            Partial::Backtest { .. } => "backtest",
        }
    }

    /// The stream keys, in order.
    pub fn streams(&self) -> Vec<&str> {
        match self {
            Partial::Replay { streams } => streams.iter().map(|s| s.stream.as_str()).collect(),
            Partial::Regress { streams } => streams.iter().map(|s| s.stream.as_str()).collect(),
            Partial::Backtest { streams } => streams.iter().map(|s| s.stream.as_str()).collect(),
        }
    }
}

/// One stream of a regression ([`crate::regress::StreamRegress`] without the decisions,
/// which are in its parts).
#[derive(Debug, Serialize, Deserialize)]
pub struct RegressPart {
    pub stream: String,
    pub events: u64,
    pub first_divergence: Option<Divergence>,
    pub baseline: Performance,
    pub candidate: Performance,
    /// Baseline's, then candidate's equity samples (the HTML report plots their sum).
    pub equity: [Vec<EquityPoint>; 2],
    pub findings: Vec<Finding>,
    pub data: DataPin,
    /// Baseline's, then candidate's part files, under `parts/`.
    pub parts: [[String; 3]; 2],
}

/// One stream of a backtest ([`crate::backtest::StreamBacktest`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct BacktestPart {
    pub stream: String,
    pub events: u64,
    pub performance: Performance,
    /// `performance.stats`, and its period equity (what [`crate::stats::combine`] sums).
    pub stats: Stats,
    pub period_equity: Vec<(i64, f64)>,
    pub findings: Vec<Finding>,
    pub equity_curve: crate::curve::Curve,
    pub position_curve: crate::curve::Curve,
    pub data: DataPin,
    /// The part files, under `parts/`.
    pub parts: [String; 3],
    /// The equity log under `parts/`, when the whole run has several streams.
    pub equity_log: Option<String>,
}

/// Writes `config.json` and `shard.json`, and makes an empty `parts/` (stale parts of an
/// earlier run go).
fn start(dir: &Path, card: &RunCard) -> Result<PathBuf> {
    if card.shard.is_none() {
        return Err(Error::message(
            format!("writing {}", dir.display()),
            "a partial run directory needs a shard's run card (RunCard::for_shard)",
        ));
    }
    let parts = dir.join(PARTS);
    if parts.exists() {
        std::fs::remove_dir_all(&parts).map_err(|e| Error::io(&parts, e))?;
    }
    std::fs::create_dir_all(&parts).map_err(|e| Error::io(&parts, e))?;
    crate::fs::write_atomic(&dir.join("config.json"), &pretty(&card.to_json()))?;
    Ok(parts)
}

fn finish(dir: &Path, timing: &Timing, results: Partial) -> Result<()> {
    let file = ShardFile {
        format: FORMAT,
        timing: timing.clone(),
        results,
    };
    let mut bytes = serde_json::to_vec(&file).expect("shard results serialize");
    bytes.push(b'\n');
    crate::fs::write_atomic(&dir.join(SHARD_FILE), &bytes)
}

/// The name of a file of `parts/`, relative to it.
fn name_in(parts: &Path, file: &Path) -> String {
    file.strip_prefix(parts)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// Writes a replay shard's partial run directory.
pub fn write_replay_shard(
    dir: &Path,
    card: &RunCard,
    r: &ReplayReport,
    timing: &Timing,
) -> Result<()> {
    start(dir, card)?;
    finish(
        dir,
        timing,
        Partial::Replay {
            streams: r.streams.clone(),
        },
    )
}

/// Writes a regression shard's partial run directory, its decisions, trades and equity
/// samples as part files.
pub fn write_regress_shard(
    dir: &Path,
    card: &RunCard,
    r: &RegressReport,
    timing: &Timing,
) -> Result<()> {
    let parts = start(dir, card)?;
    let mut streams = Vec::with_capacity(r.streams.len());
    for s in &r.streams {
        let name = crate::names::file_name(&s.stream);
        let mut files: [[String; 3]; 2] = Default::default();
        for (k, role) in [BASELINE, CANDIDATE].into_iter().enumerate() {
            let perf = if k == 0 { &s.baseline } else { &s.candidate };
            let mut p = SideParts::create(
                &parts,
                &format!("{name}.{role}"),
                &s.stream,
                role,
                s.instruments.clone(),
            )?;
            p.decisions(&s.decisions[k]);
            p.trades(&perf.fills);
            p.equity(&perf.equity);
            files[k] = p.finish()?.0.map(|f| name_in(&parts, &f));
        }
        streams.push(RegressPart {
            stream: s.stream.clone(),
            events: s.events,
            first_divergence: s.first_divergence.clone(),
            baseline: s.baseline.clone(),
            candidate: s.candidate.clone(),
            equity: [s.baseline.equity.clone(), s.candidate.equity.clone()],
            findings: s.findings.clone(),
            data: s.data.clone(),
            parts: files,
        });
    }
    finish(dir, timing, Partial::Regress { streams })
}

/// Writes a backtest shard's partial run directory from its streams (run with artifacts
/// into `dir`): the part files and equity logs move to `parts/`.
pub fn write_backtest_shard(
    dir: &Path,
    card: &RunCard,
    run: StreamsRun,
    timing: &Timing,
) -> Result<()> {
    let parts = start(dir, card)?;
    let StreamsRun {
        streams,
        logs,
        sides,
        scratch,
    } = run;
    if sides.len() != streams.len() || !(logs.is_empty() || logs.len() == streams.len()) {
        return Err(Error::message(
            format!("writing {}", dir.display()),
            "a backtest shard needs each stream's artifact parts (run it with the directory)",
        ));
    }
    let mut logs = logs.into_iter();
    let mut out = Vec::with_capacity(streams.len());
    for (s, side) in streams.into_iter().zip(sides) {
        let mut kept: [String; 3] = Default::default();
        for (i, f) in side.0.iter().enumerate() {
            let to = parts.join(f.file_name().expect("a part file has a name"));
            std::fs::rename(f, &to).map_err(|e| Error::io(&to, e))?;
            kept[i] = name_in(&parts, &to);
        }
        let equity_log = match logs.next() {
            None => None,
            Some(log) => {
                let name = format!("{}.equity", crate::names::file_name(&s.stream));
                log.keep(&parts.join(&name))?;
                Some(name)
            }
        };
        let mut performance = s.performance;
        let mut stats = std::mem::take(&mut performance.stats);
        let period_equity = std::mem::take(&mut stats.period_equity);
        out.push(BacktestPart {
            stream: s.stream,
            events: s.events,
            performance,
            stats,
            period_equity,
            findings: s.findings,
            equity_curve: s.equity_curve,
            position_curve: s.position_curve,
            data: s.data,
            parts: kept,
            equity_log,
        });
    }
    drop(scratch);
    finish(dir, timing, Partial::Backtest { streams: out })
}

/// The part files of a side, under a shard's directory.
pub(super) fn side_files(dir: &Path, names: &[String; 3]) -> SideFiles {
    SideFiles(names.clone().map(|n| dir.join(PARTS).join(n)))
}
