//! The store conformance suite: the same cases against every store behind the
//! `EventSource`/`EventSink` seam (memory, file, file read through its Parquet index,
//! PostgreSQL, ClickHouse), so a store that disagrees with the seam is found by name.
//!
//! Each case is a function over a fresh, empty [`Subject`]; `conformance!` stamps one `#[test]`
//! per (store, case), named `conformance::<store>::<case>`, and lists the stores for the copy
//! chain. Adding a store is one name in that list plus its opener in `subjects.rs`.
//! Expectations come from the hand-written event set in `data.rs`, never from another store:
//! the memory store is held to them like the rest. Replay compares against the memory store
//! (the seam's reference), on top of hand-checked projector states.
//!
//! Beside this file: `data` (the event set), `subjects` (the stores and their openers),
//! `reads` (ranges, records, queries), `replay` (projectors over each store).
//!
//! Where stores legitimately differ (PostgreSQL's idempotency keys, ClickHouse's comparison
//! with what it holds; which stores check a
//! snapshot's seq) a case asserts each store's documented behaviour, named by a [`Subject`]
//! method, and says so. A (store, case) failing for a store bug outside this suite is
//! `#[ignore]`d in `stamp!`, with the reason, never dropped.

mod data;
mod reads;
mod replay;
mod subjects;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tapedeck::Error;
use tapedeck::event::{Body, Dec, Envelope};
use tapedeck::store::{
    AppendOutcome, CopySummary, Duplicate, EventSink, MemoryStore, SeqRange, Store, StoredSnapshot,
    StreamInfo, copy,
};

use data::{BTC, ETH, EXEC, STREAMS};
use reads::{queries_give_the_expected_events, read_ranges_give_exactly_the_range};
use replay::replay_gives_the_reference_states;
use subjects::Subject;

