//! Lines of a file-store log part: each parsed as the store reads it (`serde_json` into an
//! `Envelope`), then packed as replay packs it (`StreamEncoder`, as `read_records` does when no
//! index serves the stream).
//!
//! Oracle: no panic; an envelope that parses is written back (as `append` writes it) to a line
//! that reads back equal and that the store's stream filter (`"stream_key":<json>`) finds; an
//! envelope that encodes gives one record that decodes with its seq, time and kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::event::{Envelope, StreamEncoder};
use tapedeck_guest::codec::{EventBatch, EventBatchWriter};

fuzz_target!(
    init: tapedeck_fuzz::write_seeds_if_asked("envelope_jsonl"),
    |data: &[u8]| {
        let mut enc = StreamEncoder::new(0);
        let mut buf = Vec::new();
        for line in tapedeck_fuzz::lines(data) {
            let Ok(e) = serde_json::from_str::<Envelope>(line) else {
                continue;
            };
            let written = serde_json::to_string(&e).expect("an envelope serializes");
            let back: Envelope = serde_json::from_str(&written)
                .unwrap_or_else(|err| panic!("written envelope does not read back: {err}: {written}"));
            assert_eq!(back, e, "written envelope reads back different: {written}");
            let needle = format!("\"stream_key\":{}", serde_json::to_string(&e.stream_key).unwrap());
            assert!(written.contains(&needle), "stream filter misses {written}");

            let mut w = EventBatchWriter::new(std::mem::take(&mut buf));
            if enc.encode(&e, &mut w).is_ok() {
                let ev = EventBatch::new(w.as_bytes())
                    .expect("an encoded batch has a header")
                    .collect_all()
                    .expect("an encoded envelope decodes");
                assert_eq!(ev.len(), 1);
                assert_eq!((ev[0].header.seq, ev[0].header.time_ns), (e.seq, e.occurred_at));
                assert_eq!(
                    format!("{:?}", ev[0].kind()).to_lowercase(),
                    e.body.event_type().replace('_', ""),
                );
            }
            buf = w.finish();
        }
    }
);
