//! Snapshot testing of projections, insta-style: a projector's state per (stream, point) in
//! a `.snap` file in insta's format (a `---` header with `source` and `expression`, then the
//! state as pretty JSON with sorted keys), reviewed like any insta snapshot: a difference is
//! written beside the snapshot as `<name>.snap.new`, which `cargo insta review` / `accept`
//! pick up.
//!
//! Files are named by [`snapshot_name`], which never gives two streams one file. Files named by
//! the rule before it ([`legacy_snapshot_name`]) are still recognised: a check compares with
//! the old-named file of a stream when its header names that very stream and point (and says
//! so), an accept replaces it, and [`rename_legacy`] renames a directory of them, refusing any
//! old name two streams share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::glob::glob_match;
use crate::names;
use crate::replay::{Plugin, Point, ReplayOptions, replay};
use crate::runtime::Runtime;
use crate::store::EventSource;

mod legacy;

pub use legacy::{Renames, legacy_snapshot_name, rename_legacy};

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

/// The snapshot file name of a (projector, stream, seq), without `.snap`:
/// `<projector>__<stream>@<seq>`, projector and stream as [`names::file_name`]s, so two
/// streams never share a file (`md:a:B` is `md%3Aa%3AB`, `md/a/B` is `md%2Fa%2FB`).
pub fn snapshot_name(projector: &str, stream: &str, seq: u64) -> String {
    format!(
        "{}__{}@{seq}",
        names::file_name(projector),
        names::file_name(stream)
    )
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
    take_shard(
        rt, source, projector, streams, points, redactions, jobs, None,
    )
}

