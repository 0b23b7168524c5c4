//! `tapedeck bench strategy`: the same EMA-cross run natively and as Wasm components (the
//! Rust build, and the Python and JavaScript ones) over the same seeded quotes, in one
//! process, rounds interleaved, medians reported.

use std::time::Instant;

use serde::Serialize;
use tapedeck_guest::driver::StrategyDriver;

use crate::sim::MarketSim;
use crate::synth::QuoteGen;
use tapedeck::error::Result;
use tapedeck::runtime::{Module, Runtime};

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
    /// One row per module, in the order given.
    pub modules: Vec<ModuleFigures>,
}

/// The figures of one module, measured in the same run as the native baseline.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleFigures {
    pub origin: String,
    pub name: String,
    pub size_bytes: u64,
    pub wasm_ns_per_event: f64,
    pub ratio: f64,
    pub wasm_events_per_sec: f64,
    /// A fresh store + instance from the pre-instantiated, cached module (median).
    pub instantiate_us: f64,
    /// Loading the module file again with a warm compile cache (median).
    pub load_cached_us: f64,
    /// Loading it with no compile cache: compile (Cranelift) + the ABI check (one sample).
    pub cold_compile_ms: f64,
    /// Allocated on demand (it does not fit a pool slot) rather than from the pool.
    pub on_demand: bool,
    /// Outputs byte-identical to the native run's, and the same PnL.
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

/// Runs the strategy bench: the native `ema-cross` linked into this binary, then each module
/// (builds of ema-cross in any language), interleaved per round over the same seeded quotes.
/// `cold` is a runtime without a compile cache, for the cold compile figure.
pub fn strategy(
    rt: &Runtime,
    cold: &Runtime,
    modules: &[Module],
    opts: &StrategyBenchOptions,
) -> Result<StrategyBenchReport> {
    let mut native_ns = Vec::new();
    let mut wasm_ns = vec![Vec::new(); modules.len()];
    let mut native = Run::default();
    let mut wasm: Vec<Run> = modules.iter().map(|_| Run::default()).collect();
    for _ in 0..opts.rounds.max(1) {
        let mut driver =
            StrategyDriver::<ema_cross::EmaCross>::init("").expect("default config is valid");
        native = Run::measure(opts, |b| Ok(driver.on_events(b).to_vec()))?;
        native_ns.push(native.ns_per_event);
        for (i, module) in modules.iter().enumerate() {
            let mut inst = rt.instantiate(module)?;
            inst.init("")?;
            wasm[i] = Run::measure(opts, |b| inst.on_events(b))?;
            wasm_ns[i].push(wasm[i].ns_per_event);
        }
    }
    let native_ns = median(native_ns);
    let mut rows = Vec::new();
    for ((module, run), ns) in modules.iter().zip(wasm).zip(wasm_ns) {
        let mut inst_us = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let inst = rt.instantiate(module)?;
            inst_us.push(t.elapsed().as_nanos() as f64 / 1e3);
            drop(inst);
        }
        let bytes =
            std::fs::read(module.origin()).map_err(|e| tapedeck::Error::io(module.origin(), e))?;
        let mut load_us = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            rt.load_bytes(&bytes, module.origin())?;
            load_us.push(t.elapsed().as_nanos() as f64 / 1e3);
        }
        let t = Instant::now();
        cold.load_bytes(&bytes, module.origin())?;
        let cold_compile_ms = t.elapsed().as_secs_f64() * 1e3;
        let wasm_ns = median(ns);
        rows.push(ModuleFigures {
            origin: module.origin().to_string(),
            name: module.info().name.clone(),
            size_bytes: bytes.len() as u64,
            wasm_ns_per_event: wasm_ns,
            ratio: wasm_ns / native_ns,
            wasm_events_per_sec: 1e9 / wasm_ns,
            instantiate_us: median(inst_us),
            load_cached_us: median(load_us),
            cold_compile_ms,
            on_demand: module.on_demand(),
            identical: native.outputs == run.outputs && native.sim == run.sim,
            orders: run.sim.orders,
            pnl: run.sim.pnl(),
        });
    }
    Ok(StrategyBenchReport {
        events: opts.events,
        batch: opts.batch,
        rounds: opts.rounds.max(1),
        native_ns_per_event: native_ns,
        modules: rows,
    })
}

