//! Snapshot files named by the rule before [`names::file_name`], which wrote every character
//! outside `[A-Za-z0-9_-]` of a stream key as `-` and so gave `md:a:B` and `md/a/B` one file.
//! The old rule is not invertible: an old name is matched to a stream either by the header of
//! the file (a check looks for the old name of one (projector, stream, seq) and takes the file
//! only if its `expression` names exactly that), or by applying the rule to every stream a
//! store holds ([`rename_legacy`], which refuses a name two streams share). Nothing here
//! overwrites a file.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Taken, expression_of};
use crate::error::{Error, Result};
use crate::names;

/// The name [`snapshot_name`](super::snapshot_name) gave before, with the stream by [`names::legacy_name`] (every
/// unusual character as `-`). Only for finding and renaming old files: two streams can share
/// it.
pub fn legacy_snapshot_name(projector: &str, stream: &str, seq: u64) -> String {
    format!(
        "{}__{}@{seq}",
        names::file_name(projector),
        names::legacy_name(stream)
    )
}

/// The old-named `.snap` of `t` in `dir`, if there is one and its header says it is the
/// snapshot of this very (projector, stream, seq): an old name may belong to another stream.
pub(super) fn legacy_file(
    dir: &Path,
    projector: &str,
    t: &Taken,
    expression: &str,
) -> Option<String> {
    let old = legacy_snapshot_name(projector, &t.stream, t.seq);
    if old == t.name {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(format!("{old}.snap"))).ok()?;
    (expression_of(&text).as_deref() == Some(expression)).then_some(old)
}

/// What [`rename_legacy`] found and did in a directory of `.snap` (and `.snap.new`) files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Renames {
    /// Renamed (or, in a dry run, to rename): (old file, new file).
    pub renamed: Vec<(String, String)>,
    /// Old names several streams map to, left alone: (file, the streams).
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// Left alone because the new name is taken: (old file, new file).
    pub blocked: Vec<(String, String)>,
    /// Already under the name of one of the streams.
    pub current: usize,
    /// `.snap` files that are no name of any of the streams (other streams, other projectors).
    pub unknown: Vec<String>,
}

impl Renames {
    /// Nothing refused.
    pub fn is_clean(&self) -> bool {
        self.ambiguous.is_empty() && self.blocked.is_empty()
    }
}

