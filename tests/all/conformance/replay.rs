//! The replay case: the repository's book and positions projectors (real guests) over a store
//! give the reports the memory store gives: a full replay, one diffed against snapshots stored
//! at seq 3 of every stream, and one anchored on them. A few states are also checked by hand,
//! so the memory store is not merely compared with itself.

use serde_json::Value;
use tapedeck::codec::EventBatchWriter;
use tapedeck::event::instrument_table;
use tapedeck::replay::{Plugin, Point, ReplayOptions, ReplayReport, replay};
use tapedeck::store::{SeqRange, Store, StoredSnapshot};
use tapedeck_test_guests as guests;

use super::data::{self, BTC, EXEC, STREAMS};
use super::subjects::{self, Subject};
use crate::{load, rt};

/// Where every stream gets its stored snapshots.
const ANCHOR: u64 = 3;

fn plugins() -> Vec<Plugin> {
    [guests::BOOK, guests::POSITIONS]
        .into_iter()
        .map(|p| Plugin::new(load(p), String::new()))
        .collect()
}

/// The three replays' reports, as JSON (every field the reports serialize).
#[derive(Debug, PartialEq)]
struct Story {
    full: Value,
    checked: Value,
    anchored: Value,
}

pub fn replay_gives_the_reference_states(s: &mut dyn Subject) {
    super::seed(s.store());
    s.reopen();
    let mut reference = subjects::memory("reference").unwrap();
    super::seed(reference.store());
    let want = story(&mut *reference);
    let got = story(s);
    assert_eq!(got, want, "the memory store's replays");
    for stream in STREAMS {
        assert_eq!(
            s.store().instruments(stream).unwrap(),
            reference.store().instruments(stream).unwrap(),
            "the instrument table of {stream}"
        );
    }
    assert_eq!(
        s.store()
            .instruments(BTC)
            .unwrap()
            .into_values()
            .collect::<Vec<_>>(),
        ["BTCUSDT"]
    );

    let final_state = |stream: &str, projector: &str| -> Value {
        let streams = got.full["streams"].as_array().unwrap();
        let s = streams.iter().find(|s| s["stream"] == stream).unwrap();
        s["final_states"][projector].clone()
    };
    // Named by symbol: every store gives replay the stream's instrument table.
    let pos = &final_state(EXEC, "positions")["instruments"]["BTCUSDT"];
    assert_eq!(
        (pos["fills"].as_u64(), pos["last_seq"].as_u64()),
        (Some(3), Some(6))
    );
    assert!((pos["qty"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{pos}");
    let book = &final_state(BTC, "book")["books"]["BTCUSDT"];
    assert_eq!(book["last_update_id"], 103);
    assert_eq!(book["last_seq"], 6);
    assert_eq!(book["in_sync"], true);
    assert_eq!(book["bids"][0], serde_json::json!([64999.5, 0.75]));
    assert_eq!(book["asks"][0], serde_json::json!([65000.15, 0.25]));
}

fn story(s: &mut dyn Subject) -> Story {
    let plugins = plugins();
    let run = |st: &dyn Store, opts: ReplayOptions| -> ReplayReport {
        replay(rt(), st, &plugins, &opts).unwrap()
    };
    let full = run(s.store(), ReplayOptions::default());
    assert!(full.is_clean(), "{:?}", full.findings().collect::<Vec<_>>());
    let counts: Vec<(&str, u64)> = full
        .streams
        .iter()
        .map(|r| (r.stream.as_str(), r.events))
        .collect();
    let want: Vec<(&str, u64)> = STREAMS
        .iter()
        .map(|k| (*k, data::of(k).len() as u64))
        .collect();
    assert_eq!(counts, want);

    for stream in STREAMS {
        for p in &plugins {
            let snap = snapshot_at(s.store(), stream, p);
            s.store().put_snapshot(&snap).unwrap();
        }
    }
    s.reopen();
    let checked = run(s.store(), ReplayOptions::default());
    assert!(
        checked.is_clean(),
        "{:?}",
        checked.findings().collect::<Vec<_>>()
    );
    for r in &checked.streams {
        assert_eq!(r.snapshots_checked, 2, "{}", r.stream);
    }
    let anchored = run(
        s.store(),
        ReplayOptions {
            from: Some(Point::Seq(ANCHOR + 1)),
            ..Default::default()
        },
    );
    assert!(anchored.is_clean());
    for (a, f) in anchored.streams.iter().zip(&full.streams) {
        assert_eq!(a.anchor_seq, Some(ANCHOR), "{}", a.stream);
        assert_eq!(a.start_seq, ANCHOR + 1, "{}", a.stream);
        assert_eq!(a.events, f.events - ANCHOR, "{}", a.stream);
        assert_eq!(a.final_states, f.final_states, "{}", a.stream);
    }
    let json = |r: &ReplayReport| serde_json::to_value(r).unwrap();
    Story {
        full: json(&full),
        checked: json(&checked),
        anchored: json(&anchored),
    }
}

/// `p`'s state and own snapshot after `stream`'s events up to [`ANCHOR`], as the store's
/// records give them.
fn snapshot_at(st: &dyn Store, stream: &str, p: &Plugin) -> StoredSnapshot {
    let mut inst = rt().instantiate(&p.module).unwrap();
    inst.init(&p.config).unwrap();
    let symbols = st.instruments(stream).unwrap();
    inst.set_instruments(&instrument_table(&symbols)).unwrap();
    let mut w = EventBatchWriter::new(Vec::new());
    let range = SeqRange {
        from: 1,
        to: ANCHOR,
    };
    st.read_records(stream, range, &mut |_, _, rec| {
        w.push_record(rec, 1).unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(w.count() as u64, ANCHOR);
    inst.on_events(&w.finish()).unwrap();
    let json = |b: Vec<u8>| -> Value { serde_json::from_slice(&b).unwrap() };
    let state = json(inst.state().unwrap());
    let guest = json(inst.snapshot().unwrap());
    StoredSnapshot {
        stream: stream.into(),
        seq: ANCHOR,
        projector: p.name().into(),
        guest_snapshot: (guest != state).then_some(guest),
        state,
    }
}
