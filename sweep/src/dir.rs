//! The sweep directory: `sweep.json` (the sweep card, [`SweepCard`]), `summary.json` (the
//! metric, the best point, findings, and the wall clock), `sweep.parquet` (one row per
//! point, ranked), `report.md`, `report.html`, and `points/NNNN/`, each point's run
//! directory (written by [`crate::run`]).
//!
//! Invariants: everything but `summary.json`'s `timing` (and each point's own) is a function
//! of the card and the points' summaries: the single process and a merge of shards write
//! the same bytes.

use std::path::Path;

use serde_json::{Value, json};
use tapedeck::report::Timing;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::point::{Metric, PointSummary};
use crate::report::{Inputs, html, markdown};
use crate::run::SweepCard;
use crate::table::{frame, marginals, rank, ranked_points, write_parquet};

/// What a sweep directory says, for the command's output.
#[derive(Debug, Clone)]
pub struct Written {
    pub metric: Metric,
    /// Point indexes, best first.
    pub ranked: Vec<u32>,
    /// Points with findings (a guest trap).
    pub findings: u64,
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

pub(crate) fn pretty(v: &impl serde::Serialize) -> Vec<u8> {
    let v = serde_json::to_value(v).expect("JSON");
    let mut b = serde_json::to_vec_pretty(&v).expect("JSON");
    b.push(b'\n');
    b
}

/// The metric a card ranks by.
pub fn metric_of(card: &SweepCard) -> Result<Metric> {
    card.metric.parse().map_err(|message| Error::Corrupt {
        path: "sweep.json".into(),
        message,
    })
}

/// Writes the sweep directory's files from its card and every point's summary (in point
/// order); the points' own directories are already there.
pub fn write_sweep_dir(
    dir: &Path,
    card: &SweepCard,
    grid: &Grid,
    points: &[PointSummary],
    timing: &Timing,
) -> Result<Written> {
    let metric = metric_of(card)?;
    let df = frame(grid, points)?;
    let mut ranked_df = rank(&df, metric)?;
    let ranked = ranked_points(&ranked_df)?;
    let margins = marginals(&df, grid, metric)?;
    write_parquet(&mut ranked_df, &dir.join("sweep.parquet"))?;
    let by_index = |i: &u32| &points[points.partition_point(|p| p.point < *i)];
    let inputs = Inputs {
        card,
        grid,
        metric,
        ranked: ranked.iter().map(by_index).collect(),
        marginals: &margins,
    };
    write(dir, "report.md", markdown(&inputs).as_bytes())?;
    write(dir, "report.html", html(&inputs).as_bytes())?;
    write(dir, "sweep.json", &pretty(card))?;
    let findings = points.iter().filter(|p| p.findings > 0).count() as u64;
    let best: Value = inputs.ranked.first().map_or(Value::Null, |p| {
        json!({
            "point": p.point,
            "params": p.params,
            "config": card.points.get(p.point as usize),
            "value": metric.of(p),
        })
    });
    let summary = json!({
        "metric": metric.column(),
        "points": points.len(),
        "points_with_findings": findings,
        "best": best,
        "timing": timing,
    });
    write(dir, "summary.json", &pretty(&summary))?;
    Ok(Written {
        metric,
        ranked,
        findings,
    })
}