/// Renames the `.snap` and `.snap.new` files of `dir` that are named by the old rule
/// ([`legacy_snapshot_name`]) to [`snapshot_name`](super::snapshot_name)s. The old rule is not invertible, so a file
/// is mapped to a stream by applying it to each of `streams` (the keys a store holds): a file
/// exactly one stream maps to is renamed; one that two or more map to is refused and reported
/// (see its header's `expression` to tell which it is, and rename it by hand). With
/// `projector`, only that projector's files are considered. Nothing is overwritten. With
/// `dry_run`, reports what it would do.
pub fn rename_legacy(
    dir: &Path,
    streams: &[String],
    projector: Option<&str>,
    dry_run: bool,
) -> Result<Renames> {
    let mut by_legacy: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for s in streams {
        by_legacy
            .entry(names::legacy_name(s))
            .or_default()
            .push(s.as_str());
    }
    let current_names: Vec<String> = streams.iter().map(|s| names::file_name(s)).collect();
    let projector = projector.map(names::file_name);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".snap") || n.ends_with(".snap.new"))
        .collect();
    files.sort();
    let mut out = Renames::default();
    for file in files {
        let (stem, ext) = match file.strip_suffix(".snap.new") {
            Some(stem) => (stem, ".snap.new"),
            None => (file.strip_suffix(".snap").unwrap_or(&file), ".snap"),
        };
        // `<projector>__<stream>@<seq>`: the stream part has no `@` in either rule.
        let Some((head, seq)) = stem
            .rsplit_once('@')
            .filter(|(_, q)| !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()))
        else {
            out.unknown.push(file);
            continue;
        };
        // The projector part of `head` if it ends with `__<stream part>`.
        let projector_of = |stream_part: &str| {
            head.strip_suffix(stream_part)
                .and_then(|p| p.strip_suffix("__"))
                .filter(|p| !p.is_empty() && projector.as_deref().is_none_or(|want| want == *p))
        };
        // Every stream whose old name this can be.
        let mut candidates: Vec<(&str, &str)> = Vec::new();
        for (legacy, keys) in &by_legacy {
            if let Some(p) = projector_of(legacy) {
                candidates.extend(keys.iter().map(|k| (p, *k)));
            }
        }
        match candidates.as_slice() {
            [] => {
                if current_names.iter().any(|n| projector_of(n).is_some()) {
                    out.current += 1;
                } else {
                    out.unknown.push(file);
                }
            }
            [(p, key)] => {
                let new = format!("{p}__{}@{seq}{ext}", names::file_name(key));
                if new == file {
                    out.current += 1;
                } else if dir.join(&new).exists() {
                    out.blocked.push((file, new));
                } else {
                    if !dry_run {
                        let from = dir.join(&file);
                        std::fs::rename(&from, dir.join(&new)).map_err(|e| Error::io(&from, e))?;
                    }
                    out.renamed.push((file, new));
                }
            }
            many => {
                let mut keys: Vec<String> = many.iter().map(|(_, k)| k.to_string()).collect();
                keys.sort();
                out.ambiguous.push((file, keys));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::files;
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tapedeck-legacy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rename_legacy_renames_what_one_stream_maps_to_and_refuses_the_rest() {
        let dir = tmp("rename");
        let touch = |n: &str| std::fs::write(dir.join(n), "x").unwrap();
        touch("p__md-a-B@1.snap"); // md:a:B or md/a/B: refused
        touch("p__md-sim-X@2.snap"); // md:sim:X
        touch("p__md-sim-X@2.snap.new");
        touch("q__md-sim-X@2.snap"); // another projector
        touch("p__md-sim-Y@2.snap"); // md:sim:Y, but its new name exists
        touch("p__md%3Asim%3AY@2.snap");
        touch("p__plain@5.snap"); // `plain` is its own old and new name
        touch("p__gone-stream@1.snap");
        touch("notes.txt");
        let streams: Vec<String> = ["md:a:B", "md/a/B", "md:sim:X", "md:sim:Y", "plain"]
            .map(String::from)
            .to_vec();
        let dry = rename_legacy(&dir, &streams, Some("p"), true).unwrap();
        let before = files(&dir);
        let out = rename_legacy(&dir, &streams, Some("p"), false).unwrap();
        assert_eq!(dry, out);
        assert_eq!(
            out.renamed,
            [
                ("p__md-sim-X@2.snap".into(), "p__md%3Asim%3AX@2.snap".into()),
                (
                    "p__md-sim-X@2.snap.new".into(),
                    "p__md%3Asim%3AX@2.snap.new".into()
                ),
            ]
        );
        assert_eq!(
            out.ambiguous,
            [(
                "p__md-a-B@1.snap".into(),
                vec!["md/a/B".to_string(), "md:a:B".to_string()]
            )]
        );
        assert_eq!(
            out.blocked,
            [("p__md-sim-Y@2.snap".into(), "p__md%3Asim%3AY@2.snap".into())]
        );
        assert_eq!(out.current, 2, "p__md%3Asim%3AY@2 and p__plain@5");
        assert_eq!(out.unknown, ["p__gone-stream@1.snap", "q__md-sim-X@2.snap"]);
        assert!(!out.is_clean());
        assert_ne!(before, files(&dir));
        assert!(
            dir.join("p__md%3Asim%3AX@2.snap").exists() && dir.join("q__md-sim-X@2.snap").exists()
        );
        // Without a projector, every projector's files.
        let out = rename_legacy(&dir, &streams, None, false).unwrap();
        assert_eq!(
            out.renamed,
            [("q__md-sim-X@2.snap".into(), "q__md%3Asim%3AX@2.snap".into())]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
