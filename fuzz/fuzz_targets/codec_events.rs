//! Event batches as a guest reads them: any bytes.
//!
//! Oracle: decoding never panics; the iterator and `for_each_event` (the guests' hot path)
//! agree on every batch, events and first error alike; a batch that decodes re-encodes to the
//! same length, and re-encoding is a fixed point (decode ∘ encode ∘ decode = decode); every
//! record of a valid batch is accepted by `push_record` and decodes the same there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_guest::codec::{Event, EventBatch, EventBatchWriter};

fn encode(events: &[Event<'_>]) -> Vec<u8> {
    let mut w = EventBatchWriter::new(Vec::new());
    for e in events {
        w.push(&e.header, &e.payload);
    }
    w.finish()
}

fuzz_target!(
    init: tapedeck_fuzz::write_seeds_if_asked("codec_events"),
    |data: &[u8]| {
        let Ok(batch) = EventBatch::new(data) else {
            return;
        };
        let mut iterated = Vec::new();
        let mut iter_err = None;
        for item in batch.clone() {
            match item {
                Ok(e) => iterated.push(e),
                Err(e) => iter_err = Some(e),
            }
        }
        let mut walked = Vec::new();
        let walk_result = batch.for_each_event(|e| walked.push(*e));
        assert_eq!(walk_result.err(), iter_err, "the two decoders disagree on the error");
        assert_eq!(walked, iterated, "the two decoders disagree on the events");
        if iter_err.is_some() {
            return;
        }
        let again = encode(&iterated);
        assert_eq!(again.len(), data.len(), "re-encoding changed the batch length");
        let decoded: Vec<Event<'_>> = EventBatch::new(&again)
            .expect("a re-encoded batch has a header")
            .collect_all()
            .expect("a re-encoded batch decodes");
        assert_eq!(decoded, iterated, "re-encoding changed the events");
        assert_eq!(encode(&decoded), again, "re-encoding is not a fixed point");

        let mut w = EventBatchWriter::new(Vec::new());
        let records: Vec<Vec<u8>> = {
            let mut src = EventBatchWriter::new(Vec::new());
            for e in &iterated {
                src.push(&e.header, &e.payload);
            }
            src.records().map(<[u8]>::to_vec).collect()
        };
        for r in &records {
            w.push_record(r, 9).expect("a record of a valid batch is accepted");
        }
        let moved: Vec<Event<'_>> = EventBatch::new(w.as_bytes())
            .unwrap()
            .collect_all()
            .expect("records pushed whole decode");
        for (a, b) in moved.iter().zip(&iterated) {
            assert_eq!(a.header.stream, 9);
            assert_eq!((a.header.seq, a.payload), (b.header.seq, b.payload));
        }
    }
);
