//! `report.html` of a regression run: one self-contained page (no scripts, no external
//! resources) with the metrics, the first divergences, and plots as inline SVG with axes
//! ([`super::plot::line_plot`]): equity of baseline and candidate over all streams, their
//! drawdowns, and a marker at every stream's first divergence.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::RunCard;
use super::plot::{Marker, Series, line_plot};
use crate::regress::RegressReport;
use crate::time::format_ns;
use crate::venue::Performance;

const BASE_COLOR: &str = "rgb(31,119,180)";
const CAND_COLOR: &str = "rgb(255,127,14)";
const MARK_COLOR: &str = "rgb(214,39,40)";
const MAX_POINTS: usize = 2000;

/// Total equity over time: each stream's latest equity, summed, at every sample of any stream.
fn total_curve(
    r: &RegressReport,
    pick: fn(&crate::regress::StreamRegress) -> &Performance,
) -> Vec<(i64, f64, f64)> {
    let mut points: Vec<(i64, usize, f64)> = Vec::new();
    for (i, s) in r.streams.iter().enumerate() {
        points.extend(pick(s).equity.iter().map(|p| (p.time_ns, i, p.equity)));
    }
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut last: BTreeMap<usize, f64> = BTreeMap::new();
    let mut peak = 0f64;
    let mut out: Vec<(i64, f64, f64)> = Vec::with_capacity(points.len());
    for (t, i, e) in points {
        last.insert(i, e);
        let total: f64 = last.values().sum();
        peak = peak.max(total);
        out.push((t, total, peak - total));
    }
    if out.len() > MAX_POINTS {
        let step = out.len().div_ceil(MAX_POINTS);
        let tail = *out.last().unwrap();
        out = out.into_iter().step_by(step).collect();
        out.push(tail);
    }
    out
}

