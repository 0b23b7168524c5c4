//! The read side of the seam over a seeded store: `read` and `read_records` of seq ranges
//! (the records must be the bytes the encoder makes, and decode to the same seqs and times),
//! and `query` by type, time, payload containment, trace, id, glob, seq and limit, against
//! expectations written out from the event set.

use serde_json::json;
use tapedeck::codec::{EventBatch, EventBatchWriter};
use tapedeck::event::{Envelope, StreamEncoder};
use tapedeck::store::{EventQuery, SeqRange, Store};

use super::data::{self, BTC, ETH, EXEC, STREAMS};
use super::subjects::Subject;
use super::{SOL, read, read_all, seed};

pub fn read_ranges_give_exactly_the_range(s: &mut dyn Subject) {
    seed(s.store());
    s.reopen();
    for stream in STREAMS {
        let events = data::of(stream);
        let n = events.len() as u64;
        for (from, to) in [
            (1, 1),
            (2, 4),
            (n, n),
            (n - 1, u64::MAX),
            (0, 2),
            (1, u64::MAX),
            (n + 1, u64::MAX),
            (4, 2),
        ] {
            let range = SeqRange { from, to };
            let want: Vec<&Envelope> = events.iter().filter(|e| range.contains(e.seq)).collect();
            let got = read(s.store(), stream, range);
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                want,
                "{stream} {from}..={to}"
            );
            check_records(s.store(), stream, range, &want);
        }
        // The instruments a backtest names ids by: those of the stream's events.
        let want: std::collections::BTreeMap<u32, String> = events
            .iter()
            .filter_map(|e| e.instrument.clone())
            .map(|sym| (tapedeck::event::instrument_id(&sym), sym))
            .collect();
        assert_eq!(s.store().instruments(stream).unwrap(), want, "{stream}");
    }
    assert!(read_all(s.store(), SOL).is_empty(), "an unknown stream");
    assert!(s.store().instruments(SOL).unwrap().is_empty());
    check_records(s.store(), SOL, SeqRange::ALL, &[]);
}

/// `read_records` gives `want`'s seqs and times, and records that decode to them and are the
/// bytes the encoder makes of `want` (stream id 0).
fn check_records(st: &dyn Store, stream: &str, range: SeqRange, want: &[&Envelope]) {
    let mut got: Vec<(u64, i64, Vec<u8>)> = Vec::new();
    st.read_records(stream, range, &mut |seq, time, rec| {
        got.push((seq, time, rec.to_vec()));
        Ok(())
    })
    .unwrap();
    let mut enc = StreamEncoder::new(0);
    let mut w = EventBatchWriter::new(Vec::new());
    for e in want {
        enc.encode(e, &mut w).unwrap();
    }
    let expected: Vec<(u64, i64, Vec<u8>)> = want
        .iter()
        .zip(w.records())
        .map(|(e, r)| (e.seq, e.occurred_at, r.to_vec()))
        .collect();
    assert_eq!(got, expected, "{stream} {range:?}: records");
    let mut batch = EventBatchWriter::new(Vec::new());
    for (_, _, rec) in &got {
        batch.push_record(rec, 1).unwrap();
    }
    let bytes = batch.finish();
    let decoded = EventBatch::new(&bytes).unwrap().collect_all().unwrap();
    let heads: Vec<(u64, i64)> = decoded
        .iter()
        .map(|e| (e.header.seq, e.header.time_ns))
        .collect();
    let times: Vec<(u64, i64)> = want.iter().map(|e| (e.seq, e.occurred_at)).collect();
    assert_eq!(heads, times, "{stream} {range:?}: decoded");
}

pub fn queries_give_the_expected_events(s: &mut dyn Subject) {
    seed(s.store());
    s.reopen();
    let q = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery {
            limit: 1000,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    // (what, the query, the events it gives as (stream, seq)).
    type Case = (&'static str, EventQuery, Vec<(&'static str, u64)>);
    let cases: Vec<Case> = vec![
        ("everything", q(|_| {}), {
            let mut all: Vec<(&str, u64)> = Vec::new();
            for stream in STREAMS {
                all.extend(data::of(stream).iter().map(|e| (stream, e.seq)));
            }
            all
        }),
        (
            "fills",
            q(|q| q.event_types = vec!["fill".into()]),
            vec![(EXEC, 3), (EXEC, 4), (EXEC, 6)],
        ),
        (
            "quotes and trades of md:*",
            q(|q| {
                q.stream = Some("md:*".into());
                q.event_types = vec!["quote".into(), "trade".into()];
            }),
            vec![
                (BTC, 2),
                (BTC, 4),
                (BTC, 5),
                (BTC, 7),
                (ETH, 1),
                (ETH, 2),
                (ETH, 3),
                (ETH, 4),
            ],
        ),
        (
            "event times 5..=10, bounds inclusive",
            q(|q| {
                q.from_time = Some(data::at(5));
                q.to_time = Some(data::at(10));
            }),
            vec![(EXEC, 3), (EXEC, 4), (BTC, 3), (BTC, 4), (BTC, 5), (ETH, 2)],
        ),
        (
            "payload contains client_order_id 7",
            q(|q| q.contains = Some(json!({"client_order_id": 7}))),
            vec![(EXEC, 1), (EXEC, 2), (EXEC, 3), (EXEC, 4)],
        ),
        (
            "payload contains a nested array element",
            q(|q| q.contains = Some(json!({"data": {"tags": ["y"]}}))),
            vec![(EXEC, 7)],
        ),
        (
            "sells",
            q(|q| q.contains = Some(json!({"side": "sell"}))),
            vec![(EXEC, 5), (EXEC, 6)],
        ),
        (
            "trace",
            q(|q| q.trace_id = Some("trace-8".into())),
            vec![(EXEC, 5), (EXEC, 6)],
        ),
        (
            "event id",
            q(|q| q.event_id = Some(data::GIVEN_ID.into())),
            vec![(EXEC, 7)],
        ),
        (
            "one-character glob, from seq 5",
            q(|q| {
                q.stream = Some("md:conf:?TCUSDT".into());
                q.from_seq = Some(5);
            }),
            vec![(BTC, 5), (BTC, 6), (BTC, 7)],
        ),
        (
            "limit 2 over streams",
            q(|q| {
                q.event_types = vec!["quote".into()];
                q.limit = 2;
            }),
            vec![(BTC, 2), (BTC, 5)],
        ),
        (
            "after the last event",
            q(|q| q.from_time = Some(data::at(20))),
            vec![],
        ),
    ];
    for (what, query, want) in cases {
        let mut got = Vec::new();
        s.store()
            .query(&query, &mut |e| {
                got.push(e);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want: Vec<Envelope> = want.iter().map(|(k, seq)| data::event(k, *seq)).collect();
        assert_eq!(got, want, "{what}");
    }
}
