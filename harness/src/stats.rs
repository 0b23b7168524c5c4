//! Backtest statistics: what people expect next to a PnL. Tracked while the venue runs (per
//! event: equity, drawdown, exposure; per closing fill: realized PnL), so nothing grows with
//! the events but the period series (one value per period of event time).
//!
//! Definitions (all in event time, deterministic: no clock, no hash order):
//! - Periods are aligned to the epoch (`t.div_euclid(period_ns)`); a period's equity is the
//!   marked equity after its last event, and a period without events keeps the previous one.
//!   Equity before the first event is 0. The period return is
//!   `(E_k - E_{k-1}) / (capital + E_{k-1})`.
//! - Sharpe: mean / sample standard deviation (n - 1) of the period returns, times
//!   `sqrt(periods per year)` (365 days: venues trade every day). Sortino: mean / downside
//!   deviation `sqrt(sum(min(r, 0)^2) / n)`, same scaling. Absent with fewer than 2 periods or
//!   no spread (no downside).
//! - Max drawdown: peak-to-trough of equity marked after every event (peak starts at 0); its
//!   duration: the longest time from a peak until equity is back at it (or the last event).
//! - A closed trade: a fill that reduces an open position; its PnL is realized against the
//!   position's average cost, before fees. Win rate = wins / closed trades, profit factor =
//!   gross wins / gross losses.
//! - Exposure: time, between consecutive events, with any position open.

use std::collections::BTreeMap;

use serde::Serialize;

const YEAR_NS: f64 = 365.0 * 86_400e9;

/// How returns are measured; part of a backtest's run card.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct StatsConfig {
    /// Length of a return period, ns.
    pub period_ns: i64,
    /// The capital returns are relative to (quote currency).
    pub capital: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            period_ns: 60_000_000_000,
            capital: 100_000.0,
        }
    }
}

/// Wins and losses of closed trades.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Closed {
    pub trades: u64,
    pub wins: u64,
    pub losses: u64,
    pub gross_win: f64,
    pub gross_loss: f64,
}

impl Closed {
    fn add(&mut self, pnl: f64) {
        self.trades += 1;
        if pnl > 0.0 {
            self.wins += 1;
            self.gross_win += pnl;
        } else if pnl < 0.0 {
            self.losses += 1;
            self.gross_loss -= pnl;
        }
    }

    fn merge(&mut self, o: &Closed) {
        self.trades += o.trades;
        self.wins += o.wins;
        self.losses += o.losses;
        self.gross_win += o.gross_win;
        self.gross_loss += o.gross_loss;
    }

    pub fn win_rate(&self) -> Option<f64> {
        (self.trades > 0).then(|| self.wins as f64 / self.trades as f64)
    }
    pub fn avg_win(&self) -> Option<f64> {
        (self.wins > 0).then(|| self.gross_win / self.wins as f64)
    }
    /// Negative, like the losses.
    pub fn avg_loss(&self) -> Option<f64> {
        (self.losses > 0).then(|| -self.gross_loss / self.losses as f64)
    }
    pub fn profit_factor(&self) -> Option<f64> {
        (self.gross_loss > 0.0).then(|| self.gross_win / self.gross_loss)
    }
}

/// One instrument's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct InstrumentStats {
    pub pnl: f64,
    pub fees: f64,
    pub turnover: f64,
    pub fills: u64,
    /// Position at the end.
    pub position: f64,
    pub exposure_ns: i64,
    pub closed: Closed,
    pub win_rate: Option<f64>,
    pub avg_win: Option<f64>,
    pub avg_loss: Option<f64>,
    pub profit_factor: Option<f64>,
}

/// The statistics of one strategy on one stream, or over streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Stats {
    pub pnl: f64,
    /// PnL / capital.
    #[serde(rename = "return")]
    pub ret: f64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub periods: u64,
    pub max_drawdown: f64,
    pub max_drawdown_duration_ns: i64,
    pub closed: Closed,
    pub win_rate: Option<f64>,
    pub avg_win: Option<f64>,
    pub avg_loss: Option<f64>,
    pub profit_factor: Option<f64>,
    pub turnover: f64,
    pub fees: f64,
    pub exposure_ns: i64,
    /// Time from the first to the last event.
    pub span_ns: i64,
    /// exposure_ns / span_ns.
    pub exposure: Option<f64>,
    pub instruments: BTreeMap<String, InstrumentStats>,
    /// Equity at the end of each period with events: (period index since the epoch, equity).
    #[serde(skip)]
    pub period_equity: Vec<(i64, f64)>,
}

