//! Line plots over time as inline SVG, with axes: event time (UTC) on x, the value on y, ticks
//! at round values with grid lines, tick labels, axis labels and a legend. Text is SVG
//! `<text>` laid out by the browser, so no font is needed here. [`line_plot`] is the one entry
//! point, for every report that plots series over time.
//!
//! Invariants: the output is a function of the inputs alone (no clock, no randomness), and
//! every number in it is printed with a fixed number of decimals, so identical runs write
//! identical bytes.

use std::fmt::Write as _;

use crate::time::format_ns;

/// One line: `(time_ns, value)` points in time order, drawn in `color` (any CSS color).
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: &'a [(i64, f64)],
}

/// A vertical line at a time, drawn in `color`: an event worth seeing against the series.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub time_ns: i64,
    pub color: &'static str,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 320.0;
/// The plot area inside the SVG: room on the left for value labels, on the right for half of
/// the last time label, below for time labels and the x axis label.
const LEFT: f64 = 96.0;
const RIGHT: f64 = WIDTH - 56.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = HEIGHT - 52.0;

/// Step sizes for time ticks, in ns: the smallest one giving at most eight ticks is used.
const TIME_STEPS: &[i64] = &[
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    SEC,
    2 * SEC,
    5 * SEC,
    10 * SEC,
    15 * SEC,
    30 * SEC,
    60 * SEC,
    2 * 60 * SEC,
    5 * 60 * SEC,
    10 * 60 * SEC,
    15 * 60 * SEC,
    30 * 60 * SEC,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    91 * DAY,
    365 * DAY,
];
const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;
const MAX_TICKS: i64 = 8;

/// The time ticks of `[t0, t1]`: multiples of a round step (so they fall on round UTC times).
fn time_ticks(t0: i64, t1: i64) -> (i64, Vec<i64>) {
    let span = (t1 - t0).max(1);
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span / s < MAX_TICKS)
        .unwrap_or((span + MAX_TICKS - 2) / (MAX_TICKS - 1));
    let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
    let ticks = std::iter::successors(Some(first), |t| t.checked_add(step))
        .take_while(|t| *t <= t1)
        .collect();
    (step, ticks)
}

/// A time tick's label: the date for steps of a day or more, else the time of day, with as
/// many decimals of the second as the step needs.
fn time_label(t: i64, step: i64) -> String {
    // 2024-01-02T00:00:00.251000000Z
    let full = format_ns(t);
    if step >= DAY {
        return full[..10].to_string();
    }
    let decimals = match step {
        s if s % SEC == 0 => 0,
        s if s % 1_000_000 == 0 => 3,
        s if s % 1_000 == 0 => 6,
        _ => 9,
    };
    let end = if decimals == 0 { 19 } else { 20 + decimals };
    full[11..end].to_string()
}

