//! The run directory a replay writes: `summary.json`, `config.json` (the run card),
//! `report.md` (fits a PR comment), `junit.xml` (one case per stream), `findings.json`.
//! Everything but `summary.json`'s `timing` is a function of the inputs alone.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::diff::Tolerances;
use crate::error::Result;
use crate::replay::{Finding, Plugin, ReplayOptions, ReplayReport};
use crate::runtime::RuntimeConfig;

/// Wall-clock facts of a run: the only fields allowed to differ between identical runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub started_at_unix_ms: u128,
    pub elapsed_ms: u128,
    pub jobs: usize,
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

/// The run card: everything that determines the results.
pub fn run_card(
    store: &str,
    plugins: &[Plugin],
    opts: &ReplayOptions,
    rt: &RuntimeConfig,
) -> Value {
    let modules: Vec<Value> = plugins
        .iter()
        .map(|p| {
            let m = &p.module;
            json!({
                "name": m.info().name,
                "version": m.info().version,
                "kind": m.kind(),
                "abi_version": m.info().abi_version,
                "sha256": m.hash().hex(),
                "config": p.config,
            })
        })
        .collect();
    json!({
        "tapedeck_version": env!("CARGO_PKG_VERSION"),
        "abi_version": tapedeck_guest::ABI_VERSION,
        "store": store,
        "streams": opts.streams,
        "from": opts.from,
        "to": opts.to,
        "batch": opts.batch,
        "tolerances": opts.tolerances,
        "modules": modules,
        "runtime": {
            "memory_limit": rt.memory_limit,
            "fuel_per_event": rt.fuel_per_event,
            "fuel_per_call": rt.fuel_per_call,
            "fuel": rt.fuel,
        },
    })
}

/// Writes the run directory.
pub fn write_run_dir(
    dir: &Path,
    card: &Value,
    report: &ReplayReport,
    timing: &Timing,
) -> Result<()> {
    let w = |name: &str, bytes: Vec<u8>| crate::runtime::write_atomic(&dir.join(name), &bytes);
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
    w("config.json", pretty(card))?;
    w(
        "findings.json",
        pretty(&serde_json::to_value(&findings).expect("findings serialize")),
    )?;
    w("report.md", markdown(card, report).into_bytes())?;
    w("junit.xml", junit(report).into_bytes())?;
    Ok(())
}

