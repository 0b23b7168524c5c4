//! `tapedeck backtest`: one strategy on recorded history through the simulated venue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use tapedeck::backtest::backtest;
use tapedeck::report::backtest::{stat_rows, write_backtest_dir};
use tapedeck::report::{Stopwatch, backtest_card, describe};
use tapedeck::runtime::ModuleKind;
use tapedeck::stats::StatsConfig;

/// Run one strategy on recorded streams, execute its orders against the recorded market
/// (simulated venue, in the same pass), and report PnL, return, Sharpe and Sortino on period
/// returns, max drawdown and its duration, win rate, average win and loss, profit factor,
/// turnover, fees and exposure time, overall, per stream and per instrument.
/// Exit code 0 clean, 1 on findings (a guest trap), 2 error.
#[derive(clap::Args, Debug)]
pub struct Backtest {
    #[command(flatten)]
    pub run: super::replay::RunArgs,
    /// The strategy module.
    #[arg(long)]
    pub strategy: PathBuf,
    /// Config JSON for the strategy ("" = its defaults).
    #[arg(long, default_value = "")]
    pub config: String,
    #[command(flatten)]
    pub venue: super::regress::VenueArgs,
    /// Length of a return period for Sharpe and Sortino (event time, aligned to the epoch):
    /// 500ms, 10s, 1m, 1h, 1d.
    #[arg(long, default_value = "1m", value_parser = span)]
    pub period: i64,
    /// The capital returns are relative to, in the quote currency.
    #[arg(long, default_value_t = 100_000.0, value_parser = capital)]
    pub capital: f64,
    /// Equity curve resolution: every fill plus at most one point per this span (event time).
    #[arg(long, default_value = "1m", value_parser = span)]
    pub equity_interval: i64,
    /// Warm-up sensitivity: replay each strategy fresh from N start points spread over the
    /// first half of each stream and report the first seq from which every start point's
    /// decisions equal the full run's (also `warmup.json` in the run directory).
    #[arg(long, value_name = "N", value_parser = super::warmup::points)]
    pub warmup_check: Option<usize>,
    /// Write the run directory here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn span(s: &str) -> Result<i64, String> {
    tapedeck::time::parse_span(s).ok_or_else(|| {
        format!("{s:?} is not a span of time: want a number and ns, us, ms, s, m, h or d")
    })
}

pub fn capital(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("{s:?} is not a positive amount"))
}

impl Backtest {
    pub fn run(self) -> Result<ExitCode> {
        let clock = Stopwatch::start();
        let rt = self.run.runtime(1)?;
        let mut mods = super::replay::plugins(
            &rt,
            std::slice::from_ref(&self.strategy),
            ModuleKind::Strategy,
        )?;
        mods[0].config = self.config.clone();
        self.venue.config()?;
        let (store, opts, progress) = self.run.open("backtest", true)?;
        let venue = tapedeck::venue::VenueConfig {
            equity_interval_ns: Some(self.equity_interval),
            ..self.venue.resolved(store.as_ref(), &opts.streams)?
        };
        let stats = StatsConfig {
            period_ns: self.period,
            capital: self.capital,
        };
        if let (Some(shard), Some(out)) = (opts.shard, &self.out) {
            let run = tapedeck::backtest::backtest_streams(
                &rt,
                store.as_ref(),
                &mods[0],
                &opts,
                &venue,
                &stats,
                Some(out),
            )
            .context("backtest run")?;
            drop(progress);
            let card = backtest_card(
                &store.describe(),
                &mods[0],
                &opts,
                rt.config(),
                &venue,
                &stats,
            )
            .pin_data(run.streams.iter().map(|s| s.data.clone()).collect());
            let events: u64 = run.streams.iter().map(|s| s.events).sum();
            outln!(
                "shard {shard}: streams {}, events {events}",
                run.streams.len()
            );
            for f in run.streams.iter().flat_map(|s| &s.findings) {
                outln!("{}", describe(f));
            }
            tapedeck::report::shard::write_backtest_shard(
                out,
                &card.for_shard(shard),
                run,
                &clock.timing(opts.jobs),
            )?;
            outln!("shard {shard}: {} (for `tapedeck merge`)", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        let report = backtest(
            &rt,
            store.as_ref(),
            &mods[0],
            &opts,
            &venue,
            &stats,
            self.out.as_deref(),
        )
        .context("backtest run")?;
        drop(progress);
        outln!("streams {}, events {}", report.streams.len(), report.events);
        for (k, v) in stat_rows(&report.stats, report.totals.orders, report.totals.trades) {
            outln!("{k:<24}{v:>20}");
        }
        for f in report.findings() {
            outln!("{}", describe(f));
        }
        if let Some(out) = &self.out {
            let card = backtest_card(
                &store.describe(),
                &mods[0],
                &opts,
                rt.config(),
                &venue,
                &stats,
            )
            .pin_data(report.streams.iter().map(|s| s.data.clone()).collect());
            write_backtest_dir(out, &card, &report, &clock.timing(opts.jobs))?;
            outln!("report: {}", out.join("report.html").display());
        }
        if let Some(n) = self.warmup_check {
            super::warmup::run(
                &rt,
                store.as_ref(),
                &mods[..1],
                &opts,
                n,
                self.out.as_deref(),
            )?;
        }
        Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
