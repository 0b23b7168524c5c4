//! The importer line by line into a memory store: bad input is quarantined, never a panic.

use super::*;
use crate::store::{EventSource, MemoryStore};

fn import(lines: &[&str]) -> (MemoryStore, ImportSummary) {
    let mut store = MemoryStore::new();
    let mut imp = Importer::new(&mut store, None, None);
    for (i, l) in lines.iter().enumerate() {
        imp.import_line("t", i as u64 + 1, l).unwrap();
    }
    let summary = imp.finish().unwrap();
    (store, summary)
}

#[test]
fn event_time_out_of_range_is_quarantined_not_a_panic() {
    // See: fuzz target binance_line, fuzz/corpus/binance_line/crash-event-time-overflow
    // (`E` in ms times 1e6 overflowed i64: a panic, or a wrapped time in release builds).
    let (store, summary) = import(&[
        r#"1 {"e":"trade","E":9223372036854775807,"s":"BTCUSDT","t":1,"p":"1.0","q":"1.0","m":true}"#,
        r#"2 {"e":"trade","E":1,"T":-9223372036854775807,"s":"BTCUSDT","t":2,"p":"1.0","q":"1.0"}"#,
        r#"3 {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3,"p":"1.0","q":"1.0"}"#,
    ]);
    assert_eq!((summary.quarantined, summary.events), (2, 1));
    let mut times = Vec::new();
    store
        .read("md:binance-spot:BTCUSDT", SeqRange::ALL, &mut |e| {
            times.push(e.occurred_at);
            Ok(())
        })
        .unwrap();
    assert_eq!(times, [1_723_161_255_343_000_000]);
}

#[test]
fn decimals_that_do_not_fit_one_scale_are_quarantined_not_stored() {
    // See: fuzz target binance_line, fuzz/corpus/binance_line/crash-unpackable-decimals
    // (a quote or book whose prices need different scales was stored, and every replay of
    // the stream then failed: "price 6183764000000 out of range at scale 8").
    let (store, summary) = import(&[
        r#"1 {"u":1,"s":"BTCUSDT","b":"6183764000000","B":"1.5","a":"61837.64000000","A":"1"}"#,
        r#"2 {"u":2,"s":"BTCUSDT","b":"1","B":"100000000000","a":"2","A":"0.00000001"}"#,
        r#"3 {"e":"depthUpdate","E":3,"s":"BTCUSDT","U":1,"u":2,"b":[["6183764000000","1"]],"a":[["1.00000001","1"]]}"#,
        r#"4 {"lastUpdateId":1,"bids":[["1","100000000000"]],"asks":[["2","0.00000001"]]}"#,
        r#"5 {"u":3,"s":"BTCUSDT","b":"61837.63","B":"1.5","a":"61837.64000000","A":"1"}"#,
    ]);
    assert_eq!((summary.quarantined, summary.events), (4, 1), "{summary:?}");
    let mut packed = 0;
    store
        .read_records("md:binance-spot:BTCUSDT", SeqRange::ALL, &mut |_, _, _| {
            packed += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(packed, 1);
}

#[test]
fn update_id_at_u64_max_is_a_gap_not_a_panic() {
    // See: fuzz target binance_line, fuzz/corpus/binance_line/crash-update-id-overflow
    // (the diff after one ending at u64::MAX computed `last + 1`; seen while fixing the
    // event-time crash, the input written by hand).
    let (_, summary) = import(&[
        r#"1 {"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}"#,
        r#"2 {"lastUpdateId":1,"bids":[],"asks":[]}"#,
        r#"3 {"e":"depthUpdate","E":3,"s":"BTCUSDT","U":3,"u":18446744073709551615,"b":[],"a":[]}"#,
        r#"4 {"e":"depthUpdate","E":4,"s":"BTCUSDT","U":5,"u":6,"b":[],"a":[]}"#,
    ]);
    assert_eq!(summary.gaps.len(), 1, "{summary:?}");
    assert_eq!(summary.gaps[0].expected, u64::MAX);
    assert_eq!(summary.gaps[0].got, 5);
}
