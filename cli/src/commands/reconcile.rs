//! `tapedeck reconcile`: a live session against its replay through the venue model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use tapedeck::reconcile::{ReconcileReport, fit, reconcile};
use tapedeck::runtime::{ModuleKind, Runtime, RuntimeConfig};
use tapedeck::store::StoreUri;
use tapedeck::venue::QueueModelConfig;

/// Replay the live window of each exec stream (`exec:<venue>:<symbol>`, its market data in
/// `md:<venue>:<symbol>`, else the one `md:*:<symbol>`) through the venue model with the module the live session ran, pair
/// each live fill with its simulated counterpart (by client order id), and report per trade
/// the time, price, quantity and fee differences, the slippage distribution, the fill rate of
/// limit orders live and simulated, the order latency recorded, and the PnL gap split into
/// fees, latency and queue. Writes `reconcile.json` and `report.md` to --out; with --fit also
/// `venue.json`, a venue model calibrated from the session (for --venue).
/// Exit code 0, 2 on error.
#[derive(clap::Args, Debug)]
pub struct Reconcile {
    /// The store holding the session (exec and market data streams).
    #[arg(long)]
    pub store: StoreUri,
    /// The live exec streams (a glob, e.g. `exec:paper:*`).
    #[arg(long, value_name = "EXEC_STREAM_GLOB")]
    pub live: String,
    /// The strategy module the live session ran.
    #[arg(long)]
    pub strategy: PathBuf,
    /// Config JSON for the strategy ("" = its defaults), as the session ran it.
    #[arg(long, default_value = "")]
    pub config: String,
    #[command(flatten)]
    pub venue: super::regress::VenueArgs,
    /// Also fit a venue model to the session: order latency from its submitted → acked pairs,
    /// feed latency from its market data, and the queue model whose simulated limit fill rate
    /// is nearest the live one; written to `venue.json`.
    #[arg(long)]
    pub fit: bool,
    /// Write the results here.
    #[arg(long)]
    pub out: PathBuf,
}

impl Reconcile {
    pub fn run(self) -> Result<ExitCode> {
        self.venue.config()?;
        let rt = Runtime::new(RuntimeConfig::default())?;
        let mut mods = super::replay::plugins(
            &rt,
            std::slice::from_ref(&self.strategy),
            ModuleKind::Strategy,
        )?;
        mods[0].config = self.config.clone();
        let store = self.store.open()?;
        let keys = tapedeck::replay::matching_streams(store.as_ref(), &self.live)?;
        if keys.is_empty() {
            bail!(
                "no stream in {} matches --live {:?} (`tapedeck streams --store ...` lists them)",
                store.describe(),
                self.live
            );
        }
        let all: Vec<String> = store.streams()?.into_iter().map(|s| s.key).collect();
        let markets: Vec<String> = keys
            .iter()
            .filter_map(|k| tapedeck::reconcile::find_market_stream(k, &all))
            .collect();
        let cfg = self.venue.config()?;
        let venue = if cfg.model.as_ref().is_some_and(|m| m.needs_tape()) {
            tapedeck::venue::latency::resolve(&cfg, store.as_ref(), &markets)?
        } else {
            cfg
        };
        let report =
            reconcile(&rt, store.as_ref(), &keys, &mods[0], &venue).context("reconcile run")?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        std::fs::write(
            self.out.join("reconcile.json"),
            serde_json::to_vec_pretty(&report)?,
        )?;
        let md = markdown(&report);
        std::fs::write(self.out.join("report.md"), &md)?;
        outln!("{}", md.trim_end());
        if self.fit {
            let candidates = [
                QueueModelConfig::RiskAverse,
                QueueModelConfig::ProbPower { n: 1.0 },
                QueueModelConfig::ProbPower { n: 2.0 },
                QueueModelConfig::ProbPower { n: 3.0 },
                QueueModelConfig::ProbLog,
            ];
            let model = fit(&rt, store.as_ref(), &keys, &mods[0], &venue, &candidates)?;
            let path = self.out.join("venue.json");
            std::fs::write(&path, serde_json::to_vec_pretty(&model)?)?;
            outln!("fitted venue model: {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn markdown(r: &ReconcileReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "# Reconciliation\n");
    let _ = writeln!(s, "exec streams: {}\n", r.exec_streams.join(", "));
    let _ = writeln!(s, "paired trades: {}", r.trades.len());
    let d = &r.slippage;
    let _ = writeln!(
        s,
        "slippage (live worse +): mean {:.6}, p5 {:.6}, p50 {:.6}, p95 {:.6}",
        d.mean, d.p5, d.p50, d.p95
    );
    let _ = writeln!(
        s,
        "slippage bps: mean {:.3}, p50 {:.3}",
        r.slippage_bps.mean, r.slippage_bps.p50
    );
    let _ = writeln!(
        s,
        "fill time live - sim: mean {:.0} ns, p50 {:.0} ns",
        r.fill_time_diff_ns.mean, r.fill_time_diff_ns.p50
    );
    let _ = writeln!(
        s,
        "order latency (submitted -> acked): p50 {:.0} ns, p95 {:.0} ns",
        r.order_latency_ns.p50, r.order_latency_ns.p95
    );
    let _ = writeln!(
        s,
        "limit fill rate: live {:.3} ({}/{}), sim {:.3} ({}/{})",
        r.live_fill_rate.rate,
        r.live_fill_rate.filled,
        r.live_fill_rate.limit_orders,
        r.sim_fill_rate.rate,
        r.sim_fill_rate.filled,
        r.sim_fill_rate.limit_orders
    );
    let g = &r.pnl_gap;
    let _ = writeln!(
        s,
        "PnL over the window (fills marked at its end, less fees): live {:.6}, sim {:.6}",
        g.live, g.sim
    );
    let _ = writeln!(
        s,
        "PnL gap live - sim: {:.6} = fees {:.6} + latency {:.6} + queue {:.6}; orders filled live only {}, sim only {}",
        g.total, g.fees, g.latency, g.queue, g.live_only_orders, g.sim_only_orders
    );
    let _ = writeln!(
        s,
        "\n| order | side | live time | Δt ns | live px | sim px | Δqty | Δfee |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for t in &r.trades {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.6} |",
            t.client_order_id,
            t.side,
            t.live.time_ns,
            t.time_diff_ns,
            t.live.price,
            t.sim.price,
            t.qty_diff,
            t.fee_diff
        );
    }
    s
}
