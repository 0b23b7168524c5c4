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

/// One pass over the seeded quotes. Each batch is generated just before the call, so it is
/// hot in cache as it would be in a replay pipeline; only the calls are timed.
#[derive(Default)]
struct Run {
    ns_per_event: f64,
    outputs: Vec<Vec<u8>>,
    sim: MarketSim,
}

impl Run {
    fn measure(
        opts: &StrategyBenchOptions,
        mut call: impl FnMut(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<Run> {
        let mut quotes = QuoteGen::new(opts.seed, opts.instruments);
        let mut run = Run::default();
        let mut buf = Vec::new();
        let mut nanos = 0u128;
        let mut left = opts.events;
        while left > 0 {
            let n = left.min(opts.batch.max(1) as u64);
            buf = quotes.next_batch(n as usize, buf);
            let t = Instant::now();
            let out = call(&buf)?;
            nanos += t.elapsed().as_nanos();
            run.sim.apply(&buf, &out);
            run.outputs.push(out);
            left -= n;
        }
        run.ns_per_event = nanos as f64 / opts.events as f64;
        Ok(run)
    }
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
    let mut native_ns = Vec::new();
    let mut wasm_ns = Vec::new();
    let (mut native, mut wasm) = (Run::default(), Run::default());
    for _ in 0..opts.rounds.max(1) {
        let mut driver =
            StrategyDriver::<ema_cross::EmaCross>::init("").expect("default config is valid");
        native = Run::measure(opts, |b| Ok(driver.on_events(b).to_vec()))?;
        native_ns.push(native.ns_per_event);

        let mut inst = rt.instantiate(module)?;
        inst.init("")?;
        wasm = Run::measure(opts, |b| inst.on_events(b))?;
        wasm_ns.push(wasm.ns_per_event);
    }
    let identical = native.outputs == wasm.outputs && native.sim == wasm.sim;
    let sim_wasm = wasm.sim;

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
