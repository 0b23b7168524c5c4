//! Parquet artifacts of a regression or backtest run, readable by polars and pandas:
//! `decisions.parquet`, `trades.parquet`, `equity_curve.parquet`. Rows are in (stream, role,
//! seq) order and the files carry no timestamps, so identical runs write identical bytes.
//! The `json` column of `decisions.parquet` is [`Output::to_json_named`] (instruments by
//! symbol), as in every report.
//!
//! Columns: decisions `stream, role, seq, time_ns, output, side, price, qty, json` (side,
//! price and qty for orders only); trades `stream, role, seq, time_ns, order_seq,
//! instrument, side, price, qty, fee, liquidity`; equity curve `stream, role, seq, time_ns,
//! equity, drawdown`. A backtest writes them as it runs ([`super::artifacts`]); a regression,
//! which keeps its decisions for the first divergence, writes them from its report through
//! the same parts.
//!
//! [`Output::to_json_named`]: crate::decision::Output::to_json_named

use std::path::Path;

use super::artifacts::{SideParts, assemble};
use crate::decision::Decision;
use crate::error::Result;
use crate::fs::ScratchDir;
use crate::regress::{BASELINE, CANDIDATE, RegressReport};
use crate::venue::Performance;

/// One strategy's items on one stream: what a row of the artifacts is tagged with.
pub struct Side<'a> {
    pub stream: &'a str,
    pub role: &'a str,
    pub decisions: &'a [Decision],
    pub performance: &'a Performance,
    /// Its stream's instrument table: the `json` column names instruments by symbol.
    pub instruments: &'a tapedeck_guest::Instruments,
}

/// Writes the regression's three artifacts into `dir`.
pub fn write_regress_artifacts(dir: &Path, r: &RegressReport) -> Result<()> {
    let mut sides = Vec::new();
    for s in &r.streams {
        for (k, role) in [BASELINE, CANDIDATE].into_iter().enumerate() {
            sides.push(Side {
                stream: &s.stream,
                role,
                decisions: &s.decisions[k],
                performance: if k == 0 { &s.baseline } else { &s.candidate },
                instruments: &s.instruments,
            });
        }
    }
    write_artifacts(dir, &sides)
}

/// Writes the three artifacts into `dir`, rows in the order of `sides` then seq.
pub fn write_artifacts(dir: &Path, sides: &[Side<'_>]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    let scratch = ScratchDir::new(Some(dir), "tapedeck-parts")?;
    let mut files = Vec::with_capacity(sides.len());
    for (n, s) in sides.iter().enumerate() {
        let mut p = SideParts::create(
            scratch.path(),
            &n.to_string(),
            s.stream,
            s.role,
            s.instruments.clone(),
        )?;
        p.decisions(s.decisions);
        p.trades(&s.performance.fills);
        p.equity(&s.performance.equity);
        files.push(p.finish()?);
    }
    assemble(dir, &files)
}
