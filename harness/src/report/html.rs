//! `report.html` of a regression run: one self-contained page (no scripts, no external
//! resources) with the metrics, the first divergences, and plots drawn by `plotters` as
//! inline SVG: equity of baseline and candidate over all streams, their drawdowns, and a
//! marker at every stream's first divergence.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;

use super::RunCard;
use crate::regress::RegressReport;
use crate::time::format_ns;
use crate::venue::Performance;

const BASE_COLOR: RGBColor = RGBColor(31, 119, 180);
const CAND_COLOR: RGBColor = RGBColor(255, 127, 14);
const MARK_COLOR: RGBColor = RGBColor(214, 39, 40);
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

/// One chart as an SVG string: two series over time and vertical markers.
pub(super) fn chart(series: [&[(i64, f64)]; 2], markers: &[i64]) -> String {
    let mut svg = String::new();
    let all = series.iter().flat_map(|s| s.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x0 > x1 {
        return "<p>(no data)</p>".into();
    }
    if x0 == x1 {
        x1 = x0 + 1;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let (y0, y1) = (y0 - pad, y1 + pad);
    {
        let root = SVGBackend::with_string(&mut svg, (960, 280)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&root)
                .margin(12)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            if y0 < 0.0 && y1 > 0.0 {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(x0, 0.0), (x1, 0.0)],
                    BLACK.mix(0.3),
                )))?;
            }
            for t in markers {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(*t, y0), (*t, y1)],
                    MARK_COLOR.mix(0.6),
                )))?;
            }
            c.draw_series(LineSeries::new(
                series[0].iter().copied(),
                BASE_COLOR.stroke_width(2),
            ))?;
            c.draw_series(LineSeries::new(
                series[1].iter().copied(),
                CAND_COLOR.stroke_width(2),
            ))?;
            root.present()?;
            Ok(())
        };
        if let Err(e) = draw() {
            return format!("<p>plot failed: {}</p>", esc(&e.to_string()));
        }
    }
    svg
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
    let markers: Vec<i64> = r
        .streams
        .iter()
        .filter_map(|s| s.first_divergence.as_ref().map(|d| d.time_ns))
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
    // The plots carry no text (no font backend), so their value ranges are written here.
    let range = |series: [&[(i64, f64)]; 2]| {
        let vals = series.iter().flat_map(|s| s.iter().map(|p| p.1));
        let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo <= hi {
            format!("from {} to {}", fmt(lo), fmt(hi))
        } else {
            "no values".into()
        }
    };
    let (eqs, dds) = ([eq(&base), eq(&cand)], [dd(&base), dd(&cand)]);
    let _ = write!(
        h,
        "<h2>Equity, all streams</h2><p>{span}; values {}; <span class=\"mark\">red lines</span>: first divergence of a stream.</p>{}",
        range([&eqs[0], &eqs[1]]),
        chart([&eqs[0], &eqs[1]], &markers)
    );
    let _ = write!(
        h,
        "<h2>Drawdown (below zero)</h2><p>values {}</p>{}",
        range([&dds[0], &dds[1]]),
        chart([&dds[0], &dds[1]], &markers)
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
