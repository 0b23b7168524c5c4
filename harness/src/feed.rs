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

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::error::{Error, Result};
use crate::import::binance::book::Book;
use crate::import::binance::message::{Head, Payload, Snapshot, capture_line};
use crate::import::binance::sync::{Diff, Step, SyncState};
use crate::net;

/// Messages a connection may fall behind before it is closed.
pub const BACKLOG: usize = 1 << 16;
/// How long a depth request waits for a book the capture has not reached yet.
const BOOK_WAIT: Duration = Duration::from_secs(5);
/// Binance's largest depth `limit`.
const MAX_LIMIT: usize = 5000;

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

/// What the simulator has done, as `GET /sim/status` says it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Capture messages sent (to whoever was connected).
    pub sent: u64,
    /// Connections dropped by `disconnect_every`.
    pub disconnects: u64,
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Depth snapshots served.
    pub snapshots_served: u64,
    /// Capture lines that could not be served (not `<ts> <json>`, or not a stream message).
    pub skipped_lines: u64,
    /// Pings sent, and pongs that answered one.
    pub pings: u64,
    pub pongs: u64,
    /// Connections closed for not answering a ping in time.
    pub pong_timeouts: u64,
    /// REST requests answered 429 (over the limit) and 418 (sent during a 429's wait).
    pub rate_limited: u64,
    pub banned: u64,
    /// The whole capture has been sent.
    pub done: bool,
}

/// The capture's book of one symbol, kept in sync the documented way, and the same book
/// `lag` applied diffs behind (what the depth endpoint serves).
#[derive(Debug, Default)]
struct Oracle {
    sync: SyncState,
    book: Book,
    lag: usize,
    /// The last `lag` applied diffs, oldest first: not yet in `lagged`.
    behind: std::collections::VecDeque<Diff>,
    lagged: Book,
}

impl Oracle {
    fn snapshot(&mut self, s: Snapshot) {
        self.book = Book::from_levels(s.last_update_id, &s.bids, &s.asks);
        self.lagged = self.book.clone();
        self.behind.clear();
        for p in self.sync.snapshot(s.last_update_id) {
            self.diff(p.diff);
        }
    }

    fn diff(&mut self, d: Diff) {
        if let Step::Apply(d) = self.sync.diff(d, 0, 0) {
            self.book.apply(d.last, &d.bids, &d.asks);
            self.behind.push_back(d);
            while self.behind.len() > self.lag {
                let d = self.behind.pop_front().expect("not empty");
                self.lagged.apply(d.last, &d.bids, &d.asks);
            }
        }
    }

    /// Whether the book is known (a snapshot, or in sync since).
    fn known(&self) -> bool {
        self.sync.last_u.is_some() || self.sync.snapshot_id.is_some()
    }
}

#[derive(Debug, Clone)]
enum Frame {
    Msg { stream: Arc<str>, text: Utf8Bytes },
    Disconnect,
}

#[derive(Debug)]
struct Shared {
    books: Mutex<BTreeMap<String, Oracle>>,
    /// Woken when a book becomes known.
    book_known: Notify,
    tx: broadcast::Sender<Frame>,
    /// Taken by the first WebSocket connection to start the playback.
    start: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    sent: AtomicU64,
    disconnects: AtomicU64,
    connections: AtomicU64,
    snapshots_served: AtomicU64,
    skipped_lines: AtomicU64,
    done: AtomicBool,
    pings: AtomicU64,
    pongs: AtomicU64,
    pong_timeouts: AtomicU64,
    rate_limited: AtomicU64,
    banned: AtomicU64,
    ping_every: Option<Duration>,
    pong_timeout: Duration,
    rest: Option<Mutex<RestLimit>>,
}

