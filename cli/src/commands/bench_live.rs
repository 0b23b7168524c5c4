//! `tapedeck bench live`: a live session under load while its strategy is swapped back and
//! forth, then replayed along its timeline.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::Value;
use tapedeck::live::{LiveConfig, verify};
use tapedeck::runtime::{Runtime, RuntimeConfig};

const TOKEN: &str = "bench-live-token-0123456789";

#[derive(clap::Args, Debug)]
pub struct LiveArgs {
    /// Quotes sent in all (spread over the connections, one stream each).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Client connections sending at once, each its own stream.
    #[arg(long, default_value_t = 2)]
    pub connections: u64,
    /// Swaps between ema-cross and ema-cross-v2 while the quotes stream in.
    #[arg(long, default_value_t = 100)]
    pub swaps: u64,
    /// Milliseconds between two swaps.
    #[arg(long, default_value_t = 40)]
    pub swap_every_ms: u64,
    /// Quotes per second sent, in all (0: as fast as they are taken). Latency is measured at a
    /// rate the session sustains.
    #[arg(long, default_value_t = 60_000)]
    pub rate: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct LiveReport {
    pub events: u64,
    pub streams: u64,
    /// Quotes acknowledged per second while sending (the recorder, the engine and the
    /// senders share the machine).
    pub events_per_sec: f64,
    pub swaps_under_load: u64,
    /// Every quote decided on exactly once: applied == acknowledged, and the session's
    /// replay reproduced every order.
    pub lost_or_duplicated: u64,
    pub orders: u64,
    pub replay_identical: bool,
    /// From ingest of a batch's first event to the decisions on the batch (last 100k
    /// batches).
    pub input_to_decision_p50_us: u64,
    pub input_to_decision_p99_us: u64,
    /// The event path's pause per swap, all swaps; then by how the state was handed over.
    pub swap_pause_p50_us: u64,
    pub swap_pause_p99_us: u64,
    pub swap_pause_max_us: u64,
    pub snapshot_handoff_p50_us: Option<u64>,
    pub snapshot_handoff_p99_us: Option<u64>,
    pub catch_up_handoff_p50_us: Option<u64>,
    pub catch_up_handoff_p99_us: Option<u64>,
    /// Events replayed per second while catching a module up during swaps.
    pub catch_up_events_per_sec: Option<f64>,
}

fn quote(stream: u64, i: u64) -> String {
    let mid = 60_000.0 + 50.0 * (i as f64 / 40.0).sin();
    format!(
        r#"{{"stream_key":"md:bench:S{stream}","occurred_at":{},"instrument":"S{stream}","event_type":"quote","payload":{{"bid_px":"{:.2}","bid_qty":"1.5","ask_px":"{:.2}","ask_qty":"2.0"}}}}"#,
        1_700_000_000_000_000_000i64 + i as i64 * 1_000_000,
        mid - 0.5,
        mid + 0.5
    )
}

/// Sends `n` quotes of one stream, at most `rate` a second (0: no limit); returns those
/// acknowledged.
fn send(addr: SocketAddr, stream: u64, n: u64, rate: u64) -> Result<u64> {
    let s = TcpStream::connect(addr)?;
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(256 << 10);
        let mut i = 0;
        let start = Instant::now();
        while i < n {
            if rate > 0 {
                let due = Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            buf.clear();
            for j in i..(i + 100).min(n) {
                buf.extend_from_slice(quote(stream, j).as_bytes());
                buf.push(b'\n');
            }
            i = (i + 100).min(n);
            w.write_all(&buf)?;
        }
        Ok(())
    });
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    let mut acks = 0;
    for _ in 0..n {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        ensure!(line.starts_with("{\"ack\""), "not an ack: {line}");
        acks += 1;
    }
    writer.join().expect("writer")?;
    Ok(acks)
}

struct Ctl {
    base: String,
    tls: tapedeck::net::ClientTls,
}

