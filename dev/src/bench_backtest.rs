//! `tapedeck bench backtest`: the quote workload of [`crate::workload`] through `tapedeck
//! backtest` (one strategy) and `tapedeck regress` (the same strategy twice), each as a
//! whole process: its wall time, so quotes per second as a user sees them, and its peak RSS
//! (the child's `VmHWM`, sampled while it runs). Rounds interleave the two; medians are reported.

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
///
/// The peak is the child's `VmHWM`, read every 2 ms while it runs: `wait4`'s `ru_maxrss`
/// would do, but Linux carries the parent's high-water mark into a forked child across
/// `exec`, so it reports at least the bench's own RSS.
pub fn measure(exe: &Path, args: &[String]) -> Result<(f64, u64)> {
    let t0 = Instant::now();
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(exe, e))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm(&s))
        {
            peak = peak.max(hwm);
        }
        match child.try_wait().map_err(|e| Error::io(exe, e))? {
            Some(status) => break status,
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    if !status.success() {
        return Err(Error::engine(
            "bench backtest",
            format!("{} {} failed ({status})", exe.display(), args.join(" ")),
        ));
    }
    Ok((secs, peak))
}

/// `VmHWM` of a `/proc/PID/status` text, in bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

/// The realistic venue's cost: the same backtest with the plain venue and with a venue model
/// (`venue` file), interleaved rounds, medians.
#[derive(Debug, Clone, Serialize)]
pub struct VenueBench {
    pub events: u64,
    pub rounds: usize,
    pub plain_orders: u64,
    pub plain_trades: u64,
    pub model_trades: u64,
    pub plain_secs: f64,
    pub plain_events_per_sec: f64,
    pub plain_peak_rss_bytes: u64,
    pub model_secs: f64,
    pub model_events_per_sec: f64,
    pub model_peak_rss_bytes: u64,
    /// model time / plain time.
    pub slowdown: f64,
}

pub fn venue_bench(o: &BacktestBenchOptions, venue: &Path) -> Result<VenueBench> {
    let s = |p: &Path| p.display().to_string();
    let args = |out: &Path, model: bool| {
        let mut v = vec![
            "backtest".to_string(),
            "--strategy".into(),
            s(&o.strategy),
            "--store".into(),
            s(&o.store),
            "--config".into(),
            o.config.clone(),
            "--latency-us".into(),
            "1000".into(),
            "--out".into(),
            s(out),
        ];
        if model {
            v.extend(["--venue".into(), s(venue)]);
        }
        v
    };
    let (plain_out, model_out) = (o.out.join("plain"), o.out.join("model"));
    let (plain, model) = (args(&plain_out, false), args(&model_out, true));
    let (mut ps, mut ms, mut prss, mut mrss) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..o.rounds.max(1) {
        let (t, rss) = measure(&o.exe, &plain)?;
        ps.push(t);
        prss = prss.max(rss);
        let (t, rss) = measure(&o.exe, &model)?;
        ms.push(t);
        mrss = mrss.max(rss);
    }
    let totals = |dir: &Path| -> Result<serde_json::Value> {
        let p = dir.join("summary.json");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).map_err(|e| Error::io(&p, e))?)
                .map_err(|e| Error::engine("bench backtest: reading a summary", e))?;
        Ok(v["totals"].clone())
    };
    let (pt, mt) = (totals(&plain_out)?, totals(&model_out)?);
    let (p, m) = (median(ps), median(ms));
    Ok(VenueBench {
        events: o.quotes,
        rounds: o.rounds.max(1),
        plain_orders: pt["orders"].as_u64().unwrap_or(0),
        plain_trades: pt["trades"].as_u64().unwrap_or(0),
        model_trades: mt["trades"].as_u64().unwrap_or(0),
        plain_secs: p,
        plain_events_per_sec: o.quotes as f64 / p,
        plain_peak_rss_bytes: prss,
        model_secs: m,
        model_events_per_sec: o.quotes as f64 / m,
        model_peak_rss_bytes: mrss,
        slowdown: m / p,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_high_water_mark_is_read_in_bytes() {
        let s = "Name:\ttapedeck\nVmPeak:\t  200 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(super::vm_hwm(s), Some(1234 * 1024));
        assert_eq!(super::vm_hwm("Name:\tzombie\n"), None);
    }
}
