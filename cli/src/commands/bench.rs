//! `tapedeck bench`: the performance figures BENCHMARKS.md quotes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use tapedeck::runtime::{Runtime, RuntimeConfig};
use tapedeck_dev::bench::{StrategyBenchOptions, strategy};

/// Measure hot paths; figures go to stdout (one JSON object with --json).
#[derive(clap::Args, Debug)]
pub struct Bench {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// EMA-cross over seeded synthetic quotes on 8 instruments, native vs Wasm modules (builds
    /// of ema-cross in any language: Rust, Python, JavaScript), same run: ns/event,
    /// instantiate, cached load, cold compile.
    Strategy(StrategyArgs),
    /// End-to-end replay from a generated file store (through its index) through ema-cross +
    /// positions, with --jobs 1 and --jobs 2 in the same run.
    Replay(ReplayArgs),
    /// The PostgreSQL store: append throughput (optimistic concurrency, idempotency keys,
    /// projections, GIN index), then replay through the positions projector reading packed
    /// events with COPY, beside a naive sqlx row-by-row JSONB reader, same run.
    Postgres(PostgresArgs),
    /// The ClickHouse store: append throughput with exactly-once on, then replay through the
    /// positions projector from ClickHouse beside the same replay from the file store and (with
    /// --pg) PostgreSQL, same run.
    Clickhouse(ClickhouseArgs),
    /// The recorder end to end over loopback TCP: sustained events/s into ClickHouse and into
    /// PostgreSQL (WAL fsyncing, every acknowledgement read, until the last event is stored),
    /// the p99 from acknowledgement to queryable at half that rate, and the recovery time of a
    /// recorder killed with SIGKILL.
    Record(RecordArgs),
    /// Write (or reuse) issue 15's quote workload: a Binance capture's bookTicker quotes
    /// repeated to N quotes on one stream, times shifted by the block's span, in a file store
    /// with its index. Prints what it holds as JSON.
    Workload(super::bench_backtest::WorkloadArgs),
    /// `tapedeck backtest` (one strategy) and `tapedeck regress` (the same strategy twice) on
    /// the quote workload (see `bench workload`) with ema-cross as EMA(10)/EMA(50), each a
    /// whole process: quotes/s and peak RSS, interleaved rounds, medians.
    Backtest(super::bench_backtest::BacktestArgs),
    /// `tapedeck sweep` of 64 points (ema-cross over 8 fast × 8 slow windows) on the quote
    /// workload against 64 × one `tapedeck backtest` of it, same run: the ratio
    /// 64 × one / sweep. Needs the `sweep` feature.
    Sweep(super::bench_sweep::SweepBenchArgs),
    /// `tapedeck live` under load (quotes over loopback TCP, WAL fsyncing, a file store sink)
    /// while its strategy is swapped between ema-cross and ema-cross-v2: quotes/s, input to
    /// decision p50/p99, the event path's pause per swap p50/p99 (by handoff: snapshot, or
    /// saved state and catch-up), the catch-up rate; then the session replayed along its
    /// timeline, every order compared.
    Live(super::bench_live::LiveArgs),
}

