//! `tapedeck bench backtest`: the quote workload of [`crate::workload`] through `tapedeck
//! backtest` (one strategy) and `tapedeck regress` (the same strategy twice), each as a
//! whole process: its wall time, so quotes per second as a user sees them, and its peak RSS
//! (from `wait4`, exact). Rounds interleave the two; medians are reported.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;
use tapedeck::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BacktestBenchOptions {
    /// The `tapedeck` binary the children run.
    pub exe: PathBuf,
    pub store: PathBuf,
    pub strategy: PathBuf,
    pub config: String,
    pub quotes: u64,
    pub rounds: usize,
    /// Where the children write their run directories.
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacktestBench {
    pub quotes: u64,
    pub orders: u64,
    pub rounds: usize,
    pub backtest_secs: f64,
    pub backtest_quotes_per_sec: f64,
    pub backtest_peak_rss_bytes: u64,
    pub regress_secs: f64,
    pub regress_quotes_per_sec: f64,
    pub regress_peak_rss_bytes: u64,
    /// The larger of the two.
    pub peak_rss_bytes: u64,
}

/// Runs `exe args`, returning its wall time and peak RSS; fails if it does not exit 0.
pub fn measure(exe: &Path, args: &[String]) -> Result<(f64, u64)> {
    let t0 = Instant::now();
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(exe, e))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data for the kernel to fill; `pid` is our own child, waited
    // once here (the `Child` handle is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t0.elapsed().as_secs_f64();
    drop(child);
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(Error::engine(
            "bench backtest",
            format!(
                "{} {} failed (status {status})",
                exe.display(),
                args.join(" ")
            ),
        ));
    }
    // Linux reports ru_maxrss in KiB.
    Ok((secs, usage.ru_maxrss as u64 * 1024))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn backtest_bench(o: &BacktestBenchOptions) -> Result<BacktestBench> {
    let s = |p: &Path| p.display().to_string();
    let bt_out = o.out.join("backtest");
    let rg_out = o.out.join("regress");
    let common = |v: &mut Vec<String>| {
        v.extend([
            "--store".into(),
            s(&o.store),
            "--config".into(),
            o.config.clone(),
        ]);
    };
    let mut bt = vec!["backtest".to_string(), "--strategy".into(), s(&o.strategy)];
    common(&mut bt);
    bt.extend(["--out".into(), s(&bt_out)]);
    let mut rg = vec![
        "regress".to_string(),
        "--baseline".into(),
        s(&o.strategy),
        "--candidate".into(),
        s(&o.strategy),
    ];
    common(&mut rg);
    rg.extend(["--out".into(), s(&rg_out)]);
    let (mut bts, mut rgs) = (Vec::new(), Vec::new());
    let (mut bt_rss, mut rg_rss) = (0, 0);
    for _ in 0..o.rounds.max(1) {
        let (t, rss) = measure(&o.exe, &bt)?;
        bts.push(t);
        bt_rss = bt_rss.max(rss);
        let (t, rss) = measure(&o.exe, &rg)?;
        rgs.push(t);
        rg_rss = rg_rss.max(rss);
    }
    let summary = bt_out.join("summary.json");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).map_err(|e| Error::io(&summary, e))?)
            .map_err(|e| Error::engine("bench backtest: reading the backtest's summary", e))?;
    let (bt_secs, rg_secs) = (median(bts), median(rgs));
    Ok(BacktestBench {
        quotes: o.quotes,
        orders: v["totals"]["orders"].as_u64().unwrap_or(0),
        rounds: o.rounds.max(1),
        backtest_secs: bt_secs,
        backtest_quotes_per_sec: o.quotes as f64 / bt_secs,
        backtest_peak_rss_bytes: bt_rss,
        regress_secs: rg_secs,
        regress_quotes_per_sec: o.quotes as f64 / rg_secs,
        regress_peak_rss_bytes: rg_rss,
        peak_rss_bytes: bt_rss.max(rg_rss),
    })
}
