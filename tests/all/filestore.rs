//! The embedded file store under concurrent writers, crashes and damaged derived files, through
//! the `tapedeck` binary (real processes): writer exclusion with `--lock-timeout`, readers that
//! skip a write in flight, ingest time going back across a UTC day, an index or snapshot folder
//! that is damaged, and `tapedeck fsck`.
//!
//! See: issue 11 ("Nothing lost"), items 1, 2 and 4.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tapedeck::event::{Body, Envelope};
use tapedeck::store::{EventSink, EventSource, FileStore, FileStoreOptions, SeqRange, index};

use super::{fixtures_uri, tapedeck, tmp};

const DAY: i64 = 86_400_000_000_000;
/// 2024-08-08T00:00:00Z.
const T0: i64 = 1_723_075_200_000_000_000;

fn ev(stream: &str, seq: u64, ingested_at: i64) -> Envelope {
    let mut e = Envelope::new(
        stream,
        seq,
        ingested_at,
        Some("X"),
        Body::OrderCancelled {
            client_order_id: seq,
        },
    );
    e.ingested_at = ingested_at;
    e
}

fn write_envelopes(path: &Path, events: &[Envelope]) {
    let mut f = std::fs::File::create(path).unwrap();
    for e in events {
        writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
    }
}

/// A Binance trade capture of `n` lines (plain text, `<local_ns> <json>`).
fn trade_capture(path: &Path, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 1..=n {
        let ms = 1_723_161_255_000 + i as i64;
        writeln!(
            f,
            r#"{} {{"e":"trade","E":{ms},"T":{ms},"s":"BTCUSDT","t":{i},"p":"{}.5","q":"0.01","m":true}}"#,
            ms * 1_000_000 + 7,
            60_000 + i % 100
        )
        .unwrap();
    }
}

