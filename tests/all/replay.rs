//! Replay over the committed fixture store: clean diffs through every projector, a tampered
//! snapshot found at the right path, anchors, traps as findings, determinism across jobs.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tapedeck::replay::{Finding, Plugin, Point, ReplayOptions, ReplayReport, replay};
use tapedeck::report::{Timing, run_card, write_run_dir};
use tapedeck::store::{EventSource, FileStore, FileStoreOptions};
use tapedeck_dev::fixtures::{FixtureSpec, generate};
use tapedeck_test_guests as guests;

use super::{assert_same_run_dirs, fixtures, load, rt, tmp};

fn projectors() -> Vec<Plugin> {
    [guests::BOOK, guests::POSITIONS, guests::ORDERS]
        .into_iter()
        .map(|p| Plugin::new(load(p), String::new()))
        .collect()
}

fn run(store: &Path, plugins: &[Plugin], opts: &ReplayOptions) -> ReplayReport {
    replay(rt(), &FileStore::open(store).unwrap(), plugins, opts).unwrap()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_committed_fixtures_are_what_the_generator_makes() {
    let dir = tmp("regen");
    let mut store = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    generate(&mut store, &FixtureSpec::default()).unwrap();
    let meta: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("metadata.json")).unwrap()).unwrap();
    let files = meta["files"].as_array().unwrap();
    assert!(files.len() > 50);
    for f in files {
        let rel = f["file"].as_str().unwrap();
        let committed = std::fs::read(fixtures().join(rel)).unwrap();
        assert_eq!(
            committed.len() as u64,
            f["size_bytes"].as_u64().unwrap(),
            "{rel}: metadata size"
        );
        assert_eq!(
            std::fs::read(dir.join(rel)).unwrap(),
            committed,
            "{rel} differs from a fresh generation"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fixtures_replay_clean_through_every_projector() {
    let report = run(
        &fixtures(),
        &projectors(),
        &ReplayOptions {
            jobs: 2,
            ..Default::default()
        },
    );
    assert_eq!(report.streams.len(), 6);
    for s in &report.streams {
        assert_eq!(s.events, 600, "{}", s.stream);
        assert_eq!(s.snapshots_checked, 9, "{}", s.stream);
        assert_eq!(s.final_states.len(), 3);
    }
    assert!(
        report.is_clean(),
        "{:?}",
        report.findings().collect::<Vec<_>>()
    );
}

#[test]
fn a_tampered_snapshot_gives_exactly_one_finding_at_its_path() {
    let dir = tmp("tamper");
    copy_dir(&fixtures(), &dir);
    let snap = dir.join("snapshots/md%3Asim%3ASYM2/00000000000000000400.book.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&snap).unwrap()).unwrap();
    // Books are named by symbol, so the finding says which market moved.
    let cell = &mut v["state"]["books"]["SYM2"]["bids"][0][1];
    let was = cell.as_f64().unwrap();
    *cell = serde_json::json!(was + 1.0);
    std::fs::write(&snap, serde_json::to_vec_pretty(&v).unwrap()).unwrap();

    let report = run(&dir, &projectors(), &ReplayOptions::default());
    let findings: Vec<&Finding> = report.findings().collect();
    assert_eq!(findings.len(), 1, "{findings:?}");
    match findings[0] {
        Finding::StateMismatch {
            stream,
            seq,
            projector,
            path,
            expected,
            actual,
        } => {
            assert_eq!(
                (stream.as_str(), *seq, projector.as_str(), path.as_str()),
                ("md:sim:SYM2", 400, "book", ".books.SYM2.bids[0][1]")
            );
            assert_eq!(expected.as_f64(), Some(was + 1.0));
            assert_eq!(actual.as_f64(), Some(was));
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// Caught two bugs: instrument ids assigned in order of appearance (so an anchored replay
// numbered them differently), and serde_json's default float parser restoring an f64 an ulp
// off. See: `instrument_id`, and `float_roundtrip` in the workspace Cargo.toml.
#[test]
fn replay_starts_from_the_newest_snapshot_before_from_and_ends_the_same() {
    let plugins = projectors();
    let full = run(&fixtures(), &plugins, &ReplayOptions::default());
    let anchored = run(
        &fixtures(),
        &plugins,
        &ReplayOptions {
            from: Some(Point::Seq(450)),
            ..Default::default()
        },
    );
    for (a, f) in anchored.streams.iter().zip(&full.streams) {
        assert_eq!(a.anchor_seq, Some(400), "{}", a.stream);
        assert_eq!(a.start_seq, 401);
        assert_eq!(a.events, 200, "only events after the anchor are applied");
        for (name, state) in &f.final_states {
            let d = tapedeck::diff::diff(state, &a.final_states[name], &Default::default());
            assert!(
                d.is_empty(),
                "{} {name}:\n{}",
                a.stream,
                tapedeck::diff::render(&d)
            );
        }
    }
    assert!(anchored.is_clean());
    // Time travel: state at seq 200 is the stored one.
    let at200 = run(
        &fixtures(),
        &plugins,
        &ReplayOptions {
            streams: "exec:sim:SYM1".into(),
            to: Some(Point::Seq(200)),
            ..Default::default()
        },
    );
    let store = FileStore::open(fixtures()).unwrap();
    let stored = store.snapshots("exec:sim:SYM1").unwrap();
    let orders200 = stored
        .iter()
        .find(|s| s.seq == 200 && s.projector == "orders")
        .unwrap();
    assert_eq!(at200.streams[0].final_states["orders"], orders200.state);
}

#[test]
fn a_trapping_strategy_is_a_finding_and_the_projectors_go_on() {
    let mut plugins = projectors();
    plugins.push(Plugin::new(
        load(guests::MISBEHAVE),
        r#"{"mode":"panic","at_seq":300}"#,
    ));
    let report = run(
        &fixtures(),
        &plugins,
        &ReplayOptions {
            batch: 128,
            ..Default::default()
        },
    );
    assert_eq!(report.findings().count(), 6, "one trap per stream");
    for s in &report.streams {
        let Finding::GuestTrap {
            module,
            first_seq,
            last_seq,
            message,
            ..
        } = &s.findings[0]
        else {
            panic!("{:?}", s.findings)
        };
        assert_eq!(module, "misbehave");
        assert!(
            *first_seq <= 300 && 300 <= *last_seq,
            "{first_seq}..={last_seq}"
        );
        assert!(message.contains("panicked"), "{message}");
        assert_eq!(
            s.snapshots_checked, 9,
            "projectors checked every snapshot after the trap too"
        );
    }
}

#[test]
fn run_directories_are_identical_whatever_the_jobs() {
    let mut plugins = projectors();
    plugins.push(Plugin::new(load(guests::EMA_CROSS), String::new()));
    let dirs: Vec<PathBuf> = [1, 2]
        .into_iter()
        .map(|jobs| {
            let opts = ReplayOptions {
                jobs,
                ..Default::default()
            };
            let report = run(&fixtures(), &plugins, &opts);
            let out = tmp(&format!("jobs{jobs}"));
            let card = run_card("fixtures", &plugins, &opts, rt().config());
            write_run_dir(
                &out,
                &card,
                &report,
                &Timing {
                    started_at_unix_ms: jobs as u128,
                    elapsed_ms: jobs as u128 * 10,
                    jobs,
                },
            )
            .unwrap();
            out
        })
        .collect();
    assert_same_run_dirs(
        &dirs[0],
        &dirs[1],
        &["config.json", "findings.json", "report.md", "junit.xml"],
    );
    let junit = std::fs::read_to_string(dirs[0].join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 6);
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_time_start_resolves_to_the_first_event_at_or_after_it() {
    // exec streams have an event every 250 ms from 2024-01-02T00:00:00.25x; seq 401 is at 100.25 s.
    let plugins = projectors();
    let at = run(
        &fixtures(),
        &plugins,
        &ReplayOptions {
            streams: "exec:sim:SYM1".into(),
            from: Some("2024-01-02T00:01:40.2Z".parse().unwrap()),
            ..Default::default()
        },
    );
    let s = &at.streams[0];
    assert_eq!(
        s.anchor_seq,
        Some(400),
        "seq 401 is the first at or after the time; the anchor before it is 400"
    );
    assert_eq!(s.start_seq, 401);
}

/// A store that says which thread read its records, and fails after `fail_after` of them.
struct Watched<'a> {
    inner: &'a dyn EventSource,
    reader: std::sync::Mutex<Option<std::thread::ThreadId>>,
    fail_after: u64,
}

impl EventSource for Watched<'_> {
    fn streams(&self) -> tapedeck::error::Result<Vec<tapedeck::store::StreamInfo>> {
        self.inner.streams()
    }
    fn read(
        &self,
        stream: &str,
        range: tapedeck::store::SeqRange,
        f: &mut dyn FnMut(tapedeck::event::Envelope) -> tapedeck::error::Result<()>,
    ) -> tapedeck::error::Result<()> {
        self.inner.read(stream, range, f)
    }
    fn snapshots(
        &self,
        stream: &str,
    ) -> tapedeck::error::Result<Vec<tapedeck::store::StoredSnapshot>> {
        self.inner.snapshots(stream)
    }
    fn describe(&self) -> String {
        "watched".into()
    }
    fn read_records(
        &self,
        stream: &str,
        range: tapedeck::store::SeqRange,
        f: &mut tapedeck::store::RecordSink<'_>,
    ) -> tapedeck::error::Result<()> {
        *self.reader.lock().unwrap() = Some(std::thread::current().id());
        let mut n = 0;
        self.inner
            .read_records(stream, range, &mut |seq, time, record| {
                n += 1;
                if n > self.fail_after {
                    return Err(tapedeck::Error::BadEvent {
                        stream: stream.to_string(),
                        seq,
                        message: "the disk went away".into(),
                    });
                }
                f(seq, time, record)
            })
    }
}

/// Counts batches and says which thread ran them.
#[derive(Debug)]
struct Runner(u64, Option<std::thread::ThreadId>);

impl tapedeck::replay::BatchObserver for Runner {
    fn on_batch(&mut self, _: &[u8], _: &[Vec<tapedeck::decision::Decision>]) {
        self.0 += 1;
        self.1 = Some(std::thread::current().id());
    }
}

#[test]
fn records_are_read_ahead_on_another_thread_and_a_read_error_ends_the_run() {
    let store = FileStore::open(fixtures()).unwrap();
    let key = store.streams().unwrap()[0].key.clone();
    let only = [key.clone()];
    let watched = |fail_after| Watched {
        inner: &store,
        reader: Default::default(),
        fail_after,
    };
    // No stored snapshots to cut batches at: every 16 events.
    let opts = ReplayOptions {
        batch: 16,
        check_stored: false,
        ..Default::default()
    };
    let ema = [Plugin::new(load(guests::EMA_CROSS), "")];
    let w = watched(u64::MAX);
    let r = tapedeck::replay::replay_observed(rt(), &w, &ema, &opts, Some(&only), &|_, _| {
        Ok(Runner(0, None))
    })
    .unwrap();
    let (report, runner) = &r[0];
    assert!(
        report.events > 32 && runner.0 == report.events.div_ceil(16),
        "{}",
        runner.0
    );
    let reader = w.reader.lock().unwrap().unwrap();
    assert_ne!(
        Some(reader),
        runner.1,
        "the guests ran on the reader's thread"
    );
    // The same report as without the wrapper.
    let plain = replay(rt(), &store, &ema, &opts).unwrap();
    let plain = plain.streams.iter().find(|s| s.stream == key).unwrap();
    assert_eq!(
        (plain.events, &plain.output_counts, &plain.digest),
        (report.events, &report.output_counts, &report.digest)
    );
    // A read that fails after 40 records fails the run, naming stream and seq.
    let err =
        tapedeck::replay::replay_observed(rt(), &watched(40), &ema, &opts, Some(&only), &|_, _| {
            Ok(Runner(0, None))
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&key) && err.contains("the disk went away"),
        "{err}"
    );
}
