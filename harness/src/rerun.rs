//! Rerun: the run card of a run directory (`config.json`) run again into a new directory,
//! and the two directories compared.
//!
//! - The card says what ran: a backtest (venue and statistics), a regression (venue and
//!   `--fail-on` rules) or a replay. Each module is loaded from the card's `path` and must
//!   have the card's hash; the store is opened as the card names it (a file store's path
//!   relative to the current directory, a database without its password).
//! - Two run directories are identical when they hold the same files with the same content,
//!   apart from the wall clock (`summary.json`'s `timing`). [`first_difference`] names the
//!   first file that differs, in file-name order (`config.json` first, whose `data` pins what
//!   each stream gave), and within a JSON file the first differing field, array elements
//!   that are a stream's named by the stream.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backtest::backtest;
use crate::error::{Error, Result};
use crate::regress::{regress, verdict};
use crate::replay::{Plugin, ReplayOptions, replay};
use crate::report::backtest::write_backtest_dir;
use crate::report::{
    RunCard, Stopwatch, backtest_card, regress_card, run_card, write_regress_dir, write_run_dir,
};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::StoreUri;

/// What a card ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Replay,
    Regress,
    Backtest,
}

impl RunKind {
    pub fn of(card: &RunCard) -> RunKind {
        match (&card.venue, &card.stats, &card.fail_on) {
            (Some(_), Some(_), _) => RunKind::Backtest,
            (_, _, Some(_)) => RunKind::Regress,
            _ => RunKind::Replay,
        }
    }
}

/// Reads `dir/config.json`.
pub fn read_card(dir: &Path) -> Result<RunCard> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
        path: path.clone(),
        line: e.line() as u64,
        message: format!("not a run card: {e}"),
    })
}

fn rerun_error(message: String) -> Error {
    Error::engine("rerun", message)
}

/// Runs `card` again with `jobs` streams at once and writes the run directory `out`.
pub fn rerun(card: &RunCard, out: &Path, jobs: usize) -> Result<RunKind> {
    let clock = Stopwatch::start();
    let kind = RunKind::of(card);
    if let Some(s) = &card.shard {
        return Err(rerun_error(format!(
            "the card is shard {}/{}'s, a partial run: rerun the merged run directory (`tapedeck merge`)",
            s.index, s.count
        )));
    }
    let uri: StoreUri = card
        .store
        .parse()
        .map_err(|e| rerun_error(format!("the card's store {:?}: {e}", card.store)))?;
    let store = uri.open()?;
    let default = RuntimeConfig::default();
    let rt = Runtime::new(RuntimeConfig {
        memory_limit: card.runtime.memory_limit,
        fuel_per_event: card.runtime.fuel_per_event,
        fuel_per_call: card.runtime.fuel_per_call,
        fuel: card.runtime.fuel,
        max_instances: default
            .max_instances
            .max((jobs.max(1) * card.modules.len() + 4).min(100_000) as u32),
        ..default
    })?;
    let mut plugins = Vec::new();
    for m in &card.modules {
        if m.path.is_empty() {
            return Err(rerun_error(format!(
                "the card does not say where module {} was loaded from (made before `rerun` existed): run it again by hand",
                m.name
            )));
        }
        let module = rt.load(Path::new(&m.path))?;
        if module.hash().hex() != m.sha256 {
            return Err(rerun_error(format!(
                "{} is not the module the run used: its sha256 is {}, the card's {}",
                m.path,
                module.hash().hex(),
                m.sha256
            )));
        }
        if module.kind() != m.kind {
            return Err(rerun_error(format!(
                "{} is a {}, the card says {}",
                m.path,
                module.kind().as_str(),
                m.kind.as_str()
            )));
        }
        plugins.push(Plugin::new(module, m.config.clone()));
    }
    let opts = ReplayOptions {
        streams: card.streams.clone(),
        from: card.from,
        to: card.to,
        jobs: jobs.max(1),
        batch: card.batch,
        tolerances: card.tolerances.clone(),
        keep_outputs: false,
        progress: None,
        check_stored: true,
        shard: None,
        cold_start: None,
    };
    let desc = store.describe();
    let wrong_modules = |n: usize| {
        rerun_error(format!(
            "a {kind:?} card with {} modules (want {n})",
            card.modules.len()
        ))
    };
    match kind {
        RunKind::Backtest => {
            let [p] = &plugins[..] else {
                return Err(wrong_modules(1));
            };
            let (venue, stats) = (
                card.venue.as_ref().expect("kind"),
                card.stats.expect("kind"),
            );
            let r = backtest(&rt, store.as_ref(), p, &opts, venue, &stats, Some(out))?;
            let new = backtest_card(&desc, p, &opts, rt.config(), venue, &stats)
                .pin_data(r.streams.iter().map(|s| s.data.clone()).collect());
            write_backtest_dir(out, &new, &r, &clock.timing(opts.jobs))?;
        }
        RunKind::Regress => {
            let [b, c] = &plugins[..] else {
                return Err(wrong_modules(2));
            };
            let venue = card.venue.clone().unwrap_or_default();
            let rules = card.fail_on.clone().unwrap_or_default();
            let r = regress(&rt, store.as_ref(), b, c, &opts, &venue)?;
            let v = verdict(&rules, &r);
            let new = regress_card(&desc, b, c, &opts, rt.config(), &venue, &rules)
                .pin_data(r.streams.iter().map(|s| s.data.clone()).collect());
            write_regress_dir(out, &new, &r, &v, &clock.timing(opts.jobs))?;
        }
        RunKind::Replay => {
            let r = replay(&rt, store.as_ref(), &plugins, &opts)?;
            let new = run_card(&desc, &plugins, &opts, rt.config())
                .pin_data(r.streams.iter().map(|s| s.pin()).collect());
            write_run_dir(out, &new, &r, &clock.timing(opts.jobs))?;
        }
    }
    Ok(kind)
}

