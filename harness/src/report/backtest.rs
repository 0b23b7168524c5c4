//! The run directory of a backtest: `summary.json` (totals, statistics overall, per stream
//! and per instrument), `config.json` (the run card), `report.md`, `report.html` (statistics
//! and the equity, drawdown and exposure plots), `junit.xml` (one case per stream, failing on
//! findings) and the Parquet artifacts (role `strategy`).
//!
//! Invariants as for every run directory (see the parent module): everything but
//! `summary.json`'s `timing` is a function of the inputs; absent statistics (a Sharpe ratio
//! of one period) are `null` in JSON and `-` in the reports.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::html::{esc, fmt};
use super::plot::{Series, line_plot};

const LINE_COLOR: &str = "rgb(31,119,180)";
use super::{RunCard, Timing, describe, pretty};
use crate::backtest::BacktestReport;
use crate::error::Result;
use crate::stats::Stats;
use crate::time::format_ns;

/// Writes the backtest's run directory.
pub fn write_backtest_dir(
    dir: &Path,
    card: &RunCard,
    r: &BacktestReport,
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
                "performance": s.performance,
                "stats": s.performance.stats,
                "findings": s.findings,
            })
        })
        .collect();
    let summary = json!({
        "clean": r.is_clean(),
        "events": r.events,
        "totals": r.totals,
        "stats": r.stats,
        "streams": streams,
        "timing": timing,
    });
    w("summary.json", pretty(&summary))?;
    w("config.json", pretty(&card.to_json()))?;
    w("report.md", markdown(card, r).into_bytes())?;
    w("report.html", html(card, r).into_bytes())?;
    w("junit.xml", junit(r).into_bytes())?;
    match &r.artifacts {
        Some(a) => super::artifacts::assemble(dir, &a.sides),
        None => Err(crate::error::Error::engine(
            format!("writing {}", dir.display()),
            "the backtest ran without artifacts: pass the run directory to `backtest`",
        )),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.4}", v + 0.0))
}

fn duration(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if s >= 3600.0 {
        format!("{:.2} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.2} min", s / 60.0)
    } else {
        format!("{s:.3} s")
    }
}

/// The statistics as (name, value) rows, in the order the reports list them.
pub fn stat_rows(s: &Stats, orders: u64, trades: u64) -> Vec<(&'static str, String)> {
    vec![
        ("PnL", format!("{:.4}", s.pnl + 0.0)),
        ("return", format!("{:.4}%", s.ret * 100.0 + 0.0)),
        ("Sharpe (annualized)", opt(s.sharpe)),
        ("Sortino (annualized)", opt(s.sortino)),
        ("return periods", s.periods.to_string()),
        ("max drawdown", format!("{:.4}", s.max_drawdown + 0.0)),
        (
            "max drawdown duration",
            duration(s.max_drawdown_duration_ns),
        ),
        ("orders", orders.to_string()),
        ("fills", trades.to_string()),
        ("closed trades", s.closed.trades.to_string()),
        ("win rate", opt(s.win_rate.map(|v| v * 100.0)) + "%"),
        ("avg win", opt(s.avg_win)),
        ("avg loss", opt(s.avg_loss)),
        ("profit factor", opt(s.profit_factor)),
        ("turnover", format!("{:.4}", s.turnover + 0.0)),
        ("fees", format!("{:.4}", s.fees + 0.0)),
        (
            "exposure time",
            format!(
                "{} ({}%)",
                duration(s.exposure_ns),
                opt(s.exposure.map(|v| v * 100.0))
            ),
        ),
    ]
}

fn module_line(card: &RunCard) -> String {
    card.module(0).map_or_else(String::new, |m| {
        format!("`{}` {} (`{}`)", m.name, m.version, m.short_sha())
    })
}

