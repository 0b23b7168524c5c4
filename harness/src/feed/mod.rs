//! The feed simulator (`tapedeck feed serve`): a recorded Binance capture served as the exchange
//! serves it, so the recorder's Binance client is tested against real sockets.
//!
//! - `GET /stream?streams=btcusdt@depth@100ms/btcusdt@trade/...` upgrades to a WebSocket and
//!   sends the capture's combined-stream messages of those streams, as captured.
//! - `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (and `/fapi/v1/depth`) answers the REST depth
//!   snapshot of the book as of the last message sent (or `snapshot_lag` applied diffs before
//!   it, as an exchange's snapshot can trail its stream): the capture's own snapshots and diffs,
//!   kept in sync the documented way, are the exchange's book (the oracle a test compares a
//!   recorded book with). Before the capture has reached its first snapshot a request waits
//!   for it (5 s, then 503).
//! - `GET /sim/status`: messages sent, disconnects, pings and pongs, rate-limit answers,
//!   whether the capture is done.
//!
//! Like the exchange, it can ping every connection (`ping_every`) and close one that has not
//! answered a ping within `pong_timeout`, and limit REST requests (`rest_limit` per
//! `rest_window`): over the limit a request gets HTTP 429 with `Retry-After` (whole seconds to
//! the end of the window), and one sent while that wait runs gets 418 (Binance bans an IP that
//! ignores its 429s).
//!
//! The capture plays once, on one clock for every connection, like the exchange: it starts
//! when the first WebSocket connects and goes on whoever is connected, so a client that
//! reconnects has missed what was sent meanwhile. `speed` scales the capture's own clock
//! (0: as fast as connections take it); `disconnect_every` drops every WebSocket connection
//! (no close frame: the exchange went away) after each N messages. A connection that falls
//! more than [`BACKLOG`] messages behind is closed, as Binance closes slow consumers.
//!
//! Here: the options and the player (the capture read and paced on a thread of its own);
//! `serve` has the sockets (HTTP and WebSocket), `state` what the two share.

mod serve;
mod state;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};

use crate::error::{Error, Result};
use crate::import::binance::message::{Head, Payload, Snapshot, capture_line};
use crate::net;
use serve::accept;
use state::{Frame, Oracle, RestLimit, Shared};

pub use state::{BACKLOG, Status};

#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// A capture as `import binance` reads it (`<local_ts_ns> <json>` lines, gzip or plain).
    pub capture: PathBuf,
    pub listen: SocketAddr,
    /// Capture seconds per second; 0 sends as fast as connections take it.
    pub speed: f64,
    /// Drop every WebSocket connection after each this many messages.
    pub disconnect_every: Option<u64>,
    /// PEM certificate chain and key: serve `wss://` and `https://` instead.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The symbol of REST snapshots in the capture that come before any message naming it.
    pub symbol: Option<String>,
    /// Serve the depth snapshot as of this many applied diffs ago (the exchange's REST
    /// snapshot can be older than what its stream has sent).
    pub snapshot_lag: usize,
    /// Ping every WebSocket connection this often.
    pub ping_every: Option<Duration>,
    /// Close a connection whose oldest unanswered ping is older than this.
    pub pong_timeout: Duration,
    /// REST requests allowed per `rest_window` (none: no limit).
    pub rest_limit: Option<u32>,
    pub rest_window: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            capture: PathBuf::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            disconnect_every: None,
            tls: None,
            symbol: None,
            snapshot_lag: 0,
            ping_every: None,
            // Binance's: a minute.
            pong_timeout: Duration::from_secs(60),
            rest_limit: None,
            rest_window: Duration::from_secs(60),
        }
    }
}

/// A running simulator.
pub struct FeedServer {
    pub addr: SocketAddr,
    pub tls: bool,
    shared: Arc<Shared>,
    rt: tokio::runtime::Runtime,
}

