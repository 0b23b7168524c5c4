//! The real Binance capture in `../shared/data`, imported and replayed through the `book`
//! projector in Wasm, checked against an oracle from the data itself: whenever a depth diff's
//! final update id equals a `bookTicker`'s update id, the book's best bid/ask after that diff
//! must equal the ticker's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tapedeck::codec::EventBatchWriter;
use tapedeck::event::{Body, Dec, Envelope, Scratch};
use tapedeck::import::binance::{ImportSummary, Importer};
use tapedeck::store::{EventSource, FileStore, FileStoreOptions, SeqRange};
use tapedeck_test_guests as guests;

use super::{load, rt, shared_data, tmp};

/// The shared capture, or `None` (said on stderr) where it is absent: see [`shared_data`].
#[track_caller]
pub(super) fn capture() -> Option<PathBuf> {
    shared_data("binance/spot_btcusdt_20240808.gz")
}

fn import(files: &[&Path], store_dir: &Path) -> (ImportSummary, Vec<Envelope>) {
    let mut store = FileStore::create(store_dir, FileStoreOptions::default()).unwrap();
    let mut imp = Importer::new(&mut store, None, None);
    for f in files {
        imp.import_file(f).unwrap();
    }
    let summary = imp.finish().unwrap();
    let mut events = Vec::new();
    store
        .read("md:binance-spot:BTCUSDT", SeqRange::ALL, &mut |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
    (summary, events)
}

/// Replays `events` through the Wasm `book` projector; at each oracle point compares the best
/// levels. Returns the seqs checked and how many oracle points found the book out of sync.
fn check_oracle(events: &[Envelope]) -> (Vec<u64>, usize) {
    let mut tickers: BTreeMap<u64, (Dec, Dec)> = BTreeMap::new();
    for e in events {
        if let Body::Quote {
            bid_px,
            ask_px,
            update_id: Some(u),
            ..
        } = e.body
        {
            tickers.insert(u, (bid_px, ask_px));
        }
    }
    let mut inst = rt().instantiate(&load(guests::BOOK)).unwrap();
    inst.init(r#"{"depth": 1}"#).unwrap();
    let mut scratch = Scratch::default();
    let mut w = EventBatchWriter::new(Vec::new());
    let (mut checks, mut skipped) = (Vec::new(), 0);
    for e in events {
        e.encode_into(&mut w, 1, 1, &mut scratch).unwrap();
        let Body::BookDelta {
            final_update_id, ..
        } = e.body
        else {
            continue;
        };
        let Some((bid, ask)) = tickers.get(&final_update_id) else {
            continue;
        };
        inst.on_events(&std::mem::replace(&mut w, EventBatchWriter::new(Vec::new())).finish())
            .unwrap();
        let state: Value = serde_json::from_slice(&inst.state().unwrap()).unwrap();
        let book = &state["books"]["1"];
        if book["in_sync"] != Value::Bool(true) {
            skipped += 1;
            continue;
        }
        assert_eq!(
            book["bids"][0][0].as_f64(),
            Some(bid.to_f64()),
            "best bid after update {final_update_id} (seq {})",
            e.seq
        );
        assert_eq!(
            book["asks"][0][0].as_f64(),
            Some(ask.to_f64()),
            "best ask after update {final_update_id} (seq {})",
            e.seq
        );
        checks.push(e.seq);
    }
    (checks, skipped)
}

#[test]
fn the_real_capture_rebuilds_the_book_the_ticker_saw() {
    let Some(capture) = capture() else { return };
    let dir = tmp("clean");
    let (summary, events) = import(&[&capture], &dir);
    assert_eq!(summary.quarantined, 0);
    assert!(summary.gaps.is_empty(), "{:?}", summary.gaps);
    assert_eq!(summary.snapshots, 1);
    assert_eq!(summary.events as usize, events.len());
    let (checks, skipped) = check_oracle(&events);
    assert!(
        checks.len() > 500,
        "only {} oracle points ({skipped} skipped)",
        checks.len()
    );
    assert_eq!(skipped, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes a copy of the capture with line `drop` removed and, before line `resync_at`, a REST
/// snapshot of the true book as of the last diff before that line.
fn corrupted_copy(
    capture: &Path,
    events: &[Envelope],
    drop: usize,
    resync_at: usize,
    out: &Path,
) -> u64 {
    use std::io::BufRead;
    let lines: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(
        std::fs::File::open(capture).unwrap(),
    ))
    .lines()
    .map(Result::unwrap)
    .collect();
    // The last diff before `resync_at` in the capture, by its final update id.
    let last_u = lines[..resync_at - 1]
        .iter()
        .rev()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l.split_once(' ').unwrap().1).ok()?;
            (v["data"]["e"] == "depthUpdate").then(|| v["data"]["u"].as_u64().unwrap())
        })
        .unwrap();
    // The true full book at that update: apply the clean import's book events natively.
    let mut bids: BTreeMap<i64, i64> = BTreeMap::new();
    let mut asks: BTreeMap<i64, i64> = BTreeMap::new();
    let apply = |side: &mut BTreeMap<i64, i64>, levels: &[[Dec; 2]]| {
        for [p, q] in levels {
            let (p, q) = (p.at(8).unwrap(), q.at(8).unwrap());
            if q == 0 {
                side.remove(&p);
            } else {
                side.insert(p, q);
            }
        }
    };
    for e in events {
        match &e.body {
            Body::BookSnapshot {
                bids: b, asks: a, ..
            } => {
                bids.clear();
                asks.clear();
                apply(&mut bids, b);
                apply(&mut asks, a);
            }
            Body::BookDelta {
                bids: b,
                asks: a,
                final_update_id,
                ..
            } => {
                apply(&mut bids, b);
                apply(&mut asks, a);
                if *final_update_id == last_u {
                    break;
                }
            }
            _ => {}
        }
    }
    let fmt = |m: &(&i64, &i64)| [Dec::new(*m.0, 8).to_string(), Dec::new(*m.1, 8).to_string()];
    let snap = serde_json::json!({
        "lastUpdateId": last_u,
        "bids": bids.iter().rev().map(|m| fmt(&m)).collect::<Vec<_>>(),
        "asks": asks.iter().map(|m| fmt(&m)).collect::<Vec<_>>(),
    });
    let ts: i64 = lines[resync_at - 1]
        .split_once(' ')
        .unwrap()
        .0
        .parse()
        .unwrap();
    let mut f = std::fs::File::create(out).unwrap();
    for (i, l) in lines.iter().enumerate() {
        let n = i + 1;
        if n == resync_at {
            writeln!(f, "{} {snap}", ts - 1).unwrap();
        }
        if n != drop {
            writeln!(f, "{l}").unwrap();
        }
    }
    last_u
}

