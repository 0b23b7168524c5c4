//! The Binance combined-stream client, an input of the recorder: one WebSocket for a market's
//! symbols and channels (`depth@100ms`, `bookTicker`, `trade`), the REST depth snapshot per
//! symbol, the book synced the documented way ([`SyncState`]) and every message mapped as
//! `import binance` maps a capture ([`Head`], [`Snapshot`]), so a recorded session and an
//! imported capture of it hold the same events.
//!
//! Every break is visible in the streams: a disconnect (or a stream silent for `stale_after_s`)
//! writes a `book_gap` event `{"reason":"feed_disconnected"}` into each symbol's stream that
//! had data since the last break, then the client reconnects with exponential backoff and
//! resyncs from a fresh snapshot; a break in the update-id chain writes the importer's
//! `book_gap` (`expected`, `got`) and fetches a fresh snapshot. A message that cannot be
//! mapped is quarantined by the sequencer like any bad input, with its origin.
//!
//! Events are handed to the sequencer per message; at most [`IN_FLIGHT`] submissions wait for
//! their acknowledgements (then the client stops reading: backpressure reaches the socket).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::Message;

use super::config::BinanceConfig;
use super::ingress::Ingress;
use super::now_ns;
use super::protocol::{AckId, Incoming, Reply};
use super::sequencer::{Item, QUARANTINE_KEEP};
use crate::event::{Body, Correlation, Tenancy};
use crate::import::binance::message::{Head, Payload, Snapshot, gap_body};
use crate::import::binance::stream_key;
use crate::import::binance::sync::{Step, SyncState};
use crate::net::{self, Url};

/// Submissions waiting for their acknowledgements, at most.
pub const IN_FLIGHT: usize = 64;

/// One symbol's book and what the client knows of it.
#[derive(Debug, Default)]
struct Sym {
    sync: SyncState,
    /// A snapshot request is on its way.
    fetching: bool,
    /// Data arrived since the last break (a break then gets a `book_gap`).
    live: bool,
    /// The wait before the next snapshot request (grows while requests fail).
    retry_in: Duration,
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
type Fetched = (String, std::result::Result<Snapshot, String>);

pub struct BinanceClient {
    pub cfg: BinanceConfig,
    pub ingress: Ingress,
    pub tls: Arc<ClientConfig>,
    pub stop: watch::Receiver<bool>,
}

/// Hands events to the sequencer, keeping at most [`IN_FLIGHT`] submissions unacknowledged.
struct Sender {
    ingress: Ingress,
    waiting: VecDeque<oneshot::Receiver<Vec<Reply>>>,
    line: u64,
}

impl Sender {
    async fn send(&mut self, items: Vec<Item>) -> std::result::Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        while self.waiting.len() >= IN_FLIGHT {
            let rx = self.waiting.pop_front().expect("not empty");
            self.check(rx.await.ok());
        }
        let rx = self
            .ingress
            .submit(items)
            .await
            .ok_or("the recorder is stopping")?;
        self.waiting.push_back(rx);
        while let Some(Ok(replies)) = self.waiting.front_mut().map(|rx| rx.try_recv()) {
            self.waiting.pop_front();
            self.check(Some(replies));
        }
        Ok(())
    }

