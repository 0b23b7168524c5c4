//! `tapedeck bench sweep`: a sweep of 64 points over issue 15's quote workload against 64
//! times one backtest of it, each a whole `tapedeck` process, in the same run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::bench_backtest::{DEFAULT_CAPTURE, EMA_10_50};

/// The quotes by default: 64 backtests of issue 15's 10M quotes take many minutes; the ratio
/// is the same figure at 1M (each point still reads, runs and writes a whole backtest).
const DEFAULT_QUOTES: u64 = 1_000_000;

#[derive(clap::Args, Debug)]
pub struct SweepBenchArgs {
    /// The Binance capture whose bookTicker quotes make the workload (read in place).
    #[arg(long, default_value = DEFAULT_CAPTURE)]
    pub capture: PathBuf,
    /// Quotes in the workload (one stream); issue 15's is 10000000.
    #[arg(long, default_value_t = DEFAULT_QUOTES)]
    pub quotes: u64,
    /// The workload store [default: $CARGO_TARGET_DIR/tapedeck-bench/quotes-<N>].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Rounds of the single backtest (its median is the "one").
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The sweep's --jobs [default: the cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `bench sweep` measures.
#[derive(Debug, Serialize)]
pub struct SweepBench {
    pub quotes: u64,
    pub points: usize,
    pub jobs: usize,
    /// `debug` or `release`: the binary measured.
    pub build: &'static str,
    pub one_backtest_secs: f64,
    pub sweep_secs: f64,
    pub sweep_peak_rss_bytes: u64,
    /// 64 × one backtest / the sweep (issue 15's goal: ≥ 1.8).
    pub ratio: f64,
}

/// ema-cross's smoothing factors 2 / (n + 1) over 8 fast and 8 slow windows: 64 points.
fn grid() -> String {
    let alpha = |ns: &[u32]| {
        let v: Vec<String> = ns
            .iter()
            .map(|n| format!("{:?}", 2.0 / (f64::from(*n) + 1.0)))
            .collect();
        v.join(", ")
    };
    format!(
        "[grid]\nfast = [{}]\nslow = [{}]\n",
        alpha(&[5, 8, 10, 12, 15, 20, 25, 30]),
        alpha(&[40, 50, 60, 80, 100, 120, 150, 200])
    )
}

impl SweepBenchArgs {
    pub fn run(self) -> Result<ExitCode> {
        if !cfg!(feature = "sweep") {
            anyhow::bail!("{}", super::sweep::NOT_BUILT);
        }
        let target = super::default_guest_target_dir();
        let bench_dir = target
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("tapedeck-bench");
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| bench_dir.join(format!("quotes-{}", self.quotes)));
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        eprintln!(
            "bench sweep: {} quotes at {} ({build} build{})",
            self.quotes,
            store.display(),
            if self.quotes == DEFAULT_QUOTES {
                "; --quotes 10000000 for issue 15's workload"
            } else {
                ""
            }
        );
        let w = tapedeck_dev::workload::quote_workload(&self.capture, self.quotes, &store)?;
        if w.generate_secs > 0.0 {
            eprintln!("workload written in {:.1}s", w.generate_secs);
        }
        let rt = tapedeck::runtime::Runtime::new(tapedeck::runtime::RuntimeConfig::default())?;
        let [ema] = super::repo_guests(&rt, ["ema-cross"])?;
        let out = bench_dir.join("sweep-runs");
        std::fs::create_dir_all(&out)?;
        let grid_file = out.join("grid.toml");
        std::fs::write(&grid_file, grid())?;
        let points = 64;
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let s = |p: &std::path::Path| p.display().to_string();
        let exe = std::env::current_exe()?;
        let one = [
            "backtest".to_string(),
            "--store".into(),
            s(&store),
            "--strategy".into(),
            s(&ema),
            "--config".into(),
            EMA_10_50.into(),
            "--out".into(),
            s(&out.join("one")),
        ];
        let mut ones = Vec::new();
        for _ in 0..self.rounds.max(1) {
            ones.push(tapedeck_dev::bench_backtest::measure(&exe, &one)?.0);
        }
        ones.sort_by(f64::total_cmp);
        let one_secs = ones[ones.len() / 2];
        let sweep = [
            "sweep".to_string(),
            "--store".into(),
            s(&store),
            "--strategy".into(),
            s(&ema),
            "--grid".into(),
            s(&grid_file),
            "--jobs".into(),
            jobs.to_string(),
            "--out".into(),
            s(&out.join("sweep")),
        ];
        let (sweep_secs, rss) = tapedeck_dev::bench_backtest::measure(&exe, &sweep)?;
        let r = SweepBench {
            quotes: self.quotes,
            points,
            jobs,
            build,
            one_backtest_secs: one_secs,
            sweep_secs,
            sweep_peak_rss_bytes: rss,
            ratio: points as f64 * one_secs / sweep_secs,
        };
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            outln!("quotes        {} ({build} build)", r.quotes);
            outln!(
                "one backtest  {:.2}s (median of {})",
                r.one_backtest_secs,
                ones.len()
            );
            outln!(
                "sweep         {:.2}s for {points} points, --jobs {jobs}, peak RSS {:.0} MiB",
                r.sweep_secs,
                rss as f64 / (1024.0 * 1024.0)
            );
            outln!("ratio         {:.2} (64 × one / sweep)", r.ratio);
        }
        Ok(ExitCode::SUCCESS)
    }
}