/// `report.md`.
pub fn markdown(card: &RunCard, r: &BacktestReport) -> String {
    let mut s = String::new();
    let verdict = if r.is_clean() { "clean" } else { "FINDINGS" };
    let _ = writeln!(s, "## Tapedeck backtest: {verdict}\n");
    let _ = writeln!(
        s,
        "Strategy {} on `{}` (streams `{}`), {} events.\n",
        module_line(card),
        card.store,
        card.streams,
        r.events
    );
    let _ = writeln!(s, "| | |\n| --- | ---: |");
    for (k, v) in stat_rows(&r.stats, r.totals.orders, r.totals.trades) {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\n| instrument | PnL | fills | closed | win rate | profit factor | fees | turnover | position |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (sym, x) in &r.stats.instruments {
        let _ = writeln!(
            s,
            "| `{sym}` | {:.4} | {} | {} | {} | {} | {:.4} | {:.4} | {} |",
            x.pnl + 0.0,
            x.fills,
            x.closed.trades,
            opt(x.win_rate.map(|v| v * 100.0)) + "%",
            opt(x.profit_factor),
            x.fees + 0.0,
            x.turnover + 0.0,
            x.position + 0.0
        );
    }
    let _ = writeln!(
        s,
        "\n| stream | events | orders | fills | PnL | max drawdown | Sharpe | findings |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for st in &r.streams {
        let p = &st.performance;
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {:.4} | {:.4} | {} | {} |",
            st.stream,
            st.events,
            p.orders,
            p.trades,
            p.pnl + 0.0,
            p.max_drawdown + 0.0,
            opt(p.stats.sharpe),
            st.findings.len()
        );
    }
    let findings: Vec<_> = r.findings().collect();
    if !findings.is_empty() {
        let _ = writeln!(s, "\n### Findings\n");
        for f in findings.iter().take(super::markdown::MAX_LISTED) {
            let _ = writeln!(s, "- {}", describe(f));
        }
    }
    s
}

/// The sum over streams of their curves (each stream's latest value, 0 before its first),
/// at every point any has.
fn summed(curves: &[Vec<(i64, f64)>]) -> Vec<(i64, f64)> {
    let mut pts: Vec<(i64, usize, f64)> = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        pts.extend(c.iter().map(|&(t, v)| (t, i, v)));
    }
    pts.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut last = vec![0.0; curves.len()];
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(pts.len());
    for (t, i, v) in pts {
        last[i] = v;
        let total: f64 = last.iter().sum();
        match out.last_mut() {
            Some(p) if p.0 == t => p.1 = total,
            _ => out.push((t, total)),
        }
    }
    out
}

/// Total equity, drawdown and net position over time, from every stream's bounded curves.
fn curves(r: &BacktestReport) -> [Vec<(i64, f64)>; 3] {
    let eq = summed(
        &r.streams
            .iter()
            .map(|s| s.equity_curve.points())
            .collect::<Vec<_>>(),
    );
    let mut peak = 0f64;
    let dd: Vec<(i64, f64)> = eq
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            (t, e - peak)
        })
        .collect();
    let mut net = summed(
        &r.streams
            .iter()
            .map(|s| s.position_curve.points())
            .collect::<Vec<_>>(),
    );
    // Flat from the first sample until the first fill, and held to the last sample.
    if let Some(first) = eq.first() {
        net.insert(0, (first.0, 0.0));
    }
    if let (Some(end), Some(&(_, pos))) = (eq.last(), net.last()) {
        net.push((end.0, pos));
    }
    [eq, dd, net].map(thin)
}

/// At most ~2000 points a plot, keeping the last.
fn thin(v: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    const MAX: usize = 2000;
    if v.len() <= MAX {
        return v;
    }
    let step = v.len().div_ceil(MAX);
    let tail = *v.last().expect("not empty");
    let mut out: Vec<_> = v.into_iter().step_by(step).collect();
    out.push(tail);
    out
}

