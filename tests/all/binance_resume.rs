//! An import split anywhere equals one whole import: the Binance importer's sync state
//! (buffered diffs, last update id, synced or not, how far each stream was read) lives in the
//! store, so a later import of the same or a longer capture continues exactly where the
//! earlier one stopped. Checked on the file store (a property over split points of the real
//! capture) and on PostgreSQL (the reproductions), through the `Store` seam only.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tapedeck::event::Body;
use tapedeck::import::binance::{ImportSummary, Importer};
use tapedeck::store::{EventSource, FileStore, FileStoreOptions, PgStore, SeqRange, Store};

use super::binance::{capture, capture_lines, write_lines};
use super::tmp;

const MD: &str = "md:binance-spot:BTCUSDT";

/// One stored event as the comparison sees it: seq, event time, ingest time, body.
type Ev = (u64, i64, i64, String);

fn import_into(store: &mut dyn Store, files: &[&Path]) -> ImportSummary {
    let mut imp = Importer::new(store, None, None);
    for f in files {
        imp.import_file(f).unwrap();
    }
    imp.finish().unwrap()
}

/// Every stream of `store` with its events.
fn contents(store: &dyn EventSource) -> BTreeMap<String, Vec<Ev>> {
    let mut all = BTreeMap::new();
    for s in store.streams().unwrap() {
        let mut evs = Vec::new();
        store
            .read(&s.key, SeqRange::ALL, &mut |e| {
                let body = serde_json::to_string(&e.body).unwrap();
                evs.push((e.seq, e.occurred_at, e.ingested_at, body));
                Ok(())
            })
            .unwrap();
        all.insert(s.key, evs);
    }
    all
}

/// The market-data streams equal event for event (seqs, times, payloads); the importer's own
/// streams (`import:`, one checkpoint per import) end on the same state.
fn assert_same_import(
    split: &BTreeMap<String, Vec<Ev>>,
    whole: &BTreeMap<String, Vec<Ev>>,
    what: &str,
) {
    assert_eq!(
        split.keys().collect::<Vec<_>>(),
        whole.keys().collect::<Vec<_>>(),
        "{what}: streams"
    );
    for (key, evs) in whole {
        if key.starts_with("import:") {
            let last = |v: &[Ev]| v.last().map(|(_, t, i, b)| (*t, *i, b.clone()));
            assert_eq!(last(&split[key]), last(evs), "{what}: final state of {key}");
        } else {
            assert_eq!(
                split[key].len(),
                evs.len(),
                "{what}: number of events in {key}"
            );
            if let Some(i) = (0..evs.len()).find(|&i| split[key][i] != evs[i]) {
                panic!(
                    "{what}: {key} differs first at index {i}:\n split {:?}\n whole {:?}",
                    split[key][i], evs[i]
                );
            }
        }
    }
}

fn count(evs: &[Ev], event_type: &str) -> usize {
    let tag = format!("\"event_type\":\"{event_type}\"");
    evs.iter().filter(|e| e.3.contains(&tag)).count()
}

/// Imports each of `prefixes` (line counts of `lines`, in order) and then all of `lines` into
/// `store`; returns the last import's summary.
fn import_in_steps(
    store: &mut dyn Store,
    src: &Path,
    lines: &[String],
    prefixes: &[usize],
) -> ImportSummary {
    for (i, &k) in prefixes.iter().enumerate() {
        let part = src.join(format!("part{i}-{k}.jsonl"));
        write_lines(&part, &lines[..k]);
        import_into(store, &[&part]);
    }
    let whole = src.join("whole.jsonl");
    write_lines(&whole, lines);
    import_into(store, &[&whole])
}

fn file_store(dir: &Path) -> FileStore {
    FileStore::create(dir, FileStoreOptions::default()).unwrap()
}

/// The capture with its straddling diff (line 6, `U` 50093239208 to `u` 50093239224, the one
/// the REST snapshot of line 8 needs next) moved to just after the snapshot: a capture whose
/// snapshot comes before its first applicable diff, as most do.
fn snapshot_first(lines: &[String]) -> Vec<String> {
    let mut out = lines.to_vec();
    assert!(out[5].contains("\"U\":50093239208"), "{}", out[5]);
    assert!(out[7].contains("lastUpdateId"), "{}", out[7]);
    let diff = out.remove(5);
    let snap_ts: i64 = out[6].split_once(' ').unwrap().0.parse().unwrap();
    let json = diff.split_once(' ').unwrap().1;
    out.insert(7, format!("{} {json}", snap_ts + 1));
    out
}

