//! A sweep's `report.md` and `report.html`: the ranked table (the first [`MAX_ROWS`] points;
//! `sweep.parquet` has them all), the per-parameter marginals (mean and best of the metric
//! per value), and, when exactly two parameters vary, a heatmap of the metric over them
//! (inline SVG in the page, a table in Markdown; the best point of a cell when several share
//! it).
//!
//! Invariants: a function of the card, the grid and the points alone (no wall clock); numbers
//! are formatted with fixed precision, so the same sweep gives the same bytes.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::grid::{Grid, ParamValue};
use crate::point::{Metric, PointSummary};
use crate::run::SweepCard;
use crate::table::MarginalRow;

/// Points listed in the reports' ranked table.
pub const MAX_ROWS: usize = 100;

/// What both reports show.
pub struct Inputs<'a> {
    pub card: &'a SweepCard,
    pub grid: &'a Grid,
    pub metric: Metric,
    /// Best first.
    pub ranked: Vec<&'a PointSummary>,
    pub marginals: &'a [(String, Vec<MarginalRow>)],
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.4}", v + 0.0))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn value(v: Option<&ParamValue>) -> String {
    v.map_or("-".into(), ParamValue::to_string)
}

const FIGURES: [&str; 8] = [
    "pnl",
    "return",
    "sharpe",
    "sortino",
    "max drawdown",
    "fills",
    "fees",
    "findings",
];

fn figures(p: &PointSummary) -> [String; 8] {
    [
        num(Some(p.pnl)),
        format!("{}%", num(Some(p.ret * 100.0))),
        num(p.sharpe),
        num(p.sortino),
        num(Some(p.max_drawdown)),
        p.fills.to_string(),
        num(Some(p.fees)),
        p.findings.to_string(),
    ]
}

impl Inputs<'_> {
    fn params(&self) -> Vec<&str> {
        self.grid.params.keys().map(String::as_str).collect()
    }

    fn headline(&self) -> String {
        let m = self.card.run.modules.first();
        format!(
            "{} points of `{}` {} on `{}` (streams `{}`), grid `{}`, ranked by {} ({} first)",
            self.ranked.len(),
            m.map_or("?", |m| m.name.as_str()),
            m.map_or("", |m| m.version.as_str()),
            self.card.run.store,
            self.card.run.streams,
            self.card.grid,
            self.metric,
            if self.metric.higher_is_better() {
                "highest"
            } else {
                "lowest"
            }
        )
    }

    /// The two varying parameters' values (x, then y), when exactly two vary.
    fn heat_axes(&self) -> Option<[(String, Vec<ParamValue>); 2]> {
        let [x, y] = self.grid.varying()[..] else {
            return None;
        };
        let axis = |name: &str| {
            let mut v: Vec<ParamValue> = self
                .grid
                .points
                .iter()
                .filter_map(|p| p.get(name).cloned())
                .collect();
            v.sort_by(ParamValue::total_cmp);
            v.dedup_by(|a, b| a.total_cmp(b) == Ordering::Equal);
            (name.to_string(), v)
        };
        Some([axis(x), axis(y)])
    }

    /// The best metric value of the points at (x, y), in ranked order the first that has them.
    fn cell(&self, x: (&str, &ParamValue), y: (&str, &ParamValue)) -> Option<(Option<f64>, u32)> {
        let at = |p: &&PointSummary, (n, v): (&str, &ParamValue)| {
            p.params
                .get(n)
                .is_some_and(|w| w.total_cmp(v) == Ordering::Equal)
        };
        self.ranked
            .iter()
            .find(|p| at(p, x) && at(p, y))
            .map(|p| (self.metric.of(p), p.point))
    }
}

/// `report.md`.
pub fn markdown(r: &Inputs<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Tapedeck sweep\n\n{}.\n", r.headline());
    let params = r.params();
    let _ = writeln!(
        s,
        "| rank | point | {} | {} |",
        params.join(" | "),
        FIGURES.join(" | ")
    );
    let _ = writeln!(
        s,
        "| ---: | ---: |{}{}",
        " --- |".repeat(params.len()),
        " ---: |".repeat(FIGURES.len())
    );
    for (rank, p) in r.ranked.iter().enumerate().take(MAX_ROWS) {
        let vals: Vec<String> = params.iter().map(|n| value(p.params.get(*n))).collect();
        let _ = writeln!(
            s,
            "| {} | {:04} | {} | {} |",
            rank + 1,
            p.point,
            vals.join(" | "),
            figures(p).join(" | ")
        );
    }
    if r.ranked.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "\n{} more points in `sweep.parquet`.",
            r.ranked.len() - MAX_ROWS
        );
    }
    for (name, rows) in r.marginals {
        let _ = writeln!(
            s,
            "\n### {} by `{name}`\n\n| {name} | points | mean {} | best {} |\n| --- | ---: | ---: | ---: |",
            r.metric, r.metric, r.metric
        );
        for m in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                value(m.value.as_ref()),
                m.points,
                num(m.mean),
                num(m.best)
            );
        }
    }
    if let Some([(xn, xs), (yn, ys)]) = r.heat_axes() {
        let _ = writeln!(s, "\n### {} over `{xn}` × `{yn}`\n", r.metric);
        let cols: Vec<String> = xs.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "| {yn} \\ {xn} | {} |", cols.join(" | "));
        let _ = writeln!(s, "| --- |{}", " ---: |".repeat(xs.len()));
        for y in &ys {
            let cells: Vec<String> = xs
                .iter()
                .map(|x| {
                    r.cell((xn.as_str(), x), (yn.as_str(), y))
                        .map_or("".into(), |(v, _)| num(v))
                })
                .collect();
            let _ = writeln!(s, "| {y} | {} |", cells.join(" | "));
        }
    }
    s
}

