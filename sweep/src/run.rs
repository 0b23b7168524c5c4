//! Running a sweep's points: each point is the strategy with the point's config through
//! [`tapedeck::backtest::backtest`] (the one-pass backtest, nothing of its own), written to
//! its own run directory `points/NNNN/` with its run card, so `tapedeck rerun
//! DIR/points/NNNN` reproduces it.
//!
//! Scheduling: a pool of `jobs` workers takes points in index order; with fewer points than
//! jobs, each point replays its streams with the jobs left over (`jobs / workers`), so
//! points × streams fill the cores. Memory: a worker keeps a point's [`PointSummary`] and
//! drops its report; the artifacts go to the point's directory as they are produced.
//!
//! Invariants: what a point writes does not depend on the jobs, the workers, the order
//! points finish or the shard that ran it (a point's run is a whole backtest); summaries
//! come back in point order.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tapedeck::backtest::backtest;
use tapedeck::replay::{Plugin, ReplayOptions};
use tapedeck::report::backtest::write_backtest_dir;
use tapedeck::report::{RunCard, Stopwatch, backtest_card};
use tapedeck::runtime::Runtime;
use tapedeck::shard::Shard;
use tapedeck::stats::StatsConfig;
use tapedeck::store::EventSource;
use tapedeck::venue::VenueConfig;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::point::{Metric, PointSummary};

/// The layout version of `sweep.json` and of a shard's `sweep-shard.json`.
pub const FORMAT: u32 = 1;

/// A sweep to run.
pub struct Sweep<'a> {
    pub rt: &'a Runtime,
    pub source: &'a dyn EventSource,
    /// The store as run cards name it ([`EventSource::describe`]).
    pub store: String,
    /// The strategy (its config is replaced by each point's).
    pub strategy: &'a Plugin,
    pub grid: &'a Grid,
    /// Streams, range, batch, tolerances; `jobs` is the whole pool (points × streams).
    pub opts: ReplayOptions,
    pub venue: VenueConfig,
    pub stats: StatsConfig,
    pub metric: Metric,
}

/// `sweep.json`: what determines a sweep's results. Shards of one sweep have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCard {
    pub format: u32,
    /// The grid file as given.
    pub grid: String,
    pub metric: String,
    /// Every point's config, in point order.
    pub points: Vec<String>,
    /// Each point's run card but for its module config and data pins.
    pub run: RunCard,
}

impl SweepCard {
    /// The identity of the sweep: SHA-256 (hex) of the card's JSON.
    pub fn work(&self) -> String {
        use sha2::Digest;
        let bytes = serde_json::to_vec(self).expect("the sweep card serializes");
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Sweep<'_> {
    fn point_opts(&self, jobs: usize) -> ReplayOptions {
        ReplayOptions {
            jobs,
            shard: None,
            progress: None,
            keep_outputs: false,
            ..self.opts.clone()
        }
    }

    fn plugin(&self, i: usize) -> Plugin {
        Plugin {
            config: self.grid.config(i),
            ..self.strategy.clone()
        }
    }

    /// The sweep's card.
    pub fn card(&self) -> SweepCard {
        let mut run = backtest_card(
            &self.store,
            &Plugin {
                config: String::new(),
                ..self.strategy.clone()
            },
            &self.point_opts(1),
            self.rt.config(),
            &self.venue,
            &self.stats,
        );
        run.data.clear();
        SweepCard {
            format: FORMAT,
            grid: self.grid.file.clone(),
            metric: self.metric.column().to_string(),
            points: (0..self.grid.len()).map(|i| self.grid.config(i)).collect(),
            run,
        }
    }

    /// Runs point `i` with `jobs` streams at once into `out/points/NNNN`.
    pub fn run_point(&self, i: usize, jobs: usize, out: &Path) -> Result<PointSummary> {
        let clock = Stopwatch::start();
        let plugin = self.plugin(i);
        let opts = self.point_opts(jobs);
        let dir = point_dir(out, i, self.grid.len());
        let wrap = |source: tapedeck::Error| Error::Point {
            point: i as u32,
            params: self.grid.describe(i),
            source,
        };
        let r = backtest(
            self.rt,
            self.source,
            &plugin,
            &opts,
            &self.venue,
            &self.stats,
            Some(&dir),
        )
        .map_err(wrap)?;
        let card = backtest_card(
            &self.store,
            &plugin,
            &opts,
            self.rt.config(),
            &self.venue,
            &self.stats,
        )
        .pin_data(r.streams.iter().map(|s| s.data.clone()).collect());
        write_backtest_dir(&dir, &card, &r, &clock.timing(jobs)).map_err(wrap)?;
        Ok(PointSummary::of(i as u32, self.grid.points[i].clone(), &r))
    }

    /// Checks that the strategy takes every point's config (`init`), before any point runs:
    /// a key it does not know, or a value it refuses, is an error naming the point.
    pub fn check_configs(&self) -> Result<()> {
        for i in 0..self.grid.len() {
            let wrap = |source: tapedeck::Error| Error::Point {
                point: i as u32,
                params: self.grid.describe(i),
                source,
            };
            let mut inst = self.rt.instantiate(&self.strategy.module).map_err(wrap)?;
            inst.init(&self.grid.config(i)).map_err(wrap)?;
        }
        Ok(())
    }

    /// Runs every point (with `shard`, that shard's: [`Shard::takes_point`]) on a pool of
    /// `opts.jobs` workers; `done` hears of each point as it ends. The summaries, in point
    /// order. The first error stops the pool (points running finish) and is returned.
    pub fn run_points(
        &self,
        out: &Path,
        shard: Option<Shard>,
        done: &(dyn Fn(&PointSummary) + Sync),
    ) -> Result<Vec<PointSummary>> {
        self.check_configs()?;
        let todo: Vec<usize> = (0..self.grid.len())
            .filter(|i| shard.is_none_or(|s| s.takes_point(*i)))
            .collect();
        let jobs = self.opts.jobs.max(1);
        let workers = jobs.min(todo.len()).max(1);
        let inner = (jobs / workers).max(1);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<PointSummary>> = Mutex::new(Vec::with_capacity(todo.len()));
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        match self.run_point(i, inner, out) {
                            Ok(p) => {
                                done(&p);
                                results.lock().expect("results").push(p);
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                failure.lock().expect("failure").get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().expect("failure") {
            return Err(e);
        }
        let mut v = results.into_inner().expect("results");
        v.sort_by_key(|p| p.point);
        Ok(v)
    }
}

/// `out/points/NNNN`: four digits, more when the grid has more points.
pub fn point_dir(out: &Path, i: usize, points: usize) -> PathBuf {
    let width = points.saturating_sub(1).to_string().len().max(4);
    out.join("points").join(format!("{i:0width$}"))
}