/// The REST limit's window: requests counted since `start`; past the limit, none may come
/// before `blocked_until`.
#[derive(Debug)]
struct RestLimit {
    limit: u32,
    window: Duration,
    start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

impl RestLimit {
    /// None: the request may go through; else its refusal.
    fn check(&mut self, now: Instant, shared: &Shared) -> Option<Resp> {
        let retry_after = |until: Instant| {
            // Whole seconds, rounded up: a client that waits them is past the block.
            let left = until.saturating_duration_since(now);
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        };
        if let Some(until) = self.blocked_until.filter(|u| now < *u) {
            shared.banned.fetch_add(1, Relaxed);
            let mut r = error(
                StatusCode::IM_A_TEAPOT,
                -1003,
                "Way too many requests; IP banned until the Retry-After has passed.",
            );
            r.headers_mut()
                .insert("retry-after", retry_after(until).into());
            return Some(r);
        }
        if now.duration_since(self.start) >= self.window {
            self.start = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count <= self.limit {
            return None;
        }
        let until = self.start + self.window;
        self.blocked_until = Some(until);
        shared.rate_limited.fetch_add(1, Relaxed);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            -1003,
            "Too many requests; wait for the Retry-After.",
        );
        r.headers_mut()
            .insert("retry-after", retry_after(until).into());
        Some(r)
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
            rest: opts.rest_limit.map(|limit| {
                Mutex::new(RestLimit {
                    limit,
                    window: opts.rest_window,
                    start: Instant::now(),
                    count: 0,
                    blocked_until: None,
                })
            }),
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

impl Shared {
    fn status(&self) -> Status {
        Status {
            sent: self.sent.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            connections: self.connections.load(Relaxed),
            snapshots_served: self.snapshots_served.load(Relaxed),
            skipped_lines: self.skipped_lines.load(Relaxed),
            pings: self.pings.load(Relaxed),
            pongs: self.pongs.load(Relaxed),
            pong_timeouts: self.pong_timeouts.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            banned: self.banned.load(Relaxed),
            done: self.done.load(Relaxed),
        }
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

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                net::accept_failed(e).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(s) => net::serve_http(s, service).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => net::serve_http(tcp, service).await,
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

/// A Binance-style error body.
fn error(status: StatusCode, code: i64, msg: &str) -> Resp {
    let body = serde_json::json!({ "code": code, "msg": msg }).to_string();
    reply(status, "application/json", body)
}

fn query(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<Resp, Infallible> {
    let resp = match req.uri().path() {
        "/stream" | "/stream/" => websocket(shared, req),
        "/api/v3/depth" | "/fapi/v1/depth" => {
            let refused = shared
                .rest
                .as_ref()
                .and_then(|r| r.lock().unwrap().check(Instant::now(), &shared));
            match refused {
                Some(r) => r,
                None => depth(&shared, &req).await,
            }
        }
        "/sim/status" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&shared.status()).expect("status serializes"),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the feed simulator serves /stream (WebSocket), /api/v3/depth, /fapi/v1/depth, /sim/status\n",
        ),
    };
    Ok(resp)
}

async fn depth(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Resp {
    let Some(symbol) = query(req, "symbol").map(|s| s.to_ascii_uppercase()) else {
        return error(
            StatusCode::BAD_REQUEST,
            -1102,
            "Mandatory parameter 'symbol' was not sent.",
        );
    };
    let limit = match query(req, "limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if l > 0 => l.min(MAX_LIMIT),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                -1100,
                "Illegal characters found in parameter 'limit'.",
            );
        }
    };
    let deadline = tokio::time::Instant::now() + BOOK_WAIT;
    loop {
        let known = shared.book_known.notified();
        {
            let books = shared.books.lock().unwrap();
            if let Some(o) = books.get(&symbol).filter(|o| o.known()) {
                shared.snapshots_served.fetch_add(1, Relaxed);
                return reply(
                    StatusCode::OK,
                    "application/json",
                    o.lagged.snapshot_json(limit),
                );
            }
            if shared.done.load(Relaxed) && !books.contains_key(&symbol) {
                return error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
            }
        }
        if tokio::time::timeout_at(deadline, known).await.is_err() {
            let msg =
                format!("no book of {symbol} yet: the capture has not reached a snapshot of it");
            return error(StatusCode::SERVICE_UNAVAILABLE, -1, &msg);
        }
    }
}

fn websocket(shared: Arc<Shared>, mut req: Request<hyper::body::Incoming>) -> Resp {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return error(
            StatusCode::BAD_REQUEST,
            -1,
            "/stream is a WebSocket endpoint",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let streams: HashSet<String> = query(&req, "streams")
        .map(|s| s.split('/').map(str::to_string).collect())
        .unwrap_or_default();
    // Subscribed before the upgrade answer, so nothing sent after it is missed.
    let rx = shared.tx.subscribe();
    shared.connections.fetch_add(1, Relaxed);
    if let Some(start) = shared.start.lock().unwrap().take() {
        let _ = start.send(());
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(&mut req).await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                pump(ws, rx, streams, &shared).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .expect("a valid response")
}

async fn pump<S>(
    mut ws: WebSocketStream<S>,
    mut rx: broadcast::Receiver<Frame>,
    streams: HashSet<String>,
    shared: &Shared,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Pings carry their number; a pong answers every ping up to the one it echoes.
    let mut pinger = shared.ping_every.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut pinged = 0u64;
    let mut unanswered: std::collections::VecDeque<(u64, Instant)> = Default::default();
    loop {
        let tick = async {
            match pinger.as_mut() {
                Some(t) => t.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick => {
                if unanswered.front().is_some_and(|(_, at)| at.elapsed() > shared.pong_timeout) {
                    shared.pong_timeouts.fetch_add(1, Relaxed);
                    let reason = "pong timeout".into();
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Policy, reason })).await;
                    return;
                }
                pinged += 1;
                unanswered.push_back((pinged, Instant::now()));
                shared.pings.fetch_add(1, Relaxed);
                if ws.send(Message::Ping(pinged.to_be_bytes().to_vec().into())).await.is_err() {
                    return;
                }
            }
            frame = rx.recv() => match frame {
                Ok(Frame::Msg { stream, text }) => {
                    if streams.contains(&*stream) && ws.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                // The exchange went away: no close frame.
                Ok(Frame::Disconnect) | Err(broadcast::error::RecvError::Closed) => return,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let reason = format!("too slow: {n} messages behind");
                    let frame = CloseFrame { code: CloseCode::Policy, reason: reason.into() };
                    let _ = ws.close(Some(frame)).await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Pong(p))) => {
                    // An unsolicited pong (allowed) answers nothing.
                    let n = <[u8; 8]>::try_from(&p[..]).map_or(0, u64::from_be_bytes);
                    while unanswered.front().is_some_and(|(k, _)| *k <= n) {
                        unanswered.pop_front();
                        shared.pongs.fetch_add(1, Relaxed);
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
