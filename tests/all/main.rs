//! Workspace integration tests: one binary, one module per area. Guests are built from this
//! repository's sources by the `tapedeck-test-guests` build script.

mod binance;
mod cli;
mod index;
mod parity;
mod projectors;
mod regress;
mod replay;
mod runtime;
mod sdk;
mod snapshots;

use std::sync::OnceLock;

use tapedeck::codec::{EventBatchWriter, EventHeader, Payload};
use tapedeck::runtime::{Module, Runtime, RuntimeConfig};

/// One runtime per test process (each engine reserves address space for its pool), with its
/// own compile cache so tests do not touch the user's.
pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let cache =
            std::env::temp_dir().join(format!("tapedeck-test-cache-{}", std::process::id()));
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache),
            memory_limit: 64 << 20,
            max_instances: 64,
            fuel_per_event: 100_000,
            ..RuntimeConfig::default()
        })
        .expect("runtime")
    })
}

pub fn load(path: &str) -> Module {
    rt().load(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Packs `(instrument, payload)` pairs as one stream's events with seqs from `first_seq`.
pub fn batch(first_seq: u64, events: &[(u32, Payload<'_>)]) -> Vec<u8> {
    let mut w = EventBatchWriter::new(Vec::new());
    for (i, (instrument, p)) in events.iter().enumerate() {
        let seq = first_seq + i as u64;
        let h = EventHeader {
            stream: 1,
            instrument: *instrument,
            seq,
            time_ns: seq as i64 * 1000,
            px_scale: 2,
            qty_scale: 3,
        };
        w.push(&h, p);
    }
    w.finish()
}