struct Case {
    name: &'static str,
    lines: Vec<String>,
    prefixes: Vec<usize>,
}

fn reproductions(capture: &Path) -> Vec<Case> {
    let lines = capture_lines(capture);
    vec![
        // See: issue 11 item 3 (7 lines, before the REST snapshot, then the whole capture:
        // 0 book_delta events instead of 3,449).
        Case {
            name: "seven-then-whole",
            prefixes: vec![7],
            lines: lines.clone(),
        },
        // See: issue 11 item 3 (a split between the snapshot and the first straddling diff:
        // a spurious gap, then no deltas).
        Case {
            name: "snapshot-then-straddling-diff",
            prefixes: vec![7],
            lines: snapshot_first(&lines),
        },
    ]
}

/// Runs each reproduction into fresh stores from `open` and checks it against one whole
/// import into another.
fn check_reproductions(capture: &Path, kind: &str, open: &mut dyn FnMut(&str) -> Box<dyn Store>) {
    for case in reproductions(capture) {
        let src = tmp(&format!("src-{kind}-{}", case.name));
        std::fs::create_dir_all(&src).unwrap();
        let mut whole = open(&format!("{}-whole", case.name));
        let w = import_in_steps(whole.as_mut(), &src, &case.lines, &[]);
        assert!(w.gaps.is_empty(), "{}: {:?}", case.name, w.gaps);
        let mut split = open(&format!("{}-split", case.name));
        let s = import_in_steps(split.as_mut(), &src, &case.lines, &case.prefixes);
        assert!(
            s.gaps.is_empty(),
            "{}: spurious gap {:?}",
            case.name,
            s.gaps
        );
        let (split, whole) = (contents(split.as_ref()), contents(whole.as_ref()));
        assert_eq!(count(&whole[MD], "book_delta"), 3449, "{}", case.name);
        assert_eq!(count(&split[MD], "book_delta"), 3449, "{}", case.name);
        assert_same_import(&split, &whole, case.name);
        std::fs::remove_dir_all(src).unwrap();
    }
}

#[test]
fn import_resume_loses_the_book_not_on_the_file_store() {
    let Some(capture) = capture() else { return };
    let mut dirs = Vec::new();
    check_reproductions(&capture, "file", &mut |name| {
        let d = tmp(name);
        dirs.push(d.clone());
        Box::new(file_store(&d))
    });
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn import_resume_loses_the_book_not_on_postgres() {
    let Some(capture) = capture() else { return };
    check_reproductions(&capture, "pg", &mut |name| {
        let url = super::postgres::db(&format!("resume_{}", name.replace('-', "_")));
        Box::new(PgStore::connect(&url).unwrap())
    });
}

/// The first `PREFIX` lines of the capture: the REST snapshot, ~1,000 diffs, tickers and
/// trades, and eight flushes' worth of none (the importer appends every 8,192 events).
const PREFIX: usize = 3_000;

/// What one whole import of the prefix stores (computed once per test process).
fn whole_prefix(capture: &Path) -> &'static BTreeMap<String, Vec<Ev>> {
    static WHOLE: std::sync::OnceLock<BTreeMap<String, Vec<Ev>>> = std::sync::OnceLock::new();
    WHOLE.get_or_init(|| {
        let lines = capture_lines(capture);
        let src = tmp("prop-whole-src");
        std::fs::create_dir_all(&src).unwrap();
        let dir = tmp("prop-whole");
        let mut store = file_store(&dir);
        import_in_steps(&mut store, &src, &lines[..PREFIX], &[]);
        let c = contents(&store);
        for d in [src, dir] {
            std::fs::remove_dir_all(d).unwrap();
        }
        c
    })
}

