//! `tapedeck sweep`: one strategy's config over a grid, each point a backtest, ranked.
//! Built with the `sweep` feature (crate `tapedeck-sweep`, which links polars); without it
//! the command says how to get it and exits 2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// What a binary built without the feature says.
pub const NOT_BUILT: &str = "this tapedeck was built without `sweep` (it links polars, minutes of a cold build): \
build it with `cargo build --release -p tapedeck-cli --features sweep` (or `cargo install --path cli --features sweep`)";

/// Run a strategy over a grid of configs (grid.toml: `[grid]` lists of values, a cartesian
/// product, or `[[point]]` tables, an explicit list; an optional `[base]` config under every
/// point). Each point is a backtest with its own run directory `OUT/points/NNNN/` (rerun it
/// with `tapedeck rerun OUT/points/NNNN`); points × streams run on a pool of --jobs. The
/// points ranked by --metric go to `OUT/sweep.parquet` (one row per point: every parameter,
/// PnL, return, Sharpe, Sortino, drawdown, fills, fees, ...), `OUT/report.md` and
/// `OUT/report.html` (ranked table, per-parameter marginals, a heatmap when two parameters
/// vary). With --shard I/N (or env) only the points with index % N == I run, into a partial
/// sweep directory for `tapedeck merge`. Exit code 0 clean, 1 when a point has findings (a
/// guest trap), 2 error.
#[derive(clap::Args, Debug)]
#[command(mut_arg("jobs", |a| a
    .default_value("0")
    .help("Points × streams run at once (0: one per core)")))]
pub struct Sweep {
    #[command(flatten)]
    pub run: super::replay::RunArgs,
    /// The strategy module.
    #[arg(long)]
    pub strategy: PathBuf,
    /// The grid file (TOML).
    #[arg(long)]
    pub grid: PathBuf,
    /// What points are ranked by: sharpe, sortino, pnl, return, profit_factor, win_rate
    /// (highest first), max_drawdown, fees (lowest first). Ties go to the lower point index.
    #[arg(long, default_value = "sharpe")]
    pub metric: String,
    #[command(flatten)]
    pub venue: super::regress::VenueArgs,
    /// Length of a return period for Sharpe and Sortino (event time): 500ms, 10s, 1m, 1h, 1d.
    #[arg(long, default_value = "1m", value_parser = super::backtest::span)]
    pub period: i64,
    /// The capital returns are relative to, in the quote currency.
    #[arg(long, default_value_t = 100_000.0, value_parser = super::backtest::capital)]
    pub capital: f64,
    /// Equity curve resolution of each point's run: every fill plus at most one point per
    /// this span (event time).
    #[arg(long, default_value = "1m", value_parser = super::backtest::span)]
    pub equity_interval: i64,
    /// Write the sweep directory here (replaced if it is a sweep directory).
    #[arg(long)]
    pub out: PathBuf,
}

#[cfg(not(feature = "sweep"))]
impl Sweep {
    pub fn run(self) -> Result<ExitCode> {
        anyhow::bail!("{NOT_BUILT}")
    }
}

