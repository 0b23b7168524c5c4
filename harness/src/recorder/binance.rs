//! The Binance combined-stream client, an input of the recorder: one WebSocket for a market's
//! symbols and channels (`depth@100ms`, `bookTicker`, `trade`), the REST depth snapshot per
//! symbol, the book synced the documented way ([`SyncState`]) and every message mapped as
//! `import binance` maps a capture ([`Head`], [`Snapshot`]), so a recorded session and an
//! imported capture of it hold the same events.
//!
//! Every break is visible in the streams:
//! - each start writes a `book_gap` `{"reason":"feed_started"}` into every symbol's stream
//!   (what happened while no recorder ran is unknown);
//! - a disconnect, or a connection silent for `stale_after_s`, writes `{"reason":
//!   "feed_disconnected"}` into each symbol's stream that had data since the last break, then
//!   the client reconnects with exponential backoff and resyncs from a fresh snapshot;
//! - a break in the update-id chain writes the importer's `book_gap` (`expected`, `got`) and
//!   takes a fresh snapshot;
//! - an event the recorder refused (market data dropped under overload, which the sequencer
//!   marks with its own `book_gap`) makes its symbol resync from a fresh snapshot.
//!
//! A snapshot is stored only once a diff continues it (with that diff): one older than the
//! stream is dropped and a fresh one asked for, so a stream never holds a stale book.
//! Snapshot requests back off while they do not bring the book in sync (a snapshot older than
//! the stream, a failed request), and wait out a rate limit (HTTP 429/418, `Retry-After`):
//! the exchange limits an IP, so every symbol and every feed of the recorder waits it out
//! ([`RestGate`]), not only the request that met it. The server's pings are answered.
//! Connecting and each request time out. A message that cannot be mapped is quarantined by
//! the sequencer like any bad input, with its origin; a message over `inputs.max_line_bytes`
//! breaks the connection.
//!
//! Events are handed to the sequencer per message; at most [`WAITING_SUBMISSIONS`] wait for
//! their acknowledgements (then the client stops reading: backpressure reaches the socket).

use std::collections::{BTreeMap, VecDeque};
use std::result::Result;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::config::BinanceConfig;
use super::ingress::Ingress;
use super::now_ns;
use super::protocol::{AckId, Incoming, Reply};
use super::sequencer::Item;
use crate::event::{Body, Correlation, Tenancy};
use crate::import::binance::message::{Head, Payload, Snapshot, book_gap, gap_body};
use crate::import::binance::stream_key;
use crate::import::binance::sync::{Step, SyncState};
use crate::net::{self, Url};

/// Submissions waiting for their acknowledgements, at most.
pub const WAITING_SUBMISSIONS: usize = 64;
/// Connecting (TCP, TLS, WebSocket handshake) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A snapshot request may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One symbol's book and what the client knows of it.
#[derive(Debug, Default)]
struct Sym {
    sync: SyncState,
    /// A snapshot request is on its way.
    fetching: bool,
    /// Data arrived since the last break (a break then gets a `book_gap`).
    live: bool,
    /// The wait before the next snapshot request: none at first, then growing until the book
    /// is in sync.
    retry_in: Duration,
    /// A snapshot taken (when, and its event) that no diff has continued yet: stored only
    /// once one does, so the stream never holds a snapshot older than the stream it is in.
    held: Option<(i64, Body)>,
}

impl Sym {
    fn needs_snapshot(&self) -> bool {
        !self.fetching && self.sync.last_u.is_none() && self.sync.snapshot_id.is_none()
    }
}

/// Counts an open connection until dropped.
struct Connected<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A snapshot request's answer.
type Fetched = (String, Result<Snapshot, String>);

pub struct BinanceClient {
    pub cfg: BinanceConfig,
    pub ingress: Ingress,
    pub tls: Arc<ClientConfig>,
    pub stop: watch::Receiver<bool>,
    /// Shared by every feed of the recorder.
    pub rest: RestGate,
}