/// `report.html`: the statistics, then the equity, drawdown and exposure plots.
pub fn html(card: &RunCard, r: &BacktestReport) -> String {
    let [eq, dd, net] = curves(r);
    let span = match (eq.first(), eq.last()) {
        (Some(a), Some(b)) => format!("{} .. {}", format_ns(a.0), format_ns(b.0)),
        _ => "no samples".into(),
    };
    let range = |v: &[(i64, f64)]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            });
        if lo <= hi {
            format!("from {} to {}", fmt(lo), fmt(hi))
        } else {
            "no values".into()
        }
    };
    let mut h = String::from(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tapedeck backtest report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.fail { color: #b00; font-weight: bold; } .ok { color: #080; font-weight: bold; }
code { background: #f4f4f4; padding: 0 .2rem; }
</style></head><body>
<h1>Tapedeck backtest report</h1>
"#,
    );
    h.push_str(if r.is_clean() {
        r#"<p class="ok">clean: no findings.</p>"#
    } else {
        r#"<p class="fail">FINDINGS (see below)</p>"#
    });
    let _ = write!(
        h,
        "<p>strategy {} &nbsp; store <code>{}</code>, streams <code>{}</code>, {} events</p>",
        esc(&module_line(card)),
        esc(&card.store),
        esc(&card.streams),
        r.events
    );
    h.push_str("<h2>Statistics</h2><table>");
    for (k, v) in stat_rows(&r.stats, r.totals.orders, r.totals.trades) {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<h2>Equity, all streams</h2><p>{span}; values {}</p>{}",
        range(&eq),
        line_plot(
            &[Series {
                name: "equity",
                color: LINE_COLOR,
                points: &eq,
            }],
            "event time (UTC)",
            "equity",
            &[],
        )
    );
    let _ = write!(
        h,
        "<h2>Drawdown (below zero)</h2><p>values {}</p>{}",
        range(&dd),
        line_plot(
            &[Series {
                name: "drawdown",
                color: LINE_COLOR,
                points: &dd,
            }],
            "event time (UTC)",
            "drawdown",
            &[],
        )
    );
    let _ = write!(
        h,
        "<h2>Exposure: net position (all instruments)</h2><p>values {}</p>{}",
        range(&net),
        line_plot(
            &[Series {
                name: "net position",
                color: LINE_COLOR,
                points: &net,
            }],
            "event time (UTC)",
            "net position",
            &[],
        )
    );
    h.push_str("<h2>Instruments</h2><table><tr><th>instrument</th><th>PnL</th><th>fills</th><th>closed</th><th>win rate</th><th>profit factor</th><th>fees</th><th>turnover</th><th>exposure</th></tr>");
    for (sym, x) in &r.stats.instruments {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(sym),
            fmt(x.pnl),
            x.fills,
            x.closed.trades,
            opt(x.win_rate.map(|v| v * 100.0)) + "%",
            opt(x.profit_factor),
            fmt(x.fees),
            fmt(x.turnover),
            duration(x.exposure_ns)
        );
    }
    h.push_str("</table><h2>Streams</h2><table><tr><th>stream</th><th>events</th><th>orders</th><th>fills</th><th>PnL</th><th>max drawdown</th><th>Sharpe</th><th>findings</th></tr>");
    for s in &r.streams {
        let p = &s.performance;
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.stream),
            s.events,
            p.orders,
            p.trades,
            fmt(p.pnl),
            fmt(p.max_drawdown),
            opt(p.stats.sharpe),
            s.findings.len()
        );
    }
    h.push_str("</table>");
    let findings: Vec<_> = r.findings().collect();
    if !findings.is_empty() {
        h.push_str("<h2>Findings</h2><ul>");
        for f in findings {
            let _ = write!(h, "<li>{}</li>", esc(&describe(f)));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

/// `junit.xml`: a case per stream, failing on its findings.
pub fn junit(r: &BacktestReport) -> String {
    let x = |s: &str| esc(s).replace('\'', "&apos;");
    let failing = r.streams.iter().filter(|s| !s.findings.is_empty()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"tapedeck-backtest\" tests=\"{}\" failures=\"{failing}\">",
        r.streams.len()
    );
    for st in &r.streams {
        let _ = write!(
            s,
            "  <testcase classname=\"tapedeck.backtest\" name=\"{}\"",
            x(&st.stream)
        );
        if st.findings.is_empty() {
            s.push_str("/>\n");
            continue;
        }
        let text: Vec<String> = st.findings.iter().map(describe).collect();
        let _ = writeln!(
            s,
            ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
            x(&text[0]),
            x(&text.join("\n"))
        );
    }
    s.push_str("</testsuite>\n");
    s
}
