//! The order sink: a live session's orders and cancels handed to a real executor instead of
//! the paper venue, one NDJSON line each, over TCP (`tcp://HOST:PORT`) or as the body of a
//! `POST` (`http://` or `https://` URL), from a thread of its own (the event path only
//! queues them), each once the recorder has made the session's record of it durable: after a
//! crash, what an executor was sent is what the session holds.
//!
//! A failed write or a non-2xx answer is retried (reconnecting, with backoff) until it lands;
//! over TCP a line counts as delivered once written to the socket. An executor deduplicates by
//! `order_id`, which is derived from the session, the stream, the seq and the output index and
//! so is the same however often a line is sent, restarts included. The executor reports acks and fills back through
//! the recorder's inputs (into the exec streams), like any other event.
//!
//! A line: `{"order_id":..,"cause":"<stream>:<seq>","symbol":..,"time_ns":..,
//! "event_type":"order_submitted"|"order_cancelled","payload":{..}}`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::recorder::protocol::Incoming;

/// Lines queued for the executor, at most (then the event path waits).
pub const QUEUE: usize = 65_536;

#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub sent: AtomicU64,
    pub retries: AtomicU64,
    pub queued: AtomicU64,
}

/// Where orders go.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(String),
    Http(crate::net::Url),
}

impl Target {
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        if let Some(addr) = url.strip_prefix("tcp://") {
            return Ok(Target::Tcp(addr.trim_end_matches('/').to_string()));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return crate::net::Url::parse(url)
                .map(Target::Http)
                .map_err(|e| format!("order_sink.url {url:?}: {e}"));
        }
        Err(format!(
            "order_sink.url {url:?}: want tcp://HOST:PORT (NDJSON over a socket) or an http(s):// URL (NDJSON POSTs)"
        ))
    }
}

/// The event path's end of the sink.
#[derive(Debug, Clone)]
pub struct OrderSink {
    tx: SyncSender<Vec<u8>>,
    pub metrics: Arc<SinkMetrics>,
}

/// One line for the executor, for an exec event of the session (None for other events).
pub fn line(e: &Incoming) -> Option<Vec<u8>> {
    use crate::event::Body;
    if !matches!(
        e.body,
        Body::OrderSubmitted { .. } | Body::OrderCancelled { .. }
    ) {
        return None;
    }
    let mut v = serde_json::to_value(&e.body).expect("JSON");
    v["order_id"] = json!(e.correlation.command_id);
    v["cause"] = json!(e.correlation.causation_id);
    v["symbol"] = json!(e.instrument);
    v["time_ns"] = json!(e.occurred_at);
    let mut b = serde_json::to_vec(&v).expect("JSON");
    b.push(b'\n');
    Some(b)
}

impl OrderSink {
    /// Starts the sender thread; it ends once every `OrderSink` is dropped and the queue is
    /// delivered (or `stopping` says to give up on an unreachable executor).
    pub fn start(
        target: Target,
        tls: crate::net::ClientTls,
        stopping: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<(OrderSink, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let metrics = Arc::new(SinkMetrics::default());
        let m = metrics.clone();
        let h = std::thread::Builder::new()
            .name("tapedeck-orders".into())
            .spawn(move || deliver(target, tls, rx, &m, &stopping))
            .map_err(|e| Error::message("starting the order sink", e.to_string()))?;
        Ok((OrderSink { tx, metrics }, h))
    }

    /// Queues a line, waiting while the queue is full, unless `stopping` (an executor that is
    /// down must not keep a session from stopping): then the line is dropped with an alert.
    pub fn send(&self, mut line: Vec<u8>, stopping: &std::sync::atomic::AtomicBool) {
        self.metrics.queued.fetch_add(1, Relaxed);
        loop {
            match self.tx.try_send(line) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(l)) if !stopping.load(Relaxed) => {
                    line = l;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    self.metrics.queued.fetch_sub(1, Relaxed);
                    tracing::error!(
                        "ALERT: the order sink is full or stopped while stopping; an order was not sent"
                    );
                    return;
                }
            }
        }
    }
}

fn deliver(
    target: Target,
    tls: crate::net::ClientTls,
    rx: Receiver<Vec<u8>>,
    m: &SinkMetrics,
    stopping: &std::sync::atomic::AtomicBool,
) {
    let mut conn: Option<TcpStream> = None;
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut body = first;
        let mut n = 1;
        while n < 1000 {
            match rx.try_recv() {
                Ok(l) => {
                    body.extend_from_slice(&l);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let r = match &target {
                Target::Tcp(addr) => send_tcp(&mut conn, addr, &body),
                Target::Http(url) => send_http(url, &tls, &body),
            };
            match r {
                Ok(()) => {
                    m.sent.fetch_add(n, Relaxed);
                    m.queued.fetch_sub(n, Relaxed);
                    break;
                }
                Err(e) => {
                    m.retries.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "the order sink failed; retrying");
                    if stopping.load(Relaxed) {
                        tracing::error!(
                            orders = n,
                            "ALERT: stopping with orders the executor did not take"
                        );
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn send_tcp(
    conn: &mut Option<TcpStream>,
    addr: &str,
    body: &[u8],
) -> std::result::Result<(), String> {
    if conn.is_none() {
        let s = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        *conn = Some(s);
    }
    let r = conn.as_mut().expect("connected").write_all(body);
    r.map_err(|e| {
        *conn = None;
        format!("writing to {addr}: {e}")
    })
}

fn send_http(
    url: &crate::net::Url,
    tls: &crate::net::ClientTls,
    body: &[u8],
) -> std::result::Result<(), String> {
    let headers = [("content-type", "application/x-ndjson".to_string())];
    let got = crate::net::request_blocking(url, tls, "POST", &headers, body.to_vec())?;
    if (200..300).contains(&got.status) {
        Ok(())
    } else {
        Err(format!(
            "POST {}: {} {}",
            url.uri,
            got.status,
            String::from_utf8_lossy(&got.body)
        ))
    }
}