impl Ctl {
    fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Result<Value> {
        let url = tapedeck::net::Url::parse(&format!("{}{path}", self.base))
            .map_err(anyhow::Error::msg)?;
        let auth = [("authorization", format!("Bearer {TOKEN}"))];
        let got = tapedeck::net::request_blocking(&url, &self.tls, method, &auth, body)
            .map_err(anyhow::Error::msg)?;
        ensure!(
            (200..300).contains(&got.status),
            "{method} {path}: {} {}",
            got.status,
            String::from_utf8_lossy(&got.body)
        );
        Ok(serde_json::from_slice(&got.body)?)
    }
}

fn quantile(v: &mut [u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

impl LiveArgs {
    pub fn run(self) -> Result<ExitCode> {
        ensure!(
            self.connections >= 1 && self.events >= self.connections,
            "--events must be at least --connections (1 or more)"
        );
        let rt = Runtime::new(RuntimeConfig::default())?;
        let [v1, v2] = super::repo_guests(&rt, ["ema-cross", "ema-cross-v2"])?;
        let dir = super::default_guest_target_dir()
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("tapedeck-bench/live");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let toml = format!(
            r#"
[live]
session = "bench"
strategy = "{v1}"
[control]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[wal]
dir = "{wal}"
[inputs]
tcp = "127.0.0.1:0"
[[sinks]]
store = "{store}"
"#,
            v1 = v1.display(),
            wal = dir.join("wal").display(),
            store = dir.join("store").display(),
        );
        let cfg = LiveConfig::parse(&toml)
            .map_err(anyhow::Error::msg)
            .context("the bench's live.toml")?;
        let running = tapedeck::live::start(cfg, rt)?;
        let tcp = running.recorder.tcp.expect("tcp input");
        let ctl = Ctl {
            base: format!("http://{}", running.control),
            tls: tapedeck::net::client_tls(None)?,
        };
        let sha = |p: &PathBuf| -> Result<String> {
            let bytes = std::fs::read(p)?;
            let sha = tapedeck::hash::ModuleHash::of(&bytes).hex();
            ctl.call("POST", &format!("/modules?sha256={sha}"), bytes)?;
            Ok(sha)
        };
        let (s1, s2) = (sha(&v1)?, sha(&v2)?);
        eprintln!(
            "bench live: {} quotes over {} connections at {} quotes/s, swapping every {} ms",
            self.events, self.connections, self.rate, self.swap_every_ms
        );

        let per = self.events / self.connections;
        let rate = self.rate / self.connections;
        let total = per * self.connections;
        let sending = Arc::new(AtomicBool::new(true));
        let t0 = Instant::now();
        let senders: Vec<_> = (0..self.connections)
            .map(|c| std::thread::spawn(move || send(tcp, c, per, rate)))
            .collect();
        let done = sending.clone();
        let waiter = std::thread::spawn(move || {
            let acks: Result<u64> = senders.into_iter().map(|s| s.join().expect("sender")).sum();
            let secs = t0.elapsed().as_secs_f64();
            done.store(false, Relaxed);
            acks.map(|a| (a, secs))
        });
        let mut swaps = Vec::new();
        while sending.load(Relaxed) && (swaps.len() as u64) < self.swaps {
            std::thread::sleep(Duration::from_millis(self.swap_every_ms));
            let to = if swaps.len() % 2 == 0 { &s2 } else { &s1 };
            let body = serde_json::to_vec(&serde_json::json!({ "sha256": to }))?;
            let r = ctl.call("POST", "/swap", body)?;
            if sending.load(Relaxed) {
                swaps.push(r);
            }
        }
        let (acked, secs) = waiter.join().expect("waiter")?;
        ensure!(acked == total, "{acked} of {total} quotes acknowledged");
        // Wait for the engine to apply everything.
        let t = Instant::now();
        let status = loop {
            let s = ctl.call("GET", "/status", Vec::new())?;
            let applied: u64 = s["streams"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v["applied_seq"].as_u64()).sum())
                .unwrap_or(0);
            if applied >= total {
                break s;
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("the engine applied {applied} of {total} events in 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let applied_events: u64 = status["streams"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v["events"].as_u64()).sum())
            .unwrap_or(0);
        let orders: u64 = status["streams"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v["orders"].as_u64()).sum())
            .unwrap_or(0);
        let (lat50, lat99, _) = running.metrics.latency_quantiles().unwrap_or_default();
        drop(ctl);
        running.stop()?;

        // The swaps' pauses, by how the state was handed over.
        let mut all = Vec::new();
        let (mut snap, mut caught) = (Vec::new(), Vec::new());
        let (mut cu_events, mut cu_us) = (0u64, 0u64);
        for r in &swaps {
            let us = r["pause_us"].as_u64().unwrap_or(0);
            all.push(us);
            let hows: Vec<&Value> = r["streams"]
                .as_object()
                .map(|m| m.values().collect())
                .unwrap_or_default();
            if hows.iter().all(|h| h["handoff"]["how"] == "snapshot") {
                snap.push(us);
            } else {
                caught.push(us);
                cu_us += us;
                cu_events += hows
                    .iter()
                    .filter_map(|h| h["handoff"]["events"].as_u64())
                    .sum::<u64>();
            }
        }
        // Replayed along its timeline: every order reproduced.
        let rt = Runtime::new(RuntimeConfig::default())?;
        let store: tapedeck::store::StoreUri = dir.join("store").display().to_string().parse()?;
        let source = store.open()?;
        let t = verify::timeline(source.as_ref(), "bench")?;
        let mut modules = verify::Modules::new(&rt, &dir.join("live-modules"));
        let checks = verify::check(source.as_ref(), &t, &mut modules)?;
        let identical = checks.iter().all(|c| c.identical());
        for c in checks.iter().filter(|c| !c.identical()) {
            eprintln!(
                "{}: {}",
                c.stream,
                c.first_difference.as_ref().expect("a difference")
            );
        }
        let report = LiveReport {
            events: total,
            streams: self.connections,
            events_per_sec: acked as f64 / secs,
            swaps_under_load: swaps.len() as u64,
            lost_or_duplicated: applied_events.abs_diff(total),
            orders,
            replay_identical: identical,
            input_to_decision_p50_us: lat50,
            input_to_decision_p99_us: lat99,
            swap_pause_p50_us: quantile(&mut all, 0.5).unwrap_or(0),
            swap_pause_p99_us: quantile(&mut all, 0.99).unwrap_or(0),
            swap_pause_max_us: all.iter().copied().max().unwrap_or(0),
            snapshot_handoff_p50_us: quantile(&mut snap, 0.5),
            snapshot_handoff_p99_us: quantile(&mut snap, 0.99),
            catch_up_handoff_p50_us: quantile(&mut caught, 0.5),
            catch_up_handoff_p99_us: quantile(&mut caught, 0.99),
            catch_up_events_per_sec: (cu_us > 0).then(|| cu_events as f64 / (cu_us as f64 / 1e6)),
        };
        let _ = std::fs::remove_dir_all(&dir);
        if self.json {
            outln!("{}", serde_json::to_string(&report)?);
        } else {
            let r = &report;
            outln!(
                "load          {:.0} quotes/s acknowledged over {} streams, {} swaps under load",
                r.events_per_sec,
                r.streams,
                r.swaps_under_load
            );
            outln!(
                "exactly once  {} lost or duplicated; replay of the session identical: {}",
                r.lost_or_duplicated,
                r.replay_identical
            );
            outln!(
                "latency       input to decision p50 {} us, p99 {} us",
                r.input_to_decision_p50_us,
                r.input_to_decision_p99_us
            );
            outln!(
                "swap pause    p50 {} us, p99 {} us, max {} us",
                r.swap_pause_p50_us,
                r.swap_pause_p99_us,
                r.swap_pause_max_us
            );
            outln!(
                "  snapshot    p50 {:?} us, p99 {:?} us",
                r.snapshot_handoff_p50_us,
                r.snapshot_handoff_p99_us
            );
            outln!(
                "  catch-up    p50 {:?} us, p99 {:?} us, {:.0} events/s",
                r.catch_up_handoff_p50_us,
                r.catch_up_handoff_p99_us,
                r.catch_up_events_per_sec.unwrap_or(0.0)
            );
        }
        Ok(
            if report.replay_identical && report.lost_or_duplicated == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            },
        )
    }
}