/// When the next REST request may go out. A rate limit (HTTP 429, or 418 for an IP that
/// ignored one) is the exchange's per IP: once one is met, no request of any symbol or feed
/// goes out before its `Retry-After` has passed (another request meanwhile would be banned).
#[derive(Debug, Clone, Default)]
pub struct RestGate(Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl RestGate {
    /// Waits until requests may go out (a block extended meanwhile is waited out too).
    async fn open(&self) {
        loop {
            let until = *self.0.lock().expect("rest gate");
            match until {
                Some(t) if t > tokio::time::Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// No request before `wait` from now.
    fn close_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut g = self.0.lock().expect("rest gate");
        *g = Some(g.map_or(until, |t| t.max(until)));
    }
}

/// Hands events to the sequencer, keeping at most [`WAITING_SUBMISSIONS`] unacknowledged.
struct Sender {
    ingress: Ingress,
    /// Each submission's acknowledgements, with the symbol its events are of.
    waiting: VecDeque<(oneshot::Receiver<Vec<Reply>>, Option<String>)>,
    line: u64,
    /// Symbols with a refused event since the last look: their books must resync.
    refused: Vec<String>,
}

impl Sender {
    async fn send(&mut self, items: Vec<Item>, symbol: Option<&str>) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        while self.waiting.len() >= WAITING_SUBMISSIONS {
            let (rx, symbol) = self.waiting.pop_front().expect("not empty");
            self.check(rx.await.ok(), symbol);
        }
        let rx = self
            .ingress
            .submit(items)
            .await
            .ok_or("the recorder is stopping")?;
        self.waiting.push_back((rx, symbol.map(str::to_string)));
        while let Some(Ok(replies)) = self.waiting.front_mut().map(|(rx, _)| rx.try_recv()) {
            let (_, symbol) = self.waiting.pop_front().expect("not empty");
            self.check(Some(replies), symbol);
        }
        Ok(())
    }

    fn check(&mut self, replies: Option<Vec<Reply>>, symbol: Option<String>) {
        let mut refused = false;
        for r in replies.unwrap_or_default() {
            if let Reply::Nack { nack, error } = r {
                refused = true;
                self.ingress.metrics.feed_errors.fetch_add(1, Relaxed);
                tracing::warn!(?nack, error, "a Binance event was refused");
            }
        }
        if let Some(s) = symbol.filter(|_| refused) {
            self.refused.push(s);
        }
    }

    fn next_id(&mut self) -> AckId {
        self.line += 1;
        AckId::Line(self.line)
    }

    fn event(&mut self, key: &str, symbol: &str, occurred_at: i64, body: Body) -> Item {
        Item::Event {
            id: self.next_id(),
            event: Box::new(Incoming {
                event_id: None,
                stream_key: key.to_string(),
                seq: None,
                occurred_at,
                ingested_at: None,
                instrument: Some(symbol.to_string()),
                tenancy: Tenancy::default(),
                correlation: Correlation::default(),
                idempotency_key: None,
                body,
            }),
        }
    }
}

impl BinanceClient {
    /// Streams until the recorder stops, reconnecting after every break.
    pub async fn run(mut self) {
        let cfg = self.cfg.clone();
        let metrics = self.ingress.metrics.clone();
        let mut syms: BTreeMap<String, Sym> = cfg
            .symbols
            .iter()
            .map(|s| (s.to_ascii_uppercase(), Sym::default()))
            .collect();
        let mut sender = Sender {
            ingress: self.ingress.clone(),
            waiting: VecDeque::new(),
            line: 0,
            refused: Vec::new(),
        };
        // What happened before this start is unknown: every stream says so first.
        for symbol in syms.keys() {
            let gap = self.gap(
                &mut sender,
                symbol,
                serde_json::json!({"reason": "feed_started"}),
            );
            if sender.send(vec![gap], Some(symbol)).await.is_err() {
                return;
            }
        }
        let (min, max) = cfg.reconnect_range();
        let mut backoff = min;
        loop {
            let began = Instant::now();
            let end = self.session(&mut syms, &mut sender).await;
            if *self.stop.borrow() {
                return;
            }
            tracing::warn!(
                url = cfg.ws_url,
                reason = end,
                "Binance stream broken; reconnecting"
            );
            metrics.feed_reconnects.fetch_add(1, Relaxed);
            for (symbol, s) in &mut syms {
                if s.live {
                    let data = serde_json::json!({
                        "reason": "feed_disconnected",
                        "last_update_id": s.sync.last_u,
                    });
                    let gap = self.gap(&mut sender, symbol, data);
                    if sender.send(vec![gap], Some(symbol)).await.is_err() {
                        return;
                    }
                }
                *s = Sym::default();
            }
            if began.elapsed() > max.saturating_mul(3) {
                backoff = min;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.changed() => return,
            }
            backoff = (backoff * 2).min(max);
        }
    }

    /// A `book_gap` event of `symbol`'s stream (counted).
    fn gap(&self, sender: &mut Sender, symbol: &str, data: Value) -> Item {
        self.ingress.metrics.feed_gaps.fetch_add(1, Relaxed);
        let key = stream_key(self.cfg.market, symbol);
        sender.event(&key, symbol, now_ns(), book_gap(data))
    }

    /// Connects and subscribes to every symbol's channels.
    async fn connect(&self, url: &str) -> Result<WebSocketStream<net::Conn>, String> {
        let u = Url::parse(url)?;
        let conn = net::connect(&u, &self.tls)
            .await
            .map_err(|e| format!("connecting to {}: {e}", u.authority()))?;
        // A message is at most what any input may send.
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.ingress.max_line_bytes))
            .max_frame_size(Some(self.ingress.max_line_bytes));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, conn, Some(config))
            .await
            .map_err(|e| format!("WebSocket handshake with {}: {e}", u.authority()))?;
        Ok(ws)
    }

    /// One connection: until it breaks (the reason) or the recorder stops.
    async fn session(&mut self, syms: &mut BTreeMap<String, Sym>, sender: &mut Sender) -> String {
        let metrics = self.ingress.metrics.clone();
        let streams: Vec<String> = syms
            .keys()
            .flat_map(|s| {
                let s = s.to_ascii_lowercase();
                self.cfg.channels.iter().map(move |c| format!("{s}@{c}"))
            })
            .collect();
        let url = format!("{}?streams={}", self.cfg.ws_url, streams.join("/"));
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&url)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return e,
            Err(_) => return format!("connecting took over {} s", CONNECT_TIMEOUT.as_secs()),
        };
        tracing::info!(
            url = self.cfg.ws_url,
            streams = streams.len(),
            "Binance stream connected"
        );
        metrics.feed_connected.fetch_add(1, Relaxed);
        let _connected = Connected(&metrics.feed_connected);
        let (snap_tx, mut snap_rx) = mpsc::channel::<Fetched>(syms.len().max(1));
        let stale = Duration::from_secs(self.cfg.stale_after_s.max(1));
        let mut received = 0u64;
        loop {
            // Refused events left holes in their books: start those over.
            for symbol in std::mem::take(&mut sender.refused) {
                if let Some(s) = syms.get_mut(&symbol) {
                    s.sync = SyncState::default();
                    s.held = None;
                }
            }
            for (symbol, s) in syms.iter_mut() {
                if s.needs_snapshot() {
                    s.fetching = true;
                    self.fetch(symbol.clone(), s.retry_in, snap_tx.clone());
                    let (min, max) = self.cfg.reconnect_range();
                    s.retry_in = (s.retry_in * 2).clamp(min, max);
                }
            }
            let (items, symbol) = tokio::select! {
                msg = tokio::time::timeout(stale, ws.next()) => match msg {
                    Err(_) => return format!("no message for {} s", stale.as_secs()),
                    Ok(None) => return "closed by the server".into(),
                    Ok(Some(Err(e))) => return format!("read error: {e}"),
                    Ok(Some(Ok(Message::Text(t)))) => {
                        received += 1;
                        metrics.feed_messages.fetch_add(1, Relaxed);
                        self.message(t.as_bytes(), received, syms, sender)
                    }
                    Ok(Some(Ok(Message::Close(f)))) => {
                        return format!("closed by the server: {f:?}");
                    }
                    Ok(Some(Ok(Message::Ping(_)))) => {
                        // The pong is queued by the read; send it now.
                        if let Err(e) = ws.flush().await {
                            return format!("write error: {e}");
                        }
                        (Vec::new(), None)
                    }
                    Ok(Some(Ok(_))) => (Vec::new(), None),
                },
                Some((symbol, fetched)) = snap_rx.recv() => {
                    let items = self.snapshot(&symbol, fetched, syms, sender);
                    (items, Some(symbol))
                }
                _ = self.stop.changed() => return "the recorder is stopping".into(),
            };
            if let Err(e) = sender.send(items, symbol.as_deref()).await {
                return e;
            }
        }
    }

    /// Requests `symbol`'s depth snapshot after `delay` (and once the [`RestGate`] is open);
    /// the answer comes back on `tx`. A rate limit closes the gate for its `Retry-After` (else
    /// the longest reconnect wait), so no request of any symbol goes out meanwhile.
    fn fetch(&self, symbol: String, delay: Duration, tx: mpsc::Sender<Fetched>) {
        let url = format!(
            "{}{}?symbol={symbol}&limit={}",
            self.cfg.rest_url.trim_end_matches('/'),
            self.cfg.market.depth_path(),
            self.cfg.snapshot_limit
        );
        let tls = self.tls.clone();
        let gate = self.rest.clone();
        let (_, longest) = self.cfg.reconnect_range();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            gate.open().await;
            let got = async {
                let u = Url::parse(&url)?;
                let got = tokio::time::timeout(REQUEST_TIMEOUT, net::get(&u, &tls))
                    .await
                    .map_err(|_| {
                        format!("GET {url}: no answer in {} s", REQUEST_TIMEOUT.as_secs())
                    })??;
                if got.status != 200 {
                    let body = &got.body[..got.body.len().min(300)];
                    let text = String::from_utf8_lossy(body);
                    if matches!(got.status, 418 | 429) {
                        gate.close_for(got.retry_after.map_or(longest, Duration::from_secs));
                    }
                    return Err(format!("GET {url}: HTTP {}: {text}", got.status));
                }
                let v: Value = serde_json::from_slice(&got.body)
                    .map_err(|e| format!("GET {url}: not JSON: {e}"))?;
                Snapshot::parse(&v)
                    .and_then(|s| s.ok_or_else(|| "no lastUpdateId".into()))
                    .map_err(|e| format!("GET {url}: not a depth snapshot: {e}"))
            }
            .await;
            let _ = tx.send((symbol, got)).await;
        });
    }

    /// A snapshot's events: the `book_snapshot`, then the buffered diffs it lets through.
    fn snapshot(
        &self,
        symbol: &str,
        fetched: Result<Snapshot, String>,
        syms: &mut BTreeMap<String, Sym>,
        sender: &mut Sender,
    ) -> Vec<Item> {
        let Some(s) = syms.get_mut(symbol) else {
            return Vec::new();
        };
        s.fetching = false;
        let snap = match fetched {
            Ok(snap) => snap,
            Err(e) => {
                // Asked again, later each time (the stream keeps coming meanwhile).
                self.ingress.metrics.feed_errors.fetch_add(1, Relaxed);
                tracing::warn!(symbol, error = e, "depth snapshot failed");
                return Vec::new();
            }
        };
        self.ingress.metrics.feed_snapshots.fetch_add(1, Relaxed);
        let key = stream_key(self.cfg.market, symbol);
        let id = snap.last_update_id;
        s.live = true;
        s.held = Some((now_ns(), snap.into_body()));
        let mut items = Vec::new();
        for p in s.sync.snapshot(id) {
            let step = s.sync.diff(p.diff, p.time, p.local);
            for (t, body) in self.step(s, step, p.time) {
                items.push(sender.event(&key, symbol, t, body));
            }
        }
        items
    }

    /// A stream message's events; one that cannot be mapped is quarantined.
    fn message(
        &self,
        text: &[u8],
        n: u64,
        syms: &mut BTreeMap<String, Sym>,
        sender: &mut Sender,
    ) -> (Vec<Item>, Option<String>) {
        let now = now_ns();
        let mapped = (|| -> Result<(Vec<Item>, Option<String>), String> {
            let v: Value = serde_json::from_slice(text).map_err(|e| format!("bad JSON: {e}"))?;
            let head = Head::parse(&v)?;
            let symbol = head.symbol.to_ascii_uppercase();
            let s = syms
                .get_mut(&symbol)
                .ok_or_else(|| format!("symbol {symbol} was not subscribed"))?;
            let key = stream_key(self.cfg.market, &symbol);
            s.live = true;
            let items = match head.payload()? {
                Payload::Diff { time, diff } => {
                    let t = time.unwrap_or(now);
                    let step = s.sync.diff(diff, t, now);
                    self.step(s, step, t)
                        .into_iter()
                        .map(|(t, body)| sender.event(&key, &symbol, t, body))
                        .collect()
                }
                Payload::Event { time, body } => {
                    vec![sender.event(&key, &symbol, time.unwrap_or(now), body)]
                }
            };
            Ok((items, Some(symbol)))
        })();
        mapped.unwrap_or_else(|error| {
            let id = sender.next_id();
            let origin = format!("binance {} message {n}", self.cfg.ws_url);
            (vec![Item::bad(id, error, origin, text)], None)
        })
    }

    /// The events a sync step at time `t` stores: a delta that continues the book (after the
    /// snapshot it is the first to continue), or a gap.
    fn step(&self, s: &mut Sym, step: Step, t: i64) -> Vec<(i64, Body)> {
        let metrics = &self.ingress.metrics;
        let mut out = Vec::new();
        match step {
            Step::Apply(d) => {
                // In sync: the next snapshot (after a break) may be asked for at once.
                s.retry_in = Duration::ZERO;
                out.extend(s.held.take());
                out.push((t, d.into_body()));
            }
            Step::Gap { expected, got } => {
                metrics.feed_gaps.fetch_add(1, Relaxed);
                out.push((t, gap_body(expected, got)));
            }
            Step::Buffered { overflowed } => {
                if overflowed {
                    metrics.feed_errors.fetch_add(1, Relaxed);
                }
            }
            Step::Superseded => {}
        }
        if s.sync.snapshot_id.is_none() && s.sync.last_u.is_none() {
            // Out of sync: a held snapshot older than the stream is dropped (a fresh one is
            // asked for).
            s.held = None;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rate_limit_holds_every_request_until_its_retry_after() {
        let ms = Duration::from_millis;
        let gate = RestGate::default();
        let t0 = tokio::time::Instant::now();
        gate.open().await;
        assert!(t0.elapsed() < ms(50));
        gate.close_for(ms(200));
        // A shorter limit met meanwhile does not shorten the wait; a longer one extends it,
        // also for a request already waiting.
        gate.close_for(ms(100));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.open().await;
                t0.elapsed()
            })
        };
        tokio::time::sleep(ms(50)).await;
        gate.close_for(ms(300));
        let waited = waiter.await.unwrap();
        assert!(waited >= ms(350), "{waited:?}");
        gate.open().await;
        assert!(t0.elapsed() >= ms(350));
    }
}