fn out(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tapedeck"))
        .args(args)
        .env(
            "TAPEDECK_CACHE_DIR",
            std::env::temp_dir().join("tapedeck-cli-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every stream of the store: its envelopes (as JSON) and its stored snapshots.
fn contents(dir: &Path) -> BTreeMap<String, (Vec<Value>, Vec<Value>)> {
    let store = FileStore::open(dir).unwrap();
    let mut all = BTreeMap::new();
    for s in store.streams().unwrap() {
        let mut evs = Vec::new();
        store
            .read(&s.key, SeqRange::ALL, &mut |e| {
                evs.push(serde_json::to_value(&e).unwrap());
                Ok(())
            })
            .unwrap();
        let snaps = store
            .snapshots(&s.key)
            .unwrap()
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        all.insert(s.key, (evs, snaps));
    }
    all
}

// See: issue 11 item 1: two imports of one capture at once stored duplicate seqs; an append
// during an import truncated the importer's in-flight write as "torn".
#[test]
fn four_concurrent_writers_equal_the_same_writes_one_after_another() {
    let src = tmp("conc-src");
    std::fs::create_dir_all(&src).unwrap();
    let capture = src.join("trades.txt");
    trade_capture(&capture, 20_000);
    let appended = src.join("append.jsonl");
    let events: Vec<Envelope> = (1..=20_000).map(|s| ev("t:a", s, T0)).collect();
    write_envelopes(&appended, &events);
    let (cap, app, fix) = (
        capture.to_str().unwrap(),
        appended.to_str().unwrap(),
        fixtures_uri(),
    );
    let writes = |store: &str| -> Vec<Vec<String>> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            v(&[
                "import",
                "binance",
                cap,
                "--store",
                store,
                "--lock-timeout",
                "120",
            ]),
            v(&[
                "events",
                "append",
                "--store",
                store,
                "--file",
                app,
                "--lock-timeout",
                "120",
            ]),
            v(&[
                "import",
                "binance",
                cap,
                "--store",
                store,
                "--lock-timeout",
                "120",
            ]),
            v(&[
                "copy",
                "--from",
                &fix,
                "--to",
                store,
                "--lock-timeout",
                "120",
            ]),
        ]
    };
    let one_by_one = tmp("conc-sequential");
    for w in writes(one_by_one.to_str().unwrap()) {
        let args: Vec<&str> = w.iter().map(String::as_str).collect();
        let o = tapedeck(&args);
        assert!(o.status.success(), "{args:?}: {}", out(&o));
    }
    let at_once = tmp("conc-parallel");
    let children: Vec<_> = writes(at_once.to_str().unwrap())
        .iter()
        .map(|w| spawn(&w.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
    }
    let (a, b) = (contents(&one_by_one), contents(&at_once));
    assert_eq!(a.len(), b.len());
    assert_eq!(a["md:binance-spot:BTCUSDT"].0.len(), 20_000);
    assert_eq!(a["t:a"].0.len(), 20_000);
    assert!(a.values().any(|(_, snaps)| !snaps.is_empty()));
    assert!(a == b, "same events and snapshots per stream");
    for d in [src, one_by_one, at_once] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_second_writer_with_lock_timeout_0_exits_2_naming_the_holder() {
    let dir = tmp("locked");
    let file = dir.with_extension("jsonl");
    write_envelopes(&file, &[ev("t:a", 1, T0)]);
    let holder = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    let (d, f) = (dir.to_str().unwrap(), file.to_str().unwrap());
    let o = tapedeck(&[
        "events",
        "append",
        "--store",
        d,
        "--file",
        f,
        "--lock-timeout",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("pid {}", std::process::id())) && err.contains("locked"),
        "{err}"
    );
    // A reader takes no lock.
    let o = tapedeck(&["streams", "--store", d]);
    assert!(o.status.success(), "{}", out(&o));
    // A writer given time waits for the holder, then writes.
    let child = spawn(&[
        "events",
        "append",
        "--store",
        d,
        "--file",
        f,
        "--lock-timeout",
        "60",
    ]);
    std::thread::sleep(Duration::from_millis(700));
    drop(holder);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(contents(&dir)["t:a"].0.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn readers_skip_a_write_in_flight_and_do_not_repair_it() {
    let dir = tmp("in-flight");
    let mut w = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    w.append(&[ev("t:a", 1, T0), ev("t:a", 2, T0)]).unwrap();
    let part = dir.join("events/day=2024-08-08/part-000000.jsonl");
    let half = serde_json::to_string(&ev("t:a", 3, T0)).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap();
    f.write_all(&half.as_bytes()[..half.len() / 2]).unwrap();
    drop(f);
    let before = std::fs::read(&part).unwrap();
    let o = tapedeck(&["streams", "--store", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("seq 1..2"),
        "{}",
        out(&o)
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        before,
        "readers change nothing"
    );
    drop(w);
    std::fs::remove_dir_all(&dir).unwrap();
}

// See: issue 11 item 2: `stream t:c starts at seq 2, not 1` after an append whose ingest time
// was on an earlier day than the stream's previous event.
#[test]
fn ingest_time_going_back_a_day_keeps_every_stream_readable() {
    let dir = tmp("back-a-day");
    let d = dir.to_str().unwrap();
    let file = dir.with_extension("jsonl");
    let f = file.to_str().unwrap();
    for (seq, t) in [(1, T0 + DAY + 10), (2, T0 + 5), (3, T0 + DAY + 20)] {
        write_envelopes(&file, &[ev("t:c", seq, t)]);
        let o = tapedeck(&["events", "append", "--store", d, "--file", f]);
        assert!(o.status.success(), "seq {seq}: {}", out(&o));
    }
    let o = tapedeck(&["streams", "--store", d]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("seq 1..3"),
        "{}",
        out(&o)
    );
    let o = tapedeck(&["events", "list", "--store", d, "--stream", "t:c", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let listed: Vec<Envelope> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        listed[1].ingested_at,
        T0 + 5,
        "the envelope keeps its ingest time"
    );
    // The Parquet index over such a log reads the same.
    let o = tapedeck(&["index", "rebuild", "--store", d]);
    assert!(o.status.success(), "{}", out(&o));
    let store = FileStore::open(&dir).unwrap();
    assert!(store.fresh_index().unwrap().is_some());
    let mut seqs = Vec::new();
    store
        .read_records("t:c", SeqRange::ALL, &mut |s, _, _| {
            seqs.push(s);
            Ok(())
        })
        .unwrap();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(store.streams().unwrap()[0].last_seq, 3);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&file).unwrap();
}

/// A store with two streams over two days, and its index built.
fn indexed_store(name: &str) -> PathBuf {
    let dir = tmp(name);
    let mut s = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    let evs: Vec<_> = (1..=5)
        .flat_map(|i| [ev("t:a", i, T0 + i as i64 * DAY / 3), ev("t:b", i, T0)])
        .collect();
    s.append(&evs).unwrap();
    drop(s);
    index::rebuild(&dir, None).unwrap();
    dir
}

fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    v.sort();
    v
}

/// `streams` works (from the log) and warns; `index status` says the index is not usable.
fn assert_falls_back(dir: &Path, status_says: &str) {
    let d = dir.to_str().unwrap();
    let o = tapedeck(&["streams", "--store", d]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("t:a  seq 1..5"),
        "{}",
        out(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{}",
        out(&o)
    );
    let o = tapedeck(&["index", "status", "--store", d]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(status_says),
        "{}",
        out(&o)
    );
}

// See: issue 11 item 4: a garbage manifest made `replay`, `streams` and `index rebuild` exit 2.
#[test]
fn a_garbage_index_manifest_falls_back_to_the_log_and_rebuilds() {
    let dir = indexed_store("garbage-manifest");
    std::fs::write(dir.join("index/manifest.json"), b"\x00garbage{").unwrap();
    assert_falls_back(&dir, "unusable");
    let o = tapedeck(&["index", "rebuild", "--store", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_some()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// See: issue 11 item 4: a deleted or bit-flipped index file failed replay while `index status`
// said "up to date".
#[test]
fn a_deleted_or_bit_flipped_index_file_is_unusable_not_fatal() {
    let dir = indexed_store("flipped");
    let files = index_files(&dir);
    assert_eq!(files.len(), 2);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&files[0], &bytes).unwrap();
    assert_falls_back(&dir, "unusable");
    std::fs::remove_file(&files[0]).unwrap();
    assert_falls_back(&dir, "unusable");
    std::fs::remove_dir_all(&dir).unwrap();
}

// See: issue 11 item 4: freshness was checked by size, so a same-size edit was served stale.
#[test]
fn a_same_size_edit_of_a_log_part_makes_the_index_stale() {
    let dir = indexed_store("same-size");
    let part = dir.join("events/day=2024-08-08/part-000000.jsonl");
    let text = std::fs::read_to_string(&part).unwrap();
    let edited = text.replacen("\"client_order_id\":1}", "\"client_order_id\":7}", 1);
    assert_ne!(text, edited);
    assert_eq!(text.len(), edited.len());
    std::fs::write(&part, edited).unwrap();
    let store = FileStore::open(&dir).unwrap();
    assert!(
        store.fresh_index().unwrap().is_none(),
        "stale after the edit"
    );
    let mut first = None;
    store
        .read("t:a", SeqRange { from: 1, to: 1 }, &mut |e| {
            first = Some(e.body);
            Ok(())
        })
        .unwrap();
    assert!(
        matches!(first, Some(Body::OrderCancelled { client_order_id: 7 })),
        "{first:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// The freshness check hashes a file only when its verification stamp no longer holds: a
// same-size edit and a bit flip in an index file must still be seen once stamps exist.
#[test]
fn stamped_files_are_not_hashed_again_but_edits_are_still_seen() {
    let dir = indexed_store("stamped");
    // Stamps are taken only of files changed at least 2 s before the check began.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_some()
    );
    let stamps = std::fs::read_to_string(dir.join("index/verified.json")).unwrap();
    let part = "events/day=2024-08-08/part-000000.jsonl";
    assert!(stamps.contains(part), "{stamps}");
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_some()
    );
    // A bit flipped in an index file, written back at the same size.
    let files = index_files(&dir);
    let original = std::fs::read(&files[0]).unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&files[0], &flipped).unwrap();
    assert_falls_back(&dir, "unusable");
    std::fs::write(&files[0], &original).unwrap();
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_some()
    );
    // A same-size edit of a stamped log part.
    let text = std::fs::read_to_string(dir.join(part)).unwrap();
    let edited = text.replacen("\"client_order_id\":1}", "\"client_order_id\":7}", 1);
    assert_eq!(text.len(), edited.len());
    std::fs::write(dir.join(part), edited).unwrap();
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_none()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// An index of another format (here the one before the day files held their stream summaries)
// is not read: readers go to the log, say so, and a rebuild makes it current.
#[test]
fn an_index_of_another_format_is_rebuilt_not_read() {
    let dir = indexed_store("old-format");
    let path = dir.join("index/manifest.json");
    let manifest = std::fs::read_to_string(&path).unwrap();
    assert!(manifest.contains("\"version\": 3"), "{manifest}");
    std::fs::write(&path, manifest.replace("\"version\": 3", "\"version\": 2")).unwrap();
    assert_falls_back(&dir, "another version of tapedeck");
    let o = tapedeck(&["index", "rebuild", "--store", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .fresh_index()
            .unwrap()
            .is_some()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// See: issue 11 item 4: a leftover `*.tmpNNN` in a snapshot folder was read as a snapshot.
#[test]
fn temp_files_in_a_snapshot_folder_are_not_snapshots() {
    let dir = indexed_store("snap-tmp");
    let snaps = dir.join("snapshots/t%3Aa");
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::write(snaps.join("00000000000000000003.book.tmp12345"), b"{\"half").unwrap();
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(store.snapshots("t:a").unwrap(), []);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fsck(dir: &Path, repair: bool) -> std::process::Output {
    let d = dir.to_str().unwrap();
    let mut args = vec!["fsck", "--store", d];
    if repair {
        args.push("--repair");
    }
    tapedeck(&args)
}

/// Damages `dir` with `damage`; `fsck` finds `finding` (exit 1); `fsck --repair` moves it to
/// `quarantine/`; then `fsck` is clean and every stream reads.
fn fsck_case(name: &str, finding: &str, damage: impl FnOnce(&Path)) {
    let dir = indexed_store(name);
    let o = fsck(&dir, false);
    assert_eq!(o.status.code(), Some(0), "clean before: {}", out(&o));
    damage(&dir);
    let o = fsck(&dir, false);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(finding),
        "{}",
        out(&o)
    );
    let o = fsck(&dir, true);
    assert!(o.status.code() == Some(0), "{}", out(&o));
    let moved = std::fs::read_dir(dir.join("quarantine")).unwrap().count();
    assert!(moved > 0, "repairs quarantine");
    let o = fsck(&dir, false);
    assert_eq!(o.status.code(), Some(0), "clean after repair: {}", out(&o));
    let store = FileStore::open(&dir).unwrap();
    assert!(store.fresh_index().unwrap().is_some(), "index rebuilt");
    for s in store.streams().unwrap() {
        store.read(&s.key, SeqRange::ALL, &mut |_| Ok(())).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn part(dir: &Path) -> PathBuf {
    dir.join("events/day=2024-08-08/part-000000.jsonl")
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn fsck_finds_and_repairs_a_torn_tail() {
    fsck_case("fsck-torn", "torn", |d| {
        append_bytes(&part(d), b"{\"event_id\":\"01")
    });
}

#[test]
fn fsck_finds_and_repairs_a_line_that_is_not_an_envelope() {
    fsck_case("fsck-garbage", "not an event envelope", |d| {
        append_bytes(&part(d), b"hello\n")
    });
}

#[test]
fn fsck_finds_and_repairs_duplicate_seqs() {
    fsck_case("fsck-dup", "seq", |d| {
        let line = serde_json::to_string(&ev("t:b", 2, T0)).unwrap();
        append_bytes(&part(d), format!("{line}\n").as_bytes())
    });
}

#[test]
fn fsck_finds_and_repairs_a_bad_index() {
    fsck_case("fsck-index", "index", |d| {
        std::fs::write(index_files(d)[1].clone(), b"PAR1 not really").unwrap();
    });
}

#[test]
fn fsck_finds_and_repairs_a_bad_manifest() {
    fsck_case("fsck-manifest", "manifest", |d| {
        std::fs::write(d.join("index/manifest.json"), b"[").unwrap();
    });
}

#[test]
fn fsck_finds_and_repairs_bad_snapshots_and_temp_files() {
    let snap = |seq: u64| {
        serde_json::json!({"stream": "t:a", "seq": seq, "projector": "book", "state": {}})
            .to_string()
    };
    fsck_case("fsck-snap-garbage", "not a stored snapshot", |d| {
        let s = d.join("snapshots/t%3Aa");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("00000000000000000002.book.json"), b"{").unwrap();
    });
    fsck_case("fsck-snap-past-end", "past the end", |d| {
        let s = d.join("snapshots/t%3Aa");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("00000000000000000002.book.json"), snap(2)).unwrap();
        std::fs::write(s.join("00000000000000000009.book.json"), snap(9)).unwrap();
    });
    fsck_case("fsck-snap-tmp", "temporary file", |d| {
        let s = d.join("snapshots/t%3Aa");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("00000000000000000002.book.tmp777"), b"{").unwrap();
    });
}

#[test]
fn fsck_repair_waits_for_the_writer_lock() {
    let dir = indexed_store("fsck-locked");
    let holder = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
    let d = dir.to_str().unwrap();
    let t = Instant::now();
    let o = tapedeck(&["fsck", "--store", d, "--repair", "--lock-timeout", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(t.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // Checking alone takes no lock.
    let o = tapedeck(&["fsck", "--store", d]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    drop(holder);
    std::fs::remove_dir_all(&dir).unwrap();
}
