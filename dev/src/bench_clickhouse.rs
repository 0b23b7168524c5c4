//! `tapedeck bench clickhouse`: the ClickHouse store's append throughput (exactly-once on:
//! stream locks, overlap checks, commit log, typed tables, packed runs) and replay through the
//! `positions` projector, beside the same replay from the file store (through its index) and,
//! when a server is given, from PostgreSQL, rounds interleaved in one run.

use std::time::Instant;

use serde::Serialize;

use crate::bench::{ReplayBenchOptions, bench_events, bench_store, indexed_store};
use tapedeck::error::Result;
use tapedeck::event::Envelope;
use tapedeck::replay::{Plugin, ReplayOptions, replay};
use tapedeck::runtime::{Module, Runtime};
use tapedeck::store::{ChStore, EventSource, PgStore};

#[derive(Debug, Clone)]
pub struct ClickHouseBenchOptions {
    /// A migrated, empty ClickHouse database the bench may fill.
    pub store: String,
    /// A migrated, empty PostgreSQL database for the side-by-side replay, if any.
    pub pg: Option<String>,
    /// The file store for the side-by-side replay (generated or reused, see `bench_store`).
    pub file_store: std::path::PathBuf,
    pub events: u64,
    pub streams: u32,
    /// Events per append.
    pub append_batch: usize,
    /// Concurrent writers (streams are shared out between them).
    pub writers: usize,
    /// Streams replayed in parallel.
    pub jobs: usize,
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClickHouseBenchReport {
    pub events: u64,
    pub streams: u32,
    pub append_batch: usize,
    pub writers: usize,
    pub jobs: usize,
    /// Appends to ClickHouse, exactly-once machinery on (events, typed tables, packed runs).
    pub append_events_per_sec: f64,
    /// Replay from ClickHouse (packed runs, RowBinary) through the projector (median).
    pub replay_events_per_sec: f64,
    /// The same replay from the file store through its index (median).
    pub file_replay_events_per_sec: f64,
    /// The same replay from PostgreSQL (COPY of packed events), when a server was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_replay_events_per_sec: Option<f64>,
    /// Appends to PostgreSQL (to fill it for the replay), when a server was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_append_events_per_sec: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Appends `streams` with `writers` threads, `batch` events at a time; events per second.
fn append_all(
    streams: &[Vec<Envelope>],
    writers: usize,
    batch: usize,
    append: &(dyn Fn(&[Envelope]) -> Result<()> + Sync),
) -> Result<f64> {
    let t = Instant::now();
    let writers = writers.clamp(1, streams.len().max(1));
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                scope.spawn(move || -> Result<()> {
                    for events in streams.iter().skip(w).step_by(writers) {
                        for chunk in events.chunks(batch.max(1)) {
                            append(chunk)?;
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
    let n: usize = streams.iter().map(Vec::len).sum();
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

pub fn clickhouse_bench(
    rt: &Runtime,
    projector: &Module,
    opts: &ClickHouseBenchOptions,
) -> Result<ClickHouseBenchReport> {
    let per_stream = opts.events / opts.streams as u64;
    let streams: Vec<Vec<Envelope>> = (0..opts.streams)
        .map(|s| bench_events(s, per_stream).collect())
        .collect();
    let appended: u64 = streams.iter().map(|s| s.len() as u64).sum();

    let ch = ChStore::connect(&opts.store)?;
    let append_events_per_sec = append_all(&streams, opts.writers, opts.append_batch, &|c| {
        ch.append(c).map(|_| ())
    })?;
    let (pg, pg_append_events_per_sec) = match &opts.pg {
        Some(url) => {
            let pg = PgStore::connect(url)?;
            let rate = append_all(&streams, opts.writers, 5000, &|c| {
                pg.append_exact(c).map(|_| ())
            })?;
            (Some(pg), Some(rate))
        }
        None => (None, None),
    };
    drop(streams);

    bench_store(&ReplayBenchOptions {
        events: opts.events,
        streams: opts.streams,
        batch: 1024,
        rounds: 1,
        store: opts.file_store.clone(),
    })?;
    let file = indexed_store(&opts.file_store)?;

    let plugins = [Plugin::new(projector.clone(), "")];
    let replay_opts = ReplayOptions {
        jobs: opts.jobs,
        ..Default::default()
    };
    let mut sources: Vec<(&dyn EventSource, Vec<f64>)> = vec![(&ch, vec![]), (&file, vec![])];
    if let Some(pg) = &pg {
        sources.push((pg, vec![]));
    }
    for _ in 0..opts.rounds.max(1) {
        for (source, rates) in &mut sources {
            let t = Instant::now();
            let report = replay(rt, *source, &plugins, &replay_opts)?;
            if report.events() != appended || !report.is_clean() {
                return Err(tapedeck::Error::engine(
                    "bench clickhouse",
                    format!(
                        "{}: replayed {} of {appended} events, clean: {}",
                        source.describe(),
                        report.events(),
                        report.is_clean()
                    ),
                ));
            }
            rates.push(appended as f64 / t.elapsed().as_secs_f64());
        }
    }
    let mut rates = sources.into_iter().map(|(_, r)| median(r));
    Ok(ClickHouseBenchReport {
        events: appended,
        streams: opts.streams,
        append_batch: opts.append_batch,
        writers: opts.writers,
        jobs: opts.jobs,
        append_events_per_sec,
        replay_events_per_sec: rates.next().expect("clickhouse"),
        file_replay_events_per_sec: rates.next().expect("file"),
        pg_replay_events_per_sec: rates.next(),
        pg_append_events_per_sec,
    })
}