fn pretty(v: &Value) -> Vec<u8> {
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

const MAX_LISTED: usize = 50;

fn markdown(card: &Value, report: &ReplayReport) -> String {
    let mut s = String::new();
    let verdict = if report.is_clean() {
        "clean"
    } else {
        "FINDINGS"
    };
    let _ = writeln!(s, "## Tapedeck replay: {verdict}\n");
    let _ = writeln!(
        s,
        "Store `{}`, streams `{}`, {} events.\n",
        card["store"].as_str().unwrap_or(""),
        card["streams"].as_str().unwrap_or(""),
        report.events()
    );
    let _ = writeln!(
        s,
        "| module | kind | version | sha256 |\n| --- | --- | --- | --- |"
    );
    for m in card["modules"].as_array().into_iter().flatten() {
        let sha = m["sha256"].as_str().unwrap_or("");
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` |",
            m["name"].as_str().unwrap_or(""),
            m["kind"].as_str().unwrap_or(""),
            m["version"].as_str().unwrap_or(""),
            &sha[..sha.len().min(12)]
        );
    }
    let _ = writeln!(
        s,
        "\n| stream | seqs | events | snapshots checked | findings |\n| --- | --- | --- | --- | --- |"
    );
    for st in &report.streams {
        let _ = writeln!(
            s,
            "| `{}` | {}..{} | {} | {} | {} |",
            st.stream,
            st.start_seq,
            st.last_seq,
            st.events,
            st.snapshots_checked,
            st.findings.len()
        );
    }
    let findings: Vec<&Finding> = report.findings().collect();
    if !findings.is_empty() {
        let _ = writeln!(s, "\n### Findings\n");
        for f in findings.iter().take(MAX_LISTED) {
            let _ = writeln!(s, "- {}", describe(f));
        }
        if findings.len() > MAX_LISTED {
            let _ = writeln!(
                s,
                "- ... and {} more (findings.json has them all)",
                findings.len() - MAX_LISTED
            );
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn junit(report: &ReplayReport) -> String {
    let failures = report
        .streams
        .iter()
        .filter(|s| !s.findings.is_empty())
        .count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"tapedeck-replay\" tests=\"{}\" failures=\"{failures}\">",
        report.streams.len()
    );
    for st in &report.streams {
        let _ = write!(
            s,
            "  <testcase classname=\"tapedeck.replay\" name=\"{}\"",
            xml_escape(&st.stream)
        );
        if st.findings.is_empty() {
            s.push_str("/>\n");
            continue;
        }
        let text: Vec<String> = st.findings.iter().map(describe).collect();
        let _ = writeln!(
            s,
            ">\n    <failure message=\"{} finding(s)\">{}</failure>\n  </testcase>",
            st.findings.len(),
            xml_escape(&text.join("\n"))
        );
    }
    s.push_str("</testsuite>\n");
    s
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

/// The run card of a regression: a replay card plus the venue.
pub fn regress_card(
    store: &str,
    baseline: &Plugin,
    candidate: &Plugin,
    opts: &ReplayOptions,
    rt: &RuntimeConfig,
    venue: &crate::venue::VenueConfig,
    fail_on: &[crate::regress::FailOn],
) -> Value {
    let mut card = run_card(store, &[baseline.clone(), candidate.clone()], opts, rt);
    card["venue"] = serde_json::to_value(venue).expect("venue config serializes");
    card["fail_on"] = serde_json::to_value(fail_on).expect("rules serialize");
    card
}

/// Writes a regression run directory: summary.json, config.json, report.md, report.html,
/// junit.xml (one case per stream) and the Parquet artifacts.
pub fn write_regress_dir(
    dir: &Path,
    card: &Value,
    r: &crate::regress::RegressReport,
    verdict: &[String],
    timing: &Timing,
) -> Result<()> {
    let w = |name: &str, bytes: Vec<u8>| crate::runtime::write_atomic(&dir.join(name), &bytes);
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
    w("config.json", pretty(card))?;
    w("report.md", regress_markdown(card, r, verdict).into_bytes())?;
    w(
        "report.html",
        crate::html::regress_html(card, r, verdict).into_bytes(),
    )?;
    w("junit.xml", regress_junit(r).into_bytes())?;
    crate::artifacts::write_regress_artifacts(dir, r)
}

fn regress_markdown(card: &Value, r: &crate::regress::RegressReport, verdict: &[String]) -> String {
    let mut s = String::new();
    let m = |i: usize| {
        let m = &card["modules"][i];
        let sha = m["sha256"].as_str().unwrap_or("");
        format!(
            "`{}` {} (`{}`)",
            m["name"].as_str().unwrap_or(""),
            m["version"].as_str().unwrap_or(""),
            &sha[..sha.len().min(12)]
        )
    };
    let _ = writeln!(
        s,
        "## Tapedeck regression: {}\n",
        if verdict.is_empty() { "PASS" } else { "FAIL" }
    );
    for v in verdict {
        let _ = writeln!(s, "- **{v}**");
    }
    let _ = writeln!(
        s,
        "\nbaseline {} vs candidate {} on `{}` (streams `{}`).\n",
        m(0),
        m(1),
        card["store"].as_str().unwrap_or(""),
        card["streams"].as_str().unwrap_or("")
    );
    let (b, c) = (&r.baseline, &r.candidate);
    let _ = writeln!(
        s,
        "| | baseline | candidate | change |\n| --- | ---: | ---: | ---: |"
    );
    for (name, x, y) in [
        ("decisions", b.decisions, c.decisions),
        ("orders", b.orders, c.orders),
        ("trades", b.trades, c.trades),
    ] {
        let _ = writeln!(s, "| {name} | {x} | {y} | {:+} |", y as i64 - x as i64);
    }
    let rows: [(&str, f64, f64); 4] = [
        ("PnL", b.pnl, c.pnl),
        ("max drawdown", b.max_drawdown, c.max_drawdown),
        ("fees", b.fees, c.fees),
        ("turnover", b.turnover, c.turnover),
    ];
    for (name, x, y) in rows {
        // `+ 0.0` turns a negative zero into zero.
        let _ = writeln!(
            s,
            "| {name} | {:.4} | {:.4} | {:+.4} |",
            x + 0.0,
            y + 0.0,
            y - x + 0.0
        );
    }
    let _ = writeln!(
        s,
        "\n| stream | events | first divergence | PnL baseline | PnL candidate | findings |\n| --- | ---: | --- | ---: | ---: | ---: |"
    );
    for st in &r.streams {
        let div = st.first_divergence.as_ref().map_or("-".to_string(), |d| {
            format!("seq {} ({})", d.seq, d.event_type)
        });
        let _ = writeln!(
            s,
            "| `{}` | {} | {div} | {:.4} | {:.4} | {} |",
            st.stream,
            st.events,
            st.baseline.pnl + 0.0,
            st.candidate.pnl + 0.0,
            st.findings.len()
        );
    }
    let findings: Vec<&Finding> = r.findings().collect();
    if !findings.is_empty() {
        let _ = writeln!(s, "\n### Findings\n");
        for f in findings.iter().take(MAX_LISTED) {
            let _ = writeln!(s, "- {}", describe(f));
        }
    }
    s
}

fn regress_junit(r: &crate::regress::RegressReport) -> String {
    let failing =
        |s: &crate::regress::StreamRegress| s.first_divergence.is_some() || !s.findings.is_empty();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"tapedeck-regress\" tests=\"{}\" failures=\"{}\">",
        r.streams.len(),
        r.streams.iter().filter(|s| failing(s)).count()
    );
    for st in &r.streams {
        let _ = write!(
            s,
            "  <testcase classname=\"tapedeck.regress\" name=\"{}\"",
            xml_escape(&st.stream)
        );
        if !failing(st) {
            s.push_str("/>\n");
            continue;
        }
        let mut text: Vec<String> = st.findings.iter().map(describe).collect();
        if let Some(d) = &st.first_divergence {
            text.insert(
                0,
                format!("decisions diverge at seq {} ({})", d.seq, d.event_type),
            );
        }
        let _ = writeln!(
            s,
            ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
            xml_escape(&text[0]),
            xml_escape(&text.join("\n"))
        );
    }
    s.push_str("</testsuite>\n");
    s
}
