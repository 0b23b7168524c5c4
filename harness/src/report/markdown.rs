//! `report.md` of a replay and of a regression: short enough for a pull-request comment.
//!
//! Invariants: a function of the run card and the report alone (no times, no paths but the
//! store's); at most [`MAX_LISTED`] findings are listed (the JSON files have them all);
//! negative zeros print as zeros.

use std::fmt::Write as _;

use super::{RunCard, describe};
use crate::regress::RegressReport;
use crate::replay::{Finding, ReplayReport};

/// Findings listed in a report before "... and N more".
pub const MAX_LISTED: usize = 50;

/// The replay's `report.md`.
pub fn replay(card: &RunCard, report: &ReplayReport) -> String {
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
        card.store,
        card.streams,
        report.events()
    );
    let _ = writeln!(
        s,
        "| module | kind | version | sha256 |\n| --- | --- | --- | --- |"
    );
    for m in &card.modules {
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` |",
            m.name,
            m.kind.as_str(),
            m.version,
            m.short_sha()
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

/// The regression's `report.md`: verdict, the two modules, totals with changes, and a row
/// per stream.
pub fn regress(card: &RunCard, r: &RegressReport, verdict: &[String]) -> String {
    let mut s = String::new();
    let m = |i: usize| {
        card.module(i).map_or_else(
            || "``  (``)".to_string(),
            |m| format!("`{}` {} (`{}`)", m.name, m.version, m.short_sha()),
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
        card.store,
        card.streams
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regress::Totals;
    use crate::report::{ModuleCard, RuntimeCard};
    use crate::runtime::ModuleKind;

    fn card() -> RunCard {
        let module = |name: &str| ModuleCard {
            abi_version: 1,
            budget: None,
            config: String::new(),
            kind: ModuleKind::Strategy,
            name: name.into(),
            path: String::new(),
            sha256: "00112233445566778899".into(),
            version: "1.0.0".into(),
        };
        RunCard {
            abi_version: 1,
            batch: 1024,
            data: Vec::new(),
            fail_on: None,
            from: None,
            modules: vec![module("ema-cross"), module("ema-cross-v2")],
            runtime: RuntimeCard {
                fuel: true,
                fuel_per_call: 1,
                fuel_per_event: 1,
                memory_limit: 1,
            },
            shard: None,
            store: "fixtures".into(),
            streams: "*".into(),
            tapedeck_version: "0".into(),
            to: None,
            tolerances: Default::default(),
            venue: None,
            stats: None,
        }
    }

    #[test]
    fn the_regression_report_names_both_modules_and_the_verdict() {
        let r = RegressReport {
            streams: vec![],
            baseline: Totals {
                pnl: -0.0,
                trades: 3,
                ..Default::default()
            },
            candidate: Totals {
                pnl: 2.5,
                trades: 1,
                ..Default::default()
            },
            diverged_streams: 0,
        };
        let md = regress(&card(), &r, &["decisions diverge on 1 stream(s)".into()]);
        assert!(md.starts_with("## Tapedeck regression: FAIL\n\n- **decisions diverge"));
        assert!(
            md.contains("baseline `ema-cross` 1.0.0 (`001122334455`) vs candidate `ema-cross-v2` 1.0.0 (`001122334455`) on `fixtures` (streams `*`)"),
            "{md}"
        );
        assert!(md.contains("| trades | 3 | 1 | -2 |"), "{md}");
        assert!(md.contains("| PnL | 0.0000 | 2.5000 | +2.5000 |"), "{md}");
    }
}
