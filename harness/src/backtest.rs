//! Backtest: one strategy on recorded streams through the simulated venue, in one replay
//! pass (the venue observes each batch right after the guest, as in a regression), with the
//! statistics of [`crate::stats`] per stream and over all streams.
//!
//! Memory does not grow with the events: decisions, fills and equity samples go to the
//! Parquet artifacts' part files as they are produced ([`crate::report::artifacts`]; kept
//! only when the run asks for artifacts), the plots get bounded curves ([`Curve`]), and with
//! several streams each stream's venue logs its equity after every event to a scratch file
//! ([`crate::equity_log`]) so the drawdown of the summed equity is exact.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::curve::Curve;
use crate::decision::Decision;
use crate::equity_log::{EquityLog, EquityLogWriter, combined_drawdown};
use crate::error::Result;
use crate::fs::ScratchDir;
use crate::regress::Totals;
use crate::replay::{
    BatchObserver, DataPin, Finding, Plugin, ReplayOptions, matching_streams, replay_observed,
};
use crate::report::artifacts::{SideFiles, SideParts};
use crate::runtime::Runtime;
use crate::stats::{Stats, StatsConfig, combine};
use crate::store::EventSource;
use crate::venue::{EquityPoint, Performance, Trade, Venue, VenueConfig};

/// The role the artifacts give the one strategy of a backtest.
pub const STRATEGY: &str = "strategy";

#[derive(Debug, Clone, Serialize)]
pub struct StreamBacktest {
    pub stream: String,
    pub events: u64,
    /// The figures (its `fills` and `equity` went to the artifacts and are empty here).
    pub performance: Performance,
    pub findings: Vec<Finding>,
    /// The stream's instrument table, to name instruments in reports.
    #[serde(skip)]
    pub instruments: tapedeck_guest::Instruments,
    /// Equity at the sampled points, for plots.
    #[serde(skip)]
    pub equity_curve: Curve,
    /// Net position (all instruments) after each fill, for plots.
    #[serde(skip)]
    pub position_curve: Curve,
    /// What was read, for the run card.
    #[serde(skip)]
    pub data: DataPin,
}

/// The artifacts' part files, in stream order, for [`crate::report::backtest::write_backtest_dir`].
#[derive(Debug)]
pub struct ArtifactParts {
    pub sides: Vec<SideFiles>,
    _scratch: Arc<ScratchDir>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    pub streams: Vec<StreamBacktest>,
    /// Sums over streams; `max_drawdown` is the summed equity's (as in `stats`).
    pub totals: Totals,
    /// Over all streams (see [`combine`]).
    pub stats: Stats,
    pub events: u64,
    /// When the run was asked for artifacts.
    #[serde(skip)]
    pub artifacts: Option<Arc<ArtifactParts>>,
}

impl BacktestReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.streams.iter().flat_map(|s| &s.findings)
    }

    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }
}

/// One stream's venue, fed inside the replay loop, and where its outputs go.
struct StreamRun {
    venue: Venue,
    out: Outputs,
}

struct Outputs {
    parts: Option<SideParts>,
    equity: Curve,
    position: Curve,
    net: f64,
}

impl Outputs {
    fn record(&mut self, fills: &[Trade], equity: &[EquityPoint]) {
        for f in fills {
            self.net += if f.side == "buy" { f.qty } else { -f.qty };
            self.position.push(f.time_ns, self.net);
        }
        for p in equity {
            self.equity.push(p.time_ns, p.equity);
        }
        if let Some(parts) = &mut self.parts {
            parts.trades(fills);
            parts.equity(equity);
        }
    }
}

impl BatchObserver for StreamRun {
    fn on_batch(&mut self, batch: &[u8], decisions: &[Vec<Decision>]) {
        self.venue.on_batch(batch, &decisions[0]);
        if let Some(parts) = &mut self.out.parts {
            parts.decisions(&decisions[0]);
        }
        let (fills, equity) = (self.venue.take_fills(), self.venue.take_equity());
        self.out.record(&fills, &equity);
    }
}

/// One backtest's streams before they are summed: what a shard writes and `tapedeck merge`
/// reads back ([`crate::report::shard`]), and what [`summarize`] turns into the report.
#[derive(Debug)]
pub struct StreamsRun {
    /// By stream key.
    pub streams: Vec<StreamBacktest>,
    /// Each stream's equity log, in stream order, when the whole run has several streams.
    pub logs: Vec<EquityLog>,
    /// Each stream's artifact parts, in stream order, when the run was asked for artifacts.
    pub sides: Vec<SideFiles>,
    /// Where the parts and logs are (removed with it).
    pub scratch: Option<Arc<ScratchDir>>,
}