#[cfg(feature = "sweep")]
impl Sweep {
    pub fn run(mut self) -> Result<ExitCode> {
        use anyhow::Context;
        use tapedeck::report::Stopwatch;
        use tapedeck::runtime::ModuleKind;
        use tapedeck::stats::StatsConfig;
        use tapedeck_sweep::grid::Grid;
        use tapedeck_sweep::point::Metric;

        let clock = Stopwatch::start();
        let grid = Grid::load(&self.grid)?;
        let metric: Metric = self.metric.parse().map_err(anyhow::Error::msg)?;
        if self.run.jobs == 0 {
            self.run.jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        let jobs = self.run.jobs;
        // Points, not streams, go to shards.
        let shard = self.run.shard.take();
        let rt = self.run.runtime(1)?;
        let mut mods = super::replay::plugins(
            &rt,
            std::slice::from_ref(&self.strategy),
            ModuleKind::Strategy,
        )?;
        let strategy = mods.remove(0);
        self.venue.config()?;
        let (store, opts, progress) = self.run.open("sweep", false)?;
        drop(progress);
        let venue = tapedeck::venue::VenueConfig {
            equity_interval_ns: Some(self.equity_interval),
            ..self.venue.resolved(store.as_ref(), &opts.streams)?
        };
        let stats = StatsConfig {
            period_ns: self.period,
            capital: self.capital,
        };
        tapedeck_sweep::shard::prepare_out(&self.out)?;
        let sweep = tapedeck_sweep::run::Sweep {
            rt: &rt,
            source: store.as_ref(),
            store: store.describe(),
            strategy: &strategy,
            grid: &grid,
            opts,
            venue,
            stats,
            metric,
        };
        let card = sweep.card();
        let total = grid.len();
        eprintln!(
            "sweep: {total} points{}, {jobs} jobs",
            shard.map_or(String::new(), |s| format!(
                " (shard {s}: every {}th from {})",
                s.count, s.index
            ))
        );
        let points = sweep
            .run_points(&self.out, shard, &|p| {
                eprintln!(
                    "point {:04}/{total} ({}): {metric} {}",
                    p.point,
                    grid.describe(p.point as usize),
                    metric
                        .of(p)
                        .map_or("-".into(), |v| format!("{:.4}", v + 0.0))
                );
            })
            .context("sweep run")?;
        if let Some(shard) = shard {
            tapedeck_sweep::shard::write_shard(
                &self.out,
                &card,
                shard,
                &points,
                &clock.timing(jobs),
            )?;
            outln!(
                "shard {shard}: {} of {total} points in {} (for `tapedeck merge`)",
                points.len(),
                self.out.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let w = tapedeck_sweep::dir::write_sweep_dir(
            &self.out,
            &card,
            &grid,
            &points,
            &clock.timing(jobs),
        )?;
        print_ranked(&w, &points, &grid);
        outln!("report: {}", self.out.join("report.html").display());
        Ok(if w.findings == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// The first ten points, best first.
#[cfg(feature = "sweep")]
pub fn print_ranked(
    w: &tapedeck_sweep::dir::Written,
    points: &[tapedeck_sweep::point::PointSummary],
    grid: &tapedeck_sweep::grid::Grid,
) {
    outln!("rank  point  {:>12}  params", w.metric.column());
    for (rank, i) in w.ranked.iter().take(10).enumerate() {
        let Ok(at) = points.binary_search_by_key(i, |p| p.point) else {
            continue;
        };
        let p = &points[at];
        outln!(
            "{:>4}  {:04}   {:>12}  {}",
            rank + 1,
            p.point,
            w.metric
                .of(p)
                .map_or("-".into(), |v| format!("{:.4}", v + 0.0)),
            grid.describe(p.point as usize)
        );
    }
    if w.findings > 0 {
        outln!(
            "{} points with findings (see their run directories)",
            w.findings
        );
    }
}

/// A sweep shard's own file (the name `tapedeck_sweep::shard::SHARD_FILE` has, known here
/// too so a build without the feature recognizes sweep shards and says what to do).
const SHARD_FILE: &str = "sweep-shard.json";

/// Whether any of `dirs` is a sweep shard's directory.
pub fn any_shard(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| d.join(SHARD_FILE).is_file())
}

/// The sweep shards' directories directly under `dir`.
pub fn shard_dirs(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.join(SHARD_FILE).is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// `tapedeck merge` of sweep shards.
#[cfg(not(feature = "sweep"))]
pub fn merge(_: &[PathBuf], _: &std::path::Path) -> Result<ExitCode> {
    anyhow::bail!("these are a sweep's shards, and {NOT_BUILT}")
}

/// `tapedeck merge` of sweep shards.
#[cfg(feature = "sweep")]
pub fn merge(dirs: &[PathBuf], out: &std::path::Path) -> Result<ExitCode> {
    debug_assert_eq!(SHARD_FILE, tapedeck_sweep::shard::SHARD_FILE);
    let m = tapedeck_sweep::shard::merge(dirs, out)?;
    outln!(
        "merged {} shards of a sweep: {} points",
        m.shards,
        m.points.len()
    );
    print_ranked(&m.written, &m.points, &m.grid);
    outln!("report: {}", out.join("report.html").display());
    Ok(if m.written.findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
