//! The house rules, checked over the source text: no import circle between the files of a crate,
//! and no file over 600 lines without its reason written at its top (a `//! Size:` line).
//!
//! An import is a `use` of, or a `crate::`/`super::` path into, another file's module, resolved
//! to the deepest module that is a file. A parent's `mod child;` and its re-exports of its own
//! children (`pub use child::Name`) are its table of contents, not imports; unit-test modules
//! are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &["harness/src", "cli/src", "dev/src", "sweep/src"];
const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, by module path (`["store", "file"]`; the crate root is `[]`).
fn modules(dir: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<Vec<String>, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(base).unwrap().with_extension("");
                let mut path: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    path.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    path.pop();
                }
                out.insert(path, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |s| format!("{prefix}{s}")))
        .collect()
}

/// The module paths one file imports from its own crate.
fn imports(
    module: &[String],
    is_dir_module: bool,
    text: &str,
    known: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeSet<Vec<String>> {
    // Unit tests (`#[cfg(test)] mod tests` at the end of a file) may reach anywhere.
    let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or(text);
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths: Vec<(String, bool)> = Vec::new();
    // `use` statements, possibly over several lines.
    let mut rest = code.as_str();
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let lead = before[line_start..].trim();
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        if lead.is_empty() || lead.starts_with("pub") {
            let reexport = lead.starts_with("pub");
            for p in expand(&rest[i + 4..end]) {
                let p = p.split(" as ").next().unwrap().trim().to_string();
                paths.push((p, reexport));
            }
        }
        rest = &rest[end.min(rest.len() - 1) + 1..];
    }
    // Inline paths in code.
    for (i, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if i > 0 && {
            let c = code.as_bytes()[i - 1];
            c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'$'
        } {
            continue;
        }
        let p: String = code[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push((p, false));
    }
    // `mod.rs` is its own module; `super` is its parent.
    let here: Vec<String> = module.to_vec();
    let parent: Vec<String> = if is_dir_module || module.is_empty() {
        module[..module.len().saturating_sub(1)].to_vec()
    } else {
        module[..module.len() - 1].to_vec()
    };
    let own_dir: Vec<String> = if is_dir_module {
        here.clone()
    } else {
        parent.clone()
    };
    let mut out = BTreeSet::new();
    for (p, reexport) in paths {
        let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
        let (mut base, tail) = match segs.first() {
            Some(&"crate") => (Vec::new(), &segs[1..]),
            Some(&"super") => (parent.clone(), &segs[1..]),
            Some(&"self") => (here.clone(), &segs[1..]),
            // A child module of a `mod.rs`/crate root, named directly (`use file::FileStore`).
            Some(first) if is_dir_module || module.is_empty() => {
                let mut child = own_dir.clone();
                child.push(first.to_string());
                if !known.contains_key(&child) {
                    continue;
                }
                (own_dir.clone(), &segs[..])
            }
            _ => continue,
        };
        let mut target = base.clone();
        for s in tail {
            base.push(s.to_string());
            if known.contains_key(&base) {
                target = base.clone();
            } else {
                break;
            }
        }
        let child_of_self = target.len() == own_dir.len() + 1 && target.starts_with(&own_dir);
        if reexport && child_of_self && (is_dir_module || module.is_empty()) {
            continue;
        }
        if target != here && known.contains_key(&target) {
            out.insert(target);
        }
    }
    out
}

fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    fn dfs(
        n: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        found: &mut Vec<Vec<Vec<String>>>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => dfs(m, g, state, stack, found),
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    found.push(c);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for n in graph.keys() {
        if !state.contains_key(n) {
            dfs(n, graph, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn graph_of(dir: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known = modules(dir);
    known
        .iter()
        .map(|(m, p)| {
            let text = std::fs::read_to_string(p).unwrap();
            let dir_module = p
                .file_stem()
                .is_some_and(|s| s == "mod" || s == "lib" || s == "main");
            (m.clone(), imports(m, dir_module, &text, &known))
        })
        .collect()
}

#[test]
fn no_import_circles_between_the_files_of_a_crate() {
    let mut report = Vec::new();
    for c in CRATES {
        let g = graph_of(&root().join(c));
        for cycle in cycles(&g) {
            let names: Vec<String> = cycle
                .iter()
                .map(|m| format!("{c}::{}", m.join("::")))
                .collect();
            report.push(names.join(" -> "));
        }
    }
    assert!(report.is_empty(), "import circles:\n{}", report.join("\n"));
}

#[test]
fn the_circle_check_sees_a_circle() {
    // A three-file crate where a -> b -> a, through `use` and an inline path.
    let dir = super::tmp("circle");
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::{x::Y, Z};\n").unwrap();
    std::fs::write(dir.join("b/mod.rs"), "pub mod x;\npub use x::Y;\n").unwrap();
    std::fs::write(dir.join("b/x.rs"), "fn f() { crate::a::g(); }\n").unwrap();
    let found = cycles(&graph_of(&dir));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&vec!["a".to_string()]));
    // The parent's re-export of its child is not an import: no circle b <-> b::x.
    assert!(!found[0].contains(&vec!["b".to_string()]), "{found:?}");
}

#[test]
fn files_over_600_lines_say_why() {
    let mut long = Vec::new();
    for c in CRATES {
        for p in modules(&root().join(c)).values() {
            let text = std::fs::read_to_string(p).unwrap();
            let n = text.lines().count();
            let reason = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.starts_with("//! Size:"));
            if n > MAX_LINES && !reason {
                long.push(format!("{} ({n} lines)", p.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these along their seams, or say why at the top (`//! Size: ...`):\n{}",
        long.join("\n")
    );
}
