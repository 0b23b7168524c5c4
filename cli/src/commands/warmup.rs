//! `--warmup-check N` of `regress` and `backtest`: the warm-up sensitivity of each strategy
//! ([`tapedeck::warmup`]), printed and written to `warmup.json` in the run directory.

use std::path::Path;

use anyhow::{Context, Result};

use tapedeck::replay::{Plugin, ReplayOptions};
use tapedeck::runtime::Runtime;
use tapedeck::store::EventSource;
use tapedeck::warmup::{WarmupReport, warmup_check};

/// Parses N: at least 1 start point.
pub fn points(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| format!("{s:?} is not a number of start points (1 to 1000)"))
}

pub fn run(
    rt: &Runtime,
    source: &dyn EventSource,
    strategies: &[Plugin],
    opts: &ReplayOptions,
    n: usize,
    out: Option<&Path>,
) -> Result<()> {
    let mut reports: Vec<WarmupReport> = Vec::new();
    for p in strategies {
        let r = warmup_check(rt, source, p, opts, n).context("warm-up check")?;
        for s in &r.streams {
            let starts: Vec<String> = s
                .starts
                .iter()
                .map(|p| match p.converged_at {
                    Some(c) => format!("{}->{}", p.seq, c),
                    None => format!("{}->never", p.seq),
                })
                .collect();
            match s.converged_from {
                Some(c) => outln!(
                    "warm-up {}: {}: decisions independent of the start from seq {c} (start->converged: {})",
                    r.strategy,
                    s.stream,
                    starts.join(", ")
                ),
                None => outln!(
                    "warm-up {}: {}: some start never converges (start->converged: {})",
                    r.strategy,
                    s.stream,
                    starts.join(", ")
                ),
            }
        }
        reports.push(r);
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("warmup.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
