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

/// A small spot capture: diffs before the REST snapshot (one superseded, one straddling),
/// tickers and trades, the snapshot, then a chain of diffs.
fn synthetic() -> Vec<String> {
    let diff = |ts: i64, first: u64, last: u64| {
        format!(
            r#"{ts} {{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","E":{ts},"s":"BTCUSDT","U":{first},"u":{last},"b":[["100.{last:02}","1.5"]],"a":[["101.00","0.{first:02}"]]}}}}"#
        )
    };
    let quote = |ts: i64| {
        format!(
            r#"{ts} {{"stream":"btcusdt@bookTicker","data":{{"u":{ts},"s":"BTCUSDT","b":"100.00","B":"1","a":"101.00","A":"2"}}}}"#
        )
    };
    let mut lines = vec![diff(1, 1, 4), quote(2), diff(3, 5, 9), quote(4)];
    lines.push(r#"5 {"lastUpdateId":6,"bids":[["100.00","3"]],"asks":[["101.00","4"]]}"#.into());
    lines.push(quote(6));
    for i in 0..6 {
        lines.push(diff(7 + i, 10 + 2 * i as u64, 11 + 2 * i as u64));
    }
    lines
}

fn stored(store: &MemoryStore) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    for s in store.streams().unwrap() {
        store
            .read(&s.key, SeqRange::ALL, &mut |e| {
                out.push((
                    s.key.clone(),
                    e.seq,
                    serde_json::to_string(&e.body).unwrap(),
                ));
                Ok(())
            })
            .unwrap();
    }
    out
}

#[test]
fn import_resume_loses_the_book_not_at_any_split_of_a_small_capture() {
    // See: issue 11 item 3 (an import ending before the snapshot lost its buffered diffs).
    let lines = synthetic();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (whole, summary) = import(&refs);
    assert_eq!(
        summary.by_stream["md:binance-spot:BTCUSDT"]["book_delta"],
        7
    );
    let md = |v: &[(String, u64, String)]| -> Vec<(String, u64, String)> {
        v.iter()
            .filter(|e| e.0.starts_with("md:"))
            .cloned()
            .collect()
    };
    for k in 0..=lines.len() {
        let mut store = MemoryStore::new();
        for part in [&refs[..k], &refs[..]] {
            let mut imp = Importer::new(&mut store, None, None);
            for (i, l) in part.iter().enumerate() {
                imp.import_line("t", i as u64 + 1, l).unwrap();
            }
            let s = imp.finish().unwrap();
            assert!(s.gaps.is_empty(), "split at {k}: {:?}", s.gaps);
        }
        assert_eq!(md(&stored(&store)), md(&stored(&whole)), "split at {k}");
    }
}

#[test]
fn a_line_that_is_not_utf8_is_quarantined_with_its_bytes() {
    // See: issue 11 item 6 (one invalid-UTF-8 line aborted the whole import).
    let mut store = MemoryStore::new();
    let mut imp = Importer::new(&mut store, None, None);
    let bad = b"7 {\"e\":\"trade\",\"s\":\"BTC\xff\xfeUSDT\"}\r\n";
    imp.import_bytes("t", 1, bad).unwrap();
    imp.import_bytes("t", 2, synthetic()[1].as_bytes()).unwrap();
    let s = imp.finish().unwrap();
    assert_eq!((s.lines, s.quarantined, s.events), (2, 1, 1));
    let rec = &store.quarantined[0].1;
    assert_eq!(rec["line"], 1);
    assert_eq!(rec["hex"], hex(&bad[..bad.len() - 2]));
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8 at byte 23"),
        "{rec}"
    );
    assert!(
        rec["text"]
            .as_str()
            .unwrap()
            .contains("BTC\u{fffd}\u{fffd}USDT"),
        "{rec}"
    );
}

#[test]
fn a_truncated_gzip_imports_every_readable_line_then_is_a_finding() {
    // See: issue 11 item 6 (a truncated .gz stopped where the decoder did, nothing said).
    use std::io::{Read, Write};
    let lines = synthetic();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in &lines {
        writeln!(gz, "{l}").unwrap();
    }
    let gz = gz.finish().unwrap();
    let dir = std::env::temp_dir().join(format!("tapedeck-import-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.jsonl.gz");
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    // Cut inside the trailer (every line decodes, the stream does not end), then mid-stream.
    for cut in [gz.len() - 4, gz.len() / 2] {
        std::fs::write(&path, &gz[..cut]).unwrap();
        // What can be decoded: everything the decoder gives before its error.
        let mut readable = Vec::new();
        let err = flate2::read::GzDecoder::new(&gz[..cut])
            .read_to_end(&mut readable)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        let complete = readable.iter().filter(|b| **b == b'\n').count();
        let partial = !readable.ends_with(b"\n") && !readable.is_empty();
        let mut store = MemoryStore::new();
        let mut imp = Importer::new(&mut store, None, None);
        imp.import_file(&path).unwrap();
        let s = imp.finish().unwrap();
        assert_eq!(s.truncated.len(), 1, "{s:?}");
        let t = &s.truncated[0];
        assert_eq!(
            (t.lines, t.bytes, t.message.as_str()),
            (
                complete as u64,
                readable.len() as u64,
                "truncated gzip stream"
            ),
            "cut at {cut} of {}",
            gz.len()
        );
        assert_eq!(
            s.quarantined,
            u64::from(partial),
            "the incomplete last line"
        );
        assert!(!s.is_clean());
        assert_eq!(stored(&store), stored(&import(&refs[..complete]).0));
    }
    std::fs::remove_dir_all(dir).unwrap();
}