    fn check(&self, replies: Option<Vec<Reply>>) {
        for r in replies.unwrap_or_default() {
            if let Reply::Nack { nack, error } = r {
                self.ingress.metrics.feed_errors.fetch_add(1, Relaxed);
                tracing::warn!(?nack, error, "a Binance event was refused");
            }
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
        };
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
            let mut gaps = Vec::new();
            for (symbol, s) in &mut syms {
                if s.live {
                    let key = stream_key(cfg.market, symbol);
                    let body = Body::Custom {
                        type_name: "book_gap".into(),
                        data: serde_json::json!({
                            "reason": "feed_disconnected",
                            "last_update_id": s.sync.last_u,
                        }),
                    };
                    gaps.push(sender.event(&key, symbol, now_ns(), body));
                    metrics.feed_gaps.fetch_add(1, Relaxed);
                }
                *s = Sym::default();
            }
            if sender.send(gaps).await.is_err() {
                return;
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
        let ws = async {
            let u = Url::parse(&url)?;
            let conn = net::connect(&u, &self.tls)
                .await
                .map_err(|e| format!("connecting to {}: {e}", u.authority()))?;
            tokio_tungstenite::client_async(url.as_str(), conn)
                .await
                .map_err(|e| format!("WebSocket handshake with {}: {e}", u.authority()))
        };
        let mut ws = match ws.await {
            Ok((ws, _)) => ws,
            Err(e) => return e,
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
            for (symbol, s) in syms.iter_mut() {
                if s.needs_snapshot() {
                    s.fetching = true;
                    self.fetch(symbol.clone(), s.retry_in, snap_tx.clone());
                }
            }
            let items = tokio::select! {
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
                        Vec::new()
                    }
                    Ok(Some(Ok(_))) => Vec::new(),
                },
                Some((symbol, fetched)) = snap_rx.recv() => {
                    self.snapshot(&symbol, fetched, syms, sender)
                }
                _ = self.stop.changed() => return "the recorder is stopping".into(),
            };
            if let Err(e) = sender.send(items).await {
                return e;
            }
        }
    }

    /// Requests `symbol`'s depth snapshot after `delay`; the answer comes back on `tx`.
    fn fetch(&self, symbol: String, delay: Duration, tx: mpsc::Sender<Fetched>) {
        let path = match self.cfg.market {
            crate::import::binance::Market::Spot => "/api/v3/depth",
            crate::import::binance::Market::Usdm => "/fapi/v1/depth",
        };
        let url = format!(
            "{}{path}?symbol={symbol}&limit={}",
            self.cfg.rest_url.trim_end_matches('/'),
            self.cfg.snapshot_limit
        );
        let tls = self.tls.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let got = async {
                let u = Url::parse(&url)?;
                let (status, body) = net::get(&u, &tls).await?;
                if status != 200 {
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                    return Err(format!("GET {url}: HTTP {status}: {text}"));
                }
                let v: Value = serde_json::from_slice(&body)
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
        fetched: std::result::Result<Snapshot, String>,
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
                let (min, max) = self.cfg.reconnect_range();
                s.retry_in = (s.retry_in * 2).clamp(min, max);
                self.ingress.metrics.feed_errors.fetch_add(1, Relaxed);
                tracing::warn!(symbol, error = e, "depth snapshot failed");
                return Vec::new();
            }
        };
        s.retry_in = Duration::ZERO;
        self.ingress.metrics.feed_snapshots.fetch_add(1, Relaxed);
        let key = stream_key(self.cfg.market, symbol);
        let id = snap.last_update_id;
        let mut items = vec![sender.event(&key, symbol, now_ns(), snap.into_body())];
        s.live = true;
        for p in s.sync.snapshot(id) {
            if let Some(body) = self.step(s.sync.diff(p.diff, p.time, p.local)) {
                items.push(sender.event(&key, symbol, p.time, body));
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
    ) -> Vec<Item> {
        let now = now_ns();
        let mapped = (|| -> std::result::Result<Vec<Item>, String> {
            let v: Value = serde_json::from_slice(text).map_err(|e| format!("bad JSON: {e}"))?;
            let head = Head::parse(&v)?;
            let symbol = head.symbol.to_ascii_uppercase();
            let s = syms
                .get_mut(&symbol)
                .ok_or_else(|| format!("symbol {symbol} was not subscribed"))?;
            let key = stream_key(self.cfg.market, &symbol);
            s.live = true;
            Ok(match head.payload()? {
                Payload::Diff { time, diff } => {
                    let t = time.unwrap_or(now);
                    let step = s.sync.diff(diff, t, now);
                    self.step(step)
                        .map(|body| sender.event(&key, &symbol, t, body))
                        .into_iter()
                        .collect()
                }
                Payload::Event { time, body } => {
                    vec![sender.event(&key, &symbol, time.unwrap_or(now), body)]
                }
            })
        })();
        mapped.unwrap_or_else(|error| {
            let id = sender.next_id();
            vec![Item::Bad {
                id,
                error,
                origin: format!("binance {} message {n}", self.cfg.ws_url),
                raw: text[..text.len().min(QUARANTINE_KEEP)].to_vec(),
                len: text.len(),
            }]
        })
    }

    /// The event a sync step stores, if any.
    fn step(&self, step: Step) -> Option<Body> {
        match step {
            Step::Apply(d) => Some(d.into_body()),
            Step::Gap { expected, got } => {
                self.ingress.metrics.feed_gaps.fetch_add(1, Relaxed);
                Some(gap_body(expected, got))
            }
            Step::Superseded | Step::Buffered { .. } => None,
        }
    }
}
