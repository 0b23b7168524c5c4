//! `tapedeck bench record`: the recorder end to end over loopback TCP — sustained events/s
//! from the first line sent to the last event stored (WAL fsyncing, acknowledgements read),
//! into ClickHouse and into PostgreSQL; the p99 from acknowledgement to queryable at half that
//! rate; and the time a recorder killed with SIGKILL takes to recover a WAL of N events and
//! listen again.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;
use tapedeck::error::{Error, Result};
use tapedeck::recorder::config::SinkConfig;
use tapedeck::recorder::{RecordConfig, Recorder};

#[derive(Debug, Clone)]
pub struct RecordBenchOptions {
    /// Migrated, empty databases to record into (each measured on its own).
    pub clickhouse: Option<String>,
    pub postgres: Option<String>,
    /// Scratch space for WALs and the recovery run's file store.
    pub dir: PathBuf,
    pub events: u64,
    pub streams: u32,
    pub connections: usize,
    /// Events in the WAL when the recovery run's recorder is killed.
    pub recovery_events: u64,
    /// The `tapedeck` binary (the recovery run kills a real process).
    pub binary: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordBenchReport {
    pub events: u64,
    pub connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickhouse_events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_events_per_sec: Option<f64>,
    /// At half the measured rate (of ClickHouse when given, else PostgreSQL): the 99th
    /// percentile from ingest (just before the acknowledgement) to stored and queryable, as
    /// the upper bound of its histogram bucket.
    pub p99_ack_to_queryable_ms: Option<f64>,
    pub recovery_s: f64,
    pub recovery_events: u64,
}

/// Event `i` as an input line: quotes on `streams` market streams, every 50th an order ack on
/// an exec stream; each with an event id, as a client that resends would send them. Runs into
/// the same database differ by `run` (in event time and ids: PostgreSQL would take a repeat
/// for a duplicate by its idempotency key).
fn line(run: u64, i: u64, streams: u32) -> String {
    let t = 1_704_153_600_000_000_000i64 + (run * 1_000_000_000 + i) as i64 * 1_000;
    let i = run * 1_000_000_000 + i;
    if i % 50 == 49 {
        format!(
            r#"{{"event_id":"b-{i}","stream_key":"exec:bench:S{}","occurred_at":{t},"event_type":"order_acked","payload":{{"client_order_id":{i},"venue_order_id":{i}}}}}"#,
            i % u64::from(streams)
        )
    } else {
        let bid = 10_000 + (i % 97) as i64;
        format!(
            r#"{{"event_id":"b-{i}","stream_key":"md:bench:S{}","occurred_at":{t},"instrument":"S{}","event_type":"quote","payload":{{"bid_px":"{}.{:02}","bid_qty":"1.5","ask_px":"{}.{:02}","ask_qty":"2.25"}}}}"#,
            i % u64::from(streams),
            i % u64::from(streams),
            bid / 100,
            bid % 100,
            (bid + 1) / 100,
            (bid + 1) % 100
        )
    }
}

/// Sends events `ids` of `run` on one connection, `per_tick` every 10 ms
/// when paced, and reads every acknowledgement.
fn client(
    addr: SocketAddr,
    run: u64,
    ids: Vec<u64>,
    streams: u32,
    per_tick: Option<usize>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::message("bench record client", e.to_string());
    let s = TcpStream::connect(addr).map_err(io)?;
    let mut w = s.try_clone().map_err(io)?;
    let n = ids.len();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let chunk = per_tick.unwrap_or(500).max(1);
        let start = Instant::now();
        let mut buf = Vec::new();
        for (k, c) in ids.chunks(chunk).enumerate() {
            if per_tick.is_some() {
                let due = start + Duration::from_millis(10 * k as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            buf.clear();
            for i in c {
                buf.extend_from_slice(line(run, *i, streams).as_bytes());
                buf.push(b'\n');
            }
            w.write_all(&buf)?;
        }
        Ok(())
    });
    let mut r = BufReader::new(s);
    let mut l = String::new();
    for _ in 0..n {
        l.clear();
        if r.read_line(&mut l).map_err(io)? == 0 || !l.starts_with("{\"ack\"") {
            return Err(Error::message("bench record", format!("not an ack: {l:?}")));
        }
    }
    writer.join().expect("writer").map_err(io)
}

/// Runs `events` through an in-process recorder into `sink`; (events/s from the first line
/// to the last event stored, p99 ingest→stored in ms).
fn run(
    opts: &RecordBenchOptions,
    run: u64,
    sink: &str,
    wal: &Path,
    paced: Option<f64>,
) -> Result<(f64, Option<f64>)> {
    let _ = std::fs::remove_dir_all(wal);
    let mut cfg = RecordConfig::default();
    cfg.wal.dir = wal.to_path_buf();
    cfg.inputs.tcp = Some("127.0.0.1:0".parse().expect("an address"));
    cfg.sinks = vec![SinkConfig {
        store: sink.to_string(),
        batch_events: 50_000,
        ..Default::default()
    }];
    let cfg = cfg
        .finish()
        .map_err(|m| Error::message("bench record", m))?;
    let rec = Recorder::new(cfg).start()?;
    let addr = rec.tcp.expect("tcp");
    let c = opts.connections.max(1) as u64;
    let per_tick = paced.map(|rate| ((rate / c as f64) / 100.0).max(1.0) as usize);
    let t = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = (0..c)
            .map(|k| {
                let ids: Vec<u64> = (k..opts.events).step_by(c as usize).collect();
                s.spawn(move || client(addr, run, ids, opts.streams, per_tick))
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().expect("client"))
    })?;
    let m = rec.metrics.clone();
    let durable = m.wal_durable_lsn.load(Relaxed);
    while m.sinks[0].stored_lsn.load(Relaxed) < durable {
        if rec.failed() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = t.elapsed().as_secs_f64();
    let p99 = m.sinks[0]
        .ack_to_stored_seconds
        .quantile(0.99)
        .map(|s| s * 1e3);
    rec.stop()?;
    Ok((opts.events as f64 / secs, p99))
}

/// Fills a WAL of `n` events through a real `tapedeck record`, kills it with SIGKILL, starts it
/// again and times until it listens.
fn recovery(opts: &RecordBenchOptions) -> Result<f64> {
    let dir = opts.dir.join("recovery");
    let _ = std::fs::remove_dir_all(&dir);
    let start = |dir: &Path| -> Result<(std::process::Child, SocketAddr, Instant)> {
        let t = Instant::now();
        let mut child = Command::new(&opts.binary)
            .args(["record", "--tcp", "127.0.0.1:0", "--wal"])
            .arg(dir.join("wal"))
            .arg("--sink")
            .arg(dir.join("store"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::message("bench record: starting tapedeck record", e.to_string()))?;
        let mut l = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut l)
            .map_err(|e| Error::message("bench record", e.to_string()))?;
        let addr = l
            .trim()
            .strip_prefix("recording: tcp ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                Error::message("bench record", format!("unexpected first line {l:?}"))
            })?;
        Ok((child, addr, t))
    };
    let (mut child, addr, _) = start(&dir)?;
    let ids: Vec<u64> = (0..opts.recovery_events).collect();
    client(addr, 0, ids, opts.streams, None)?;
    let _ = child.kill();
    let _ = child.wait();
    let (mut child, _, t) = start(&dir)?;
    let secs = t.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Ok(secs)
}

