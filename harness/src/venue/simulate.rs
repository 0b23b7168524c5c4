//! The venue over envelopes held in memory, in one batch.

use std::collections::BTreeMap;

use super::{Performance, Venue, VenueConfig};
use crate::decision::{Decision, Output};
use crate::stats::StatsConfig;

/// Runs the venue over one stream's envelopes and one strategy's decisions on it, in one
/// batch (tests, and callers holding envelopes). `instruments` maps the decisions' instrument
/// ids to symbols.
pub fn simulate(
    events: &[crate::event::Envelope],
    decisions: &[Decision],
    instruments: &BTreeMap<u32, String>,
    cfg: &VenueConfig,
) -> Performance {
    use crate::event::instrument_id;
    let mut enc = crate::event::StreamEncoder::new(0);
    let mut w = tapedeck_guest::codec::EventBatchWriter::new(Vec::new());
    let mut symbols = BTreeMap::new();
    for e in events {
        if let Some(s) = &e.instrument {
            symbols.insert(instrument_id(s), s.clone());
        }
        enc.encode(e, &mut w).expect("encodable events");
    }
    // The decisions' ids, as the events' ids of the same symbols.
    let decisions: Vec<Decision> = decisions
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if let Output::NewOrder { instrument, .. } | Output::Cancel { instrument, .. } =
                &mut d.output
                && let Some(sym) = instruments.get(instrument)
            {
                *instrument = instrument_id(sym);
            }
            d
        })
        .collect();
    let mut v = Venue::new(cfg, symbols, StatsConfig::default());
    v.on_batch(&w.finish(), &decisions);
    v.finish()
}
