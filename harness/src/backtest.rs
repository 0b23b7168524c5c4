//! Backtest: one strategy on recorded streams through the simulated venue, in one replay
//! pass (the venue observes each batch right after the guest, as in a regression), with the
//! statistics of [`crate::stats`] per stream and over all streams.
//!
//! With several streams, each stream's venue logs its equity after every event to a scratch
//! file ([`crate::equity_log`]) so the drawdown of the summed equity is exact, in memory that
//! does not grow with the events.

use serde::Serialize;

use crate::decision::Decision;
use crate::equity_log::{EquityLog, EquityLogWriter, combined_drawdown};
use crate::error::Result;
use crate::fs::ScratchDir;
use crate::regress::Totals;
use crate::replay::{
    BatchObserver, Finding, Plugin, ReplayOptions, matching_streams, replay_observed,
};
use crate::runtime::Runtime;
use crate::stats::{Stats, StatsConfig, combine};
use crate::store::EventSource;
use crate::venue::{Performance, Venue, VenueConfig};

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
    /// Sums over streams; `max_drawdown` is the summed equity's (as in `stats`).
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

/// One stream's venue, fed inside the replay loop.
struct StreamRun {
    venue: Venue,
}

impl BatchObserver for StreamRun {
    fn on_batch(&mut self, batch: &[u8], decisions: &[Vec<Decision>]) {
        self.venue.on_batch(batch, &decisions[0]);
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
    let keys = matching_streams(source, &opts.streams)?;
    // Equity logs only where streams are summed.
    let scratch = if keys.len() > 1 {
        Some(ScratchDir::new(None, "tapedeck-backtest")?)
    } else {
        None
    };
    let run = replay_observed(
        rt,
        source,
        std::slice::from_ref(&plugin),
        &ReplayOptions {
            keep_outputs: true,
            ..opts.clone()
        },
        Some(&keys),
        &|key, symbols| {
            let mut v = Venue::new(venue, symbols.clone(), *stats);
            if let Some(dir) = &scratch {
                let name = crate::names::file_name(key);
                v.log_equity(EquityLogWriter::create(
                    &dir.path().join(format!("{name}.equity")),
                )?);
            }
            Ok(StreamRun { venue: v })
        },
    )?;
    let mut totals = Totals::default();
    let mut streams = Vec::with_capacity(run.len());
    let mut logs: Vec<EquityLog> = Vec::new();
    for (mut s, mut obs) in run {
        if let Some(log) = obs.venue.take_equity_log() {
            logs.push(log.finish()?);
        }
        let performance = obs.venue.finish();
        totals.add(&performance);
        streams.push(StreamBacktest {
            instruments: crate::event::instrument_table(&s.instruments),
            stream: s.stream,
            events: s.events,
            performance,
            findings: s.findings,
            decisions: s.outputs.remove(STRATEGY).unwrap_or_default(),
        });
    }
    let all: Vec<&Stats> = streams.iter().map(|s| &s.performance.stats).collect();
    let drawdown = match (&all[..], &scratch) {
        ([], _) => (0.0, 0),
        ([one], _) => (one.max_drawdown, one.max_drawdown_duration_ns),
        (_, Some(dir)) => {
            let paths: Vec<&std::path::Path> = logs.iter().map(EquityLog::path).collect();
            combined_drawdown(&paths, dir.path())?
        }
        (_, None) => unreachable!("several streams have equity logs"),
    };
    // The run's drawdown is the summed curve's, in the totals as in the statistics.
    totals.max_drawdown = drawdown.0;
    Ok(BacktestReport {
        stats: combine(&all, drawdown, stats),
        events: streams.iter().map(|s| s.events).sum(),
        totals,
        streams,
    })
}