impl FeedServer {
    /// Opens the capture, binds `listen` and serves; the playback waits for the first
    /// WebSocket connection.
    pub fn start(opts: FeedOptions) -> Result<FeedServer> {
        if !(opts.speed == 0.0 || (0.001..=1e6).contains(&opts.speed)) {
            return Err(Error::message(
                "starting the feed simulator",
                format!("speed {} is not 0 or 0.001 to 1000000", opts.speed),
            ));
        }
        let (reader, _) = crate::import::binance::open_capture(&opts.capture)?;
        let reader = std::io::BufReader::with_capacity(1 << 20, reader);
        let acceptor = match &opts.tls {
            Some((cert, key)) => Some(net::server_tls(cert, key)?),
            None => None,
        };
        let rt = net::runtime("tapedeck-feed")?;
        let listener = rt
            .block_on(TcpListener::bind(opts.listen))
            .and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|e| {
                Error::message(
                    "starting the feed simulator",
                    format!("cannot listen on {}: {e}", opts.listen),
                )
            })?;
        let (addr, listener) = listener;
        let (start_tx, start_rx) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::new(Shared {
            books: Mutex::default(),
            book_known: Notify::new(),
            tx: broadcast::channel(BACKLOG).0,
            start: Mutex::new(Some(start_tx)),
            sent: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            snapshots_served: AtomicU64::new(0),
            skipped_lines: AtomicU64::new(0),
            done: AtomicBool::new(false),
            pings: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            pong_timeouts: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            banned: AtomicU64::new(0),
            ping_every: opts.ping_every.filter(|d| !d.is_zero()),
            pong_timeout: opts.pong_timeout,
            rest: opts
                .rest_limit
                .map(|limit| Mutex::new(RestLimit::new(limit, opts.rest_window))),
        });
        let player = Player {
            shared: shared.clone(),
            speed: opts.speed,
            disconnect_every: opts.disconnect_every.filter(|n| *n > 0),
            symbol: opts.symbol.clone(),
            snapshot_lag: opts.snapshot_lag,
        };
        let name = opts.capture.display().to_string();
        std::thread::Builder::new()
            .name("tapedeck-feed-play".into())
            .spawn(move || {
                if start_rx.recv().is_ok() {
                    player.play(&name, reader);
                }
            })
            .map_err(|e| Error::message("starting the feed simulator", e.to_string()))?;
        rt.spawn(accept(listener, acceptor.clone(), shared.clone()));
        Ok(FeedServer {
            addr,
            tls: acceptor.is_some(),
            shared,
            rt,
        })
    }

    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Serves until SIGINT or SIGTERM.
    pub fn wait(&self) -> Result<()> {
        self.rt.block_on(net::until_signal(|| false))
    }
}

/// Plays the capture on its own thread (reading and pacing block).
struct Player {
    shared: Arc<Shared>,
    speed: f64,
    disconnect_every: Option<u64>,
    symbol: Option<String>,
    snapshot_lag: usize,
}

impl Player {
    fn play(mut self, name: &str, reader: impl BufRead) {
        let start = Instant::now();
        let mut first_ts = None;
        for (i, line) in reader.lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(capture = name, line = i + 1, error = %e, "capture unreadable from here on");
                    break;
                }
            };
            if let Err(why) = self.line(&line, start, &mut first_ts) {
                self.shared.skipped_lines.fetch_add(1, Relaxed);
                tracing::warn!(capture = name, line = i + 1, error = why, "line skipped");
            }
        }
        self.shared.done.store(true, Relaxed);
        tracing::info!(
            capture = name,
            sent = self.shared.sent.load(Relaxed),
            "capture done"
        );
    }

    fn line(
        &mut self,
        line: &str,
        start: Instant,
        first_ts: &mut Option<i64>,
    ) -> std::result::Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let (ts, json) = capture_line(line)?;
        if self.speed > 0.0 {
            let first = *first_ts.get_or_insert(ts);
            let due = Duration::from_secs_f64((ts - first).max(0) as f64 / 1e9 / self.speed);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let v: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
        if let Some(snap) = Snapshot::parse(&v)? {
            let symbol = self
                .symbol
                .clone()
                .ok_or("a REST snapshot before any message naming the symbol: pass --symbol")?;
            let lag = self.snapshot_lag;
            self.shared
                .books
                .lock()
                .unwrap()
                .entry(symbol)
                .or_insert_with(|| Oracle {
                    lag,
                    ..Oracle::default()
                })
                .snapshot(snap);
            self.shared.book_known.notify_waiters();
            return Ok(());
        }
        let head = Head::parse(&v)?;
        let symbol = head.symbol.to_ascii_uppercase();
        if head.kind == Some("depthUpdate")
            && let Payload::Diff { diff, .. } = head.payload()?
        {
            let lag = self.snapshot_lag;
            self.shared
                .books
                .lock()
                .unwrap()
                .entry(symbol.clone())
                .or_insert_with(|| Oracle {
                    lag,
                    ..Oracle::default()
                })
                .diff(diff);
        }
        self.symbol.get_or_insert(symbol);
        let stream = v
            .get("stream")
            .and_then(Value::as_str)
            .ok_or("not a combined-stream message (no `stream`)")?;
        let _ = self.shared.tx.send(Frame::Msg {
            stream: stream.into(),
            text: json.to_string().into(),
        });
        let sent = self.shared.sent.fetch_add(1, Relaxed) + 1;
        if self
            .disconnect_every
            .is_some_and(|n| sent.is_multiple_of(n))
        {
            self.shared.disconnects.fetch_add(1, Relaxed);
            let _ = self.shared.tx.send(Frame::Disconnect);
        }
        Ok(())
    }
}
