//! `junit.xml` of a replay and of a regression, for CI dashboards: one test case per stream.
//!
//! Invariants: a replay case fails when its stream has findings; a regression case fails when
//! the stream diverges or has findings (the divergence is named first). Stream names and
//! messages are XML-escaped; nothing else varies between identical runs.

use std::fmt::Write as _;

use super::describe;
use crate::regress::{RegressReport, StreamRegress};
use crate::replay::ReplayReport;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The replay's `junit.xml`.
pub fn replay(report: &ReplayReport) -> String {
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

/// The regression's `junit.xml`.
pub fn regress(r: &RegressReport) -> String {
    let failing = |s: &StreamRegress| s.first_divergence.is_some() || !s.findings.is_empty();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{Finding, StreamReport};

    fn stream(name: &str, findings: Vec<Finding>) -> StreamReport {
        StreamReport {
            stream: name.into(),
            start_seq: 1,
            anchor_seq: None,
            last_seq: 2,
            events: 2,
            snapshots_checked: 0,
            findings,
            output_counts: Default::default(),
            outputs: Default::default(),
            final_states: Default::default(),
            instruments: Default::default(),
            digest: String::new(),
        }
    }

    #[test]
    fn a_stream_with_findings_is_a_failing_case_with_escaped_text() {
        let trap = Finding::GuestTrap {
            stream: "md:<x>".into(),
            module: "book".into(),
            message: "trap: \"unreachable\" & more".into(),
            first_seq: 1,
            last_seq: 2,
        };
        let xml = replay(&ReplayReport {
            streams: vec![stream("md:a", vec![]), stream("md:<x>", vec![trap])],
        });
        assert_eq!(
            xml,
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<testsuite name=\"tapedeck-replay\" tests=\"2\" failures=\"1\">\n",
                "  <testcase classname=\"tapedeck.replay\" name=\"md:a\"/>\n",
                "  <testcase classname=\"tapedeck.replay\" name=\"md:&lt;x&gt;\">\n",
                "    <failure message=\"1 finding(s)\">md:&lt;x&gt;: book: trap: &quot;unreachable&quot; &amp; more</failure>\n",
                "  </testcase>\n",
                "</testsuite>\n",
            )
        );
    }
}