fn split_points() -> impl Strategy<Value = Vec<usize>> {
    // Mostly around the snapshot (line 8) and its straddling diff, the rest anywhere.
    let point = prop_oneof![0usize..16, 0usize..=PREFIX];
    proptest::collection::vec(point, 1..=3).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

/// Importing `lines[..k]` (for each split point k, in order) and then the whole prefix stores
/// exactly what one whole import does.
#[test]
fn an_import_split_at_any_line_equals_one_whole_import() {
    let Some(capture) = capture() else { return };
    let whole = whole_prefix(&capture);
    let lines = capture_lines(&capture);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let result = TestRunner::new(config).run(&split_points(), |splits| {
        let name = splits
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-");
        let src = tmp(&format!("prop-src-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        let dir = tmp(&format!("prop-{name}"));
        let mut store = file_store(&dir);
        let s = import_in_steps(&mut store, &src, &lines[..PREFIX], &splits);
        prop_assert!(s.gaps.is_empty(), "{:?}", s.gaps);
        assert_same_import(&contents(&store), whole, &format!("split at {splits:?}"));
        for d in [src, dir] {
            std::fs::remove_dir_all(d).unwrap();
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The state stream holds what a person debugging a resume needs, typed and small once in
/// sync: a checkpoint per import that read lines of the stream.
#[test]
fn the_import_state_is_a_custom_event_in_a_stream_of_its_own() {
    let Some(capture) = capture() else { return };
    let lines = capture_lines(&capture);
    let src = tmp("state-src");
    std::fs::create_dir_all(&src).unwrap();
    let dir = tmp("state");
    let mut store = file_store(&dir);
    import_in_steps(&mut store, &src, &lines[..PREFIX], &[7]);
    let c = contents(&store);
    let states = &c["import:binance-spot:BTCUSDT"];
    assert_eq!(states.len(), 2, "one checkpoint per import");
    let state = |e: &Ev| -> serde_json::Value {
        let body: Body = serde_json::from_str(&e.3).unwrap();
        match body {
            Body::Custom { type_name, data } => {
                assert_eq!(type_name, "import_state");
                data
            }
            other => panic!("{other:?}"),
        }
    };
    let first = state(&states[0]);
    assert_eq!(first["synced"], false, "{first}");
    assert_eq!(first["pending"].as_array().unwrap().len(), 3, "{first}");
    let last = state(&states[1]);
    assert_eq!(last["synced"], true, "{last}");
    assert_eq!(last["pending"].as_array().unwrap().len(), 0, "{last}");
    let ts = |l: &str| l.split_once(' ').unwrap().0.parse::<i64>().unwrap();
    assert_eq!(
        states[1].2,
        ts(&lines[PREFIX - 1]),
        "stamped with the last line read"
    );
    for d in [src, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `tapedeck import binance CAPTURE --store DIR` as a command line.
fn import_command(capture: &Path, store: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tapedeck"));
    c.args(["import", "binance"])
        .arg(capture)
        .arg("--store")
        .arg(store)
        .env(
            "TAPEDECK_CACHE_DIR",
            std::env::temp_dir().join("tapedeck-cli-cache"),
        );
    c
}

#[test]
fn an_import_killed_with_sigkill_and_rerun_equals_the_clean_import() {
    let Some(capture) = capture() else { return };
    let dir = tmp("sigkill");
    let clean = dir.join("clean");
    let started = std::time::Instant::now();
    let o = import_command(&capture, &clean).output().unwrap();
    let took = started.elapsed();
    let clean_code = o.status.code();
    assert!(
        matches!(clean_code, Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let whole = contents(&FileStore::open(&clean).unwrap());
    let total = whole.values().map(|v| v.len() as u64).sum::<u64>();
    let mut partial = 0;
    // Kill points spread over the clean import's duration (from the store's creation to its
    // last appends); each killed import is then run again to the end.
    for (i, frac) in [0.02, 0.15, 0.35, 0.55, 0.75, 0.95].into_iter().enumerate() {
        let store = dir.join(format!("killed-{i}"));
        let mut child = import_command(&capture, &store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took.mul_f64(frac));
        child.kill().unwrap(); // SIGKILL
        let killed = child.wait().unwrap();
        if let Ok(s) = FileStore::open(&store) {
            let n: u64 = s.streams().unwrap().iter().map(|s| s.events()).sum();
            partial += usize::from(n > 0 && n < total);
        }
        let o = import_command(&capture, &store).output().unwrap();
        let what = format!("killed at {:.0}% ({killed})", frac * 100.0);
        assert_eq!(
            o.status.code(),
            clean_code,
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_import(&contents(&FileStore::open(&store).unwrap()), &whole, &what);
    }
    assert!(partial >= 2, "only {partial} kills landed mid-import");
    std::fs::remove_dir_all(&dir).unwrap();
}