/// Red (worst) to green (best) through light yellow.
fn color(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let (r, g) = if t < 0.5 {
        (215.0, 48.0 + (255.0 - 48.0) * t * 2.0)
    } else {
        (
            215.0 - (215.0 - 26.0) * (t - 0.5) * 2.0,
            255.0 - (255.0 - 150.0) * (t - 0.5) * 2.0,
        )
    };
    format!("rgb({:.0},{:.0},{:.0})", r, g, 120.0)
}

fn heatmap(r: &Inputs<'_>) -> Option<String> {
    let [(xn, xs), (yn, ys)] = r.heat_axes()?;
    let (cw, ch, left, top) = (90.0, 34.0, 110.0, 30.0);
    let (w, h) = (
        left + cw * xs.len() as f64 + 10.0,
        top + ch * ys.len() as f64 + 50.0,
    );
    let mut cells = Vec::new();
    for (j, y) in ys.iter().enumerate() {
        for (i, x) in xs.iter().enumerate() {
            cells.push((i, j, r.cell((xn.as_str(), x), (yn.as_str(), y))));
        }
    }
    let vals: Vec<f64> = cells.iter().filter_map(|c| c.2.and_then(|v| v.0)).collect();
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-size="12" font-family="system-ui, sans-serif">"#
    );
    for (i, j, c) in cells {
        let (px, py) = (left + cw * i as f64, top + ch * (ys.len() - 1 - j) as f64);
        let (fill, label, title) = match c {
            Some((Some(v), p)) => {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                let t = if r.metric.higher_is_better() {
                    t
                } else {
                    1.0 - t
                };
                (
                    color(t),
                    num(Some(v)),
                    format!("point {p:04}: {}", num(Some(v))),
                )
            }
            Some((None, p)) => ("#ddd".into(), "-".into(), format!("point {p:04}: no value")),
            None => ("#fff".into(), String::new(), "no point".into()),
        };
        let _ = write!(
            svg,
            r##"<rect x="{px:.0}" y="{py:.0}" width="{cw:.0}" height="{ch:.0}" fill="{fill}" stroke="#fff"><title>{}</title></rect><text x="{:.0}" y="{:.0}" text-anchor="middle">{}</text>"##,
            esc(&title),
            px + cw / 2.0,
            py + ch / 2.0 + 4.0,
            esc(&label)
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">{}</text>"#,
            left + cw * (i as f64 + 0.5),
            top + ch * ys.len() as f64 + 16.0,
            esc(&x.to_string())
        );
    }
    for (j, y) in ys.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
            left - 8.0,
            top + ch * (ys.len() - 1 - j) as f64 + ch / 2.0 + 4.0,
            esc(&y.to_string())
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="middle" font-weight="bold">{}</text><text x="10" y="{:.0}" font-weight="bold">{}</text></svg>"#,
        left + cw * xs.len() as f64 / 2.0,
        top + ch * ys.len() as f64 + 40.0,
        esc(&xn),
        top - 10.0,
        esc(&yn)
    );
    Some(svg)
}

/// `report.html`: one self-contained page, no scripts.
pub fn html(r: &Inputs<'_>) -> String {
    let mut h = String::from(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tapedeck sweep report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
code { background: #f4f4f4; padding: 0 .2rem; }
</style></head><body>
<h1>Tapedeck sweep report</h1>
"#,
    );
    let _ = write!(h, "<p>{}.</p>", esc(&r.headline()).replace('`', ""));
    if let Some(svg) = heatmap(r) {
        let _ = write!(h, "<h2>{} over the grid</h2>{svg}", esc(r.metric.column()));
    }
    let params = r.params();
    h.push_str("<h2>Ranked</h2><table><tr><th>rank</th><th>point</th>");
    for n in params.iter().copied().chain(FIGURES) {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("</tr>");
    for (rank, p) in r.ranked.iter().enumerate().take(MAX_ROWS) {
        let _ = write!(h, "<tr><td>{}</td><td>{:04}</td>", rank + 1, p.point);
        for v in params
            .iter()
            .map(|n| value(p.params.get(*n)))
            .chain(figures(p))
        {
            let _ = write!(h, "<td>{}</td>", esc(&v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if r.ranked.len() > MAX_ROWS {
        let _ = write!(
            h,
            "<p>{} more points in <code>sweep.parquet</code>.</p>",
            r.ranked.len() - MAX_ROWS
        );
    }
    for (name, rows) in r.marginals {
        let m = esc(r.metric.column());
        let _ = write!(
            h,
            "<h2>{m} by {}</h2><table><tr><th>{}</th><th>points</th><th>mean {m}</th><th>best {m}</th></tr>",
            esc(name),
            esc(name)
        );
        for row in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&value(row.value.as_ref())),
                row.points,
                num(row.mean),
                num(row.best)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
