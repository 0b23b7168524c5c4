//! `tapedeck regress`: baseline vs candidate strategy on recorded history.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use tapedeck::regress::{FailOn, regress, verdict};
use tapedeck::report::{Stopwatch, describe, regress_card, write_regress_dir};
use tapedeck::runtime::ModuleKind;
use tapedeck::venue::VenueConfig;

/// Run a baseline and a candidate strategy on the same streams with the same batch
/// boundaries, execute both against the recorded market (simulated venue), and report where
/// they first diverge and what changes: trades, PnL, drawdown, fees, turnover.
/// Exit code 0 clean, 1 when a --fail-on rule triggers, 2 error.
#[derive(clap::Args, Debug)]
pub struct Regress {
    #[command(flatten)]
    pub run: super::replay::RunArgs,
    /// The current strategy module.
    #[arg(long)]
    pub baseline: PathBuf,
    /// The changed strategy module.
    #[arg(long)]
    pub candidate: PathBuf,
    /// Config JSON for both strategies ("" = their defaults).
    #[arg(long, default_value = "")]
    pub config: String,
    #[command(flatten)]
    pub venue: VenueArgs,
    /// Comma-separated rules: divergence, pnl-drop:X (or X%), drawdown-increase:X.
    /// Findings (a guest trap) always fail the run.
    #[arg(long, default_value = "")]
    pub fail_on: String,
    /// Warm-up sensitivity: replay each strategy fresh from N start points spread over the
    /// first half of each stream and report the first seq from which every start point's
    /// decisions equal the full run's (also `warmup.json` in the run directory).
    #[arg(long, value_name = "N", value_parser = super::warmup::points)]
    pub warmup_check: Option<usize>,
    /// Write the run directory here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The simulated venue's settings (regress and backtest).
#[derive(clap::Args, Debug)]
pub struct VenueArgs {
    /// Order latency in the simulated venue, microseconds.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=86_400_000_000))]
    pub latency_us: i64,
    /// Fee for fills of resting limit orders, basis points of notional (negative: a rebate).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = bps)]
    pub maker_fee_bps: f64,
    /// Fee for market orders and marketable limits, basis points of notional.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true, value_parser = bps)]
    pub taker_fee_bps: f64,
    /// The realistic venue model, a JSON file (see the README's "Venue model"): latency
    /// models (constant, empirical, fitted from the tape), queue position on L2 data
    /// (risk_averse, prob_power, prob_log, ..), book walking with partial fills and time in
    /// force, own impact, fee schedules per instrument with tiers and rebates, funding. The
    /// run card records it, with tape latencies as the distributions fitted. Without it the
    /// plain venue runs: fills at the touch, one latency, flat fees.
    #[arg(long, value_name = "CONFIG")]
    pub venue: Option<std::path::PathBuf>,
}

impl VenueArgs {
    /// The settings, with the model file read and checked (its tape latencies not fitted
    /// yet: [`VenueArgs::resolved`]).
    pub fn config(&self) -> Result<VenueConfig> {
        let model = match &self.venue {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading venue config {}", path.display()))?;
                Some(
                    tapedeck::venue::VenueModel::from_json(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(VenueConfig {
            latency_ns: self.latency_us * 1000,
            maker_fee_bps: self.maker_fee_bps,
            taker_fee_bps: self.taker_fee_bps,
            model,
            ..VenueConfig::default()
        })
    }

    /// [`VenueArgs::config`] with tape latencies fitted from `store` (the run's streams
    /// `glob`).
    pub fn resolved(
        &self,
        store: &dyn tapedeck::store::EventSource,
        glob: &str,
    ) -> Result<VenueConfig> {
        let cfg = self.config()?;
        if !cfg.model.as_ref().is_some_and(|m| m.needs_tape()) {
            return Ok(cfg);
        }
        let keys = tapedeck::replay::matching_streams(store, glob)?;
        Ok(tapedeck::venue::latency::resolve(&cfg, store, &keys)?)
    }
}

/// A fee in basis points: a finite number within ±10,000 (NaN would make every fee 0).
fn bps(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || v.abs() > 10_000.0 {
        return Err(format!(
            "{s:?} is not a fee: want basis points between -10000 and 10000"
        ));
    }
    Ok(v)
}

impl Regress {
    pub fn run(self) -> Result<ExitCode> {
        let clock = Stopwatch::start();
        let rules = FailOn::parse_list(&self.fail_on).map_err(anyhow::Error::msg)?;
        let rt = self.run.runtime(2)?;
        let mut mods = super::replay::plugins(
            &rt,
            &[self.baseline.clone(), self.candidate.clone()],
            ModuleKind::Strategy,
        )?;
        for m in &mut mods {
            m.config = self.config.clone();
        }
        self.venue.config()?;
        let (store, opts, progress) = self.run.open("regress", true)?;
        let venue = self.venue.resolved(store.as_ref(), &opts.streams)?;
        let report = regress(&rt, store.as_ref(), &mods[0], &mods[1], &opts, &venue)
            .context("regression run")?;
        drop(progress);
        let verdict = verdict(&rules, &report);
        let (b, c) = (&report.baseline, &report.candidate);
        outln!(
            "streams {}, diverged {}",
            report.streams.len(),
            report.diverged_streams
        );
        outln!("            {:>16} {:>16}", "baseline", "candidate");
        outln!("decisions   {:>16} {:>16}", b.decisions, c.decisions);
        outln!("trades      {:>16} {:>16}", b.trades, c.trades);
        outln!("PnL         {:>16.4} {:>16.4}", b.pnl, c.pnl);
        outln!(
            "max DD      {:>16.4} {:>16.4}",
            b.max_drawdown,
            c.max_drawdown
        );
        outln!("fees        {:>16.4} {:>16.4}", b.fees, c.fees);
        outln!("turnover    {:>16.4} {:>16.4}", b.turnover, c.turnover);
        for s in &report.streams {
            if let Some(d) = &s.first_divergence {
                outln!(
                    "{}: first divergence at seq {} ({})",
                    s.stream,
                    d.seq,
                    d.event_type
                );
            }
        }
        for f in report.findings() {
            outln!("{}", describe(f));
        }
        for v in &verdict {
            outln!("FAIL: {v}");
        }
        if let Some(out) = &self.out {
            let card = regress_card(
                &store.describe(),
                &mods[0],
                &mods[1],
                &opts,
                rt.config(),
                &venue,
                &rules,
            )
            .pin_data(report.streams.iter().map(|s| s.data.clone()).collect());
            let timing = clock.timing(opts.jobs);
            if let Some(shard) = opts.shard {
                tapedeck::report::shard::write_regress_shard(
                    out,
                    &card.for_shard(shard),
                    &report,
                    &timing,
                )?;
                outln!("shard {shard}: {} (for `tapedeck merge`)", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            write_regress_dir(out, &card, &report, &verdict, &timing)?;
            outln!("report: {}", out.join("report.html").display());
        }
        if let Some(n) = self.warmup_check {
            super::warmup::run(&rt, store.as_ref(), &mods, &opts, n, self.out.as_deref())?;
        }
        Ok(if verdict.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