/// Sharpe, Sortino and the number of periods of an equity series (see the module doc).
pub fn ratios(series: &[(i64, f64)], cfg: &StatsConfig) -> (Option<f64>, Option<f64>, u64) {
    // The returns of periods with events; the periods between them (equity unchanged, return
    // 0) are only counted, so memory follows the events, not the span over the period.
    let mut returns = Vec::with_capacity(series.len());
    let mut zeros = 0u64;
    let mut prev: Option<(i64, f64)> = None;
    for &(b, e) in series {
        let (pb, pe) = prev.unwrap_or((b - 1, 0.0));
        zeros += (b - pb - 1).max(0) as u64;
        returns.push((e - pe) / (cfg.capital + pe));
        prev = Some((b, e));
    }
    let count = returns.len() as u64 + zeros;
    if count < 2 {
        return (None, None, count);
    }
    let n = count as f64;
    let scale = (YEAR_NS / cfg.period_ns.max(1) as f64).sqrt();
    let mean = returns.iter().sum::<f64>() / n;
    let var = (returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>()
        + zeros as f64 * mean * mean)
        / (n - 1.0);
    let down = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let sharpe = (var > 0.0).then(|| mean / var.sqrt() * scale);
    let sortino = (down > 0.0).then(|| mean / down * scale);
    (sharpe, sortino, count)
}

/// One instrument's account at the end of a stream, as the venue hands it over.
#[derive(Debug, Clone)]
pub struct InstrumentEnd {
    pub symbol: String,
    pub pnl: f64,
    pub fees: f64,
    pub turnover: f64,
    pub position: f64,
    pub exposure_ns: i64,
    pub fills: u64,
}

/// The venue's totals at the end of a stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub pnl: f64,
    pub fees: f64,
    pub turnover: f64,
}

/// Per-event bookkeeping for [`Stats`].
#[derive(Debug, Clone)]
pub struct StatsTracker {
    cfg: StatsConfig,
    first_t: Option<i64>,
    last_t: i64,
    bucket: i64,
    equity: f64,
    peak: f64,
    peak_t: i64,
    max_dd: f64,
    max_dd_ns: i64,
    exposure_ns: i64,
    period_equity: Vec<(i64, f64)>,
    closed: BTreeMap<String, Closed>,
}

impl StatsTracker {
    pub fn new(cfg: StatsConfig) -> Self {
        StatsTracker {
            cfg,
            first_t: None,
            last_t: 0,
            bucket: 0,
            equity: 0.0,
            peak: 0.0,
            peak_t: 0,
            max_dd: 0.0,
            max_dd_ns: 0,
            exposure_ns: 0,
            period_equity: Vec::new(),
            closed: BTreeMap::new(),
        }
    }

    /// Equity marked after an event at `t`; `exposed`: a position was open for the `dt` ns
    /// since the previous event.
    #[inline]
    pub fn mark(&mut self, t: i64, equity: f64, exposed: bool, dt: i64) {
        let b = t.div_euclid(self.cfg.period_ns.max(1));
        match self.first_t {
            None => {
                self.first_t = Some(t);
                self.peak_t = t;
                self.bucket = b;
            }
            Some(_) if b != self.bucket => {
                self.period_equity.push((self.bucket, self.equity));
                self.bucket = b;
            }
            Some(_) => {}
        }
        self.equity = equity;
        self.last_t = t;
        if exposed {
            self.exposure_ns += dt;
        }
        if equity >= self.peak {
            self.peak = equity;
            self.peak_t = t;
        } else {
            self.max_dd = self.max_dd.max(self.peak - equity);
            self.max_dd_ns = self.max_dd_ns.max(t - self.peak_t);
        }
    }

    /// A fill closed (part of) a position with this realized PnL.
    pub fn closed(&mut self, symbol: &str, pnl: f64) {
        match self.closed.get_mut(symbol) {
            Some(c) => c.add(pnl),
            None => {
                let mut c = Closed::default();
                c.add(pnl);
                self.closed.insert(symbol.to_string(), c);
            }
        }
    }

