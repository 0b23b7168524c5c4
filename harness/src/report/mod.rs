//! Run directories. A replay writes `summary.json`, `config.json` (the run card),
//! `report.md` (fits a PR comment), `junit.xml` (one case per stream) and `findings.json`; a
//! regression writes `summary.json`, `config.json`, `report.md`, `report.html`, `junit.xml`
//! and three Parquet files.
//!
//! Invariants: everything but `summary.json`'s `timing` is a function of the inputs alone
//! (identical runs write identical bytes, whatever the jobs); JSON files are written through
//! `serde_json::Value`, whose maps keep keys in alphabetical order.
//!
//! - [`card`]: the run card ([`RunCard`]), `config.json`.
//! - [`markdown`] and [`junit`]: `report.md` and `junit.xml`.
//! - [`html`]: the regression's `report.html`, with plots.
//! - [`parquet`]: the Parquet artifacts of a regression or a backtest; [`artifacts`]: their
//!   part files, written as rows are produced, and the assembly.
//! - [`backtest`]: a backtest's whole run directory.
//! - [`plot`]: line plots over time with axes ([`plot::line_plot`]), for any HTML report.
//! - [`shard`]: a shard's partial run directory; [`merge`]: shards' directories into the
//!   single run's.
//! - here: [`Timing`] and [`Stopwatch`] (the only wall clock), [`describe`], and the writers
//!   of both directories.

pub mod artifacts;
pub mod backtest;
mod card;
pub mod html;
mod junit;
mod markdown;
pub mod merge;
pub mod parquet;
pub mod plot;
pub mod shard;

use std::path::Path;

use serde_json::{Value, json};

use crate::diff::Tolerances;
use crate::error::Result;
use crate::regress::RegressReport;
use crate::replay::{Finding, ReplayReport};

pub use card::{
    ModuleCard, RunCard, RuntimeCard, ShardCard, backtest_card, regress_card, run_card,
};

/// Wall-clock facts of a run: the only fields allowed to differ between identical runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub started_at_unix_ms: u128,
    pub elapsed_ms: u128,
    pub jobs: usize,
}

impl Timing {
    /// Shards' timings as one run's: the earliest start, the longest shard, the first's jobs.
    pub fn merged<'a>(shards: impl Iterator<Item = &'a Timing> + Clone) -> Timing {
        Timing {
            started_at_unix_ms: shards
                .clone()
                .map(|t| t.started_at_unix_ms)
                .min()
                .unwrap_or(0),
            elapsed_ms: shards.clone().map(|t| t.elapsed_ms).max().unwrap_or(0),
            jobs: shards.map(|t| t.jobs).next().unwrap_or(1),
        }
    }
}

/// Reads the wall clock for a run's [`Timing`] (commands only: nothing else may see it).
#[derive(Debug)]
pub struct Stopwatch {
    started_at_unix_ms: u128,
    t0: std::time::Instant,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            started_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            t0: std::time::Instant::now(),
        }
    }

    pub fn timing(&self, jobs: usize) -> Timing {
        Timing {
            started_at_unix_ms: self.started_at_unix_ms,
            elapsed_ms: self.t0.elapsed().as_millis(),
            jobs,
        }
    }
}

/// Writes the run directory.
pub fn write_run_dir(
    dir: &Path,
    card: &RunCard,
    report: &ReplayReport,
    timing: &Timing,
) -> Result<()> {
    let w = |name: &str, bytes: Vec<u8>| crate::fs::write_atomic(&dir.join(name), &bytes);
    let findings: Vec<&Finding> = report.findings().collect();
    let streams: Vec<Value> = report
        .streams
        .iter()
        .map(|s| {
            json!({
                "stream": s.stream,
                "start_seq": s.start_seq,
                "anchor_seq": s.anchor_seq,
                "last_seq": s.last_seq,
                "events": s.events,
                "snapshots_checked": s.snapshots_checked,
                "findings": s.findings.len(),
                "outputs": s.output_counts,
            })
        })
        .collect();
    let summary = json!({
        "clean": report.is_clean(),
        "events": report.events(),
        "streams": streams,
        "findings": findings.len(),
        "timing": timing,
    });
    w("summary.json", pretty(&summary))?;
    w("config.json", pretty(&card.to_json()))?;
    w(
        "findings.json",
        pretty(&serde_json::to_value(&findings).expect("findings serialize")),
    )?;
    w("report.md", markdown::replay(card, report).into_bytes())?;
    w("junit.xml", junit::replay(report).into_bytes())?;
    Ok(())
}

pub(crate) fn pretty(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("JSON");
    b.push(b'\n');
    b
}

/// One line per finding, for terminals and reports.
pub fn describe(f: &Finding) -> String {
    match f {
        Finding::StateMismatch {
            stream,
            seq,
            projector,
            path,
            expected,
            actual,
        } => {
            format!(
                "{stream} seq {seq}: {projector} state differs at {path}: expected {expected}, got {actual}"
            )
        }
        Finding::GuestTrap {
            stream,
            module,
            message,
            ..
        } => format!("{stream}: {module}: {message}"),
    }
}

/// Reads a tolerance config file (JSON), or the default (exact).
pub fn load_tolerances(path: Option<&Path>) -> Result<Tolerances> {
    match path {
        None => Ok(Tolerances::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| crate::Error::io(p, e))?;
            Tolerances::from_json(&text).map_err(|message| crate::Error::Corrupt {
                path: p.to_path_buf(),
                line: 1,
                message,
            })
        }
    }
}

/// Writes a regression run directory: summary.json, config.json, report.md, report.html,
/// junit.xml (one case per stream) and the Parquet artifacts.
pub fn write_regress_dir(
    dir: &Path,
    card: &RunCard,
    r: &RegressReport,
    verdict: &[String],
    timing: &Timing,
) -> Result<()> {
    write_regress_reports(dir, card, r, verdict, timing)?;
    parquet::write_regress_artifacts(dir, r)
}

/// [`write_regress_dir`] but for the Parquet artifacts (a merge assembles them from the
/// shards' parts).
pub fn write_regress_reports(
    dir: &Path,
    card: &RunCard,
    r: &RegressReport,
    verdict: &[String],
    timing: &Timing,
) -> Result<()> {
    let w = |name: &str, bytes: Vec<u8>| crate::fs::write_atomic(&dir.join(name), &bytes);
    let streams: Vec<Value> = r
        .streams
        .iter()
        .map(|s| {
            json!({
                "stream": s.stream,
                "events": s.events,
                "first_divergence": s.first_divergence,
                "baseline": s.baseline,
                "candidate": s.candidate,
                "findings": s.findings,
            })
        })
        .collect();
    let summary = json!({
        "passed": verdict.is_empty(),
        "failures": verdict,
        "diverged_streams": r.diverged_streams,
        "baseline": r.baseline,
        "candidate": r.candidate,
        "streams": streams,
        "timing": timing,
    });
    w("summary.json", pretty(&summary))?;
    w("config.json", pretty(&card.to_json()))?;
    w(
        "report.md",
        markdown::regress(card, r, verdict).into_bytes(),
    )?;
    w(
        "report.html",
        html::regress_html(card, r, verdict).into_bytes(),
    )?;
    w("junit.xml", junit::regress(r).into_bytes())
}
