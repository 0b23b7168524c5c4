//! Snapshot testing of projections, insta-style: a projector's state per (stream, point) in
//! a `.snap` file in insta's format (a `---` header with `source` and `expression`, then the
//! state as pretty JSON with sorted keys), reviewed like any insta snapshot: a difference is
//! written beside the snapshot as `<name>.snap.new`, which `cargo insta review` / `accept`
//! pick up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::glob::glob_match;
use crate::replay::{Plugin, Point, ReplayOptions, replay};
use crate::runtime::Runtime;
use crate::store::EventSource;

/// Which points of each stream to snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Points {
    /// The end of the stream.
    End,
    /// These seqs (those past the end of a stream are skipped).
    At(Vec<u64>),
    /// Every N events, and the end.
    Every(u64),
}

/// One snapshot-to-be: where, and the projected state with redactions applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub stream: String,
    pub seq: u64,
    pub name: String,
    pub state: Value,
}

/// Replaces every value whose path matches one of `patterns` with `"[redacted]"` (paths as in
/// diffs: `.orders.*.venue_order_id`; `*` matches any run of characters).
pub fn redact(value: &mut Value, patterns: &[String]) {
    fn walk(path: &mut String, v: &mut Value, patterns: &[String]) {
        if !path.is_empty() && patterns.iter().any(|p| glob_match(p, path)) {
            *v = Value::String("[redacted]".into());
            return;
        }
        let len = path.len();
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    path.push('.');
                    path.push_str(k);
                    walk(path, child, patterns);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    walk(path, child, patterns);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    if !patterns.is_empty() {
        walk(&mut String::new(), value, patterns);
    }
}

/// The snapshot file name of a (projector, stream, seq): `<projector>__<stream>@<seq>.snap`,
/// with anything but `[A-Za-z0-9_-]` in the stream key as `-`.
pub fn snapshot_name(projector: &str, stream: &str, seq: u64) -> String {
    let safe: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{projector}__{safe}@{seq}")
}

/// Computes the states to snapshot: one replay per point, from the start of each stream (not
/// from stored snapshots: a snapshot test checks what the projector computes, and a restored
/// anchor would only echo the store).
pub fn take(
    rt: &Runtime,
    source: &dyn EventSource,
    projector: &Plugin,
    streams: &str,
    points: &Points,
    redactions: &[String],
    jobs: usize,
) -> Result<Vec<Taken>> {
    let mut seqs_by_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in source
        .streams()?
        .into_iter()
        .filter(|s| glob_match(streams, &s.key))
    {
        let seqs = match points {
            Points::End => vec![s.last_seq],
            Points::At(v) => v
                .iter()
                .copied()
                .filter(|q| *q >= 1 && *q <= s.last_seq)
                .collect(),
            Points::Every(n) => {
                let n = (*n).max(1);
                let mut v: Vec<u64> = (1..=s.last_seq / n).map(|k| k * n).collect();
                if v.last() != Some(&s.last_seq) {
                    v.push(s.last_seq);
                }
                v
            }
        };
        seqs_by_stream.insert(s.key, seqs);
    }
    let mut all_seqs: Vec<u64> = seqs_by_stream.values().flatten().copied().collect();
    all_seqs.sort_unstable();
    all_seqs.dedup();
    let mut out = Vec::new();
    for seq in all_seqs {
        let opts = ReplayOptions {
            streams: streams.to_string(),
            from: None,
            to: Some(Point::Seq(seq)),
            check_stored: false,
            jobs,
            ..ReplayOptions::default()
        };
        let report = replay(rt, source, std::slice::from_ref(projector), &opts)?;
        for s in report.streams {
            if !seqs_by_stream
                .get(&s.stream)
                .is_some_and(|v| v.contains(&seq))
            {
                continue;
            }
            if let Some(f) = s.findings.first() {
                return Err(Error::engine(
                    format!("snapshotting {} at seq {seq}", s.stream),
                    crate::report::describe(f),
                ));
            }
            let mut state = s
                .final_states
                .get(projector.name())
                .cloned()
                .unwrap_or(Value::Null);
            redact(&mut state, redactions);
            out.push(Taken {
                name: snapshot_name(projector.name(), &s.stream, seq),
                stream: s.stream,
                seq,
                state,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A `.snap` file as insta writes it.
pub fn render(source: &str, expression: &str, state: &Value) -> String {
    let body = String::from_utf8(tapedeck_guest::state::canonical_json_pretty(state))
        .expect("JSON is UTF-8");
    format!(
        "---\nsource: {}\nexpression: {}\n---\n{body}\n",
        serde_json::to_string(source).unwrap(),
        serde_json::to_string(expression).unwrap()
    )
}

/// The body of a `.snap` file (after the header).
pub fn body_of(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[end + 5..].trim_end_matches('\n'))
}

/// What a check or an accept did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub matched: Vec<String>,
    /// Written as `.snap.new`: (name, unified diff, structural differences).
    pub changed: Vec<(String, String, Vec<crate::diff::Difference>)>,
    /// No snapshot yet: written as `.snap.new`.
    pub pending: Vec<String>,
    pub accepted: Vec<String>,
}

impl Outcome {
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty() && self.pending.is_empty()
    }
}

/// Compares `taken` with the files in `dir`; with `accept`, writes them as the new truth.
pub fn check_or_accept(
    dir: &Path,
    taken: &[Taken],
    source: &str,
    projector: &str,
    accept: bool,
) -> Result<Outcome> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Outcome::default();
    for t in taken {
        let expression = format!("{projector} state of {} at seq {}", t.stream, t.seq);
        let text = render(source, &expression, &t.state);
        let path: PathBuf = dir.join(format!("{}.snap", t.name));
        let new_path = dir.join(format!("{}.snap.new", t.name));
        if accept {
            crate::runtime::write_atomic(&path, text.as_bytes())?;
            let _ = std::fs::remove_file(&new_path);
            out.accepted.push(t.name.clone());
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if body_of(&old) == body_of(&text) => {
                let _ = std::fs::remove_file(&new_path);
                out.matched.push(t.name.clone());
            }
            Ok(old) => {
                crate::runtime::write_atomic(&new_path, text.as_bytes())?;
                let (a, b) = (body_of(&old).unwrap_or(""), body_of(&text).unwrap_or(""));
                let unified = similar::TextDiff::from_lines(a, b)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("{}.snap", t.name), &format!("{}.snap.new", t.name))
                    .to_string();
                let old_state: Value = serde_json::from_str(a).unwrap_or(Value::Null);
                let structural = crate::diff::diff(&old_state, &t.state, &Default::default());
                out.changed.push((t.name.clone(), unified, structural));
            }
            Err(_) => {
                crate::runtime::write_atomic(&new_path, text.as_bytes())?;
                out.pending.push(t.name.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redactions_replace_matching_paths() {
        let mut v = json!({"orders": {"1": {"venue_order_id": 7, "qty": 1}, "2": {"venue_order_id": 8}}, "t": [1, 2]});
        redact(&mut v, &[".orders.*.venue_order_id".into(), ".t[1]".into()]);
        assert_eq!(
            v,
            json!({"orders": {"1": {"venue_order_id": "[redacted]", "qty": 1}, "2": {"venue_order_id": "[redacted]"}}, "t": [1, "[redacted]"]})
        );
    }

    #[test]
    fn names_and_bodies() {
        assert_eq!(
            snapshot_name("book", "md:binance-spot:BTCUSDT", 7),
            "book__md-binance-spot-BTCUSDT@7"
        );
        let text = render(
            "tapedeck snapshot",
            "x at seq 1",
            &json!({"b": 1, "a": [1.5, 2]}),
        );
        assert!(
            text.starts_with(
                "---\nsource: \"tapedeck snapshot\"\nexpression: \"x at seq 1\"\n---\n{\n  \"a\""
            ),
            "{text}"
        );
        assert_eq!(
            body_of(&text),
            Some("{\n  \"a\": [\n    1.5,\n    2\n  ],\n  \"b\": 1\n}")
        );
    }
}