    /// The figures, with the venue's totals and accounts at the end.
    pub fn finish(mut self, perf: &Totals, ends: &[InstrumentEnd]) -> Stats {
        if self.first_t.is_some() {
            self.period_equity.push((self.bucket, self.equity));
        }
        let mut instruments = BTreeMap::new();
        for e in ends {
            let closed = self.closed.get(&e.symbol).copied().unwrap_or_default();
            instruments.insert(
                e.symbol.clone(),
                InstrumentStats {
                    pnl: e.pnl,
                    fees: e.fees,
                    turnover: e.turnover,
                    fills: e.fills,
                    position: e.position,
                    exposure_ns: e.exposure_ns,
                    win_rate: closed.win_rate(),
                    avg_win: closed.avg_win(),
                    avg_loss: closed.avg_loss(),
                    profit_factor: closed.profit_factor(),
                    closed,
                },
            );
        }
        let mut closed = Closed::default();
        for c in self.closed.values() {
            closed.merge(c);
        }
        let (sharpe, sortino, periods) = ratios(&self.period_equity, &self.cfg);
        let span_ns = self.first_t.map_or(0, |f| self.last_t - f);
        Stats {
            pnl: perf.pnl,
            ret: perf.pnl / self.cfg.capital,
            sharpe,
            sortino,
            periods,
            max_drawdown: self.max_dd,
            max_drawdown_duration_ns: self.max_dd_ns,
            win_rate: closed.win_rate(),
            avg_win: closed.avg_win(),
            avg_loss: closed.avg_loss(),
            profit_factor: closed.profit_factor(),
            closed,
            turnover: perf.turnover,
            fees: perf.fees,
            exposure_ns: self.exposure_ns,
            span_ns,
            exposure: (span_ns > 0).then(|| self.exposure_ns as f64 / span_ns as f64),
            instruments,
            period_equity: self.period_equity,
        }
    }
}