/// Runs `strategy` on the streams `opts.streams` matches. With `artifacts`, the directory
/// the run directory is written to, the decisions, trades and equity samples are written
/// there as they come (to part files in a scratch directory that
/// [`crate::report::backtest::write_backtest_dir`] assembles).
pub fn backtest(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    opts: &ReplayOptions,
    venue: &VenueConfig,
    stats: &StatsConfig,
    artifacts: Option<&Path>,
) -> Result<BacktestReport> {
    let run = backtest_streams(rt, source, strategy, opts, venue, stats, artifacts)?;
    let paths: Vec<&Path> = run.logs.iter().map(EquityLog::path).collect();
    summarize(
        run.streams,
        &paths,
        run.sides,
        run.scratch.clone(),
        artifacts.is_some(),
        stats,
    )
}

/// [`backtest`]'s replay pass: each stream's figures, equity log and artifact parts. With
/// `opts.shard`, only that shard's streams, logged as the whole run logs them (an equity log
/// for each stream when the whole selection has several).
pub fn backtest_streams(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    opts: &ReplayOptions,
    venue: &VenueConfig,
    stats: &StatsConfig,
    artifacts: Option<&Path>,
) -> Result<StreamsRun> {
    let plugin = Plugin {
        label: Some(STRATEGY.into()),
        ..strategy.clone()
    };
    let keys = matching_streams(source, &opts.streams)?;
    let several = keys.len() > 1;
    let scratch = match artifacts {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
            Some(Arc::new(ScratchDir::new(Some(dir), "tapedeck-backtest")?))
        }
        // Equity logs only where streams are summed.
        None if several => Some(Arc::new(ScratchDir::new(None, "tapedeck-backtest")?)),
        None => None,
    };
    let run = replay_observed(
        rt,
        source,
        std::slice::from_ref(&plugin),
        &ReplayOptions {
            keep_outputs: false,
            ..opts.clone()
        },
        Some(&keys),
        &|key, symbols| {
            let name = crate::names::file_name(key);
            let mut v = Venue::new(venue, symbols.clone(), *stats);
            if let (true, Some(dir)) = (several, &scratch) {
                v.log_equity(EquityLogWriter::create(
                    &dir.path().join(format!("{name}.equity")),
                )?);
            }
            let parts = match (artifacts, &scratch) {
                (Some(_), Some(dir)) => Some(SideParts::create(
                    dir.path(),
                    &name,
                    key,
                    STRATEGY,
                    crate::event::instrument_table(symbols),
                )?),
                _ => None,
            };
            Ok(StreamRun {
                venue: v,
                out: Outputs {
                    parts,
                    equity: Curve::new(),
                    position: Curve::new(),
                    net: 0.0,
                },
            })
        },
    )?;
    let mut streams = Vec::with_capacity(run.len());
    let mut logs: Vec<EquityLog> = Vec::new();
    let mut sides = Vec::new();
    for (s, StreamRun { mut venue, mut out }) in run {
        if let Some(log) = venue.take_equity_log() {
            logs.push(log.finish()?);
        }
        let mut performance = venue.finish();
        // The fills and samples left at the end (the last event's sample).
        let (fills, equity) = (
            std::mem::take(&mut performance.fills),
            std::mem::take(&mut performance.equity),
        );
        out.record(&fills, &equity);
        if let Some(parts) = out.parts.take() {
            sides.push(parts.finish()?);
        }
        streams.push(StreamBacktest {
            instruments: crate::event::instrument_table(&s.instruments),
            data: s.pin(),
            stream: s.stream,
            events: s.events,
            performance,
            findings: s.findings,
            equity_curve: out.equity,
            position_curve: out.position,
        });
    }
    Ok(StreamsRun {
        streams,
        logs,
        sides,
        scratch,
    })
}

/// The report of a backtest's streams (all of the run's, by stream key): totals, and the
/// statistics over all streams with the drawdown of the summed equity from the streams'
/// equity `logs` (in stream order; unused with one stream). `sides` are the artifact parts
/// (with `artifacts`); `scratch` holds the merge's temporary files and lives as long as the
/// report's parts.
pub fn summarize(
    streams: Vec<StreamBacktest>,
    logs: &[&Path],
    sides: Vec<SideFiles>,
    scratch: Option<Arc<ScratchDir>>,
    artifacts: bool,
    stats: &StatsConfig,
) -> Result<BacktestReport> {
    let mut totals = Totals::default();
    for s in &streams {
        totals.add(&s.performance);
    }
    let all: Vec<&Stats> = streams.iter().map(|s| &s.performance.stats).collect();
    let drawdown = match (&all[..], &scratch) {
        ([], _) => (0.0, 0),
        ([one], _) => (one.max_drawdown, one.max_drawdown_duration_ns),
        (_, Some(dir)) => combined_drawdown(logs, dir.path())?,
        (_, None) => unreachable!("several streams have a scratch directory"),
    };
    // The run's drawdown is the summed curve's, in the totals as in the statistics.
    totals.max_drawdown = drawdown.0;
    Ok(BacktestReport {
        stats: combine(&all, drawdown, stats),
        events: streams.iter().map(|s| s.events).sum(),
        totals,
        streams,
        artifacts: match (artifacts, scratch) {
            (true, Some(scratch)) => Some(Arc::new(ArtifactParts {
                sides,
                _scratch: scratch,
            })),
            _ => None,
        },
    })
}
