//! `tapedeck bench workload` and `tapedeck bench backtest`: issue 15's quote workload (a
//! Binance capture's bookTicker quotes repeated to N on one stream) and the backtest and
//! regression throughput on it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// The capture the workload is built from, as the shared data directory holds it.
pub const DEFAULT_CAPTURE: &str = "../shared/data/binance/spot_btcusdt_20240808.gz";

#[derive(clap::Args, Debug)]
pub struct WorkloadArgs {
    /// The Binance capture whose bookTicker quotes make the block (read in place).
    #[arg(long, default_value = DEFAULT_CAPTURE)]
    pub capture: PathBuf,
    /// Quotes in the store.
    #[arg(long, default_value_t = 10_000_000)]
    pub quotes: u64,
    /// The store directory (reused while it holds the same workload).
    #[arg(long)]
    pub out: PathBuf,
}

impl WorkloadArgs {
    pub fn run(self) -> Result<ExitCode> {
        let w = tapedeck_dev::workload::quote_workload(&self.capture, self.quotes, &self.out)?;
        outln!("{}", serde_json::to_string(&w)?);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    /// The Binance capture whose bookTicker quotes make the workload (read in place).
    #[arg(long, default_value = DEFAULT_CAPTURE)]
    pub capture: PathBuf,
    /// Quotes in the workload (one stream).
    #[arg(long, default_value_t = 10_000_000)]
    pub quotes: u64,
    /// The workload store [default: $CARGO_TARGET_DIR/tapedeck-bench/quotes-<N>]; written
    /// once and reused while it holds the same workload.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Strategy config: EMA(10) / EMA(50) of the mid, as the issue's peers ran.
    #[arg(long, default_value = EMA_10_50)]
    pub config: String,
    /// Rounds (backtest and regress interleaved); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The venue model's cost instead: an L2 workload (the capture's depth snapshot and diffs,
    /// trades and quotes repeated to --quotes events) backtested with ema-cross joining the
    /// touch with limit orders, through the plain venue and through the realistic model
    /// (risk-averse queue, empirical feed and order latency), rounds interleaved.
    #[arg(long)]
    pub venue_model: bool,
}

/// The venue model `--venue-model` runs: risk-averse queue, empirical latencies (ns).
pub const BENCH_MODEL: &str = r#"{
  "feed_latency": {"model": "empirical", "quantiles_ns": [200000, 400000, 700000, 1500000, 9000000]},
  "order_latency": {"model": "empirical", "quantiles_ns": [300000, 500000, 800000, 2000000, 12000000]},
  "queue": {"model": "risk_averse"},
  "seed": 1
}"#;

/// ema-cross's smoothing factors for EMA(10) and EMA(50): 2 / (n + 1).
pub const EMA_10_50: &str = r#"{"fast":0.18181818181818182,"slow":0.0392156862745098}"#;

impl BacktestArgs {
    fn venue_model(self, bench_dir: &std::path::Path) -> Result<ExitCode> {
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| bench_dir.join(format!("l2-{}", self.quotes)));
        eprintln!(
            "bench backtest --venue-model: {} L2 events at {}",
            self.quotes,
            store.display()
        );
        let w = tapedeck_dev::workload::l2_workload(&self.capture, self.quotes, &store)?;
        if w.generate_secs > 0.0 {
            eprintln!("workload written in {:.1}s", w.generate_secs);
        }
        let rt = tapedeck::runtime::Runtime::new(tapedeck::runtime::RuntimeConfig::default())?;
        let [ema] = super::repo_guests(&rt, ["ema-cross"])?;
        let out = bench_dir.join("venue-runs");
        std::fs::create_dir_all(&out)?;
        let venue = out.join("venue.json");
        std::fs::write(&venue, BENCH_MODEL)?;
        // The strategy joins the touch with limit orders (so the queue model has work).
        let mut cfg: serde_json::Value = serde_json::from_str(&self.config)?;
        cfg["join"] = true.into();
        let opts = tapedeck_dev::bench_backtest::BacktestBenchOptions {
            exe: std::env::current_exe()?,
            store,
            strategy: ema,
            config: cfg.to_string(),
            quotes: self.quotes,
            rounds: self.rounds,
            out,
        };
        let r = tapedeck_dev::bench_backtest::venue_bench(&opts, &venue)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
            outln!("events        {}", r.events);
            outln!(
                "orders        {} (trades: plain {}, model {})",
                r.plain_orders,
                r.plain_trades,
                r.model_trades
            );
            outln!(
                "plain venue   {:.2}M events/s ({:.2}s), peak RSS {:.0} MiB",
                r.plain_events_per_sec / 1e6,
                r.plain_secs,
                mb(r.plain_peak_rss_bytes)
            );
            outln!(
                "venue model   {:.2}M events/s ({:.2}s), peak RSS {:.0} MiB",
                r.model_events_per_sec / 1e6,
                r.model_secs,
                mb(r.model_peak_rss_bytes)
            );
            outln!("slowdown      {:.2}x", r.slowdown);
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn run(self) -> Result<ExitCode> {
        let target = super::default_guest_target_dir();
        let bench_dir = target
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("tapedeck-bench");
        if self.venue_model {
            return self.venue_model(&bench_dir);
        }
        let store = self
            .store
            .unwrap_or_else(|| bench_dir.join(format!("quotes-{}", self.quotes)));
        eprintln!(
            "bench backtest: {} quotes at {}",
            self.quotes,
            store.display()
        );
        let w = tapedeck_dev::workload::quote_workload(&self.capture, self.quotes, &store)?;
        if w.generate_secs > 0.0 {
            eprintln!("workload written in {:.1}s", w.generate_secs);
        }
        let rt = tapedeck::runtime::Runtime::new(tapedeck::runtime::RuntimeConfig::default())?;
        let [ema] = super::repo_guests(&rt, ["ema-cross"])?;
        let opts = tapedeck_dev::bench_backtest::BacktestBenchOptions {
            exe: std::env::current_exe()?,
            store,
            strategy: ema,
            config: self.config,
            quotes: self.quotes,
            rounds: self.rounds,
            out: bench_dir.join("backtest-runs"),
        };
        let r = tapedeck_dev::bench_backtest::backtest_bench(&opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
            outln!("quotes        {}", r.quotes);
            outln!("orders        {}", r.orders);
            outln!(
                "backtest      {:.2}M quotes/s ({:.2}s), peak RSS {:.0} MiB",
                r.backtest_quotes_per_sec / 1e6,
                r.backtest_secs,
                mb(r.backtest_peak_rss_bytes)
            );
            outln!(
                "regress       {:.2}M quotes/s ({:.2}s), peak RSS {:.0} MiB",
                r.regress_quotes_per_sec / 1e6,
                r.regress_secs,
                mb(r.regress_peak_rss_bytes)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