#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// A ClickHouse server [default: $TAPEDECK_CH_URL]; the bench recreates its database
    /// `tapedeck_bench_rec` there.
    #[arg(long, env = "TAPEDECK_CH_URL")]
    pub clickhouse: Option<String>,
    /// A PostgreSQL server [default: $TAPEDECK_PG_URL]; the bench recreates its database
    /// `tapedeck_bench_rec` there.
    #[arg(long, env = "TAPEDECK_PG_URL")]
    pub postgres: Option<String>,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 4)]
    pub streams: u32,
    /// Client connections sending at once.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Events in the WAL of the recorder that is killed and recovered.
    #[arg(long, default_value_t = 1_000_000)]
    pub recovery_events: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ClickhouseArgs {
    /// The server: clickhouse://HOST:PORT/DB of any database on it [default: $TAPEDECK_CH_URL;
    /// `scripts/ch.sh start` prints one]. The bench drops and recreates its own database
    /// `tapedeck_bench` there.
    #[arg(long, env = "TAPEDECK_CH_URL")]
    pub server: String,
    /// A PostgreSQL server for the side-by-side replay [default: $TAPEDECK_PG_URL]; the bench
    /// drops and recreates its database `tapedeck_bench_ch` there.
    #[arg(long, env = "TAPEDECK_PG_URL")]
    pub pg: Option<String>,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 4)]
    pub streams: u32,
    /// Events per append.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Streams replayed in parallel.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct PostgresArgs {
    /// The server: postgres://USER@HOST:PORT/DB of any database on it [default:
    /// $TAPEDECK_PG_URL; `scripts/pg.sh start` prints one]. The bench drops and recreates
    /// its own database `tapedeck_bench` there.
    #[arg(long, env = "TAPEDECK_PG_URL")]
    pub server: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 4)]
    pub streams: u32,
    /// Events per append transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Streams replayed in parallel.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Events in the generated store (split evenly over the streams).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 4)]
    pub streams: u32,
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The bench store [default: $CARGO_TARGET_DIR/tapedeck-bench/replay-store]; generated
    /// once and reused while its spec matches.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct StrategyArgs {
    /// Quote events per round.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Events per batch handed to the guest.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Interleaved native/Wasm rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// An ema-cross module (repeatable: each is measured beside native in the same run)
    /// [default: build strategies/ema-cross from this source tree].
    #[arg(long)]
    pub wasm: Vec<PathBuf>,
    /// Turn fuel metering off (replay always meters; this shows what it costs).
    #[arg(long)]
    pub no_fuel: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Bench {
    pub fn run(self) -> Result<ExitCode> {
        match self.what {
            What::Strategy(a) => a.run(),
            What::Replay(a) => a.run(),
            What::Postgres(a) => a.run(),
            What::Clickhouse(a) => a.run(),
            What::Record(a) => a.run(),
            What::Workload(a) => a.run(),
            What::Backtest(a) => a.run(),
            What::Sweep(a) => a.run(),
            What::Live(a) => a.run(),
        }
    }
}