/// [`take`] for one shard's streams (each stream's `.snap` files are its own: a sharded
/// snapshot run needs no merge).
#[allow(clippy::too_many_arguments)]
pub fn take_shard(
    rt: &Runtime,
    source: &dyn EventSource,
    projector: &Plugin,
    streams: &str,
    points: &Points,
    redactions: &[String],
    jobs: usize,
    shard: Option<crate::shard::Shard>,
) -> Result<Vec<Taken>> {
    let mut seqs_by_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in source
        .streams()?
        .into_iter()
        .filter(|s| glob_match(streams, &s.key))
        .filter(|s| shard.is_none_or(|sh| sh.takes_stream(&s.key)))
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
            shard,
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

/// The `expression` in the header of a `.snap` file (as `render` writes it, or unquoted).
pub fn expression_of(text: &str) -> Option<String> {
    let header = text.strip_prefix("---\n")?;
    let header = &header[..header.find("\n---\n")?];
    let value = header
        .lines()
        .find_map(|l| l.strip_prefix("expression: "))?;
    if value.starts_with('"') {
        serde_json::from_str(value).ok()
    } else {
        Some(value.to_string())
    }
}

fn expression(projector: &str, t: &Taken) -> String {
    format!("{projector} state of {} at seq {}", t.stream, t.seq)
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
    /// Snapshots found under their old name ([`legacy_snapshot_name`]): (old, new). A check
    /// compares with them as they are (and names them in `matched`/`changed`, a difference
    /// written beside them); an accept writes the new name and removes the old file.
    pub old_names: Vec<(String, String)>,
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
        let expression = expression(projector, t);
        let text = render(source, &expression, &t.state);
        let mut name = t.name.clone();
        if !dir.join(format!("{name}.snap")).exists()
            && let Some(old) = legacy::legacy_file(dir, projector, t, &expression)
        {
            out.old_names.push((old.clone(), t.name.clone()));
            if accept {
                let old_path = dir.join(format!("{old}.snap"));
                std::fs::remove_file(&old_path).map_err(|e| Error::io(&old_path, e))?;
                let _ = std::fs::remove_file(dir.join(format!("{old}.snap.new")));
            } else {
                name = old;
            }
        }
        let path: PathBuf = dir.join(format!("{name}.snap"));
        let new_path = dir.join(format!("{name}.snap.new"));
        if accept {
            crate::fs::write_atomic(&path, text.as_bytes())?;
            let _ = std::fs::remove_file(&new_path);
            out.accepted.push(name);
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if body_of(&old) == body_of(&text) => {
                let _ = std::fs::remove_file(&new_path);
                out.matched.push(name);
            }
            Ok(old) => {
                crate::fs::write_atomic(&new_path, text.as_bytes())?;
                let (a, b) = (body_of(&old).unwrap_or(""), body_of(&text).unwrap_or(""));
                let unified = similar::TextDiff::from_lines(a, b)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("{name}.snap"), &format!("{name}.snap.new"))
                    .to_string();
                let old_state: Value = serde_json::from_str(a).unwrap_or(Value::Null);
                let structural = crate::diff::diff(&old_state, &t.state, &Default::default());
                out.changed.push((name, unified, structural));
            }
            Err(_) => {
                crate::fs::write_atomic(&new_path, text.as_bytes())?;
                out.pending.push(name);
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
            "book__md%3Abinance-spot%3ABTCUSDT@7"
        );
        assert_eq!(
            legacy_snapshot_name("book", "md:binance-spot:BTCUSDT", 7),
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
        assert_eq!(expression_of(&text).as_deref(), Some("x at seq 1"));
        assert_eq!(
            expression_of("---\nsource: x.rs\nexpression: state\n---\n{}\n").as_deref(),
            Some("state")
        );
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tapedeck-snap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn taken(stream: &str, seq: u64, state: Value) -> Taken {
        Taken {
            stream: stream.into(),
            seq,
            name: snapshot_name("p", stream, seq),
            state,
        }
    }

    /// The names in `dir`, sorted (the legacy tests use it too).
    pub(super) fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Writes `t` under its old name, as the old `check_or_accept` did.
    fn write_legacy(dir: &Path, t: &Taken, state: &Value) {
        let old = legacy_snapshot_name("p", &t.stream, t.seq);
        let text = render("old", &expression("p", t), state);
        std::fs::write(dir.join(format!("{old}.snap")), text).unwrap();
    }

    // See: the `-` rule wrote `md:a:B` and `md/a/B` to one `.snap` file, the second over the first.
    #[test]
    fn streams_the_old_rule_merged_get_two_files() {
        let dir = tmp("merged");
        let t = [
            taken("md:a:B", 1, json!({"k": 1})),
            taken("md/a/B", 1, json!({"k": 2})),
        ];
        check_or_accept(&dir, &t, "src", "p", true).unwrap();
        assert_eq!(
            files(&dir),
            ["p__md%2Fa%2FB@1.snap", "p__md%3Aa%3AB@1.snap"]
        );
        let out = check_or_accept(&dir, &t, "src", "p", false).unwrap();
        assert_eq!(out.matched.len(), 2);
        assert!(out.is_clean());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_check_uses_an_old_named_file_of_the_same_stream_and_says_so() {
        let dir = tmp("legacy-check");
        let t = taken("md:a:B", 3, json!({"k": 1}));
        write_legacy(&dir, &t, &json!({"k": 1}));
        let out = check_or_accept(&dir, std::slice::from_ref(&t), "src", "p", false).unwrap();
        assert_eq!(out.matched, ["p__md-a-B@3"]);
        assert_eq!(
            out.old_names,
            [("p__md-a-B@3".to_string(), "p__md%3Aa%3AB@3".to_string())]
        );
        // A difference is written beside the file it differs from.
        let changed = taken("md:a:B", 3, json!({"k": 2}));
        let out = check_or_accept(&dir, &[changed], "src", "p", false).unwrap();
        assert_eq!(out.changed[0].0, "p__md-a-B@3");
        assert!(dir.join("p__md-a-B@3.snap.new").exists());
        // The old name of another stream (its header says so) is not taken for this one's.
        let other = taken("md/a/B", 3, json!({"k": 1}));
        let out = check_or_accept(&dir, &[other], "src", "p", false).unwrap();
        assert!(out.old_names.is_empty());
        assert_eq!(out.pending, ["p__md%2Fa%2FB@3"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_accept_replaces_an_old_named_file() {
        let dir = tmp("legacy-accept");
        let t = taken("md:a:B", 3, json!({"k": 1}));
        write_legacy(&dir, &t, &json!({"k": 0}));
        let out = check_or_accept(&dir, std::slice::from_ref(&t), "src", "p", true).unwrap();
        assert_eq!(out.accepted, ["p__md%3Aa%3AB@3"]);
        assert_eq!(out.old_names.len(), 1);
        assert_eq!(files(&dir), ["p__md%3Aa%3AB@3.snap"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