/// Where two run directories first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub file: String,
    /// The field (JSON), or the byte offset; empty when the file is in one directory only.
    pub at: String,
    pub old: String,
    pub new: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(
                f,
                "{}: {} in the old run, {} in the new",
                self.file, self.old, self.new
            )
        } else {
            write!(
                f,
                "{}: {}: {} -> {}",
                self.file, self.at, self.old, self.new
            )
        }
    }
}

fn files(dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.path().is_file() {
            v.push(name);
        }
    }
    v.sort();
    Ok(v)
}

/// The first difference between run directories `old` and `new` (see the module doc), or
/// `None` when they are identical apart from the wall clock.
pub fn first_difference(old: &Path, new: &Path) -> Result<Option<Difference>> {
    let (a, b) = (files(old)?, files(new)?);
    let mut names: Vec<&String> = a.iter().chain(&b).collect();
    names.sort();
    names.dedup();
    for name in names {
        let presence = |v: &[String]| {
            if v.contains(name) {
                "present"
            } else {
                "absent"
            }
        };
        if !(a.contains(name) && b.contains(name)) {
            return Ok(Some(Difference {
                file: name.clone(),
                at: String::new(),
                old: presence(&a).into(),
                new: presence(&b).into(),
            }));
        }
        let read = |d: &Path| -> Result<Vec<u8>> {
            let p: PathBuf = d.join(name);
            std::fs::read(&p).map_err(|e| Error::io(&p, e))
        };
        let (x, y) = (read(old)?, read(new)?);
        if name.ends_with(".json") {
            let parse = |bytes: &[u8], d: &Path| -> Result<Value> {
                let mut v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
                    path: d.join(name),
                    line: e.line() as u64,
                    message: e.to_string(),
                })?;
                if name == "summary.json"
                    && let Some(o) = v.as_object_mut()
                {
                    o.remove("timing");
                }
                Ok(v)
            };
            if let Some((at, o, n)) = json_difference("", &parse(&x, old)?, &parse(&y, new)?) {
                return Ok(Some(Difference {
                    file: name.clone(),
                    at,
                    old: o,
                    new: n,
                }));
            }
        } else if x != y {
            let at = x
                .iter()
                .zip(&y)
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            return Ok(Some(Difference {
                file: name.clone(),
                at: format!("byte {at}"),
                old: format!("{} bytes", x.len()),
                new: format!("{} bytes", y.len()),
            }));
        }
    }
    Ok(None)
}

/// The first differing field under `at`, keys in order, array elements by index or, for a
/// stream's element (an object with a `stream` string), by `[stream=KEY]`.
fn json_difference(at: &str, a: &Value, b: &Value) -> Option<(String, String, String)> {
    let short = |v: Option<&Value>| {
        let s = v.map_or_else(|| "absent".to_string(), Value::to_string);
        if s.len() > 120 {
            format!("{}...", &s[..s.floor_char_boundary(117)])
        } else {
            s
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = format!("{at}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = json_difference(&path, p, q) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some((path, short(p), short(q))),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let (p, q) = (x.get(i), y.get(i));
                let label = p
                    .or(q)
                    .and_then(|v| v.get("stream"))
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("[{i}]"), |s| format!("[stream={s}]"));
                let path = format!("{at}{label}");
                match (p, q) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = json_difference(&path, p, q) {
                            return Some(d);
                        }
                    }
                    _ => return Some((path, short(p), short(q))),
                }
            }
            None
        }
        _ => (a != b).then(|| (at.to_string(), short(Some(a)), short(Some(b)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_differences_name_the_field_and_the_stream() {
        let a = json!({"data": [{"stream": "md:a", "sha256": "x"}, {"stream": "md:b", "sha256": "y"}], "z": 1});
        let b = json!({"data": [{"stream": "md:a", "sha256": "x"}, {"stream": "md:b", "sha256": "w"}], "z": 2});
        assert_eq!(
            json_difference("", &a, &b),
            Some((
                ".data[stream=md:b].sha256".into(),
                "\"y\"".into(),
                "\"w\"".into()
            ))
        );
        assert_eq!(json_difference("", &a, &a), None);
        assert_eq!(
            json_difference("", &json!({"v": [1, 2]}), &json!({"v": [1]})),
            Some((".v[1]".into(), "2".into(), "absent".into()))
        );
    }
}