/// Round value ticks covering `[lo, hi]` (steps of 1, 2 or 5 times a power of ten), and the
/// decimals their labels need.
fn value_ticks(lo: f64, hi: f64) -> (Vec<f64>, usize) {
    let raw = ((hi - lo) / 6.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    (ticks, decimals)
}

/// A value label: fixed decimals, no negative zero.
fn value_label(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v);
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The series as one SVG, time on x (labelled `x_label`, plus the date when the ticks are
/// times of day) and values on y (labelled `y_label`), with `markers` as vertical lines.
/// Without points: a short paragraph saying so.
pub fn line_plot(
    series: &[Series<'_>],
    x_label: &str,
    y_label: &str,
    markers: &[Marker],
) -> String {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    for (t, y) in points.filter(|p| p.1.is_finite()) {
        (t0, t1, y0, y1) = (t0.min(*t), t1.max(*t), y0.min(*y), y1.max(*y));
    }
    if t0 > t1 {
        return "<p>(no data)</p>".into();
    }
    if t0 == t1 {
        (t0, t1) = (t0 - SEC / 2, t1 + SEC / 2);
    }
    // 5% of the range above and below; a flat series gets 5% of its value (or of 1).
    let pad = if y1 > y0 {
        (y1 - y0) * 0.05
    } else {
        y0.abs().max(1.0) * 0.05
    };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (RIGHT - LEFT);
    let py = |y: f64| BOTTOM - (y - y0) / (y1 - y0) * (BOTTOM - TOP);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="{} over {}">"#,
        esc(y_label),
        esc(x_label)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>"##
    );

    // Value axis: grid lines, ticks and labels.
    let (vticks, decimals) = value_ticks(y0, y1);
    s.push_str(r#"<g class="axis y">"#);
    for v in &vticks {
        let y = py(*v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.2}" y2="{y:.2}" stroke="#e5e5e5"/><line x1="{:.2}" x2="{LEFT}" y1="{y:.2}" y2="{y:.2}" stroke="#444"/><text class="tick" x="{:.2}" y="{y:.2}" text-anchor="end" dominant-baseline="middle">{}</text>"##,
            LEFT - 5.0,
            LEFT - 8.0,
            value_label(*v, decimals)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{BOTTOM}" stroke="#444"/><text class="label" transform="translate(16 {:.2}) rotate(-90)" text-anchor="middle" dominant-baseline="middle">{}</text></g>"##,
        (TOP + BOTTOM) / 2.0,
        esc(y_label)
    );

    // Time axis.
    let (step, tticks) = time_ticks(t0, t1);
    s.push_str(r#"<g class="axis x">"#);
    for t in &tticks {
        let x = px(*t);
        let _ = write!(
            s,
            r##"<line x1="{x:.2}" x2="{x:.2}" y1="{TOP}" y2="{BOTTOM}" stroke="#f0f0f0"/><line x1="{x:.2}" x2="{x:.2}" y1="{BOTTOM}" y2="{:.2}" stroke="#444"/><text class="tick" x="{x:.2}" y="{:.2}" text-anchor="middle">{}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 18.0,
            time_label(*t, step)
        );
    }
    let date = if step < DAY {
        format!(
            ", {}",
            &format_ns(tticks.first().copied().unwrap_or(t0))[..10]
        )
    } else {
        String::new()
    };
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{BOTTOM}" y2="{BOTTOM}" stroke="#444"/><text class="label" x="{:.2}" y="{:.2}" text-anchor="middle">{}{date}</text></g>"##,
        (LEFT + RIGHT) / 2.0,
        HEIGHT - 10.0,
        esc(x_label)
    );

    // Zero, markers, then the series on top.
    if y0 < 0.0 && y1 > 0.0 {
        let y = py(0.0);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.2}" y2="{y:.2}" stroke="#999"/>"##
        );
    }
    for m in markers.iter().filter(|m| (t0..=t1).contains(&m.time_ns)) {
        let x = px(m.time_ns);
        let _ = write!(
            s,
            r#"<line class="marker" x1="{x:.2}" x2="{x:.2}" y1="{TOP}" y2="{BOTTOM}" stroke="{}" stroke-opacity="0.6"/>"#,
            esc(m.color)
        );
    }
    for (i, ser) in series.iter().enumerate() {
        let pts: Vec<String> = ser
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|(t, y)| format!("{:.2},{:.2}", px(*t), py(*y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline class="series" fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            esc(ser.color),
            pts.join(" "),
            esc(ser.name)
        );
        // Legend, top right.
        let x = RIGHT - 150.0 * (series.len() - i) as f64;
        let _ = write!(
            s,
            r#"<line x1="{x:.2}" x2="{:.2}" y1="14" y2="14" stroke="{}" stroke-width="3"/><text class="legend" x="{:.2}" y="14" dominant-baseline="middle">{}</text>"#,
            x + 20.0,
            esc(ser.color),
            x + 26.0,
            esc(ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_704_153_600 * SEC; // 2024-01-02T00:00:00Z

    #[test]
    fn time_ticks_fall_on_round_times_and_are_labelled_as_such() {
        let (step, ticks) = time_ticks(T0 + 251_000_000, T0 + 150 * SEC);
        assert_eq!(step, 30 * SEC);
        let labels: Vec<String> = ticks.iter().map(|t| time_label(*t, step)).collect();
        assert_eq!(
            labels,
            ["00:00:30", "00:01:00", "00:01:30", "00:02:00", "00:02:30"]
        );
        let (step, ticks) = time_ticks(T0, T0 + 900_000_000);
        assert_eq!(step, 200_000_000);
        assert_eq!(time_label(ticks[1], step), "00:00:00.200");
        let (step, ticks) = time_ticks(T0, T0 + 20 * DAY);
        assert_eq!(step, 7 * DAY);
        assert_eq!(time_label(ticks[0], step), "2024-01-04");
    }

    #[test]
    fn value_ticks_are_round_and_cover_the_range() {
        assert_eq!(value_ticks(-3.2, 7.9), (vec![-2.0, 0.0, 2.0, 4.0, 6.0], 0));
        let (ticks, decimals) = value_ticks(0.012, 0.031);
        assert_eq!(decimals, 3);
        assert_eq!(
            ticks
                .iter()
                .map(|v| value_label(*v, decimals))
                .collect::<Vec<_>>(),
            ["0.015", "0.020", "0.025", "0.030"]
        );
        assert_eq!(value_label(-0.0001, 2), "0.00");
    }

    #[test]
    fn a_plot_has_both_axes_their_labels_a_legend_and_its_lines() {
        let a: Vec<(i64, f64)> = (0..100).map(|i| (T0 + i * SEC, i as f64)).collect();
        let b: Vec<(i64, f64)> = (0..100).map(|i| (T0 + i * SEC, -(i as f64))).collect();
        let svg = line_plot(
            &[
                Series {
                    name: "baseline",
                    color: "rgb(31,119,180)",
                    points: &a,
                },
                Series {
                    name: "candidate",
                    color: "rgb(255,127,14)",
                    points: &b,
                },
            ],
            "time (UTC)",
            "equity",
            &[Marker {
                time_ns: T0 + 50 * SEC,
                color: "red",
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"<g class="axis x">"#) && svg.contains(r#"<g class="axis y">"#));
        assert!(svg.contains(">time (UTC), 2024-01-02</text>"), "{svg}");
        assert!(svg.contains(">equity</text>"));
        assert!(
            svg.contains(">00:00:30</text>") && svg.contains(">-50</text>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches(r#"class="marker""#).count(), 1);
        assert!(svg.contains(">baseline</text>") && svg.contains(">candidate</text>"));
    }

    #[test]
    fn one_point_or_none() {
        let one = [(T0, 5.0)];
        let svg = line_plot(
            &[Series {
                name: "x",
                color: "black",
                points: &one,
            }],
            "t",
            "v",
            &[],
        );
        assert!(
            svg.contains("<polyline") && svg.contains(">5.0</text>"),
            "{svg}"
        );
        assert_eq!(line_plot(&[], "t", "v", &[]), "<p>(no data)</p>");
    }
}