#[test]
fn a_dropped_diff_is_a_gap_finding_then_a_resync_at_the_next_snapshot() {
    let Some(capture) = capture() else { return };
    let clean = tmp("clean2");
    let (_, events) = import(&[&capture], &clean);
    // Find a depth diff around a third of the way in, and resync two thirds in.
    let lines: Vec<String> = {
        use std::io::BufRead;
        std::io::BufReader::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&capture).unwrap(),
        ))
        .lines()
        .map(Result::unwrap)
        .collect()
    };
    let is_diff = |l: &String| l.contains("\"e\":\"depthUpdate\"");
    let drop = (lines.len() / 3..).find(|&i| is_diff(&lines[i])).unwrap() + 1;
    let resync_at = 2 * lines.len() / 3;
    let corrupt_file = tmp("corrupt-file");
    std::fs::create_dir_all(&corrupt_file).unwrap();
    let copy = corrupt_file.join("spot_btcusdt_corrupt.jsonl");
    let resync_u = corrupted_copy(&capture, &events, drop, resync_at, &copy);

    let dir = tmp("corrupt");
    let (summary, bad_events) = import(&[&copy], &dir);
    assert_eq!(summary.gaps.len(), 1, "{:?}", summary.gaps);
    let gap = &summary.gaps[0];
    // Reported at the next diff after the dropped one (one line earlier in the copy).
    let next_diff = (drop..lines.len()).find(|&i| is_diff(&lines[i])).unwrap() + 1;
    assert_eq!(
        gap.line as usize,
        next_diff - 1,
        "reported at the first diff after the dropped one"
    );
    assert!(gap.got > gap.expected);
    assert_eq!(summary.snapshots, 2);
    // The gap is in the stream, and no diff is applied between it and the resync snapshot.
    let gap_at = bad_events.iter().position(|e| e.seq == gap.seq).unwrap();
    assert!(
        matches!(&bad_events[gap_at].body, Body::Custom { type_name, .. } if type_name == "book_gap")
    );
    let resync = bad_events
        .iter()
        .position(
            |e| matches!(e.body, Body::BookSnapshot { update_id, .. } if update_id == resync_u),
        )
        .unwrap();
    assert!(
        bad_events[gap_at..resync]
            .iter()
            .all(|e| !matches!(e.body, Body::BookDelta { .. }))
    );
    assert!(
        bad_events[resync..]
            .iter()
            .any(|e| matches!(e.body, Body::BookDelta { .. })),
        "diffs resume after the resync"
    );
    // The oracle holds everywhere the book claims to be in sync, before and after the gap.
    let (checks, skipped) = check_oracle(&bad_events);
    let resync_seq = bad_events[resync].seq;
    let before = checks.iter().filter(|s| **s < gap.seq).count();
    let after = checks.iter().filter(|s| **s > resync_seq).count();
    assert!(
        before > 100 && after > 100,
        "{before} checks before the gap, {after} after the resync"
    );
    assert_eq!(before + after, checks.len());
    assert!(
        skipped == 0,
        "out-of-sync books are not checked, and none were reached: {skipped}"
    );
    for d in [clean, dir, corrupt_file] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