/// Baseline and candidate as plot series.
fn pair(v: &[Vec<(i64, f64)>; 2]) -> [Series<'_>; 2] {
    [
        Series {
            name: "baseline",
            color: BASE_COLOR,
            points: &v[0],
        },
        Series {
            name: "candidate",
            color: CAND_COLOR,
            points: &v[1],
        },
    ]
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn fmt(v: f64) -> String {
    // `+ 0.0` turns a negative zero into zero.
    format!("{:.6}", v + 0.0)
}

/// The whole page.
pub fn regress_html(card: &RunCard, r: &RegressReport, verdict: &[String]) -> String {
    let base = total_curve(r, |s| &s.baseline);
    let cand = total_curve(r, |s| &s.candidate);
    let markers: Vec<Marker> = r
        .streams
        .iter()
        .filter_map(|s| s.first_divergence.as_ref())
        .map(|d| Marker {
            time_ns: d.time_ns,
            color: MARK_COLOR,
        })
        .collect();
    let eq = |c: &[(i64, f64, f64)]| c.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>();
    let dd = |c: &[(i64, f64, f64)]| c.iter().map(|p| (p.0, -p.2)).collect::<Vec<_>>();
    let (t0, t1) = (
        base.first().or(cand.first()).map(|p| p.0),
        base.last().or(cand.last()).map(|p| p.0),
    );
    let span = match (t0, t1) {
        (Some(a), Some(b)) => format!("{} .. {}", format_ns(a), format_ns(b)),
        _ => "no samples".into(),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tapedeck regression report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.base {{ color: rgb(31,119,180); font-weight: bold; }} .cand {{ color: rgb(255,127,14); font-weight: bold; }}
.mark {{ color: rgb(214,39,40); }} .fail {{ color: #b00; font-weight: bold; }} .ok {{ color: #080; font-weight: bold; }}
code {{ background: #f4f4f4; padding: 0 .2rem; }}
</style></head><body>
<h1>Tapedeck regression report</h1>
"#
    );
    let verdict_html = if verdict.is_empty() {
        r#"<p class="ok">PASS: no --fail-on rule triggered.</p>"#.to_string()
    } else {
        let items: String = verdict
            .iter()
            .map(|v| format!("<li>{}</li>", esc(v)))
            .collect();
        format!(r#"<p class="fail">FAIL</p><ul>{items}</ul>"#)
    };
    h.push_str(&verdict_html);
    let module = |i: usize| {
        card.module(i).map_or_else(
            || "  <code></code>".to_string(),
            |m| {
                format!(
                    "{} {} <code>{}</code>",
                    esc(&m.name),
                    esc(&m.version),
                    esc(m.short_sha())
                )
            },
        )
    };
    let _ = write!(
        h,
        "<p><span class=\"base\">baseline</span> {} &nbsp; vs &nbsp; <span class=\"cand\">candidate</span> {}<br>store <code>{}</code>, streams <code>{}</code></p>",
        module(0),
        module(1),
        esc(&card.store),
        esc(&card.streams)
    );
    let row = |name: &str, b: String, c: String| {
        format!("<tr><td>{name}</td><td>{b}</td><td>{c}</td></tr>")
    };
    let (b, c) = (&r.baseline, &r.candidate);
    let _ = write!(
        h,
        "<h2>Overall</h2><table><tr><th></th><th class=\"base\">baseline</th><th class=\"cand\">candidate</th></tr>{}{}{}{}{}{}{}</table>",
        row(
            "decisions",
            b.decisions.to_string(),
            c.decisions.to_string()
        ),
        row("orders", b.orders.to_string(), c.orders.to_string()),
        row("trades", b.trades.to_string(), c.trades.to_string()),
        row("PnL", fmt(b.pnl), fmt(c.pnl)),
        row("max drawdown", fmt(b.max_drawdown), fmt(c.max_drawdown)),
        row("fees", fmt(b.fees), fmt(c.fees)),
        row("turnover", fmt(b.turnover), fmt(c.turnover)),
    );
    let (eqs, dds) = ([eq(&base), eq(&cand)], [dd(&base), dd(&cand)]);
    let _ = write!(
        h,
        "<h2>Equity, all streams</h2><p>{span}; <span class=\"mark\">red lines</span>: first divergence of a stream.</p>{}",
        line_plot(&pair(&eqs), "event time (UTC)", "equity", &markers)
    );
    let _ = write!(
        h,
        "<h2>Drawdown (below zero)</h2>{}",
        line_plot(&pair(&dds), "event time (UTC)", "drawdown", &markers)
    );
    h.push_str("<h2>Streams</h2><table><tr><th>stream</th><th>events</th><th>first divergence</th><th>PnL baseline</th><th>PnL candidate</th><th>trades</th><th>findings</th></tr>");
    for s in &r.streams {
        let div = s.first_divergence.as_ref().map_or("-".to_string(), |d| {
            format!("seq {} ({})", d.seq, esc(&d.event_type))
        });
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{div}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            esc(&s.stream),
            s.events,
            fmt(s.baseline.pnl),
            fmt(s.candidate.pnl),
            s.baseline.trades,
            s.candidate.trades,
            s.findings.len()
        );
    }
    h.push_str("</table>");
    let divs: Vec<_> = r
        .streams
        .iter()
        .filter_map(|s| s.first_divergence.as_ref().map(|d| (s, d)))
        .collect();
    if !divs.is_empty() {
        h.push_str("<h2>First divergences</h2>");
        for (s, d) in divs {
            let _ = write!(
                h,
                "<h3><code>{}</code> seq {}</h3><p>{} at {}: <code>{}</code></p><p class=\"base\">baseline</p><pre>{}</pre><p class=\"cand\">candidate</p><pre>{}</pre>",
                esc(&s.stream),
                d.seq,
                esc(&d.event_type),
                format_ns(d.time_ns),
                esc(&d.event.to_string()),
                esc(&serde_json::to_string_pretty(&d.baseline).unwrap_or_default()),
                esc(&serde_json::to_string_pretty(&d.candidate).unwrap_or_default()),
            );
        }
    }
    h.push_str("</body></html>\n");
    h
}
