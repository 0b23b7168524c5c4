//! Backtest: one strategy on recorded streams through the simulated venue, in the one pass
//! regress uses ([`crate::regress::execute`]), with the statistics of [`crate::stats`] per
//! stream and over all streams.

use serde::Serialize;

use crate::decision::Decision;
use crate::error::Result;
use crate::regress::{Totals, execute};
use crate::replay::{Finding, Plugin, ReplayOptions};
use crate::runtime::Runtime;
use crate::stats::{Stats, StatsConfig, combine};
use crate::store::EventSource;
use crate::venue::{Performance, VenueConfig};

/// The role the artifacts give the one strategy of a backtest.
pub const STRATEGY: &str = "strategy";

#[derive(Debug, Clone, Serialize)]
pub struct StreamBacktest {
    pub stream: String,
    pub events: u64,
    pub performance: Performance,
    pub findings: Vec<Finding>,
    /// Every output, for the decisions artifact.
    #[serde(skip)]
    pub decisions: Vec<Decision>,
    /// The stream's instrument table, to name instruments in reports.
    #[serde(skip)]
    pub instruments: tapedeck_guest::Instruments,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    pub streams: Vec<StreamBacktest>,
    pub totals: Totals,
    /// Over all streams (see [`combine`]).
    pub stats: Stats,
    pub events: u64,
}

impl BacktestReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.streams.iter().flat_map(|s| &s.findings)
    }

    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }
}

/// Runs `strategy` on the streams `opts.streams` matches.
pub fn backtest(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    opts: &ReplayOptions,
    venue: &VenueConfig,
    stats: &StatsConfig,
) -> Result<BacktestReport> {
    let plugin = Plugin {
        label: Some(STRATEGY.into()),
        ..strategy.clone()
    };
    let executed = execute(
        rt,
        source,
        std::slice::from_ref(&plugin),
        &ReplayOptions {
            keep_outputs: true,
            ..opts.clone()
        },
        venue,
        stats,
    )?;
    let mut totals = Totals::default();
    let mut streams = Vec::with_capacity(executed.len());
    for (mut s, perf) in executed {
        let performance = perf.into_iter().next().expect("one strategy");
        totals.add(&performance);
        streams.push(StreamBacktest {
            instruments: crate::event::instrument_table(&source.instruments(&s.stream)?),
            stream: s.stream,
            events: s.events,
            performance,
            findings: s.findings,
            decisions: s.outputs.remove(STRATEGY).unwrap_or_default(),
        });
    }
    let all: Vec<&Stats> = streams.iter().map(|s| &s.performance.stats).collect();
    Ok(BacktestReport {
        stats: combine(&all, stats),
        events: streams.iter().map(|s| s.events).sum(),
        totals,
        streams,
    })
}
