//! Binance capture lines through the importer, into an in-memory store: the whole per-line
//! path of `import binance` (parse, book sync, gap findings, quarantine), state carried from
//! line to line as in one file. The first byte picks the `--market`/`--symbol` overrides.
//!
//! Oracle: no panic; the import never fails on a memory store (a bad line is quarantined, not
//! an error); every event it stored is one replay can pack (`read_records`), since an
//! unpackable event fails every later replay of its stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck::import::binance::{Importer, Market};
use tapedeck::store::{EventSource, MemoryStore, SeqRange};

fuzz_target!(
    init: tapedeck_fuzz::write_seeds_if_asked("binance_line"),
    |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let market = match mode & 3 {
            1 => Some(Market::Spot),
            2 => Some(Market::Usdm),
            _ => None,
        };
        let symbol = (mode & 4 != 0).then(|| "BTCUSDT".to_string());
        let mut store = MemoryStore::new();
        let mut imp = Importer::new(&mut store, market, symbol);
        for (i, line) in tapedeck_fuzz::lines(rest).enumerate() {
            imp.import_line("fuzz", i as u64 + 1, line)
                .expect("importing into a memory store does not fail");
        }
        let summary = imp.finish().expect("finishing an import into a memory store");
        let mut stored = 0;
        for s in store.streams().expect("memory store streams") {
            store
                .read_records(&s.key, SeqRange::ALL, &mut |_, _, _| {
                    stored += 1;
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("a stored event cannot be replayed: {e}"));
        }
        assert_eq!(
            stored,
            summary.events + summary.checkpoints,
            "events stored vs reported"
        );
    }
);