/// `tapedeck bench replay`: end to end from the file store (through its index) through
/// `ema-cross` + `positions`, with 1 and 2 jobs in the same run.
#[derive(Debug, Clone)]
pub struct ReplayBenchOptions {
    pub events: u64,
    pub streams: u32,
    pub batch: usize,
    pub rounds: usize,
    /// Where the generated store lives; reused while its spec matches.
    pub store: std::path::PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayBenchReport {
    pub events: u64,
    pub streams: u32,
    pub batch: usize,
    pub events_per_sec_jobs1: f64,
    pub events_per_sec_jobs2: f64,
    pub speedup: f64,
    /// Store generation plus index rebuild, when the store had to be made (0 when reused).
    pub generate_secs: f64,
}

/// Stream `s` of the replay and store benches: seeded quotes on one instrument, a fill every
/// 50 events, 5 ms apart from 2024-01-02.
pub fn bench_events(s: u32, events: u64) -> impl Iterator<Item = tapedeck::event::Envelope> {
    use tapedeck::event::{Body, Dec, Envelope, SideName};
    let key = format!("md:bench:S{s}");
    let sym = format!("BENCH{s}");
    let mut quotes = QuoteGen::new(1000 + s as u64, 1);
    (1..=events).map(move |seq| {
        let (h, q) = quotes.next_quote();
        let t = 1_704_153_600_000_000_000 + seq as i64 * 5_000_000;
        let body = if seq % 50 == 0 {
            Body::Fill {
                client_order_id: seq,
                trade_id: seq,
                side: if seq % 100 == 0 {
                    SideName::Sell
                } else {
                    SideName::Buy
                },
                liquidity: None,
                is_final: true,
                price: Dec::new(q.ask_px, h.px_scale),
                qty: Dec::new(1000, h.qty_scale),
                fee: Dec::new(1, 2),
            }
        } else {
            Body::Quote {
                bid_px: Dec::new(q.bid_px, h.px_scale),
                bid_qty: Dec::new(q.bid_qty, h.qty_scale),
                ask_px: Dec::new(q.ask_px, h.px_scale),
                ask_qty: Dec::new(q.ask_qty, h.qty_scale),
                update_id: None,
            }
        };
        Envelope::new(&key, seq, t, Some(&sym), body)
    })
}

/// Generates (or reuses) the bench store: `streams` quote streams with a fill every 50 events.
pub fn bench_store(opts: &ReplayBenchOptions) -> Result<f64> {
    use tapedeck::store::{EventSink, FileStore, FileStoreOptions};
    let spec = serde_json::json!({ "events": opts.events, "streams": opts.streams, "version": 1 });
    let spec_path = opts.store.join("bench-spec.json");
    if std::fs::read(&spec_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        == Some(spec.clone())
    {
        return Ok(0.0);
    }
    let t = Instant::now();
    let _ = std::fs::remove_dir_all(&opts.store);
    let mut store = FileStore::create(&opts.store, FileStoreOptions::default())?;
    let per_stream = opts.events / opts.streams as u64;
    for s in 0..opts.streams {
        let mut chunk = Vec::with_capacity(100_000);
        for e in bench_events(s, per_stream) {
            chunk.push(e);
            if chunk.len() == chunk.capacity() {
                store.append(&chunk)?;
                chunk.clear();
            }
        }
        store.append(&chunk)?;
    }
    tapedeck::store::index::rebuild(&opts.store, None)?;
    std::fs::write(&spec_path, spec.to_string()).map_err(|e| tapedeck::Error::io(&spec_path, e))?;
    Ok(t.elapsed().as_secs_f64())
}

/// Opens the bench store with its index checked fresh (rebuilt if not), before any clock
/// starts: a store checks freshness once, on first use, by a checksum of every log part
/// (~2.7 GB at 10M events, seconds), and a store reopened after the check paid it again
/// inside the first timed round.
pub fn indexed_store(root: &std::path::Path) -> Result<tapedeck::store::FileStore> {
    use tapedeck::store::FileStore;
    let store = FileStore::open(root)?;
    if store.fresh_index()?.is_some() {
        return Ok(store);
    }
    tapedeck::store::index::rebuild(root, None)?;
    let store = FileStore::open(root)?;
    if store.fresh_index()?.is_none() {
        return Err(tapedeck::Error::engine(
            "bench",
            format!("{}: the index is not fresh after a rebuild", root.display()),
        ));
    }
    Ok(store)
}

pub fn replay_bench(
    rt: &Runtime,
    strategy: &Module,
    projector: &Module,
    opts: &ReplayBenchOptions,
) -> Result<ReplayBenchReport> {
    use tapedeck::replay::{Plugin, ReplayOptions, replay};
    let generate_secs = bench_store(opts)?;
    let store = indexed_store(&opts.store)?;
    let plugins = [
        Plugin::new(strategy.clone(), ""),
        Plugin::new(projector.clone(), ""),
    ];
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    let mut events = 0;
    for _ in 0..opts.rounds.max(1) {
        for (jobs, rates) in [(1, &mut r1), (2, &mut r2)] {
            let t = Instant::now();
            let report = replay(
                rt,
                &store,
                &plugins,
                &ReplayOptions {
                    jobs,
                    batch: opts.batch,
                    ..Default::default()
                },
            )?;
            let secs = t.elapsed().as_secs_f64();
            if !report.is_clean() {
                return Err(tapedeck::Error::engine(
                    "bench replay",
                    format!("{:?}", report.findings().collect::<Vec<_>>()),
                ));
            }
            events = report.events();
            rates.push(events as f64 / secs);
        }
    }
    let (j1, j2) = (median(r1), median(r2));
    Ok(ReplayBenchReport {
        events,
        streams: opts.streams,
        batch: opts.batch,
        events_per_sec_jobs1: j1,
        events_per_sec_jobs2: j2,
        speedup: j2 / j1,
        generate_secs,
    })
}

#[derive(Debug, Clone)]
pub struct PostgresBenchOptions {
    /// A migrated, empty database the bench may fill.
    pub store: String,
    pub events: u64,
    pub streams: u32,
    /// Events per append (one transaction each).
    pub append_batch: usize,
    /// Concurrent writers (streams are shared out between them).
    pub writers: usize,
    /// Streams replayed in parallel.
    pub jobs: usize,
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostgresBenchReport {
    pub events: u64,
    pub streams: u32,
    pub append_batch: usize,
    pub writers: usize,
    pub jobs: usize,
    /// Optimistic-concurrency appends with the idempotency keys, projections and the GIN
    /// index on the payload in place.
    pub append_events_per_sec: f64,
    /// Replay through the projector, events read with COPY from the packed column (median).
    pub replay_events_per_sec: f64,
    /// The same replay reading with sqlx row by row, decoding the JSONB payload (median).
    pub naive_events_per_sec: f64,
}

/// The PostgreSQL store bench: appends `events` generated events, then replays them through
/// `projector` reading the packed column, and again reading row by row with JSONB decoding,
/// rounds interleaved.
pub fn postgres_bench(
    rt: &Runtime,
    projector: &Module,
    opts: &PostgresBenchOptions,
) -> Result<PostgresBenchReport> {
    use tapedeck::replay::{Plugin, ReplayOptions, replay};
    use tapedeck::store::PgStore;
    use tapedeck::store::postgres::AppendOptions;

    let store = PgStore::connect(&opts.store)?;
    let per_stream = opts.events / opts.streams as u64;
    let streams: Vec<Vec<tapedeck::event::Envelope>> = (0..opts.streams)
        .map(|s| bench_events(s, per_stream).collect())
        .collect();
    let t = Instant::now();
    let writers = opts.writers.clamp(1, streams.len().max(1));
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (store, streams) = (&store, &streams);
                scope.spawn(move || -> Result<()> {
                    for events in streams.iter().skip(w).step_by(writers) {
                        let mut last = 0;
                        for chunk in events.chunks(opts.append_batch.max(1)) {
                            let o = store.append(
                                &chunk[0].stream_key,
                                chunk,
                                AppendOptions::expecting(last),
                            )?;
                            last = o.last_seq;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread"))
    })?;
    let appended: u64 = streams.iter().map(|s| s.len() as u64).sum();
    let append_events_per_sec = appended as f64 / t.elapsed().as_secs_f64();
    drop(streams);

    let naive = tapedeck::store::postgres::NaiveReader(&store);
    let plugins = [Plugin::new(projector.clone(), "")];
    let replay_opts = ReplayOptions {
        jobs: opts.jobs,
        ..Default::default()
    };
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for _ in 0..opts.rounds.max(1) {
        for (source, rates) in [
            (&store as &dyn tapedeck::store::EventSource, &mut fast),
            (&naive, &mut slow),
        ] {
            let t = Instant::now();
            let report = replay(rt, source, &plugins, &replay_opts)?;
            if report.events() != appended {
                return Err(tapedeck::Error::engine(
                    "bench postgres",
                    format!("replayed {} of {appended} events", report.events()),
                ));
            }
            rates.push(appended as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok(PostgresBenchReport {
        events: appended,
        streams: opts.streams,
        append_batch: opts.append_batch,
        writers,
        jobs: opts.jobs,
        append_events_per_sec,
        replay_events_per_sec: median(fast),
        naive_events_per_sec: median(slow),
    })
}
