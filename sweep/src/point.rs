//! A point's result as the sweep keeps it ([`PointSummary`]: the figures of its backtest's
//! `summary.json`, a few hundred bytes whatever the events) and the metric points are ranked
//! by ([`Metric`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tapedeck::backtest::BacktestReport;

use crate::grid::ParamValue;

/// One point's figures over all its streams (the backtest's `stats` and `totals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    pub point: u32,
    pub params: BTreeMap<String, ParamValue>,
    pub events: u64,
    pub orders: u64,
    pub fills: u64,
    pub closed_trades: u64,
    pub pnl: f64,
    #[serde(rename = "return")]
    pub ret: f64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown: f64,
    pub max_drawdown_duration_ns: i64,
    pub win_rate: Option<f64>,
    pub profit_factor: Option<f64>,
    pub turnover: f64,
    pub fees: f64,
    pub exposure: Option<f64>,
    pub findings: u64,
}

impl PointSummary {
    pub fn of(point: u32, params: BTreeMap<String, ParamValue>, r: &BacktestReport) -> Self {
        let s = &r.stats;
        PointSummary {
            point,
            params,
            events: r.events,
            orders: r.totals.orders,
            fills: r.totals.trades,
            closed_trades: s.closed.trades,
            pnl: s.pnl,
            ret: s.ret,
            sharpe: s.sharpe,
            sortino: s.sortino,
            max_drawdown: s.max_drawdown,
            max_drawdown_duration_ns: s.max_drawdown_duration_ns,
            win_rate: s.win_rate,
            profit_factor: s.profit_factor,
            turnover: s.turnover,
            fees: s.fees,
            exposure: s.exposure,
            findings: r.findings().count() as u64,
        }
    }
}

/// What points are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Sharpe,
    Sortino,
    Pnl,
    Return,
    ProfitFactor,
    WinRate,
    MaxDrawdown,
    Fees,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Sharpe,
        Metric::Sortino,
        Metric::Pnl,
        Metric::Return,
        Metric::ProfitFactor,
        Metric::WinRate,
        Metric::MaxDrawdown,
        Metric::Fees,
    ];

    /// Its column in `sweep.parquet` (and its name on the command line).
    pub fn column(self) -> &'static str {
        match self {
            Metric::Sharpe => "sharpe",
            Metric::Sortino => "sortino",
            Metric::Pnl => "pnl",
            Metric::Return => "return",
            Metric::ProfitFactor => "profit_factor",
            Metric::WinRate => "win_rate",
            Metric::MaxDrawdown => "max_drawdown",
            Metric::Fees => "fees",
        }
    }

    /// Drawdown and fees rank lowest first; everything else highest first.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::MaxDrawdown | Metric::Fees)
    }

    /// The point's value, `None` when absent (a Sharpe ratio of one period) or not a number.
    pub fn of(self, p: &PointSummary) -> Option<f64> {
        let v = match self {
            Metric::Sharpe => p.sharpe,
            Metric::Sortino => p.sortino,
            Metric::Pnl => Some(p.pnl),
            Metric::Return => Some(p.ret),
            Metric::ProfitFactor => p.profit_factor,
            Metric::WinRate => p.win_rate,
            Metric::MaxDrawdown => Some(p.max_drawdown),
            Metric::Fees => Some(p.fees),
        };
        v.filter(|v| !v.is_nan())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.column())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.column() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.column()).collect();
                format!("{s:?} is not a metric: want one of {}", names.join(", "))
            })
    }
}
