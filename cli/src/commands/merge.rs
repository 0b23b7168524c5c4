//! `tapedeck merge`: shards' partial run directories into one run directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Merge the partial run directories of a sharded `replay`, `regress`, `backtest` or `sweep`
/// (each written with `--shard I/N --out DIR`) into the run directory the single process
/// would have written (a sweep's: its points' run directories, sweep.parquet and reports): the same summary (but its wall-clock `timing`), findings, run card,
/// report.md, report.html, junit.xml and Parquet artifacts, byte for byte. Refuses, naming
/// the directories, shards of different runs, a missing or duplicated shard, or a directory
/// that is not a shard's. Exit code as the single run's: 0 clean (a regression: passed),
/// 1 findings (failed), 2 error.
#[derive(clap::Args, Debug)]
pub struct Merge {
    /// The shards' run directories (any order; each shard exactly once).
    #[arg(required_unless_present = "from", value_name = "RUN_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Also every shard's run directory directly under DIR (one holding a `shard.json`, or a
    /// sweep shard's `sweep-shard.json`): for images without a shell to expand `DIR/shard-*`.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Write the merged run directory here.
    #[arg(long)]
    pub out: PathBuf,
}

impl Merge {
    pub fn run(self) -> Result<ExitCode> {
        let mut dirs = self.dirs.clone();
        let sweep_shards = match &self.from {
            Some(from) => super::sweep::shard_dirs(from)?,
            None => Vec::new(),
        };
        if !sweep_shards.is_empty() || super::sweep::any_shard(&dirs) {
            dirs.extend(sweep_shards);
            return super::sweep::merge(&dirs, &self.out);
        }
        if let Some(from) = &self.from {
            let found = tapedeck::report::merge::shard_dirs(from)?;
            if found.is_empty() {
                anyhow::bail!("--from {}: no shard's run directory in it", from.display());
            }
            dirs.extend(found);
        }
        let m = tapedeck::report::merge::merge(&dirs, &self.out)?;
        outln!(
            "merged {} shards of a {}: {} streams, {}",
            m.shards,
            m.kind,
            m.streams,
            if m.passed { "clean" } else { "findings" }
        );
        let report = if m.kind == "replay" {
            "report.md"
        } else {
            "report.html"
        };
        outln!("report: {}", self.out.join(report).display());
        Ok(if m.passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