pub(super) fn capture_lines(capture: &Path) -> Vec<String> {
    use std::io::BufRead;
    std::io::BufReader::new(flate2::read::GzDecoder::new(
        std::fs::File::open(capture).unwrap(),
    ))
    .lines()
    .map(Result::unwrap)
    .collect()
}

pub(super) fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn bodies(events: &[Envelope]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.seq, serde_json::to_string(&e.body).unwrap()))
        .collect()
}

#[test]
fn a_capture_split_across_files_continues_the_book_without_a_new_snapshot() {
    let Some(capture) = capture() else { return };
    let lines = capture_lines(&capture);
    let dir = tmp("split-files");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("day1.jsonl"), dir.join("day2.jsonl"));
    let mid = lines.len() / 2;
    write_lines(&a, &lines[..mid]);
    write_lines(&b, &lines[mid..]);
    let (whole, whole_events) = import(&[&capture], &tmp("whole"));
    // Both files in one import, and the second file in a later import into the same store.
    let (one, one_events) = import(&[&a, &b], &tmp("one-import"));
    let two_dir = tmp("two-imports");
    import(&[&a], &two_dir);
    let (_, two_events) = import(&[&b], &two_dir);
    for (summary, events) in [(&one, &one_events), (&whole, &two_events)] {
        assert!(summary.gaps.is_empty(), "{:?}", summary.gaps);
        assert_eq!(bodies(events), bodies(&whole_events));
    }
    assert_eq!(
        one.snapshots, 1,
        "the chain ran on from the first file's snapshot"
    );
    for d in [dir, tmp("whole"), tmp("one-import"), two_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn usdm_futures_chains_by_pu_and_a_break_is_a_gap() {
    let Some(capture) = capture() else { return };
    // The spot capture made into a futures one: diffs carry `pu` (the previous diff's `u`),
    // tickers an `e`, as USD-M streams do.
    let mut prev_u: Option<u64> = None;
    let mut lines: Vec<String> = Vec::new();
    for l in capture_lines(&capture) {
        let (ts, json) = l.split_once(' ').unwrap();
        let mut v: Value = serde_json::from_str(json).unwrap();
        if let Some(d) = v.get_mut("data") {
            if d["e"] == "depthUpdate" {
                let u = d["u"].as_u64().unwrap();
                d["pu"] = serde_json::json!(prev_u.unwrap_or(d["U"].as_u64().unwrap() - 1));
                prev_u = Some(u);
            } else if d.get("e").is_none() {
                d["e"] = "bookTicker".into();
            }
        }
        lines.push(format!("{ts} {v}"));
    }
    let dir = tmp("usdm-src");
    std::fs::create_dir_all(&dir).unwrap();
    let clean = dir.join("usdm.jsonl");
    write_lines(&clean, &lines);
    let store = tmp("usdm");
    let mut fs = FileStore::create(&store, FileStoreOptions::default()).unwrap();
    let mut imp = Importer::new(&mut fs, None, None);
    imp.import_file(&clean).unwrap();
    let s = imp.finish().unwrap();
    assert!(s.gaps.is_empty(), "{:?}", s.gaps);
    let key = "md:binance-usdm:BTCUSDT";
    assert!(
        s.by_stream.contains_key(key),
        "{:?}",
        s.by_stream.keys().collect::<Vec<_>>()
    );
    let mut events = Vec::new();
    fs.read(key, SeqRange::ALL, &mut |e| {
        events.push(e);
        Ok(())
    })
    .unwrap();
    let (checks, _) = check_oracle(&events);
    assert!(checks.len() > 500);
    assert!(events.iter().any(|e| matches!(e.body, Body::BookDelta { prev_final_update_id, .. } if prev_final_update_id > 0)));
    // Drop one diff well after the snapshot: its successor's `pu` no longer matches.
    let drop = (lines.len() / 2..)
        .find(|&i| lines[i].contains("depthUpdate"))
        .unwrap();
    let mut broken = lines.clone();
    broken.remove(drop);
    let bad = dir.join("usdm-broken.jsonl");
    write_lines(&bad, &broken);
    let store2 = tmp("usdm-broken");
    let mut fs2 = FileStore::create(&store2, FileStoreOptions::default()).unwrap();
    let mut imp = Importer::new(&mut fs2, None, None);
    imp.import_file(&bad).unwrap();
    let s = imp.finish().unwrap();
    assert_eq!(s.gaps.len(), 1, "{:?}", s.gaps);
    let dropped: Value = serde_json::from_str(lines[drop].split_once(' ').unwrap().1).unwrap();
    assert_eq!(
        s.gaps[0].got,
        dropped["data"]["u"].as_u64().unwrap(),
        "the successor's pu is the dropped diff's u"
    );
    for d in [dir, store, store2] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn unparseable_lines_are_quarantined_with_file_and_line_and_counted() {
    let Some(capture) = capture() else { return };
    let mut lines = capture_lines(&capture);
    lines.insert(100, "1723161254087891268 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"p\":\"x\"".into());
    lines.insert(200, "no timestamp here".into());
    let dir = tmp("quarantine-src");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("with-garbage.jsonl");
    write_lines(&path, &lines);
    let store = tmp("quarantine");
    let (s, events) = import(&[&path], &store);
    let (_, clean_events) = import(&[&capture], &tmp("quarantine-clean"));
    assert_eq!(s.quarantined, 2);
    assert_eq!(
        bodies(&events),
        bodies(&clean_events),
        "nothing else is lost or changed"
    );
    let q = std::fs::read_to_string(s.quarantined_to.as_ref().unwrap()).unwrap();
    let recs: Vec<Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0]["line"].as_u64(), recs[1]["line"].as_u64()),
        (Some(101), Some(201))
    );
    assert!(
        recs[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("with-garbage.jsonl")
    );
    assert!(
        recs[1]["error"]
            .as_str()
            .unwrap()
            .contains("bad local timestamp"),
        "{}",
        recs[1]["error"]
    );
    assert!(
        recs[0]["error"].as_str().unwrap().contains("bad JSON"),
        "{}",
        recs[0]["error"]
    );
    for d in [dir, store, tmp("quarantine-clean")] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn overlapping_and_repeated_imports_store_each_event_once() {
    let Some(capture) = capture() else { return };
    let lines = capture_lines(&capture);
    let dir = tmp("overlap-src");
    std::fs::create_dir_all(&dir).unwrap();
    let part = dir.join("first-60pct.jsonl");
    write_lines(&part, &lines[..lines.len() * 6 / 10]);
    let (_, whole_events) = import(&[&capture], &tmp("overlap-whole"));
    let store = tmp("overlap");
    let (first, _) = import(&[&part], &store);
    assert_eq!(first.already_stored, 0);
    // The whole capture after its first 60%: only the rest is new.
    let (second, after_second) = import(&[&capture], &store);
    assert_eq!(second.already_stored as usize, lines.len() * 6 / 10);
    assert_eq!(first.events + second.events, whole_events.len() as u64);
    assert_eq!(bodies(&after_second), bodies(&whole_events));
    assert!(second.gaps.is_empty(), "{:?}", second.gaps);
    // And again: nothing to add.
    let (third, after_third) = import(&[&capture], &store);
    assert_eq!(
        (third.events, third.already_stored as usize),
        (0, lines.len())
    );
    assert_eq!(after_third, after_second);
    for d in [dir, store] {
        std::fs::remove_dir_all(d).unwrap();
    }
    tmp("overlap-whole");
}