/// One `#[test]` for one (store, case). Variants a store bug breaks come first, ignored with
/// the bug; everything else runs.
macro_rules! stamp {
    (@test $store:ident, $case:ident $(, $why:literal)?) => {
        #[test]
        $(#[ignore = $why])?
        fn $case() {
            super::run(stringify!($case), super::subjects::$store, super::$case);
        }
    };
    ($store:ident, $case:ident) => {
        stamp!(@test $store, $case);
    };
}

/// Every case, for one store.
macro_rules! cases {
    ($store:ident) => {
        stamp!($store, append_reads_back_every_field);
        stamp!($store, append_reports_what_it_stored);
        stamp!($store, a_batch_with_a_gap_is_refused_whole);
        stamp!($store, a_batch_over_streams_is_refused_whole);
        stamp!($store, an_exact_repeat_is_a_duplicate_or_refused);
        stamp!($store, duplicates_are_indexed_in_the_batch);
        stamp!(
            $store,
            ingest_time_going_back_a_day_keeps_the_stream_in_seq_order
        );
        stamp!($store, read_ranges_give_exactly_the_range);
        stamp!($store, snapshots_are_listed_by_seq_then_projector);
        stamp!($store, a_snapshot_past_the_end_where_refused);
        stamp!($store, quarantine_keeps_records_where_it_says);
        stamp!($store, copy_round_trips_events_and_snapshots);
        stamp!($store, queries_give_the_expected_events);
        stamp!($store, replay_gives_the_reference_states);
    };
}

/// The stores: one test module each, and the list the copy chain goes through.
macro_rules! conformance {
    ($($store:ident),* $(,)?) => {
        $(mod $store {
            cases!($store);
        })*

        const STORES: &[(&str, subjects::Opener)] = &[$((stringify!($store), subjects::$store)),*];
    };
}

conformance!(memory, file, file_indexed, postgres, clickhouse);

/// Runs `case` on a fresh store from `open` (unless it skips); cleans up if it passed.
fn run(case: &str, open: subjects::Opener, f: fn(&mut dyn Subject)) {
    let Some(mut s) = open(case) else { return };
    f(&mut *s);
    s.cleanup();
}

// ---- helpers ------------------------------------------------------------------------------

fn read(st: &dyn Store, stream: &str, range: SeqRange) -> Vec<Envelope> {
    let mut out = Vec::new();
    st.read(stream, range, &mut |e| {
        out.push(e);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("reading {stream} {range:?}: {e}"));
    out
}

fn read_all(st: &dyn Store, stream: &str) -> Vec<Envelope> {
    read(st, stream, SeqRange::ALL)
}

/// Everything a store holds (events of its streams and of the set's, snapshots): what a refused
/// write must leave as it was and a copy must reproduce.
#[derive(Debug, PartialEq)]
struct Contents {
    streams: Vec<StreamInfo>,
    events: BTreeMap<String, Vec<Envelope>>,
    snapshots: BTreeMap<String, Vec<StoredSnapshot>>,
}

fn contents(st: &dyn Store) -> Contents {
    let streams = st.streams().unwrap();
    let mut keys: Vec<String> = streams.iter().map(|s| s.key.clone()).collect();
    keys.extend(STREAMS.iter().map(|s| s.to_string()));
    keys.push(SOL.into());
    keys.sort();
    keys.dedup();
    Contents {
        events: keys.iter().map(|k| (k.clone(), read_all(st, k))).collect(),
        snapshots: keys
            .iter()
            .map(|k| (k.clone(), st.snapshots(k).unwrap()))
            .collect(),
        streams,
    }
}

/// Appends the event set in batches of 6 (each over several streams).
fn seed(st: &mut dyn Store) {
    for batch in data::events().chunks(6) {
        let r = st.append(batch).unwrap();
        assert_eq!(r.appended(), batch.len() as u64);
        assert_eq!(r.duplicates(), 0);
    }
}

/// A stream the set does not have.
const SOL: &str = "md:conf:SOLUSDT";

/// A quote past the set: `stream` at `seq`, its bid `bid` cents.
fn extra(stream: &str, seq: u64, bid: i64) -> Envelope {
    let body = Body::Quote {
        bid_px: Dec::new(bid, 2),
        bid_qty: Dec::new(1, 0),
        ask_px: Dec::new(bid + 1, 2),
        ask_qty: Dec::new(1, 0),
        update_id: None,
    };
    Envelope::new(stream, seq, data::at(30 + seq as i64), Some("X"), body)
}

fn snap(stream: &str, seq: u64, projector: &str, state: Value) -> StoredSnapshot {
    StoredSnapshot {
        stream: stream.into(),
        seq,
        projector: projector.into(),
        state,
        guest_snapshot: None,
    }
}

/// Snapshots within the set's streams, for the copies.
fn some_snapshots() -> Vec<StoredSnapshot> {
    vec![
        snap(
            BTC,
            3,
            "book",
            json!({"levels": [[65000.15, 0.25]], "id": 102}),
        ),
        snap(BTC, 7, "book", json!({"levels": [], "x": 0.1 + 0.2})),
        StoredSnapshot {
            guest_snapshot: Some(json!({"raw": [1, 2, 3]})),
            ..snap(EXEC, 4, "positions", json!({"qty": 0.30000000000000004}))
        },
    ]
}

/// The outcome of a store without idempotency keys that stored `run` (one stream).
fn stored(run: &[Envelope]) -> AppendOutcome {
    AppendOutcome {
        stream: run[0].stream_key.clone(),
        appended: run.len() as u64,
        first_seq: Some(run[0].seq),
        last_seq: run[run.len() - 1].seq,
        duplicates: vec![],
    }
}

/// Appends a batch that must be refused; checks the store is as it was. Returns the error.
fn refused(s: &mut dyn Subject, batch: &[Envelope], what: &str) -> Error {
    let before = contents(s.store());
    let err = match s.store().append(batch) {
        Err(e) => e,
        Ok(r) => panic!("{what}: stored {r:?}"),
    };
    let after = contents(s.store());
    // The summaries first: a short message when a stream moved.
    assert_eq!(
        after.streams, before.streams,
        "{what}: nothing of it stored"
    );
    assert_eq!(after, before, "{what}: nothing of it stored");
    err
}

// ---- cases --------------------------------------------------------------------------------

fn append_reads_back_every_field(s: &mut dyn Subject) {
    let all = data::events();
    type Summary = (String, u64, u64, i64, i64, BTreeMap<String, u64>);
    let spelled: Vec<Summary> = data::expected_streams()
        .into_iter()
        .map(|(key, last, t0, t1, counts)| {
            let counts = counts.into_iter().map(|(t, n)| (t.to_string(), n));
            (key.to_string(), 1, last, t0, t1, counts.collect())
        })
        .collect();
    let infos = |v: Vec<StreamInfo>| -> Vec<Summary> {
        v.into_iter()
            .map(|i| {
                (
                    i.key,
                    i.first_seq,
                    i.last_seq,
                    i.first_time,
                    i.last_time,
                    i.counts,
                )
            })
            .collect()
    };
    assert_eq!(infos(data::stream_infos(&all)), spelled, "the set itself");
    seed(s.store());
    for when in ["as written", "reopened"] {
        for stream in STREAMS {
            assert_eq!(
                read_all(s.store(), stream),
                data::of(stream),
                "{stream}, {when}"
            );
        }
        assert_eq!(
            s.store().streams().unwrap(),
            data::stream_infos(&all),
            "{when}"
        );
        s.reopen();
    }
}

/// Clock skew and late data: a stream's ingest times may go back, even across a UTC day (and
/// month). Every store reads the stream by seq whatever the ingest times, keeps each event's
/// `ingested_at` as written, and takes the next append after it.
fn ingest_time_going_back_a_day_keeps_the_stream_in_seq_order(s: &mut dyn Subject) {
    const DAY: i64 = 86_400_000_000_000;
    let mut evs: Vec<Envelope> = (1..=4)
        .map(|seq| extra(SOL, seq, 100 + seq as i64))
        .collect();
    // Event 1 ingested on day D + 1, events 2 and 3 back on day D - 1 (a month earlier for the
    // set's dates), event 4 back on D + 1.
    evs[0].ingested_at = data::at(40) + DAY;
    evs[1].ingested_at = data::at(40) - DAY;
    evs[2].ingested_at = data::at(40) - 40 * DAY;
    evs[3].ingested_at = data::at(40) + DAY;
    s.store().append(&evs[..1]).unwrap();
    s.store().append(&evs[1..3]).unwrap();
    for when in ["as written", "reopened"] {
        assert_eq!(read_all(s.store(), SOL), evs[..3], "{when}");
        s.reopen();
    }
    s.store().append(&evs[3..]).unwrap();
    assert_eq!(read_all(s.store(), SOL), evs, "after a later append");
    let info = s.store().streams().unwrap();
    let sol = info
        .iter()
        .find(|i| i.key == SOL)
        .expect("the stream is listed");
    assert_eq!((sol.first_seq, sol.last_seq), (1, 4));
    s.reopen();
    assert_eq!(
        read(s.store(), SOL, SeqRange { from: 2, to: 3 }),
        evs[1..3],
        "a range, reopened"
    );
}

fn append_reports_what_it_stored(s: &mut dyn Subject) {
    let all = data::events();
    // Runs of one stream, in batch order: BTC 1, ETH 1, BTC 2, EXEC 1-2.
    let r = s.store().append(&all[..5]).unwrap();
    let want = vec![
        stored(&all[0..1]),
        stored(&all[1..2]),
        stored(&all[2..3]),
        stored(&all[3..5]),
    ];
    assert_eq!(r.streams, want);
    assert_eq!((r.appended(), r.duplicates()), (5, 0));
    let r = s.store().append(&all[5..]).unwrap();
    let runs: Vec<AppendOutcome> = all[5..]
        .chunk_by(|a, b| a.stream_key == b.stream_key)
        .map(stored)
        .collect();
    assert_eq!(r.streams, runs);
    assert_eq!((r.appended(), r.duplicates()), (15, 0));
    // An empty batch stores nothing and reports nothing.
    let r = s.store().append(&[]).unwrap();
    assert_eq!((r.streams.len(), r.appended()), (0, 0));
}

fn a_batch_with_a_gap_is_refused_whole(s: &mut dyn Subject) {
    seed(s.store());
    // Where a refusal names the stream's end differently: PostgreSQL takes a batch's first seq
    // as the writer's expectation of the stream's end, so a batch starting elsewhere is a
    // Conflict (expected = first seq - 1); the others check seqs one by one (SeqGap). Both
    // name the stream and its actual end.
    let gap_or_conflict = |e: &Error, end: u64, first: u64| match e {
        Error::SeqGap {
            stream,
            expected,
            got,
        } => stream == BTC && *expected == end + 1 && *got == first,
        Error::Conflict {
            stream,
            expected,
            actual,
        } => stream == BTC && *expected == first - 1 && *actual == end,
        _ => false,
    };
    let e = refused(s, &[extra(BTC, 8, 100), extra(BTC, 10, 101)], "skips 9");
    assert!(
        matches!(&e, Error::SeqGap { stream, expected: 9, got: 10 } if stream == BTC),
        "{e}"
    );
    let mut changed = data::event(BTC, 2);
    changed.body = extra(BTC, 2, 1).body;
    let e = refused(s, &[changed], "repeats seq 2 with another payload");
    assert!(gap_or_conflict(&e, 7, 2), "{e}");
    let e = refused(s, &[extra(BTC, 8, 100), extra(BTC, 8, 102)], "seq 8 twice");
    assert!(
        matches!(&e, Error::SeqGap { stream, expected: 9, got: 8 } if stream == BTC),
        "{e}"
    );
    let e = refused(
        s,
        &[data::event(BTC, 7), extra(BTC, 8, 100)],
        "7 again, then 8",
    );
    assert!(gap_or_conflict(&e, 7, 7), "{e}");
    let e = refused(s, &[extra(SOL, 2, 100)], "a new stream starting at 2");
    let starts_at_2 = match &e {
        Error::SeqGap {
            stream,
            expected: 1,
            got: 2,
        }
        | Error::Conflict {
            stream,
            expected: 1,
            actual: 0,
        } => stream == SOL,
        _ => false,
    };
    assert!(starts_at_2, "{e}");
    // Nothing of the refused batches lingers (no idempotency key claimed, no stream state):
    // the same events, gapless now, are stored as new.
    let r = s
        .store()
        .append(&[extra(BTC, 8, 100), extra(BTC, 9, 101)])
        .unwrap();
    assert_eq!(
        r.streams,
        [stored(&[extra(BTC, 8, 100), extra(BTC, 9, 101)])]
    );
    let r = s.store().append(&[extra(SOL, 1, 100)]).unwrap();
    assert_eq!(r.appended(), 1);
    s.reopen();
    let ends: Vec<_> = s.store().streams().unwrap();
    let ends: Vec<_> = ends.iter().map(|i| (i.key.as_str(), i.last_seq)).collect();
    assert_eq!(ends, [(EXEC, 9), (BTC, 9), (ETH, 4), (SOL, 1)]);
}

fn a_batch_over_streams_is_refused_whole(s: &mut dyn Subject) {
    seed(s.store());
    // ETH 5 is fine on its own; BTC 9 skips 8. The trait: "a batch that breaks that is
    // refused whole".
    let e = refused(
        s,
        &[extra(ETH, 5, 100), extra(BTC, 9, 101)],
        "ETH 5 then BTC with a gap",
    );
    assert!(
        matches!(&e, Error::SeqGap { stream, .. } | Error::Conflict { stream, .. } if stream == BTC),
        "{e}"
    );
}

fn an_exact_repeat_is_a_duplicate_or_refused(s: &mut dyn Subject) {
    seed(s.store());
    for (what, batch) in [
        ("the last event again", vec![data::event(BTC, 7)]),
        ("an earlier event again", vec![data::event(BTC, 2)]),
        ("the whole stream again", data::of(BTC)),
    ] {
        if s.idempotency_keys() {
            // The documented option (PostgreSQL): held events are skipped and reported with the
            // stored id and seq; nothing is stored; the stream is unchanged.
            let before = contents(s.store());
            let r = s.store().append(&batch).unwrap();
            let dups = batch
                .iter()
                .enumerate()
                .map(|(index, e)| Duplicate {
                    index,
                    event_id: e.event_id.clone(),
                    seq: e.seq,
                })
                .collect();
            let want = AppendOutcome {
                stream: BTC.into(),
                appended: 0,
                first_seq: None,
                last_seq: 7,
                duplicates: dups,
            };
            assert_eq!(r.streams, [want], "{what}");
            assert_eq!(contents(s.store()), before, "{what}");
        } else {
            // Stores without keys cannot tell a repeat from a writer's mistake: a seq that does
            // not follow the end is refused.
            let e = refused(s, &batch, what);
            assert!(
                matches!(&e, Error::SeqGap { stream, expected: 8, got } if stream == BTC && *got == batch[0].seq),
                "{what}: {e}"
            );
        }
    }
}

fn duplicates_are_indexed_in_the_batch(s: &mut dyn Subject) {
    let all = data::events();
    seed(s.store());
    let batch = &all[..5];
    if !s.idempotency_keys() {
        refused(s, batch, "the first five events again");
        return;
    }
    let r = s.store().append(batch).unwrap();
    let indexes: Vec<Vec<usize>> = r
        .streams
        .iter()
        .map(|o| o.duplicates.iter().map(|d| d.index).collect())
        .collect();
    // Runs BTC, ETH, BTC, EXEC EXEC: each duplicate at its index in the batch.
    assert_eq!(indexes, [vec![0], vec![1], vec![2], vec![3, 4]]);
}

fn snapshots_are_listed_by_seq_then_projector(s: &mut dyn Subject) {
    seed(s.store());
    // Numbers a replay anchor must get back bit for bit, and text that needs escaping.
    let exact = json!({"sum": 0.1 + 0.2, "tiny": -1.5e-7, "big": u64::MAX, "s": "é \"q\" \\"});
    let puts = [
        snap(BTC, 4, "positions", json!({"n": 1})),
        snap(BTC, 2, "book", exact.clone()),
        StoredSnapshot {
            guest_snapshot: Some(json!({"guest": true, "v": [1.25, null]})),
            ..snap(BTC, 4, "book", json!({"n": 2}))
        },
        snap(BTC, 2, "positions", json!({"n": 3})),
        snap(ETH, 1, "book", json!({})),
    ];
    for p in &puts {
        s.store().put_snapshot(p).unwrap();
    }
    s.reopen();
    let want = vec![
        puts[1].clone(),
        puts[3].clone(),
        puts[2].clone(),
        puts[0].clone(),
    ];
    assert_eq!(s.store().snapshots(BTC).unwrap(), want);
    assert_eq!(s.store().snapshots(ETH).unwrap(), [puts[4].clone()]);
    assert!(s.store().snapshots(EXEC).unwrap().is_empty());
    assert!(s.store().snapshots(SOL).unwrap().is_empty());
    // The same (stream, seq, projector) again replaces it.
    let newer = snap(BTC, 4, "book", json!({"n": 4}));
    s.store().put_snapshot(&newer).unwrap();
    s.reopen();
    let got = s.store().snapshots(BTC).unwrap();
    assert_eq!(
        got,
        [want[0].clone(), want[1].clone(), newer, want[3].clone()]
    );
}

fn a_snapshot_past_the_end_where_refused(s: &mut dyn Subject) {
    seed(s.store());
    for (stream, seq) in [(BTC, 8), (BTC, 0), (SOL, 1)] {
        let r = s
            .store()
            .put_snapshot(&snap(stream, seq, "book", json!({})));
        if s.refuses_snapshots_past_the_end() {
            assert!(r.is_err(), "{stream} at {seq}");
            assert!(s.store().snapshots(stream).unwrap().is_empty());
        } else {
            // The file and memory stores do not check a snapshot's seq (the trait does not ask
            // them to): pinned here so a change is a decision, not an accident.
            r.unwrap();
            let listed = s.store().snapshots(stream).unwrap();
            assert!(listed.iter().any(|x| x.seq == seq), "{stream} at {seq}");
        }
    }
}

fn quarantine_keeps_records_where_it_says(s: &mut dyn Subject) {
    seed(s.store());
    let before = contents(s.store());
    let r1 = json!({"line": "{\"e\":\"depthUpdate\",", "n": 1});
    let r2 = json!({"line": "garbage", "nested": {"a": [1, 2.5]}});
    let r3 = json!({"why": "another source"});
    let p1 = s.store().quarantine("import-binance", &r1).unwrap();
    let p2 = s.store().quarantine("import-binance", &r2).unwrap();
    let p3 = s.store().quarantine("import-other", &r3).unwrap();
    assert_eq!(p1, p2, "one source, one place");
    for _ in ["as written", "reopened"] {
        assert_eq!(
            s.quarantined(&p1, "import-binance"),
            [r1.clone(), r2.clone()]
        );
        assert_eq!(
            s.quarantined(&p3, "import-other"),
            std::slice::from_ref(&r3)
        );
        s.reopen();
    }
    assert_eq!(contents(s.store()), before, "quarantine is not the log");
}

fn copy_round_trips_events_and_snapshots(s: &mut dyn Subject) {
    let mut src = MemoryStore::new();
    seed(&mut src);
    for p in some_snapshots() {
        src.put_snapshot(&p).unwrap();
    }
    let want = contents(&src);
    let sum = CopySummary {
        streams: 3,
        events: 20,
        snapshots: 3,
    };
    let mut progress = BTreeMap::new();
    let got = copy(&src, s.store(), &want.streams, 4, &mut |k, n| {
        progress.insert(k.to_string(), n);
    })
    .unwrap();
    assert_eq!(got, sum);
    // `progress` counts events copied so far, over all streams: the last stream ends at 20.
    assert_eq!(progress[ETH], 20);
    s.reopen();
    assert_eq!(contents(s.store()), want, "copied in");
    let mut back = MemoryStore::new();
    let streams = s.store().streams().unwrap();
    assert_eq!(
        copy(s.store(), &mut back, &streams, 3, &mut |_, _| {}).unwrap(),
        sum
    );
    assert_eq!(contents(&back), want, "copied out");
}

/// memory → every store in the list, in order → memory: what comes out is what went in.
#[test]
fn copy_chain_through_every_store() {
    let mut prev: Box<dyn Subject> = subjects::memory("chain").unwrap();
    seed(prev.store());
    for p in some_snapshots() {
        prev.store().put_snapshot(&p).unwrap();
    }
    let want = contents(prev.store());
    for (name, open) in STORES.iter().chain(&[("memory", subjects::memory as _)]) {
        let Some(mut next) = open("copy_chain") else {
            continue;
        };
        let streams = prev.store().streams().unwrap();
        copy(prev.store(), next.store(), &streams, 5, &mut |_, _| {}).unwrap();
        next.reopen();
        assert_eq!(contents(next.store()), want, "into {name}");
        prev.cleanup();
        prev = next;
    }
    prev.cleanup();
}