pub fn record_bench(opts: &RecordBenchOptions) -> Result<RecordBenchReport> {
    let mut report = RecordBenchReport {
        events: opts.events,
        connections: opts.connections,
        clickhouse_events_per_sec: None,
        postgres_events_per_sec: None,
        p99_ack_to_queryable_ms: None,
        recovery_s: 0.0,
        recovery_events: opts.recovery_events,
    };
    let mut half = None;
    if let Some(pg) = &opts.postgres {
        let (rate, _) = run(opts, 0, pg, &opts.dir.join("wal-pg"), None)?;
        report.postgres_events_per_sec = Some(rate);
        half = Some((pg.clone(), rate / 2.0));
    }
    if let Some(ch) = &opts.clickhouse {
        let (rate, _) = run(opts, 0, ch, &opts.dir.join("wal-ch"), None)?;
        report.clickhouse_events_per_sec = Some(rate);
        half = Some((ch.clone(), rate / 2.0));
    }
    if let Some((sink, rate)) = half {
        // A fresh database would be fairer, but the same one only grows: an upper bound.
        let (_, p99) = run(opts, 1, &sink, &opts.dir.join("wal-half"), Some(rate))?;
        report.p99_ack_to_queryable_ms = p99;
    }
    report.recovery_s = recovery(opts)?;
    Ok(report)
}
