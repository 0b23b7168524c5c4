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