impl StrategyArgs {
    fn run(self) -> Result<ExitCode> {
        let config = RuntimeConfig {
            max_instances: 16,
            fuel: !self.no_fuel,
            ..RuntimeConfig::default()
        };
        let rt = Runtime::new(config.clone())?;
        let cold = Runtime::new(RuntimeConfig {
            cache_dir: None,
            max_instances: 4,
            ..config
        })?;
        let paths = if self.wasm.is_empty() {
            let [ema] = super::repo_guests(&rt, ["ema-cross"])?;
            vec![ema]
        } else {
            self.wasm
        };
        let modules = paths
            .iter()
            .map(|p| rt.load(p))
            .collect::<Result<Vec<_>, _>>()?;
        let opts = StrategyBenchOptions {
            events: self.events,
            batch: self.batch,
            rounds: self.rounds,
            ..Default::default()
        };
        eprintln!(
            "bench strategy: {} events x {} rounds, batches of {}, {} module(s)",
            opts.events,
            opts.rounds,
            opts.batch,
            modules.len()
        );
        let r = strategy(&rt, &cold, &modules, &opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            outln!(
                "events {}, batches of {}, {} rounds (medians)",
                r.events,
                r.batch,
                r.rounds
            );
            outln!(
                "{:<16} {:>11} {:>9} {:>10} {:>13} {:>11} {:>12} {:>9} {:>9}",
                "module",
                "ns/event",
                "x native",
                "M events/s",
                "instantiate",
                "cached load",
                "cold compile",
                "size MB",
                "identical"
            );
            outln!(
                "{:<16} {:>11.2} {:>9} {:>10.1} {:>13} {:>11} {:>12} {:>9} {:>9}",
                "native (Rust)",
                r.native_ns_per_event,
                "1.00",
                1e3 / r.native_ns_per_event,
                "-",
                "-",
                "-",
                "-",
                "-"
            );
            for m in &r.modules {
                outln!(
                    "{:<16} {:>11.2} {:>9.2} {:>10.2} {:>10.1} us {:>8.1} ms {:>9.0} ms {:>9.1} {:>9}",
                    m.name,
                    m.wasm_ns_per_event,
                    m.ratio,
                    m.wasm_events_per_sec / 1e6,
                    m.instantiate_us,
                    m.load_cached_us / 1e3,
                    m.cold_compile_ms,
                    m.size_bytes as f64 / 1e6,
                    m.identical
                );
            }
        }
        if let Some(m) = r.modules.iter().find(|m| !m.identical) {
            anyhow::bail!("native and {} diverged: outputs or PnL differ", m.origin);
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ReplayArgs {
    fn run(self) -> Result<ExitCode> {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 64,
            ..RuntimeConfig::default()
        })?;
        let [ema, pos] = super::repo_guests(&rt, ["ema-cross", "positions"])?;
        let target = super::default_guest_target_dir();
        let store = self.store.unwrap_or_else(|| {
            target
                .parent()
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join("tapedeck-bench/replay-store")
        });
        let opts = tapedeck_dev::bench::ReplayBenchOptions {
            events: self.events,
            streams: self.streams,
            batch: self.batch,
            rounds: self.rounds,
            store,
        };
        eprintln!(
            "bench replay: {} events in {} streams at {}",
            opts.events,
            opts.streams,
            opts.store.display()
        );
        let r = tapedeck_dev::bench::replay_bench(&rt, &rt.load(&ema)?, &rt.load(&pos)?, &opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            if r.generate_secs > 0.0 {
                outln!("generated store + index in {:.1}s", r.generate_secs);
            }
            outln!("events        {}", r.events);
            outln!(
                "jobs 1        {:.2}M events/s",
                r.events_per_sec_jobs1 / 1e6
            );
            outln!(
                "jobs 2        {:.2}M events/s",
                r.events_per_sec_jobs2 / 1e6
            );
            outln!("speedup       {:.2}x", r.speedup);
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl PostgresArgs {
    fn run(self) -> Result<ExitCode> {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 64,
            ..RuntimeConfig::default()
        })?;
        let [pos] = super::repo_guests(&rt, ["positions"])?;
        let store = tapedeck::store::postgres::recreate_database(&self.server, "tapedeck_bench")?;
        tapedeck::store::PgStore::migrate(&store)?;
        let opts = tapedeck_dev::bench::PostgresBenchOptions {
            store,
            events: self.events,
            streams: self.streams,
            append_batch: self.batch,
            writers: self.writers,
            jobs: self.jobs,
            rounds: self.rounds,
        };
        eprintln!(
            "bench postgres: {} events in {} streams, appends of {} by {} writers, replay jobs {}",
            opts.events, opts.streams, opts.append_batch, opts.writers, opts.jobs
        );
        let r = tapedeck_dev::bench::postgres_bench(&rt, &rt.load(&pos)?, &opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            outln!("events        {}", r.events);
            outln!("append        {:.0} events/s", r.append_events_per_sec);
            outln!(
                "replay        {:.2}M events/s (COPY of packed events)",
                r.replay_events_per_sec / 1e6
            );
            outln!(
                "naive         {:.2}M events/s (sqlx row by row, JSONB decoded)",
                r.naive_events_per_sec / 1e6
            );
            outln!(
                "replay/naive  {:.2}x",
                r.replay_events_per_sec / r.naive_events_per_sec
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl RecordArgs {
    fn run(self) -> Result<ExitCode> {
        let ch = match &self.clickhouse {
            Some(server) => {
                let url =
                    tapedeck::store::clickhouse::recreate_database(server, "tapedeck_bench_rec")?;
                tapedeck::store::clickhouse::migrate(&url)?;
                Some(url)
            }
            None => None,
        };
        let pg = match &self.postgres {
            Some(server) => {
                let url =
                    tapedeck::store::postgres::recreate_database(server, "tapedeck_bench_rec")?;
                tapedeck::store::PgStore::migrate(&url)?;
                Some(url)
            }
            None => None,
        };
        if ch.is_none() && pg.is_none() {
            anyhow::bail!(
                "bench record needs a server: --clickhouse URL and/or --postgres URL (or $TAPEDECK_CH_URL / $TAPEDECK_PG_URL)"
            );
        }
        let dir = super::default_guest_target_dir()
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("tapedeck-bench/record");
        let opts = tapedeck_dev::bench_record::RecordBenchOptions {
            clickhouse: ch,
            postgres: pg,
            dir,
            events: self.events,
            streams: self.streams,
            connections: self.connections,
            recovery_events: self.recovery_events,
            binary: std::env::current_exe()?,
        };
        eprintln!(
            "bench record: {} events over {} connections into {}",
            opts.events,
            opts.connections,
            [
                opts.clickhouse.as_ref().map(|_| "ClickHouse"),
                opts.postgres.as_ref().map(|_| "PostgreSQL")
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        );
        let r = tapedeck_dev::bench_record::record_bench(&opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            if let Some(v) = r.clickhouse_events_per_sec {
                outln!("clickhouse    {v:.0} events/s (sustained, acked and stored)");
            }
            if let Some(v) = r.postgres_events_per_sec {
                outln!("postgres      {v:.0} events/s (sustained, acked and stored)");
            }
            match r.p99_ack_to_queryable_ms {
                Some(v) => outln!("p99           <= {v:.0} ms ack to queryable, at half rate"),
                None => outln!("p99           (no events stored)"),
            }
            outln!(
                "recovery      {:.2} s for {} events in the WAL",
                r.recovery_s,
                r.recovery_events
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ClickhouseArgs {
    fn run(self) -> Result<ExitCode> {
        use tapedeck::store::clickhouse;
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 64,
            ..RuntimeConfig::default()
        })?;
        let [pos] = super::repo_guests(&rt, ["positions"])?;
        let store = clickhouse::recreate_database(&self.server, "tapedeck_bench")?;
        clickhouse::migrate(&store)?;
        let pg = match &self.pg {
            Some(server) => {
                let url =
                    tapedeck::store::postgres::recreate_database(server, "tapedeck_bench_ch")?;
                tapedeck::store::PgStore::migrate(&url)?;
                Some(url)
            }
            None => None,
        };
        let target = super::default_guest_target_dir();
        let file_store = target
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("tapedeck-bench/clickhouse-file-store");
        let opts = tapedeck_dev::bench_clickhouse::ClickHouseBenchOptions {
            store,
            pg,
            file_store,
            events: self.events,
            streams: self.streams,
            append_batch: self.batch,
            writers: self.writers,
            jobs: self.jobs,
            rounds: self.rounds,
        };
        eprintln!(
            "bench clickhouse: {} events in {} streams, appends of {} by {} writers, replay jobs {}{}",
            opts.events,
            opts.streams,
            opts.append_batch,
            opts.writers,
            opts.jobs,
            if opts.pg.is_some() {
                ", with PostgreSQL"
            } else {
                ""
            }
        );
        let r = tapedeck_dev::bench_clickhouse::clickhouse_bench(&rt, &rt.load(&pos)?, &opts)?;
        if self.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            outln!("events        {}", r.events);
            outln!(
                "append        {:.0} events/s (exactly-once)",
                r.append_events_per_sec
            );
            outln!(
                "replay        {:.2}M events/s (ClickHouse, packed runs)",
                r.replay_events_per_sec / 1e6
            );
            outln!(
                "file replay   {:.2}M events/s (file store, index)",
                r.file_replay_events_per_sec / 1e6
            );
            if let Some(pg) = r.pg_replay_events_per_sec {
                outln!("pg replay     {:.2}M events/s (PostgreSQL, COPY)", pg / 1e6);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
