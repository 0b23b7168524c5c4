//! `tapedeck bench strategy`: the same EMA-cross source run natively and as a Wasm component
//! over the same seeded quotes, in one process, rounds interleaved, medians reported.

use std::time::Instant;

use serde::Serialize;
use tapedeck_guest::driver::StrategyDriver;

use crate::error::Result;
use crate::runtime::{Module, Runtime};
use crate::sim::MarketSim;
use crate::synth::QuoteGen;

#[derive(Debug, Clone)]
pub struct StrategyBenchOptions {
    pub events: u64,
    pub batch: usize,
    pub rounds: usize,
    pub instruments: u32,
    pub seed: u64,
}

impl Default for StrategyBenchOptions {
    fn default() -> Self {
        StrategyBenchOptions {
            events: 10_000_000,
            batch: 512,
            rounds: 3,
            instruments: 8,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyBenchReport {
    pub events: u64,
    pub batch: usize,
    pub rounds: usize,
    pub native_ns_per_event: f64,
    pub wasm_ns_per_event: f64,
    pub ratio: f64,
    pub wasm_events_per_sec: f64,
    /// A fresh store + instance from the pre-instantiated, cached module (median).
    pub instantiate_us: f64,
    /// Loading the module file again with a warm compile cache (median).
    pub load_cached_us: f64,
    /// Native and Wasm produced byte-identical outputs and the same PnL.
    pub identical: bool,
    pub orders: u64,
    pub pnl: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the strategy bench. `module` must be the Wasm build of the `ema-cross` crate linked
/// into this binary.
pub fn strategy(
    rt: &Runtime,
    module: &Module,
    opts: &StrategyBenchOptions,
) -> Result<StrategyBenchReport> {
    let batches = QuoteGen::new(opts.seed, opts.instruments).batches(opts.events, opts.batch);
    let mut native_ns = Vec::new();
    let mut wasm_ns = Vec::new();
    let mut native_out = Vec::new();
    let mut wasm_out = Vec::new();
    for _ in 0..opts.rounds.max(1) {
        let mut driver =
            StrategyDriver::<ema_cross::EmaCross>::init("").expect("default config is valid");
        native_out.clear();
        let t = Instant::now();
        for b in &batches {
            native_out.push(driver.on_events(b).to_vec());
        }
        native_ns.push(t.elapsed().as_nanos() as f64 / opts.events as f64);

        let mut inst = rt.instantiate(module)?;
        inst.init("")?;
        wasm_out.clear();
        let t = Instant::now();
        for b in &batches {
            wasm_out.push(inst.on_events(b)?);
        }
        wasm_ns.push(t.elapsed().as_nanos() as f64 / opts.events as f64);
    }

    let (mut sim_native, mut sim_wasm) = (MarketSim::default(), MarketSim::default());
    for ((b, n), w) in batches.iter().zip(&native_out).zip(&wasm_out) {
        sim_native.apply(b, n);
        sim_wasm.apply(b, w);
    }
    let identical = native_out == wasm_out && sim_native == sim_wasm;

    let mut inst_us = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let inst = rt.instantiate(module)?;
        inst_us.push(t.elapsed().as_nanos() as f64 / 1e3);
        drop(inst);
    }
    let mut load_us = Vec::new();
    let bytes = std::fs::read(module.origin()).map_err(|e| crate::Error::io(module.origin(), e))?;
    for _ in 0..20 {
        let t = Instant::now();
        rt.load_bytes(&bytes, module.origin())?;
        load_us.push(t.elapsed().as_nanos() as f64 / 1e3);
    }

    let native = median(native_ns);
    let wasm = median(wasm_ns);
    Ok(StrategyBenchReport {
        events: opts.events,
        batch: opts.batch,
        rounds: opts.rounds.max(1),
        native_ns_per_event: native,
        wasm_ns_per_event: wasm,
        ratio: wasm / native,
        wasm_events_per_sec: 1e9 / wasm,
        instantiate_us: median(inst_us),
        load_cached_us: median(load_us),
        identical,
        orders: sim_wasm.orders,
        pnl: sim_wasm.pnl(),
    })
}