/// The statistics over several streams: sums; Sharpe and Sortino of the summed period equity
/// (each stream's latest equity, summed at every period any has); and `drawdown`, the maximum
/// drawdown and its duration of the streams' summed equity by event time, which the streams'
/// own figures cannot give (one falls as another rises): see
/// [`crate::equity_log::combined_drawdown`]; with one stream, its own.
pub fn combine(streams: &[&Stats], drawdown: (f64, i64), cfg: &StatsConfig) -> Stats {
    let mut out = Stats::default();
    let mut buckets: Vec<(i64, usize, f64)> = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        out.pnl += s.pnl;
        out.turnover += s.turnover;
        out.fees += s.fees;
        out.exposure_ns += s.exposure_ns;
        out.span_ns += s.span_ns;
        out.closed.merge(&s.closed);
        for (sym, x) in &s.instruments {
            let o = out.instruments.entry(sym.clone()).or_default();
            o.pnl += x.pnl;
            o.fees += x.fees;
            o.turnover += x.turnover;
            o.fills += x.fills;
            o.position += x.position;
            o.exposure_ns += x.exposure_ns;
            o.closed.merge(&x.closed);
        }
        buckets.extend(s.period_equity.iter().map(|&(b, e)| (b, i, e)));
    }
    for o in out.instruments.values_mut() {
        (o.win_rate, o.avg_win, o.avg_loss, o.profit_factor) = (
            o.closed.win_rate(),
            o.closed.avg_win(),
            o.closed.avg_loss(),
            o.closed.profit_factor(),
        );
    }
    buckets.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut last = vec![0.0; streams.len()];
    for (b, i, e) in buckets {
        last[i] = e;
        let total: f64 = last.iter().sum();
        match out.period_equity.last_mut() {
            Some(p) if p.0 == b => p.1 = total,
            _ => out.period_equity.push((b, total)),
        }
    }
    (out.max_drawdown, out.max_drawdown_duration_ns) = drawdown;
    (out.sharpe, out.sortino, out.periods) = ratios(&out.period_equity, cfg);
    out.ret = out.pnl / cfg.capital;
    (out.win_rate, out.avg_win, out.avg_loss, out.profit_factor) = (
        out.closed.win_rate(),
        out.closed.avg_win(),
        out.closed.avg_loss(),
        out.closed.profit_factor(),
    );
    out.exposure = (out.span_ns > 0).then(|| out.exposure_ns as f64 / out.span_ns as f64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("a value");
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn sharpe_and_sortino_of_hand_computed_returns() {
        // Capital 100, periods of one day: equity 1, 3, 2 at the ends of days 0, 1, 2 (none
        // in day 3), 2 at day 4.
        let cfg = StatsConfig {
            period_ns: 86_400_000_000_000,
            capital: 100.0,
        };
        let series = [(0, 1.0), (1, 3.0), (2, 2.0), (4, 2.0)];
        // Returns: 1/100, 2/101, -1/103, 0 (day 3), 0 (day 4).
        let r = [0.01, 2.0 / 101.0, -1.0 / 103.0, 0.0, 0.0];
        let mean = r.iter().sum::<f64>() / 5.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        let down = ((1.0f64 / 103.0).powi(2) / 5.0).sqrt();
        let (sharpe, sortino, n) = ratios(&series, &cfg);
        assert_eq!(n, 5);
        close(sharpe, mean / sd * 365f64.sqrt());
        close(sortino, mean / down * 365f64.sqrt());
        // By hand: mean = 0.003989..., so the figures are pinned as numbers too.
        close(Some(mean), (0.01 + 2.0 / 101.0 - 1.0 / 103.0) / 5.0);
        // One period, or no spread: absent.
        assert_eq!(ratios(&[(0, 5.0)], &cfg), (None, None, 1));
        assert_eq!(ratios(&[(0, 0.0), (1, 0.0)], &cfg), (None, None, 2));
    }

    #[test]
    fn drawdown_duration_and_exposure_follow_event_time() {
        let mut t = StatsTracker::new(StatsConfig {
            period_ns: 10,
            capital: 1000.0,
        });
        // Equity 0, 5 (peak at t=2), 2, 4, 6 (back above at t=9), 1 at t=12.
        for (time, eq, exposed, dt) in [
            (0, 0.0, false, 0),
            (2, 5.0, true, 2),
            (4, 2.0, true, 2),
            (7, 4.0, false, 3),
            (9, 6.0, true, 2),
            (12, 1.0, true, 3),
        ] {
            t.mark(time, eq, exposed, dt);
        }
        t.closed("X", 3.0);
        t.closed("X", -1.0);
        t.closed("X", 0.0);
        let perf = Totals {
            pnl: 1.0,
            ..Default::default()
        };
        let s = t.finish(&perf, &[]);
        assert_eq!(s.max_drawdown, 5.0);
        assert_eq!(
            s.max_drawdown_duration_ns, 5,
            "from the peak at t=2 until t=7"
        );
        assert_eq!(s.exposure_ns, 2 + 2 + 2 + 3);
        assert_eq!(s.span_ns, 12);
        close(s.exposure, 9.0 / 12.0);
        assert_eq!(s.period_equity, vec![(0, 6.0), (1, 1.0)]);
        assert_eq!(s.periods, 2);
        assert_eq!((s.closed.trades, s.closed.wins, s.closed.losses), (3, 1, 1));
        close(s.win_rate, 1.0 / 3.0);
        close(s.avg_win, 3.0);
        close(s.avg_loss, -1.0);
        close(s.profit_factor, 3.0);
        close(Some(s.ret), 0.001);
    }

    #[test]
    fn streams_combine_on_aligned_periods() {
        let cfg = StatsConfig {
            period_ns: 1,
            capital: 10.0,
        };
        let a = Stats {
            pnl: 2.0,
            max_drawdown: 1.0,
            period_equity: vec![(0, 1.0), (2, 2.0)],
            ..Default::default()
        };
        let b = Stats {
            pnl: -1.0,
            max_drawdown: 3.0,
            period_equity: vec![(1, -1.0)],
            ..Default::default()
        };
        let s = combine(&[&a, &b], (2.0, 7), &cfg);
        assert_eq!(s.period_equity, vec![(0, 1.0), (1, 0.0), (2, 1.0)]);
        assert_eq!(s.pnl, 1.0);
        assert_eq!((s.max_drawdown, s.max_drawdown_duration_ns), (2.0, 7));
        close(Some(s.ret), 0.1);
        assert_eq!(s.periods, 3);
    }
}
