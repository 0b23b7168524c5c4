//! Output batches as the host reads a guest's: any bytes (a guest is untrusted code).
//!
//! Oracle: decoding never panics; the host's validation (every record decodes) and its use of
//! a validated batch (`outputs::to_json` for decision logs) never panic; a valid batch
//! re-encodes to the same length and re-encoding is a fixed point (bytes, since a metric may
//! be NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_guest::codec::{OutputBatch, OutputBatchWriter, OutputRecord};

fn encode(records: &[OutputRecord<'_>]) -> Vec<u8> {
    let mut w = OutputBatchWriter::new(Vec::new());
    for r in records {
        w.push(r.cause_seq, &r.output);
    }
    w.finish()
}

fuzz_target!(
    init: tapedeck_fuzz::write_seeds_if_asked("codec_outputs"),
    |data: &[u8]| {
        let Ok(batch) = OutputBatch::new(data) else {
            return;
        };
        let announced = batch.announced();
        let Ok(records) = batch.collect::<Result<Vec<_>, _>>() else {
            return;
        };
        assert_eq!(records.len() as u64, u64::from(announced));
        for r in &records {
            let _ = tapedeck::outputs::to_json(&r.output);
        }
        let again = encode(&records);
        assert_eq!(again.len(), data.len(), "re-encoding changed the batch length");
        let decoded: Vec<OutputRecord<'_>> = OutputBatch::new(&again)
            .expect("a re-encoded batch has a header")
            .collect::<Result<_, _>>()
            .expect("a re-encoded batch decodes");
        assert_eq!(encode(&decoded), again, "re-encoding is not a fixed point");
    }
);
